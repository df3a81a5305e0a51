import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { KubeError, kubeClient, resourcePath, type KubeObject, type WatchEvent } from './client.js';

/**
 * The client's own behaviour — retries, Retry-After, conflicts, 410 on a watch, followed
 * logs, errors that say what happened — against a scripted HTTP server whose answers each
 * test chooses (the fake API server in fake/ tests the driver against real semantics).
 */

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

const TOKEN = 'test-token';

async function scripted(t: test.TestContext, handler: Handler): Promise<{ kubeconfig: string; url: string; seen: string[]; server: Server }> {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push(`${req.method} ${req.url}`);
      if (req.headers.authorization !== `Bearer ${TOKEN}`) return status(res, 401, 'Unauthorized', 'no token');
      handler(req, res, Buffer.concat(chunks).toString());
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const dir = mkdtempSync(join(tmpdir(), 'kube-client-'));
  const kubeconfig = writeKubeconfig(dir, url, TOKEN);
  t.after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });
  return { kubeconfig, url, seen, server };
}

function writeKubeconfig(dir: string, url: string, token: string): string {
  const file = join(dir, 'kubeconfig');
  writeFileSync(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'u', user: { token } }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'x',
    }),
  );
  return file;
}

function json(res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(code, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function status(res: ServerResponse, code: number, reason: string, message: string, headers: Record<string, string> = {}): void {
  json(res, code, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, message, code }, headers);
}

const fast = { attempts: 4, backoff: { initial: 5, max: 50 }, timeout: 500 };
const secret = (data: Record<string, string>, rv?: string): KubeObject => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'micro-acme', ...(rv ? { resourceVersion: rv } : {}) }, stringData: data });

test('paths of namespaced, cluster and grouped kinds; an unknown kind is refused', () => {
  assert.equal(resourcePath('v1', 'Namespace', undefined, 'micro-acme'), '/api/v1/namespaces/micro-acme');
  assert.equal(resourcePath('apps/v1', 'Deployment', 'micro-acme'), '/apis/apps/v1/namespaces/micro-acme/deployments');
  assert.equal(resourcePath('batch/v1', 'Job', 'n', 'a b'), '/apis/batch/v1/namespaces/n/jobs/a%20b');
  assert.throws(() => resourcePath('v1', 'Gadget', 'n'), /does not know the Kubernetes kind v1 Gadget/);
  assert.throws(() => resourcePath('v1', 'Secret'), /namespaced/);
});

test('apply creates, then replaces with the current resourceVersion, reading again after a 409 Conflict', async (t) => {
  let stored: KubeObject | undefined;
  let version = 0;
  let conflicts = 1;
  const { kubeconfig, seen } = await scripted(t, (req, res, body) => {
    if (req.method === 'GET') return stored ? json(res, 200, stored) : status(res, 404, 'NotFound', 'secrets "s" not found');
    const obj = JSON.parse(body) as KubeObject;
    if (req.method === 'POST') {
      stored = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++version) } };
      return json(res, 201, stored);
    }
    if (req.method === 'PUT') {
      if (conflicts-- > 0) {
        // another writer got there first
        version++;
        stored = { ...(stored as KubeObject), metadata: { ...(stored as KubeObject).metadata, resourceVersion: String(version) } };
      }
      if (obj.metadata.resourceVersion !== stored?.metadata.resourceVersion) return status(res, 409, 'Conflict', 'the object has been modified; please apply your changes to the latest version and try again');
      stored = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++version) } };
      return json(res, 200, stored);
    }
  });
  const client = kubeClient(kubeconfig, fast);
  const created = await client.apply(secret({ a: '1' }));
  assert.equal(created.metadata.resourceVersion, '1');
  const replaced = await client.apply(secret({ a: '2' }));
  assert.deepEqual(replaced.stringData, { a: '2' });
  assert.equal(replaced.metadata.resourceVersion, '3');
  assert.deepEqual(
    seen.map((s) => s.split(' ')[0]),
    ['GET', 'POST', 'GET', 'PUT', 'GET', 'PUT'],
  );
});

test('429 waits for its Retry-After and 5xx backs off, then the call succeeds; past the attempts a clear KubeError', async (t) => {
  let calls = 0;
  const { kubeconfig } = await scripted(t, (req, res) => {
    calls++;
    if (req.url?.includes('/busy')) return status(res, 429, 'TooManyRequests', 'too many requests', { 'retry-after': '0' });
    if (calls === 1) return status(res, 429, 'TooManyRequests', 'slow down', { 'retry-after': '0' });
    if (calls === 2) return status(res, 503, 'ServiceUnavailable', 'etcd is not ready');
    json(res, 200, { ...secret({}), metadata: { name: 's', namespace: 'micro-acme', resourceVersion: '7' } });
  });
  const client = kubeClient(kubeconfig, fast);
  const got = await client.get('v1', 'Secret', 's', 'micro-acme');
  assert.equal(got?.metadata.resourceVersion, '7');
  assert.equal(calls, 3);
  await assert.rejects(client.get('v1', 'Secret', 'busy', 'micro-acme'), (err: unknown) => err instanceof KubeError && err.httpStatus === 429 && err.code === 503 && /kept throttling the runtime \(429/.test(err.message));
});

test('a refused connection and a server too slow to answer end in KubeErrors saying so', async (t) => {
  const { kubeconfig, server } = await scripted(t, (_req, res) => {
    setTimeout(() => json(res, 200, {}), 2_000).unref();
  });
  const slow = kubeClient(kubeconfig, { ...fast, attempts: 2, timeout: 100 });
  await assert.rejects(slow.list('v1', 'Secret', 'micro-acme'), (err: unknown) => err instanceof KubeError && /did not answer within 0.1 s/.test(err.message) && err.code === 503);
  const port = (server.address() as AddressInfo).port;
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  const dir = mkdtempSync(join(tmpdir(), 'kube-client-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const down = kubeClient(writeKubeconfig(dir, `http://127.0.0.1:${port}`, TOKEN), fast);
  await assert.rejects(down.get('v1', 'Secret', 's', 'micro-acme'), (err: unknown) => err instanceof KubeError && /could not be reached \(ECONNREFUSED\)/.test(err.message) && /MICRO_KUBECONFIG/.test(err.message));
});

test('errors name what the API server said: 404 is undefined for get and fine for remove; 401, 403 quota, 422 and 409 AlreadyExists are clear', async (t) => {
  const { kubeconfig, seen } = await scripted(t, (req, res) => {
    if (req.method === 'DELETE') return status(res, 404, 'NotFound', 'gone');
    if (req.url?.includes('/pods') && req.method === 'POST') return status(res, 403, 'Forbidden', 'pods "p" is forbidden: exceeded quota: compute, requested: limits.memory=2Gi, used: limits.memory=0, limited: limits.memory=1Gi');
    if (req.url?.includes('/deployments')) return status(res, 422, 'Invalid', 'Deployment.apps "X" is invalid: metadata.name: Invalid value: "X"');
    if (req.url?.includes('/jobs')) return status(res, 409, 'AlreadyExists', 'jobs.batch "b" already exists');
    status(res, 404, 'NotFound', 'not found');
  });
  const client = kubeClient(kubeconfig, fast);
  assert.equal(await client.get('v1', 'Secret', 'none', 'micro-acme'), undefined);
  await client.remove('v1', 'Secret', 'none', 'micro-acme');
  assert.ok(seen.some((s) => s.startsWith('DELETE /api/v1/namespaces/micro-acme/secrets/none')));
  const pod: KubeObject = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'micro-acme' } };
  await assert.rejects(client.create(pod), (err: unknown) => err instanceof KubeError && err.code === 403 && /quota is used up.*exceeded quota/.test(err.message));
  await assert.rejects(client.create({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'X', namespace: 'n' } }), (err: unknown) => err instanceof KubeError && err.code === 400 && /refused Deployment n\/X as invalid: .*Invalid value/.test(err.message));
  await assert.rejects(client.create({ apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'b', namespace: 'n' } }), (err: unknown) => err instanceof KubeError && err.code === 409 && err.reason === 'AlreadyExists');
  const dir = mkdtempSync(join(tmpdir(), 'kube-client-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const wrongToken = kubeClient(writeKubeconfig(dir, client.server, 'wrong'), fast);
  await assert.rejects(wrongToken.get('v1', 'Secret', 's', 'n'), (err: unknown) => err instanceof KubeError && err.httpStatus === 401 && /did not accept the runtime's credentials/.test(err.message));
});

test('a watch whose resourceVersion expired (410) lists again and goes on; a dropped watch resumes from the last version', async (t) => {
  let lists = 0;
  let watches = 0;
  const rvs: string[] = [];
  const pod = (name: string, rv: string) => ({ metadata: { name, namespace: 'n', resourceVersion: rv } });
  const { kubeconfig } = await scripted(t, (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.searchParams.get('watch') !== 'true') {
      lists++;
      return json(res, 200, { kind: 'PodList', metadata: { resourceVersion: lists === 1 ? '10' : '20' }, items: [pod(lists === 1 ? 'a' : 'b', lists === 1 ? '10' : '20')] });
    }
    watches++;
    rvs.push(url.searchParams.get('resourceVersion') ?? '');
    res.writeHead(200, { 'content-type': 'application/json' });
    if (watches === 1) {
      // the first watch: one change, then the history is gone
      res.write(`${JSON.stringify({ type: 'MODIFIED', object: pod('a', '11') })}\n`);
      res.end(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version: 11 (15)' } })}\n`);
    } else if (watches === 2) {
      // after the relist: an event, then the server ends the watch (its timeout)
      res.end(`${JSON.stringify({ type: 'ADDED', object: pod('c', '21') })}\n`);
    } else {
      res.write(`${JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '22' } } })}\n`);
      res.write(`${JSON.stringify({ type: 'DELETED', object: pod('c', '23') })}\n`);
    }
  });
  const client = kubeClient(kubeconfig, fast);
  const abort = new AbortController();
  const seen: string[] = [];
  for await (const event of client.watch('v1', 'Pod', 'n', {}, abort.signal) as AsyncGenerator<WatchEvent>) {
    seen.push(event.type === 'SYNC' ? `SYNC ${event.objects.map((o) => `${o.kind}/${o.metadata.name}`).join(',')}` : `${event.type} ${event.object.metadata.name}`);
    if (event.type === 'DELETED') abort.abort();
  }
  assert.deepEqual(seen, ['SYNC Pod/a', 'MODIFIED a', 'SYNC Pod/b', 'ADDED c', 'DELETED c']);
  assert.deepEqual(rvs, ['10', '20', '21']);
});

test("a pod's log: lines with the kubelet's times, followed until the stream ends or the reader stops", async (t) => {
  const { kubeconfig, seen } = await scripted(t, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('2024-05-01T10:00:00.123456789Z first line\n');
    res.write('2024-05-01T10:00:01.000000000Z second {"level":30}\n');
    if (!req.url?.includes('follow=true')) return res.end();
    const timer = setInterval(() => res.write('2024-05-01T10:00:02.000000000Z more\n'), 20);
    res.on('close', () => clearInterval(timer));
  });
  const client = kubeClient(kubeconfig, fast);
  const lines: string[] = [];
  for await (const l of client.logs('n', 'p', { container: 'service', tailLines: 10 })) lines.push(`${l.time} ${l.line}`);
  assert.deepEqual(lines, ['2024-05-01T10:00:00.123Z first line', '2024-05-01T10:00:01.000Z second {"level":30}']);
  const abort = new AbortController();
  let n = 0;
  for await (const l of client.logs('n', 'p', { follow: true }, abort.signal)) {
    if (++n === 4) abort.abort();
    assert.ok(l.line);
  }
  assert.equal(n, 4);
  assert.ok(seen.some((s) => s.includes('/api/v1/namespaces/n/pods/p/log?timestamps=true&container=service&tailLines=10')));
});
