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
 * Per-namespace limits and usage. Every engine passes contract.ts.
 *
 * - `limits` is what is in force: the namespace's settings over the platform defaults;
 *   namespace micro is unlimited (null).
 * - `take` is atomic: of N concurrent takes with room for k, exactly k succeed, on one
 *   node or several (the engine's database decides, not the caller's memory).
 */
export interface Quotas {
  /** the platform defaults: what a namespace has without settings of its own (its plan, until plans exist) */
  readonly defaults: Readonly<Record<LimitKey, number>>;
  /** the limits in force for a namespace */
  limits(namespace: string): Promise<Limits>;
  /** the namespace's own settings (absent keys use the defaults) */
  settings(namespace: string): Promise<LimitSettings>;
  /** replaces the given keys of a namespace's settings (checked by checkSettings first); returns the limits in force */
  set(namespace: string, settings: LimitSettings): Promise<Limits>;
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
