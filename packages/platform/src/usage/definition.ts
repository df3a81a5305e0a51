import { defineService, endpoint, z } from '@micro/sdk';

/**
 * The usage service of the platform (namespace micro): what the gateway metered, read by
 * the payer's people and the platform's staff. Figures come from the same call records the
 * ledger's usage postings are made from, so they reconcile with the ledger to the unit.
 * A tenant reads its own namespace (`namespace` absent); admins of micro any.
 */

export const USAGE_LIMITS = { rows: 10_000, csvRows: 100_000, days: 366 };

const Period = z.string().regex(/^\d{4}-(0[1-9]|1[0-2])$/).describe('a billing period (UTC month) YYYY-MM; default the current one');
const Day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/).describe('a UTC day YYYY-MM-DD');
const Name = z.string().min(1).max(128);

const Filter = z
  .object({
    namespace: z.string().min(1).max(64).optional().describe("whose usage: default the caller's namespace; another needs admin of micro"),
    period: Period.optional(),
    from: Day.optional().describe('first day, inclusive (instead of period)'),
    to: Day.optional().describe('last day, inclusive (with from; at most 366 days)'),
    service: Name.optional(),
    endpoint: Name.optional(),
    key: z.string().min(1).max(64).optional().describe('only calls made with this API key id (mk_…)'),
    by: z.enum(['endpoint', 'day', 'key']).optional().describe('one row per endpoint (default), per endpoint and day, or per endpoint and key'),
  })
  .strict();

const Row = z.object({
  service: z.string(),
  endpoint: z.string(),
  day: z.string().optional().describe('by day'),
  key: z.string().optional().describe('by key: the API key id, "" for calls made with a token'),
  calls: z.number().int().describe('every metered call, whatever its outcome'),
  ok: z.number().int().describe('successful calls'),
  failed: z.number().int(),
  free: z.number().int().describe('successful calls within the free monthly quota'),
  charged: z.number().int().describe('units charged (10^-6 USD): what the ledger holds for these calls'),
});

const Quota = z.object({
  service: z.string(),
  endpoint: z.string(),
  price: z.number().int().describe('units per call beyond the free quota'),
  freeQuota: z.number().int(),
  used: z.number().int().describe('free calls used this period'),
  left: z.number().int(),
});

export const usageService = defineService({
  name: 'usage',
  version: '1.0.0',
  description: 'Metered calls of priced and quota-counted endpoints: calls, charges and free quota left',
  endpoints: {
    Read: endpoint({
      description: 'Calls, charges and quota left per API and endpoint (or per day, or per key) over a period or a range of days',
      idempotent: true,
      readonly: true,
      request: Filter,
      response: z.object({
        namespace: z.string(),
        payer: z.string(),
        from: Day,
        to: Day,
        rows: z.array(Row),
        totals: z.object({ calls: z.number().int(), ok: z.number().int(), failed: z.number().int(), free: z.number().int(), charged: z.number().int() }),
        quotas: z.array(Quota).describe("the free quotas of the current period, per endpoint the payer called"),
      }),
    }),
    Export: endpoint({
      description: `The calls themselves as CSV (one line a call, at most ${USAGE_LIMITS.csvRows})`,
      idempotent: true,
      readonly: true,
      request: Filter.omit({ by: true }),
      response: z.object({
        filename: z.string().describe('usage-<namespace>-<from>-<to>.csv'),
        csv: z.string().describe('header: request_id,at,namespace,account,key,service,endpoint,outcome,code,free,price,charged'),
        truncated: z.boolean().describe(`true when more than ${USAGE_LIMITS.csvRows} calls matched: narrow the filter`),
      }),
    }),
  },
});
