import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { isMicroError } from '@micro/sdk';
import { appRequestHeaders, appTarget } from './apps.js';

/* What the gateway's app proxy makes of paths and headers; the proxy itself is exercised end to end by services/app's tests. */

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
