import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MicroError } from '../errors/errors.js';
import { SYNC_LIMITS, type Leader, type LeadershipChange, type Lock, type Sync } from './sync.js';

/**
 * The behaviour every Sync must have, as node:test cases: run it against each
 * implementation (memory, SQLite, remote over the real service, later the distributed
 * engines). `make` gives a sync with full rights (an admin of `micro` for a remote one);
 * every test works in its own new namespace, so `make` may hand out views of one
 * backend. Leases in these tests are short (100–300 ms) and every wait for one to pass
 * is generous, so that a slow machine makes them slower, never wrong.
 */
export function syncContract(name: string, make: () => Promise<{ impl: Sync; close(): Promise<void> }>): void {
  describe(`sync contract: ${name}`, () => {
    let n = 0;
    async function withSync(fn: (s: Sync, ns: string) => Promise<void>): Promise<void> {
      const made = await make();
      const ns = `contract-${process.pid}-${Date.now().toString(36)}-${n++}`;
      try {
        await fn(made.impl, ns);
      } finally {
        await made.close();
      }
    }
    const options = { timeout: 30_000 };

    test('a free lock is taken; while held, another lock() gets a 409 naming the holder', options, () =>
      withSync(async (s, ns) => {
        const before = Date.now();
        const a = await s.lock('job', { namespace: ns, ttl: 30_000, owner: 'worker-1' });
        assert.equal(a.name, 'job');
        assert.equal(a.namespace, ns);
        assert.equal(a.owner, 'worker-1');
        assert.ok(Number.isInteger(a.token) && a.token > 0);
        assert.ok(a.expiresAt >= before + 30_000 - 5_000, 'the lease runs from about now');
        await rejectsWith(s.lock('job', { namespace: ns }), 409, /lock job is held by worker-1 \(token \d+\) until \d{4}-/);
        const seen = await s.inspect('job', { namespace: ns });
        assert.deepEqual(seen, { namespace: ns, name: 'job', token: a.token, owner: 'worker-1', expiresAt: a.expiresAt });
        await a.release();
        assert.equal(await s.inspect('job', { namespace: ns }), undefined);
        const b = await s.lock('job', { namespace: ns });
        assert.ok(b.token > a.token, 'the next holder gets a larger token');
        assert.equal(b.owner, undefined);
        await b.release();
      }));

    test('lock() waits for a lock that is released', options, () =>
      withSync(async (s, ns) => {
        const a = await s.lock('w', { namespace: ns, ttl: 60_000 });
        const waiting = s.lock('w', { namespace: ns, wait: 30_000 });
        // the waiter is not served while a holds the lock
        assert.equal(await Promise.race([waiting.then(() => 'took it'), delay(50).then(() => 'waits')]), 'waits');
        await a.release();
        const b = await waiting;
        assert.ok(b.token > a.token);
        await b.release();
      }));

    test('lock() gives up after `wait` with a 409', options, () =>
      withSync(async (s, ns) => {
        const a = await s.lock('w', { namespace: ns, ttl: 60_000 });
        await rejectsWith(s.lock('w', { namespace: ns, wait: 100 }), 409, /held .*waited \d+ ms/);
        await a.release();
      }));

    test('a lock whose lease passed is free again; the old holder can neither renew nor release it', options, () =>
      withSync(async (s, ns) => {
        const a = await s.lock('lease', { namespace: ns, ttl: 100 });
        await delay(300);
        assert.equal(await s.inspect('lease', { namespace: ns }), undefined, 'a passed lease is not shown');
        const b = await s.lock('lease', { namespace: ns, ttl: 30_000 });
        assert.ok(b.token > a.token);
        await rejectsWith(a.renew(), 409, /lock lease is not yours: it is held \(token/);
        await rejectsWith(a.release(), 409, /not yours/);
        assert.equal((await s.inspect('lease', { namespace: ns }))?.token, b.token, 'b still holds it');
        await b.release();
        await a.release(); // nobody holds it: releasing is nothing
      }));

    test('a waiter takes a lock when its holder stops renewing', options, () =>
      withSync(async (s, ns) => {
        const a = await s.lock('stuck', { namespace: ns, ttl: 150 });
        const b = await s.lock('stuck', { namespace: ns, wait: 30_000 });
        assert.ok(b.token > a.token);
        await b.release();
      }));

    test('renew extends the lease; a holder whose lease passed may renew it while nobody took it', options, () =>
      withSync(async (s, ns) => {
        const a = await s.lock('r', { namespace: ns, ttl: 100 });
        const first = a.expiresAt;
        await a.renew(60_000);
        assert.ok(a.expiresAt > first);
        await delay(200);
        await rejectsWith(s.lock('r', { namespace: ns }), 409, /held/);
        const b = await s.lock('r2', { namespace: ns, ttl: 100 });
        await delay(300);
        await b.renew(60_000);
        assert.equal((await s.inspect('r2', { namespace: ns }))?.token, b.token, 'the same lease, the same token');
        await rejectsWith(s.lock('r2', { namespace: ns }), 409, /held/);
        await a.release();
        await b.release();
        await b.release();
      }));

    test('fencing tokens strictly increase over acquisitions, releases and passed leases', options, () =>
      withSync(async (s, ns) => {
        let last = 0;
        for (let i = 0; i < 12; i++) {
          const l = await s.lock('fence', { namespace: ns, ttl: i % 3 === 2 ? 20 : 30_000 });
          assert.ok(l.token > last, `acquisition ${i}: ${l.token} after ${last}`);
          last = l.token;
          if (i % 3 === 2) await delay(80);
          else await l.release();
        }
        const other = await s.lock('another-name', { namespace: ns });
        const again = await s.lock('fence', { namespace: ns, wait: 5_000 });
        assert.ok(again.token > last);
        await other.release();
        await again.release();
      }));

    test('contention: many callers, one holder at a time, each with a larger token than the one before', options, () =>
      withSync(async (s, ns) => {
        let inside = 0;
        const tokens: number[] = [];
        await Promise.all(
          Array.from({ length: 8 }, async () => {
            const l = await s.lock('mutex', { namespace: ns, wait: 30_000, ttl: 30_000 });
            inside++;
            assert.equal(inside, 1, 'two holders at once');
            tokens.push(l.token);
            await delay(5);
            inside--;
            await l.release();
          }),
        );
        assert.equal(tokens.length, 8);
        for (let i = 1; i < tokens.length; i++) assert.ok((tokens[i] as number) > (tokens[i - 1] as number), `tokens in order: ${tokens.join(',')}`);
      }));

    test('namespaces hold locks of the same name apart', options, () =>
      withSync(async (s, ns) => {
        const a = await s.lock('same', { namespace: ns });
        const b = await s.lock('same', { namespace: `${ns}-other` });
        assert.equal(b.namespace, `${ns}-other`);
        assert.deepEqual((await s.locks({ namespace: `${ns}-other` })).map((l) => l.name), ['same']);
        await a.release();
        assert.ok(await s.inspect('same', { namespace: `${ns}-other` }), 'releasing in one namespace frees nothing in the other');
        await b.release();
      }));

    test('locks() lists the locks held now by name, with a prefix and a limit', options, () =>
      withSync(async (s, ns) => {
        const held: Lock[] = [];
        for (const name of ['b/2', 'a/1', 'b/1', 'c', 'b/3']) held.push(await s.lock(name, { namespace: ns, owner: `o-${name}` }));
        const gone = await s.lock('b/0', { namespace: ns });
        await gone.release();
        const passed = await s.lock('b/9', { namespace: ns, ttl: 20 });
        await delay(80);
        assert.deepEqual((await s.locks({ namespace: ns })).map((l) => l.name), ['a/1', 'b/1', 'b/2', 'b/3', 'c']);
        assert.deepEqual((await s.locks({ namespace: ns, prefix: 'b/' })).map((l) => l.name), ['b/1', 'b/2', 'b/3']);
        assert.deepEqual((await s.locks({ namespace: ns, prefix: 'b/', limit: 2 })).map((l) => l.name), ['b/1', 'b/2']);
        assert.deepEqual((await s.locks({ namespace: ns, prefix: 'zzz' })), []);
        const one = (await s.locks({ namespace: ns, prefix: 'c' }))[0];
        assert.equal(one?.owner, 'o-c');
        assert.equal(one?.token, held[3]?.token);
        for (const l of held) await l.release();
        await passed.release().catch(() => undefined);
        assert.deepEqual(await s.locks({ namespace: ns }), []);
      }));

    test('bad input gets a 400 naming the field', options, () =>
      withSync(async (s, ns) => {
        const o = { namespace: ns };
        await rejectsWith(s.lock('', o), 400, /name/);
        await rejectsWith(s.lock('x'.repeat(SYNC_LIMITS.nameChars + 1), o), 400, /name/);
        await rejectsWith(s.lock('a\u0000b', o), 400, /name/);
        for (const ttl of [0, 9, SYNC_LIMITS.ttlMax + 1, 1.5, -1]) await rejectsWith(s.lock('x', { ...o, ttl }), 400, /ttl/);
        for (const wait of [-1, SYNC_LIMITS.waitMax + 1, 0.5]) await rejectsWith(s.lock('x', { ...o, wait }), 400, /wait/);
        await rejectsWith(s.lock('x', { ...o, owner: 'o'.repeat(SYNC_LIMITS.nameChars + 1) }), 400, /owner/);
        await rejectsWith(s.lock('x', { namespace: '' }), 400, /namespace/);
        await rejectsWith(s.locks({ ...o, limit: 0 }), 400, /limit/);
        await rejectsWith(s.locks({ ...o, limit: SYNC_LIMITS.listMax + 1 }), 400, /limit/);
        await rejectsWith(s.inspect('', o), 400, /name/);
        const l = await s.lock('x', o);
        await rejectsWith(l.renew(0), 400, /ttl/);
        await rejectsWith(s.elect('', { ...o, id: 'c' }), 400, /name/);
        await rejectsWith(s.elect('e', { ...o, id: 'c', ttl: 1 }), 400, /ttl/);
        assert.deepEqual((await s.locks(o)).map((x) => x.name), ['x'], 'nothing else was taken');
        await l.release();
      }));

    test('elect: the first candidate leads, the next follows and takes over when the leader resigns', options, () =>
      withSync(async (s, ns) => {
        const a = await s.elect('leader', { namespace: ns, id: 'a', ttl: 30_000 });
        assert.equal(a.isLeader, true);
        assert.equal(a.id, 'a');
        assert.ok((a.token ?? 0) > 0);
        assert.equal((await s.inspect('leader', { namespace: ns }))?.owner, 'a');
        const b = await s.elect('leader', { namespace: ns, id: 'b', ttl: 30_000 });
        assert.equal(b.isLeader, false);
        assert.equal(b.token, undefined);
        const changes: LeadershipChange[] = [];
        const off = b.onChange((c) => changes.push(c));
        const firstToken = a.token as number;
        const leads = nextLeadership(b, true);
        await a.resign();
        assert.equal(a.isLeader, false);
        const change = await leads;
        assert.equal(b.isLeader, true);
        assert.ok((change.token ?? 0) > firstToken, 'the new leader has a larger token');
        assert.deepEqual(changes, [change]);
        off();
        assert.equal((await s.inspect('leader', { namespace: ns }))?.owner, 'b');
        await b.resign();
        assert.equal(await s.inspect('leader', { namespace: ns }), undefined, 'resigning releases the leadership');
        await a.resign(); // twice is fine
      }));

    test('elect: failover when the leader stops renewing', options, () =>
      withSync(async (s, ns) => {
        // a leader that stopped renewing: its lease, and nothing that renews it
        const stuck = await s.lock('failover', { namespace: ns, ttl: 200, owner: 'stuck' });
        const b = await s.elect('failover', { namespace: ns, id: 'b', ttl: 200 });
        assert.equal(b.isLeader, false);
        const change = await nextLeadership(b, true);
        assert.ok((change.token ?? 0) > stuck.token);
        // the new leader renews: its leadership outlives many of its ttls
        await delay(700);
        assert.equal(b.isLeader, true);
        assert.equal((await s.inspect('failover', { namespace: ns }))?.owner, 'b');
        await rejectsWith(s.lock('failover', { namespace: ns }), 409, /held by b/);
        await b.resign();
      }));

    test('elect: iterating a candidate yields its state first, then its changes, and ends on resign', options, () =>
      withSync(async (s, ns) => {
        const a = await s.elect('iter', { namespace: ns, id: 'a', ttl: 30_000 });
        const seen: LeadershipChange[] = [];
        const reading = (async () => {
          for await (const c of a) seen.push(c);
        })();
        await delay(20);
        await a.resign();
        await reading;
        assert.equal(seen.length, 2);
        assert.equal(seen[0]?.leader, true);
        assert.deepEqual(seen[1], { leader: false });
      }));
  });
}

/** The next change of `leader` to `leading` (or its state now, if it is that already). */
export async function nextLeadership(leader: Leader, leading: boolean): Promise<LeadershipChange> {
  for await (const change of leader) if (change.leader === leading) return change;
  throw new Error(`the election ended before ${leader.id} ${leading ? 'led' : 'stopped leading'}`);
}

export async function rejectsWith(p: Promise<unknown>, code: number, detail?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof MicroError, `expected a MicroError, got ${String(err)}`);
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.detail}`);
    if (detail) assert.match(err.detail, detail);
    return true;
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
