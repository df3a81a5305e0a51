import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import { type Delivery, type Event } from '@micro/sdk';
import { engineUrl, testPrefix } from '@micro/sdk/testing';
import { connectJetStreamEvents, type JetStreamEvents } from './jetstream.js';
import { silent } from './testing.js';

/*
 * Durability against a real crash: a consumer of the events on JetStream in a process of
 * its own (jetstream-crash-host.ts), killed with SIGKILL while events stream in and it
 * acknowledges them; then another member of its group takes over.
 */

const host = join(dirname(fileURLToPath(import.meta.url)), 'jetstream-crash-host.js');
const procs = new Set<ChildProcessWithoutNullStreams>();
after(() => {
  for (const p of procs) p.kill('SIGKILL');
});

interface Host {
  proc: ChildProcessWithoutNullStreams;
  exited: Promise<unknown>;
  lines: string[];
}

function startHost(url: string, prefix: string, ackWait: number): Promise<Host> {
  const proc = spawn(process.execPath, [host, url, prefix, String(ackWait)], { env: { ...process.env, MICRO_LOG_LEVEL: 'silent' } });
  procs.add(proc);
  const exited = new Promise((resolve) => proc.once('exit', resolve)).finally(() => procs.delete(proc));
  const lines: string[] = [];
  let rest = '';
  let err = '';
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the host did not start:\n${err}`)), 15_000);
    proc.stdout.on('data', (d: Buffer) => {
      const text = rest + d.toString();
      const parts = text.split('\n');
      rest = parts.pop() ?? '';
      for (const line of parts) {
        lines.push(line);
        if (line === 'ready') {
          clearTimeout(timer);
          resolve({ proc, exited, lines });
        }
      }
    });
    void exited.then(() => reject(new Error(`the host exited:\n${err}`)));
  });
}

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The promise's value, or a failure naming what did not come within `ms`. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

async function readAll(events: JetStreamEvents, topic: string): Promise<Event[]> {
  const all: Event[] = [];
  for (let offset: number | undefined = 1; offset !== undefined; ) {
    const page = await events.read(topic, { offset, limit: 1000 });
    all.push(...page.events);
    offset = page.next;
  }
  return all;
}

test('kill -9 of a consumer mid-stream: no acknowledged event comes again, every unacknowledged one does', async (t) => {
  const url = await engineUrl(t, 'nats');
  if (!url) return;
  const prefix = testPrefix('jscrash');
  // short ack waits: what the dead consumer held comes back after JetStream's (1 s + the grace)
  const ackWait = 1_000;
  const { events, close } = await connectJetStreamEvents(url, { prefix, logger: silent, ackGrace: 1_000 });
  t.after(async () => {
    const jsm = await jetstreamManager(events.nc);
    for await (const name of jsm.streams.names(`${prefix}.events.>`)) await jsm.streams.delete(name).catch(() => undefined);
    await close();
  });
  // the topic exists before the consumer starts; its events come while it works
  await events.publish('crash', { i: -1 }, { id: 'first' });
  const consumer = await startHost(url, prefix, ackWait);
  const N = 400;
  const published = new Map<number, number>();
  const publishing = Array.from({ length: 8 }, (_, w) =>
    (async () => {
      for (let i = w; i < N; i += 8) published.set(i, (await events.publish('crash', { i }, { id: `e-${i}` })).offset);
    })(),
  );
  const acked = () => new Set(consumer.lines.filter((l) => l.startsWith('acked ')).map((l) => Number(l.slice(6))));
  await until(() => acked().size >= N / 4, 'a quarter of the events acknowledged');
  consumer.proc.kill('SIGKILL');
  await consumer.exited;
  await Promise.all(publishing);

  // every publish that returned is stored, at its offset, once
  const stored = await readAll(events, 'crash');
  assert.equal(stored.length, N + 1);
  assert.deepEqual(stored.map((e) => e.offset), stored.map((_, k) => k + 1));
  for (const [i, offset] of published) assert.deepEqual([stored[offset - 1]?.id, stored[offset - 1]?.payload], [`e-${i}`, { i }]);

  const ackConfirmed = acked();
  const ackSent = new Set(consumer.lines.filter((l) => l.startsWith('ack ')).map((l) => Number(l.slice(4))));
  const received = new Set(consumer.lines.filter((l) => l.startsWith('got ')).map((l) => Number(l.split(' ')[1])));
  assert.ok(received.size > ackSent.size, 'the consumer held some events when it died');

  // another member of the group takes over
  const again = await events.consume('crash', { group: 'g', ackWait, maxRetries: 1000, maxInFlight: 1000 });
  const redelivered: Delivery[] = [];
  const seen = new Set<number>();
  for (;;) {
    const [g] = await events.groups('crash');
    if (g && g.committed === N + 1 && g.inflight === 0) break;
    const r = await within(again.next(), 20_000, `no delivery (group ${JSON.stringify(g)})`);
    assert.equal(r.done, false);
    const d = r.value as Delivery;
    // a delivery the new member let expire would come again: it acks at once
    await d.ack();
    if (!seen.has(d.event.offset)) redelivered.push(d);
    seen.add(d.event.offset);
  }
  await again.close();
  for (const o of ackConfirmed) assert.ok(!seen.has(o), `acknowledged event ${o} came again`);
  // (an ack sent but not confirmed may or may not have been applied before the crash)
  for (let o = 1; o <= N + 1; o++) if (!ackSent.has(o)) assert.ok(seen.has(o), `unacknowledged event ${o} came again`);
  const held = redelivered.filter((d) => received.has(d.event.offset) && !ackSent.has(d.event.offset));
  assert.ok(held.length > 0, 'events held at the crash came again');
  assert.ok(held.every((d) => d.attempt >= 2), 'their earlier attempts were counted');
});

/** A nats-server of this test's own, on a port and store directory that survive its restarts. */
async function startNats(port: number, dir: string): Promise<ChildProcessWithoutNullStreams> {
  const proc = spawn('/usr/sbin/nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir]);
  procs.add(proc);
  void new Promise((resolve) => proc.once('exit', resolve)).finally(() => procs.delete(proc));
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nats-server did not start:\n${out}`)), 15_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      if (/Server is ready/.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
  });
  return proc;
}

test('kill -9 of nats-server while publishing: every publish that returned is there after its restart; calls fail fast meanwhile, then work again', async (t) => {
  // the machine's NATS being there says that nats-server can run here
  if (!(await engineUrl(t, 'nats'))) return;
  const { existsSync, mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { createServer } = await import('node:net');
  if (!existsSync('/usr/sbin/nats-server')) {
    t.skip('no /usr/sbin/nats-server to start');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'micro-events-nats-'));
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  let nats = await startNats(port, dir);
  const url = `nats://127.0.0.1:${port}`;
  const { events, close } = await connectJetStreamEvents(url, { prefix: 'micro', logger: silent });
  t.after(async () => {
    await close();
    nats.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  // a consumer waiting through the outage (its pull request dies with the server)
  const consumer = await events.consume('later', { group: 'g', ackWait: 60_000 });
  const waiting = consumer.next();
  const N = 300;
  const published = new Map<number, number>();
  const failed = new Set<number>();
  const publishing = Array.from({ length: 8 }, (_, w) =>
    (async () => {
      for (let i = w; i < N; i += 8) {
        try {
          published.set(i, (await events.publish('orders', { i }, { id: `o-${i}` })).offset);
        } catch (err) {
          assert.equal((err as { code?: number }).code, 503, String(err));
          failed.add(i);
        }
      }
    })(),
  );
  await until(() => published.size >= N / 3, 'a third of the publishes');
  nats.kill('SIGKILL');
  await Promise.all(publishing);
  assert.ok(failed.size > 0, 'the crash interrupted the publishing');
  // NATS away: a call fails at once with a 503 that says so
  await until(() => events.publish('orders', 'x').then(() => false, (err: { code?: number }) => err.code === 503), 'a 503 while NATS is away');

  nats = await startNats(port, dir);
  await until(() => events.topics().then(() => true, () => false), 'NATS back');
  const stored = await readAll(events, 'orders');
  for (const [i, offset] of published) assert.deepEqual([stored[offset - 1]?.id, stored[offset - 1]?.payload], [`o-${i}`, { i }], `event ${i} at offset ${offset}`);
  // the failed publishes retried with their ids: each is stored once, whether or not it had made it
  for (const i of failed) await events.publish('orders', { i }, { id: `o-${i}` });
  const all = await readAll(events, 'orders');
  assert.deepEqual(new Set(all.map((e) => e.id)), new Set(Array.from({ length: N }, (_, i) => `o-${i}`)));
  assert.equal(all.length, N);
  // the consumer that waited through the outage gets what comes after it
  await events.publish('later', 'after the restart');
  const first = await within(waiting, 20_000, 'no delivery after the restart');
  assert.equal(first.done, false);
  assert.equal((first.value as Delivery).event.payload, 'after the restart');
  await consumer.close();
});

test('NATS away while a consumer settles: its ack fails with a 503 after apiTimeout; once NATS is back, settles are answered again', async (t) => {
  if (!(await engineUrl(t, 'nats'))) return;
  const { existsSync, mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { createServer } = await import('node:net');
  if (!existsSync('/usr/sbin/nats-server')) {
    t.skip('no /usr/sbin/nats-server to start');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'micro-events-nats-'));
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  let nats = await startNats(port, dir);
  const url = `nats://127.0.0.1:${port}`;
  const { events, close } = await connectJetStreamEvents(url, { prefix: 'micro', logger: silent, apiTimeout: 500 });
  t.after(async () => {
    await close();
    nats.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  await events.publish('jobs', 'a');
  const consumer = await events.consume('jobs', { group: 'g', offset: 'earliest', ackWait: 60_000 });
  const first = await within(consumer.next(), 10_000, 'no delivery');
  const d = first.value as Delivery;
  const exited = new Promise((resolve) => nats.once('exit', resolve));
  nats.kill('SIGKILL');
  await exited;
  // its answer cannot come: the ack fails as a request would, with a 503 that says why
  await assert.rejects(d.ack(), (err: { code?: number; detail?: string }) => err.code === 503 && /cannot acknowledge delivery .*NATS failed/.test(err.detail ?? ''));
  await assert.rejects(d.ack(), (err: { code?: number }) => err.code === 409, 'it was sent: a second ack is a conflict');

  nats = await startNats(port, dir);
  await until(() => events.publish('jobs', 'b').then(() => true, () => false), 'NATS back');
  const next = await within(consumer.next(), 20_000, 'no delivery after the restart');
  assert.equal(next.done, false);
  const e = next.value as Delivery;
  assert.equal(e.event.payload, 'b');
  await e.ack();
  await consumer.close();
});
