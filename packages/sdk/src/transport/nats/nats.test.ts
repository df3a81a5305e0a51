import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, type Msg } from '@nats-io/transport-node';
import { Client } from '../../client/client.js';
import { createClient } from '../../client/typed.js';
import { MicroError } from '../../errors/errors.js';
import { engineUrl, privateNats, testPrefix } from '../../engines/testing.js';
import { MemoryRegistry } from '../../registry/memory.js';
import { FileRegistry } from '../../registry/file.js';
import type { Registry } from '../../registry/registry.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Service } from '../../service/service.js';
import { echo, echoHandlers, silent, sleep, type Probe } from '../../test/fixtures.js';
import { encodeFrame, encodeRequest, encodeRoute, FrameType } from '../frame.js';
import { ConnectionPool } from '../client.js';
import { closeLinks } from './link.js';
import { forEachFrame, isBatch } from './batch.js';
import { NatsBroker } from '../../broker/nats.js';
import { parseNatsAddress, rpcSubject, subjectToken } from './subjects.js';
import './client.js';

/*
 * RPC over the real NATS (see README.md here). Each test has its own subject prefix, so
 * tests running in parallel never meet; core NATS keeps nothing, so there is nothing to
 * remove afterwards but the connections.
 */

after(() => closeLinks());

const host = join(dirname(fileURLToPath(import.meta.url)), 'instance-host.js');

interface Setup {
  url: string;
  prefix: string;
  namespace: string;
  registry: Registry;
  services: Service<typeof echo>[];
  probes: Probe[];
  pool: ConnectionPool;
  client: Client;
  typed: ReturnType<typeof createClient<typeof echo>>;
  start(): Promise<Service<typeof echo>>;
}

async function setup(t: TestContext, instances = 1, client: { retries?: number; timeout?: number; probe?: number; registry?: Registry } = {}): Promise<Setup | undefined> {
  const url = await engineUrl(t, 'nats');
  if (!url) return undefined;
  const prefix = testPrefix('rpc');
  const namespace = 'ns1';
  const registry = client.registry ?? new MemoryRegistry();
  const services: Service<typeof echo>[] = [];
  const probes: Probe[] = [];
  const pool = new ConnectionPool({ natsUrl: url, natsProbeInterval: client.probe ?? 200 });
  const start = async (): Promise<Service<typeof echo>> => {
    const probe: Probe = { produced: 0, streamClosed: 0, aborted: 0 };
    const svc = new Service(echo, echoHandlers(probe), { registry, namespace, logger: silent, nats: { url, prefix, livenessInterval: 200 }, drainTimeout: 2_000 });
    await svc.start();
    services.push(svc);
    probes.push(probe);
    return svc;
  };
  for (let i = 0; i < instances; i++) await start();
  const c = new Client({ registry, namespace, preferLocal: false, pool, retries: client.retries, timeout: client.timeout });
  t.after(async () => {
    pool.close();
    for (const s of services) await s.stop();
  });
  return { url, prefix, namespace, registry, services, probes, pool, client: c, typed: createClient(echo, c), start };
}

async function until(what: string, check: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function micro(code: number, detail?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof MicroError, `expected a MicroError, got ${String(err)}`);
    assert.equal(err.code, code, `${err.code} ${err.detail}`);
    if (detail) assert.match(err.detail, detail);
    return true;
  };
}

test('subject tokens: plain names stay, others are encoded reversibly and never split a subject', () => {
  assert.equal(subjectToken('greeter'), 'greeter');
  assert.equal(subjectToken('my-svc_2'), 'my-svc_2');
  const hostile = ['a.b', 'a b', '*', '>', 'a=b', 'ü', 'x\u0000y', '..'];
  const seen = new Set<string>();
  for (const name of hostile) {
    const token = subjectToken(name);
    assert.match(token, /^[A-Za-z0-9_=-]+$/, name);
    assert.ok(!seen.has(token), `two names share ${token}`);
    seen.add(token);
  }
  assert.equal(subjectToken('a.b'), 'a=2Eb');
  assert.equal(rpcSubject('micro', 'acme.eu', 'svc'), 'micro.rpc.acme=2Eeu.svc');
  assert.throws(() => subjectToken(''), micro(400));
  for (const bad of ['nats:', 'nats:a.*', 'nats:a.>', 'nats:a b', 'nats:a..b', 'tcp://x:1', `nats:${'a'.repeat(2000)}`]) {
    assert.throws(() => parseNatsAddress(bad), micro(400, /invalid address/), bad);
  }
  assert.equal(parseNatsAddress('nats:micro.rpc.ns.svc'), 'micro.rpc.ns.svc');
});

test('a service in the nats profile registers a nats: address and answers unary calls', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const [record] = await s.registry.getService('echo', { namespace: s.namespace });
  assert.match(record?.nodes[0]?.address ?? '', new RegExp(`^nats:${s.prefix}\\.rpcs\\.\\w+$`));
  assert.deepEqual(await s.typed.Call({ name: 'Ada' }, { metadata: { 'x-who': 'test' } }), { message: 'Hello Ada', metadata: { 'x-who': 'test' } });
  // typed errors cross NATS intact; a crash does not leak its message
  await assert.rejects(s.typed.Fail({ kind: 'typed' }), micro(404, /no such thing/));
  await assert.rejects(s.typed.Fail({ kind: 'crash' }), micro(500, /^internal server error$/));
  // a request the schema refuses
  await assert.rejects(s.client.call('echo', 'Call', { name: 42 }), micro(400));
});

test('unknown endpoints and services: a 404, and a 503 after a retry when nobody serves', async (t) => {
  const s = await setup(t);
  if (!s) return;
  await assert.rejects(s.client.call('echo', 'Nope', {}), micro(404, /endpoint echo\.Nope not found/));
  // an address nobody listens on: NATS says "no responders", a typed 503 at once
  const direct = new Client({ namespace: s.namespace, pool: s.pool, address: `nats:${s.prefix}.rpc.ns1.nobody` });
  await assert.rejects(direct.call('nobody', 'Call', {}), micro(503, /no instance of nobody is listening/));
  // the wrong kind of call
  await assert.rejects(
    (async () => {
      for await (const _ of s.client.stream('echo', 'Call', 'server', { name: 'x' }) as AsyncIterable<unknown>);
    })(),
    micro(400, /not a stream/),
  );
});

test('server, client and bidi streams, with flow control past the window', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const got: number[] = [];
  for await (const { n } of s.typed.Count({ to: 2_000 })) got.push(n);
  assert.equal(got.length, 2_000);
  assert.equal(got[1_999], 2_000);

  async function* numbers() {
    for (let n = 1; n <= 500; n++) yield { n };
  }
  assert.deepEqual(await s.typed.Sum(numbers()), { sum: 125_250, count: 500 });

  // 40 messages of 100 kB each way: four times the 1 MiB window, so credit must flow back
  const big = 'x'.repeat(100_000);
  async function* texts() {
    for (let i = 0; i < 40; i++) yield { text: `${i}${big}` };
  }
  let count = 0;
  for await (const { echo: e } of s.typed.Chat(texts())) {
    assert.equal(e.length, big.length + String(count).length);
    count++;
  }
  assert.equal(count, 40);
});

test('cancelling a stream or a unary call stops the handler on the instance', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const probe = s.probes[0]!;
  let seen = 0;
  for await (const _ of s.typed.Count({ to: 1_000_000_000 })) if (++seen === 10) break;
  await until('the stream handler to end', () => probe.streamClosed === 1);

  const ac = new AbortController();
  const slow = s.typed.Slow({ ms: 60_000 }, { signal: ac.signal });
  await sleep(100);
  ac.abort();
  await assert.rejects(slow, micro(499));
  await until('the unary handler to be aborted', () => probe.aborted === 1);
  // called through the queue group, the caller does not know the instance: the cancel
  // goes to every instance on the cancel subject, and the one holding the call stops it
  const group = new Client({ namespace: s.namespace, pool: s.pool, address: `nats:${rpcSubject(s.prefix, s.namespace, 'echo')}` });
  const ac2 = new AbortController();
  const slow2 = group.call('echo', 'Slow', { ms: 60_000 }, { signal: ac2.signal });
  await sleep(100);
  ac2.abort();
  await assert.rejects(slow2, micro(499));
  await until('the unary handler to be aborted', () => probe.aborted === 2);
  // a stream through the queue group: its frames follow the instance that answered first
  async function* numbers() {
    for (let n = 1; n <= 100; n++) yield { n };
  }
  assert.deepEqual(await group.stream('echo', 'Sum', 'client', numbers()), { sum: 5050, count: 100 });
});

test('a deadline ends the call on both sides', async (t) => {
  const s = await setup(t);
  if (!s) return;
  await assert.rejects(s.typed.Slow({ ms: 60_000 }, { timeout: 150 }), micro(504));
  await until('the handler to see its deadline', () => s.probes[0]!.aborted === 1);
  // a stream with a deadline
  await assert.rejects(
    (async () => {
      for await (const _ of s.typed.Chat((async function* () {
        yield { text: 'a' };
        // never ends, and holds no timer
        await new Promise(() => undefined);
      })(), { timeout: 150 }));
    })(),
    micro(504),
  );
});

test('two instances share the calls (selector, or queue group), and a graceful stop mid-run loses none', async (t) => {
  const s = await setup(t, 2);
  if (!s) return;
  const all = new Set(s.services.map((x) => x.nodeId));
  const nodes = new Set<string>();
  for (let i = 0; i < 40; i++) nodes.add(((await s.client.call('echo', 'Debug.Health', {})) as { node: string }).node);
  assert.deepEqual(nodes, all);
  // the service's own subject: NATS's queue group picks the instance
  const group = new Client({ namespace: s.namespace, pool: s.pool, address: `nats:${rpcSubject(s.prefix, s.namespace, 'echo')}` });
  const viaGroup = new Set<string>();
  for (let i = 0; i < 100 && viaGroup.size < 2; i++) viaGroup.add(((await group.call('echo', 'Debug.Health', {})) as { node: string }).node);
  assert.deepEqual(viaGroup, all);

  // 20 calls in flight all the time; one instance stops in the middle
  let ok = 0;
  let stopping: Promise<unknown> | undefined;
  const worker = async () => {
    for (let i = 0; i < 60; i++) {
      await s.typed.Call({ name: 'x' });
      ok++;
      if (ok === 400 && !stopping) stopping = s.services[0]!.stop();
    }
  };
  await Promise.all(Array.from({ length: 20 }, worker));
  assert.equal(ok, 1_200);
  await stopping;
  assert.equal(s.services[0]!.state, 'stopped');
});

test('kill -9 of an instance mid-run: calls go on through the other, lost ones retried once', async (t) => {
  // the instance in a process of its own registers where this process looks
  const dir = mkdtempSync(join(tmpdir(), 'micro-nats-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const s = await setup(t, 1, { retries: 1, probe: 200, registry: new FileRegistry({ dir }) });
  if (!s) return;
  const child = spawn(process.execPath, [host, s.url, s.prefix, s.namespace, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill('SIGKILL'));
  const [childNode] = await readyLine(child);
  // the calls the killed instance holds are lost with it; Call is idempotent, so they are
  // retried once, on the other instance
  const held = new Set<string>();
  for (let i = 0; i < 40 && held.size < 2; i++) held.add(((await s.client.call('echo', 'Debug.Health', {})) as { node: string }).node);
  assert.ok(held.has(childNode), 'the child instance takes calls');
  let ok = 0;
  let killed = false;
  const worker = async () => {
    for (let i = 0; i < 60; i++) {
      await s.typed.Call({ name: 'x' });
      ok++;
      if (ok === 300 && !killed) {
        killed = true;
        child.kill('SIGKILL');
      }
    }
  };
  await Promise.all(Array.from({ length: 20 }, worker));
  assert.equal(ok, 1_200);
  // a non-idempotent call held by a killed instance fails as lost, not hanging to its
  // deadline (called directly: the registry still lists the first child until its TTL)
  const child2 = spawn(process.execPath, [host, s.url, s.prefix, s.namespace, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child2.kill('SIGKILL'));
  const [, address] = await readyLine(child2);
  const direct = createClient(echo, new Client({ namespace: s.namespace, pool: s.pool, address, retries: 1 }));
  const lost = direct.Slow({ ms: 60_000 }, { timeout: 30_000 });
  lost.catch(() => undefined);
  await sleep(100);
  child2.kill('SIGKILL');
  await assert.rejects(lost, micro(503, /lost: its instance is gone/));
});

function readyLine(child: ChildProcess): Promise<[node: string, address: string]> {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /ready (\S+) (\S+)/.exec(out);
      if (m) resolve([m[1]!, m[2]!]);
    });
    child.once('exit', (code) => reject(new Error(`instance exited with ${code}`)));
  });
}

test('NATS unreachable: a typed 503 at once for callers, a clear error naming the URL for services', async (t) => {
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as { port: number }).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const url = `nats://127.0.0.1:${port}`;
  const pool = new ConnectionPool({ natsUrl: url });
  t.after(() => pool.close());
  const client = new Client({ namespace: 'x', pool, address: 'nats:micro.rpc.x.svc', retries: 1 });
  await assert.rejects(client.call('svc', 'Call', {}), micro(503, new RegExp(`cannot reach NATS at nats://127\\.0\\.0\\.1:${port}`)));
  const svc = new Service(echo, echoHandlers(), { registry: new MemoryRegistry(), logger: silent, nats: { url, prefix: 'micro', maxWait: 100 } });
  await assert.rejects(svc.start(), /cannot reach NATS at nats:\/\/127\.0\.0\.1:\d+ .*start NATS/);
  assert.equal(svc.state, 'stopped');
});

test('hostile input: oversized payloads get a 413, garbage on the subject is answered and the service serves on', async (t) => {
  const s = await setup(t);
  if (!s) return;
  // a request larger than NATS's max_payload (1 MiB by default): refused before sending
  await assert.rejects(s.typed.Call({ name: 'x'.repeat(2 * 1024 * 1024) }), micro(413, /max_payload/));
  // a response larger than it: the instance answers 413 instead
  await assert.rejects(s.typed.Big({ size: 2 * 1024 * 1024 }), micro(413, /exceeds the frame limit/));
  // a stream message larger than it
  await assert.rejects(
    (async () => {
      for await (const _ of s.typed.Chat([{ text: 'x'.repeat(2 * 1024 * 1024) }]));
    })(),
    micro(413),
  );

  const nc = await connect({ servers: s.url.replace('nats://', '') });
  t.after(() => nc.close());
  const subject = rpcSubject(s.prefix, s.namespace, 'echo');
  const garbage = [Buffer.alloc(0), Buffer.from('hi'), Buffer.from('GET / HTTP/1.1\r\n\r\n'), Buffer.from([99, 0, 0, 0, 0, 1, 2, 3]), Buffer.alloc(64, 0xff)];
  for (const g of garbage) {
    // without a reply subject: dropped
    nc.publish(subject, g);
    // with one: answered with an error (a frame) or ignored, never a crash
    const answer = await nc.request(subject, g, { timeout: 300 }).catch(() => undefined);
    if (answer && answer.data.length > 0) assert.equal(answer.data[0], FrameType.Error);
  }
  // a well-formed request on a reply subject with no call id, and a route that lies
  await nc.request(subject, encodeRequest(FrameType.Request, 1, 0, 'unary', 0, encodeRoute('other', 'echo', 'Call'), undefined, '{}').subarray(4), { timeout: 300 }).then(
    (m) => assert.equal(m.data[0], FrameType.Error),
    () => undefined,
  );
  nc.publish(`${subject}.cancel`, encodeFrame(FrameType.Cancel, 1, 0, undefined).subarray(4), { reply: 'x' });
  await nc.flush();
  assert.deepEqual(await s.typed.Call({ name: 'still here' }), { message: 'Hello still here', metadata: {} });
});

/** The frames of a NATS message: one, or those of a batch (batch.ts). */
function framesOf(msg: Msg): Buffer[] {
  const buf = Buffer.from(msg.data);
  if (!isBatch(buf)) return [buf];
  const out: Buffer[] = [];
  assert.ok(forEachFrame(buf, (f) => out.push(f)), 'a well-formed batch');
  return out;
}

test('frames written in one turn travel as one NATS message each way, for every kind of call', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const instance = s.services[0]!.address!.slice('nats:'.length);
  const rpc = rpcSubject(s.prefix, s.namespace, 'echo');
  // a second connection watches the subjects (plain subscribers get a copy of each message)
  const nc = await connect({ servers: s.url.replace('nats://', '') });
  t.after(() => nc.close());
  const seen = { requests: 0, cancels: 0, answers: 0 };
  nc.subscribe(instance, { callback: (_e, m) => void (isBatch(m.data) && seen.requests++) });
  nc.subscribe(`${rpc}.cancel`, { callback: (_e, m) => void (isBatch(m.data) && seen.cancels++) });
  // answers from this instance name it as their reply subject
  nc.subscribe('_INBOX.>', { callback: (_e, m) => void (m.reply === instance && isBatch(m.data) && seen.answers++) });
  await nc.flush();

  // 200 unary calls made in one turn, to the instance
  const names = Array.from({ length: 200 }, (_, i) => `n${i}`);
  const answers = await Promise.all(names.map((name) => s.typed.Call({ name })));
  assert.deepEqual(
    answers.map((a) => a.message),
    names.map((n) => `Hello ${n}`),
  );
  // 20 client streams opened in one turn through the queue group: their frames wait for
  // the instance's first answer, which comes in a batch, then follow it
  const group = new Client({ namespace: s.namespace, pool: s.pool, address: `nats:${rpc}` });
  async function* numbers(to: number) {
    for (let n = 1; n <= to; n++) yield { n };
  }
  const sums = await Promise.all(Array.from({ length: 20 }, (_, i) => group.stream('echo', 'Sum', 'client', numbers(10 + i))));
  assert.deepEqual(
    sums,
    Array.from({ length: 20 }, (_, i) => ({ sum: ((10 + i) * (11 + i)) / 2, count: 10 + i })),
  );
  // 30 slow calls through the queue group cancelled in one turn: one batch of CANCELs on
  // the cancel subject stops every handler
  const ac = new AbortController();
  const slow = Array.from({ length: 30 }, () => group.call('echo', 'Slow', { ms: 60_000 }, { signal: ac.signal }));
  // the instance holds them all (its health counts the calls in flight, itself included)
  for (let i = 0; i < 500; i++) {
    if (((await s.client.call('echo', 'Debug.Health', {})) as { inflight: number }).inflight > 30) break;
    await sleep(10);
  }
  ac.abort();
  for (const r of await Promise.allSettled(slow)) assert.ok(r.status === 'rejected' && micro(499)(r.reason));
  await until('every slow handler to be aborted', () => s.probes[0]!.aborted === 30);
  await nc.flush();
  assert.ok(seen.requests > 0, 'requests were batched');
  assert.ok(seen.cancels > 0, 'cancels were batched');
  assert.ok(seen.answers > 0, 'answers were batched');
});

test('a batch that reaches nobody fails every call in it at once, as not sent', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const gone = new Client({ namespace: s.namespace, pool: s.pool, address: `nats:${s.prefix}.rpcs.nobody`, retries: 0 });
  const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => gone.call('echo', 'Call', { name: `x${i}` })));
  for (const r of results) {
    assert.equal(r.status, 'rejected');
    const err = (r as PromiseRejectedResult).reason as unknown;
    assert.ok(micro(503, /no instance of echo is listening/)(err));
    assert.equal((err as { sent?: boolean }).sent, false);
  }
});

test('hostile batches: each frame is answered on its own id, a malformed one is refused, the service serves on', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const nc = await connect({ servers: s.url.replace('nats://', '') });
  t.after(() => nc.close());
  const subject = rpcSubject(s.prefix, s.namespace, 'echo');
  const inbox = `_INBOX.${s.prefix}`;
  const got = new Map<number, Buffer>();
  const ever = new Map<number, Buffer>();
  nc.subscribe(`${inbox}.*`, {
    callback: (_e, m) =>
      framesOf(m).forEach((f) => {
        got.set(f.readUInt32BE(2), Buffer.from(f));
        ever.set(f.readUInt32BE(2), Buffer.from(f));
      }),
  });
  await nc.flush();
  const call = (id: number, ns: string) => encodeRequest(FrameType.Request, id, 0, 'unary', 0, encodeRoute(ns, 'echo', 'Call'), undefined, JSON.stringify({ name: `b${id}` }));
  // a good call, a frame of an unknown type, a route that lies, a late CANCEL of no call
  const unknown = encodeFrame(FrameType.End, 2, 0, undefined);
  unknown[4] = 99;
  nc.publish(subject, Buffer.concat([call(1, s.namespace), unknown, call(3, 'other'), encodeFrame(FrameType.Cancel, 4, 0, undefined)]), { reply: `${inbox}.1-2-3-4` });
  await until('the answers to the batch', () => got.has(1) && got.has(2) && got.has(3));
  assert.equal(got.get(1)![0], FrameType.Response);
  assert.match(got.get(1)!.toString(), /Hello b1/);
  assert.equal(got.get(2)![0], FrameType.Error);
  assert.match(got.get(2)!.toString(), /unknown frame type 99/);
  assert.equal(got.get(3)![0], FrameType.Error);
  assert.equal(got.has(4), false);
  // batches that cannot be framed: what came before the bad length is served, the rest is
  // refused on the reply subject with an error that names no call
  const malformed = [
    Buffer.from([0, 0, 0, 200, 1, 0, 0, 0, 0, 9]),
    Buffer.from([0, 0, 0, 2, 1, 2]),
    Buffer.concat([call(5, s.namespace), Buffer.from([0, 0, 0])]),
    Buffer.concat([Buffer.from([0, 0xff, 0xff, 0xff]), Buffer.alloc(64)]),
  ];
  for (const bad of malformed) {
    got.clear();
    // without a reply subject: dropped
    nc.publish(subject, bad);
    nc.publish(subject, bad, { reply: `${inbox}.9` });
    await until('the refusal', () => got.has(0));
    assert.equal(got.get(0)![0], FrameType.Error);
    assert.match(got.get(0)!.toString(), /malformed batch/);
  }
  await until('the call before the bad length', () => ever.has(5));
  assert.equal(ever.get(5)![0], FrameType.Response);
  assert.deepEqual(await s.typed.Call({ name: 'still here' }), { message: 'Hello still here', metadata: {} });
});

test('NATS lost while running: calls and publishes fail fast with a 503, and work again when it is back', async (t) => {
  if (!(await engineUrl(t, 'nats'))) return;
  const nats = await privateNats(t);
  const prefix = testPrefix('restart');
  const registry = new MemoryRegistry();
  const svc = new Service(echo, echoHandlers(), { registry, namespace: 'ns', logger: silent, nats: { url: nats.url, prefix }, drainTimeout: 500 });
  await svc.start();
  const pool = new ConnectionPool({ natsUrl: nats.url });
  const broker = new NatsBroker({ url: nats.url, prefix });
  t.after(async () => {
    pool.close();
    await broker.close();
    await svc.stop();
  });
  const typed = createClient(echo, new Client({ registry, namespace: 'ns', preferLocal: false, pool, timeout: 5_000 }));
  const got: unknown[] = [];
  await broker.subscribe('t', (m) => void got.push(m.body));
  assert.equal((await typed.Call({ name: 'a' })).message, 'Hello a');

  await nats.kill();
  // once the client library has seen the socket close (at once on this machine), both fail
  // with a 503 rather than waiting: a call with 5 s to go would otherwise end in a 504
  let published: unknown;
  for (let i = 0; i < 100 && !(published instanceof MicroError); i++) {
    published = await broker.publish('t', 'lost').catch((e: unknown) => e);
    if (!(published instanceof MicroError)) await sleep(20);
  }
  assert.ok(published instanceof MicroError && published.code === 503, `expected a 503, got ${String(published)}`);
  await assert.rejects(typed.Call({ name: 'b' }), micro(503));
  const direct = new Client({ namespace: 'ns', pool, address: svc.address, retries: 0 });
  await assert.rejects(direct.call('echo', 'Call', { name: 'b' }), micro(503, /NATS at nats:\/\/127\.0\.0\.1:\d+ is unreachable/));

  await nats.start();
  // nats.js reconnects and subscribes again on its own; calls work once it has (called
  // directly: the selector's circuit breaker keeps the node aside for a while after the
  // failures above, as it would over TCP)
  let answer: unknown;
  let last: unknown;
  for (let i = 0; i < 200 && answer === undefined; i++) {
    answer = await direct.call('echo', 'Call', { name: 'c' }).catch((e: unknown) => void (last = e));
    if (answer === undefined) await sleep(50);
  }
  assert.deepEqual(answer, { message: 'Hello c', metadata: {} }, `last error: ${String(last)}`);
  await broker.publish('t', 'back');
  await until('the message after the restart', () => got.includes('back'));
});
