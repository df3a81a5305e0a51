// The value-add services' test harness (Node only, not part of any service): a real micro
// server hosting the services under test on free ports, two tenants who are strangers to
// each other with an API key each, and a caller that speaks to the gateway the way M3O's
// published JavaScript client did (POST with a Bearer API key; WebSocket streams that
// send one JSON text frame and read one JSON text frame per response).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { authApi, bearer, Client, createClient, createLogger, platformClient, TokenSource, type Credentials } from '@micro/sdk';
import { MicroServer, type HostedService, type MicroServerOptions } from '@micro/server';
import type { CoreServiceFactory } from '@micro/server/engine';
import { natsPlatform } from '@micro/server/testing';
import WebSocket from 'ws';

export interface Tenant {
  namespace: string;
  /** an API key (`mk_…`) of the namespace's owner, as M3O's clients use */
  key: string;
  /** the owner's credentials */
  owner: Credentials;
}

export interface Answer {
  status: number;
  /** the parsed JSON body (the raw text when it is not JSON) */
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- each test reads its own shapes
  headers: Headers;
}

export interface Platform {
  /** the gateway's http:// URL */
  url: string;
  server: MicroServer;
  home: string;
  /** two tenants who are strangers to each other */
  a: Tenant;
  b: Tenant;
  /** an access token of the admin of micro */
  adminToken: string;
  /** POST /v1/<service>/<endpoint> with `Authorization: Bearer <key>`, as M3O's JS client */
  call(key: string | undefined, service: string, endpoint: string, body?: unknown): Promise<Answer>;
  /** A WebSocket stream: one JSON text frame sent, every frame received until the server closes (or `until` is met) */
  stream(key: string, service: string, endpoint: string, body: unknown, options?: StreamOptions): Stream;
  /** a third tenant, made on demand */
  tenant(namespace: string): Promise<Tenant>;
  close(): Promise<void>;
}

export interface StreamOptions {
  /** resolve `frames` once this many frames came (default: when the server closes) */
  count?: number;
  /** ms before giving up (default 10,000) */
  timeout?: number;
}

export interface Stream {
  /** the socket is open and the request frame was sent */
  opened: Promise<void>;
  /** the frames received, parsed; rejects on timeout with what came so far */
  frames: Promise<any[]>; // eslint-disable-line @typescript-eslint/no-explicit-any -- as Answer.body
  /** the frames received so far (live): a test may act until the stream shows it is listening */
  received: readonly any[]; // eslint-disable-line @typescript-eslint/no-explicit-any -- as Answer.body
  close(): void;
}

export interface PlatformOptions {
  services: readonly HostedService[];
  /** `nats`: NATS, PostgreSQL and Redis under a prefix of the test's own (skips without them, outside CI) */
  profile?: 'local' | 'nats';
  /** with the platform's core services (signup, billing, pricing, usage, mail: priced calls are metered and charged); default false */
  platform?: boolean;
  /** the gateway's per-caller limit (default 100,000 a second: off the tests' way; see MicroServerOptions.gatewayRate) */
  gatewayRate?: { rate: number; burst?: number } | false;
  /** more core services of micro beside the server's own (e.g. only the platform's mail, which the user service sends through) */
  coreServices?: readonly CoreServiceFactory[];
  /** the runtime's settings (timings, the resolver of strangers' git hosts) for services that run tenants' code; default the server's */
  runtime?: MicroServerOptions['runtime'];
}

const silent = createLogger({ level: 'silent' });

/** A platform for one test file; undefined when the nats profile's engines are missing (the test was skipped). */
export async function startPlatform(t: TestContext, options: PlatformOptions): Promise<Platform | undefined> {
  const saved = { ...process.env };
  let drop: (() => Promise<void>) | undefined;
  if (options.profile === 'nats') {
    const nats = await natsPlatform(t, 'services');
    if (!nats) return undefined;
    Object.assign(process.env, nats.env);
    drop = nats.drop;
  }
  const home = mkdtempSync(join(tmpdir(), 'micro-services-'));
  const coreServices = [...(options.platform ? (await import('@micro/platform')).platformCoreServices() : []), ...(options.coreServices ?? [])];
  // the per-caller limit (50 calls a second by default) is not what these tests test: their
  // property runs make hundreds of calls a second, and a 429 would hide the answer they check
  const server = new MicroServer({ home, address: 'tcp://127.0.0.1:0', gateway: '127.0.0.1:0', logger: silent, services: options.services, coreServices, gatewayRate: options.gatewayRate ?? { rate: 100_000, burst: 100_000 }, ...(options.runtime ? { runtime: options.runtime } : {}) });
  try {
    await server.start();
  } catch (err) {
    process.env = saved;
    rmSync(home, { recursive: true, force: true });
    await drop?.();
    throw err;
  }
  const url = server.gatewayUrl as string;
  const admin = { ...(JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string }), namespace: 'micro' };
  const tokenClient = new Client({ address: server.address, namespace: 'micro', preferLocal: false });
  const adminToken = await new TokenSource(admin, tokenClient).get();
  const authAs = (creds: Credentials) => createClient(authApi, platformClient(server.address, [bearer(new TokenSource(creds, tokenClient))]));
  const tenant = async (namespace: string): Promise<Tenant> => {
    const { secret } = await authAs(admin).CreateAccount({ id: 'owner', namespace, scopes: ['admin'] });
    const owner = { id: 'owner', secret: secret as string, namespace };
    const { key } = await authAs(owner).CreateKey({ name: 'm3o' });
    return { namespace, key, owner };
  };
  const a = await tenant('tenant-a');
  const b = await tenant('tenant-b');
  const streams = new Set<WebSocket>();
  return {
    url,
    server,
    home,
    a,
    b,
    adminToken,
    tenant,
    call: (key, service, endpoint, body = {}) => call(url, key, service, endpoint, body),
    stream: (key, service, endpoint, body, opts) => stream(url, key, service, endpoint, body, opts ?? {}, streams),
    async close() {
      for (const ws of streams) ws.terminate();
      await server.stop();
      process.env = saved;
      rmSync(home, { recursive: true, force: true });
      await drop?.();
    },
  };
}

async function call(url: string, key: string | undefined, service: string, endpoint: string, body: unknown): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key) headers.authorization = `Bearer ${key}`;
  const res = await fetch(`${url}/v1/${service}/${endpoint}`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: the raw text is the answer
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

function stream(url: string, key: string, service: string, endpoint: string, body: unknown, options: StreamOptions, open: Set<WebSocket>): Stream {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/${service}/${endpoint}`, { headers: { authorization: `Bearer ${key}` } });
  open.add(ws);
  const frames: unknown[] = [];
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => {
      ws.send(JSON.stringify(body));
      resolve();
    });
    ws.once('error', reject);
  });
  const done = new Promise<unknown[]>((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`stream ${service}.${endpoint}: ${frames.length} frames in ${options.timeout ?? 10_000} ms: ${JSON.stringify(frames).slice(0, 500)}`));
    }, options.timeout ?? 10_000);
    ws.on('message', (data: Buffer) => {
      const text = data.toString('utf8');
      try {
        frames.push(JSON.parse(text));
      } catch {
        frames.push(text);
      }
      if (options.count !== undefined && frames.length >= options.count) {
        clearTimeout(timer);
        resolve(frames);
      }
    });
    ws.once('close', () => {
      clearTimeout(timer);
      open.delete(ws);
      resolve(frames);
    });
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
  // a rejection nobody awaits (the test read `opened` only) must not crash the runner
  done.catch(() => undefined);
  return { opened, frames: done, received: frames, close: () => ws.close() };
}

export { shapeOf, shapeProblems, endpointsOf } from './shapes.js';
export type { EndpointShape, Field } from './shapes.js';

/** Fails with every difference when `body` is not M3O's response shape of `service.endpoint`. */
export async function expectShape(service: string, endpoint: string, body: unknown): Promise<void> {
  const { shapeProblems } = await import('./shapes.js');
  const problems = shapeProblems(service, endpoint, body);
  if (problems.length > 0) throw new Error(`${service}.${endpoint} does not answer M3O's shape:\n  ${problems.join('\n  ')}\nbody: ${JSON.stringify(body).slice(0, 1000)}`);
}

/**
 * Fails unless `res` is M3O's error: HTTP status `status` with the body `{id, code, detail,
 * status}` (nothing else), `code` equal to it, `detail` matching, and `id` the service's when
 * `service` is given.
 */
export function expectRefused(res: Answer, status: number, detail: RegExp, service?: string): void {
  const body = JSON.stringify(res.body);
  if (res.status !== status) throw new Error(`expected a ${status}, got ${res.status}: ${body}`);
  const keys = Object.keys(res.body ?? {}).sort().join();
  if (keys !== 'code,detail,id,status') throw new Error(`expected {id, code, detail, status}, got ${body}`);
  if (res.body.code !== status) throw new Error(`expected code ${status}: ${body}`);
  if (service !== undefined && res.body.id !== service) throw new Error(`expected id ${service}: ${body}`);
  if (!detail.test(res.body.detail)) throw new Error(`expected a detail matching ${detail}: ${body}`);
}

/**
 * Calls `poke` (something that makes the stream say something) every `interval` ms until
 * the stream received a frame: a stream of changes says nothing when it is in place, so
 * this is how a test knows that what it does next will be heard.
 */
export async function untilHeard(stream: Pick<Stream, 'received'>, poke: () => Promise<unknown>, { interval = 100, timeout = 10_000 } = {}): Promise<void> {
  const until = Date.now() + timeout;
  while (stream.received.length === 0) {
    if (Date.now() > until) throw new Error(`the stream heard nothing in ${timeout} ms`);
    await poke();
    await new Promise((r) => setTimeout(r, interval));
  }
}

/**
 * `p.call`, waiting out the gateway's rate limit (a 429 with Retry-After, 50 calls a
 * second by default) rather than answering it: for property tests that make many calls.
 */
export async function callPatiently(p: Pick<Platform, 'call'>, key: string, service: string, endpoint: string, body?: unknown): Promise<Answer> {
  for (;;) {
    const res = await p.call(key, service, endpoint, body);
    if (res.status !== 429 || res.body?.id === service) return res;
    await new Promise((r) => setTimeout(r, 1_000 * Number(res.headers.get('retry-after') ?? 1)));
  }
}
