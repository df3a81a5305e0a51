import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { MicroError } from '@micro/sdk';
import { FUNDS_ID } from './core.js';
import { MAX_AMOUNT, MAX_BALANCE, type Ledger, type LedgerOptions, type PostingInput } from './ledger.js';

/**
 * The behaviour every engine of the ledger has (SQLite, PostgreSQL): run by each engine's
 * test file. `make` gives a fresh, empty ledger on the given clock (undefined: the engine
 * is away and the test was skipped), closed by the suite.
 */
export type MakeLedger = (t: { skip(message?: string): void; after(fn: () => unknown): void }, options: Required<LedgerOptions>) => Promise<Ledger | undefined>;

const T0 = 1_700_000_000_000;
const DOLLAR = 1_000_000;

const status = (code: number, id?: string) => (err: unknown) => err instanceof MicroError && err.code === code && (id === undefined || err.id === id);

const topUp = (key: string, customer: string, amount: number): PostingInput => ({
  key,
  reason: 'card payment',
  entries: [
    { account: `customer:${customer}:balance`, amount },
    { account: 'external:payments', amount: -amount },
  ],
});

const spend = (key: string, customer: string, amount: number): PostingInput => ({
  key,
  reason: 'usage',
  entries: [
    { account: `customer:${customer}:balance`, amount: -amount },
    { account: 'platform:revenue', amount },
  ],
});

async function standard(l: Ledger, ...customers: string[]): Promise<void> {
  await l.openAccount({ id: 'external:payments', allowNegative: true });
  await l.openAccount({ id: 'platform:revenue' });
  await l.openAccount({ id: 'platform:promo', allowNegative: true });
  for (const c of customers) await l.openAccount({ id: `customer:${c}:balance` });
}

/**
 * Two handles on one ledger (two processes, two nodes): `a` funds c1 with `funds` units,
 * then `n` spends of 1 unit each go alternately through `a` and `b` at once; resolves to
 * how many succeeded, after checking every refusal is for funds and nothing went below zero.
 */
export async function raceTwoHandles(a: Ledger, b: Ledger, funds: number, n: number): Promise<number> {
  await standard(a, 'c1');
  await a.post(topUp('pay', 'c1', funds));
  const results = await Promise.allSettled(Array.from({ length: n }, (_, i) => (i % 2 ? a : b).post(spend(`s${i}`, 'c1', 1))));
  for (const r of results) if (r.status === 'rejected') assert.ok(status(409, FUNDS_ID)(r.reason), String(r.reason));
  assert.equal(await b.balance('customer:c1:balance'), 0);
  assert.equal((await b.trialBalance()).ok, true);
  return results.filter((r) => r.status === 'fulfilled').length;
}

export function ledgerContract(engine: string, make: MakeLedger): void {
  const it = (name: string, fn: (l: Ledger, clock: { now: number }) => Promise<void>) =>
    test(`${engine}: ${name}`, async (t) => {
      const clock = { now: T0 };
      const l = await make(t, { clock: () => clock.now });
      if (!l) return;
      t.after(() => l.close());
      await fn(l, clock);
    });

  it('accounts: opened once, alike again, a 409 for another rule, a 404 when unknown', async (l) => {
    const a = await l.openAccount({ id: 'customer:c1:balance' });
    assert.deepEqual(a, { id: 'customer:c1:balance', kind: 'customer', unit: 'usd-micro', allowNegative: false, createdAt: T0 });
    assert.deepEqual(await l.openAccount({ id: 'customer:c1:balance' }), a);
    await assert.rejects(l.openAccount({ id: 'customer:c1:balance', allowNegative: true }), status(409));
    await assert.rejects(l.account('customer:nobody:balance'), status(404));
    await assert.rejects(l.balance('platform:nothing'), status(404));
    for (const id of ['', 'bank:x', 'customer', 'customer:', 'customer:a b', 'platform:x:y:z:w', 'x'.repeat(300), 'customer:\u0000', 'platform:ü']) {
      await assert.rejects(l.openAccount({ id }), status(400), id);
    }
    await assert.rejects(l.openAccount({ id: 'platform:x', allowNegative: 'yes' as unknown as boolean }), status(400));
    await assert.rejects(l.openAccount(null as unknown as { id: string }), status(400));
  });

  it('a posting moves money: balances are the sums of entries, the posting is kept', async (l, clock) => {
    await standard(l, 'c1');
    clock.now = T0 + 5;
    const { posting, replayed } = await l.post({ ...topUp('pay-1', 'c1', 35 * DOLLAR), metadata: { invoice: 'in_1' } });
    assert.equal(replayed, false);
    assert.equal(posting.at, T0 + 5);
    assert.deepEqual(posting.metadata, { invoice: 'in_1' });
    await l.post(spend('use-1', 'c1', 1_234_567));
    assert.equal(await l.balance('customer:c1:balance'), 35 * DOLLAR - 1_234_567);
    assert.equal(await l.balance('platform:revenue'), 1_234_567);
    assert.equal(await l.balance('external:payments'), -35 * DOLLAR);
    assert.deepEqual(await l.posting('pay-1'), posting);
    assert.equal(await l.posting('nope'), undefined);
    assert.deepEqual(await l.trialBalance(), { ok: true, total: '0', postings: 2, entries: 4, mismatched: [] });
  });

  it('hostile amounts and shapes are refused and move nothing', async (l) => {
    await standard(l, 'c1');
    const two = (a: unknown, b: unknown) => ({ key: 'k', reason: 'r', entries: [{ account: 'customer:c1:balance', amount: a }, { account: 'external:payments', amount: b }] }) as unknown as PostingInput;
    const hostile: unknown[] = [0.5, 1e-7, NaN, Infinity, -Infinity, 2 ** 53, MAX_AMOUNT + 1, '100', 100n, null, undefined, {}, [1], true, 0, -0, 1e300];
    for (const a of hostile) {
      await assert.rejects(l.post(two(a, typeof a === 'number' ? -a : -1)), status(400), String(a));
    }
    await assert.rejects(l.post(two(100, -99)), status(400), 'unbalanced');
    await assert.rejects(l.post(two(100, -100.5)), status(400), 'fraction on one side');
    await assert.rejects(l.post({ key: 'k', reason: 'r', entries: [{ account: 'customer:c1:balance', amount: 1 }] } as PostingInput), status(400), 'one entry');
    await assert.rejects(l.post({ key: 'k', reason: 'r', entries: [] }), status(400));
    await assert.rejects(l.post({ key: 'k', reason: 'r', entries: 'x' as unknown as [] }), status(400));
    const many = Array.from({ length: 101 }, (_, i) => ({ account: `customer:m${i}:balance`, amount: i === 0 ? -100 : 1 }));
    await assert.rejects(l.post({ key: 'k', reason: 'r', entries: many }), status(400), 'too many entries');
    await assert.rejects(l.post({ key: 'k', reason: 'r', entries: [{ account: 'external:payments', amount: 5 }, { account: 'external:payments', amount: -5 }] }), status(400), 'one account twice');
    const ok = topUp('k', 'c1', 5);
    for (const bad of [{ ...ok, key: '' }, { ...ok, key: 'a b' }, { ...ok, key: 'k'.repeat(201) }, { ...ok, key: 7 }, { ...ok, reason: '' }, { ...ok, reason: 'x'.repeat(501) }, { ...ok, reason: 'a\nb' }]) {
      await assert.rejects(l.post(bad as PostingInput), status(400), JSON.stringify(bad).slice(0, 60));
    }
    for (const metadata of [{ 'a b': 'x' }, { a: 1 }, { a: 'x'.repeat(1001) }, Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'])), ['x'], 'x']) {
      await assert.rejects(l.post({ ...ok, metadata } as PostingInput), status(400), JSON.stringify(metadata).slice(0, 40));
    }
    await assert.rejects(l.post(topUp('k', 'ghost', 5)), status(404), 'unknown account');
    assert.equal(await l.balance('customer:c1:balance'), 0);
    assert.deepEqual(await l.trialBalance(), { ok: true, total: '0', postings: 0, entries: 0, mismatched: [] });
    assert.equal(await l.posting('k'), undefined, 'the key of a refused posting stays free');
  });

  it('an account that may not go below zero: refused with funds, inside the posting', async (l) => {
    await standard(l, 'c1');
    await l.post(topUp('pay', 'c1', 10));
    await assert.rejects(l.post(spend('s1', 'c1', 11)), status(409, FUNDS_ID));
    await l.post(spend('s2', 'c1', 10));
    assert.equal(await l.balance('customer:c1:balance'), 0);
    await assert.rejects(l.post(spend('s3', 'c1', 1)), status(409, FUNDS_ID));
    assert.equal(await l.posting('s1'), undefined);
    // a promo credit: the promo account may go negative, the customer's then spends it
    await l.post({ key: 'promo', reason: 'welcome credit', entries: [{ account: 'platform:promo', amount: -5 * DOLLAR }, { account: 'customer:c1:balance', amount: 5 * DOLLAR }] });
    assert.equal(await l.balance('platform:promo'), -5 * DOLLAR);
  });

  it('a balance never leaves ±MAX_BALANCE', async (l) => {
    await standard(l, 'c1');
    const n = Math.floor(MAX_BALANCE / MAX_AMOUNT);
    for (let i = 0; i < n; i++) await l.post(topUp(`p${i}`, 'c1', MAX_AMOUNT));
    await assert.rejects(l.post(topUp('over', 'c1', MAX_AMOUNT)), status(409));
    assert.equal(await l.balance('customer:c1:balance'), n * MAX_AMOUNT);
    assert.equal((await l.trialBalance()).ok, true);
  });

  it('idempotency: the same key and content returns the first result, other content is a 409', async (l, clock) => {
    await standard(l, 'c1');
    const first = await l.post({ ...topUp('pay', 'c1', 100), metadata: { b: '2', a: '1' } });
    clock.now = T0 + 1000;
    const again = await l.post({ ...topUp('pay', 'c1', 100), metadata: { a: '1', b: '2' } });
    assert.deepEqual(again, { posting: first.posting, replayed: true });
    const reordered = { ...topUp('pay', 'c1', 100), metadata: { a: '1', b: '2' } };
    reordered.entries.reverse();
    assert.equal((await l.post(reordered)).replayed, true, 'the order of entries is not content');
    await assert.rejects(l.post(topUp('pay', 'c1', 101)), status(409));
    await assert.rejects(l.post({ ...topUp('pay', 'c1', 100), reason: 'other' }), status(409));
    await assert.rejects(l.post({ ...topUp('pay', 'c1', 100), metadata: { a: '1' } }), status(409));
    assert.equal(await l.balance('customer:c1:balance'), 100);
    const racing = await Promise.all(Array.from({ length: 8 }, () => l.post(topUp('race', 'c1', 7))));
    assert.equal(racing.filter((r) => !r.replayed).length, 1, 'one racing replay posts');
    assert.equal(new Set(racing.map((r) => r.posting.id)).size, 1);
    assert.equal(await l.balance('customer:c1:balance'), 107);
  });

  it('reversal: a new posting with the entries negated, once, under the same rule', async (l) => {
    await standard(l, 'c1');
    const pay = await l.post(topUp('pay', 'c1', 50));
    await l.post(spend('use', 'c1', 20));
    await assert.rejects(l.reverse('pay', { key: 'refund', reason: 'chargeback' }), status(409, FUNDS_ID), 'the money was spent');
    const back = await l.reverse('use', { key: 'undo-use', reason: 'billing error' });
    assert.equal(back.posting.reverses, (await l.posting('use'))?.id);
    assert.deepEqual(back.posting.entries, [{ account: 'customer:c1:balance', amount: 20 }, { account: 'platform:revenue', amount: -20 }]);
    assert.equal((await l.reverse('use', { key: 'undo-use', reason: 'billing error' })).replayed, true);
    await assert.rejects(l.reverse('use', { key: 'undo-use-2', reason: 'billing error' }), status(409), 'reversed once');
    const refund = await l.reverse('pay', { key: 'refund', reason: 'chargeback' });
    assert.equal(refund.posting.reverses, pay.posting.id);
    assert.equal(await l.balance('customer:c1:balance'), 0);
    await assert.rejects(l.reverse('nope', { key: 'x', reason: 'x' }), status(404));
    assert.deepEqual((await l.trialBalance()).ok, true);
  });

  it('history: newest first, paged, bounded, running balance', async (l, clock) => {
    await standard(l, 'c1', 'c2');
    for (let i = 1; i <= 5; i++) {
      clock.now = T0 + i;
      await l.post(topUp(`p${i}`, 'c1', i));
    }
    await l.post(topUp('other', 'c2', 99));
    const first = await l.history('customer:c1:balance', { limit: 2 });
    assert.deepEqual(first.items.map((e) => [e.key, e.amount, e.balanceAfter, e.at]), [['p5', 5, 15, T0 + 5], ['p4', 4, 10, T0 + 4]]);
    const second = await l.history('customer:c1:balance', { limit: 2, before: first.next });
    assert.deepEqual(second.items.map((e) => e.key), ['p3', 'p2']);
    const last = await l.history('customer:c1:balance', { limit: 2, before: second.next });
    assert.deepEqual(last.items.map((e) => e.key), ['p1']);
    assert.equal(last.next, undefined);
    assert.equal((await l.history('customer:c1:balance')).items.length, 5);
    for (const limit of [0, 201, 1.5, NaN, -1]) await assert.rejects(l.history('customer:c1:balance', { limit }), status(400), String(limit));
    await assert.rejects(l.history('customer:c1:balance', { before: -3 }), status(400));
    await assert.rejects(l.history('customer:ghost:balance'), status(404));
  });

  it('accounts: listed by id under a prefix, paged, bounded', async (l) => {
    await standard(l, 'c2', 'c1', 'c_3');
    await l.openAccount({ id: 'customer:c1:due', allowNegative: true });
    const all = await l.accounts({ prefix: 'customer:' });
    assert.deepEqual(all.items.map((a) => a.id), ['customer:c1:balance', 'customer:c1:due', 'customer:c2:balance', 'customer:c_3:balance']);
    assert.equal(all.next, undefined);
    assert.deepEqual(all.items[1], await l.account('customer:c1:due'));
    const first = await l.accounts({ prefix: 'customer:', limit: 3 });
    assert.deepEqual(first.items.map((a) => a.id), ['customer:c1:balance', 'customer:c1:due', 'customer:c2:balance']);
    const second = await l.accounts({ prefix: 'customer:', limit: 3, after: first.next });
    assert.deepEqual(second.items.map((a) => a.id), ['customer:c_3:balance']);
    assert.equal(second.next, undefined);
    // `_` and `%` are characters, not patterns
    assert.deepEqual((await l.accounts({ prefix: 'customer:c_' })).items.map((a) => a.id), ['customer:c_3:balance']);
    assert.equal((await l.accounts()).items.length, 7);
    assert.deepEqual((await l.accounts({ prefix: 'nothing:' })).items, []);
    for (const bad of [{ limit: 0 }, { limit: 201 }, { limit: 1.5 }, { prefix: 'a b' }, { prefix: "x'%" }, { prefix: 'x'.repeat(201) }, { after: 'a\u0000' }, { prefix: 7 }]) {
      await assert.rejects(l.accounts(bad as { prefix?: string }), status(400), JSON.stringify(bad));
    }
  });

  it('concurrent spends never overdraw: funds for k of N, exactly k succeed', async (l) => {
    await standard(l, 'c1');
    await l.post(topUp('pay', 'c1', 7 * 3));
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => l.post(spend(`s${i}`, 'c1', 3))));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 7);
    for (const r of results) if (r.status === 'rejected') assert.ok(status(409, FUNDS_ID)(r.reason), String(r.reason));
    assert.equal(await l.balance('customer:c1:balance'), 0);
    assert.equal((await l.trialBalance()).ok, true);
  });

  it('property: after any sequence of postings, accepted or refused, the trial balance is zero and balances match', async (l) => {
    const customers = ['a', 'b', 'c'];
    await standard(l, ...customers);
    const accounts = ['external:payments', 'platform:revenue', 'platform:promo', ...customers.map((c) => `customer:${c}:balance`)];
    const model = new Map(accounts.map((a) => [a, 0]));
    const mayGoNegative = new Set(['external:payments', 'platform:promo']);
    let n = 0;
    const posting = fc.record({
      from: fc.constantFrom(...accounts),
      to: fc.constantFrom(...accounts),
      amount: fc.integer({ min: 1, max: 50 * DOLLAR }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(posting, { minLength: 1, maxLength: 15 }), async (moves) => {
        for (const m of moves) {
          if (m.from === m.to) continue;
          const key = `prop-${n++}`;
          const input = { key, reason: 'random', entries: [{ account: m.from, amount: -m.amount }, { account: m.to, amount: m.amount }] };
          const from = model.get(m.from) ?? 0;
          if (from - m.amount < 0 && !mayGoNegative.has(m.from)) {
            await assert.rejects(l.post(input), status(409, FUNDS_ID));
          } else {
            await l.post(input);
            model.set(m.from, from - m.amount);
            model.set(m.to, (model.get(m.to) ?? 0) + m.amount);
          }
        }
        const trial = await l.trialBalance();
        assert.equal(trial.ok, true, JSON.stringify(trial));
        for (const a of accounts) assert.equal(await l.balance(a), model.get(a), a);
      }),
      { numRuns: 25 },
    );
  });
}
