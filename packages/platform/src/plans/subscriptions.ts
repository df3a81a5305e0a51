import { errors, type Logger } from '@micro/sdk';
import type { NamespacePlan, Quotas } from '@micro/server/engine';
import { openPayerAccounts } from '../billing/accounts.js';
import { nextPeriod, parsePeriod, periodOf, type Period } from '../billing/periods.js';
import type { Ledger } from '../ledger/index.js';
import type { SignupStorage } from '../signup/storage.js';
import { changeFee, fullFee, joinerFee, periodFee } from './charges.js';
import { fitOf, whatToRemove } from './fit.js';
import { BILLING_ERROR_ID, COMMUNITY, DEFAULT_PLANS, namespacePlan, PlanBook, planFrom, SEED_PERIOD, type Plan, type PlanFields, type PlanVersion } from './plans.js';
import { seatingOf } from './seats.js';
import type { BillingStorage, ChargeRow, SeatRow, SubscriptionRow } from './storage.js';

export interface SubscriptionsDeps {
  storage: BillingStorage;
  ledger: Ledger;
  signup: Pick<SignupStorage, 'getCustomer' | 'memberships' | 'members'>;
  /** who pays for a namespace (hub.payerOf): a customer, or `ns.<namespace>` */
  payerOf: (namespace: string) => Promise<string>;
  /** micro server's quotas: usage for the fit of a change, settings a downgrade drops; absent: not checked */
  quotas?: Pick<Quotas, 'usage' | 'settings' | 'unset' | 'defaults'>;
  /** the billing clock (ms) */
  clock: () => number;
  logger?: Logger;
  /** ms what is read for every request (the plans, a namespace's plan) is kept (default 5,000) */
  cacheMs?: number;
  /** told of each namespace whose plan changed (the runtime's NamespaceHook: on Kubernetes its cluster namespace's labels and quota follow) */
  namespaceChanged?: ((namespace: string) => void) | undefined;
}

/** What a payer has now: the subscription (absent: never subscribed, on Community) and the plan in force. */
export interface Standing {
  customer: string;
  row?: SubscriptionRow;
  plan: PlanVersion;
  period: Period;
}

/** What the job did in one run. */
export interface JobReport {
  /** period starts handled (seat fees decided), over every subscription */
  periods: number;
  /** members charged a seat mid-period */
  joiners: number;
  /** subscriptions ended (their customer deleted) */
  ended: number;
  /** charges the ledger acknowledged */
  posted: number;
  /** subscriptions that could not be handled (logged; tried again at the next run) */
  failed: number;
}

const PAGE = 100;
/** period starts handled for one subscription in one call: a clock years ahead catches up over several runs */
const MAX_CATCH_UP = 120;

/**
 * Plans and subscriptions over the storage, the ledger and signup: the rules of README.md
 * ("Subscriptions", "Seats", "Pro-ration"). Each change is a commit on the subscription's
 * revision with the charges it decided; the charges are then posted to the ledger under
 * their keys (a charge not acknowledged is posted again by the job: same key, same
 * content, so at most once).
 */
export class Subscriptions {
  private bookCache: { book: Promise<PlanBook>; at: number } | undefined;
  private readonly planCache = new Map<string, { plan: Promise<NamespacePlan | undefined>; at: number }>();
  private readonly opened = new Set<string>();
  private running: Promise<JobReport> | undefined;
  private readonly cacheMs: number;

  constructor(private readonly d: SubscriptionsDeps) {
    this.cacheMs = d.cacheMs ?? 5_000;
  }

  /** Records the built-in plans (once: an edited plan keeps its later versions). */
  async seed(): Promise<void> {
    for (const plan of DEFAULT_PLANS) await this.d.storage.putVersion({ plan, from: SEED_PERIOD, at: this.d.clock() }, 'seed');
    this.bookCache = undefined;
  }

  // --- plans

  /** Every version of every plan, read again after `cacheMs` (another node's edits) or a local edit. */
  book(): Promise<PlanBook> {
    const now = Date.now();
    if (!this.bookCache || now - this.bookCache.at >= this.cacheMs) {
      const book = this.d.storage.versions().then((v) => new PlanBook(v));
      book.catch(() => (this.bookCache = undefined));
      this.bookCache = { book, at: now };
    }
    return this.bookCache.book;
  }

  /** A new plan, in force from the current period (nobody is on it: nothing is retroactive). */
  async createPlan(id: string, fields: PlanFields): Promise<PlanVersion> {
    if ((await this.fresh()).has(id)) throw exists(id);
    const plan = planFrom(id, fields);
    const v: PlanVersion = { plan, from: this.period().id, at: this.d.clock() };
    // two creates racing: the storage lets one make it
    if (!(await this.d.storage.putVersion(v, 'create'))) throw exists(id);
    this.edited();
    return v;
  }

  /**
   * A change of a plan, in force from the next period: subscriptions in this one keep the
   * version they began it with. Several changes in one period make one next version.
   */
  async updatePlan(id: string, fields: PlanFields): Promise<PlanVersion> {
    const latest = (await this.fresh()).latest(id);
    if (!latest) throw errors.NotFound(BILLING_ERROR_ID, `id: no plan ${id}`);
    const plan = planFrom(id, fields, latest.plan);
    const v: PlanVersion = { plan, from: nextPeriod(this.period()).id, at: this.d.clock() };
    await this.d.storage.putVersion(v, 'update');
    this.edited();
    return v;
  }

  private async fresh(): Promise<PlanBook> {
    this.bookCache = undefined;
    return this.book();
  }

  private edited(): void {
    this.bookCache = undefined;
    this.planCache.clear();
  }

  private period(at = this.d.clock()): Period {
    return periodOf(at);
  }

  /** the billing period the clock is in */
  currentPeriod(): Period {
    return this.period();
  }

  /** The version of `id` in force in `period`; the free plan for a plan that did not exist then. */
  private async version(id: string, period: string): Promise<PlanVersion> {
    const book = await this.book();
    const v = book.inForce(id, period) ?? book.inForce(COMMUNITY, period);
    if (!v) throw errors.InternalServerError(BILLING_ERROR_ID, `no version of ${id} nor of ${COMMUNITY} in ${period}`);
    return v;
  }

  // --- reading

  /**
   * The plan a payer is on now: its subscription's plan — Community without one, once a
   * cancellation took effect, or once ended — in the version in force in the current
   * period. Undefined for a payer that is no customer (`ns.<namespace>`): it has no plan,
   * the platform defaults apply. (What a past period was billed at is in its seat
   * postings' metadata: `plan`, `seats`, `price`.)
   */
  async planOf(payer: string): Promise<PlanVersion | undefined> {
    if (payer.startsWith('ns.')) return undefined;
    const period = this.period().id;
    return this.version(effectivePlan(await this.d.storage.subscription(payer), period), period);
  }

  /** The plan the quotas use for a namespace (Quotas.setPlans), from memory for `cacheMs`. */
  namespacePlan(namespace: string): Promise<NamespacePlan | undefined> {
    const now = Date.now();
    const hit = this.planCache.get(namespace);
    if (hit && now - hit.at < this.cacheMs) return hit.plan;
    if (this.planCache.size >= 10_000) this.planCache.clear();
    const plan = this.d.payerOf(namespace).then(async (payer) => {
      const v = await this.planOf(payer);
      // the payer is the namespace's owner as the Kubernetes runtime labels its cluster namespace
      return v && { ...namespacePlan(v.plan), owner: payer };
    });
    plan.catch(() => this.planCache.delete(namespace));
    this.planCache.set(namespace, { plan, at: now });
    return plan;
  }

  /** A customer's standing, after the job's work for it is done (its period brought up to date). */
  async standing(customer: string): Promise<Standing> {
    const c = await this.d.signup.getCustomer({ id: customer });
    if (!c || c.status === 'deleted') throw errors.NotFound(BILLING_ERROR_ID, `customer: no customer ${customer}`);
    const now = this.d.clock();
    let row = await this.d.storage.subscription(customer);
    if (row) row = await this.advance(row, now, { periods: 0, joiners: 0, ended: 0, posted: 0, failed: 0 });
    const period = this.period(now);
    return { customer, ...(row ? { row } : {}), plan: await this.version(effectivePlan(row, period.id), period.id), period };
  }

  list(o: { limit: number; after?: string; plan?: string }) {
    return this.d.storage.subscriptions(o);
  }

  /** Resolves once no run of the job is under way (before the engines close). */
  async idle(): Promise<void> {
    await this.running?.catch(() => undefined);
  }

  seats(payer: string, period: string): Promise<SeatRow[]> {
    return this.d.storage.seats(payer, period);
  }

  charges(payer: string, period?: string): Promise<ChargeRow[]> {
    return this.d.storage.charges(payer, period);
  }

  seating(payer: string) {
    return seatingOf(this.d.signup, this.d.payerOf, payer);
  }

  // --- changes

  /**
   * Changes a customer's plan now: a first subscription (kind `seats`, pro-rated from now)
   * or a change (kind `proration`: the rest of the period at the new plan less the old).
   * 404 unknown plan, 409 the same plan, a plan not available, or namespaces that do not
   * fit the plan (with what to remove first).
   */
  async change(customer: string, to: string): Promise<{ standing: Standing; charged: number }> {
    const s = await this.standing(customer);
    const target = (await this.book()).inForce(to, s.period.id);
    if (!target) throw errors.NotFound(BILLING_ERROR_ID, `plan: no plan ${to} (see Plans)`);
    if (target.plan.status !== 'available') throw errors.Conflict(BILLING_ERROR_ID, `plan: ${target.plan.name} is ${target.plan.status}: it takes no subscriptions${target.plan.status === 'reserved' ? ' yet' : ''}`);
    if (s.plan.plan.id === to) throw errors.Conflict(BILLING_ERROR_ID, `plan: you are on ${target.plan.name} already${s.row?.cancelAtPeriodEnd ? ' (to keep it past this period, Resume)' : ''}`);
    if (s.row && s.row.status === 'ended') throw errors.Conflict(BILLING_ERROR_ID, `customer: the subscription of ${customer} has ended`);
    if (s.row && s.row.period !== s.period.id) throw errors.ServiceUnavailable(BILLING_ERROR_ID, `the billing clock (${s.period.id}) and this subscription's period (${s.row.period}) differ: try again later`);
    const seating = await this.seating(customer);
    const fit = this.d.quotas ? await fitOf(this.d.quotas, seating.namespaces, s.plan.plan, target.plan) : undefined;
    if (fit?.misfits.length) throw errors.Conflict(BILLING_ERROR_ID, `plan: your namespaces use more than ${target.plan.name} includes: ${whatToRemove(fit.misfits)} first`);
    const now = this.d.clock();
    const decided = s.row ? await this.decideChange(s.row, s, target.plan, seating.members, now) : this.decideFirst(customer, s.period, target.plan, seating.members, now);
    if (!(await this.d.storage.commit(decided.commit))) throw errors.Conflict(BILLING_ERROR_ID, 'the subscription changed meanwhile: read it again and retry');
    this.planCache.clear();
    for (const [namespace, keys] of fit?.dropped ?? []) {
      await this.d.quotas?.unset(namespace, keys).catch((err: unknown) => this.d.logger?.warn({ err, namespace, keys }, 'billing: settings above the new plan could not be dropped'));
    }
    this.tell(seating.namespaces);
    await this.post(decided.commit.charges ?? []);
    return { standing: { ...s, row: decided.commit.row, plan: target }, charged: decided.charged };
  }

  private decideFirst(customer: string, period: Period, plan: Plan, members: Map<string, number>, now: number) {
    const row: SubscriptionRow = { customer, plan: plan.id, since: now, period: period.id, cancelAtPeriodEnd: false, status: 'active', revision: 1, createdAt: now, updatedAt: now };
    const fee = periodFee({ payer: customer, period, plan, seats: members.size, since: now, at: now });
    const seats = [...members.keys()].map((member) => ({ payer: customer, period: period.id, member, since: now }));
    return { commit: { expect: 0, row, seats, charges: fee ? [fee] : [] }, charged: fee?.amount ?? 0 };
  }

  private async decideChange(current: SubscriptionRow, s: Standing, plan: Plan, members: Map<string, number>, now: number) {
    const seated = new Set((await this.d.storage.seats(current.customer, s.period.id)).map((x) => x.member));
    const joining = [...members.keys()].filter((m) => !seated.has(m));
    const revision = current.revision + 1;
    const fee = changeFee({ payer: current.customer, period: s.period, from: s.plan.plan, to: plan, before: seated.size, after: seated.size + joining.length, at: now, revision });
    const row: SubscriptionRow = { ...current, plan: plan.id, since: now, cancelAtPeriodEnd: false, revision, updatedAt: now };
    const seats = joining.map((member) => ({ payer: current.customer, period: s.period.id, member, since: now }));
    return { commit: { expect: current.revision, row, seats, charges: fee.charge ? [fee.charge] : [] }, charged: fee.owed - fee.credit };
  }

  /** Cancel (back to Community when the period ends) or resume (stay): nothing is charged or credited now. */
  async setCancel(customer: string, cancel: boolean): Promise<Standing> {
    const s = await this.standing(customer);
    if (!s.row || s.plan.plan.id === COMMUNITY) {
      if (!cancel) return s;
      throw errors.Conflict(BILLING_ERROR_ID, `plan: you are on ${s.plan.plan.name}, the free plan: there is nothing to cancel`);
    }
    if (s.row.cancelAtPeriodEnd === cancel) return s;
    const row: SubscriptionRow = { ...s.row, cancelAtPeriodEnd: cancel, revision: s.row.revision + 1, updatedAt: this.d.clock() };
    if (!(await this.d.storage.commit({ expect: s.row.revision, row }))) throw errors.Conflict(BILLING_ERROR_ID, 'the subscription changed meanwhile: read it again and retry');
    return { ...s, row };
  }

  // --- the job

  /**
   * Brings every subscription to the current period: each period start not handled yet is
   * handled once (its seat fee, a cancellation taking effect), in order, however far the
   * clock moved; members who joined since are charged their seat; a deleted customer's
   * subscription ends. Then every charge the ledger has not acknowledged is posted.
   * One run at a time per process; nodes racing on one subscription commit once.
   */
  runJob(): Promise<JobReport> {
    this.running ??= this.job().finally(() => (this.running = undefined));
    return this.running;
  }

  private async job(): Promise<JobReport> {
    const report: JobReport = { periods: 0, joiners: 0, ended: 0, posted: 0, failed: 0 };
    const now = this.d.clock();
    for (let after: string | undefined = ''; after !== undefined; ) {
      const page = await this.d.storage.subscriptions({ limit: PAGE, after });
      for (const row of page.items) {
        if (row.status === 'ended') continue;
        try {
          await this.advance(row, now, report);
        } catch (err) {
          report.failed++;
          this.d.logger?.warn({ err, customer: row.customer }, 'billing: a subscription could not be brought up to date (tried again next run)');
        }
      }
      after = page.next;
    }
    report.posted += await this.postPending();
    return report;
  }

  /**
   * One subscription up to `now`: its period starts in order, then the seats of members
   * who joined in the current period. A commit lost to another node or request reads the
   * row again and goes on from there.
   */
  private async advance(start: SubscriptionRow, now: number, report: JobReport): Promise<SubscriptionRow> {
    const current = this.period(now);
    let s = start;
    for (let i = 0; i < MAX_CATCH_UP && s.status === 'active' && s.period < current.id; i++) {
      const customer = await this.d.signup.getCustomer({ id: s.customer });
      const next = !customer || customer.status === 'deleted' ? this.ended(s, now) : await this.periodStart(s, nextPeriod(parsePeriod(s.period)), current, now);
      if (await this.commitAndPost(s, next)) {
        report[next.row.status === 'ended' ? 'ended' : 'periods']++;
        s = next.row;
      } else s = await this.reread(s);
    }
    if (s.status !== 'active' || s.period !== current.id) return s;
    const joined = await this.joiners(s, current, now);
    if (!joined) return s;
    if (await this.commitAndPost(s, joined)) {
      report.joiners += joined.seats.length;
      return joined.row;
    }
    return this.reread(s);
  }

  private async reread(s: SubscriptionRow): Promise<SubscriptionRow> {
    const again = await this.d.storage.subscription(s.customer);
    if (!again) throw errors.InternalServerError(BILLING_ERROR_ID, `the subscription of ${s.customer} is gone`);
    return again;
  }

  private async commitAndPost(s: SubscriptionRow, next: { row: SubscriptionRow; seats: SeatRow[]; charges: ChargeRow[] }): Promise<boolean> {
    if (!(await this.d.storage.commit({ expect: s.revision, ...next }))) return false;
    if (next.row.plan !== s.plan || next.row.status !== s.status) {
      this.planCache.clear();
      // a cancellation that took effect, an ended subscription: the namespaces are on another plan now
      if (this.d.namespaceChanged) {
        await this.seating(s.customer).then(
          (seating) => this.tell(seating.namespaces),
          (err: unknown) => this.d.logger?.warn({ err, customer: s.customer }, 'billing: the namespaces of a plan change could not be read for the runtime (its reconcile catches up)'),
        );
      }
    }
    await this.post(next.charges);
    return true;
  }

  /** Tells the runtime that these namespaces are on another plan (not awaited: the runtime never fails a change of plan). */
  private tell(namespaces: readonly string[]): void {
    for (const namespace of namespaces) this.d.namespaceChanged?.(namespace);
  }

  private ended(s: SubscriptionRow, now: number) {
    return { row: { ...s, status: 'ended' as const, revision: s.revision + 1, updatedAt: now }, seats: [], charges: [] };
  }

  /**
   * The start of period `p`: a pending cancellation takes effect (Community), the seat fee
   * of the plan's version in force in `p` for the members there at its start (for a
   * period the job reaches late — the server was down — the members now).
   */
  private async periodStart(s: SubscriptionRow, p: Period, current: Period, now: number) {
    const planId = s.cancelAtPeriodEnd ? COMMUNITY : s.plan;
    const { plan } = await this.version(planId, p.id);
    const { members } = await this.seating(s.customer);
    const seated = [...members].filter(([, joined]) => p.id !== current.id || joined < p.start).map(([member]) => member);
    const fee = periodFee({ payer: s.customer, period: p, plan, seats: seated.length, since: p.start, at: now });
    const row: SubscriptionRow = { ...s, plan: planId, since: planId === s.plan ? s.since : p.start, period: p.id, cancelAtPeriodEnd: false, revision: s.revision + 1, updatedAt: now };
    return { row, seats: seated.map((member) => ({ payer: s.customer, period: p.id, member, since: p.start })), charges: fee ? [fee] : [] };
  }

  /** Members of the payer's namespaces not seated in the period yet: a seat each from the second they joined. */
  private async joiners(s: SubscriptionRow, p: Period, now: number) {
    const { plan } = await this.version(s.plan, p.id);
    // a free plan charges nobody: a change from it seats whoever is there (decideChange)
    if (plan.price === 0) return undefined;
    const { members } = await this.seating(s.customer);
    const seated = new Set((await this.d.storage.seats(s.customer, p.id)).map((x) => x.member));
    const joining = [...members].filter(([member]) => !seated.has(member));
    if (joining.length === 0) return undefined;
    fullFee(plan.price, seated.size + joining.length);
    const seats = joining.map(([member, joined]) => ({ payer: s.customer, period: p.id, member, since: Math.min(now, Math.max(joined, p.start)) }));
    const charges = seats.map((x) => joinerFee({ payer: s.customer, period: p, plan, member: x.member, since: x.since, at: now })).filter((c): c is ChargeRow => c !== undefined);
    return { row: { ...s, revision: s.revision + 1, updatedAt: now }, seats, charges };
  }

  /** Posts charges to the ledger (the payer's accounts opened first); one not acknowledged stays pending for the job. */
  private async post(charges: readonly ChargeRow[]): Promise<number> {
    let posted = 0;
    for (const c of charges) {
      try {
        if (!this.opened.has(c.payer)) {
          await openPayerAccounts(this.d.ledger, c.payer);
          this.opened.add(c.payer);
        }
        await this.d.ledger.post(c.posting);
        await this.d.storage.markPosted(c.key, this.d.clock());
        posted++;
      } catch (err) {
        this.d.logger?.warn({ err, key: c.key }, 'billing: a charge could not be posted yet (the job posts it again)');
      }
    }
    return posted;
  }

  private async postPending(): Promise<number> {
    let posted = 0;
    for (;;) {
      const pending = await this.d.storage.pending(PAGE);
      const done = await this.post(pending);
      posted += done;
      // a page none of which went through: leave the rest for the next run
      if (pending.length < PAGE || done === 0) return posted;
    }
  }
}

function exists(id: string) {
  return errors.Conflict(BILLING_ERROR_ID, `id: plan ${id} exists: change it with UpdatePlan (micro platform plans set)`);
}

/** The plan a subscription gives in `period`: Community without one, once ended, or once a cancellation took effect. */
export function effectivePlan(row: SubscriptionRow | undefined, period: string): string {
  if (!row || row.status === 'ended') return COMMUNITY;
  if (row.cancelAtPeriodEnd && row.period < period) return COMMUNITY;
  return row.plan;
}

