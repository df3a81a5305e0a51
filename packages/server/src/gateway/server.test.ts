import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '@micro/sdk';
import { MicroServer } from '../server.js';
import { http } from './testing.js';

const silent = createLogger({ level: 'silent' });

test('micro server starts the gateway (a free port when the RPC address asks for one) and stops it', async () => {
  const home = mkdtempSync(join(tmpdir(), 'micro-gw-server-'));
  const server = await new MicroServer({ home, address: 'tcp://127.0.0.1:0', logger: silent }).start();
  try {
    const url = server.gatewayUrl as string;
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const admin = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
    const json = { 'content-type': 'application/json' };
    // auth.Token is public (the core services guard themselves)
    const tok = await http(url, 'POST', '/v1/auth/Token', { headers: json, body: JSON.stringify({ id: admin.id, secret: admin.secret, namespace: 'micro' }) });
    assert.equal(tok.status, 200, tok.body);
    const token = (tok.json as { token: string }).token;
    const list = await http(url, 'POST', '/v1/registry/ListServices', { headers: { ...json, authorization: `Bearer ${token}` }, body: '{}' });
    assert.equal(list.status, 200, list.body);
    assert.ok((list.json as { services: { name: string }[] }).services.some((s) => s.name === 'auth'));
    const anonymous = await http(url, 'POST', '/v1/registry/ListServices', { headers: json, body: '{}' });
    assert.equal(anonymous.status, 401);
    const doc = await http(url, 'GET', '/openapi.json', { headers: { authorization: `Bearer ${token}` } });
    assert.ok((doc.json as { paths: Record<string, unknown> }).paths['/v1/auth/Token']);
  } finally {
    await server.stop();
  }
  assert.equal(server.gatewayUrl, undefined);
  const off = await new MicroServer({ home, address: 'tcp://127.0.0.1:0', logger: silent, gateway: false }).start();
  assert.equal(off.gatewayUrl, undefined);
  await off.stop();
  rmSync(home, { recursive: true, force: true });
});
