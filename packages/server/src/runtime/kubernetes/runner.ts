#!/usr/bin/env node
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import https from 'node:https';
import { Client, defaultRegistry, HEALTH_ENDPOINT, type BlobStore } from '@micro/sdk';
import { ARTIFACT_LIMITS, ARTIFACT_MAX_BYTES, packBuild, unpackBuild } from '../artifact.js';
import { buildPath, buildService, defaultProvided, linkProvided, readPackage } from '../build.js';
import { extractUpload, UPLOAD_LIMITS } from '../upload.js';

/**
 * The entry of the runner image (`node /micro/runner.js <command>`), what the pods of the
 * Kubernetes runtime run:
 *
 * - `build` (the build Job): fetches the source from micro server (MICRO_RUNNER_SOURCE, a
 *   signed URL), unpacks it under the rules of uploads, builds it as the local runtime
 *   does (build.ts: npm install, the provided packages linked, tsc, the entry file), packs
 *   it as artifact.ts does and uploads it (MICRO_RUNNER_BUILD). Its progress goes to
 *   stdout as `{"step","message"}` lines, which micro server streams to `micro run`.
 * - `run` (each pod of the Deployment): downloads the build (MICRO_RUNNER_ARTIFACT),
 *   checks its SHA-256 (MICRO_RUNNER_SHA256), unpacks it into /work, links the provided
 *   packages and starts the service with its environment, listening on the pod's IP.
 *   SIGTERM: its registry nodes leave the registry first, callers get MICRO_RUNNER_DRAIN
 *   ms (default 2,000) to move, then the service gets SIGTERM (the SDK lets calls in
 *   flight finish) and the runner exits as the service did.
 * - `ready` (the readiness probe): exit 0 when the service of this pod is registered and
 *   answers Debug.Health.
 *
 * MICRO_RUNNER_WORK (default /work, an emptyDir: the root file system is read-only) is
 * where it builds and runs.
 */

const WORK = process.env.MICRO_RUNNER_WORK ?? '/work';

function need(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: the runner is started by micro server's Kubernetes runtime`);
  return value;
}

/** The environment of the service and of build steps: the pod's, without the runner's own settings. */
function serviceEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MICRO_RUNNER_')));
}

async function* download(url: string): AsyncGenerator<Uint8Array> {
  const res = await fetch(url);
  if (res.status !== 200 || !res.body) throw new Error(`GET ${redact(url)} answered ${res.status}: ${(await res.text()).slice(0, 500)}`);
  yield* res.body as unknown as AsyncIterable<Uint8Array>;
}

/** PUTs a stream (chunked) and resolves once the server took it. */
function upload(url: string, data: AsyncIterable<Uint8Array>, headers: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith('https:') ? https : http).request(url, { method: 'PUT', headers: { 'content-type': 'application/gzip', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => (res.statusCode && res.statusCode < 300 ? resolve() : reject(new Error(`PUT ${redact(url)} answered ${res.statusCode}: ${Buffer.concat(chunks).toString().slice(0, 500)}`))));
    });
    req.on('error', reject);
    void (async () => {
      try {
        for await (const chunk of data) if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
        req.end();
      } catch (err) {
        req.destroy(err as Error);
        reject(err);
      }
    })();
  });
}

/** A signed URL without its token, for messages. */
function redact(url: string): string {
  return url.replace(/\/[^/]+$/, '/…');
}

function progress(step: 'fetch' | 'install' | 'build', message: string): void {
  process.stdout.write(`${JSON.stringify({ step, message })}\n`);
}

async function build(): Promise<void> {
  const source = need('MICRO_RUNNER_SOURCE');
  const target = need('MICRO_RUNNER_BUILD');
  const dir = join(WORK, 'build');
  progress('fetch', 'fetching the source from micro server');
  const { files, bytes } = await extractUpload(download(source), dir, 'source', UPLOAD_LIMITS);
  progress('fetch', `unpacked ${files} files (${Math.ceil(bytes / 1024)} KiB)`);
  const pkg = readPackage(dir);
  const entry = await buildService(dir, pkg, {
    provided: defaultProvided(),
    env: { ...serviceEnv(), PATH: buildPath(process.env.PATH), npm_config_update_notifier: 'false', npm_config_cache: join(WORK, '.npm') },
    installTimeout: 10 * 60_000,
    buildTimeout: 5 * 60_000,
    progress,
  });
  progress('build', `built: entry ${entry}; uploading`);
  // artifact.ts's format, written to micro server instead of a blob store
  const sink = {
    put: (_key: string, data: AsyncIterable<Uint8Array>) => upload(target, data, { 'micro-entry': entry }),
    delete: async () => undefined,
  } as unknown as BlobStore;
  const packed = await packBuild(dir, sink, 'build', '', ARTIFACT_MAX_BYTES);
  progress('build', `uploaded the build (${packed.size} bytes, SHA-256 ${packed.sha256.slice(0, 12)}…)`);
}

async function run(): Promise<void> {
  const artifact = need('MICRO_RUNNER_ARTIFACT');
  const sha256 = need('MICRO_RUNNER_SHA256');
  const entry = need('MICRO_RUNNER_ENTRY');
  const dir = join(WORK, 'app');
  // /work outlives a container's restart in its pod (an emptyDir): a restarted runner unpacks afresh
  await rm(dir, { recursive: true, force: true });
  const source = { get: () => download(artifact) } as unknown as BlobStore;
  await unpackBuild(source, { key: 'build', sha256 }, '', dir, ARTIFACT_LIMITS);
  await linkProvided(dir, defaultProvided());
  const instance = process.env.MICRO_POD_NAME ?? hostname();
  const child = spawn(process.execPath, [join(dir, entry)], {
    cwd: dir,
    stdio: 'inherit',
    env: { ...serviceEnv(), MICRO_RUNTIME_INSTANCE: instance, MICRO_SERVICE_ADDRESS: `tcp://${process.env.MICRO_POD_IP || '0.0.0.0'}:0` },
  });
  let stopping = false;
  process.on('SIGTERM', () => {
    if (stopping) return;
    stopping = true;
    void drain(instance).finally(() => child.kill('SIGTERM'));
  });
  process.on('SIGINT', () => child.kill('SIGINT'));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 + 15 : 1)));
}

/** Takes this pod's nodes out of the registry and gives callers time to move (`micro update` fails no call). */
async function drain(instance: string): Promise<void> {
  const namespace = process.env.MICRO_NAMESPACE;
  try {
    const registry = defaultRegistry();
    for (const record of await registry.listServices({ namespace })) {
      const nodes = record.nodes.filter((n) => n.metadata?.instance === instance);
      if (nodes.length > 0) await registry.deregister({ ...record, nodes }, { namespace });
    }
  } catch (err) {
    process.stderr.write(`runner: could not leave the registry before stopping: ${(err as Error).message}\n`);
  }
  await new Promise((r) => setTimeout(r, Number(process.env.MICRO_RUNNER_DRAIN ?? 2_000)));
}

async function ready(): Promise<void> {
  const instance = process.env.MICRO_POD_NAME ?? hostname();
  const namespace = process.env.MICRO_NAMESPACE;
  const records = await defaultRegistry().listServices({ namespace });
  for (const record of records) {
    const node = record.nodes.find((n) => n.metadata?.instance === instance);
    if (!node) continue;
    const client = new Client({ ...(namespace ? { namespace } : {}), address: node.address });
    await client.call(record.name, HEALTH_ENDPOINT, {}, { timeout: 3_000 });
    return;
  }
  throw new Error(`no service of this pod (${instance}) is registered yet`);
}

const commands: Record<string, () => Promise<void>> = { build, run, ready };
const command = process.argv[2] ?? '';
const main = commands[command];
if (!main) {
  process.stderr.write(`usage: runner.js build|run|ready (not ${JSON.stringify(command)})\n`);
  process.exit(2);
}
main().then(
  () => {
    // run lives with its service; build and ready are done
    if (command !== 'run') process.exit(0);
  },
  (err: unknown) => {
    process.stderr.write(`runner ${command}: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
