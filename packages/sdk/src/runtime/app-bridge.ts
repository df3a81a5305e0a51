/**
 * The app bridge: how the runtime runs a plain HTTP app (`micro run` with `app`, the app
 * service's Run). The runtime starts `node app-bridge.js <entry>` in the app's sandbox
 * instead of `node <entry>`; this process
 *
 * 1. starts the app (`node <entry>`) with PORT set and without any MICRO_ variable (the
 *    platform's credentials, its address, its home): an app is a web server, not a micro
 *    service, and code that answers the internet should not hold a key to the tenant's
 *    namespace;
 * 2. waits until the app answers HTTP on 127.0.0.1:$PORT (any status counts);
 * 3. listens on MICRO_SERVICE_ADDRESS (the sandbox's unix socket, the one address of the
 *    sandbox the gateway can reach: the sandbox has no network) and pipes each connection
 *    to the app's port;
 * 4. registers that address as a node of MICRO_SERVICE_NAME with `protocol: http`
 *    metadata, so the runtime's readiness (a registry node of its instance) and the
 *    gateway's app proxy find it; heart-beats it; deregisters on SIGTERM.
 *
 * Outside a sandbox (namespace micro, or MICRO_RUNTIME_SANDBOX=off) there is no socket of
 * its own: the app gets a free port of the host and the bridge listens on another one.
 * When the app exits, the bridge exits with its status, and the runtime's supervision
 * restarts both.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { rmSync } from 'node:fs';
import { defaultRegistry } from '../client/defaults.js';
import type { ServiceRecord } from '../registry/registry.js';
import { APP_PROTOCOL, APP_PROTOCOL_KEY } from './definition.js';

const PROBE_EVERY = 100;
/** the app's process, once started: it does not outlive the bridge */
let app: ChildProcess | undefined;
const TTL = 30;

/** Whether something answers HTTP on 127.0.0.1:port. */
export function answersHttp(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, method: 'HEAD', path: '/', timeout: 2_000, agent: false }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

/** A port of 127.0.0.1 free now. */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve, reject) => s.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

/** Forwards every connection to the app's port; listens on the sandbox's socket, else on a free port. */
async function listenBridge(port: number, socket: string | undefined): Promise<{ server: Server; address: string }> {
  const server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    client.pipe(upstream).pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  });
  if (socket) {
    rmSync(socket, { force: true });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(socket, resolve));
    return { server, address: `unix://${socket}` };
  }
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  return { server, address: `tcp://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function main(): Promise<void> {
  const entry = process.argv[2];
  const name = process.env.MICRO_SERVICE_NAME;
  const namespace = process.env.MICRO_NAMESPACE;
  if (!entry || !name || !namespace) throw new Error('usage: MICRO_SERVICE_NAME=… MICRO_NAMESPACE=… node app-bridge.js <entry>');
  const socket = process.env.MICRO_SERVICE_ADDRESS?.startsWith('unix://') ? process.env.MICRO_SERVICE_ADDRESS.slice('unix://'.length) : undefined;
  // in its own network namespace the app may have the port it asked for; on the host, a free one
  const port = socket ? Number(process.env.PORT) || 8080 : await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port) };
  for (const k of Object.keys(env)) if (k.startsWith('MICRO_')) delete env[k];
  app = spawn(process.execPath, [entry], { env, stdio: 'inherit' });
  let exited = false;
  let record: ServiceRecord | undefined;
  const registry = defaultRegistry();
  const leave = async () => {
    if (record) await registry.deregister(record, { namespace }).catch(() => undefined);
    record = undefined;
  };
  app.once('exit', (code, signal) => {
    exited = true;
    void leave().finally(() => process.exit(code ?? (signal ? 1 : 0)));
  });
  process.once('SIGTERM', () => {
    void leave().finally(() => {
      if (exited) process.exit(0);
      app?.kill('SIGTERM');
    });
  });
  while (!exited && !(await answersHttp(port))) await new Promise((r) => setTimeout(r, PROBE_EVERY));
  if (exited) return;
  const { address } = await listenBridge(port, socket);
  const metadata: Record<string, string> = { pid: String(process.pid), [APP_PROTOCOL_KEY]: APP_PROTOCOL, port: String(port) };
  if (process.env.MICRO_RUNTIME_INSTANCE) metadata.instance = process.env.MICRO_RUNTIME_INSTANCE;
  record = { name, version: 'app', namespace, endpoints: [], nodes: [{ id: `${name}-${randomBytes(6).toString('hex')}`, address, metadata }] };
  const rec = record;
  await registry.register(rec, { ttl: TTL, namespace });
  setInterval(() => {
    if (record) registry.register(rec, { ttl: TTL, namespace }).catch(() => undefined);
  }, (TTL / 3) * 1000).unref();
  console.log(`app answers HTTP on port ${port}; served at ${address}`);
}

main().catch((err: unknown) => {
  console.error(`app bridge: ${(err as Error).message}`);
  app?.kill('SIGKILL');
  process.exit(1);
});
