import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bearer, Client, createLogger, platformClient, RemoteConfig, RemoteStore, TokenSource } from '@micro/sdk';
import { MicroServer } from './server.js';

/** What a service does with the default engines of the SDK: store(), config(), events(). */
const script = `
  const { store, config, events } = await import('@micro/sdk');
  await store().write({ key: 'visits', value: { count: 1 } });
  await config().set('feature.flag', true);
  const e = await events().publish('visits', { count: 1 });
  const [record] = await store().read('visits');
  process.stdout.write(JSON.stringify({ value: record.value, flag: await config().get('feature.flag'), offset: e.offset }));
`;

/** Runs the script in a child (asynchronously: the server it calls may be in this process). */
function runScript(env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env, cwd: process.cwd() });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('exit', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

test('without MICRO_SERVER the default engines are in memory, and say so', async () => {
  const res = await runScript({ ...process.env, MICRO_SERVER: '', MICRO_LOG_LEVEL: 'warn' });
  assert.equal(res.status, 0, res.stderr);
  // the answer, among the log lines (pino writes them asynchronously)
  const answer = /\{"value".*?"offset":\d+\}/.exec(res.stdout)?.[0];
  assert.deepEqual(JSON.parse(answer ?? 'null'), { value: { count: 1 }, flag: true, offset: 1 });
  assert.match(res.stdout, /no MICRO_SERVER: using an in-memory store engine/);
});

test('with MICRO_SERVER the default engines are the server\'s, in the account\'s namespace', async () => {
  const home = mkdtempSync(join(tmpdir(), 'micro-engines-'));
  const server = await new MicroServer({ home, address: 'tcp://127.0.0.1:0', logger: createLogger({ level: 'silent' }) }).start();
  try {
    const creds = await server.serviceCredentials('visits', 'tenant-a');
    const res = await runScript({ ...process.env, MICRO_SERVER: server.address, MICRO_AUTH_ID: creds.id, MICRO_AUTH_SECRET: creds.secret, MICRO_AUTH_NAMESPACE: 'tenant-a', MICRO_LOG_LEVEL: 'silent' });
    assert.equal(res.status, 0, res.stderr);
    assert.deepEqual(JSON.parse(res.stdout), { value: { count: 1 }, flag: true, offset: 1 });
    // the data is on the server, in the namespace of the service's account
    const admin = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
    const client = platformClient(server.address, [bearer(new TokenSource(admin, new Client({ address: server.address, namespace: 'micro', preferLocal: false })))]);
    const [record] = await new RemoteStore(client).read('visits', { namespace: 'tenant-a' });
    assert.deepEqual(record?.value, { count: 1 });
    assert.equal(await new RemoteConfig(client).get('feature.flag', { namespace: 'tenant-a' }), true);
    assert.deepEqual(await new RemoteStore(client).read('visits', { namespace: 'micro' }), []);
  } finally {
    await server.stop();
    rmSync(home, { recursive: true, force: true });
  }
});
