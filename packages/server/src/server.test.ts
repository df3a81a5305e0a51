import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import {
  authService,
  bearer,
  brokerService,
  Client,
  CORE_SERVICES,
  createClient,
  createLogger,
  MicroError,
  registryService,
  RemoteBroker,
  RemoteRegistry,
  TokenSource,
} from '@micro/sdk';
import { MicroServer, type MicroServerOptions } from './server.js';

/** the services of @micro/platform, which `micro server` hosts beside these */
const PLATFORM_SERVICES = ['signup', 'billing', 'pricing', 'usage', 'invoices', 'balance', 'mail'];

const silent = createLogger({ level: 'silent' });

async function withServer(fn: (server: MicroServer, home: string) => Promise<void>, options: Partial<MicroServerOptions> = {}): Promise<void> {
  const home = mkdtempSync(join(tmpdir(), 'micro-server-'));
  const server = new MicroServer({ home, address: 'tcp://127.0.0.1:0', logger: silent, ...options });
  await server.start();
  try {
    await fn(server, home);
  } finally {
    await server.stop();
    rmSync(home, { recursive: true, force: true });
  }
}

function adminOf(home: string): { id: string; secret: string } {
  return JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
}

function clientAs(address: string, creds: { id: string; secret: string; namespace?: string }): Client {
  const tokenClient = new Client({ address, namespace: 'micro', preferLocal: false });
  return new Client({ address, namespace: 'micro', preferLocal: false, middleware: [bearer(new TokenSource(creds, tokenClient))] });
}

test('first start creates a private home with an admin account, and tokens work', async () => {
  await withServer(async (server, home) => {
    for (const f of ['server/admin.json', 'server/jwt-keys.json', 'server/server.json', 'data/auth.db']) {
      assert.equal(statSync(join(home, f)).mode & 0o777, 0o600, `${f} is 0600`);
    }
    assert.equal(statSync(join(home, 'server')).mode & 0o777, 0o700);
    const admin = adminOf(home);
    // the secret is not stored in the accounts database, only its hash
    assert.ok(!readFileSync(join(home, 'data', 'auth.db'), 'latin1').includes(admin.secret));
    const auth = createClient(authService, new Client({ address: server.address, namespace: 'micro', preferLocal: false }));
    const { token, account } = await auth.Token(admin);
    assert.equal(account.id, 'admin');
    assert.equal(token.split('.').length, 3);
    await assert.rejects(auth.Token({ id: 'admin', secret: 'wrong' }), (err: MicroError) => err.code === 401);
    await assert.rejects(auth.Token({ id: 'nobody', secret: 'x' }), (err: MicroError) => err.code === 401);

    const registry = new RemoteRegistry(clientAs(server.address, admin));
    const names = (await registry.listServices({ namespace: 'micro' })).map((s) => s.name).sort();
    assert.deepEqual(names, ['auth', 'broker', 'cache', 'config', 'events', 'fulltext', 'quota', 'registry', 'runtime', 'stats', 'store', 'sync', 'trace']);
    // the SDK sends general tokens to exactly these and the platform layer's (which `micro
    // server` adds: the CLI's e2e test checks the whole list); any other service gets a scoped one
    assert.deepEqual(names, [...CORE_SERVICES].filter((s) => !PLATFORM_SERVICES.includes(s)).sort());
  });
});

test('core services refuse calls without valid credentials', async () => {
  await withServer(async (server) => {
    const anonymous = createClient(registryService, new Client({ address: server.address, namespace: 'micro', preferLocal: false }));
    await assert.rejects(anonymous.ListServices({}), (err: MicroError) => err.code === 401 && /micro login/.test(err.detail));
    const forged = createClient(registryService, new Client({ address: server.address, namespace: 'micro', preferLocal: false, metadata: { authorization: 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.' } }));
    await assert.rejects(forged.ListServices({}), (err: MicroError) => err.code === 401 && /invalid token/.test(err.detail));
    const malformed = createClient(registryService, new Client({ address: server.address, namespace: 'micro', preferLocal: false, metadata: { authorization: 'Basic abc' } }));
    await assert.rejects(malformed.ListServices({}), (err: MicroError) => err.code === 401);
  });
});

test('a service account reaches only its own namespace', async () => {
  await withServer(async (server, home) => {
    const creds = await server.serviceCredentials('billing', 'tenant-a');
    const client = clientAs(server.address, { ...creds, namespace: 'tenant-a' });
    const registry = new RemoteRegistry(client);
    // a sandboxing server takes a tenant's nodes only from the namespace's socket folder
    // (only root can sandbox: elsewhere the server runs with the sandbox off)
    const address = server.sandbox?.applies('tenant-a') ? server.sandbox.serviceAddress('tenant-a', 'b1') : 'tcp://127.0.0.1:1';
    const record = { name: 'billing', version: '1', endpoints: [], nodes: [{ id: 'b1', address }] };
    if (address.startsWith('unix:')) {
      const tcp = { ...record, nodes: [{ id: 'b1', address: 'tcp://127.0.0.1:1' }] };
      await assert.rejects(registry.register(tcp, { namespace: 'tenant-a' }), (err: MicroError) => err.code === 403 && /may not serve from/.test(err.detail));
    }
    await registry.register(record, { namespace: 'tenant-a' });
    assert.equal((await registry.getService('billing', { namespace: 'tenant-a' })).length, 1);
    // of micro's registry a tenant sees the public services only (this server hosts none)
    assert.deepEqual(await registry.listServices({ namespace: 'micro' }), []);
    assert.deepEqual(await registry.getService('auth', { namespace: 'micro' }), []);
    await assert.rejects(registry.register({ ...record, namespace: 'tenant-b' }, { namespace: 'tenant-b' }), (err: MicroError) => err.code === 403);
    // the admin sees every namespace
    const admin = new RemoteRegistry(clientAs(server.address, adminOf(home)));
    assert.equal((await admin.getService('billing', { namespace: 'tenant-a' })).length, 1);
  }, process.getuid?.() === 0 ? {} : { sandbox: { mode: 'off' } });
});

test('the broker service carries messages between clients', async () => {
  await withServer(async (server, home) => {
    const broker = new RemoteBroker(clientAs(server.address, adminOf(home)));
    const got: unknown[] = [];
    const sub = await broker.subscribe('orders.*', (m) => {
      got.push(m.body);
    });
    await broker.publish('orders.created', { id: 1 });
    await broker.publish('other', { id: 2 });
    for (let i = 0; i < 100 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(got, [{ id: 1 }]);
    await sub.unsubscribe();
    assert.ok(createClient(brokerService, new Client()));
  });
});

test('a second server on the same home is refused; a dead one\'s lock is taken over', async () => {
  await withServer(async (server, home) => {
    const second = new MicroServer({ home, address: 'tcp://127.0.0.1:0', logger: silent });
    await assert.rejects(second.start(), (err: MicroError) => err.code === 409 && /already running/.test(err.detail) && err.detail.includes(server.address));
    // the first keeps serving
    const auth = createClient(authService, new Client({ address: server.address, namespace: 'micro', preferLocal: false }));
    assert.ok((await auth.Token(adminOf(home))).token);
  });
  const home = mkdtempSync(join(tmpdir(), 'micro-server-'));
  try {
    // a lock left by a process that no longer exists
    const ghost = spawn(process.execPath, ['-e', '0']);
    await new Promise((r) => ghost.once('exit', r));
    const first = new MicroServer({ home, address: 'tcp://127.0.0.1:0', logger: silent });
    await first.start();
    await first.stop();
    writeFileSync(join(home, 'server', 'lock'), String(ghost.pid));
    const next = new MicroServer({ home, address: 'tcp://127.0.0.1:0', logger: silent });
    await next.start();
    await next.stop();
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test('a service pointed at the server with MICRO_SERVER registers there and is callable', async () => {
  await withServer(async (server, home) => {
    const creds = await server.serviceCredentials('helloworld', 'micro');
    const main = new URL('../../../examples/helloworld/dist/main.js', import.meta.url);
    const child = spawn(process.execPath, [main.pathname], {
      env: { ...process.env, MICRO_HOME: home, MICRO_SERVER: server.address, MICRO_AUTH_ID: creds.id, MICRO_AUTH_SECRET: creds.secret, MICRO_LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('Ctrl-C')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`helloworld exited ${code}`)));
      });
      const client = clientAs(server.address, adminOf(home));
      const registry = new RemoteRegistry(client);
      const [record] = await registry.getService('helloworld', { namespace: 'micro' });
      assert.ok(record, 'helloworld registered in the server');
      // the service checks its callers itself: anonymous calls are denied by default
      const anonymous = new Client({ registry, namespace: 'micro', preferLocal: false, middleware: [] });
      await assert.rejects(anonymous.call('helloworld', 'Call', { name: 'Server' }), (err: MicroError) => err.code === 401);
      const caller = new Client({ registry, namespace: 'micro', preferLocal: false, middleware: [bearer(new TokenSource(adminOf(home), new Client({ address: server.address, namespace: 'micro', preferLocal: false })))] });
      assert.deepEqual(await caller.call('helloworld', 'Call', { name: 'Server' }), { message: 'Hello Server' });
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      // it deregistered on the way out
      assert.equal((await registry.getService('helloworld', { namespace: 'micro' })).length, 0);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
