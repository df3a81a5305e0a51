import { CallStats, type MetricFamily, type Series } from '@micro/sdk';

/** Most endpoints with their own series; past it, calls are counted under endpoint `other`. */
const MAX_SERIES = 10_000;
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * The gateway's counters. The hot path pays three Map lookups and a few additions per
 * request: the series of each namespace/service/endpoint is made once and kept, and the
 * numbers become metric families only when /metrics is read (see CallStats: prom-client's
 * children were too dear for the gateway's hot path).
 */
export class GatewayMetrics {
  private readonly stats = new CallStats(
    {
      calls: 'micro_gateway_requests_total',
      callsHelp: 'Calls through the HTTP gateway, by endpoint and HTTP status',
      duration: 'micro_gateway_request_duration_seconds',
      durationHelp: 'Time from the request to the answer at the HTTP gateway',
    },
    ['namespace', 'service', 'endpoint'],
    BUCKETS,
    MAX_SERIES,
  );
  private readonly errors = new Map<number, number>();
  private readonly series = new Map<string, Map<string, Map<string, Series>>>();

  /** One call of a routed endpoint that ended with `code`, started at `started` (performance.now()). */
  observe(namespace: string, service: string, endpoint: string, code: number, started: number): void {
    let bySvc = this.series.get(namespace);
    if (!bySvc) this.series.set(namespace, (bySvc = new Map()));
    let byEp = bySvc.get(service);
    if (!byEp) bySvc.set(service, (byEp = new Map()));
    let s = byEp.get(endpoint);
    if (!s) byEp.set(endpoint, (s = this.stats.seriesOf([namespace, service, endpoint])));
    s.observe(code, (performance.now() - started) / 1000);
  }

  /** A request that failed with `code` (any path, before or after routing). */
  failed(code: number): void {
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }

  /** The gateway's families, as the collector serves them. */
  families(): MetricFamily[] {
    const errors: MetricFamily = {
      name: 'micro_gateway_errors_total',
      help: 'Failed HTTP requests at the gateway (any path, any namespace), by status',
      type: 'counter',
      values: [...this.errors].map(([code, n]) => ({ value: n, labels: { code: String(code) } })),
    };
    return [...this.stats.families(), errors];
  }
}
