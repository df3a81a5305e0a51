import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MemoryStore, MemorySync, type Store, type Sync } from '@micro/sdk';
import { Book, type BookOptions, type Step } from './book.js';

const ctx = { tenant: 'tenant-a' };
const engines = () => ({ store: new MemoryStore(), sync: new MemorySync() });
const book = (e: { store: Store; sync: Sync }, options: BookOptions = {}) => new Book(e.store, e.sync, ctx, options);
const code = (n: number) => (err: { code?: number }) => err.code === n;

async function balanced(b: Book): Promise<void> {
  const audit = await b.audit();
  assert.equal(audit.total, 0, JSON.stringify(audit));
  for (const w of audit.wallets) assert.equal(w.balance, w.entries, `${w.id}: ${JSON.stringify(audit)}`);
}

test('N debits at once with funds for k: exactly k succeed, the rest are 400s, the balance is what is left', async () => {
  const e = engines();
  const b = book(e);
  await b.create('w', '', '');
  await b.post({ kind: 'credit', to: 'w', amount: 7 * 3 + 2, reference: '', visible: true });
  const outcomes = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => book(e).post({ kind: 'debit', from: 'w', amount: 3, reference: `d${i}`, visible: true, key: `d${i}` })));
  assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 7);
  for (const o of outcomes) if (o.status === 'rejected') assert.match(String(o.reason.message), /insufficient balance/);
  assert.equal((await b.read('w')).balance, 2);
  await balanced(b);
});

test('a key applies once: a retry answers the same, other content with the same key is a 409, racing retries apply once', async () => {
  const e = engines();
  const b = book(e);
  await b.create('w', '', '');
  await b.create('v', '', '');
  assert.deepEqual(await b.post({ kind: 'credit', to: 'w', amount: 10, reference: 'r', visible: true, key: 'k1' }), { balance: '10' });
  await b.post({ kind: 'credit', to: 'w', amount: 5, reference: '', visible: true, key: 'k2' });
  assert.deepEqual(await b.post({ kind: 'credit', to: 'w', amount: 10, reference: 'r', visible: true, key: 'k1' }), { balance: '10' });
  await assert.rejects(b.post({ kind: 'credit', to: 'w', amount: 11, reference: 'r', visible: true, key: 'k1' }), code(409));
  await assert.rejects(b.post({ kind: 'debit', from: 'w', amount: 10, reference: 'r', visible: true, key: 'k1' }), code(409));
  const racing = await Promise.all(Array.from({ length: 10 }, () => book(e).post({ kind: 'transfer', from: 'w', to: 'v', amount: 4, reference: '', visible: true, key: 't' })));
  assert.deepEqual(new Set(racing.map((r) => JSON.stringify(r))), new Set(['{}']));
  assert.equal((await b.read('w')).balance, 11);
  assert.equal((await b.read('v')).balance, 4);
  await balanced(b);
});

const steps: Step[] = ['journal', 'external', 'entry', 'account', 'done'];

for (const kind of ['credit', 'debit', 'transfer'] as const) {
  test(`a ${kind} stopped after each step of its write (a crash) is completed once, by its retry or by the next reader`, async () => {
    const kindSteps = kind === 'transfer' ? steps.filter((s) => s !== 'external') : steps;
    for (const crashAt of kindSteps) {
      for (const nth of kind === 'transfer' && (crashAt === 'entry' || crashAt === 'account') ? [1, 2] : [1]) {
        for (const recovery of ['retry', 'reader'] as const) {
          const e = engines();
          const b = book(e, { lockTtl: 200 });
          await b.create('w', '', '');
          await b.create('v', '', '');
          await b.post({ kind: 'credit', to: 'w', amount: 100, reference: '', visible: true, key: 'fund' });
          let seen = 0;
          const crashing = book(e, {
            lockTtl: 200,
            afterStep: (step) => {
              if (step === crashAt && ++seen === nth) throw new Error(`crash after ${step}`);
            },
          });
          const request = { kind, ...(kind === 'credit' ? { to: 'w' } : kind === 'debit' ? { from: 'w' } : { from: 'w', to: 'v' }), amount: 30, reference: 'x', visible: true, key: 'k' };
          await assert.rejects(crashing.post(request), /crash after/);
          const label = `${kind} crashed after ${crashAt} #${nth}, recovered by ${recovery}`;
          const expected = kind === 'credit' ? 130 : 70;
          if (recovery === 'retry') {
            const answer = await b.post(request);
            if (kind !== 'transfer') assert.deepEqual(answer, { balance: String(expected) }, label);
            // and a third time: still once
            await b.post(request);
          } else {
            // the dead writer's locks lapse; the next read completes the committed posting
            await new Promise((r) => setTimeout(r, 220));
          }
          assert.equal((await b.read('w')).balance, expected, label);
          if (kind === 'transfer') assert.equal((await b.read('v')).balance, 30, label);
          assert.equal((await b.entries('w')).length, 2, label);
          await balanced(b);
        }
      }
    }
  });
}

test('a posting stopped before its journal is written moves nothing; the retry applies it once', async () => {
  const e = engines();
  const b = book(e, { lockTtl: 200 });
  await b.create('w', '', '');
  // a read of a missing wallet inside plan fails before the journal: nothing pending
  await assert.rejects(b.post({ kind: 'credit', to: 'nope', amount: 1, reference: '', visible: true, key: 'k' }), code(404));
  assert.equal((await b.read('w')).balance, 0);
  assert.deepEqual(await b.post({ kind: 'credit', to: 'w', amount: 1, reference: '', visible: true, key: 'k2' }), { balance: '1' });
});

test('any sequence of credits, debits and transfers keeps every balance the sum of its entries, never negative, and the books at zero (fast-check)', async () => {
  const op = fc.record({ kind: fc.constantFrom('credit', 'debit', 'transfer'), a: fc.integer({ min: 0, max: 2 }), b: fc.integer({ min: 0, max: 2 }), amount: fc.integer({ min: 1, max: 50 }), key: fc.integer({ min: 0, max: 8 }) });
  await fc.assert(
    fc.asyncProperty(fc.array(op, { maxLength: 25 }), async (ops) => {
      const e = engines();
      const b = book(e);
      const ids = ['x', 'y', 'z'];
      for (const id of ids) await b.create(id, '', '');
      const model = new Map(ids.map((id) => [id, 0]));
      const done = new Map<string, string>();
      for (const o of ops) {
        const from = ids[o.a] as string;
        const to = ids[o.b] as string;
        if (o.kind === 'transfer' && from === to) continue;
        const request = o.kind === 'credit' ? { kind: o.kind, to } : o.kind === 'debit' ? { kind: o.kind, from } : { kind: o.kind, from, to };
        const full = { ...request, amount: o.amount, reference: '', visible: true, key: `k${o.key}` };
        const sig = JSON.stringify(full);
        const result = await b.post(full).then(() => 'ok', (err: { code: number }) => err.code);
        const earlier = done.get(full.key);
        if (earlier !== undefined) {
          assert.equal(result, earlier === sig ? 'ok' : 409);
          continue;
        }
        const fromBalance = model.get(from) as number;
        if (o.kind !== 'credit' && fromBalance < o.amount) {
          assert.equal(result, 400);
          continue;
        }
        assert.equal(result, 'ok');
        done.set(full.key, sig);
        if (o.kind !== 'credit') model.set(from, fromBalance - o.amount);
        if (o.kind !== 'debit') model.set(to, (model.get(to) as number) + o.amount);
      }
      for (const id of ids) assert.equal((await b.read(id)).balance, model.get(id));
      await balanced(b);
    }),
    { numRuns: 40 },
  );
});

test('delete: only at zero, removes the wallet and its entries; the id then starts afresh', async () => {
  const e = engines();
  const b = book(e);
  await b.create('w', 'n', 'd');
  await b.post({ kind: 'credit', to: 'w', amount: 5, reference: '', visible: true });
  await assert.rejects(b.delete('w'), (err: { code: number; message: string }) => err.code === 400 && /balance of 5/.test(err.message));
  await b.post({ kind: 'debit', from: 'w', amount: 5, reference: '', visible: true });
  await b.delete('w');
  await assert.rejects(b.read('w'), code(404));
  await assert.rejects(b.delete('w'), code(404));
  await b.create('w', '', '');
  assert.deepEqual(await b.entries('w'), []);
  await assert.rejects(b.create('w', '', ''), code(409));
});
