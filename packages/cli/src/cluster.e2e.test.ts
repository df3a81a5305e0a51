import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { micro, natsPlatform, startServer, stopProcess, tempDir, until, type RunningServer } from './testing.js';

/*
 * Several `micro server` nodes on the distributed profile (MICRO_PROFILE=nats): two nodes
 * share NATS (registry, RPC, events, config), PostgreSQL (store, sync, auth, runtime
 * state) and Redis (cache, rate limits), each with a home of its own. What the issue
 * asks for, end to end, as a user does it with the `micro` command and HTTP calls:
 * - a service run on node A is callable through the gateway of node B, with a token node
 *   B issued for node A's admin (one platform: shared accounts and keys);
 * - its instances are balanced (both answer);
 * - kill -9 of an instance, then of node A itself: calls through node B keep succeeding
 *   (the gateway's client retries at most once);
 * - a killed instance leaves the shared registry (its TTL, or at once when it deregisters);
 * - `micro run --instances 2` on node A puts one instance on each node (the placement),
 *   `micro status` on either node lists both with their node, `micro logs` on node B
 *   shows its own instance's log, and `micro kill` works from any node.
 * Every name this test makes starts with its own prefix, removed at the end.
 */

interface Http {
  status: number;
  body: string;
}

async function post(base: string, path: string, body: unknown, token?: string): Promise<Http> {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.text() };
}

test('two micro server nodes on NATS, PostgreSQL and Redis act as one platform', { timeout: 300_000 }, async (t) => {
  const platform = await natsPlatform(t, 'cluster');
  if (!platform) return;
  const { env } = platform;
  const homeA = tempDir('micro-cluster-a-');
  const homeB = tempDir('micro-cluster-b-');
  const work = tempDir('micro-cluster-src-');
  let a: RunningServer | undefined;
  const nodes: RunningServer[] = [];
  t.after(async () => {
    for (const s of [a, ...nodes]) if (s) await stopProcess(s.proc, 'SIGKILL');
    // the instances node A started (killed with it, or orphaned): the runtime records their pids
    await micro(homeA, ['kill', 'demo'], { env }).catch(() => undefined);
    killOrphans(homeA);
    await platform.drop();
    for (const d of [homeA, homeB, work]) rmSync(d, { recursive: true, force: true });
  });

  a = await startServer(homeA, { env, timeout: 60_000 });
  const b = await startServer(homeB, { env, timeout: 60_000 });
  nodes.push(b);

  // a service on node A, two instances
  assert.equal((await micro(homeA, ['new', 'demo'], { cwd: work })).code, 0);
  // a short registry TTL, so that a killed instance's node must go within 3 s of its last heart-beat
  const run = await micro(homeA, ['run', './demo', '--instances', '2', '--env', 'MICRO_REGISTER_TTL=3'], { cwd: work, env, timeout: 180_000 });
  assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
  assert.match(run.stdout, /2\/2 instances running/);

  // node B issues a token for node A's admin: accounts and signing keys are shared
  const admin = JSON.parse(readFileSync(join(homeA, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
  const tok = await post(b.gateway, '/v1/auth/Token', { id: admin.id, secret: admin.secret, namespace: 'micro' });
  assert.equal(tok.status, 200, tok.body);
  const token = (JSON.parse(tok.body) as { token: string }).token;

  // ...and its gateway reaches the service node A runs (over NATS)
  const first = await until('demo through node B', 30_000, async () => {
    const r = await post(b.gateway, '/v1/demo/Call', { name: 'Alice' }, token);
    return r.status === 200 ? r : undefined;
  });
  assert.deepEqual(JSON.parse(first.body), { message: 'Hello Alice' });
  // without a token: 401, as on one node
  assert.equal((await post(b.gateway, '/v1/demo/Call', { name: 'Alice' })).status, 401);

  // both instances serve: the registry of node B lists two nodes of demo
  const listed = await until('two demo nodes in the shared registry', 30_000, async () => {
    const r = await post(b.gateway, '/v1/registry/GetService', { name: 'demo' }, token);
    const nodes = r.status === 200 ? (JSON.parse(r.body) as { services: { nodes: { id: string; address: string }[] }[] }).services.flatMap((s) => s.nodes) : [];
    return nodes.length === 2 ? nodes : undefined;
  });
  assert.ok(listed.every((n) => n.address.startsWith('nats:')), JSON.stringify(listed));

  // data written through one node is read through the other: cache (Redis), store (PostgreSQL)
  assert.equal((await post(b.gateway, '/v1/cache/Set', { key: 'visits', value: 41 }, token)).status, 200);
  const inc = await post(a.gateway, '/v1/cache/Increment', { key: 'visits' }, token);
  assert.equal(inc.status, 200, inc.body);
  assert.equal((JSON.parse(inc.body) as { value: number }).value, 42);
  assert.equal((await post(a.gateway, '/v1/store/Write', { record: { key: 'shared', value: 'from A' } }, token)).status, 200);
  const read = await post(b.gateway, '/v1/store/Read', { key: 'shared' }, token);
  assert.equal(read.status, 200, read.body);
  assert.match(read.body, /from A/);

  // micro status on node B shows both instances, one on each node (placement spreads them)
  const nodeA = (JSON.parse(readFileSync(join(homeA, 'server', 'node.json'), 'utf8')) as { id: string }).id;
  const nodeB = (JSON.parse(readFileSync(join(homeB, 'server', 'node.json'), 'utf8')) as { id: string }).id;
  const statusB = await until('demo on both nodes in the status of node B', 15_000, async () => {
    const r = await micro(homeB, ['status', '--output', 'json'], { env });
    const list = r.code === 0 ? (JSON.parse(r.stdout) as { name: string; node?: string; state: string; instances: unknown[] }[]) : [];
    const rows = list.filter((x) => x.name === 'demo' && x.state === 'running' && x.instances.length === 1);
    return rows.length === 2 ? rows : undefined;
  });
  assert.deepEqual(statusB.map((r) => r.node).sort(), [nodeA, nodeB].sort());
  const table = await micro(homeB, ['status'], { env });
  assert.match(table.stdout, /^NODE +NAME +VERSION/m);
  // logs stay with the node that runs an instance: node B has its own instance's
  const logsB = await micro(homeB, ['logs', 'demo'], { env });
  assert.equal(logsB.code, 0, logsB.stderr);
  assert.match(logsB.stdout, /starting instance 1 of the platform's 2 here|micro run/);

  const callsSucceed = async (n: number, label: string) => {
    for (let i = 0; i < n; i++) {
      const r = await post(b.gateway, '/v1/demo/Call', { name: `n${i}` }, token);
      assert.equal(r.status, 200, `${label}: call ${i}: ${r.body}`);
      assert.deepEqual(JSON.parse(r.body), { message: `Hello n${i}` });
    }
  };
  await callsSucceed(20, 'before any kill');

  // kill -9 of one instance: calls keep succeeding; its node leaves the registry
  const status = await micro(homeA, ['status', 'demo', '--output', 'json'], { env });
  assert.equal(status.code, 0, status.stderr);
  const pids = (JSON.parse(status.stdout) as { node?: string; instances: { pid?: number }[] }[]).find((s) => s.node === nodeA)?.instances.map((i) => i.pid).filter((p): p is number => typeof p === 'number') ?? [];
  assert.equal(pids.length, 1, status.stdout);
  const nodesBefore = new Set(listed.map((n) => n.id));
  process.kill(pids[0] as number, 'SIGKILL');
  const killedAt = Date.now();
  await callsSucceed(20, 'after kill -9 of one instance');
  // the dead instance's node leaves the shared registry within its TTL (the runtime
  // restarts the instance under a new node id, so one of the old ids must go)
  await until('the killed instance leaves the registry', 15_000, async () => {
    const r = await post(b.gateway, '/v1/registry/GetService', { name: 'demo' }, token);
    const ids = (JSON.parse(r.body) as { services: { nodes: { id: string }[] }[] }).services.flatMap((s) => s.nodes.map((n) => n.id));
    return [...nodesBefore].some((id) => !ids.includes(id)) ? true : undefined;
  });
  assert.ok(Date.now() - killedAt < 3_000 + 4_000, 'gone within the TTL (3 s) and a little slack');

  // kill -9 of node A: node B goes on serving calls to the instances
  await stopProcess(a.proc, 'SIGKILL');
  a = undefined;
  await callsSucceed(20, 'after kill -9 of node A');
  // and node B's own core services answer as before
  const stored = await post(b.gateway, '/v1/store/Write', { record: { key: 'k', value: 'v' } }, token);
  assert.equal(stored.status, 200, stored.body);

  // micro kill from node B: the service leaves the platform, its instance on B stops
  const killed = await micro(homeB, ['kill', 'demo'], { env });
  assert.equal(killed.code, 0, killed.stderr);
  const after = await micro(homeB, ['status', '--output', 'json'], { env });
  assert.deepEqual((JSON.parse(after.stdout) as { name: string; node?: string; state: string }[]).filter((s) => s.name === 'demo' && s.node === nodeB), []);
});

/** Kills what node A's runtime started and left running (its state file has their pids). */
function killOrphans(home: string): void {
  try {
    const state = JSON.parse(readFileSync(join(home, 'runtime', 'state.json'), 'utf8')) as { services: { processes: { pid?: number }[] }[] };
    for (const s of state.services) for (const p of s.processes) if (p.pid) process.kill(-p.pid, 'SIGKILL');
  } catch {
    // nothing recorded, or gone already
  }
}
