import { createHash } from 'node:crypto';
import { MicroError } from '@micro/sdk';
import type { Admission, CallRecord, Charge, Hold, Outcome } from './storage.js';

/**
 * What both engines share: the refusals, the posting keys, the one decision of an
 * admission over the numbers an engine reads (from memory or from rows under a lock), and
 * the record a settled call becomes.
 */

/** the error id of the gateway's refusals of a payer (as M3O answered them) */
export const BLOCKED_ID = 'v1.blocked';

/** 403: the payer's balance, less what calls in flight hold and charges not yet posted, does not cover the price */
export function insufficientCredit(): MicroError {
  return new MicroError(BLOCKED_ID, 403, 'insufficient credit');
}

/** 403: the payer's charges this period and the calls in flight would pass its usage cap */
export function usageCapExceeded(): MicroError {
  return new MicroError(BLOCKED_ID, 403, 'usage cap exceeded');
}

/**
 * The posting key of an idempotent call: every retry with the same Idempotency-Key (same
 * payer, same endpoint) has the same key, so the ledger takes its charge once whatever
 * the meter remembers. The key is hashed: it fits the ledger's 200 characters whatever
 * its length and characters, and `k:` keeps it apart from the keys of request ids.
 */
export function idemPosting(payer: string, service: string, endpoint: string, idempotencyKey: string): string {
  const digest = createHash('sha256').update(`${service}\n${endpoint}\n${idempotencyKey}`).digest('base64url');
  return `usage:${payer}:k:${digest}`;
}

/** The posting key of a call without an Idempotency-Key: its request id (made by the gateway, never by the caller). */
export function requestPosting(payer: string, requestId: string): string {
  return `usage:${payer}:r:${requestId}`;
}

/** What an engine reads of a payer before it admits a call, in one consistent view. */
export interface Standing {
  /** an earlier call with the same Idempotency-Key succeeded */
  done: boolean;
  /** free calls of the endpoint used this period */
  used: number;
  /** free slots of the endpoint held by calls in flight */
  inflight: number;
  /** units charged this period */
  spent: number;
  /** units held by calls in flight */
  held: number;
  /** the ledger balance of `customer:<payer>:balance` */
  balance: number;
  /** units charged and not yet in the ledger */
  unposted: number;
}

/**
 * The admission of a call: a replay of a call already made, a free slot, a charge — or
 * `short` (the credit does not cover the price). Throws the usage cap's refusal. Free
 * calls do not count against the cap; a price of 0 needs no credit.
 */
export function decide(a: Admission, s: Standing): Hold['kind'] | 'short' {
  if (s.done) return 'replay';
  if (s.used + s.inflight < a.freeQuota) return 'free';
  if (a.cap !== null && s.spent + s.held + a.price > a.cap) throw usageCapExceeded();
  if (a.price === 0 || s.balance - s.held - s.unposted >= a.price) return 'charge';
  return 'short';
}

export function holdOf(a: Admission, kind: Hold['kind']): Hold {
  return { admission: a, kind, amount: kind === 'charge' ? a.price : 0 };
}

/** What a settled call is recorded as: `failed` for any outcome but success. */
export function recordOf(a: Admission, outcome: Outcome, kind: Hold['kind'] | 'failed'): CallRecord {
  const charged = kind === 'charge' ? a.price : 0;
  return {
    requestId: a.requestId,
    at: a.at,
    period: a.period,
    day: a.day,
    payer: a.payer,
    namespace: a.namespace,
    account: a.account,
    keyId: a.keyId,
    home: a.home,
    service: a.service,
    endpoint: a.endpoint,
    price: a.price,
    freeQuota: a.freeQuota,
    free: kind === 'free',
    charged,
    outcome: outcome.ok && kind !== 'failed' ? 'ok' : 'error',
    code: outcome.code,
    idemKey: a.idemKey ?? null,
    posting: charged > 0 ? (a.idem ?? requestPosting(a.payer, a.requestId)) : null,
  };
}

export function chargeOf(r: CallRecord): Charge {
  return { requestId: r.requestId, payer: r.payer, amount: r.charged, calls: 1, posting: r.posting as string, period: r.period, service: r.service, endpoint: r.endpoint };
}

/** The group commit of the records of calls that end in one tick: entries wait for their batch's transaction. */
export interface Pending<T> {
  hold: Hold;
  outcome: Outcome;
  resolve(record: CallRecord): void;
  reject(err: unknown): void;
  /** the engine's own state of the entry */
  extra?: T;
}
