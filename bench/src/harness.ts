/**
 * The benchmark harness: every benchmark is a pair (Micro and a peer framework doing the
 * same work), measured in the same run, in alternating rounds, and reported as the median
 * of the rounds with their spread and the ratio ours/peer.
 *
 * A benchmark module exports a `Benchmark`: the figures it measures and a `setup` that
 * starts both contestants. The harness warms both up, runs the rounds (alternating which
 * side goes first, so drift of the machine hits both alike), closes both and aggregates.
 * Timings never fail the run: a missed target is only marked.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpus, totalmem, type as osType, release, arch } from 'node:os';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

// ---- what a benchmark declares -----------------------------------------------------

export interface FigureSpec {
  /** stable key in results/latest.json, e.g. `inprocess.sequential` */
  readonly id: string;
  /** what the row of the table says */
  readonly label: string;
  readonly unit: 'calls/s' | 'postings/s' | 'events/s' | 'µs' | 'ms' | 'MB';
  readonly better: 'higher' | 'lower';
  /**
   * The ratio ours/peer the figure must reach: at least `ratio` when higher is better,
   * at most `ratio` when lower is better. No target: the figure is informational.
   */
  readonly target?: number;
  /**
   * A value Micro's median must reach by itself, in the figure's unit (at least when
   * higher is better, at most when lower is), whatever the peer does: e.g. the ledger's
   * 10,000 postings/s. Met only when the ratio target (if any) is met too.
   */
  readonly floor?: number;
}

/** One side of a pair, ready to be measured. */
export interface Contestant {
  /** runs the work untimed until the JIT and the connections have settled */
  warmUp(): Promise<void>;
  /** one timed round: a value for every figure id of the benchmark */
  round(): Promise<Record<string, number>>;
  /** releases everything (connections, brokers, child processes) */
  close(): Promise<void>;
}

export interface Benchmark {
  /** the name used on the command line, e.g. `remote` */
  readonly name: string;
  readonly title: string;
  /** what the peer side is, when it is not the run's peer framework (e.g. the engine used directly) */
  readonly peerName?: string;
  readonly figures: readonly FigureSpec[];
  /**
   * The benchmark runs servers in child processes: the harness then pins this process
   * and the servers to CPUs (see `PinMode`) and passes the server's CPU to `setup`.
   */
  readonly usesChildren?: boolean;
  /** at most this many timed rounds, whatever `--rounds` says (for heavy benchmarks) */
  readonly rounds?: number;
  /** starts both contestants; the harness closes them, also after a failure */
  setup(env: BenchEnv): Promise<{ micro: Contestant; peer: Contestant }>;
}

/** Both sides of a benchmark started one after the other: micro's is closed again when the peer's fails to start. */
export async function bothSides(micro: () => Promise<Contestant>, peer: () => Promise<Contestant>): Promise<{ micro: Contestant; peer: Contestant }> {
  const m = await micro();
  try {
    return { micro: m, peer: await peer() };
  } catch (err) {
    await m.close().catch(() => undefined);
    throw err;
  }
}

/** What the harness tells a benchmark's setup. */
export interface BenchEnv {
  /** the CPU list to start child servers on (`taskset -c`), or undefined: anywhere */
  readonly serverCpus: string | undefined;
}

/**
 * Where the caller (this process) and the server processes run, for benchmarks with
 * child processes. Which CPU the kernel happens to give each process changes round-trip
 * times by 3x on small VMs (a wake-up on the same CPU is a context switch, on another an
 * inter-processor interrupt), so by default both are pinned:
 * - `split`: the caller on CPU 0, the servers on CPU 1 (one core each; the default)
 * - `shared`: both on CPU 0
 * - `off`: wherever the kernel puts them
 * Pinning needs Linux and `taskset`; without them the run is `off` and says so.
 */
export type PinMode = 'split' | 'shared' | 'off';

// ---- what the harness reports ----------------------------------------------------

export interface Stats {
  median: number;
  min: number;
  max: number;
  /** sample standard deviation, as a percentage of the mean */
  cv: number;
  samples: number[];
}

export interface FigureResult extends FigureSpec {
  micro: Stats;
  peer: Stats;
  /** median ours / median peer */
  ratio: number;
  /** undefined when the figure has no target */
  met: boolean | undefined;
}

export interface BenchmarkResult {
  name: string;
  title: string;
  /** set when the peer is not the run's peer framework */
  peerName?: string;
  seconds: number;
  /** timed rounds per side, when fewer than the run's (the benchmark's own `rounds`) */
  rounds?: number;
  /** for benchmarks with child processes: where caller and servers ran */
  placement?: { mode: PinMode; caller: string; servers: string };
  /**
   * CPU time other processes of the machine used during the timed rounds, in CPUs (1 =
   * one whole core busy): a sign that the figures are noisy. Linux only.
   */
  otherLoad?: { mean: number; max: number };
  figures: FigureResult[];
  /** set when the benchmark could not run; its figures are then missing */
  error?: string;
}

export interface MachineInfo {
  cpuModel: string;
  cpuCount: number;
  memoryGiB: number;
  node: string;
  os: string;
  arch: string;
}

export function machineInfo(): MachineInfo {
  const list = cpus();
  return {
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    cpuCount: list.length,
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    node: process.version,
    os: `${osType()} ${release()}`,
    arch: arch(),
  };
}

export interface HarnessOptions {
  /** timed rounds per side (default 5) */
  rounds: number;
  /** CPU placement of benchmarks with child processes (default split) */
  pin: PinMode;
  /**
   * Before each round, wait up to this many seconds for other processes of the machine
   * to go quiet (0: do not wait). On a shared machine this keeps most rounds clean.
   */
  settle: number;
  /** progress lines go here (stderr), so that stdout is only the report */
  log: (line: string) => void;
}

export function stats(samples: number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  const n = sorted.length;
  const median = n === 0 ? NaN : n % 2 === 1 ? (sorted[(n - 1) / 2] as number) : ((sorted[n / 2 - 1] as number) + (sorted[n / 2] as number)) / 2;
  const mean = sorted.reduce((a, b) => a + b, 0) / n;
  const variance = n > 1 ? sorted.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1) : 0;
  return { median, min: sorted[0] ?? NaN, max: sorted[n - 1] ?? NaN, cv: mean === 0 ? 0 : (Math.sqrt(variance) / mean) * 100, samples };
}

/** Runs one benchmark pair: set up, warm up, alternate rounds, close (always). */
export async function runBenchmark(bench: Benchmark, options: HarnessOptions): Promise<BenchmarkResult> {
  const started = performance.now();
  const micro: Record<string, number[]> = {};
  const peer: Record<string, number[]> = {};
  for (const f of bench.figures) {
    micro[f.id] = [];
    peer[f.id] = [];
  }
  let pair: { micro: Contestant; peer: Contestant } | undefined;
  const placement = bench.usesChildren ? place(options.pin, options.log) : undefined;
  const env: BenchEnv = { serverCpus: placement?.servers };
  const others: number[] = [];
  const rounds = Math.min(options.rounds, bench.rounds ?? options.rounds);
  const result = (figures: FigureResult[], error?: string): BenchmarkResult => {
    const r: BenchmarkResult = { name: bench.name, title: bench.title, seconds: (performance.now() - started) / 1000, figures };
    if (bench.peerName) r.peerName = bench.peerName;
    if (rounds < options.rounds) r.rounds = rounds;
    if (others.length > 0) r.otherLoad = { mean: others.reduce((a, b) => a + b, 0) / others.length, max: Math.max(...others) };
    if (placement) r.placement = { mode: placement.mode, caller: placement.caller ?? 'any', servers: placement.servers ?? 'any' };
    if (error) r.error = error;
    return r;
  };
  try {
    if (placement?.caller) pin(process.pid, placement.caller);
    options.log(`[${bench.name}] starting both sides${placement ? ` (caller on CPU ${placement.caller ?? 'any'}, servers on CPU ${placement.servers ?? 'any'})` : ''}`);
    pair = await bench.setup(env);
    options.log(`[${bench.name}] warming up`);
    await pair.micro.warmUp();
    await pair.peer.warmUp();
    for (let r = 0; r < rounds; r++) {
      const waited = await settle(options.settle * 1000);
      if (waited === undefined) options.log(`[${bench.name}] other processes stayed busy for ${options.settle} s; measuring anyway`);
      else if (waited >= 100) options.log(`[${bench.name}] waited ${(waited / 1000).toFixed(1)} s for other processes to go quiet`);
      // alternate who goes first, so that a trend in the machine's speed hits both alike
      const order: Array<['micro' | 'peer', Contestant]> = r % 2 === 0 ? [['micro', pair.micro], ['peer', pair.peer]] : [['peer', pair.peer], ['micro', pair.micro]];
      for (const [side, c] of order) {
        const before = cpuSnapshot();
        const values = await c.round();
        const other = otherCpus(before, cpuSnapshot());
        if (other !== undefined) others.push(other);
        const into = side === 'micro' ? micro : peer;
        for (const f of bench.figures) {
          const v = values[f.id];
          if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${side} returned no value for ${f.id}`);
          into[f.id]?.push(v);
        }
      }
      const busy = others.slice(-2).reduce((a, b) => Math.max(a, b), 0);
      options.log(
        `[${bench.name}] round ${r + 1}/${rounds}: ${bench.figures.map((f) => `${f.id} ${fmt(micro[f.id]?.at(-1) ?? NaN, f.unit)} vs ${fmt(peer[f.id]?.at(-1) ?? NaN, f.unit)}`).join(', ')}${busy >= NOISY ? ` (other processes busy: ${busy.toFixed(2)} CPUs)` : ''}`,
      );
    }
  } catch (err) {
    return result([], (err as Error).stack ?? String(err));
  } finally {
    if (pair) {
      const closing = [pair.micro.close(), pair.peer.close()];
      for (const r of await Promise.allSettled(closing)) if (r.status === 'rejected') options.log(`[${bench.name}] close failed: ${String(r.reason)}`);
    }
    if (placement?.caller) {
      try {
        pin(process.pid, `0-${cpus().length - 1}`);
      } catch {
        options.log(`[${bench.name}] could not unpin this process; later benchmarks run on CPU ${placement.caller}`);
      }
    }
  }
  const figures = bench.figures.map((f): FigureResult => {
    const m = stats(micro[f.id] ?? []);
    const p = stats(peer[f.id] ?? []);
    const ratio = m.median / p.median;
    const reaches = (value: number, bound: number | undefined) => bound === undefined || (f.better === 'higher' ? value >= bound : value <= bound);
    const met = f.target === undefined && f.floor === undefined ? undefined : reaches(ratio, f.target) && reaches(m.median, f.floor);
    return { ...f, micro: m, peer: p, ratio, met };
  });
  return result(figures);
}

// ---- other processes ---------------------------------------------------------------

/** Other processes using this much CPU (in CPUs) during a round make its figures suspect. */
export const NOISY = 0.1;

interface CpuSnapshot {
  at: number;
  /** seconds of CPU the machine spent busy (all CPUs, including steal) */
  busy: number;
  /** seconds of CPU this process and its children spent */
  own: number;
}

const TICK = 100; // USER_HZ: /proc reports CPU time in 1/100 s on every Linux that matters

function cpuSnapshot(): CpuSnapshot | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] as string;
    // cpu user nice system idle iowait irq softirq steal ...
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const busy = ((f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0)) / TICK;
    const self = process.cpuUsage();
    let own = (self.user + self.system) / 1e6;
    for (const child of children) {
      if (!child.pid || child.exitCode !== null) continue;
      const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      own += (Number(rest[11]) + Number(rest[12])) / TICK;
    }
    return { at: performance.now(), busy, own };
  } catch {
    return undefined;
  }
}

/**
 * Waits until other processes use less than NOISY CPUs over half a second, for at most
 * `maxMs`. Resolves with the time waited, or undefined when they stayed busy (or at
 * once when the load cannot be read).
 */
async function settle(maxMs: number): Promise<number | undefined> {
  const start = performance.now();
  if (maxMs <= 0) return 0;
  for (;;) {
    const a = cpuSnapshot();
    await new Promise((r) => setTimeout(r, 500));
    const other = otherCpus(a, cpuSnapshot());
    if (other === undefined || other < NOISY) return Math.max(0, performance.now() - start - 500);
    if (performance.now() - start >= maxMs) return undefined;
  }
}

function otherCpus(a: CpuSnapshot | undefined, b: CpuSnapshot | undefined): number | undefined {
  if (!a || !b || b.at - a.at < 200) return undefined;
  return Math.max(0, (b.busy - a.busy - (b.own - a.own)) / ((b.at - a.at) / 1000));
}

// ---- CPU placement -----------------------------------------------------------------

interface Placement {
  mode: PinMode;
  caller: string | undefined;
  servers: string | undefined;
}

let tasksetWorks: boolean | undefined;

function place(mode: PinMode, log: (line: string) => void): Placement {
  if (mode === 'off') return { mode, caller: undefined, servers: undefined };
  if (tasksetWorks === undefined) {
    try {
      execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
      tasksetWorks = process.platform === 'linux';
    } catch {
      tasksetWorks = false;
    }
  }
  const n = cpus().length;
  if (!tasksetWorks || (mode === 'split' && n < 2)) {
    log(`cannot pin processes to CPUs (${tasksetWorks ? 'only one CPU' : 'no taskset'}): the kernel places them`);
    return { mode: 'off', caller: undefined, servers: undefined };
  }
  return mode === 'split' ? { mode, caller: '0', servers: n > 2 ? `1-${n - 1}` : '1' } : { mode, caller: '0', servers: '0' };
}

/** Pins every thread of a process to a CPU list (`0`, `1-3`). */
function pin(pid: number, list: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', list, String(pid)], { stdio: 'ignore' });
}

// ---- timing loops ------------------------------------------------------------------

export type Call = () => Promise<unknown>;

/** Calls/s of a sequential await loop over `ms` milliseconds. */
export async function sequentialThroughput(call: Call, ms: number): Promise<number> {
  const start = performance.now();
  const end = start + ms;
  let count = 0;
  let now = start;
  while (now < end) {
    // reading the clock every call would be a measurable part of an in-process call
    for (let i = 0; i < 64; i++) await call();
    count += 64;
    now = performance.now();
  }
  return (count / (now - start)) * 1000;
}

/**
 * Calls/s of a closed loop keeping exactly `inflight` calls outstanding for `ms`
 * milliseconds: each of `inflight` workers starts its next call when its last returns.
 * The time counted runs until the last call has returned.
 */
export async function closedLoopThroughput(call: Call, inflight: number, ms: number): Promise<number> {
  const start = performance.now();
  const end = start + ms;
  let count = 0;
  const worker = async () => {
    while (performance.now() < end) {
      await call();
      count++;
    }
  };
  await Promise.all(Array.from({ length: inflight }, worker));
  return (count / (performance.now() - start)) * 1000;
}

/** Round-trip times in µs of `n` calls made one after another, sorted ascending. */
export async function sequentialLatencies(call: Call, n: number): Promise<Float64Array> {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await call();
    out[i] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  return out.sort();
}

/** The p-th percentile (0..100) of sorted values, nearest-rank. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

/** Runs `call` untimed for `ms` milliseconds with `inflight` calls outstanding. */
export async function warm(call: Call, ms: number, inflight = 1): Promise<void> {
  if (inflight === 1) await sequentialThroughput(call, ms);
  else await closedLoopThroughput(call, inflight, ms);
}

// ---- child processes ---------------------------------------------------------------

const children = new Set<ChildProcess>();
let hooked = false;

/** Kills every child still running (SIGKILL): the last resort on exit and on errors. */
export function killChildren(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  children.clear();
}

/**
 * Adds a child started without `startChild` (e.g. `micro server` through the CLI) to the
 * children killed when the bench exits or fails.
 */
export function adopt(child: ChildProcess): void {
  hookExit();
  children.add(child);
  child.once('exit', () => children.delete(child));
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', killChildren);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killChildren();
      process.exit(130);
    });
  }
}

export interface ChildServer<Info> {
  readonly info: Info;
  readonly pid: number;
  /** asks the child to exit (SIGTERM), SIGKILL after 2 s; resolves when it is gone */
  stop(): Promise<void>;
}

/**
 * Starts `node script args...` (with `--cpu-prof` when MICRO_BENCH_CPU_PROF names a
 * folder) and waits for the first line it prints on stdout, a JSON
 * object describing what it serves (its address). The child exits by itself when its
 * stdin closes, so it dies with this process even if this one is killed with SIGKILL.
 */
export async function startChild<Info>(script: string, options: { args?: string[]; cpus?: string | undefined; timeoutMs?: number } = {}): Promise<ChildServer<Info>> {
  hookExit();
  const timeoutMs = options.timeoutMs ?? 15_000;
  // MICRO_BENCH_CPU_PROF=<dir>: every child writes a V8 CPU profile there when it exits (see BENCHMARKS.md)
  const profile = process.env.MICRO_BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.MICRO_BENCH_CPU_PROF}`, '--cpu-prof-interval', '200'] : [];
  const argv = [...profile, script, ...(options.args ?? [])];
  // taskset execs node in place: the child's pid is node's, and a kill reaches it
  const [cmd, args] = options.cpus ? ['taskset', ['-c', options.cpus, process.execPath, ...argv]] : [process.execPath, argv];
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NODE_NO_WARNINGS: '1' } });
  children.add(child);
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (s: string) => {
    if (stderr.length < 8_000) stderr += s;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    children.delete(child);
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 2_000);
    await exited;
    clearTimeout(timer);
  };
  try {
    const info = await new Promise<Info>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout! });
      const timer = setTimeout(() => reject(new Error(`${script} did not start within ${timeoutMs} ms\n${stderr}`)), timeoutMs);
      lines.once('line', (line) => {
        clearTimeout(timer);
        try {
          resolve(JSON.parse(line) as Info);
        } catch {
          reject(new Error(`${script} printed "${line}" instead of its address\n${stderr}`));
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${script} exited (${signal ?? code}) before it was ready\n${stderr}`));
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    return { info, pid: child.pid ?? 0, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** For child scripts: exit when the parent goes away (stdin closes) or asks (SIGTERM). */
export function exitWithParent(cleanup: () => Promise<void> | void = () => undefined): void {
  let leaving = false;
  const leave = () => {
    if (leaving) return;
    leaving = true;
    const force = setTimeout(() => process.exit(0), 1_000);
    force.unref();
    Promise.resolve()
      .then(cleanup)
      .catch(() => undefined)
      .finally(() => process.exit(0));
  };
  process.stdin.on('end', leave);
  process.stdin.on('close', leave);
  process.stdin.on('error', leave);
  process.stdin.resume();
  process.once('SIGTERM', leave);
  process.once('SIGINT', leave);
}

// ---- the report ----------------------------------------------------------------------

export function fmt(value: number, unit: FigureSpec['unit']): string {
  if (!Number.isFinite(value)) return 'n/a';
  if (unit === 'calls/s' || unit === 'postings/s' || unit === 'events/s') return `${Math.round(value).toLocaleString('en-US')}`;
  if (unit === 'µs') return value >= 100 ? value.toFixed(0) : value.toFixed(1);
  return value.toFixed(1);
}

function cell(s: Stats, unit: FigureSpec['unit']): string {
  return `${fmt(s.median, unit)} (${fmt(s.min, unit)}–${fmt(s.max, unit)})`;
}

export function targetText(f: FigureSpec): string {
  const sign = f.better === 'higher' ? '≥' : '≤';
  const parts = [...(f.target === undefined ? [] : [`${sign} ${f.target.toFixed(2)}x`]), ...(f.floor === undefined ? [] : [`${sign} ${fmt(f.floor, f.unit)} ${f.unit}`])];
  return parts.length === 0 ? '–' : parts.join(', ');
}

/** The Markdown table of every figure: median (min–max) of each side, ratio, target. */
export function markdownTable(results: BenchmarkResult[], peerName: string): string {
  const rows: string[] = [];
  let header: string | undefined;
  for (const b of results) {
    // a new header where the peer changes (the framework, or an engine used directly)
    const peer = b.peerName ?? peerName;
    if (peer !== header) {
      if (rows.length > 0) rows.push('');
      rows.push(`| figure | micro | ${peer} | ratio | target | met? |`, '|---|---:|---:|---:|:---:|:---:|');
      header = peer;
    }
    if (b.error) {
      rows.push(`| ${b.title}: **failed to run** (see above) | | | | | |`);
      continue;
    }
    for (const f of b.figures) {
      const met = f.met === undefined ? '' : f.met ? 'yes' : '**no**';
      rows.push(`| ${f.label} (${f.unit}) | ${cell(f.micro, f.unit)} | ${cell(f.peer, f.unit)} | ${f.ratio.toFixed(2)}x | ${targetText(f)} | ${met} |`);
    }
  }
  return rows.join('\n');
}
