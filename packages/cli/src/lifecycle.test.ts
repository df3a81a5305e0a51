import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Client, RemoteRegistry, TokenSource, bearer, platformClient } from '@micro/sdk';
import { micro, startServer, stopProcess, tempDir, type RunningServer } from './testing.js';

/**
 * The life of a service as a user sees it, all through the real CLI: new → run (two
 * instances) → calls → update while calls are in flight → kill -9 of an instance →
 * kill -9 of micro server and a new start → kill.
 */
let home: string;
let work: string;
let server: RunningServer;

interface Status {
  name: string;
  state: string;
  instances: { id: string; pid?: number; state: string; restarts: number }[];
}

async function status(): Promise<Status> {
  const res = await micro(home, ['status', 'demo', '-o', 'json']);
  assert.equal(res.code, 0, res.stderr);
  return (JSON.parse(res.stdout) as Status[])[0] as Status;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** No such process, or only a zombie waiting for its new parent to reap it. */
function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

/** A client of the services of the server at `address`, as the admin. */
function callerOf(address: string): { client: Client; close: () => void } {
  const admin = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
  const tokens = new TokenSource(admin, new Client({ address, namespace: 'micro', preferLocal: false }));
  const registry = new RemoteRegistry(platformClient(address, [bearer(tokens)]));
  // services check their callers: call as the admin
  return { client: new Client({ registry, namespace: 'micro', preferLocal: false, retries: 2, middleware: [bearer(tokens)] }), close: () => undefined };
}

before(async () => {
  home = tempDir('micro-lifecycle-home-');
  work = tempDir('micro-lifecycle-src-');
  server = await startServer(home);
  assert.equal((await micro(home, ['new', 'demo'], { cwd: work })).code, 0);
});

after(async () => {
  if (server) await stopProcess(server.proc);
  rmSync(home, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

test('run, update under load, kill -9 of an instance and of the server, kill', async () => {
  const run = await micro(home, ['run', './demo', '--instances', '2'], { cwd: work, timeout: 120_000 });
  assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
  assert.match(run.stdout, /2\/2 instances running/);

  const { client } = callerOf(server.address);
  await until('demo to answer', async () => client.call('demo', 'Call', { name: 'x' }));

  // update while calls are in flight: every call succeeds
  let calls = 0;
  const failures: unknown[] = [];
  let loading = true;
  const load = (async () => {
    while (loading) {
      await Promise.all(
        Array.from({ length: 5 }, () =>
          client.call('demo', 'Call', { name: 'load' }).then(
            () => calls++,
            (err: unknown) => failures.push(err),
          ),
        ),
      );
    }
  })();
  const before = (await status()).instances.map((i) => i.pid);
  const update = await micro(home, ['update', 'demo'], { timeout: 120_000 });
  loading = false;
  await load;
  assert.equal(update.code, 0, `${update.stdout}\n${update.stderr}`);
  assert.ok(calls > 20, `${calls} calls made during the update`);
  assert.deepEqual(failures, [], 'no call failed during the rolling update');
  const afterUpdate = await status();
  assert.equal(afterUpdate.instances.length, 2);
  for (const i of afterUpdate.instances) assert.ok(!before.includes(i.pid), 'every instance was replaced');

  // kill -9 of one instance: the runtime restarts it
  const victim = afterUpdate.instances[0]!;
  process.kill(victim.pid!, 'SIGKILL');
  const restarted = await until('the instance to be restarted', async () => {
    const s = await status();
    const i = s.instances.find((x) => x.id === victim.id);
    return i && i.restarts >= 1 && i.state === 'running' && i.pid !== victim.pid ? i : undefined;
  });
  assert.ok(restarted.pid);
  assert.deepEqual(await client.call('demo', 'Call', { name: 'after' }), { message: 'Hello after' });

  // kill -9 of micro server, then a new start: demo comes back by itself
  server.proc.kill('SIGKILL');
  await new Promise((r) => server.proc.once('exit', r));
  server = await startServer(home);
  const back = await until('demo to come back', async () => {
    const s = await status();
    return s.state === 'running' && s.instances.every((i) => i.state === 'running') ? s : undefined;
  });
  assert.equal(back.instances.length, 2);
  const caller = callerOf(server.address);
  const answer = await until('demo to answer again', async () => caller.client.call('demo', 'Call', { name: 'again' }));
  assert.deepEqual(answer, { message: 'Hello again' });
  // the instances of the dead server were not left running beside the new ones
  for (const i of afterUpdate.instances.concat(restarted)) await until(`old instance ${i.pid} to be gone`, async () => (gone(i.pid!) ? true : undefined), 10_000);

  const kill = await micro(home, ['kill', 'demo']);
  assert.equal(kill.code, 0, kill.stderr);
  for (const i of back.instances) await until(`instance ${i.pid} to be gone`, async () => (gone(i.pid!) ? true : undefined), 10_000);
});
