import type { MetricFamily, MetricSample } from './metrics.js';

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]{0,199}$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]{0,99}$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const SUFFIXES: Record<string, string[]> = { histogram: ['_bucket', '_sum', '_count'], summary: ['', '_sum', '_count'] };

/** How much one instance may send: past these, its families or samples are dropped. */
export const SANITIZE_LIMITS = { families: 500, samplesPerFamily: 5_000, labelsPerSample: 20, labelValue: 256, help: 1_000 };

export interface Sanitized {
  families: MetricFamily[];
  /** families or samples left out because they were malformed or over the limits */
  dropped: number;
}

/**
 * Families from an untrusted instance, checked: valid names, known types, numeric values,
 * bounded sizes, and the labels in `override` (e.g. namespace, instance) set by the
 * collector — an instance cannot claim another namespace's label.
 */
export function sanitizeFamilies(input: unknown, override: Record<string, string>): Sanitized {
  const families: MetricFamily[] = [];
  let dropped = 0;
  if (!Array.isArray(input)) return { families, dropped: 1 };
  for (const raw of input.slice(0, SANITIZE_LIMITS.families)) {
    const f = raw as Partial<MetricFamily> | null;
    if (!f || typeof f.name !== 'string' || !METRIC_NAME.test(f.name) || typeof f.type !== 'string' || !TYPES.has(f.type) || !Array.isArray(f.values)) {
      dropped++;
      continue;
    }
    const help = typeof f.help === 'string' ? f.help.slice(0, SANITIZE_LIMITS.help) : '';
    const allowed = (SUFFIXES[f.type] ?? ['']).map((s) => f.name + s);
    const values: MetricSample[] = [];
    for (const v of f.values.slice(0, SANITIZE_LIMITS.samplesPerFamily) as unknown[]) {
      const s = v as Partial<MetricSample> | null;
      const metricName = s?.metricName ?? f.name;
      if (!s || typeof s.value !== 'number' || typeof metricName !== 'string' || !allowed.includes(metricName) || typeof s.labels !== 'object' || s.labels === null) {
        dropped++;
        continue;
      }
      const labels: Record<string, string> = {};
      let ok = true;
      const entries = Object.entries(s.labels);
      if (entries.length > SANITIZE_LIMITS.labelsPerSample) ok = false;
      for (const [k, val] of entries) {
        if (!LABEL_NAME.test(k) || k.startsWith('__') || (typeof val !== 'string' && typeof val !== 'number')) ok = false;
        else if (!(k in override)) labels[k] = String(val).slice(0, SANITIZE_LIMITS.labelValue);
      }
      if (!ok) {
        dropped++;
        continue;
      }
      values.push({ value: s.value, labels: { ...labels, ...override }, metricName });
    }
    dropped += Math.max(0, f.values.length - SANITIZE_LIMITS.samplesPerFamily);
    families.push({ name: f.name, help, type: f.type, values });
  }
  dropped += Math.max(0, input.length - SANITIZE_LIMITS.families);
  return { families, dropped };
}

/** Families of the same name (from several instances) as one: the first help and type win, samples of another type are dropped. */
export function mergeFamilies(lists: MetricFamily[][]): MetricFamily[] {
  const byName = new Map<string, MetricFamily>();
  for (const list of lists) {
    for (const f of list) {
      const have = byName.get(f.name);
      if (!have) byName.set(f.name, { ...f, values: [...f.values] });
      else if (have.type === f.type) have.values.push(...f.values);
    }
  }
  return [...byName.values()];
}

/** The Prometheus text exposition format (version 0.0.4) of the families. */
export function formatPrometheus(families: MetricFamily[]): string {
  const out: string[] = [];
  for (const f of families) {
    out.push(`# HELP ${f.name} ${escapeHelp(f.help || f.name)}`, `# TYPE ${f.name} ${f.type}`);
    const seen = new Set<string>();
    for (const s of f.values) {
      const keys = Object.keys(s.labels).sort();
      const labels = keys.length === 0 ? '' : `{${keys.map((k) => `${k}="${escapeLabel(String(s.labels[k]))}"`).join(',')}}`;
      const line = `${s.metricName ?? f.name}${labels}`;
      // two instances reporting the same series would make the text invalid: the first wins
      if (seen.has(line)) continue;
      seen.add(line);
      out.push(`${line} ${formatValue(s.value)}`);
    }
  }
  return out.join('\n') + '\n';
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function escapeHelp(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function escapeLabel(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}
