/**
 * Runs the benchmarks: all of them, or those named on the command line.
 *
 *     npm run bench                      # from the repo root: builds, then runs all
 *     npm run bench -- remote            # only the remote calls
 *     npm run bench -- gateway gateway-fastify gateway-remote gateway-metering
 *     node bench/dist/run.js --rounds 3 inprocess
 *
 * Options: `--rounds N` timed rounds per side (5); `--pin split|shared|off` where the
 * caller and the server processes run (split: CPU 0 and CPU 1); `--settle S` seconds to
 * wait, before each round, for other processes to go quiet (10; 0 to not wait).
 *
 * Prints a Markdown table on stdout (progress goes to stderr) and writes it to
 * bench/results/latest.md, every figure with its samples to bench/results/latest.json,
 * and, when gateway-concurrency ran, its chart to bench/results/gateway-concurrency.svg.
 * Exits 0 whatever the timings: a missed target is marked in the table, not a failure.
 * Exits 1 only when a benchmark could not run at all.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MOLECULER_VERSION } from 'moleculer';
import { inprocess } from './calls-inprocess.js';
import { remote } from './calls-remote.js';
import { coldStart } from './cold-start.js';
import { sandbox } from './sandbox.js';
import { coreServices } from './core-services.js';
import { gateway, gatewayFastify, gatewayNodeHttp, gatewayRemote } from './gateway.js';
import { gatewayMetering } from './gateway-metering.js';
import { remoteNats } from './calls-nats.js';
import { eventsJetStream } from './events-jetstream.js';
import { memory } from './memory.js';
import { scaleRegistry } from './scale-registry.js';
import { scaleRuntime } from './scale-runtime.js';
import { gatewayConcurrency } from './gateway-concurrency.js';
import { ledger } from './ledger.js';
import { url } from './url.js';
import { search } from './search.js';
import { db } from './db.js';
import { event } from './event.js';
import { image } from './image.js';
import { fn } from './function.js';
import { email } from './email.js';
import { writeConcurrencyPlot } from './plot.js';
import { killChildren, machineInfo, markdownTable, NOISY, runBenchmark, type Benchmark, type BenchmarkResult, type PinMode } from './harness.js';

/** Every benchmark, in the order they run. Later issues add theirs here. */
const BENCHMARKS: readonly Benchmark[] = [
  inprocess,
  remote,
  coldStart,
  sandbox,
  coreServices,
  gateway,
  gatewayFastify,
  gatewayNodeHttp,
  gatewayRemote,
  gatewayMetering,
  remoteNats,
  eventsJetStream,
  memory,
  scaleRegistry,
  scaleRuntime,
  gatewayConcurrency,
  ledger,
  url,
  search,
  db,
  event,
  image,
  fn,
  email,
];
const PEER = `moleculer ${MOLECULER_VERSION}`;

function usage(): string {
  return `usage: npm run bench -- [--rounds N] [--pin split|shared|off] [--settle SECONDS] [name...]\nbenchmarks: ${BENCHMARKS.map((b) => `${b.name} (${b.title})`).join(', ')}`;
}

function parseArgs(argv: string[]): { rounds: number; pin: PinMode; settle: number; selected: Benchmark[] } {
  let rounds = 5;
  let settle = 10;
  let pin: PinMode = 'split';
  const names: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--help' || arg === '-h') {
      console.log(usage());
      process.exit(0);
    } else if (arg === '--rounds' || arg.startsWith('--rounds=')) {
      const value = arg.includes('=') ? arg.slice('--rounds='.length) : argv[++i];
      rounds = Number(value);
      if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50) {
        console.error(`--rounds takes a whole number from 1 to 50, not "${value}"\n${usage()}`);
        process.exit(2);
      }
    } else if (arg === '--settle' || arg.startsWith('--settle=')) {
      const value = arg.includes('=') ? arg.slice('--settle='.length) : argv[++i];
      settle = Number(value);
      if (!Number.isFinite(settle) || settle < 0 || settle > 600) {
        console.error(`--settle takes seconds from 0 to 600, not "${value}"\n${usage()}`);
        process.exit(2);
      }
    } else if (arg === '--pin' || arg.startsWith('--pin=')) {
      const value = arg.includes('=') ? arg.slice('--pin='.length) : argv[++i];
      if (value !== 'split' && value !== 'shared' && value !== 'off') {
        console.error(`--pin takes split, shared or off, not "${value}"\n${usage()}`);
        process.exit(2);
      }
      pin = value;
    } else if (arg.startsWith('-')) {
      console.error(`unknown option ${arg}\n${usage()}`);
      process.exit(2);
    } else {
      names.push(arg);
    }
  }
  const selected = names.length === 0 ? [...BENCHMARKS] : [];
  for (const name of names) {
    const b = BENCHMARKS.find((x) => x.name === name.toLowerCase());
    if (!b) {
      console.error(`no benchmark named "${name}"\n${usage()}`);
      process.exit(2);
    }
    if (!selected.includes(b)) selected.push(b);
  }
  return { rounds, pin, settle, selected };
}

function sdkVersion(): string {
  try {
    const entry = fileURLToPath(import.meta.resolve('@micro/sdk'));
    return (JSON.parse(readFileSync(join(dirname(entry), '..', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function gitRevision(): string | undefined {
  try {
    const rev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
    return dirty ? `${rev}+changes` : rev;
  } catch {
    return undefined;
  }
}

async function main(): Promise<number> {
  const { rounds, pin, settle, selected } = parseArgs(process.argv.slice(2));
  const machine = machineInfo();
  const log = (line: string) => process.stderr.write(`${line}\n`);
  log(`micro ${sdkVersion()} vs ${PEER} on ${machine.cpuCount} x ${machine.cpuModel}, ${machine.memoryGiB} GiB, node ${machine.node}, ${machine.os}`);
  log(`benchmarks: ${selected.map((b) => b.name).join(', ')}; ${rounds} rounds each`);

  const started = Date.now();
  const results: BenchmarkResult[] = [];
  for (const bench of selected) {
    const result = await runBenchmark(bench, { rounds, pin, settle, log });
    if (result.error) log(`[${bench.name}] FAILED: ${result.error}`);
    else log(`[${bench.name}] done in ${result.seconds.toFixed(1)} s`);
    results.push(result);
  }
  killChildren();

  const report = {
    date: new Date().toISOString(),
    revision: gitRevision(),
    versions: { micro: sdkVersion(), peer: PEER },
    machine,
    rounds,
    pin,
    seconds: Math.round((Date.now() - started) / 100) / 10,
    benchmarks: results,
  };
  const dir = fileURLToPath(new URL('../results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'latest.json');
  // written whole or not at all: a run cut short leaves the previous results
  writeFileSync(`${file}.tmp`, `${JSON.stringify(report, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);

  const table = markdownTable(results, PEER);
  const noisy = results.filter((r) => r.otherLoad && r.otherLoad.max >= NOISY);
  const warning = noisy.length
    ? `\n**Other processes were busy during ${noisy.map((r) => `${r.name} (up to ${r.otherLoad?.max.toFixed(2)} CPUs)`).join(', ')}: these figures are noisy; run again on a quiet machine.**\n`
    : '';
  const placements = results
    .filter((r) => r.placement)
    .map((r) => `${r.name}: caller on CPU ${r.placement?.caller}, servers on CPU ${r.placement?.servers} (--pin ${r.placement?.mode})`);
  const fewer = results.filter((r) => r.rounds !== undefined).map((r) => `${r.name}: ${r.rounds} round${r.rounds === 1 ? '' : 's'}`);
  const markdown = `
## Micro vs ${PEER}

${machine.cpuCount} x ${machine.cpuModel}, ${machine.memoryGiB} GiB RAM, Node.js ${machine.node}, ${machine.os} (${machine.arch}); ${rounds} rounds${fewer.length ? ` (${fewer.join('; ')})` : ''}, median (min–max); ratio = micro / ${PEER.split(' ')[0]}.${placements.length ? `\n${placements.join('; ')}.` : ''}

${table}
${warning}`;
  console.log(markdown);
  const md = join(dir, 'latest.md');
  writeFileSync(`${md}.tmp`, `${markdown.trim()}\n\n_${report.date}${report.revision ? `, revision ${report.revision}` : ''}_\n`);
  renameSync(`${md}.tmp`, md);

  const concurrency = results.find((r) => r.name === gatewayConcurrency.name && !r.error);
  if (concurrency) {
    const svg = join(dir, 'gateway-concurrency.svg');
    try {
      writeConcurrencyPlot(concurrency, { machine, date: new Date(report.date), microName: `micro ${sdkVersion()}`, file: svg, rounds: concurrency.rounds ?? rounds });
      log(`plot written to ${relative(process.cwd(), svg) || svg}`);
    } catch (err) {
      log(`could not write ${svg}: ${(err as Error).message}`);
    }
  }
  log(`results written to ${relative(process.cwd(), file) || file} and latest.md (${report.seconds} s in all)`);
  return results.some((r) => r.error) ? 1 : 0;
}

// exit explicitly: a peer's stray timer must not keep the run alive (stdout to a pipe or
// file is written synchronously on Linux and macOS, so nothing printed is lost)
main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    killChildren();
    console.error(err);
    process.exit(1);
  },
);
