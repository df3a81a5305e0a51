import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { APP_PROTOCOL, APP_PROTOCOL_KEY, isMicroError, MemoryRegistry, type MicroError } from '@micro/sdk';
import { APP_CSP, appRequestHeaders, appTarget, proxyApp } from './apps.js';

/* The gateway's app proxy: what it makes of paths and headers, and where it forwards (end to end with a sandboxed app: services/app's tests). */

test('an app path names one namespace and one app name, taken as they are', () => {
  assert.deepEqual(appTarget('/app/tenant-a/web/'), { namespace: 'tenant-a', name: 'web', path: '/' });
  assert.deepEqual(appTarget('/app/tenant-a/web/a/b%2Fc?x=1&y'), { namespace: 'tenant-a', name: 'web', path: '/a/b%2Fc?x=1&y' });
  assert.deepEqual(appTarget('/app/tenant-a/web/../../x'), { namespace: 'tenant-a', name: 'web', path: '/../../x' });
  assert.deepEqual(appTarget('/app/tenant-a/web?q=1'), { redirect: '/app/tenant-a/web/?q=1' });
});

test('a malformed or hostile namespace or name is a 404', () => {
  for (const path of ['/app/', '/app/tenant-a', '/app/tenant-a/', '/app/../tenant-a/web/', '/app/tenant-a/../web/', '/app/tenant-a%2F..%2Fb/web/', '/app/tenant-a/Web/', '/app/tenant-a/a--b/', '/app/tenant-a/web%00/', '/app/.hidden/web/', `/app/${'n'.repeat(300)}/web/`, `/app/t/${'w'.repeat(64)}/`]) {
    assert.throws(() => appTarget(path), (err: unknown) => isMicroError(err) && err.code === 404, path);
  }
});

test("the caller's credentials and hop-by-hop headers are not forwarded; where it was asked from is", () => {
  const req = {
    headers: { authorization: 'Bearer mk_x', cookie: 'micro-token=t', 'proxy-authorization': 'x', 'micro-namespace': 'micro', 'micro-token': 't', connection: 'keep-alive', 'x-forwarded-for': '6.6.6.6', 'sec-websocket-key': 'k', accept: 'text/html', 'user-agent': 'ua', host: 'gw:8080' },
    socket: { remoteAddress: '10.0.0.5' },
  } as unknown as IncomingMessage;
  const out = appRequestHeaders(req, '/app/t/web');
  assert.deepEqual(out, { accept: 'text/html', 'user-agent': 'ua', host: 'gw:8080', 'x-forwarded-for': '10.0.0.5', 'x-forwarded-host': 'gw:8080', 'x-forwarded-proto': 'http', 'x-forwarded-prefix': '/app/t/web' });
});

/** A gateway stand-in: every request goes to proxyApp; its errors are answered as the gateway answers them (code and detail). */
async function proxying(registry: MemoryRegistry): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    proxyApp(req, res, registry, 500).catch((err: MicroError) => {
      res.writeHead(err.code ?? 500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ code: err.code, detail: err.detail }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((r) => server.close(() => r())) };
}

test('the proxy forwards to the node the app bridge registered, in the namespace of the path only', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'micro-apps-'));
  const socket = join(dir, 'web.sock');
  const app = createServer((req, res) => {
    if (req.url === '/slow') return; // never answers
    res.setHeader('set-cookie', 'micro-token=planted');
    res.setHeader('content-security-policy', 'default-src *');
    res.writeHead(201, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ url: req.url, method: req.method, authorization: req.headers.authorization ?? null }));
  });
  await new Promise<void>((r) => app.listen(socket, r));
  const registry = new MemoryRegistry();
  const node = (id: string, address: string, metadata: Record<string, string>) => ({ name: 'app-web', version: 'app', endpoints: [], nodes: [{ id, address, metadata }] });
  await registry.register(node('n1', `unix://${socket}`, { [APP_PROTOCOL_KEY]: APP_PROTOCOL }), { namespace: 'tenant-a' });
  // a node without the bridge's marker (a micro service named app-web) is never proxied to
  await registry.register(node('n2', `unix://${socket}`, {}), { namespace: 'tenant-b' });
  // a marked node whose socket is gone
  await registry.register(node('n3', `unix://${join(dir, 'gone.sock')}`, { [APP_PROTOCOL_KEY]: APP_PROTOCOL }), { namespace: 'tenant-c' });
  const gw = await proxying(registry);
  t.after(async () => {
    app.closeAllConnections();
    await gw.close();
    await new Promise((r) => app.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  const res = await fetch(`${gw.url}/app/tenant-a/web/x/y?z=1`, { method: 'PUT', body: 'b', headers: { authorization: 'Bearer mk_secret' } });
  assert.equal(res.status, 201);
  assert.deepEqual(await res.json(), { url: '/x/y?z=1', method: 'PUT', authorization: null });
  assert.equal(res.headers.get('set-cookie'), null);
  assert.equal(res.headers.get('content-security-policy'), APP_CSP, "the app cannot loosen the gateway's policy");
  const answer = async (path: string) => {
    const r = await fetch(`${gw.url}${path}`, { redirect: 'manual' });
    return [r.status, r.status >= 400 ? ((await r.json()) as { detail: string }).detail : r.headers.get('location')];
  };
  assert.deepEqual(await answer('/app/tenant-a/web'), [308, '/app/tenant-a/web/']);
  assert.match(String((await answer('/app/tenant-b/web/'))[1]), /no app named web is running in namespace tenant-b/);
  assert.equal((await answer('/app/tenant-b/web/'))[0], 404);
  assert.equal((await answer('/app/tenant-z/web/'))[0], 404);
  assert.deepEqual((await answer('/app/tenant-c/web/'))[0], 502);
  assert.deepEqual(await answer('/app/tenant-a/web/slow'), [504, 'app web did not answer within 0.5 s']);
});
