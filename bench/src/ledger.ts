/**
 * The ledger of M3O billing (issue 15): postings/s on SQLite and on PostgreSQL.
 *
 * Micro: the ledger as billing opens it, with group commit (concurrent posts gathered
 * into transactions of up to 500). The peer: the same ledger opened with `batch: 1`, one
 * transaction per posting, one after another — the path before group commit (same
 * checks, same statements per posting, one fsync each). So the ratio is what group commit
 * buys, and the target is the issue's: at least 10,000 postings/s on each engine (the
 * floor of every throughput figure).
 *
 * The load: 1,000 customer accounts funded up front; each posting spends 1 unit from one
 * of them (in turn) into `platform:revenue`, the hot account every usage posting touches,
 * with a key of its own and `metadata.kind = usage`, as the meter posts. `post`: 64
 * callers in a closed loop (each posts again once answered), for 2 s; latency p99 of
 * those posts; then 256 callers (a batch holds what its callers posted: more callers,
 * bigger batches). `postMany`: one caller posting 500 at a time (how the meter posts a
 * batch of usage records), for 2 s. SQLite: a file in a temporary folder (WAL, synchronous=FULL).
 * PostgreSQL: MICRO_BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test),
 * a schema of each side's own, dropped at the end; the server is another process of the
 * machine, so it shows in "other processes busy".
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { openPgLedger, openSqliteLedger, type Ledger, type PostingInput } from '@micro/platform';
import type { Benchmark, Contestant } from './harness.js';

const POSTERS = 64;
/** more callers: bigger batches (at 64, every batch holds all 64 callers' postings) */
const MORE_POSTERS = 256;
const MANY = 500;
const CUSTOMERS = 1_000;
const ROUND_MS = 2_000;
const WARM_MS = 500;
const PG_URL = process.env.MICRO_BENCH_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/test';

interface Engine {
  ledger: Ledger;
  close(): Promise<void>;
}

async function sqlite(batch: number | undefined): Promise<Engine> {
  const dir = mkdtempSync(join(tmpdir(), 'micro-bench-ledger-'));
  const ledger = openSqliteLedger(join(dir, 'billing.db'), batch === undefined ? {} : { batch });
  return {
    ledger,
    async close() {
      await ledger.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function postgres(batch: number | undefined): Promise<Engine> {
  const prefix = `bench_ledger_${randomBytes(4).toString('hex')}`;
  const ledger = await openPgLedger({ url: PG_URL, prefix, ...(batch === undefined ? {} : { batch }) });
  return {
    ledger,
    async close() {
      await ledger.db.query(`DROP SCHEMA IF EXISTS ${ledger.db.schema} CASCADE`).catch(() => undefined);
      await ledger.close();
    },
  };
}

async function fund(l: Ledger): Promise<void> {
  await l.openAccount({ id: 'external:payments', allowNegative: true });
  await l.openAccount({ id: 'platform:revenue' });
  for (let i = 0; i < CUSTOMERS; i++) await l.openAccount({ id: `customer:c${i}:balance` });
  const topUps = Array.from({ length: CUSTOMERS }, (_, i) => ({
    key: `topup-${i}`,
    reason: 'card payment',
    metadata: { kind: 'topup' },
    entries: [
      { account: `customer:c${i}:balance`, amount: 1_000_000_000_000 },
      { account: 'external:payments', amount: -1_000_000_000_000 },
    ],
  }));
  for (const o of await l.postMany(topUps)) if (!o.ok) throw o.error;
}

/** One engine under load; the keys go on across rounds. */
function loader(l: Ledger, tag: string) {
  let n = 0;
  const usage = (): PostingInput => {
    const i = n++;
    return {
      key: `${tag}-use-${i}`,
      reason: 'usage',
      metadata: { kind: 'usage', period: '2026-11' },
      entries: [
        { account: `customer:c${i % CUSTOMERS}:balance`, amount: -1 },
        { account: 'platform:revenue', amount: 1 },
      ],
    };
  };

  /** `callers` in a closed loop for `ms`: postings/s and the p99 latency of a post in ms */
  async function posts(ms: number, callers: number): Promise<{ rate: number; p99: number }> {
    const latencies: number[] = [];
    const start = performance.now();
    const end = start + ms;
    await Promise.all(
      Array.from({ length: callers }, async () => {
        while (performance.now() < end) {
          const t0 = performance.now();
          await l.post(usage());
          latencies.push(performance.now() - t0);
        }
      }),
    );
    const elapsed = performance.now() - start;
    latencies.sort((a, b) => a - b);
    return { rate: (latencies.length / elapsed) * 1000, p99: latencies[Math.min(latencies.length - 1, Math.ceil(latencies.length * 0.99) - 1)] ?? NaN };
  }

  /** one caller posting MANY at a time for `ms`: postings/s */
  async function many(ms: number): Promise<number> {
    let count = 0;
    const start = performance.now();
    while (performance.now() - start < ms) {
      const out = await l.postMany(Array.from({ length: MANY }, usage));
      for (const o of out) if (!o.ok) throw o.error;
      count += out.length;
    }
    return (count / (performance.now() - start)) * 1000;
  }

  return { posts, many };
}

async function contestant(batch: number | undefined): Promise<Contestant> {
  const engines = { sqlite: await sqlite(batch), postgres: await postgres(batch) };
  const tag = randomBytes(3).toString('hex');
  const load = { sqlite: loader(engines.sqlite.ledger, tag), postgres: loader(engines.postgres.ledger, tag) };
  await fund(engines.sqlite.ledger);
  await fund(engines.postgres.ledger);
  return {
    async warmUp() {
      for (const e of ['sqlite', 'postgres'] as const) {
        await load[e].posts(WARM_MS, POSTERS);
        await load[e].many(WARM_MS);
      }
    },
    async round() {
      const values: Record<string, number> = {};
      for (const e of ['sqlite', 'postgres'] as const) {
        const { rate, p99 } = await load[e].posts(ROUND_MS, POSTERS);
        values[`ledger.${e}.post`] = rate;
        values[`ledger.${e}.p99`] = p99;
        values[`ledger.${e}.post256`] = (await load[e].posts(ROUND_MS, MORE_POSTERS)).rate;
        values[`ledger.${e}.many`] = await load[e].many(ROUND_MS);
      }
      return values;
    },
    async close() {
      for (const e of ['sqlite', 'postgres'] as const) {
        // what was posted must still add up: a benchmark of a ledger that lost a unit is worthless
        const trial = await engines[e].ledger.trialBalance();
        await engines[e].close();
        if (!trial.ok) throw new Error(`the ${e} ledger does not balance after the benchmark: ${JSON.stringify(trial)}`);
      }
    },
  };
}

const TARGET = 10_000;

export const ledger: Benchmark = {
  name: 'ledger',
  title: 'Ledger postings/s with group commit (SQLite, PostgreSQL)',
  peerName: 'the same ledger, one transaction per posting (batch: 1)',
  figures: [
    { id: 'ledger.sqlite.post', label: `ledger postings/s, SQLite, ${POSTERS} callers`, unit: 'postings/s', better: 'higher', floor: TARGET },
    { id: 'ledger.sqlite.p99', label: `ledger post latency p99 under that load, SQLite`, unit: 'ms', better: 'lower' },
    { id: 'ledger.sqlite.post256', label: `ledger postings/s, SQLite, ${MORE_POSTERS} callers`, unit: 'postings/s', better: 'higher', floor: TARGET },
    { id: 'ledger.sqlite.many', label: `ledger postings/s, SQLite, postMany of ${MANY}, one caller`, unit: 'postings/s', better: 'higher', floor: TARGET },
    { id: 'ledger.postgres.post', label: `ledger postings/s, PostgreSQL, ${POSTERS} callers`, unit: 'postings/s', better: 'higher', floor: TARGET },
    { id: 'ledger.postgres.p99', label: `ledger post latency p99 under that load, PostgreSQL`, unit: 'ms', better: 'lower' },
    { id: 'ledger.postgres.post256', label: `ledger postings/s, PostgreSQL, ${MORE_POSTERS} callers`, unit: 'postings/s', better: 'higher', floor: TARGET },
    { id: 'ledger.postgres.many', label: `ledger postings/s, PostgreSQL, postMany of ${MANY}, one caller`, unit: 'postings/s', better: 'higher', floor: TARGET },
  ],
  async setup() {
    const micro = await contestant(undefined);
    try {
      return { micro, peer: await contestant(1) };
    } catch (err) {
      await micro.close().catch(() => undefined);
      throw err;
    }
  },
};
