import type { Command } from 'commander';
import { createClient, traceService, type SpanRecord, type TraceSummary } from '@micro/sdk';
import { connect } from '../connect.js';
import type { CliContext } from '../context.js';
import { UsageError, type Printer } from '../output.js';

/**
 * `micro trace <id>`: the spans of one trace as a tree, with each span's duration and
 * its start after the trace's first span (trace.Read). Without an id: the recent traces
 * of the namespace (trace.List).
 *
 *   micro trace [id] [--limit N] [--namespace N] [-o json]
 */
export function registerTraceCommand(program: Command, ctx: CliContext): void {
  program
    .command('trace [id]')
    .description('the spans of a trace as a tree with timings; without an id, the recent traces')
    .option('--limit <n>', 'recent traces to list (default 20, at most 1000)')
    .option('--namespace <namespace>', "another namespace than the account's (admins)")
    .option('-o, --output <format>', 'text or json')
    .action(async (id: string | undefined, opts: { limit?: string; namespace?: string; output?: string }) => {
      const out = ctx.printer(opts.output);
      if (id !== undefined && !/^[0-9a-f]{32}$/.test(id)) throw new UsageError(`a trace id is 32 lower-case hex digits, not "${printable(id).slice(0, 80)}"`);
      const limit = opts.limit === undefined ? 20 : Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageError(`--limit must be a whole number from 1 to 1000, not "${printable(String(opts.limit))}"`);
      const conn = connect(ctx.home, opts.namespace);
      const api = createClient(traceService, conn.platform);
      const fail = (err: unknown) => {
        throw conn.explain(err, 'trace');
      };
      if (id === undefined) {
        const list = await api.List({ limit, namespace: opts.namespace }).catch(fail);
        if (out.json) return out.value(list);
        printTraceList(out, list.traces, list.dropped);
        return;
      }
      const trace = await api.Read({ traceId: id, namespace: opts.namespace }).catch(fail);
      if (out.json) return out.value(trace);
      for (const line of traceTree(trace.spans)) out.line(line);
    });
}

export function printTraceList(out: Printer, traces: readonly TraceSummary[], dropped: number): void {
  if (traces.length === 0) out.info('no traces kept in this namespace yet');
  else {
    out.table(
      ['TRACE', 'STARTED', 'ROOT', 'SERVICE', 'SPANS', 'ERRORS', 'MS'],
      traces.map((t) => [t.traceId, new Date(t.start).toISOString(), printable(t.name), printable(t.service), String(t.spans), String(t.errors), t.duration.toFixed(2)]),
      traces,
    );
  }
  if (dropped > 0) out.warn(`${dropped} older traces were dropped (the server keeps the most recent per namespace)`);
}

/**
 * The lines of the tree: roots are spans whose parent is not in the trace (the caller did
 * not trace, or its spans were dropped); children by start time. Every span is printed
 * once, even when hostile parent ids make a cycle.
 */
export function traceTree(spans: readonly SpanRecord[]): string[] {
  if (spans.length === 0) return [];
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const children = new Map<string, SpanRecord[]>();
  const roots: SpanRecord[] = [];
  for (const s of spans) {
    if (s.parentSpanId && byId.has(s.parentSpanId) && s.parentSpanId !== s.spanId) {
      let c = children.get(s.parentSpanId);
      if (!c) children.set(s.parentSpanId, (c = []));
      c.push(s);
    } else roots.push(s);
  }
  const byStart = (a: SpanRecord, b: SpanRecord) => a.start - b.start;
  const t0 = Math.min(...spans.map((s) => s.start));
  const end = Math.max(...spans.map((s) => s.start + s.duration));
  const errors = spans.filter((s) => s.status === 'error').length;
  const lines = [`trace ${spans[0]?.traceId}  ${spans.length} span${spans.length === 1 ? '' : 's'}  ${ms(end - t0)}${errors ? `  ${errors} failed` : ''}`];
  const seen = new Set<string>();
  const walk = (s: SpanRecord, prefix: string, last: boolean, top: boolean) => {
    if (seen.has(s.spanId)) return;
    seen.add(s.spanId);
    const branch = top ? '' : last ? '└─ ' : '├─ ';
    const failed = s.status === 'error' ? `  ✗ ${printable(s.error ?? 'failed').slice(0, 200)}` : '';
    lines.push(`${prefix}${branch}${printable(s.name)} [${s.kind}] ${printable(s.service)}  ${ms(s.duration)}  +${ms(s.start - t0)}${failed}`);
    const kids = (children.get(s.spanId) ?? []).sort(byStart);
    const next = top ? prefix : prefix + (last ? '   ' : '│  ');
    kids.forEach((k, i) => walk(k, next, i === kids.length - 1, false));
  };
  for (const r of roots.sort(byStart)) walk(r, '', true, true);
  // spans only reachable through a cycle of parent ids
  for (const s of [...spans].sort(byStart)) walk(s, '', true, true);
  return lines;
}

function ms(value: number): string {
  return `${value.toFixed(2)} ms`;
}

/** Names come from services: control characters would rewrite the terminal. */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}
