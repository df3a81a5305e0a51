import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Client, RemoteEvents, RemoteRegistry, TokenSource, bearer, platformClient, type StatsReadResponse } from '@micro/sdk';
import { micro, startServer, stopProcess, tempDir, type RunningServer } from '../testing.js';

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** `micro stats` and the gateway's `GET /metrics` against a real `micro server`. */
describe('micro stats against a running server', () => {
  let home: string;
  let server: RunningServer;
  let tokens: TokenSource;
  let work: string;

  before(async () => {
    home = tempDir('micro-cli-stats-');
    work = tempDir('micro-cli-stats-src-');
    server = await startServer(home);
    const admin = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
    tokens = new TokenSource(admin, new Client({ address: server.address, namespace: 'micro', preferLocal: false }));
    const events = new RemoteEvents(platformClient(server.address, [bearer(tokens)]));
    await events.publish('orders', { n: 1 });
    await events.publish('orders', { n: 2 });
    // a group that has read nothing: its lag is both events
    const c = await events.consume('orders', { group: 'billing', offset: 'earliest', maxInFlight: 1 });
    await c.close?.();
  });

  after(async () => {
    if (server) await stopProcess(server.proc);
    rmSync(home, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });

  test('micro stats prints the core services, their instances and the consumer lag; -o json gives stats.Read', async () => {
    const json = await micro(home, ['stats', '-o', 'json']);
    assert.equal(json.code, 0, json.stderr);
    const s = JSON.parse(json.stdout) as StatsReadResponse;
    assert.equal(s.namespace, 'micro');
    assert.ok((s.endpoints.find((e) => e.service === 'events' && e.endpoint === 'Publish')?.calls ?? 0) >= 2, JSON.stringify(s.endpoints));
    assert.deepEqual(s.groups.map((g) => [g.topic, g.group, g.pending]), [['orders', 'billing', 2]]);
    assert.ok(s.instances.some((i) => i.service === 'events' && (i.memoryBytes ?? 0) > 0));
    assert.deepEqual(s.unreachable, []);
    const text = await micro(home, ['stats']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^SERVICE +ENDPOINT +CALLS +ERRORS +MEAN MS +INSTANCES$/m);
    assert.match(text.stdout, /^events +Publish +\d+ +0 +[\d.]+ +1$/m);
    assert.match(text.stdout, /^orders +billing +2 +\d+$/m);
  });

  test('a service run by the runtime: its calls over RPC (with auth on) and its restarts after a kill -9', async () => {
    assert.equal((await micro(home, ['new', 'demo'], { cwd: work })).code, 0);
    const run = await micro(home, ['run', './demo'], { cwd: work, timeout: 120_000 });
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
    const client = new Client({ registry: new RemoteRegistry(platformClient(server.address, [bearer(tokens)])), namespace: 'micro', preferLocal: false, retries: 2, middleware: [bearer(tokens)] });
    await until('demo to answer', () => client.call('demo', 'Call', { name: 'x' }));
    await client.call('demo', 'Call', { name: 'y' });
    const status = async () => {
      const r = await micro(home, ['status', 'demo', '-o', 'json']);
      return (JSON.parse(r.stdout) as Array<{ instances: Array<{ id: string; pid?: number; state: string; restarts: number }> }>)[0]?.instances[0];
    };
    const first = await status();
    assert.ok(first?.pid);
    process.kill(first.pid, 'SIGKILL');
    await until('demo to be restarted', async () => {
      const i = await status();
      return i && i.restarts >= 1 && i.state === 'running' ? i : undefined;
    }, 60_000);
    await until('demo to answer again', () => client.call('demo', 'Call', { name: 'z' }));
    const s = await until('the new instance in the stats', async () => {
      const r = await micro(home, ['stats', '-o', 'json']);
      const stats = JSON.parse(r.stdout) as StatsReadResponse;
      return stats.instances.some((i) => i.service === 'demo' && i.restarts === 1 && (i.memoryBytes ?? 0) > 0) ? stats : undefined;
    }, 30_000);
    // the restarted process counts afresh; its calls are in the table
    assert.ok((s.endpoints.find((e) => e.service === 'demo' && e.endpoint === 'Call')?.calls ?? 0) >= 1, JSON.stringify(s.endpoints));
    const res = await fetch(`${server.gateway}/metrics`, { headers: { authorization: `Bearer ${await tokens.get()}` } });
    assert.match(await res.text(), /^micro_runtime_restarts_total\{instance="[^"]+",namespace="micro",service="demo"\} 1$/m);
  });

  test('GET /metrics needs a token and passes promtool check metrics', async (t) => {
    const anonymous = await fetch(`${server.gateway}/metrics`);
    assert.equal(anonymous.status, 401);
    const res = await fetch(`${server.gateway}/metrics`, { headers: { authorization: `Bearer ${await tokens.get()}` } });
    assert.equal(res.status, 200);
    const body = await res.text();
    assert.match(body, /^micro_events_group_pending\{group="billing",namespace="micro",topic="orders"\} 2$/m);
    assert.match(body, /^micro_calls_total\{code="200",endpoint="Publish",instance="[^"]+",namespace="micro",service="events"\} \d+$/m);
    const run = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
    if (run.error) {
      if (process.env.MICRO_REQUIRE_ENGINES === '1') throw new Error(`promtool is required (MICRO_REQUIRE_ENGINES=1): ${run.error.message}`);
      t.skip(`promtool not found (apt-get install prometheus): ${run.error.message}`);
      return;
    }
    assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
  });
});
