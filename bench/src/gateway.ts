/**
 * The HTTP gateway of `micro server` in front of the greeter, against HTTP peers: each
 * side is a server in a child process (pinned to the servers' CPU), loaded from this
 * process by the same load generator (http-load.ts): 50 keep-alive connections, each
 * with one `POST /v1/greeter/Hello {"name":"x"}` in flight (a closed loop) for 3 s.
 * Figures: requests/s, and the p50 and p99 latency of the requests of that round.
 *
 * - `gateway`: micro server's gateway → the greeter in the same process, vs moleculer-web
 *   0.11 → the greeter on the same broker.
 * - `gateway-fastify`: the same micro side vs bare Fastify 5 answering the same JSON (a
 *   JSON schema on the body): the cost of a gateway and an SDK call over a bare route.
 * - `gateway-remote`: micro server's gateway → the greeter in another process (the SDK's
 *   TCP protocol), vs moleculer-web → a greeter broker in another process (TCP
 *   transporter). Both server processes run on the servers' CPU.
 *
 * Before it is measured, each side must answer `{"name":"x"}` with
 * `{"message":"Hello x"}` and refuse `{"name":42}` with a 4xx.
 * Calls to the micro gateway are anonymous: a public rule opens `service:greeter:*`
 * (see servers/micro-gateway.ts), so no token is verified per request.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { EXPECTED, INVALID, REQUEST } from './greeter.js';
import { startChild, type BenchEnv, type Benchmark, type ChildServer, type Contestant, type FigureSpec } from './harness.js';
import { HttpLoad, jsonPost } from './http-load.js';

const CONNECTIONS = 50;
const ROUND_MS = 3_000;
const WARMUP_MS = 1_000;
const PATH = '/v1/greeter/Hello';
const BODY = JSON.stringify({ message: EXPECTED });

const script = (name: string) => fileURLToPath(new URL(`./servers/${name}.js`, import.meta.url));
const version = (pkg: string) => (createRequire(import.meta.url)(`${pkg}/package.json`) as { version: string }).version;

type Url = { url: string };

/** A side: HTTP load against `url`, closing `children` (last started first) at the end. */
async function contestant(side: string, prefix: string, url: string, children: ChildServer<unknown>[]): Promise<Contestant> {
  const { hostname, port } = new URL(url);
  const ok = jsonPost(hostname, Number(port), PATH, REQUEST);
  const bad = jsonPost(hostname, Number(port), PATH, INVALID);
  let load: HttpLoad;
  try {
    load = await HttpLoad.open(url, CONNECTIONS);
  } catch (err) {
    for (const c of [...children].reverse()) await c.stop();
    throw err;
  }
  return {
    async warmUp() {
      const res = await load.once(ok);
      if (res.status !== 200 || res.body !== BODY) throw new Error(`${side} answered ${res.status} ${res.body.slice(0, 300)} instead of 200 ${BODY}`);
      const refused = await load.once(bad);
      if (refused.status < 400 || refused.status >= 500) throw new Error(`${side} answered ${refused.status} ${refused.body.slice(0, 300)} to an invalid request: it does not validate`);
      await load.run(ok, BODY, WARMUP_MS);
    },
    async round() {
      const r = await load.run(ok, BODY, ROUND_MS);
      return { [`${prefix}.rate`]: r.rate, [`${prefix}.p50`]: r.p50, [`${prefix}.p99`]: r.p99 };
    },
    async close() {
      load.close();
      for (const c of [...children].reverse()) await c.stop();
    },
  };
}

async function microInProcess(env: BenchEnv, prefix: string): Promise<Contestant> {
  const server = await startChild<Url>(script('micro-gateway'), { cpus: env.serverCpus });
  return contestant('micro gateway', prefix, server.info.url, [server]);
}

async function microRemote(env: BenchEnv, prefix: string): Promise<Contestant> {
  const node = await startChild<{ record: unknown }>(script('micro-greeter-node'), { cpus: env.serverCpus });
  let server: ChildServer<Url>;
  try {
    server = await startChild<Url>(script('micro-gateway'), { cpus: env.serverCpus, args: ['--remote', JSON.stringify(node.info.record)] });
  } catch (err) {
    await node.stop();
    throw err;
  }
  return contestant('micro gateway (remote greeter)', prefix, server.info.url, [node, server]);
}

async function moleculerWeb(env: BenchEnv, prefix: string): Promise<Contestant> {
  const web = await startChild<Url>(script('moleculer-web'), { cpus: env.serverCpus });
  return contestant('moleculer-web', prefix, web.info.url, [web]);
}

async function moleculerWebRemote(env: BenchEnv, prefix: string): Promise<Contestant> {
  const node = await startChild<{ nodeID: string; port: number }>(script('moleculer-greeter'), { cpus: env.serverCpus });
  let web: ChildServer<Url>;
  try {
    web = await startChild<Url>(script('moleculer-web'), { cpus: env.serverCpus, args: ['--remote', node.info.nodeID, String(node.info.port)], timeoutMs: 20_000 });
  } catch (err) {
    await node.stop();
    throw err;
  }
  return contestant('moleculer-web (remote greeter)', prefix, web.info.url, [node, web]);
}

async function fastify(env: BenchEnv, prefix: string): Promise<Contestant> {
  const server = await startChild<Url>(script('fastify-greeter'), { cpus: env.serverCpus });
  return contestant('fastify', prefix, server.info.url, [server]);
}

async function nodeHttp(env: BenchEnv, prefix: string): Promise<Contestant> {
  const server = await startChild<Url>(script('nodehttp-greeter'), { cpus: env.serverCpus });
  return contestant('node:http', prefix, server.info.url, [server]);
}

function figures(prefix: string, what: string, target?: number): FigureSpec[] {
  return [
    { id: `${prefix}.rate`, label: `${what}: requests/s, ${CONNECTIONS} connections`, unit: 'calls/s', better: 'higher', target },
    { id: `${prefix}.p50`, label: `${what}: latency p50 under that load`, unit: 'µs', better: 'lower' },
    { id: `${prefix}.p99`, label: `${what}: latency p99 under that load`, unit: 'µs', better: 'lower' },
  ];
}

/** Starts the micro side, then the peer; closes the first if the second fails. */
async function pair(micro: () => Promise<Contestant>, peer: () => Promise<Contestant>): Promise<{ micro: Contestant; peer: Contestant }> {
  const m = await micro();
  try {
    return { micro: m, peer: await peer() };
  } catch (err) {
    await m.close();
    throw err;
  }
}

export const gateway: Benchmark = {
  name: 'gateway',
  title: 'HTTP gateway → service in the same process',
  peerName: `moleculer-web ${version('moleculer-web')}`,
  figures: figures('gateway', 'gateway → in-process service', 2),
  usesChildren: true,
  setup: (env) => pair(() => microInProcess(env, 'gateway'), () => moleculerWeb(env, 'gateway')),
};

export const gatewayFastify: Benchmark = {
  name: 'gateway-fastify',
  title: 'HTTP gateway → service in the same process, vs a bare HTTP route',
  peerName: `bare fastify ${version('fastify')}`,
  figures: figures('gateway-fastify', 'gateway → in-process service', 0.9),
  usesChildren: true,
  setup: (env) => pair(() => microInProcess(env, 'gateway-fastify'), () => fastify(env, 'gateway-fastify')),
};

/**
 * The floor: the same Micro side against bare node:http (no framework, a hand-written
 * check of the one field). No target: it shows how far any Node.js HTTP/1.1 server can
 * go on this machine, which bounds what the ratios to the other peers can be.
 */
export const gatewayNodeHttp: Benchmark = {
  name: 'gateway-nodehttp',
  title: 'HTTP gateway → service in the same process, vs bare node:http',
  peerName: `bare node:http ${process.version}`,
  figures: figures('gateway-nodehttp', 'gateway → in-process service'),
  usesChildren: true,
  setup: (env) => pair(() => microInProcess(env, 'gateway-nodehttp'), () => nodeHttp(env, 'gateway-nodehttp')),
};

export const gatewayRemote: Benchmark = {
  name: 'gateway-remote',
  title: 'HTTP gateway → service in another process',
  peerName: `moleculer-web ${version('moleculer-web')}`,
  figures: figures('gateway-remote', 'gateway → remote service', 2),
  usesChildren: true,
  setup: (env) => pair(() => microRemote(env, 'gateway-remote'), () => moleculerWebRemote(env, 'gateway-remote')),
};
