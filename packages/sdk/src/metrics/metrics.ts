import { collectDefaultMetrics, Registry } from 'prom-client';
import { CallStats, type Series } from './calls.js';
import { z } from 'zod';
import { isMicroError } from '../errors/errors.js';
import type { HandlerMiddleware } from '../service/router.js';

/** Every service answers this endpoint (like Debug.Health): its metrics as JSON families. */
export const METRICS_ENDPOINT = 'Debug.Metrics';

/** One sample: `metricName` is set for the series of histograms (`_bucket`, `_sum`, `_count`). */
export interface MetricSample {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

/** A metric family as prom-client's getMetricsAsJSON gives it, and as Debug.Metrics answers. */
export interface MetricFamily {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  values: MetricSample[];
}

export const metricFamilySchema = z.object({
  name: z.string(),
  help: z.string(),
  type: z.enum(['counter', 'gauge', 'histogram', 'summary', 'untyped']),
  // label values are strings (prom-client gives `le` as a number: snapshot() turns it into text)
  values: z.array(z.object({ value: z.number(), labels: z.record(z.string(), z.string()), metricName: z.string().optional() })),
});
export const metricsResponseSchema = z.object({ metrics: z.array(metricFamilySchema) });

/** Seconds: from 1 ms to 10 s, the range of an RPC call. */
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * The metrics of one service instance: `micro_calls_total{service,endpoint,code}` and
 * `micro_call_duration_seconds{service,endpoint}`, counted by the router around every
 * call (`observe`, with plain numbers: see calls.ts), plus the figures of the process
 * (memory, CPU, event loop, GC) shared by every service of it.
 */
export class ServiceMetrics {
  private readonly stats = new CallStats(
    {
      calls: 'micro_calls_total',
      callsHelp: 'Calls served, by endpoint and result code',
      duration: 'micro_call_duration_seconds',
      durationHelp: 'Time to serve a call (to the first response of a stream)',
    },
    ['service', 'endpoint'],
    BUCKETS,
  );
  private readonly byEndpoint = new Map<string, Series>();

  constructor(readonly service: string) {}

  /** Counts one call of `endpoint` that ended with `code` after `seconds`. */
  observe(endpoint: string, code: number, seconds: number): void {
    let s = this.byEndpoint.get(endpoint);
    if (!s) {
      s = this.stats.seriesOf([this.service, endpoint]);
      this.byEndpoint.set(endpoint, s);
    }
    s.observe(code, seconds);
  }

  /**
   * Server middleware counting every call that reaches it, for routers of your own; a
   * Service counts its calls in its router (cheaper: no promise per call).
   */
  middleware(): HandlerMiddleware {
    return (ctx, request, next) => {
      const started = performance.now();
      return next(request).then(
        (out) => {
          this.observe(ctx.endpoint, 200, (performance.now() - started) / 1000);
          return out;
        },
        (err: unknown) => {
          this.observe(ctx.endpoint, isMicroError(err) ? err.code : 500, (performance.now() - started) / 1000);
          throw err;
        },
      );
    };
  }

  /** This service's families and the process's, for Debug.Metrics. */
  async snapshot(): Promise<MetricFamily[]> {
    return [...this.stats.families(), ...(await processFamilies())].map(textLabels);
  }
}

let processRegistry: Registry | undefined;

/**
 * prom-client's default process and Node.js metrics, collected from the first scrape on
 * (a service never scraped pays nothing for them). Gauges named `…_total` are left out:
 * Prometheus reserves that suffix for counters (`promtool check metrics` rejects them).
 */
async function processFamilies(): Promise<MetricFamily[]> {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  const all = (await processRegistry.getMetricsAsJSON()) as unknown as MetricFamily[];
  return all.filter((m) => m.type === 'counter' || !m.name.endsWith('_total'));
}

/** The family with every label value as text (the wire schema's labels are strings). */
function textLabels(f: MetricFamily): MetricFamily {
  return { ...f, values: f.values.map((v) => ({ ...v, labels: Object.fromEntries(Object.entries(v.labels).map(([k, x]) => [k, String(x)])) })) };
}
