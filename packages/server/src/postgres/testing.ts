import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { engineUrl, testPrefix } from '@micro/sdk/testing';
import type pg from 'pg';
import { randomBytes } from 'node:crypto';
import { openPostgres, type Postgres, type PostgresOptions } from './pool.js';

// the auth storage of a test, for the tests of services built on auth (@micro/platform)
export { startAuthHarness } from '../auth/testing.js';
export type { AuthHarness } from '../auth/testing.js';
// Chromium for the dashboard's browser tests (the platform's pages are tested there too)
export { browserReady, launchChromium, watchPage, CHROMIUM } from '../gateway/browser-testing.js';
// the test Kubernetes API server, for the platform's tests of what its namespaces make in a cluster
export { startFakeKubernetes } from '../runtime/kubernetes/fake/index.js';
export type { FakeKubernetes } from '../runtime/kubernetes/fake/index.js';

interface TestContext {
  skip(message?: string): void;
  after(fn: () => unknown): void;
}

/**
 * For tests on the real Postgres: a handle on a schema of the test's own
 * (`testPrefix(label)`), dropped with everything in it after the test; undefined (the test
 * skipped, the reason printed) when Postgres is away.
 */
export async function testPostgres(t: TestContext, label: string, options: Partial<PostgresOptions> = {}): Promise<Postgres | undefined> {
  const url = await engineUrl(t, 'postgres');
  if (!url) return undefined;
  const db = await openPostgres({ url, prefix: testPrefix(label), max: 4, ...options });
  t.after(async () => {
    await db.query(`DROP SCHEMA IF EXISTS ${db.schema} CASCADE`).catch(() => undefined);
    await db.close();
  });
  return db;
}

/**
 * A TCP relay to Postgres that a test can cut and restore, to lose the engine while
 * running without stopping the Postgres other tests share: `cut()` closes every relayed
 * connection and resets each new one (calls see Postgres gone), `restore()` relays again.
 * The listener stays open while cut: a closed port could be taken by another test's server
 * running in parallel, and the cut-off client would reach that instead. `freeze()` stops passing bytes without closing anything (a network
 * that drops packets), `thaw()` passes them again. The URL is `url` with the relay's host
 * and port.
 */
export interface Relay {
  url: string;
  cut(): Promise<void>;
  restore(): Promise<void>;
  freeze(): void;
  thaw(): void;
  close(): Promise<void>;
}

export async function relay(url: string): Promise<Relay> {
  const target = new URL(url);
  const targetPort = Number(target.port) || 5432;
  const sockets = new Set<Socket>();
  const pairs = new Set<[Socket, Socket]>();
  let frozen = false;
  let cutOff = false;
  const flow = ([inbound, outbound]: [Socket, Socket]) => {
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  };
  const server = createServer((inbound) => {
    if (cutOff) {
      inbound.resetAndDestroy();
      return;
    }
    const outbound = connect(targetPort, target.hostname);
    const pair: [Socket, Socket] = [inbound, outbound];
    sockets.add(inbound).add(outbound);
    pairs.add(pair);
    const drop = () => {
      inbound.destroy();
      outbound.destroy();
      sockets.delete(inbound);
      sockets.delete(outbound);
      pairs.delete(pair);
    };
    inbound.on('error', drop).on('close', drop);
    outbound.on('error', drop).on('close', drop);
    if (!frozen) flow(pair);
  });
  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  await listen(0);
  const port = (server.address() as AddressInfo).port;
  const relayed = new URL(url);
  relayed.hostname = '127.0.0.1';
  relayed.port = String(port);
  const cut = async () => {
    cutOff = true;
    for (const s of sockets) s.destroy();
    sockets.clear();
  };
  return {
    url: relayed.toString(),
    cut,
    restore: async () => {
      cutOff = false;
    },
    freeze() {
      frozen = true;
      for (const [inbound, outbound] of pairs) {
        inbound.unpipe(outbound);
        outbound.unpipe(inbound);
        inbound.pause();
        outbound.pause();
      }
    },
    thaw() {
      frozen = false;
      for (const pair of pairs) flow(pair);
    },
    close: async () => {
      await cut();
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A handle like `db` (whose URL goes through `cable`) whose transactions, once `arm()` was
 * called, freeze the cable right after a statement matching `when` has answered: the node
 * goes silent inside that transaction and keeps what it locked, as when its host or its
 * network is lost (a process killed has its connections closed instead). `arm()` resolves
 * once the cable is frozen.
 */
export function silencedInTransaction(db: Postgres, cable: Relay, when: RegExp): { db: Postgres; arm(): Promise<void> } {
  let armed: (() => void) | undefined;
  const query = (c: pg.PoolClient) => async (sql: string, params?: unknown[]) => {
    const r = await c.query(sql, params);
    if (armed && when.test(sql)) {
      cable.freeze();
      armed();
      armed = undefined;
    }
    return r;
  };
  return {
    db: {
      ...db,
      transaction: (fn, options) => db.transaction((c, commit) => fn(new Proxy(c, { get: (target, p, receiver) => (p === 'query' ? query(target) : (Reflect.get(target, p, receiver) as unknown)) }), commit), options),
    },
    arm: () => new Promise<void>((resolve) => (armed = resolve)),
  };
}

/**
 * A platform of its own on the real engines (nats profile): the environment its nodes
 * share (NATS, PostgreSQL and Redis under a fresh prefix, a fresh MICRO_AUTH_KEY) and
 * `drop()`, which removes what they made. Undefined when an engine is missing: engineUrl
 * has printed why (in CI it failed the test instead).
 */
export async function natsPlatform(t: TestContext, name: string): Promise<{ env: Record<string, string>; drop: () => Promise<void> } | undefined> {
  const nats = await engineUrl(t, 'nats');
  const postgres = nats && (await engineUrl(t, 'postgres'));
  const redis = postgres && (await engineUrl(t, 'redis'));
  if (!nats || !postgres || !redis) return undefined;
  const prefix = testPrefix(name);
  return {
    env: { MICRO_PROFILE: 'nats', MICRO_NATS_URL: nats, MICRO_POSTGRES_URL: postgres, MICRO_REDIS_URL: redis, MICRO_PREFIX: prefix, MICRO_AUTH_KEY: randomBytes(24).toString('hex') },
    drop: () => dropPrefix(prefix, { nats, postgres, redis }),
  };
}

/** Removes everything the nodes made under the prefix: streams and buckets, the schema, the keys. */
export async function dropPrefix(prefix: string, urls: { nats: string; postgres: string; redis: string }): Promise<void> {
  const { connect } = await import('@nats-io/transport-node');
  const { jetstreamManager } = await import('@nats-io/jetstream');
  const nc = await connect({ servers: urls.nats });
  try {
    const jsm = await jetstreamManager(nc);
    for await (const s of jsm.streams.list()) {
      const name = s.config.name;
      if (name.toLowerCase().includes(prefix)) await jsm.streams.delete(name).catch(() => undefined);
    }
  } finally {
    await nc.close();
  }
  const pg = (await import('pg')).default;
  const client = new pg.Client({ connectionString: urls.postgres });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${prefix}" CASCADE`);
  } finally {
    await client.end();
  }
  const { Redis } = await import('ioredis');
  const redis = new Redis(urls.redis, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
}

