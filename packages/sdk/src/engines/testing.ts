import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as tcpConnect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

/** Whether a process of this pid exists (signal 0: nothing is sent). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A prefix of its own for one test (NATS subjects and buckets, a Postgres schema, Redis
 * keys), so that tests running in parallel never share state: `t_<label>_<random>`.
 */
export function testPrefix(label = 't'): string {
  const clean = label.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '').slice(0, 12) || 't';
  return `t_${clean}_${randomBytes(4).toString('hex')}`;
}

/** A free TCP port of 127.0.0.1 (closed again at once: the caller binds it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** An engine server of a test's own (see privateNats, privateRedis). */
export interface PrivateServer {
  url: string;
  /** kill -9 of the server (what it stores on disk stays); resolves once it has exited */
  kill(): Promise<void>;
  /** starts it again on the same port (and store), once it accepts connections */
  start(): Promise<void>;
}

/**
 * Runs `bin args` on `port` of 127.0.0.1 for one test: started at once, ready when it
 * accepts TCP connections (15 s at most), killed after the test (then `cleanup`).
 */
async function privateServer(t: { after(fn: () => unknown): void }, bin: string, args: string[], port: number, url: string, cleanup: () => void = () => undefined): Promise<PrivateServer> {
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    child = spawn(bin, args, { stdio: 'ignore' });
    const deadline = Date.now() + 15_000;
    for (;;) {
      const why = await new Promise<string | undefined>((resolve) => {
        const socket = tcpConnect({ host: '127.0.0.1', port });
        socket.once('connect', () => {
          socket.destroy();
          resolve(undefined);
        });
        socket.once('error', (err) => resolve(err.message));
      });
      if (why === undefined) return;
      if (child.exitCode !== null) throw new Error(`${bin} exited with ${child.exitCode} on port ${port}`);
      if (Date.now() > deadline) throw new Error(`${bin} did not accept connections on port ${port} within 15 s (${why})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  t.after(() => {
    child?.kill('SIGKILL');
    cleanup();
  });
  await start();
  const kill = (): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGKILL');
    });
  };
  return { url, kill, start };
}

/**
 * A nats-server with JetStream of the test's own — on a free port, its store in a
 * temporary folder — for tests that must stop or restart NATS (the shared one must not
 * be). Killed and removed after the test. Needs `nats-server` (/usr/sbin/nats-server, as
 * on a machine with the NATS engine; MICRO_TEST_NATS_SERVER names another).
 */
export async function privateNats(t: { after(fn: () => unknown): void }): Promise<PrivateServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'micro-nats-'));
  const bin = process.env.MICRO_TEST_NATS_SERVER || '/usr/sbin/nats-server';
  return privateServer(t, bin, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], port, `nats://127.0.0.1:${port}`, () => rmSync(dir, { recursive: true, force: true }));
}

/** Where privateRedis finds redis-server (MICRO_TEST_REDIS_SERVER names another). */
export const REDIS_SERVER_BIN = process.env.MICRO_TEST_REDIS_SERVER || '/usr/bin/redis-server';

/**
 * A redis-server of the test's own, on a free port, keeping nothing on disk, for tests
 * that must stop or restart Redis. Killed after the test. Needs REDIS_SERVER_BIN.
 */
export async function privateRedis(t: { after(fn: () => unknown): void }): Promise<PrivateServer> {
  const port = await freePort();
  return privateServer(t, REDIS_SERVER_BIN, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], port, `redis://127.0.0.1:${port}`);
}
