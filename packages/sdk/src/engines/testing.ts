import { randomBytes } from 'node:crypto';
import { connect as tcpConnect } from 'node:net';
import { DEFAULT_NATS_URL, DEFAULT_REDIS_URL } from './profile.js';

/**
 * For tests against the real engines. On a machine without the engine a test skips with
 * the reason printed; with MICRO_REQUIRE_ENGINES=1 (set by .ci/run) it fails instead.
 *
 * ```ts
 * test('store on postgres', async (t) => {
 *   const url = await engineUrl(t, 'postgres');
 *   if (!url) return;
 *   ...
 * });
 * ```
 */

export type EngineName = 'nats' | 'postgres' | 'redis';

/** The engines of this machine (and CI); each overridable as for micro server. */
export const TEST_ENGINE_URLS: Record<EngineName, string> = {
  nats: process.env.MICRO_TEST_NATS_URL || DEFAULT_NATS_URL,
  // database `test` with trust auth is what the machine and CI provide
  postgres: process.env.MICRO_TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/test',
  redis: process.env.MICRO_TEST_REDIS_URL || DEFAULT_REDIS_URL,
};

const reachable = new Map<string, Promise<string | undefined>>();

/** undefined when a TCP connection opens within 2 s; else why not */
function probe(url: string): Promise<string | undefined> {
  let p = reachable.get(url);
  if (!p) {
    const u = new URL(url);
    const port = Number(u.port) || ({ 'nats:': 4222, 'postgres:': 5432, 'postgresql:': 5432, 'redis:': 6379 } as Record<string, number>)[u.protocol] || 0;
    p = new Promise((resolve) => {
      const socket = tcpConnect({ host: u.hostname.replace(/^\[|\]$/g, ''), port });
      const done = (why: string | undefined) => {
        socket.destroy();
        resolve(why);
      };
      socket.setTimeout(2_000, () => done('timed out'));
      socket.once('connect', () => done(undefined));
      socket.once('error', (err) => done(err.message));
    });
    reachable.set(url, p);
  }
  return p;
}

interface Skippable {
  skip(message?: string): void;
}

/**
 * The URL of `engine` when it answers; otherwise skips the test (printing why) and
 * returns undefined — or throws when MICRO_REQUIRE_ENGINES=1.
 */
export async function engineUrl(t: Skippable, engine: EngineName): Promise<string | undefined> {
  const url = TEST_ENGINE_URLS[engine];
  const why = await probe(url);
  if (why === undefined) return url;
  const message = `${engine} is not reachable at ${url} (${why})`;
  if (process.env.MICRO_REQUIRE_ENGINES === '1') throw new Error(`${message}, and MICRO_REQUIRE_ENGINES=1 makes the engine tests mandatory`);
  console.log(`# skipped: ${message}; set MICRO_TEST_${engine.toUpperCase()}_URL to run it`);
  t.skip(message);
  return undefined;
}

/**
 * A prefix of its own for one test (NATS subjects and buckets, a Postgres schema, Redis
 * keys), so that tests running in parallel never share state: `t_<label>_<random>`.
 */
export function testPrefix(label = 't'): string {
  const clean = label.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '').slice(0, 12) || 't';
  return `t_${clean}_${randomBytes(4).toString('hex')}`;
}
