import { useEffect, useState } from 'preact/hooks';
import { call } from './api';
import { bytes, ms, Problem, Section, usePoll } from './ui';

interface StatsEndpoint {
  service: string;
  endpoint: string;
  calls: number;
  errors: number;
  meanMs: number;
  instances: number;
}
interface StatsInstance {
  service: string;
  instance: string;
  memoryBytes?: number;
  restarts?: number;
  state?: string;
}
interface Stats {
  namespace: string;
  endpoints: StatsEndpoint[];
  gateway: StatsEndpoint[];
  instances: StatsInstance[];
  groups: unknown[];
  unreachable: string[];
  dropped: number;
}
interface Sample {
  t: number;
  stats: Stats;
}

const EVERY_MS = 2_000;
/** Samples kept: 5 minutes at one every 2 s. */
const KEEP = 150;

type Point = { t: number; v: number | null };
interface Series {
  calls: Point[];
  errors: Point[];
  latency: Point[];
}

const keyOf = (e: StatsEndpoint) => `${e.service}.${e.endpoint}`;

/**
 * Rates between polls: calls/s and errors/s from the deltas of the counters, and the mean
 * latency of the calls made in between (from the change of calls × mean). A counter that
 * went down (an instance restarted) leaves a gap.
 */
function seriesOf(history: Sample[], pick: (s: Stats) => StatsEndpoint[]): Map<string, Series> {
  const out = new Map<string, Series>();
  for (let i = 1; i < history.length; i++) {
    const a = history[i - 1] as Sample;
    const b = history[i] as Sample;
    const dt = (b.t - a.t) / 1000;
    const before = new Map(pick(a.stats).map((e) => [keyOf(e), e]));
    for (const e of pick(b.stats)) {
      const key = keyOf(e);
      let s = out.get(key);
      if (!s) out.set(key, (s = { calls: [], errors: [], latency: [] }));
      const p = before.get(key) ?? { calls: 0, errors: 0, meanMs: 0 };
      const dc = e.calls - p.calls;
      const de = e.errors - p.errors;
      const ok = dc >= 0 && de >= 0 && dt > 0;
      s.calls.push({ t: b.t, v: ok ? dc / dt : null });
      s.errors.push({ t: b.t, v: ok ? de / dt : null });
      s.latency.push({ t: b.t, v: ok && dc > 0 ? Math.max(0, (e.meanMs * e.calls - p.meanMs * p.calls) / dc) : null });
    }
  }
  return out;
}

/** stats.Read every 2 s while the page is open, drawn as small charts per endpoint. */
export function Metrics() {
  const [history, setHistory] = useState<Sample[]>([]);
  const read = usePoll(() => call<Stats>('stats', 'Read', {}), EVERY_MS);
  // each new read joins the history (the last KEEP of them)
  useEffect(() => {
    const { value: stats, at } = read;
    if (stats && at !== undefined) setHistory((h) => [...h.slice(Math.max(0, h.length - KEEP + 1)), { t: at, stats }]);
  }, [read.at]);
  const error = read.error;
  const last = history[history.length - 1]?.stats;
  const from = history[0]?.t ?? 0;
  const to = history[history.length - 1]?.t ?? 0;
  return (
    <>
      <Section title="Metrics">
        <Problem error={error} />
        <p class="muted">
          Read from stats.Read every {EVERY_MS / 1000} s. The history starts when this page opens and keeps the last {(KEEP * EVERY_MS) / 60_000} minutes in this tab
          only; Prometheus scraping GET /metrics keeps the real history. Rates are the change between two reads; the totals count since each process started.
          {last?.unreachable.length ? ` Not answering: ${last.unreachable.join(', ')}.` : ''}
        </p>
        {!last && !error ? <p>Loading…</p> : null}
        {last ? (
          <p class="muted" aria-label="samples">
            Namespace {last.namespace}: {history.length} reads over {Math.round((to - from) / 1000)} s.
          </p>
        ) : null}
      </Section>
      {last ? (
        <>
          <Endpoints title="Service endpoints" label="services" history={history} pick={(s) => s.endpoints} from={from} to={to} />
          <Endpoints title="Gateway" label="gateway" history={history} pick={(s) => s.gateway} from={from} to={to} />
          <Instances history={history} from={from} to={to} />
        </>
      ) : null}
    </>
  );
}

function Endpoints({ title, label, history, pick, from, to }: { title: string; label: string; history: Sample[]; pick: (s: Stats) => StatsEndpoint[]; from: number; to: number }) {
  const now = pick((history[history.length - 1] as Sample).stats);
  const series = seriesOf(history, pick);
  const rows = now.filter((e) => e.calls > 0).sort((a, b) => b.calls - a.calls || keyOf(a).localeCompare(keyOf(b)));
  const idle = now.length - rows.length;
  return (
    <Section title={title}>
      {rows.length === 0 ? <p class="muted">No calls yet.</p> : null}
      {rows.length > 0 ? (
        <table class="list metrics" aria-label={`${label} endpoints`}>
          <thead>
            <tr>
              <th>Endpoint</th>
              <th class="num">Calls</th>
              <th class="num">Errors</th>
              <th class="num">Mean</th>
              <th>Calls/s</th>
              <th>Errors/s</th>
              <th>Latency (mean per interval)</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((e) => {
              const key = keyOf(e);
              const s = series.get(key) ?? { calls: [], errors: [], latency: [] };
              return (
                <tr key={key} data-endpoint={key}>
                  <td>
                    {key}
                    {e.instances > 1 ? <div class="muted">{e.instances} instances</div> : null}
                  </td>
                  <td class="num">{e.calls.toLocaleString('en')}</td>
                  <td class="num">{e.errors > 0 ? <span class="state state-error">{e.errors.toLocaleString('en')}</span> : 0}</td>
                  <td class="num">{ms(e.meanMs)}</td>
                  <td>
                    <Chart name={`calls/s ${key}`} kind="calls" points={s.calls} from={from} to={to} format={rate} />
                  </td>
                  <td>
                    <Chart name={`errors/s ${key}`} kind="errors" points={s.errors} from={from} to={to} format={rate} />
                  </td>
                  <td>
                    <Chart name={`latency ${key}`} kind="latency" points={s.latency} from={from} to={to} format={ms} />
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      ) : null}
      {idle > 0 ? <p class="muted">{idle} endpoints without calls are not shown.</p> : null}
    </Section>
  );
}

function Instances({ history, from, to }: { history: Sample[]; from: number; to: number }) {
  const now = (history[history.length - 1] as Sample).stats.instances;
  const memory = new Map<string, Point[]>();
  for (const h of history)
    for (const i of h.stats.instances) {
      const key = `${i.service}/${i.instance}`;
      let list = memory.get(key);
      if (!list) memory.set(key, (list = []));
      list.push({ t: h.t, v: i.memoryBytes ?? null });
    }
  const rows = [...now].sort((a, b) => a.service.localeCompare(b.service) || a.instance.localeCompare(b.instance));
  return (
    <Section title="Instances">
      {rows.length === 0 ? <p class="muted">No instances report metrics.</p> : null}
      {rows.length > 0 ? (
        <table class="list metrics" aria-label="instances">
          <thead>
            <tr>
              <th>Service</th>
              <th>Instance</th>
              <th>State</th>
              <th class="num">Restarts</th>
              <th class="num">Memory</th>
              <th>Memory over time</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((i) => {
              const key = `${i.service}/${i.instance}`;
              return (
                <tr key={key}>
                  <td>{i.service}</td>
                  <td class="mono muted">{i.instance}</td>
                  <td>{i.state ? <span class={`state state-${i.state}`}>{i.state}</span> : '—'}</td>
                  <td class="num">{i.restarts ?? '—'}</td>
                  <td class="num">{bytes(i.memoryBytes)}</td>
                  <td>{i.memoryBytes !== undefined ? <Chart name={`memory ${key}`} kind="memory" points={memory.get(key) ?? []} from={from} to={to} format={bytes} /> : null}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      ) : null}
    </Section>
  );
}

function rate(v: number): string {
  return v === 0 ? '0' : v >= 10 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(2);
}

const W = 110;
const H = 32;

/** A small line chart: time across (from the first read to the last), 0 to the highest value up. */
function Chart({ name, kind, points, from, to, format }: { name: string; kind: string; points: Point[]; from: number; to: number; format: (v: number) => string }) {
  const values = points.map((p) => p.v).filter((v): v is number => v !== null);
  const max = Math.max(0, ...values);
  const lastValue = [...points].reverse().find((p) => p.v !== null)?.v ?? null;
  const x = (t: number) => (to > from ? ((t - from) / (to - from)) * W : W);
  const y = (v: number) => (max > 0 ? H - 2 - (v / max) * (H - 4) : H - 2);
  // one polyline per run of points without a gap
  const runs: string[] = [];
  let run: string[] = [];
  for (const p of points) {
    if (p.v === null) {
      if (run.length) runs.push(run.join(' '));
      run = [];
    } else run.push(`${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`);
  }
  if (run.length) runs.push(run.join(' '));
  return (
    <div class="chart">
      <svg
        viewBox={`0 0 ${W} ${H}`}
        width={W}
        height={H}
        class={`chart-${kind}`}
        role="img"
        aria-label={`${name}: ${lastValue === null ? 'no value yet' : format(lastValue)}`}
        data-chart={name}
        data-last={lastValue === null ? '' : String(lastValue)}
      >
        <line class="chart-axis" x1="0" y1={H - 1.5} x2={W} y2={H - 1.5} />
        {runs.map((r, i) =>
          r.includes(' ') ? <polyline key={i} class="chart-line" points={r} /> : <circle key={i} class="chart-dot" cx={r.split(',')[0]} cy={r.split(',')[1]} r="1.8" />,
        )}
      </svg>
      <div class="chart-figures">
        <span>{lastValue === null ? '—' : format(lastValue)}</span>
        <span class="muted">max {format(max)}</span>
      </div>
    </div>
  );
}
