import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MemorySync } from '@micro/sdk';
import { BIGFLAKE, Flake, SNOWFLAKE, pack, unpack } from './flake.js';
import { KSUID_EPOCH, ksuid, ksuidDecode, ksuidEncode, nanoId, shortid, ulid, uuid, xid, xidDecode, xidEncode } from './ids.js';
import { WorkerSlot } from './worker.js';

test('ksuid: the specification\'s example, and the layout (27 base62 characters, seconds since 2014-05-13)', () => {
  // segmentio/ksuid's README: 0ujtsYcgvSTl8PAuAdqWYSMnLOv = time 107608047, payload B5A1CD34B5F99D1154FB6853345C9735
  const bytes = ksuidDecode('0ujtsYcgvSTl8PAuAdqWYSMnLOv');
  assert.equal(bytes.readUInt32BE(0), 107608047);
  assert.equal(bytes.subarray(4).toString('hex').toUpperCase(), 'B5A1CD34B5F99D1154FB6853345C9735');
  assert.equal(ksuidEncode(bytes), '0ujtsYcgvSTl8PAuAdqWYSMnLOv');
  assert.equal(ksuidEncode(Buffer.alloc(20)), '000000000000000000000000000');
  assert.equal(ksuidEncode(Buffer.alloc(20, 0xff)), 'aWgEPTl1tmebfsQzFP4bxwgy80V');
  const now = Date.UTC(2026, 0, 1);
  const id = ksuid(now);
  assert.match(id, /^[0-9A-Za-z]{27}$/);
  assert.equal(ksuidDecode(id).readUInt32BE(0), Math.floor(now / 1000) - KSUID_EPOCH);
  fc.assert(fc.property(fc.uint8Array({ minLength: 20, maxLength: 20 }), (b) => ksuidEncode(b).length === 27 && ksuidDecode(ksuidEncode(b)).equals(Buffer.from(b))));
});

test('xid: the specification\'s example, and the layout (20 base32hex characters)', () => {
  // rs/xid's README: 9m4e2mr0ui3e8a215n4g = 4d88e15b 60f486 e428 412dc9
  assert.equal(xidDecode('9m4e2mr0ui3e8a215n4g').toString('hex'), '4d88e15b60f486e428412dc9');
  assert.equal(xidEncode(Buffer.from('4d88e15b60f486e428412dc9', 'hex')), '9m4e2mr0ui3e8a215n4g');
  const now = Date.UTC(2026, 0, 1);
  const a = xid(now);
  const b = xid(now);
  assert.match(a, /^[0-9a-v]{20}$/);
  assert.notEqual(a, b);
  assert.equal(xidDecode(a).readUInt32BE(0), now / 1000);
  assert.equal(xidDecode(a).readUInt16BE(7), process.pid & 0xffff);
  assert.equal((xidDecode(b).readUIntBE(9, 3) - xidDecode(a).readUIntBE(9, 3) + 0x1000000) % 0x1000000, 1);
  fc.assert(fc.property(fc.uint8Array({ minLength: 12, maxLength: 12 }), (bytes) => xidDecode(xidEncode(bytes)).equals(Buffer.from(bytes))));
});

test('uuid v4, ulid, nanoid and shortid have their formats and do not repeat', () => {
  const kinds = { uuid: [uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/], ulid: [() => ulid(), /^[0-9A-HJKMNP-TV-Z]{26}$/], nanoid: [nanoId, /^[A-Za-z0-9_-]{21}$/], shortid: [shortid, /^[A-Za-z0-9_-]{9}$/] } as const;
  for (const [name, [make, format]] of Object.entries(kinds)) {
    const ids = Array.from({ length: 2000 }, () => make());
    for (const id of ids) assert.match(id, format, name);
    assert.equal(new Set(ids).size, ids.length, name);
  }
  // ulids made in one ms still sort in the order they were made
  const now = Date.now();
  const made = Array.from({ length: 100 }, () => ulid(now));
  assert.deepEqual([...made].sort(), made);
});

test('flakes: pack and unpack are inverse, ids grow with time, the sequence borrows the next ms, the clock never goes back', () => {
  for (const layout of [SNOWFLAKE, BIGFLAKE]) {
    fc.assert(
      fc.property(fc.integer({ min: SNOWFLAKE.epoch, max: SNOWFLAKE.epoch + 2 ** 40 }), fc.integer({ min: 0, max: 1023 }), fc.integer({ min: 0, max: 4095 }), (time, worker, sequence) => {
        assert.deepEqual(unpack(layout, pack(layout, { time, worker, sequence })), { time, worker, sequence });
      }),
    );
  }
  let clock = Date.UTC(2026, 0, 1);
  const flake = new Flake(SNOWFLAKE, () => clock);
  const ids = Array.from({ length: 5000 }, () => BigInt(flake.next(7)));
  assert.equal(new Set(ids).size, 5000);
  assert.deepEqual([...ids].sort((x, y) => (x < y ? -1 : 1)), ids);
  assert.deepEqual(unpack(SNOWFLAKE, ids[4096] as bigint), { time: clock + 1, worker: 7, sequence: 0 });
  clock -= 10_000; // the clock steps back: ids still grow
  const later = BigInt(flake.next(7));
  assert.ok(later > (ids.at(-1) as bigint));
  assert.throws(() => flake.next(1024), /worker 1024 out of range/);
  // a snowflake fits 63 bits (a positive int64), a bigflake 128
  assert.ok(BigInt(new Flake(SNOWFLAKE).next(1023)) < 2n ** 63n);
  assert.equal(unpack(BIGFLAKE, new Flake(BIGFLAKE, () => clock).next(2 ** 48 - 1)).worker, 2 ** 48 - 1);
});

test('worker slots: each holder its own, none left is a 503, a lost lease stops generation, close gives it back', async () => {
  const sync = new MemorySync();
  const slots = [0, 1, 2].map(() => new WorkerSlot(() => sync, { slots: 2, ttl: 200 }));
  const [a, b, c] = slots as [WorkerSlot, WorkerSlot, WorkerSlot];
  const ids = [await a.id(), await b.id()];
  assert.deepEqual([...ids].sort(), [0, 1]);
  await assert.rejects(c.id(), (err: { code?: number; message: string }) => err.code === 503 && /every one of the 2 worker ids/.test(err.message));
  // renewals keep the lease past its ttl
  await new Promise((r) => setTimeout(r, 450));
  assert.equal(a.current, ids[0]);
  await a.close();
  assert.equal(a.current, undefined);
  assert.equal(await c.id(), ids[0]);
  // a holder whose clock says its lease may have passed stops using the id
  let now = Date.now();
  const d = new WorkerSlot(() => new MemorySync(), { slots: 1, ttl: 1000, now: () => now });
  await d.id();
  now += 901;
  assert.equal(d.current, undefined);
  await Promise.all([b.close(), c.close(), d.close()]);
});
