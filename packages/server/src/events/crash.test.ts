import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, ConnectionPool } from '@micro/sdk';
import { RemoteEvents, type Delivery, type Event } from '@micro/sdk';

/*
 * Durability against a real crash: the SQLite engine behind RPC in a process of its own
 * (crash-host.ts), killed with SIGKILL while events are published and acknowledged, then
 * started again on the same database.
 */

const host = join(dirname(fileURLToPath(import.meta.url)), 'crash-host.js');
const dir = mkdtempSync(join(tmpdir(), 'micro-events-crash-'));
const procs = new Set<ChildProcessWithoutNullStreams>();
const pools: ConnectionPool[] = [];

after(() => {
  for (const p of procs) p.kill('SIGKILL');
  for (const p of pools) p.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Host {
  proc: ChildProcessWithoutNullStreams;
  address: string;
  exited: Promise<unknown>;
}

function startHost(db: string): Promise<Host> {
  const proc = spawn(process.execPath, [host, db], { env: { ...process.env, MICRO_LOG_LEVEL: 'silent' } });
  procs.add(proc);
  const exited = new Promise((resolve) => proc.once('exit', resolve)).finally(() => procs.delete(proc));
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the host did not start:\n${out}`)), 15_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /listening (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, address: m[1] as string, exited });
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    void exited.then(() => reject(new Error(`the host exited:\n${out}`)));
  });
}

function eventsAt(address: string): RemoteEvents {
  const pool = new ConnectionPool();
  pools.push(pool);
  // no retries: a call lost in the crash fails, and the test knows it was not acknowledged
  return new RemoteEvents(new Client({ address, namespace: 'micro', preferLocal: false, pool, timeout: 10_000, retries: 0 }));
}

async function until(check: () => boolean, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function readAll(events: RemoteEvents, topic: string): Promise<Event[]> {
  const all: Event[] = [];
  for (let offset: number | undefined = 1; offset !== undefined; ) {
    const page = await events.read(topic, { offset, limit: 1000 });
    all.push(...page.events);
    offset = page.next;
  }
  return all;
}

test('kill -9 mid-way: every acknowledged publish and ack survives, every unacknowledged delivery comes again', async () => {
  const db = join(dir, 'events.db');
  const N = 400;
  const first = await startHost(db);
  const before = eventsAt(first.address);

  // a consumer that acknowledges most events and holds every fifth
  const consumer = await before.consume('crash', { group: 'g', offset: 'earliest', ackWait: 60_000, maxInFlight: 1000 });
  const received = new Set<number>();
  const ackSent = new Set<number>();
  const acked = new Set<number>();
  const consuming = (async () => {
    try {
      for await (const d of consumer) {
        received.add(d.event.offset);
        if ((d.event.payload as { i: number }).i % 5 === 0) continue;
        ackSent.add(d.event.offset);
        d.ack().then(() => acked.add(d.event.offset), () => undefined);
      }
    } catch {
      // the server died
    }
  })();

  // eight publishers at once; the server dies when half of the events are in
  const published = new Map<number, number>();
  const failed = new Set<number>();
  const publishing = Array.from({ length: 8 }, (_, w) =>
    (async () => {
      for (let i = w; i < N; i += 8) {
        try {
          published.set(i, (await before.publish('crash', { i }, { id: `e-${i}` })).offset);
        } catch {
          failed.add(i);
        }
      }
    })(),
  );
  await until(() => published.size >= N / 2 && acked.size > 20, 'half of the publishes');
  first.proc.kill('SIGKILL');
  await first.exited;
  await Promise.all(publishing);
  await consuming;
  assert.ok(failed.size > 0, 'the crash interrupted the publishing');
  assert.equal(published.size + failed.size, N);

  const second = await startHost(db);
  const after = eventsAt(second.address);
  const stored = await readAll(after, 'crash');
  // offsets are 1..last without gaps, each id once
  assert.deepEqual(stored.map((e) => e.offset), stored.map((_, k) => k + 1));
  assert.equal(new Set(stored.map((e) => e.id)).size, stored.length);
  // every publish that returned is there, at the offset it was given
  for (const [i, offset] of published) {
    const e = stored[offset - 1];
    assert.deepEqual([e?.id, e?.payload], [`e-${i}`, { i }], `event ${i} at offset ${offset}`);
  }
  // the publishes that failed are retried with their ids: each is stored once, whether or
  // not it had made it before the crash
  for (const i of failed) await after.publish('crash', { i }, { id: `e-${i}` });
  const all = await readAll(after, 'crash');
  assert.equal(all.length, N);
  assert.deepEqual(new Set(all.map((e) => e.id)), new Set(Array.from({ length: N }, (_, i) => `e-${i}`)));

  // the group resumes: what it had acknowledged never comes again; everything else does
  const again = await after.consume('crash', { group: 'g', ackWait: 60_000, maxInFlight: 1000 });
  const redelivered: Delivery[] = [];
  for (;;) {
    const [g] = await after.groups('crash');
    if (g && g.committed === N && g.inflight === 0) break;
    const r = await again.next();
    assert.equal(r.done, false);
    const d = r.value as Delivery;
    redelivered.push(d);
    await d.ack();
  }
  await again.close();
  const offsets = new Set(redelivered.map((d) => d.event.offset));
  assert.equal(offsets.size, redelivered.length, 'each once');
  for (const o of acked) assert.ok(!offsets.has(o), `acknowledged event ${o} came again`);
  // (an ack sent but not answered may or may not have been committed before the crash)
  for (let o = 1; o <= N; o++) if (!ackSent.has(o)) assert.ok(offsets.has(o), `unacknowledged event ${o} came again`);
  const held = redelivered.filter((d) => received.has(d.event.offset) && !ackSent.has(d.event.offset));
  assert.ok(held.length > 0, 'some deliveries were held at the crash');
  assert.ok(held.some((d) => d.attempt >= 2), 'their earlier attempts were counted');
  second.proc.kill('SIGKILL');
  await second.exited;
});
