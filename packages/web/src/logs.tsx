import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { call, stream } from './api';
import { messageOf, Problem, Section, time, useLoad } from './ui';

/** What runtime.Logs sends, one line each. */
interface LogLine {
  time: string;
  instance: string;
  stream: 'stdout' | 'stderr' | 'runtime';
  line: string;
  service?: string;
  level?: string;
  traceId?: string;
}

/** The most lines the page keeps: older ones are dropped as new ones come. */
export const MAX_LINES = 1_000;
/** How many of the last lines to start with. */
const FIRST_LINES = 200;
const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;

interface Filter {
  name: string;
  level: string;
  traceId: string;
}

/**
 * runtime.Logs (micro logs -f) of a service, or of every service of the namespace: the
 * last lines, then new ones as they come, over server-sent events. Changing the filter or
 * leaving the page closes the stream.
 */
export function Logs() {
  const services = useLoad(() => call<{ services: { name: string; namespace: string }[] }>('runtime', 'Read', {}));
  const [filter, setFilter] = useState<Filter>({ name: '', level: '', traceId: '' });
  const [draftTrace, setDraftTrace] = useState('');
  const [lines, setLines] = useState<(LogLine & { n: number })[]>([]);
  const [state, setState] = useState<{ status: 'connecting' | 'following' | 'ended'; error?: string }>({ status: 'connecting' });
  const [attempt, setAttempt] = useState(0);
  const box = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);

  useEffect(() => {
    const abort = new AbortController();
    let pending: (LogLine & { n: number })[] = [];
    let timer: ReturnType<typeof setTimeout> | undefined;
    let n = 0;
    // lines come in bursts: render at most ten times a second
    const flush = () => {
      timer = undefined;
      const batch = pending;
      pending = [];
      setLines((old) => {
        const all = old.concat(batch);
        return all.length > MAX_LINES ? all.slice(all.length - MAX_LINES) : all;
      });
    };
    setLines([]);
    setState({ status: 'connecting' });
    const request: Record<string, unknown> = { lines: FIRST_LINES, follow: true };
    if (filter.name) request.name = filter.name;
    if (filter.level) request.level = filter.level;
    if (filter.traceId) request.traceId = filter.traceId;
    stream(
      'runtime',
      'Logs',
      request,
      (m) => {
        if (abort.signal.aborted) return;
        pending.push({ ...(m as LogLine), n: n++ });
        if (pending.length > MAX_LINES) pending = pending.slice(pending.length - MAX_LINES);
        timer ??= setTimeout(flush, 100);
      },
      { signal: abort.signal, onOpen: () => !abort.signal.aborted && setState({ status: 'following' }) },
    ).then(
      () => !abort.signal.aborted && setState({ status: 'ended' }),
      (err: unknown) => !abort.signal.aborted && setState({ status: 'ended', error: messageOf(err) }),
    );
    return () => {
      abort.abort();
      clearTimeout(timer);
    };
  }, [filter, attempt]);

  // stay at the newest line unless the reader scrolled up
  useLayoutEffect(() => {
    const el = box.current;
    if (el && atBottom.current) el.scrollTop = el.scrollHeight;
  }, [lines]);

  const names = [...new Set((services.value?.services ?? []).map((s) => s.name))].sort();
  const applyTrace = (e: Event) => {
    e.preventDefault();
    const traceId = draftTrace.trim().toLowerCase();
    if (traceId !== filter.traceId) setFilter({ ...filter, traceId });
  };
  return (
    <Section
      title="Logs"
      actions={
        <div class="row">
          <span class={`state state-${state.status}`} aria-label="stream state">
            {state.status === 'following' ? 'following' : state.status === 'connecting' ? 'connecting…' : 'stopped'}
          </span>
          {state.status === 'ended' ? <button onClick={() => setAttempt((x) => x + 1)}>Reconnect</button> : null}
          <button onClick={() => setLines([])}>Clear</button>
        </div>
      }
    >
      <form class="filters" onSubmit={applyTrace} aria-label="log filters">
        <label>
          Service
          <select name="service" value={filter.name} onChange={(e) => setFilter({ ...filter, name: e.currentTarget.value })}>
            <option value="">all services of the namespace</option>
            {names.map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
        <label>
          Level (and above)
          <select name="level" value={filter.level} onChange={(e) => setFilter({ ...filter, level: e.currentTarget.value })}>
            <option value="">any</option>
            {LEVELS.map((l) => (
              <option key={l} value={l}>
                {l}
              </option>
            ))}
          </select>
        </label>
        <label>
          Trace id
          <input name="traceId" placeholder="32 hex digits" value={draftTrace} onInput={(e) => setDraftTrace(e.currentTarget.value)} onBlur={applyTrace} />
        </label>
        <button type="submit">Apply</button>
      </form>
      <Problem error={services.error ?? state.error} />
      <p class="muted">
        The last {FIRST_LINES} lines, then new ones as they come. The page keeps the newest {MAX_LINES.toLocaleString('en')} lines; `micro logs` reads them all. Lines that are not JSON: stderr counts as error, runtime notes as warn.
      </p>
      <div
        class="log-box"
        ref={box}
        role="log"
        aria-label="log lines"
        onScroll={(e) => {
          const el = e.currentTarget;
          atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
        }}
      >
        {lines.length === 0 ? <div class="muted">{state.status === 'ended' ? 'No lines.' : 'No lines yet: waiting for some.'}</div> : null}
        {lines.map((l) => (
          <div key={l.n} class={`log-line level-${l.level ?? (l.stream === 'stderr' ? 'error' : l.stream === 'runtime' ? 'warn' : 'info')}`}>
            <span class="log-time">{time(l.time)}</span>
            <span class="log-source" title={l.instance}>
              {l.service ?? l.instance}
            </span>
            <span class="log-level">{l.level ?? l.stream}</span>
            <LineText line={l.line} />
            {l.traceId ? (
              <a class="log-trace" href={`#/traces/${l.traceId}`} title={`trace ${l.traceId}`}>
                trace
              </a>
            ) : null}
          </div>
        ))}
      </div>
      <p class="muted">{lines.length.toLocaleString('en')} lines shown.</p>
    </Section>
  );
}

/** Fields of a JSON log line that the row already shows (or that say nothing here). */
const SHOWN = new Set(['level', 'time', 'pid', 'hostname', 'service', 'namespace', 'instance', 'node', 'traceId', 'msg']);

/** A JSON log line as its message and its other fields; any other line as it is. Text only, never markup. */
function LineText({ line }: { line: string }) {
  let fields: Record<string, unknown> | undefined;
  if (line.startsWith('{')) {
    try {
      const v = JSON.parse(line) as unknown;
      if (v && typeof v === 'object' && !Array.isArray(v) && typeof (v as { msg?: unknown }).msg === 'string') fields = v as Record<string, unknown>;
    } catch {
      // not JSON after all: shown as it is
    }
  }
  if (!fields) return <span class="log-text">{line}</span>;
  const rest = Object.entries(fields)
    .filter(([k]) => !SHOWN.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return (
    <span class="log-text" title={line}>
      {fields.msg as string}
      {rest ? <span class="log-fields"> {rest}</span> : null}
    </span>
  );
}
