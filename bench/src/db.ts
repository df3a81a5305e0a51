/**
 * The db value-add service (issue 16): create, read by id, and a query over a table of
 * 100,000 records, through the gateway.
 *
 * Micro: a micro server (embedded profile: the store in SQLite) hosting the db service;
 * a tenant calls /v1/db/<Endpoint> with an API key, as M3O's JavaScript client does
 * (POST, Bearer key, JSON). The peer: the store engine used directly in this process
 * (SqliteStore.write/read/query on a file of its own, the same records), so the ratio is
 * what the gateway, auth, metering, RPC and the service add to the engine.
 *
 * The table: 100,000 records `{id, name, age: i % 100, city}`, loaded into the store
 * files directly (one transaction) rather than through 100,000 calls. The query is
 * M3O's `age == 42` (1,000 matches) in creation order, limit 10; the engine indexes the
 * fields it is asked about often (data.age, created) during the warm-up. The gateway's
 * per-caller rate limit is raised (as in gateway-metering). Each figure: 16
 * callers in a closed loop for 1.5 s (calls/s), then 200 calls one after another (p50,
 * p99 in ms).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '@micro/server';
import { service } from '@micro/service-db';
import { unthrottledPlatform } from './platform.js';
import { bothSides, closedLoopThroughput, percentile, sequentialLatencies, type Benchmark, type Contestant } from './harness.js';

const RECORDS = 100_000;
const CALLERS = 16;
const ROUND_MS = 1_500;
const SEQUENTIAL = 200;
const TABLE = 'people';
const QUERY = 'age == 42';


type Ops = Record<'create' | 'read' | 'query', () => Promise<unknown>>;

/** Writes the table as the db service stores it ({created, data}), in one transaction. */
function load(store: SqliteStore, namespace: string): void {
  const insert = store.db.prepare('INSERT INTO records (namespace, "database", tbl, key, rkey, value) VALUES (?, ?, ?, ?, ?, ?)');
  const now = Date.now() - RECORDS;
  store.db.transaction(() => {
    for (let i = 0; i < RECORDS; i++) {
      const id = `r${i}`;
      const data = { id, name: `person ${i}`, age: i % 100, city: i % 2 ? 'London' : 'Paris' };
      insert.run(namespace, 'db', TABLE, id, [...id].reverse().join(''), JSON.stringify({ created: now + i, data }));
    }
  })();
}

async function measure(ops: Ops): Promise<Record<string, number>> {
  const values: Record<string, number> = {};
  for (const [name, op] of Object.entries(ops)) {
    values[`db.${name}`] = await closedLoopThroughput(op, CALLERS, ROUND_MS);
    const rtt = await sequentialLatencies(op, SEQUENTIAL);
    values[`db.${name}.p50`] = percentile(rtt, 50) / 1000;
    values[`db.${name}.p99`] = percentile(rtt, 99) / 1000;
  }
  return values;
}

function contestant(ops: Ops, close: () => Promise<void>): Contestant {
  return {
    async warmUp() {
      // enough queries for the engine to index the fields they name
      for (let i = 0; i < 20; i++) await ops.query();
      await new Promise((r) => setTimeout(r, 500));
      for (const op of Object.values(ops)) await closedLoopThroughput(op, CALLERS, 300);
    },
    round: () => measure(ops),
    close,
  };
}

async function micro(): Promise<Contestant> {
  const p = await unthrottledPlatform([service]);
  const store = new SqliteStore({ path: join(p.home, 'data', 'store.db'), purgeInterval: 0 });
  load(store, p.a.namespace);
  await store.close();
  let n = 0;
  const call = async (endpoint: string, body: unknown) => {
    // a kept-alive connection the server closed while the peer's turn ran fails once: again on a new one
    const res = await p.call(p.a.key, 'db', endpoint, body).catch(() => p.call(p.a.key, 'db', endpoint, body));
    if (res.status !== 200) throw new Error(`db.${endpoint}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const check = (await call('Read', { table: TABLE, query: QUERY, limit: 10 })) as { records: unknown[] };
  if (check.records.length !== 10) throw new Error(`the query found ${check.records.length} records, not 10`);
  return contestant(
    {
      create: () => call('Create', { table: 'created', record: { name: `new ${n++}`, age: n % 100 } }),
      read: () => call('Read', { table: TABLE, id: `r${n++ % RECORDS}` }),
      query: () => call('Read', { table: TABLE, query: QUERY, limit: 10 }),
    },
    () => p.close(),
  );
}

async function engine(): Promise<Contestant> {
  const dir = mkdtempSync(join(tmpdir(), 'micro-bench-db-'));
  const store = new SqliteStore({ path: join(dir, 'store.db'), purgeInterval: 0 });
  const scope = { namespace: 'tenant-a', database: 'db' };
  load(store, scope.namespace);
  let n = 0;
  // SQLite answers at once: without a turn of the event loop per call, the callers' loop would
  // starve the micro server of this same process (its timers, its sockets) for a whole round
  const turn = <T>(p: Promise<T>) => p.then((v) => new Promise<T>((resolve) => setImmediate(() => resolve(v))));
  return contestant(
    {
      create: () => turn(store.write({ key: `new${n++}`, value: { created: Date.now(), data: { name: `new ${n}`, age: n % 100 } } }, { ...scope, table: 'created' })),
      read: () => turn(store.read(`r${n++ % RECORDS}`, { ...scope, table: TABLE })),
      query: () => turn(store.query({ ...scope, table: TABLE, where: { field: 'data.age', op: '==', value: 42 }, orderBy: 'created', limit: 10 })),
    },
    async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  );
}

export const db: Benchmark = {
  name: 'db',
  title: 'db service: create, read by id, query over 100,000 records (SQLite)',
  peerName: 'the store engine used directly (SqliteStore)',
  rounds: 3,
  figures: [
    { id: 'db.create', label: `db.Create calls/s, ${CALLERS} callers`, unit: 'calls/s', better: 'higher' },
    { id: 'db.create.p50', label: 'db.Create latency p50, one caller', unit: 'ms', better: 'lower' },
    { id: 'db.create.p99', label: 'db.Create latency p99, one caller', unit: 'ms', better: 'lower' },
    { id: 'db.read', label: `db.Read by id calls/s, ${CALLERS} callers`, unit: 'calls/s', better: 'higher' },
    { id: 'db.read.p50', label: 'db.Read by id latency p50', unit: 'ms', better: 'lower' },
    { id: 'db.read.p99', label: 'db.Read by id latency p99', unit: 'ms', better: 'lower' },
    { id: 'db.query', label: `db.Read "${QUERY}" of ${RECORDS.toLocaleString('en')} records, limit 10, calls/s, ${CALLERS} callers`, unit: 'calls/s', better: 'higher' },
    { id: 'db.query.p50', label: 'db.Read query latency p50', unit: 'ms', better: 'lower' },
    { id: 'db.query.p99', label: 'db.Read query latency p99', unit: 'ms', better: 'lower' },
  ],
  async setup() {
    return bothSides(() => micro(), () => engine());
  },
};
