import type { PostingInput } from '../ledger/index.js';
import type { PlanVersion } from './plans.js';

/**
 * What billing keeps beside the ledger (in its database: billing.db, or the platform's
 * PostgreSQL schema): plan versions, one subscription per customer, the seats charged in
 * each period and every charge it decided (the posting it makes, kept until the ledger has
 * it). Both engines (sqlite.ts, postgres.ts) pass contract.ts.
 *
 * Every change of a subscription is one `commit`: a compare-and-set on the row's revision
 * with its seats and charges, in one transaction. Of two nodes (or two requests) acting
 * on one subscription at once exactly one commits; the other reads again.
 */

export interface SubscriptionRow {
  /** the customer (signup) who pays: the payer */
  customer: string;
  plan: string;
  /** when the customer went on this plan (ms) */
  since: number;
  /** the last period (`YYYY-MM`) whose start was handled: its seat fee decided */
  period: string;
  /** back to Community when the next period starts */
  cancelAtPeriodEnd: boolean;
  /** `ended`: the customer was deleted; nothing more is charged */
  status: 'active' | 'ended';
  /** 1 when made, one more at each commit */
  revision: number;
  createdAt: number;
  updatedAt: number;
}

/** A seat charged in a period: a member of the payer's namespaces (the owner included). */
export interface SeatRow {
  payer: string;
  period: string;
  /** the member's customer id */
  member: string;
  /** from when it was charged (ms): the period's start, or when it joined or the subscription began */
  since: number;
}

export type ChargeKind = 'seats' | 'proration';

/** A charge decided by billing: the posting it makes in the ledger, under its idempotency key. */
export interface ChargeRow {
  /** the posting's idempotency key */
  key: string;
  payer: string;
  period: string;
  kind: ChargeKind;
  /** units: positive owed by the payer, negative credited to it */
  amount: number;
  posting: PostingInput;
  at: number;
  /** when the ledger acknowledged it; absent while pending */
  postedAt?: number;
}

export interface Commit {
  /** the revision the subscription has (0: none yet) */
  expect: number;
  /** the subscription after the change (its revision expect + 1) */
  row: SubscriptionRow;
  /** seats to add (one already there for that member and period stays as it is) */
  seats?: SeatRow[];
  /** charges to record (pending until posted) */
  charges?: ChargeRow[];
}

export interface Page<T> {
  items: T[];
  next?: string;
}

export interface BillingStorage {
  /** every version of every plan */
  versions(): Promise<PlanVersion[]>;
  /**
   * Records a version. `create`: only when the plan has no version yet (false otherwise);
   * `update`: replaces the version of that plan and period, or adds it; `seed`: only when
   * no version of that plan and period exists (false otherwise).
   */
  putVersion(v: PlanVersion, mode: 'create' | 'update' | 'seed'): Promise<boolean>;

  subscription(customer: string): Promise<SubscriptionRow | undefined>;
  /** by customer id; `due`: only active ones whose `period` is before it (the job's work) */
  subscriptions(options: { limit: number; after?: string; due?: string; plan?: string }): Promise<Page<SubscriptionRow>>;
  /** the change, all or nothing; false when the revision is not `expect` (or a charge's key exists) */
  commit(c: Commit): Promise<boolean>;
  seats(payer: string, period: string): Promise<SeatRow[]>;
  /** a payer's charges, oldest first; of one period when given */
  charges(payer: string, period?: string): Promise<ChargeRow[]>;
  /** charges the ledger has not acknowledged, oldest first */
  pending(limit: number): Promise<ChargeRow[]>;
  markPosted(key: string, at: number): Promise<void>;
  close(): Promise<void>;
}
