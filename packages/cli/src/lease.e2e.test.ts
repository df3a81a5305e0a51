import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { micro, natsPlatform, startServer, stopProcess, tempDir, until, type RunningServer } from './testing.js';

/*
 * Node leases on the distributed profile, end to end with the `micro` command: node A
 * runs a service, then dies with kill -9. On node B, `micro status` shows A's instance
 * as lost once A's lease ends (never as running after that, no uptime), node B starts
 * the service itself (the placement moves A's slot), and `micro services` no longer lists
 * A's core services; A restarted on its home publishes at once that it runs nothing (the
 * instance stays on B: one instance is as even as it gets), so its lost row goes. Bounds
 * are generous polls: nothing here fails on timing beyond them.
 */

const LEASE = 5;

interface Status {
  name: string;
  node?: string;
  state: string;
  desiredInstances: number;
  instances: { id: string; state: string; pid?: number; startedAt?: string }[];
}

interface Listed {
  name: string;
  nodes: { id: string; metadata?: Record<string, string> }[];
}

test('a node that dies loses its lease: its service shows as lost and its core services leave micro services on the other node; back, it shows the truth', { timeout: 300_000 }, async (t) => {
  const platform = await natsPlatform(t, 'lease');
  if (!platform) return;
  const env = { ...platform.env, MICRO_NODE_LEASE: String(LEASE) };
  const homeA = tempDir('micro-lease-a-');
  const homeB = tempDir('micro-lease-b-');
  const work = tempDir('micro-lease-src-');
  const servers: RunningServer[] = [];
  t.after(async () => {
    // the last node A stops gracefully (its instance with it); the rest are killed
    const [, , again] = servers;
    if (again) await stopProcess(again.proc, 'SIGTERM');
    for (const s of servers) await stopProcess(s.proc, 'SIGKILL');
    killOrphans(homeA);
    await platform.drop();
    for (const d of [homeA, homeB, work]) rmSync(d, { recursive: true, force: true });
  });

  const a = await startServer(homeA, { env, timeout: 60_000 });
  servers.push(a);
  const b = await startServer(homeB, { env, timeout: 60_000 });
  servers.push(b);
  const nodeA = (JSON.parse(readFileSync(join(homeA, 'server', 'node.json'), 'utf8')) as { id: string }).id;

  assert.equal((await micro(homeA, ['new', 'demo'], { cwd: work })).code, 0);
  const run = await micro(homeA, ['run', './demo'], { cwd: work, env, timeout: 180_000 });
  assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);

  const statusOnB = async (node = nodeA): Promise<Status | undefined> => {
    const r = await micro(homeB, ['status', '--output', 'json'], { env });
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as Status[]).find((s) => s.name === 'demo' && s.node === node);
  };
  const nodeB = (JSON.parse(readFileSync(join(homeB, 'server', 'node.json'), 'utf8')) as { id: string }).id;
  const coreNodesOfA = async (): Promise<string[]> => {
    const r = await micro(homeB, ['services', '--output', 'json'], { env });
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as Listed[]).flatMap((s) => s.nodes.filter((n) => n.metadata?.server === nodeA).map(() => s.name));
  };

  const before = await until('demo running on node A, seen from node B', 60_000, async () => {
    const s = await statusOnB();
    return s?.state === 'running' && s.instances[0]?.state === 'running' ? s : undefined;
  });
  assert.equal(before.node, nodeA);
  // node A's core services carry its id in the shared registry
  const coreBefore = await until('node A\'s core services listed on node B', 60_000, async () => {
    const names = await coreNodesOfA();
    return names.includes('registry') && names.includes('runtime') ? names : undefined;
  });
  assert.ok(coreBefore.includes('store'), coreBefore.join(','));

  await stopProcess(a.proc, 'SIGKILL');
  // within the lease and a generous margin: lost, not running, no uptime
  const lost = await until('demo lost on node B', (LEASE + 30) * 1000, async () => {
    const s = await statusOnB();
    return s?.state === 'lost' ? s : undefined;
  });
  assert.equal(lost.node, nodeA);
  assert.deepEqual(lost.instances.map((i) => [i.state, i.pid, i.startedAt]), [['lost', undefined, undefined]]);
  const table = await micro(homeB, ['status'], { env });
  assert.match(table.stdout, new RegExp(`^${nodeA.slice(0, 8)} .*demo +\\S+ +\\S+ +lost +0/1 +- +-`, 'm'));
  await until('node A\'s core services gone from micro services on node B', (LEASE + 30) * 1000, async () => ((await coreNodesOfA()).length === 0 ? true : undefined));
  // node B runs demo now: the placement moved node A's slot
  const moved = await until('demo running on node B', 60_000, async () => {
    const s = await statusOnB(nodeB);
    return s?.state === 'running' && s.instances[0]?.state === 'running' ? s : undefined;
  });
  assert.ok(moved.instances[0]?.pid && moved.instances[0]?.startedAt);
  // once lost, never running again on node A while it is down
  for (let i = 0; i < 3; i++) assert.equal((await statusOnB())?.state, 'lost');

  // node A again, on its home: its first publish is the truth (it runs nothing: its lost row goes)
  const again = await startServer(homeA, { env, timeout: 60_000 });
  servers.push(again);
  await until('node A\'s lost row gone', 60_000, async () => ((await statusOnB()) === undefined ? true : undefined));
  const still = await statusOnB(nodeB);
  assert.equal(still?.instances[0]?.id, moved.instances[0]?.id, 'the instance stays on node B: nothing to even out');
  assert.notEqual(still?.instances[0]?.id, before.instances[0]?.id);
  await until('node A\'s core services listed again', 60_000, async () => ((await coreNodesOfA()).includes('registry') ? true : undefined));
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
