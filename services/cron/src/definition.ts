import { defineService, endpoint, z } from '@micro/sdk';
import { jsonObject, m3oRequest, recordId, text } from '@micro/services-kit';

/** A job exactly as M3O's cron API answers it (what we keep besides is answered by Runs). */
export const Job = z.object({ callback: z.string(), description: z.string(), id: z.string(), interval: z.string(), name: z.string() });

/** One run of a job: which tick, how it went. */
export const Run = z.object({
  tick: z.string().describe('RFC 3339: the tick the run was for'),
  started: z.string().describe('RFC 3339'),
  duration: z.number().describe('ms the call took'),
  status: z.enum(['ok', 'error']),
  code: z.number().describe('200, or the error code of the call (404: no such service or endpoint in your namespace)'),
  error: z.string().describe('the error the call answered ("" when ok)'),
});

const jobId = recordId().optional();

/**
 * The cron service, as M3O's cron API: jobs that call an endpoint of the caller's own
 * namespace on a schedule, once per tick across every node of micro server.
 */
export const cronDef = defineService({
  name: 'cron',
  version: '1.0.0',
  description: "Scheduled calls of your own services' endpoints: cron expressions or @every intervals, at most once a minute, once per tick across every node",
  public: true,
  endpoints: {
    Schedule: endpoint({
      description: 'Schedules a job (a new one, or with `id` replaces that job): `callback` (greeter.Call or /v1/greeter/Call, a service of your namespace), `interval` (a cron expression in UTC or @every 5m), optional `request` body',
      request: m3oRequest({
        id: jobId,
        name: text(128).default(''),
        description: text(1024).default(''),
        callback: z.string().max(300).default(''),
        interval: z.string().max(300).default(''),
        request: jsonObject().optional(),
      }),
      response: z.object({ job: Job }),
      price: 1_000,
      freeQuota: 100,
    }),
    Jobs: endpoint({
      description: 'Your jobs, oldest first',
      request: z.object({}).passthrough(),
      response: z.object({ jobs: z.array(Job) }),
      idempotent: true,
      readonly: true,
      price: 10,
      freeQuota: 10_000,
    }),
    Delete: endpoint({
      description: 'Deletes a job: no tick of it runs once this answers',
      request: m3oRequest({ id: jobId }),
      response: z.object({}),
      price: 10,
      freeQuota: 10_000,
    }),
    Runs: endpoint({
      description: 'What a job does and did: the body it sends, its next tick, when it was made and changed, its last runs newest first (10 are kept)',
      request: m3oRequest({ id: jobId }),
      response: z.object({
        job: Job,
        request: z.record(z.string(), z.unknown()).describe('the JSON body the callback is called with'),
        next: z.string().describe('RFC 3339: the next tick ("" when it never fires again)'),
        created: z.string().describe('RFC 3339'),
        updated: z.string().describe('RFC 3339'),
        runs: z.array(Run),
      }),
      idempotent: true,
      readonly: true,
      price: 10,
      freeQuota: 10_000,
    }),
  },
});
