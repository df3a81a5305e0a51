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

test("a tenant reaches the core services through the gateway, in its own namespace only", async () => {
  const home = mkdtempSync(join(tmpdir(), 'micro-gw-tenant-'));
  const server = await new MicroServer({ home, address: 'tcp://127.0.0.1:0', logger: silent }).start();
  try {
    const url = server.gatewayUrl as string;
    const json = { 'content-type': 'application/json' };
    const admin = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
    const adminToken = (JSON.parse((await http(url, 'POST', '/v1/auth/Token', { headers: json, body: JSON.stringify({ ...admin, namespace: 'micro' }) })).body) as { token: string }).token;
    const as = (token: string) => ({ ...json, authorization: `Bearer ${token}` });
    const made = await http(url, 'POST', '/v1/auth/CreateAccount', { headers: as(adminToken), body: JSON.stringify({ id: 'ann', secret: 'a-long-enough-secret', namespace: 'acme', scopes: ['admin'] }) });
    assert.equal(made.status, 200, made.body);
    const tok = await http(url, 'POST', '/v1/auth/Token', { headers: json, body: JSON.stringify({ id: 'ann', secret: 'a-long-enough-secret', namespace: 'acme' }) });
    assert.equal(tok.status, 200, tok.body);
    const tenant = (JSON.parse(tok.body) as { token: string }).token;

    // the tenant's token routes to the core services, which act in its namespace
    assert.equal((await http(url, 'POST', '/v1/store/Write', { headers: as(tenant), body: JSON.stringify({ record: { key: 'k', value: 'acme data' } }) })).status, 200);
    const mine = await http(url, 'POST', '/v1/store/Read', { headers: as(tenant), body: JSON.stringify({ key: 'k' }) });
    assert.equal(mine.status, 200, mine.body);
    assert.match(mine.body, /acme data/);
    // the admin of micro does not see it in micro, and the tenant cannot name micro
    const inMicro = await http(url, 'POST', '/v1/store/Read', { headers: as(adminToken), body: JSON.stringify({ key: 'k' }) });
    assert.deepEqual(JSON.parse(inMicro.body), { records: [] });
    const inAcme = await http(url, 'POST', '/v1/store/Read', { headers: as(adminToken), body: JSON.stringify({ key: 'k', namespace: 'acme' }) });
    assert.match(inAcme.body, /acme data/);
    const other = await http(url, 'POST', '/v1/store/Read', { headers: as(tenant), body: JSON.stringify({ key: 'k', namespace: 'micro' }) });
    assert.equal(other.status, 403, other.body);
    const header = await http(url, 'POST', '/v1/store/Read', { headers: { ...as(tenant), 'micro-namespace': 'micro' }, body: JSON.stringify({ key: 'k' }) });
    assert.equal(header.status, 403, header.body);
    // the registry lists the tenant's services (none), not micro's core services
    const listed = await http(url, 'POST', '/v1/registry/ListServices', { headers: as(tenant), body: '{}' });
    assert.equal(listed.status, 200, listed.body);
    assert.deepEqual((JSON.parse(listed.body) as { services: unknown[] }).services, []);
  } finally {
    await server.stop();
    rmSync(home, { recursive: true, force: true });
  }
});
