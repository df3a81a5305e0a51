import { MicroError } from '@micro/sdk';
import { NAMESPACE_NAME } from '@micro/sdk';
import { admit, QUOTA_ERROR_ID, resolveLimits, UNLIMITED_NAMESPACE, type LimitKey, type LimitSettings, type Limits, type Usage } from './limits.js';
import { mergeUsage, type Counted, type NamespacePlan, type PlanSource, type Quotas, type UsageSource } from './quotas.js';

/** What an engine stores; QuotaEngine does the checking and resolving once for both. */
export interface QuotaRows {
  settings(namespace: string): Promise<LimitSettings>;
  /** writes each given key */
  put(namespace: string, settings: LimitSettings): Promise<void>;
  /** deletes the given keys */
  unset(namespace: string, keys: readonly LimitKey[]): Promise<void>;
  clear(namespace: string): Promise<void>;
  /** deletes a namespace's settings and counters */
  forget(namespace: string): Promise<void>;
  counters(namespace: string): Promise<Usage>;
  /** adds amount when the counter stays within max (null: no max); the counter's value before, or undefined when refused */
  add(namespace: string, limit: Counted, amount: number, max: number | null): Promise<number | undefined>;
  /** subtracts, never below zero */
  sub(namespace: string, limit: Counted, amount: number): Promise<void>;
  close(): Promise<void>;
}

export interface QuotaEngineOptions {
  /** the platform defaults (default defaultsFromEnv()) */
  defaults: Readonly<Record<LimitKey, number>>;
}

const MAX_NAMESPACE = 128;

/** A namespace named by a caller: the platform's rule for names, bounded. */
export function checkQuotaNamespace(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_NAMESPACE || !NAMESPACE_NAME.test(value)) {
    throw new MicroError(QUOTA_ERROR_ID, 400, `namespace must be letters, digits, '.', '_' or '-' (at most ${MAX_NAMESPACE} characters)`);
  }
  return value;
}

function checkAmount(amount: number): number {
  if (!Number.isSafeInteger(amount) || amount < 0) throw new MicroError(QUOTA_ERROR_ID, 400, `amount must be a whole number >= 0, not ${amount}`);
  return amount;
}

/** Quotas over an engine's rows (see sqlite.ts, postgres.ts). */
export class QuotaEngine implements Quotas {
  private readonly sources: UsageSource[] = [];
  private plans: PlanSource | undefined;

  constructor(
    private readonly rows: QuotaRows,
    private readonly options: QuotaEngineOptions,
  ) {}

  get defaults(): Readonly<Record<LimitKey, number>> {
    return this.options.defaults;
  }

  async limits(namespace: string): Promise<Limits> {
    checkQuotaNamespace(namespace);
    const [settings, plan] = await Promise.all([this.rows.settings(namespace), this.plan(namespace)]);
    return resolveLimits(namespace, settings, this.defaultsWith(plan));
  }

  setPlans(source: PlanSource | undefined): void {
    this.plans = source;
  }

  async plan(namespace: string): Promise<NamespacePlan | undefined> {
    checkQuotaNamespace(namespace);
    // the platform's own namespace has no plan: it stays unlimited whatever billing says
    if (!this.plans || namespace === UNLIMITED_NAMESPACE) return undefined;
    return this.plans(namespace);
  }

  async planLimits(namespace: string): Promise<Limits> {
    return resolveLimits(namespace, {}, this.defaultsWith(await this.plan(namespace)));
  }

  /** the plan's limits over the platform defaults */
  private defaultsWith(plan: NamespacePlan | undefined): Readonly<Record<LimitKey, number>> {
    return plan ? { ...this.options.defaults, ...plan.limits } : this.options.defaults;
  }

  async settings(namespace: string): Promise<LimitSettings> {
    return this.rows.settings(checkQuotaNamespace(namespace));
  }

  async set(namespace: string, settings: LimitSettings): Promise<Limits> {
    await this.rows.put(checkQuotaNamespace(namespace), settings);
    return this.limits(namespace);
  }

  async unset(namespace: string, keys: readonly LimitKey[]): Promise<void> {
    await this.rows.unset(checkQuotaNamespace(namespace), keys);
  }

  async reset(namespace: string): Promise<void> {
    await this.rows.clear(checkQuotaNamespace(namespace));
  }

  async purge(namespace: string): Promise<void> {
    await this.rows.forget(checkQuotaNamespace(namespace));
  }

  async usage(namespace: string): Promise<Usage> {
    return mergeUsage(await this.rows.counters(checkQuotaNamespace(namespace)), this.sources, namespace);
  }

  async take(namespace: string, limit: Counted, amount = 1): Promise<void> {
    const max = (await this.limits(namespace))[limit];
    const before = await this.rows.add(namespace, limit, checkAmount(amount), max);
    if (before !== undefined) return;
    // refused: say what is used now (read again: the refusal itself changed nothing)
    admit(limit, (await this.rows.counters(namespace))[limit] ?? 0, amount, max, namespace);
    // the counter fell between the two reads: the room is there now, so try once more
    await this.take(namespace, limit, amount);
  }

  async give(namespace: string, limit: Counted, amount = 1): Promise<void> {
    await this.rows.sub(checkQuotaNamespace(namespace), limit, checkAmount(amount));
  }

  addSource(source: UsageSource): void {
    this.sources.push(source);
  }

  close(): Promise<void> {
    return this.rows.close();
  }
}
