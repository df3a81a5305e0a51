import type { MetricFamily, MetricSample } from './metrics.js';

/**
 * Calls counted on the hot path with plain numbers — a count per result code and a
 * latency histogram per series — and turned into metric families only when scraped.
 * prom-client's children hash their labels on every `inc`/`observe`: on a path that
 * serves millions of calls a second that was most of the cost of a call (in-process
 * calls fell from 3.2M/s to 0.5M/s with them), so prom-client is used here only for the
 * process figures, which are read at scrape time anyway.
 */
export class CallStats {
  private readonly series = new Map<string, Series>();

  /**
   * @param labelNames the labels of a series, in order (e.g. service, endpoint)
   * @param buckets upper bounds of the latency histogram, seconds, ascending
   * @param maxSeries past this many series, new ones are counted under `other`
   */
  constructor(
    private readonly names: { calls: string; callsHelp: string; duration: string; durationHelp: string },
    private readonly labelNames: readonly string[],
    private readonly buckets: readonly number[],
    private readonly maxSeries = 10_000,
  ) {}

  /** The series of these label values (made once; keep it and call `observe` on it). */
  seriesOf(values: readonly string[]): Series {
    const key = values.join('\u0000');
    let s = this.series.get(key);
    if (!s) {
      if (this.series.size >= this.maxSeries) return this.seriesOf(values.map((v, i) => (i === values.length - 1 ? 'other' : v)));
      s = new Series(values, this.buckets);
      this.series.set(key, s);
    }
    return s;
  }

  /** The two families, as Debug.Metrics and /metrics give them. */
  families(extra: Record<string, string> = {}): MetricFamily[] {
    const calls: MetricSample[] = [];
    const duration: MetricSample[] = [];
    for (const s of this.series.values()) {
      const labels: Record<string, string> = { ...extra };
      this.labelNames.forEach((n, i) => (labels[n] = s.values[i] as string));
      for (const [code, n] of s.codes) calls.push({ value: n, labels: { ...labels, code: String(code) } });
      let cumulative = 0;
      this.buckets.forEach((le, i) => {
        cumulative += s.counts[i] as number;
        duration.push({ value: cumulative, labels: { ...labels, le: String(le) }, metricName: `${this.names.duration}_bucket` });
      });
      duration.push({ value: s.count, labels: { ...labels, le: '+Inf' }, metricName: `${this.names.duration}_bucket` });
      duration.push({ value: s.sum, labels, metricName: `${this.names.duration}_sum` });
      duration.push({ value: s.count, labels, metricName: `${this.names.duration}_count` });
    }
    return [
      { name: this.names.calls, help: this.names.callsHelp, type: 'counter', values: calls },
      { name: this.names.duration, help: this.names.durationHelp, type: 'histogram', values: duration },
    ];
  }
}

/**
 * One series: counts by result code, and the latency histogram (per bucket, not
 * cumulative) of the calls that were timed — all but in-process ones (router.ts), so the
 * histogram's `_count` is below the calls counted when clients in the same process call.
 */
export class Series {
  readonly codes = new Map<number, number>();
  readonly counts: Float64Array;
  count = 0;
  sum = 0;

  constructor(
    readonly values: readonly string[],
    private readonly buckets: readonly number[],
  ) {
    this.counts = new Float64Array(buckets.length);
  }

  /** One call with its code and seconds; NaN seconds: counted but not timed (an in-process call). */
  observe(code: number, seconds: number): void {
    this.codes.set(code, (this.codes.get(code) ?? 0) + 1);
    if (Number.isNaN(seconds)) return;
    this.count++;
    this.sum += seconds;
    const b = this.buckets;
    for (let i = 0; i < b.length; i++) {
      if (seconds <= (b[i] as number)) {
        this.counts[i] = (this.counts[i] ?? 0) + 1;
        return;
      }
    }
  }
}
