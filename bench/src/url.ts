/**
 * The url service's resolve path (issue 16): a short link resolved through the gateway of
 * a `micro server` in this process (local profile: SQLite store, WAL, synchronous=FULL),
 * both ways a client resolves one — `url.Resolve` as M3O's client calls it (POST /v1 with
 * an API key: credentials, the tenant's rules, the service-scoped token, the metering hook)
 * and the anonymous redirect `GET /u/<id>` (the gateway's route: its own token, two store
 * reads, a 302). Each counts a hit, in memory, flushed every second.
 *
 * The peer is the store engine used directly in this process, doing the reads each path
 * does: one read of the link (Resolve), two reads (the platform-wide index, then the
 * link: the redirect). The ratio is what the gateway, the RPC hop and the service cost.
 * Concurrency: 32 requests in flight for calls/s; latencies p50/p99 of calls made one at
 * a time.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'node:http';
import { SqliteStore } from '@micro/server';
import { service } from '@micro/service-url';
import { unthrottledPlatform } from './platform.js';
import { bothSides, closedLoopThroughput, percentile, sequentialLatencies, type Benchmark, type Contestant } from './harness.js';

const INFLIGHT = 32;
const ROUND_MS = 2_000;
const LATENCIES = 1_000;
const LINKS = 100;

type Call = () => Promise<unknown>;

function contestant(resolve: Call, redirect: Call, close: () => Promise<void>): Contestant {
  return {
    async warmUp() {
      await closedLoopThroughput(resolve, INFLIGHT, 500);
      await closedLoopThroughput(redirect, INFLIGHT, 500);
    },
    async round() {
      const values: Record<string, number> = {};
      for (const [name, call] of [['resolve', resolve], ['redirect', redirect]] as const) {
        values[`url.${name}`] = await closedLoopThroughput(call, INFLIGHT, ROUND_MS);
        const lat = await sequentialLatencies(call, LATENCIES);
        values[`url.${name}.p50`] = percentile(lat, 50);
        values[`url.${name}.p99`] = percentile(lat, 99);
      }
      return values;
    },
    close,
  };
}

/** one HTTP request on a keep-alive agent, the body read whole; rejects on an unexpected status; once more when an idle socket was closed under it (keepAliveTimeout) */
function http(agent: Agent, url: URL, method: string, expect: number, headers: Record<string, string> = {}, body?: string): Promise<void> {
  return once(agent, url, method, expect, headers, body).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ECONNRESET') throw err;
    return once(agent, url, method, expect, headers, body);
  });
}

function once(agent: Agent, url: URL, method: string, expect: number, headers: Record<string, string> = {}, body?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request({ agent, host: url.hostname, port: url.port, path: url.pathname, method, headers }, (res) => {
      res.resume();
      res.once('end', () => (res.statusCode === expect ? resolve() : reject(new Error(`${method} ${url.pathname}: ${res.statusCode}`))));
    });
    req.once('error', reject);
    req.end(body);
  });
}

async function micro(): Promise<Contestant> {
  const p = await unthrottledPlatform([service]);
  const ids: string[] = [];
  for (let i = 0; i < LINKS; i++) {
    const r = await p.call(p.a.key, 'url', 'Create', { destinationURL: `https://example.com/${i}`, id: `bench-${i}` });
    if (r.status !== 200) throw new Error(`url.Create: ${JSON.stringify(r.body)}`);
    ids.push(r.body.url.id);
  }
  const agent = new Agent({ keepAlive: true, maxSockets: INFLIGHT });
  const base = new URL(p.url);
  const headers = { authorization: `Bearer ${p.a.key}`, 'content-type': 'application/json' };
  let n = 0;
  const resolve = () => http(agent, new URL('/v1/url/Resolve', base), 'POST', 200, headers, JSON.stringify({ id: ids[n++ % LINKS] }));
  const redirect = () => http(agent, new URL(`/u/${ids[n++ % LINKS]}`, base), 'GET', 302);
  return contestant(resolve, redirect, async () => {
    agent.destroy();
    await p.close();
  });
}

async function peer(): Promise<Contestant> {
  const dir = mkdtempSync(join(tmpdir(), 'micro-bench-url-'));
  const store = new SqliteStore({ path: join(dir, 'store.db') });
  const index = { namespace: 'micro', database: 'url', table: 'ids' };
  const links = { namespace: 'tenant-a', database: 'url' };
  for (let i = 0; i < LINKS; i++) {
    await store.write({ key: `bench-${i}`, value: { tenant: 'tenant-a' } }, index);
    await store.write({ key: `bench-${i}`, value: { destinationURL: `https://example.com/${i}`, created: Date.now(), hits: 0 } }, links);
  }
  let n = 0;
  const resolve = () => store.read(`bench-${n++ % LINKS}`, links);
  const redirect = async () => {
    const id = `bench-${n++ % LINKS}`;
    const [entry] = await store.read(id, index);
    return store.read(id, { namespace: (entry?.value as { tenant: string }).tenant, database: 'url' });
  };
  return contestant(resolve, redirect, async () => {
    await store.close?.();
    rmSync(dir, { recursive: true, force: true });
  });
}

export const url: Benchmark = {
  name: 'url',
  title: 'url: short links resolved through the gateway (Resolve with an API key, GET /u/<id>)',
  peerName: 'the store engine (SQLite) used directly: the reads each path does',
  rounds: 3,
  figures: [
    { id: 'url.resolve', label: `url.Resolve through the gateway, ${INFLIGHT} in flight`, unit: 'calls/s', better: 'higher' },
    { id: 'url.resolve.p50', label: 'url.Resolve latency p50, one at a time', unit: 'µs', better: 'lower' },
    { id: 'url.resolve.p99', label: 'url.Resolve latency p99, one at a time', unit: 'µs', better: 'lower' },
    { id: 'url.redirect', label: `GET /u/<id> (302), ${INFLIGHT} in flight`, unit: 'calls/s', better: 'higher' },
    { id: 'url.redirect.p50', label: 'GET /u/<id> latency p50, one at a time', unit: 'µs', better: 'lower' },
    { id: 'url.redirect.p99', label: 'GET /u/<id> latency p99, one at a time', unit: 'µs', better: 'lower' },
  ],
  async setup() {
    return bothSides(() => micro(), () => peer());
  },
};
