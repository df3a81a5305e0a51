import { Fragment } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { call, CallError } from './api';
import { messageOf, ms, Problem, Section, time, usePoll } from './ui';

interface TraceSummary {
  traceId: string;
  name: string;
  service: string;
  start: number;
  duration: number;
  spans: number;
  errors: number;
}
interface Span {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: string;
  service: string;
  start: number;
  duration: number;
  status: 'ok' | 'error' | 'unset';
  error?: string;
  attributes?: Record<string, string | number | boolean>;
}

const TRACE_ID = /^[0-9a-f]{32}$/;
const LIST = 100;

/** trace.List (the newest traces) and, at #/traces/<id>, trace.Read as a waterfall. */
export function Traces({ sub }: { sub: string }) {
  const [draft, setDraft] = useState(sub);
  const [bad, setBad] = useState<string>();
  useEffect(() => setDraft(sub), [sub]);
  const open = (e: Event) => {
    e.preventDefault();
    const id = draft.trim().toLowerCase();
    if (!TRACE_ID.test(id)) return setBad('a trace id is 32 hex digits (as in the traceresponse header or a log line)');
    setBad(undefined);
    location.hash = `#/traces/${id}`;
  };
  return (
    <>
      <form class="row trace-open" onSubmit={open} aria-label="open a trace">
        <input name="traceId" placeholder="trace id (32 hex digits)" value={draft} onInput={(e) => setDraft(e.currentTarget.value)} />
        <button type="submit">Open</button>
        {sub ? (
          <a class="nowrap" href="#/traces">
            All traces
          </a>
        ) : null}
      </form>
      <Problem error={bad} />
      {sub ? <Trace key={sub} traceId={sub} /> : <TraceList />}
    </>
  );
}

function TraceList() {
  const list = usePoll(() => call<{ traces: TraceSummary[]; dropped: number }>('trace', 'List', { limit: LIST }), 5_000);
  const traces = list.value?.traces ?? [];
  return (
    <Section title="Traces" actions={<button onClick={list.reload}>Refresh</button>}>
      <Problem error={list.error} />
      <p class="muted">
        The newest {LIST} traces of the namespace, newest first, refreshed every 5 s. The server keeps the recent traces in memory (1,000 per namespace by default
        {list.value?.dropped ? `; ${list.value.dropped.toLocaleString('en')} older ones dropped so far` : ''}); recorded when the server runs with MICRO_TRACING=on (every trace) or a share such as 0.1.
      </p>
      {list.value && traces.length === 0 ? <p class="muted">No traces yet: is the server started with MICRO_TRACING=on (or a share such as 0.1)?</p> : null}
      {traces.length > 0 ? (
        <table class="list">
          <thead>
            <tr>
              <th>Started</th>
              <th>Name</th>
              <th>Service</th>
              <th class="num">Duration</th>
              <th class="num">Spans</th>
              <th class="num">Errors</th>
              <th>Trace id</th>
            </tr>
          </thead>
          <tbody>
            {traces.map((t) => (
              <tr key={t.traceId} class={t.errors > 0 ? 'has-error' : ''}>
                <td class="nowrap">{time(t.start)}</td>
                <td>
                  <a href={`#/traces/${t.traceId}`}>{t.name}</a>
                </td>
                <td>{t.service}</td>
                <td class="num">{ms(t.duration)}</td>
                <td class="num">{t.spans}</td>
                <td class="num">{t.errors > 0 ? <span class="state state-error">{t.errors}</span> : 0}</td>
                <td class="mono muted">{t.traceId}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </Section>
  );
}

/** Spans in tree order (children under their parent, by start), with their depth. */
function tree(spans: Span[]): { span: Span; depth: number }[] {
  const ids = new Set(spans.map((s) => s.spanId));
  const children = new Map<string | undefined, Span[]>();
  for (const s of spans) {
    // a span whose parent is not here (another process's, not exported yet) is a root
    const parent = s.parentSpanId && ids.has(s.parentSpanId) ? s.parentSpanId : undefined;
    let list = children.get(parent);
    if (!list) children.set(parent, (list = []));
    list.push(s);
  }
  for (const list of children.values()) list.sort((a, b) => a.start - b.start);
  const out: { span: Span; depth: number }[] = [];
  const seen = new Set<string>();
  const walk = (parent: string | undefined, depth: number) => {
    for (const s of children.get(parent) ?? []) {
      if (seen.has(s.spanId)) continue;
      seen.add(s.spanId);
      out.push({ span: s, depth });
      walk(s.spanId, depth + 1);
    }
  };
  walk(undefined, 0);
  return out;
}

/** How long a trace is read again while spans may still come (services send them in batches). */
const FRESH_MS = 30_000;

function Trace({ traceId }: { traceId: string }) {
  const [state, setState] = useState<{ spans?: Span[]; error?: string; missing?: boolean; loading: boolean }>({ loading: true });
  const [selected, setSelected] = useState<string>();
  const [n, setN] = useState(0);
  useEffect(() => {
    if (!TRACE_ID.test(traceId)) {
      setState({ error: `"${traceId.slice(0, 80)}" is not a trace id: a trace id is 32 lower-case hex digits`, loading: false });
      return;
    }
    let live = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const opened = Date.now();
    const read = () => {
      call<{ traceId: string; spans: Span[] }>('trace', 'Read', { traceId }).then(
        (r) => {
          if (!live) return;
          setState({ spans: r.spans, loading: false });
          // spans of other services arrive in batches, a second or so later: read a young trace again
          const end = Math.max(...r.spans.map((s) => s.start + s.duration));
          if (Date.now() - end < FRESH_MS) timer = setTimeout(read, 2_000);
        },
        (err: unknown) => {
          if (!live) return;
          const missing = err instanceof CallError && err.error.code === 404;
          setState((s) => ({ ...s, error: missing ? undefined : messageOf(err), missing, loading: false }));
          // a trace linked from a fresh log line may not be recorded yet: look again for a while
          if (missing && Date.now() - opened < 15_000) timer = setTimeout(read, 2_000);
        },
      );
    };
    read();
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [traceId, n]);

  const spans = state.spans ?? [];
  const rows = tree(spans);
  const t0 = spans.length ? Math.min(...spans.map((s) => s.start)) : 0;
  const total = spans.length ? Math.max(...spans.map((s) => s.start + s.duration)) - t0 : 0;
  const pick = spans.find((s) => s.spanId === selected);
  const services = [...new Set(spans.map((s) => s.service))];
  return (
    <Section title={`Trace ${traceId}`} actions={<button onClick={() => setN((x) => x + 1)}>Refresh</button>}>
      <Problem error={state.error} />
      {state.missing && !state.spans ? (
        <p class="error" role="alert">
          No trace {traceId} in this namespace: it is unknown, was dropped as one of the oldest, or its spans are not recorded yet (services send them within a few
          seconds; the page keeps looking for 15 s).
        </p>
      ) : null}
      {state.loading && !state.spans ? <p>Loading…</p> : null}
      {spans.length > 0 ? (
        <>
          <p class="muted">
            {spans.length} spans, {services.length} services ({services.join(', ')}), {ms(total)} from {time(t0)}. Click a span for its attributes.
          </p>
          <div class="waterfall" role="tree" aria-label="waterfall">
            <div class="wf-head">
              <span>Span</span>
              <span>Service</span>
              <span class="num">Duration</span>
              <span class="wf-scale">
                <span>0</span>
                <span>{ms(total / 2)}</span>
                <span>{ms(total)}</span>
              </span>
            </div>
            {rows.map(({ span: s, depth }) => {
              const left = total > 0 ? ((s.start - t0) / total) * 100 : 0;
              const width = total > 0 ? Math.max((s.duration / total) * 100, 0.4) : 100;
              return (
                <Fragment key={s.spanId}>
                  <div
                    role="treeitem"
                    aria-level={depth + 1}
                    aria-selected={s.spanId === selected}
                    tabIndex={0}
                    data-service={s.service}
                    class={`wf-row${s.status === 'error' ? ' wf-error' : ''}${s.spanId === selected ? ' wf-selected' : ''}`}
                    onClick={() => setSelected(s.spanId === selected ? undefined : s.spanId)}
                    onKeyDown={(e) => {
                      if (e.key !== 'Enter' && e.key !== ' ') return;
                      e.preventDefault();
                      setSelected(s.spanId === selected ? undefined : s.spanId);
                    }}
                  >
                    <span class="wf-name" style={{ paddingLeft: `${depth * 1.1}rem` }} title={s.name}>
                      {s.status === 'error' ? <span class="state state-error">error</span> : null} {s.name} <span class="badge">{s.kind}</span>
                    </span>
                    <span class="wf-service">{s.service}</span>
                    <span class="num">{ms(s.duration)}</span>
                    <span class="wf-track">
                      <span class="wf-bar" style={{ left: `${Math.min(left, 99.6)}%`, width: `${Math.min(width, 100 - Math.min(left, 99.6))}%` }} />
                    </span>
                  </div>
                  {s.spanId === selected && pick ? <SpanDetail span={pick} t0={t0} /> : null}
                </Fragment>
              );
            })}
          </div>
        </>
      ) : null}
    </Section>
  );
}

function SpanDetail({ span, t0 }: { span: Span; t0: number }) {
  const attrs = Object.entries(span.attributes ?? {}).sort(([a], [b]) => a.localeCompare(b));
  return (
    <div class="detail span-detail" aria-label="span attributes">
      <table class="list">
        <tbody>
          <tr>
            <th>Span</th>
            <td class="mono">
              {span.spanId}
              {span.parentSpanId ? <span class="muted"> (parent {span.parentSpanId})</span> : null}
            </td>
          </tr>
          <tr>
            <th>Kind, status</th>
            <td>
              {span.kind}, {span.status}
            </td>
          </tr>
          <tr>
            <th>Start</th>
            <td>
              {time(span.start)} (+{ms(span.start - t0)}), {ms(span.duration)}
            </td>
          </tr>
          {span.error ? (
            <tr>
              <th>Error</th>
              <td class="error-text">{span.error}</td>
            </tr>
          ) : null}
          {attrs.map(([k, v]) => (
            <tr key={k}>
              <th class="mono">{k}</th>
              <td class="mono">{String(v)}</td>
            </tr>
          ))}
          {attrs.length === 0 ? (
            <tr>
              <td colSpan={2} class="muted">
                No attributes.
              </td>
            </tr>
          ) : null}
        </tbody>
      </table>
    </div>
  );
}
