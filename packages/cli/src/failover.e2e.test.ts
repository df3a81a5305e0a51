import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { privateNats, processAlive as alive } from '@micro/sdk/testing';
import { micro, natsPlatform, startServer, stopProcess, tempDir, until, type RunningServer } from './testing.js';

/*
 * Three `micro server` nodes on the nats profile (a NATS server of this test's own, so
 * that it can be restarted; the shared PostgreSQL and Redis), two services run on node A:
 * `one` with one instance and `many` with three (one a node). Under a steady stream of
 * calls through node B's gateway:
 * - kill -9 of node A: `one` fails only from the kill until its instance runs on a
 *   survivor, within MICRO_NODE_LEASE + 20 s (the documented window); `many` keeps
 *   answering (two instances remain); every node's `micro status` agrees with the
 *   processes that exist, and no service runs more instances than asked;
 * - nats-server restarted: calls fail while it is down, and answer again after; the
 *   services are not started twice;
 * - `micro update many` through node C while node A is down: node A comes back with the
 *   old build in its state, and runs the new one;
 * - node A back: the survivors hand instances back to it (make-before-break) with no
 *   failed call, and while they do no service runs more than one instance over its count.
 */

const LEASE = 3;
/** the documented bound: a dead node's services answer again within its lease and 20 s */
const WINDOW = (LEASE + 20) * 1000;

interface Status {
  name: string;
  node?: string;
  state: string;
  desiredInstances: number;
  build?: { id: string };
  instances: { id: string; state: string; pid?: number }[];
}

interface Call {
  at: number;
    service: string;
  status: number;
  body: string;
}

async function post(base: string, path: string, body: unknown, token?: string): Promise<{ status: number; body: string }> {
  try {
    const res = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
    return { status: res.status, body: await res.text() };
  } catch (err) {
    return { status: 0, body: String(err) };
  }
}

const nodeOf = (home: string) => (JSON.parse(readFileSync(join(home, 'server', 'node.json'), 'utf8')) as { id: string }).id;

/**
 * Nodes of one platform on the real engines (natsPlatform), each with a home of its own
 * (`names`), and a folder for sources; stopped and removed after the test.
 */
async function nodesOf<K extends string>(t: TestContext, label: string, names: K[], extra: Record<string, string> = {}) {
  const platform = await natsPlatform(t, label);
  if (!platform) return undefined;
  const env: Record<string, string> = { ...platform.env, MICRO_NODE_LEASE: String(LEASE), ...extra };
  const homes = Object.fromEntries(names.map((n) => [n, tempDir(`micro-${label}-${n}-`)])) as Record<K, string>;
  const work = tempDir(`micro-${label}-src-`);
  const servers: RunningServer[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  t.after(async () => {
    for (const s of servers) await stopProcess(s.proc, 'SIGTERM');
    for (const c of cleanups) await c();
    await platform.drop();
    for (const d of [...Object.values<string>(homes), work]) rmSync(d, { recursive: true, force: true });
  });
  return {
    env,
    homes,
    work,
    /** runs at the end, before the platform is dropped */
    cleanup: (fn: () => Promise<void>) => cleanups.push(fn),
    start: async (home: string, more: Record<string, string> = {}) => {
      const s = await startServer(home, { env: { ...env, ...more }, timeout: 60_000 });
      servers.push(s);
      return s;
    },
    /** `micro new demo`, then `micro run ./demo` through the node of `home` */
    runDemo: async (home: string, args: string[] = []) => {
      assert.equal((await micro(home, ['new', 'demo'], { cwd: work })).code, 0);
      const run = await micro(home, ['run', './demo', ...args], { cwd: work, env, timeout: 180_000 });
      assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
      return run;
    },
    /** `micro status demo` as the node of `home` shows it: a row per node */
    demoStatus: async (home: string): Promise<Status[]> => {
      const r = await micro(home, ['status', 'demo', '--output', 'json'], { env });
      return r.code === 0 ? (JSON.parse(r.stdout) as Status[]) : [];
    },
  };
}

test('three nodes: a killed node\'s services move to the survivors within the window, a nats-server restart starts nothing twice, and the node\'s return gives instances back without a failed call', { timeout: 600_000 }, async (t) => {
  const nats = await privateNats(t);
  const cluster = await nodesOf(t, 'failover', ['a', 'b', 'c'], { MICRO_NATS_URL: nats.url });
  if (!cluster) return;
  const { env, homes, work, start } = cluster;
  const a = await start(homes.a);
  const b = await start(homes.b);
  await start(homes.c);
  const nodes = { a: nodeOf(homes.a), b: nodeOf(homes.b), c: nodeOf(homes.c) };

  for (const name of ['one', 'many']) assert.equal((await micro(homes.a, ['new', name], { cwd: work })).code, 0);
  // a short registry TTL: a dead instance leaves the registry within 3 s of its last heart-beat
  const runOne = await micro(homes.a, ['run', './one', '--env', 'MICRO_REGISTER_TTL=3'], { cwd: work, env, timeout: 180_000 });
  assert.equal(runOne.code, 0, `${runOne.stdout}\n${runOne.stderr}`);
  const runMany = await micro(homes.a, ['run', './many', '--instances', '3', '--env', 'MICRO_REGISTER_TTL=3'], { cwd: work, env, timeout: 180_000 });
  assert.equal(runMany.code, 0, `${runMany.stdout}\n${runMany.stderr}`);
  assert.match(runMany.stdout, /3\/3 instances running/);

  const statusOn = async (home: string): Promise<Status[]> => {
    const r = await micro(home, ['status', '--output', 'json'], { env });
    if (r.code !== 0) throw new Error(r.stderr);
    return JSON.parse(r.stdout) as Status[];
  };
  /** the running instances of a service on the platform, by node, as the status of `home` shows them */
  const running = (list: Status[], name: string) => list.filter((s) => s.name === name && s.state !== 'lost').flatMap((s) => s.instances.filter((i) => i.state === 'running').map((i) => ({ ...i, node: s.node as string })));

  // one instance of `many` on each node; `one` on node A, which built it
  const placed = await until('many on three nodes, one on node A', 60_000, async () => {
    const list = await statusOn(homes.b);
    const m = running(list, 'many');
    const o = running(list, 'one');
    return m.length === 3 && new Set(m.map((i) => i.node)).size === 3 && o.length === 1 ? { m, o } : undefined;
  });
  assert.equal(placed.o[0]?.node, nodes.a);

  const admin = JSON.parse(readFileSync(join(homes.a, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
  const tok = await post(b.gateway, '/v1/auth/Token', { id: admin.id, secret: admin.secret, namespace: 'micro' });
  assert.equal(tok.status, 200, tok.body);
  const token = (JSON.parse(tok.body) as { token: string }).token;
  for (const name of ['one', 'many']) await until(`${name} through node B`, 30_000, async () => ((await post(b.gateway, `/v1/${name}/Call`, { name: 'x' }, token)).status === 200 ? true : undefined));

  // the steady stream of calls through node B
  const calls: Call[] = [];
  let streaming = true;
  const stream = (async () => {
    let i = 0;
    while (streaming) {
      for (const service of ['one', 'many']) {
        const at = Date.now();
        const r = await post(b.gateway, `/v1/${service}/Call`, { name: `c${i}` }, token);
        calls.push({ at, service, status: r.status, body: r.body.slice(0, 200) });
      }
      i++;
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const failedBetween = (service: string, from: number, to = Infinity) => calls.filter((c) => c.service === service && c.at >= from && c.at < to && c.status !== 200);
  await new Promise((r) => setTimeout(r, 2_000));
  assert.deepEqual(failedBetween('one', 0).concat(failedBetween('many', 0)), [], 'every call answers before the kill');

  // kill -9 of node A
  const pidsOfA = (await statusOn(homes.a)).filter((s) => s.node === nodes.a).flatMap((s) => s.instances.map((i) => i.pid)).filter((p): p is number => typeof p === 'number');
  assert.equal(pidsOfA.length, 2, 'node A runs one and an instance of many');
  await stopProcess(a.proc, 'SIGKILL');
  const killedAt = Date.now();
  // the instances node A started die with it (they watch their parent): from then on only a new instance answers one
  await until('node A\'s instances gone', 10_000, async () => (pidsOfA.every((p) => !alive(p)) ? true : undefined));
  const orphanedAt = Date.now();
  const moved = await until('one running on a survivor', WINDOW + 30_000, async () => {
    const o = running(await statusOn(homes.b), 'one');
    return o.length === 1 && o[0]?.node !== nodes.a ? o[0] : undefined;
  });
  const recovered = await until('one answering again through node B', 30_000, async () => {
    const last = calls.filter((c) => c.service === 'one' && c.at > orphanedAt).slice(-3);
    return last.length === 3 && last.every((c) => c.status === 200) ? last[0]?.at : undefined;
  });
  const lastFailure = failedBetween('one', killedAt).at(-1);
  assert.ok(!lastFailure || lastFailure.at - killedAt <= WINDOW, `one failed ${lastFailure ? lastFailure.at - killedAt : 0} ms after the kill, past the window of ${WINDOW} ms`);
  assert.ok(recovered - killedAt <= WINDOW, `one answered again ${recovered - killedAt} ms after the kill, past the window of ${WINDOW} ms`);
  t.diagnostic(`kill -9 of node A: one's instance gone after ${orphanedAt - killedAt} ms, running on ${moved.node.slice(0, 8)}; ${failedBetween('one', killedAt).length} calls failed, the last ${lastFailure ? lastFailure.at - killedAt : 0} ms after the kill; answering again after ${recovered - killedAt} ms (window ${WINDOW} ms)`);

  // the survivors agree: node A's rows lost, one instance of one and three of many, every pid alive
  const agreed = async (homesToAsk: string[], want: { one: number; many: number }) =>
    until(`every node shows one ×${want.one}, many ×${want.many}`, 60_000, async () => {
      const views = await Promise.all(homesToAsk.map((h) => statusOn(h)));
      for (const list of views) {
        const o = running(list, 'one');
        const m = running(list, 'many');
        if (o.length !== want.one || m.length !== want.many) return undefined;
        if (![...o, ...m].every((i) => i.pid && alive(i.pid))) return undefined;
      }
      const ids = views.map((list) => [...running(list, 'one'), ...running(list, 'many')].map((i) => i.id).sort().join(','));
      return new Set(ids).size === 1 ? views[0] : undefined;
    });
  const afterKill = await agreed([homes.b, homes.c], { one: 1, many: 3 });
  assert.ok(running(afterKill, 'one').every((i) => i.node !== nodes.a));
  assert.ok(afterKill.filter((s) => s.node === nodes.a).every((s) => s.state === 'lost' && s.instances.every((i) => i.state === 'lost' && i.pid === undefined)), 'node A\'s rows are lost, without pids');
  // many lost an instance with node A, never all of them: calls through B answered throughout, but those in flight to A's
  const manyFailures = failedBetween('many', killedAt);
  t.diagnostic(`kill -9 of node A: many failed ${manyFailures.length} calls`);
  assert.ok(manyFailures.length <= 2, `many failed ${manyFailures.length} times: ${JSON.stringify(manyFailures.slice(0, 3))}`);

  // nats-server restarted: calls fail while it is down, and the services come back once, not twice
  await nats.kill();
  const natsDownAt = Date.now();
  await new Promise((r) => setTimeout(r, 2_000));
  await nats.start();
  const natsUpAt = Date.now();
  const answering = await until('one and many answering after the nats-server restart', 60_000, async () => {
    const last = calls.filter((c) => c.at > natsUpAt).slice(-6);
    return last.length === 6 && last.every((c) => c.status === 200) ? Date.now() : undefined;
  });
  t.diagnostic(`nats-server down for ${natsUpAt - natsDownAt} ms: ${failedBetween('one', natsDownAt).length + failedBetween('many', natsDownAt).length} calls failed; answering again ${answering - natsUpAt} ms after it was back`);
  assert.ok(calls.filter((c) => c.at > natsDownAt).length > 0);
  await agreed([homes.b, homes.c], { one: 1, many: 3 });

  // a new build of many while node A is down (node A keeps the old one in its state.json)
  const handlers = join(work, 'many', 'src', 'handlers.ts');
  writeFileSync(handlers, readFileSync(handlers, 'utf8').replaceAll('Hello', 'Howdy'));
  const update = await micro(homes.c, ['update', 'many', './many'], { cwd: work, env, timeout: 180_000 });
  assert.equal(update.code, 0, `${update.stdout}\n${update.stderr}`);
  const newBuild = await until('every instance of many on the new build', 60_000, async () => {
    const list = (await statusOn(homes.b)).filter((s) => s.name === 'many' && s.state !== 'lost');
    const builds = new Set(list.map((s) => s.build?.id));
    return builds.size === 1 && running(list, 'many').length === 3 ? [...builds][0] : undefined;
  });
  await until('many answers from the new build', 30_000, async () => {
    const r = await post(b.gateway, '/v1/many/Call', { name: 'z' }, token);
    return r.status === 200 && r.body.includes('Howdy z') ? true : undefined;
  });

  // node A back: instances are handed back, make-before-break, with no failed call
  const backAt = Date.now();
  await start(homes.a);
  let over = 0;
  const handedBack = await until('node A given instances back', 90_000, async () => {
    const list = await statusOn(homes.b);
    // at most one instance over the count of each service, and only during a hand-over
    if (running(list, 'one').length > 2 || running(list, 'many').length > 4) over++;
    const onA = [...running(list, 'one'), ...running(list, 'many')].filter((i) => i.node === nodes.a);
    return onA.length >= 1 ? list : undefined;
  });
  assert.equal(over, 0, 'no service ran more than one instance over its count');
  assert.ok(handedBack);
  const settled = await agreed([homes.a, homes.b, homes.c], { one: 1, many: 3 });
  const load = Object.values(nodes).map((n) => [...running(settled, 'one'), ...running(settled, 'many')].filter((i) => i.node === n).length);
  assert.ok(Math.max(...load) - Math.min(...load) <= 1, `even after the return: ${load.join(',')}`);
  assert.deepEqual(new Set(running(settled, 'many').map((i) => i.node)), new Set(Object.values(nodes)), 'many spreads over the three again');
  streaming = false;
  await stream;
  t.diagnostic(`node A back: ${calls.filter((c) => c.at >= backAt).length} calls while instances were handed back (load ${load.join(',')})`);
  assert.deepEqual(failedBetween('one', backAt).concat(failedBetween('many', backAt)), [], 'no call failed while instances were handed back');
  assert.deepEqual(
    calls.filter((c) => c.service === 'many' && c.at >= backAt && !c.body.includes('Howdy')),
    [],
    'node A ran the new build of many, not the one its state had',
  );
  assert.deepEqual(new Set(settled.filter((s) => s.name === 'many').map((s) => s.build?.id)), new Set([newBuild]));

  // micro kill through node C: nothing of either is left on any node
  for (const name of ['one', 'many']) assert.equal((await micro(homes.c, ['kill', name], { env })).code, 0);
  await until('nothing left running', 30_000, async () => {
    const views = await Promise.all([homes.a, homes.b, homes.c].map((h) => statusOn(h)));
    return views.every((list) => running(list, 'one').length + running(list, 'many').length === 0) ? true : undefined;
  });
});

test('a node cut off from PostgreSQL stops its instances when its lease runs out, before another node starts them: never both', { timeout: 300_000 }, async (t) => {
  const cluster = await nodesOf(t, 'partition', ['a', 'b']);
  if (!cluster) return;
  const { env, homes, start } = cluster;
  const { relay } = await import('@micro/server/testing');
  const cable = await relay(env.MICRO_POSTGRES_URL as string);
  cluster.cleanup(() => cable.close());
  // node A reaches PostgreSQL only through the cable
  await start(homes.a, { MICRO_POSTGRES_URL: cable.url });
  const b = await start(homes.b);
  const nodes = { a: nodeOf(homes.a), b: nodeOf(homes.b) };
  await cluster.runDemo(homes.a);
  const statusOnB = () => cluster.demoStatus(homes.b);
  const onA = await until('demo running on node A', 30_000, async () => (await statusOnB()).find((s) => s.node === nodes.a && s.state === 'running')?.instances[0]?.pid);

  await cable.cut();
  const cutAt = Date.now();
  // node B starts demo once node A's lease has ended; by then node A has stopped its own
  const onB = await until('demo running on node B', (LEASE + 30) * 1000, async () => {
    const row = (await statusOnB()).find((s) => s.node === nodes.b && s.state === 'running');
    return row?.instances[0]?.state === 'running' ? row : undefined;
  });
  assert.equal(alive(onA), false, 'node A stopped its instance before node B ran one');
  t.diagnostic(`cut off at 0 ms: node B ran demo after ${Date.now() - cutAt} ms`);
  // the gateway of node B reaches the one instance there is
  const admin = JSON.parse(readFileSync(join(homes.a, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
  const token = (JSON.parse((await post(b.gateway, '/v1/auth/Token', { id: admin.id, secret: admin.secret, namespace: 'micro' })).body) as { token: string }).token;
  await until('demo through node B', 30_000, async () => ((await post(b.gateway, '/v1/demo/Call', { name: 'p' }, token)).status === 200 ? true : undefined));

  // PostgreSQL back for node A: it holds its lease again and runs nothing twice
  await cable.restore();
  await until('node A live again, running nothing', 60_000, async () => {
    const list = await statusOnB();
    return list.some((s) => s.node === nodes.a) ? undefined : true;
  });
  const after = await statusOnB();
  assert.deepEqual(
    after.map((s) => [s.node, s.state, s.instances.length]),
    [[nodes.b, 'running', 1]],
  );
  assert.equal(after[0]?.instances[0]?.id, onB.instances[0]?.id, 'the instance on node B stays');
});

test('a build that fails on one node only: that node gives its instance up and the others run it', { timeout: 300_000 }, async (t) => {
  const cluster = await nodesOf(t, 'onlyone', ['a', 'b']);
  if (!cluster) return;
  const { env, homes, start } = cluster;
  // node B cannot make a build folder of namespace micro (a file is in the way)
  mkdirSync(join(homes.b, 'runtime', 'builds'), { recursive: true });
  writeFileSync(join(homes.b, 'runtime', 'builds', 'micro'), 'not a folder\n');
  await start(homes.a);
  await start(homes.b);
  const nodes = { a: nodeOf(homes.a), b: nodeOf(homes.b) };
  const run = await cluster.runDemo(homes.a, ['--instances', '2']);
  assert.match(run.stdout, /2\/2 instances running/);
  const rows = await until('both instances on node A', 30_000, async () => {
    const list = await cluster.demoStatus(homes.b);
    return list.length === 1 && list[0]?.node === nodes.a && list[0].instances.filter((i) => i.state === 'running').length === 2 ? list : undefined;
  });
  assert.equal(rows[0]?.desiredInstances, 2);
  // node B says why, in the service's log it keeps
  const logs = await micro(homes.b, ['logs', 'demo', '--lines', '50'], { env });
  assert.match(logs.stdout, /this node cannot run build \S+: .*its instances go to other nodes/);
});

test('two servers with the same home: the second takes the node\'s lease, the first stops its instances, nothing runs twice', { timeout: 300_000 }, async (t) => {
  const cluster = await nodesOf(t, 'twin', ['a', 'b']);
  if (!cluster) return;
  const { env, homes, work, start } = cluster;
  await start(homes.a);
  await start(homes.b);
  await cluster.runDemo(homes.a);
  const statusOnB = () => cluster.demoStatus(homes.b);
  const first = await until('demo running on node A', 30_000, async () => (await statusOnB()).find((s) => s.state === 'running')?.instances[0]?.pid);
  // a copy of node A's home, started beside it: the same node id
  const twin = tempDir('micro-twin-copy-');
  cluster.cleanup(async () => rmSync(twin, { recursive: true, force: true }));
  // (as on another machine: without the lock that keeps two servers off one home on one machine,
  cpSync(homes.a, twin, { recursive: true });
  // and whose recorded pids are not its processes: it must not stop the first server's instances itself)
  rmSync(join(twin, 'server', 'lock'), { force: true });
  const state = JSON.parse(readFileSync(join(twin, 'runtime', 'state.json'), 'utf8')) as { services: { processes: { pid?: number }[] }[] };
  for (const svc of state.services) for (const p of svc.processes) delete p.pid;
  writeFileSync(join(twin, 'runtime', 'state.json'), JSON.stringify(state));
  await start(twin);
  await until('the first server stopped its instance', 30_000, async () => (alive(first) ? undefined : true));
  // the twin runs the node's slot: one instance in all, never two
  const rows = await until('demo running once, on the twin', 60_000, async () => {
    const list = await statusOnB();
    const pids = list.flatMap((s) => s.instances.filter((i) => i.state === 'running').map((i) => i.pid));
    return pids.length === 1 && pids[0] !== first ? list : undefined;
  });
  assert.equal(rows.length, 1);
  // the first server says why when asked to run something
  const refused = await micro(homes.a, ['run', './demo', '--name', 'other'], { cwd: work, env, timeout: 60_000 });
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /holds no lease/);
});
