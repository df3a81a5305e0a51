/**
 * The search service (M3O's search API): index and query, calls/s and latency.
 *
 * Micro: `POST /v1/search/Index` and `/v1/search/Search` through the gateway of a micro
 * server (local profile) that hosts the service, with a tenant's API key — the whole path
 * of an M3O client: HTTP, the key's check, the hosted service, RPC to the fulltext core
 * service, SQLite FTS5. The peer: the same engine (SqliteFulltext) called directly in this
 * process, so the ratio is what the platform's path costs over the engine's own work.
 *
 * The load: an index of 5,000 records (a title of 3 to 6 words and a body of 20 to 40
 * words from a vocabulary of 2,000, a year and a rating) made up front on each side; then
 * per round `Index` of new records, and `Search` of queries in turn: one word in the title,
 * a prefix, two words in the body AND a number range, and an OR of two words (top 10).
 * Index calls replace records of the corpus in turn, so that it stays 5,000 on both sides.
 * 16 callers in a closed loop for 1.5 s each; p50 and p99 are of those calls.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { SqliteFulltext } from '@micro/server';
import { service } from '@micro/service-search';
import { startPlatform } from '@micro/services-kit/testing';
import type { Benchmark, Contestant } from './harness.js';

const CORPUS = 5_000;
const VOCABULARY = 2_000;
const CALLERS = 16;
const ROUND_MS = 1_500;
const WARM_MS = 500;
const INDEX = 'bench';

/** A word of the vocabulary: w0 … w1999, pronounceable enough for a tokenizer. */
function word(i: number): string {
  const syllables = ['ka', 'lo', 'mi', 'ne', 'ru', 'sa', 'ti', 'vo', 'ze', 'po'];
  let s = '';
  let n = i + 10;
  while (n > 0) {
    s += syllables[n % 10];
    n = Math.floor(n / 10);
  }
  return s;
}

/** A deterministic record n (the same on both sides). */
function record(n: number): { id: string; data: Record<string, unknown> } {
  let seed = n * 2654435761;
  const next = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed;
  };
  // skewed word frequencies, as text has: a few words common, most rare
  const pick = () => word(Math.floor((next() / 2147483648) ** 2 * VOCABULARY));
  const words = (min: number, max: number) => Array.from({ length: min + (next() % (max - min + 1)) }, pick).join(' ');
  return { id: `r${n}`, data: { title: words(3, 6), body: words(20, 40), year: 1990 + (next() % 35), rating: (next() % 50) / 10 } };
}

const QUERIES = [`title == '${word(3)}'`, `title == '${word(1).slice(0, 3)}*'`, `body == '${word(2)} ${word(5)}' and year >= 2000 and year <= 2015`, `title == '${word(7)}' or body == '${word(40)}'`];

interface Ops {
  index(n: number): Promise<unknown>;
  search(q: string): Promise<unknown>;
}

/** `CALLERS` in a closed loop for `ms`: calls/s, p50 and p99 in ms. */
async function load(call: (i: number) => Promise<unknown>, ms: number): Promise<{ rate: number; p50: number; p99: number }> {
  const latencies: number[] = [];
  let i = 0;
  const start = performance.now();
  const end = start + ms;
  await Promise.all(
    Array.from({ length: CALLERS }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        await call(i++);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const elapsed = performance.now() - start;
  latencies.sort((a, b) => a - b);
  const at = (p: number) => latencies[Math.min(latencies.length - 1, Math.ceil(latencies.length * p) - 1)] ?? NaN;
  return { rate: (latencies.length / elapsed) * 1000, p50: at(0.5), p99: at(0.99) };
}

async function contestant(ops: Ops, close: () => Promise<void>): Promise<Contestant> {
  for (let n = 0; n < CORPUS; n += CALLERS) await Promise.all(Array.from({ length: Math.min(CALLERS, CORPUS - n) }, (_, k) => ops.index(n + k)));
  // Index replaces records of the corpus in turn: both sides search the same 5,000 records,
  // however many each indexed in its rounds
  let next = 0;
  const indexing = (ms: number) => load(() => ops.index(next++ % CORPUS), ms);
  const searching = (ms: number) => load((i) => ops.search(QUERIES[i % QUERIES.length] as string), ms);
  return {
    async warmUp() {
      await indexing(WARM_MS);
      await searching(WARM_MS);
    },
    async round() {
      const i = await indexing(ROUND_MS);
      const s = await searching(ROUND_MS);
      return { 'search.index': i.rate, 'search.index.p50': i.p50, 'search.index.p99': i.p99, 'search.query': s.rate, 'search.query.p50': s.p50, 'search.query.p99': s.p99 };
    },
    close,
  };
}

async function viaGateway(): Promise<Contestant> {
  // the services' test harness without node:test: the local profile needs no TestContext
  const p = await startPlatform({} as TestContext, { services: [service], profile: 'local' });
  if (!p) throw new Error('no platform');
  const post = async (endpoint: string, body: unknown) => {
    const res = await p.call(p.a.key, 'search', endpoint, body);
    if (res.status !== 200) throw new Error(`search.${endpoint}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  // the gateway limits each account to 50 calls a second (burst 100), with no setting in
  // MicroServerOptions: the benchmark measures the path, so its gateway's per-caller limiter
  // goes, and the tenant's plan (requests a second and a month) is made unbounded
  (p.server as unknown as { gateway: { limiter: unknown } }).gateway.limiter = undefined;
  const limits = await p.call(p.adminToken, 'quota', 'Set', { namespace: p.a.namespace, limits: { requestsPerSecond: 1_000_000_000, requestsPerMonth: 1_000_000_000_000 } });
  if (limits.status !== 200) throw new Error(`quota.Set: ${limits.status} ${JSON.stringify(limits.body)}`);
  await post('CreateIndex', { index: INDEX });
  return contestant({ index: (n) => post('Index', { index: INDEX, ...record(n) }), search: (query) => post('Search', { index: INDEX, query }) }, () => p.close());
}

async function direct(): Promise<Contestant> {
  const dir = mkdtempSync(join(tmpdir(), 'micro-bench-search-'));
  const engine = new SqliteFulltext({ path: join(dir, 'fulltext.db') });
  const ns = { namespace: 'tenant-a' };
  // the engine is synchronous SQLite: each call gives the event loop a turn, or the micro
  // server of the other side, in this process, would starve (its idle keep-alive sockets
  // then close under the client's next request: ECONNRESET)
  const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
  return contestant({ index: async (n) => (await turn(), engine.put(INDEX, record(n), ns)), search: async (query) => (await turn(), engine.search(INDEX, query, ns)) }, async () => {
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  });
}

export const search: Benchmark = {
  name: 'search',
  title: 'The search service: index and query through the gateway (SQLite FTS5)',
  peerName: 'the fulltext engine (SqliteFulltext) called directly',
  rounds: 5,
  figures: [
    { id: 'search.index', label: `search Index calls/s, ${CALLERS} callers`, unit: 'calls/s', better: 'higher' },
    { id: 'search.index.p50', label: 'search Index latency p50', unit: 'ms', better: 'lower' },
    { id: 'search.index.p99', label: 'search Index latency p99', unit: 'ms', better: 'lower' },
    { id: 'search.query', label: `search Search calls/s over ${CORPUS.toLocaleString('en')}+ records, ${CALLERS} callers`, unit: 'calls/s', better: 'higher' },
    { id: 'search.query.p50', label: 'search Search latency p50', unit: 'ms', better: 'lower' },
    { id: 'search.query.p99', label: 'search Search latency p99', unit: 'ms', better: 'lower' },
  ],
  async setup() {
    // the engine's side first: its corpus is loaded before the gateway's connections exist
    const peer = await direct();
    try {
      return { micro: await viaGateway(), peer };
    } catch (err) {
      await peer.close().catch(() => undefined);
      throw err;
    }
  },
};
