import type { LimitKey, LimitSettings, Limits, Usage } from './limits.js';

/** The limits counted by the quota engine itself, taken and given back by their owners. */
export const COUNTED = ['services', 'apiKeys'] as const;
export type Counted = (typeof COUNTED)[number];

/**
 * Usage kept elsewhere: an engine that counts in its own transactions (the store counts
 * its bytes and records in the database that holds them) reports it here.
 */
export type UsageSource = (namespace: string) => Promise<Usage>;

/**
 * What a namespace's plan gives it, as the platform's billing says (`Quotas.setPlans`):
 * the limits a namespace has without settings of its own, in place of the platform
 * defaults, and whether its owners may set its limits (within these).
 */
export interface NamespacePlan {
  /** the plan's id and name, for people (refusals say which plan) */
  id: string;
  name: string;
  /** the plan's limits; a key absent is the platform default */
  limits: LimitSettings;
  /** whether the namespace's owners and admins may set its limits, up to the plan's */
  ownersSetLimits: boolean;
  /** who pays for the namespace (a customer id), when the source knows: the Kubernetes runtime labels the namespace's cluster namespace with it */
  owner?: string;
}

/**
 * The plan of a namespace, or undefined when it has none (a namespace no customer owns,
 * self-hosted use): then the platform defaults apply. Asked on every `limits`, so it
 * answers from memory (billing keeps what it needs cached).
 */
export type PlanSource = (namespace: string) => Promise<NamespacePlan | undefined>;

/**
 * Per-namespace limits and usage. Every engine passes contract.ts.
 *
 * - `limits` is what is in force: the namespace's settings over its plan's limits (when
 *   a PlanSource is set) over the platform defaults; namespace micro is unlimited (null).
 * - `take` is atomic: of N concurrent takes with room for k, exactly k succeed, on one
 *   node or several (the engine's database decides, not the caller's memory).
 */
export interface Quotas {
  /** the platform defaults: what a namespace without settings of its own and without a plan has */
  readonly defaults: Readonly<Record<LimitKey, number>>;
  /** sets where the plans of namespaces come from (undefined: none, every namespace on the defaults); micro is never asked */
  setPlans(source: PlanSource | undefined): void;
  /** the plan of a namespace, or undefined (no PlanSource, no plan, or micro) */
  plan(namespace: string): Promise<NamespacePlan | undefined>;
  /** what a namespace has without settings of its own: its plan's limits over the platform defaults (micro: unlimited) */
  planLimits(namespace: string): Promise<Limits>;
  /** the limits in force for a namespace */
  limits(namespace: string): Promise<Limits>;
  /** the namespace's own settings (absent keys use the defaults) */
  settings(namespace: string): Promise<LimitSettings>;
  /** replaces the given keys of a namespace's settings (checked by checkSettings first); returns the limits in force */
  set(namespace: string, settings: LimitSettings): Promise<Limits>;
  /** forgets some keys of a namespace's settings: they are back on its plan's (or the defaults) */
  unset(namespace: string, keys: readonly LimitKey[]): Promise<void>;
  /** forgets a namespace's settings: it is back on the defaults */
  reset(namespace: string): Promise<void>;
  /** forgets a namespace's settings and counters (the namespace purge, purge/) */
  purge(namespace: string): Promise<void>;
  /** what a namespace uses: the counters here and every source's */
  usage(namespace: string): Promise<Usage>;
  /** takes `amount` of a counted limit, or throws quotaExceeded (403) and takes nothing */
  take(namespace: string, limit: Counted, amount?: number): Promise<void>;
  /** gives back what was taken (never below zero) */
  give(namespace: string, limit: Counted, amount?: number): Promise<void>;
  /** adds a source of usage kept elsewhere (see UsageSource) */
  addSource(source: UsageSource): void;
  close(): Promise<void>;
}

/** Sums the usage of the engine's counters and of its sources. */
export async function mergeUsage(own: Usage, sources: readonly UsageSource[], namespace: string): Promise<Usage> {
  const out: Usage = { ...own };
  for (const usage of await Promise.all(sources.map((s) => s(namespace)))) {
    for (const [key, n] of Object.entries(usage) as [LimitKey, number][]) out[key] = (out[key] ?? 0) + n;
  }
  return out;
}
