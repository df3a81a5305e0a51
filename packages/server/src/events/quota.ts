import { EVENTS_LIMITS, type EventsQuota } from '@micro/sdk';
import type { CoreContext } from '../core.js';
import { quotaExceeded } from '../quota/limits.js';

/**
 * The eventsBytes and eventRetention quotas of a server's events engine: the limits read
 * from the quotas on every publish (no cache of them, so a Set applies to the next
 * publish on every node), the refusal the one 403 of every quota. Retention comes in
 * seconds and is given to the engines in ms, at most the longest retention a topic may
 * have (10 years). Undefined when the server has no quotas: engines built alone run
 * unchecked.
 */
export function eventsQuota(ctx: Pick<CoreContext, 'quotas'>): EventsQuota | undefined {
  const quotas = ctx.quotas;
  if (!quotas) return undefined;
  return {
    limits: async (namespace) => {
      const limits = await quotas.limits(namespace);
      return { bytes: limits.eventsBytes, maxAge: retentionMs(limits.eventRetention) };
    },
    refuse: (namespace, used, max) => quotaExceeded('eventsBytes', used, max, namespace),
  };
}

/** eventRetention (seconds, null for none) in ms, capped at the longest retention a topic may have. */
export function retentionMs(seconds: number | null): number | null {
  return seconds === null ? null : Math.min(seconds * 1000, EVENTS_LIMITS.maxAge);
}
