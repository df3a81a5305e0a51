/**
 * The function service (issue 18): a JavaScript function deployed with `function.Deploy`
 * and called with `function.Call` through the gateway of a `micro server` in this
 * process, as M3O's client calls it (POST /v1 with an API key). The function runs in the
 * tenant's sandbox (bwrap, a uid of its own, cgroups; called over its unix socket), each
 * call in one of the wrapper's worker threads. Needs root and bubblewrap.
 *
 * - warm: calls/s with 8 in flight (the function serves 2 at once), and p50/p99 of calls
 *   made one at a time;
 * - cold: ms from a call to a function scaled to zero (MICRO_FUNCTION_IDLE=1: idle for a
 *   second, then stopped) to its answer: the project uploaded again, the runtime's
 *   start in the sandbox, the registration, the first worker loading the module, the call.
 *
 * The peer is the same function's module in this process: a warm call is the exported
 * function called directly; a cold start imports a fresh copy of the module (a new file)
 * and calls it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { TestContext } from 'node:test';
import { Agent, request } from 'node:http';
import { service } from '@micro/service-function';
import { startPlatform, type Platform } from '@micro/services-kit/testing';
import { bothSides, closedLoopThroughput, percentile, sequentialLatencies, type Benchmark, type Contestant } from './harness.js';

const INFLIGHT = 8;
const ROUND_MS = 2_000;
const LATENCIES = 300;
const COLD_STARTS = 3;

const SOURCE = `export default async function (req) {
  let h = 0;
  for (const c of JSON.stringify(req)) h = (h * 31 + c.charCodeAt(0)) | 0;
  return { hello: req.name ?? 'world', hash: h };
}
`;

type Call = () => Promise<unknown>;

function contestant(warm: Call, cold: () => Promise<number>, close: () => Promise<void>): Contestant {
  return {
    async warmUp() {
      await closedLoopThroughput(warm, INFLIGHT, 500);
    },
    async round() {
      const starts = new Float64Array(COLD_STARTS);
      for (let i = 0; i < COLD_STARTS; i++) starts[i] = await cold();
      await warm();
      const values: Record<string, number> = { 'function.cold': percentile(starts.sort(), 50) };
      values['function.warm'] = await closedLoopThroughput(warm, INFLIGHT, ROUND_MS);
      const lat = await sequentialLatencies(warm, LATENCIES);
      values['function.warm.p50'] = percentile(lat, 50);
      values['function.warm.p99'] = percentile(lat, 99);
      return values;
    },
    close,
  };
}

function post(agent: Agent, url: URL, headers: Record<string, string>, body: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request({ agent, host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.once('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`POST ${url.pathname}: ${res.statusCode} ${text}`))));
    });
    req.once('error', reject);
    req.end(body);
  });
}

async function until(what: string, check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`${what} did not happen within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function micro(): Promise<Contestant> {
  process.env.MICRO_FUNCTION_IDLE = '1';
  // the harness only: startPlatform reads the test context for the nats profile alone
  const p = (await startPlatform({} as TestContext, { services: [service] })) as Platform;
  if (!p) throw new Error('the platform did not start');
  const limiter = (p.server as unknown as { gateway: { limiter?: { rate: number; burst: number } } }).gateway.limiter;
  if (limiter) {
    limiter.rate = 1e9;
    limiter.burst = 1e9;
  }
  const q = await p.call(p.adminToken, 'quota', 'Set', { namespace: p.a.namespace, limits: { requestsPerSecond: 1e9 } });
  if (q.status !== 200) throw new Error(`quota.Set: ${JSON.stringify(q.body)}`);
  const d = await p.call(p.a.key, 'function', 'Deploy', { name: 'bench', source: SOURCE });
  if (d.status !== 200 || d.body.function.status !== 'running') throw new Error(`function.Deploy: ${JSON.stringify(d.body)}`);
  const agent = new Agent({ keepAlive: true, maxSockets: INFLIGHT });
  const target = new URL('/v1/function/Call', p.url);
  const headers = { authorization: `Bearer ${p.a.key}`, 'content-type': 'application/json' };
  const body = JSON.stringify({ name: 'bench', request: { name: 'x' } });
  const warm = () => post(agent, target, headers, body);
  const status = async () => (await p.call(p.a.key, 'function', 'Describe', { name: 'bench' })).body.function?.status as string;
  const cold = async () => {
    await until('scaling to zero', async () => (await status()) === 'idle');
    const t = performance.now();
    await warm();
    return performance.now() - t;
  };
  return contestant(warm, cold, async () => {
    agent.destroy();
    await p.close();
    delete process.env.MICRO_FUNCTION_IDLE;
  });
}

async function peer(): Promise<Contestant> {
  const dir = mkdtempSync(join(tmpdir(), 'micro-bench-function-'));
  let n = 0;
  const load = async () => {
    const file = join(dir, `fn-${n++}.mjs`);
    writeFileSync(file, SOURCE);
    return (await import(pathToFileURL(file).href)) as { default: (req: unknown) => Promise<unknown> };
  };
  const fn = (await load()).default;
  const warm = () => fn({ name: 'x' });
  const cold = async () => {
    const t = performance.now();
    await (await load()).default({ name: 'x' });
    return performance.now() - t;
  };
  return contestant(warm, cold, async () => rmSync(dir, { recursive: true, force: true }));
}

export const fn: Benchmark = {
  name: 'function',
  title: 'function: a JavaScript function deployed and called through the gateway, warm and from zero (needs root and bubblewrap)',
  peerName: 'the same function called directly in the bench process',
  rounds: 3,
  figures: [
    { id: 'function.cold', label: 'cold start: a call to a function scaled to zero, to its answer (median of 3)', unit: 'ms', better: 'lower' },
    { id: 'function.warm', label: `function.Call through the gateway, ${INFLIGHT} in flight`, unit: 'calls/s', better: 'higher' },
    { id: 'function.warm.p50', label: 'function.Call latency p50, one at a time', unit: 'µs', better: 'lower' },
    { id: 'function.warm.p99', label: 'function.Call latency p99, one at a time', unit: 'µs', better: 'lower' },
  ],
  async setup() {
    return bothSides(() => micro(), () => peer());
  },
};
