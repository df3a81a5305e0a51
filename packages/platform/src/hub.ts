import type { CoreContext } from '@micro/server/engine';
import { namespacePayer } from './billing/accounts.js';
import { openBillingEngines, type BillingEngines } from './billing/engines.js';
import { openSubscriptions } from './plans/index.js';
import type { Subscriptions } from './plans/subscriptions.js';
import { openSignupStorage } from './signup/index.js';
import type { SignupStorage } from './signup/storage.js';

/** Looks at a payer's balance after a posting (see PlatformHub.onBalance). */
export type BalanceObserver = (payer: string, balanceAfter?: number) => Promise<void>;

/**
 * What the platform's services of one micro server share, opened once however many of
 * them ask and closed when the last lets go: each factory calls `acquire()` when it is
 * built and `release()` in its stop. The signup storage (customers, namespaces, teams) and
 * the billing engines (the ledger and its database) live here, so billing can ask who
 * pays for a namespace without a second handle on signup's database.
 */
export class PlatformHub {
  private users = 0;
  private billingOpen: Promise<BillingEngines> | undefined;
  private signupOpen: Promise<{ storage: SignupStorage; codeKey: Buffer }> | undefined;
  private plansOpen: Promise<Subscriptions> | undefined;
  /** namespace → payer, for `payerTtl` ms */
  private readonly payerCache = new Map<string, { payer: string; at: number }>();
  /** who looks at a payer's balance after postings (the balance service's low/zero watch) */
  private readonly balanceObservers = new Set<BalanceObserver>();

  constructor(
    private readonly options: {
      /** the billing clock (default Date.now) */
      clock?: () => number;
      /** signup's code key (default as openSignupStorage derives it) */
      codeKey?: Buffer;
      /** ms a namespace's payer is remembered (default 5,000): a new owner pays from then at the latest */
      payerTtl?: number;
    } = {},
  ) {}

  get clock(): () => number {
    return this.options.clock ?? Date.now;
  }

  acquire(): void {
    this.users++;
  }

  async release(): Promise<void> {
    if (--this.users > 0) return;
    const [billing, signup, plans] = [this.billingOpen, this.signupOpen, this.plansOpen];
    this.billingOpen = this.signupOpen = this.plansOpen = undefined;
    await plans?.then((p) => p.idle()).catch(() => undefined);
    this.payerCache.clear();
    await Promise.all([billing?.then((b) => b.ledger.close()), signup?.then((s) => s.storage.close())]);
  }

  billing(ctx: Pick<CoreContext, 'profile' | 'dataDir'>): Promise<BillingEngines> {
    return (this.billingOpen ??= openBillingEngines(ctx, this.clock));
  }

  signup(ctx: Pick<CoreContext, 'profile' | 'dataDir'>): Promise<{ storage: SignupStorage; codeKey: Buffer }> {
    return (this.signupOpen ??= openSignupStorage(ctx.profile, ctx.dataDir, this.options.codeKey));
  }

  /** Adds an observer of balances (the balance service adds its low- and zero-balance watch); returns its removal. */
  watchBalance(observer: BalanceObserver): () => void {
    this.balanceObservers.add(observer);
    return () => this.balanceObservers.delete(observer);
  }

  /**
   * A payer's balance after a posting that changed it: whoever posts to a
   * `customer:<payer>:balance` calls this afterwards (metering after its usage postings,
   * balance and payments after theirs), with the balance the posting left when it knows it.
   * The low- and zero-balance events go out once per crossing, however often this is called.
   * Never throws; resolves once the observers have looked (a caller on a hot path need not wait).
   */
  async onBalance(payer: string, balanceAfter?: number): Promise<void> {
    await Promise.all([...this.balanceObservers].map((o) => o(payer, balanceAfter).catch(() => undefined)));
  }

  /**
   * Plans and subscriptions (plans/): which plan a payer is on (`planOf(payer)`), the plan
   * of a namespace as the quotas take it (`namespacePlan`), the seat and pro-ration
   * charges of a payer and period (`charges(payer, period)`). Opened once, in billing's
   * database; the billing service's factory opens it with the server's context (the
   * quotas it checks changes of plan against).
   */
  plans(ctx: CoreContext): Promise<Subscriptions> {
    return (this.plansOpen ??= openSubscriptions(this, ctx));
  }

  /**
   * Who pays for what is done in `namespace`: the customer who owns it (role owner; the
   * first, should there be several), else the namespace itself (`ns.<namespace>`).
   */
  async payerOf(ctx: Pick<CoreContext, 'profile' | 'dataDir'>, namespace: string): Promise<string> {
    const now = Date.now();
    const hit = this.payerCache.get(namespace);
    if (hit && now - hit.at < (this.options.payerTtl ?? 5_000)) return hit.payer;
    const { storage } = await this.signup(ctx);
    const owner = (await storage.members(namespace)).find((m) => m.role === 'owner');
    const payer = owner?.customer ?? namespacePayer(namespace);
    if (this.payerCache.size >= 100_000) this.payerCache.clear();
    this.payerCache.set(namespace, { payer, at: now });
    return payer;
  }
}
