/**
 * The HTTP gateway under more and more connections: requests/s and p99 latency at
 * LEVELS keep-alive connections, each with one `POST /v1/greeter/Hello {"name":"x"}` in
 * flight (a closed loop, http-load.ts), Micro's gateway with the greeter in the same
 * process (servers/micro-gateway.ts, as in the `gateway` benchmark) vs bare Fastify 5
 * (servers/fastify-greeter.ts, as in `gateway-fastify`), both servers in a child process
 * on the servers' CPU.
 *
 * In each round a side goes through every level: it opens that many connections (at most
 * 200 connects at a time), loads them untimed for WARM_MS, measures for LEVEL_MS and
 * closes them. `npm run bench` draws the medians as bench/results/gateway-concurrency.svg
 * (plot.ts). No target: the figures show how both degrade.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { EXPECTED, INVALID, REQUEST } from './greeter.js';
import { startChild, type BenchEnv, type Benchmark, type ChildServer, type Contestant, type FigureSpec } from './harness.js';
import { HttpLoad, jsonPost } from './http-load.js';

export const LEVELS = [10, 50, 100, 250, 500, 1000] as const;
const LEVEL_MS = 1_200;
const WARM_MS = 250;
const PATH = '/v1/greeter/Hello';
const BODY = JSON.stringify({ message: EXPECTED });
const NAME = 'gateway-concurrency';

const script = (name: string) => fileURLToPath(new URL(`./servers/${name}.js`, import.meta.url));
const version = (pkg: string) => (createRequire(import.meta.url)(`${pkg}/package.json`) as { version: string }).version;

/** Figure ids of one level: `gateway-concurrency.c100.rps` and `.p99`. */
export const levelId = (level: number, what: 'rps' | 'p99') => `${NAME}.c${level}.${what}`;

async function contestant(side: string, server: ChildServer<{ url: string }>): Promise<Contestant> {
  const url = server.info.url;
  const { hostname, port } = new URL(url);
  const ok = jsonPost(hostname, Number(port), PATH, REQUEST);
  const bad = jsonPost(hostname, Number(port), PATH, INVALID);
  return {
    async warmUp() {
      const load = await HttpLoad.open(url, 50);
      try {
        const res = await load.once(ok);
        if (res.status !== 200 || res.body !== BODY) throw new Error(`${side} answered ${res.status} ${res.body.slice(0, 300)} instead of 200 ${BODY}`);
        const refused = await load.once(bad);
        if (refused.status < 400 || refused.status >= 500) throw new Error(`${side} answered ${refused.status} to an invalid request: it does not validate`);
        await load.run(ok, BODY, 1_000);
      } finally {
        load.close();
      }
    },
    async round() {
      const out: Record<string, number> = {};
      for (const level of LEVELS) {
        const load = await HttpLoad.open(url, level);
        try {
          await load.run(ok, BODY, WARM_MS);
          const r = await load.run(ok, BODY, LEVEL_MS);
          out[levelId(level, 'rps')] = r.rate;
          out[levelId(level, 'p99')] = r.p99;
        } finally {
          load.close();
        }
      }
      return out;
    },
    close: () => server.stop(),
  };
}

async function setup(env: BenchEnv): Promise<{ micro: Contestant; peer: Contestant }> {
  const micro = await startChild<{ url: string }>(script('micro-gateway'), { cpus: env.serverCpus });
  try {
    const fastify = await startChild<{ url: string }>(script('fastify-greeter'), { cpus: env.serverCpus });
    return { micro: await contestant('micro gateway', micro), peer: await contestant('fastify', fastify) };
  } catch (err) {
    await micro.stop();
    throw err;
  }
}

export const gatewayConcurrency: Benchmark = {
  name: NAME,
  title: `HTTP gateway → service in the same process at ${LEVELS.join(', ')} connections, vs a bare HTTP route`,
  peerName: `bare fastify ${version('fastify')}`,
  figures: LEVELS.flatMap((level): FigureSpec[] => [
    { id: levelId(level, 'rps'), label: `gateway → in-process service: requests/s, ${level} connections`, unit: 'calls/s', better: 'higher' },
    { id: levelId(level, 'p99'), label: `gateway → in-process service: latency p99, ${level} connections`, unit: 'µs', better: 'lower' },
  ]),
  usesChildren: true,
  setup,
};
