/**
 * A small hand-written SVG chart of the gateway-concurrency benchmark: requests/s and
 * p99 latency against the number of connections (log scale), both sides, the median of
 * the rounds with a bar from the smallest to the largest round. No dependency: the SVG
 * is written as text.
 */
import { writeFileSync } from 'node:fs';
import { NOISY, type BenchmarkResult, type MachineInfo } from './harness.js';

interface Series {
  name: string;
  color: string;
  /** [x, median, min, max] */
  points: Array<[number, number, number, number]>;
}

interface Panel {
  title: string;
  yLabel: string;
  logY: boolean;
  series: Series[];
}

const W = 1000;
const H = 545;
const PANEL_W = 400;
const PANEL_H = 330;
const TOP = 110;
const LEFTS = [90, 580];
const FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function niceStep(range: number, count: number): number {
  const raw = range / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
}

function fmtTick(v: number): string {
  if (v >= 1000) return `${Number((v / 1000).toFixed(v % 1000 === 0 ? 0 : 1))}k`;
  if (v >= 1) return String(Number(v.toFixed(1)));
  return String(Number(v.toPrecision(2)));
}

function panel(p: Panel, left: number, xs: number[]): string {
  const out: string[] = [];
  const x0 = Math.log10(Math.min(...xs));
  const x1 = Math.log10(Math.max(...xs));
  const padX = (x1 - x0) * 0.05;
  const sx = (x: number) => left + ((Math.log10(x) - (x0 - padX)) / (x1 - x0 + 2 * padX)) * PANEL_W;
  const values = p.series.flatMap((s) => s.points.flatMap(([, m, lo, hi]) => [m, lo, hi])).filter((v) => Number.isFinite(v) && v > 0);
  let ticks: number[];
  let sy: (v: number) => number;
  if (p.logY) {
    const lo = Math.floor(Math.log10(Math.min(...values)));
    const hi = Math.ceil(Math.log10(Math.max(...values)));
    ticks = [];
    for (let e = lo; e <= hi; e++) for (const m of [1, 2, 5]) if (m * 10 ** e <= 10 ** hi) ticks.push(m * 10 ** e);
    sy = (v: number) => TOP + PANEL_H - ((Math.log10(v) - lo) / Math.max(hi - lo, 1)) * PANEL_H;
  } else {
    const max = Math.max(...values) * 1.08;
    const step = niceStep(max, 6);
    const top = Math.ceil(max / step) * step;
    ticks = [];
    for (let v = 0; v <= top + step / 2; v += step) ticks.push(v);
    sy = (v: number) => TOP + PANEL_H - (v / top) * PANEL_H;
  }
  out.push(`<rect x="${left}" y="${TOP}" width="${PANEL_W}" height="${PANEL_H}" fill="#fff" stroke="#999"/>`);
  out.push(`<text x="${left + PANEL_W / 2}" y="${TOP - 12}" text-anchor="middle" font-size="15" font-weight="bold" ${FONT}>${esc(p.title)}</text>`);
  for (const t of ticks) {
    const y = sy(t);
    out.push(`<line x1="${left}" x2="${left + PANEL_W}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${left - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end" font-size="12" ${FONT}>${fmtTick(t)}</text>`);
  }
  for (const x of xs) {
    const px = sx(x);
    out.push(`<line x1="${px.toFixed(1)}" x2="${px.toFixed(1)}" y1="${TOP}" y2="${TOP + PANEL_H}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${px.toFixed(1)}" y="${TOP + PANEL_H + 18}" text-anchor="middle" font-size="12" ${FONT}>${x}</text>`);
  }
  out.push(`<text x="${left + PANEL_W / 2}" y="${TOP + PANEL_H + 40}" text-anchor="middle" font-size="13" ${FONT}>keep-alive connections (log scale)</text>`);
  const cy = TOP + PANEL_H / 2;
  out.push(`<text x="${left - 62}" y="${cy}" text-anchor="middle" font-size="13" transform="rotate(-90 ${left - 62} ${cy})" ${FONT}>${esc(p.yLabel)}</text>`);
  p.series.forEach((s, i) => {
    const pts = s.points.filter(([, m]) => Number.isFinite(m) && m > 0);
    // each side's min–max bar a little to its own side of the point, so that both show
    const dx = (i - (p.series.length - 1) / 2) * 6;
    for (const [x, , lo, hi] of pts) {
      if (!Number.isFinite(lo) || !Number.isFinite(hi) || lo <= 0) continue;
      const px = sx(x) + dx;
      const [y0, y1] = [sy(lo).toFixed(1), sy(hi).toFixed(1)];
      out.push(`<line x1="${px.toFixed(1)}" x2="${px.toFixed(1)}" y1="${y0}" y2="${y1}" stroke="${s.color}" stroke-width="1.5" opacity="0.7"/>`);
      for (const y of [y0, y1]) out.push(`<line x1="${(px - 3).toFixed(1)}" x2="${(px + 3).toFixed(1)}" y1="${y}" y2="${y}" stroke="${s.color}" stroke-width="1.5" opacity="0.7"/>`);
    }
    out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2.5" points="${pts.map(([x, m]) => `${sx(x).toFixed(1)},${sy(m).toFixed(1)}`).join(' ')}"/>`);
    for (const [x, m] of pts) out.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(m).toFixed(1)}" r="4" fill="${s.color}"/>`);
  });
  return out.join('\n');
}

/**
 * Writes the chart of a gateway-concurrency result to `file`. Figure ids are
 * `<benchmark>.c<connections>.rps` and `.p99` (µs; drawn in ms).
 */
export function writeConcurrencyPlot(result: BenchmarkResult, options: { machine: MachineInfo; date: Date; microName: string; file: string; rounds: number }): void {
  const levels = new Map<number, { rps?: BenchmarkResult['figures'][number]; p99?: BenchmarkResult['figures'][number] }>();
  for (const f of result.figures) {
    const m = /\.c(\d+)\.(rps|p99)$/.exec(f.id);
    if (!m) continue;
    const level = Number(m[1]);
    const entry = levels.get(level) ?? {};
    entry[m[2] as 'rps' | 'p99'] = f;
    levels.set(level, entry);
  }
  const xs = [...levels.keys()].sort((a, b) => a - b);
  if (xs.length === 0) throw new Error(`${result.name} has no per-level figures to plot`);
  const peer = result.peerName ?? 'peer';
  const colors = { micro: '#1f6fd1', peer: '#e07b00' };
  const series = (what: 'rps' | 'p99', scale: number): Series[] =>
    (['micro', 'peer'] as const).map((side) => ({
      name: side === 'micro' ? options.microName : peer,
      color: colors[side],
      points: xs.map((x): [number, number, number, number] => {
        const s = levels.get(x)?.[what]?.[side];
        return s ? [x, s.median / scale, s.min / scale, s.max / scale] : [x, NaN, NaN, NaN];
      }),
    }));
  const { machine, date } = options;
  const title = `${options.microName} gateway vs ${peer}: throughput and p99 latency by concurrency`;
  const subtitle = `${machine.cpuCount} x ${machine.cpuModel}, ${machine.memoryGiB} GiB, Node.js ${machine.node}, ${machine.os} — ${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
  const busy = result.otherLoad && result.otherLoad.max >= NOISY ? ` — NOISY: other processes used up to ${result.otherLoad.max.toFixed(2)} CPUs` : '';
  const note = `POST /v1/greeter/Hello, one request in flight per connection; median of ${options.rounds} round${options.rounds === 1 ? '' : 's'}, bars from min to max${busy}`;
  const legendY = TOP + PANEL_H + 68;
  const legend = series('rps', 1)
    .map((s, i) => {
      const x = W / 2 - 230 + i * 260;
      return `<line x1="${x}" x2="${x + 30}" y1="${legendY}" y2="${legendY}" stroke="${s.color}" stroke-width="3"/><circle cx="${x + 15}" cy="${legendY}" r="4" fill="${s.color}"/><text x="${x + 38}" y="${legendY + 5}" font-size="14" ${FONT}>${esc(s.name)}</text>`;
    })
    .join('\n');
  const svg = `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">
<rect width="${W}" height="${H}" fill="#fafafa"/>
<text x="${W / 2}" y="30" text-anchor="middle" font-size="18" font-weight="bold" ${FONT}>${esc(title)}</text>
<text x="${W / 2}" y="52" text-anchor="middle" font-size="12" fill="#444" ${FONT}>${esc(subtitle)}</text>
<text x="${W / 2}" y="70" text-anchor="middle" font-size="12" fill="${busy ? '#b00' : '#444'}" ${FONT}>${esc(note)}</text>
${panel({ title: 'Throughput (higher is better)', yLabel: 'requests/s', logY: false, series: series('rps', 1) }, LEFTS[0] as number, xs)}
${panel({ title: 'p99 latency (lower is better)', yLabel: 'p99 latency, ms (log scale)', logY: true, series: series('p99', 1000) }, LEFTS[1] as number, xs)}
${legend}
</svg>
`;
  writeFileSync(options.file, svg);
}
