import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { MicroError } from '@micro/sdk';
import type { BaseLedger } from './base.js';
import { FUNDS_ID } from './core.js';
import { MAX_AMOUNT, MAX_BALANCE, MAX_POST_MANY, type Ledger, type LedgerOptions, type PostingInput, type PostOutcome } from './ledger.js';

/**
 * The behaviour every engine of the ledger has (SQLite, PostgreSQL): run by each engine's
 * test file. `make` gives a fresh, empty ledger on the given clock (undefined: the engine
 * is away and the test was skipped), closed by the suite.
 */
export type MakeLedger = (t: { skip(message?: string): void; after(fn: () => unknown): void }, options: LedgerOptions & { clock: () => number }) => Promise<Ledger | undefined>;

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

/**
 * Two handles post the same 40 keys at once, each key from both: with the same content
 * (each key records once, the other handle gets the replay of the same posting), and with
 * other content moving other accounts (so the two do not queue on one account's lock and
 * may both find the key free: one records, the other gets a 409). Whichever handle wins,
 * nothing is recorded twice.
 */
export async function raceKeysTwoHandles(a: Ledger, b: Ledger): Promise<void> {
  await standard(a, 'c1', 'c2');
  await a.post(topUp('pay-1', 'c1', 1_000));
  await a.post(topUp('pay-2', 'c2', 1_000));
  const keys = Array.from({ length: 40 }, (_, i) => `k${i}`);
  const same = await Promise.all(keys.flatMap((k) => [a.post(spend(k, 'c1', 1)), b.post(spend(k, 'c1', 1))]));
  for (let i = 0; i < keys.length; i++) {
    const [x, y] = [same[2 * i], same[2 * i + 1]] as const;
    assert.equal(Number(x?.replayed) + Number(y?.replayed), 1, `${keys[i]}: one records, one replays`);
    assert.equal(x?.posting.id, y?.posting.id);
  }
  const other = keys.map((k) => `o${k}`);
  const mixed = await Promise.allSettled(other.flatMap((k) => [a.post(spend(k, 'c1', 1)), b.post(topUp(k, 'c2', 2))]));
  for (let i = 0; i < other.length; i++) {
    const pair = [mixed[2 * i], mixed[2 * i + 1]];
    assert.equal(pair.filter((r) => r?.status === 'fulfilled').length, 1, `${other[i]}: one records`);
    for (const r of pair) if (r?.status === 'rejected') assert.ok(status(409)(r.reason) && !status(409, FUNDS_ID)(r.reason), String(r.reason));
  }
  const won1 = mixed.filter((r, i) => i % 2 === 0 && r.status === 'fulfilled').length;
  assert.equal(await b.balance('customer:c1:balance'), 1_000 - keys.length - won1);
  assert.equal(await b.balance('customer:c2:balance'), 1_000 + 2 * (other.length - won1));
  const trial = await b.trialBalance();
  assert.deepEqual([trial.ok, trial.postings], [true, 2 + keys.length + other.length]);
}

/**
 * What each of two processes (or nodes) does at once: 300 spends of 1 unit from c1 (keys of its own),
 * then the same 100 keys as the other process spending from c2, 64 callers at a time.
 * The answer: how many spends went through, the refusals other than for funds, and the
 * posting id and replayed flag of each shared key.
 */
export async function spendAndRace(l: Ledger, who: string): Promise<{ spent: number; odd: string[]; shared: Array<[number, boolean]> }> {
  let spent = 0;
  const odd: string[] = [];
  const spend = (key: string, customer: string) => ({ key, reason: 'usage', entries: [{ account: `customer:${customer}:balance`, amount: -1 }, { account: 'platform:revenue', amount: 1 }] });
  let i = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (i < 300) {
        await l.post(spend(`${who}-${i++}`, 'c1')).then(
          () => spent++,
          (err: { id?: string }) => err.id === FUNDS_ID || odd.push(String(err)),
        );
      }
    }),
  );
  const shared = await l.postMany(Array.from({ length: 100 }, (_, k) => spend(`shared-${k}`, 'c2')));
  return { spent, odd, shared: shared.map((o): [number, boolean] => (o.ok ? [o.posting.id, o.replayed] : [0, false])) };
}

/** spends spendAndRace may make from c1: exactly this many go through, whatever the interleaving */
export const RACE_FUNDS = 211;

/** Opens the accounts spendAndRace uses and funds them: c1 with RACE_FUNDS, c2 with 1,000. */
export async function fundRace(l: Ledger): Promise<void> {
  await standard(l, 'c1', 'c2');
  await l.post(topUp('pay', 'c1', RACE_FUNDS));
  await l.post(topUp('pay-2', 'c2', 1_000));
}

type RaceAnswer = Awaited<ReturnType<typeof spendAndRace>>;

/** What two spendAndRace at once must have done, whoever won each race. */
export async function checkRace(l: Ledger, x: RaceAnswer, y: RaceAnswer): Promise<void> {
  assert.deepEqual([...x.odd, ...y.odd], [], 'every refusal is for funds');
  assert.equal(x.spent + y.spent, RACE_FUNDS, `funds for ${RACE_FUNDS} spends: exactly that many went through`);
  for (let k = 0; k < 100; k++) {
    const [p, q] = [x.shared[k], y.shared[k]] as [[number, boolean], [number, boolean]];
    assert.ok(p[0] > 0 && p[0] === q[0], `shared-${k}: one posting for both`);
    assert.equal(Number(p[1]) + Number(q[1]), 1, `shared-${k}: one records, the other replays`);
  }
  assert.equal(await l.balance('customer:c1:balance'), 0);
  assert.equal(await l.balance('customer:c2:balance'), 900);
  const trial = await l.trialBalance();
  assert.deepEqual([trial.ok, trial.postings], [true, 2 + RACE_FUNDS + 100]);
}

export function ledgerContract(engine: string, make: MakeLedger): void {
  const it = (name: string, fn: (l: Ledger, clock: { now: number }) => Promise<void>, options: LedgerOptions = {}) =>
    test(`${engine}: ${name}`, async (t) => {
      const clock = { now: T0 };
      const l = await make(t, { ...options, clock: () => clock.now });
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

  it('history between two times: [from, to), paged, with each posting\'s metadata', async (l, clock) => {
    await standard(l, 'c1', 'c2');
    for (let i = 1; i <= 6; i++) {
      clock.now = T0 + i * 1000;
      await l.post({ ...topUp(`p${i}`, 'c1', i), metadata: { kind: 'topup', n: String(i) } });
      await l.post(topUp(`q${i}`, 'c2', i));
    }
    const keys = async (options: Parameters<Ledger['history']>[1]) => (await l.history('customer:c1:balance', options)).items.map((e) => e.key);
    assert.deepEqual(await keys({ from: T0 + 2000, to: T0 + 5000 }), ['p4', 'p3', 'p2'], 'from inclusive, to exclusive');
    assert.deepEqual(await keys({ from: T0 + 2001, to: T0 + 5001 }), ['p5', 'p4', 'p3']);
    assert.deepEqual(await keys({ from: T0 + 5000 }), ['p6', 'p5']);
    assert.deepEqual(await keys({ to: T0 + 2000 }), ['p1']);
    assert.deepEqual(await keys({ from: T0 + 3000, to: T0 + 3000 }), [], 'an empty range');
    assert.deepEqual(await keys({ from: T0 + 7000 }), []);
    const first = await l.history('customer:c1:balance', { from: T0 + 2000, to: T0 + 6000, limit: 3 });
    assert.deepEqual(first.items.map((e) => [e.key, e.balanceAfter, e.metadata]), [
      ['p5', 15, { kind: 'topup', n: '5' }],
      ['p4', 10, { kind: 'topup', n: '4' }],
      ['p3', 6, { kind: 'topup', n: '3' }],
    ]);
    const second = await l.history('customer:c1:balance', { from: T0 + 2000, to: T0 + 6000, limit: 3, before: first.next });
    assert.deepEqual(second.items.map((e) => e.key), ['p2']);
    assert.equal(second.next, undefined);
    assert.deepEqual((await l.history('customer:c2:balance', { from: T0 + 6000 })).items.map((e) => [e.key, e.metadata]), [['q6', {}]]);
    for (const bad of [{ from: -1 }, { to: 1.5 }, { from: NaN }, { to: Infinity }, { from: '0' }, { from: 2 ** 53 }, { from: T0 + 2, to: T0 + 1 }, null]) {
      await assert.rejects(l.history('customer:c1:balance', bad as Parameters<Ledger['history']>[1]), status(400), JSON.stringify(bad));
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

  it('group commit: concurrent posts share one transaction, each still decided on its own', async (l) => {
    await standard(l, 'c1');
    await l.post(topUp('pay', 'c1', 30));
    const before = (l as BaseLedger).commits;
    const results = await Promise.allSettled([
      ...Array.from({ length: 40 }, (_, i) => l.post(spend(`s${i}`, 'c1', 1))),
      l.post(topUp('late', 'ghost', 5)),
      l.post(topUp('pay', 'c1', 31)),
    ]);
    const after = (l as BaseLedger).commits;
    assert.equal(after.transactions - before.transactions, 1, 'the 42 posts made in one turn are one transaction');
    assert.equal(after.postings - before.postings, 42);
    assert.equal(results.slice(0, 40).filter((r) => r.status === 'fulfilled').length, 30);
    assert.ok(status(404)((results[40] as PromiseRejectedResult).reason));
    assert.ok(status(409)((results[41] as PromiseRejectedResult).reason));
    assert.equal(await l.balance('customer:c1:balance'), 0);
    assert.equal(await l.balance('platform:revenue'), 30);
    assert.equal((await l.trialBalance()).ok, true);
  });

  it('postMany: a refused posting in the middle fails alone, the others see the running balances', async (l, clock) => {
    await standard(l, 'c1', 'c2');
    await l.post(topUp('first', 'c2', 50));
    clock.now = T0 + 7;
    const out = await l.postMany([
      topUp('a', 'c1', 10),
      spend('b', 'c1', 11), // funds: 10 at this point
      topUp('c', 'ghost', 5), // unknown account
      { ...topUp('first', 'c2', 51) }, // the key was posted with other content
      spend('d', 'c1', 10), // exactly the 10 of `a`
      { key: 'e', reason: 'r', entries: [{ account: 'customer:c1:balance', amount: 0.5 }, { account: 'external:payments', amount: -0.5 }] }, // 400
      spend('f', 'c1', 1), // nothing left
      topUp('first', 'c2', 50), // a replay of a posting of another transaction
      topUp('g', 'c1', 3),
    ]);
    const shape = out.map((o) => (o.ok ? (o.replayed ? 'replayed' : 'posted') : `${(o.error as MicroError).code} ${(o.error as MicroError).id}`));
    assert.deepEqual(shape, [
      'posted',
      `409 ${FUNDS_ID}`,
      '404 micro.ledger',
      '409 micro.ledger',
      'posted',
      '400 micro.ledger',
      `409 ${FUNDS_ID}`,
      'replayed',
      'posted',
    ]);
    const posted = out.filter((o): o is PostOutcome & { ok: true } => o.ok && !o.replayed).map((o) => o.posting);
    assert.deepEqual(posted.map((p) => p.key), ['a', 'd', 'g']);
    assert.ok(posted.every((p, i) => p.at === T0 + 7 && (i === 0 || p.id > (posted[i - 1] as { id: number }).id)), 'ids increase in the order of the inputs');
    assert.deepEqual((await l.posting('d'))?.entries, spend('d', 'c1', 10).entries);
    for (const key of ['b', 'c', 'e', 'f']) assert.equal(await l.posting(key), undefined, `${key} left nothing`);
    assert.equal(await l.balance('customer:c1:balance'), 3);
    assert.equal(await l.balance('customer:c2:balance'), 50);
    assert.deepEqual((await l.history('customer:c1:balance')).items.map((e) => [e.key, e.balanceAfter]), [['g', 3], ['d', 0], ['a', 10]]);
    assert.deepEqual(await l.trialBalance(), { ok: true, total: '0', postings: 4, entries: 8, mismatched: [] });
    assert.deepEqual(await l.postMany([]), []);
    for (const bad of [null, 'x', { length: 1 }, Array.from({ length: MAX_POST_MANY + 1 }, () => topUp('x', 'c1', 1))]) {
      await assert.rejects(l.postMany(bad as PostingInput[]), status(400), Array.isArray(bad) ? 'too many' : JSON.stringify(bad));
    }
    assert.deepEqual((await l.postMany([null as unknown as PostingInput, topUp('h', 'c1', 1)])).map((o) => o.ok), [false, true]);
  });

  it('a posting refused by a broken clock moves nothing: the next in the batch sees the balance as it was', async (l, clock) => {
    await standard(l, 'c1');
    await l.post(topUp('pay', 'c1', 10));
    let calls = 0;
    Object.defineProperty(clock, 'now', { get: () => (calls++ === 0 ? -1 : T0 + 9), configurable: true });
    const out = await l.postMany([spend('x', 'c1', 10), spend('y', 'c1', 10)]);
    assert.deepEqual(out.map((o) => (o.ok ? o.posting.at : /clock/.test(o.error.message))), [true, T0 + 9]);
    assert.equal(await l.posting('x'), undefined);
    assert.equal(await l.balance('customer:c1:balance'), 0);
    assert.equal((await l.trialBalance()).ok, true);
  });

  it('duplicate keys in one batch: the same content records once and replays, other content is a 409', async (l) => {
    await standard(l, 'c1');
    const out = await l.postMany([topUp('k1', 'c1', 5), topUp('k1', 'c1', 5), topUp('k2', 'c1', 7), topUp('k2', 'c1', 8), topUp('k1', 'c1', 6)]);
    assert.ok(out[0]?.ok && out[1]?.ok && out[2]?.ok);
    assert.deepEqual([out[0].replayed, out[1].replayed, out[2].replayed], [false, true, false]);
    assert.deepEqual(out[1].posting, out[0].posting);
    assert.notEqual(out[1].posting, out[0].posting, 'each caller gets its own object');
    for (const o of [out[3], out[4]]) assert.ok(o && !o.ok && status(409)(o.error) && !status(409, FUNDS_ID)(o.error));
    assert.equal(await l.balance('customer:c1:balance'), 12);
    // the first of a key refused for funds leaves it free: the next of the same key in the batch is decided afresh
    const again = await l.postMany([spend('k3', 'c1', 13), topUp('k3', 'c1', 13), topUp('k3', 'c1', 13)]);
    assert.deepEqual(again.map((o) => (o.ok ? o.replayed : 'refused')), ['refused', false, true]);
    // concurrent posts of one key in one turn: one records
    const racing = await Promise.all(Array.from({ length: 8 }, () => l.post(topUp('k4', 'c1', 1))));
    assert.equal(racing.filter((r) => !r.replayed).length, 1);
    assert.equal(await l.balance('customer:c1:balance'), 26);
    assert.deepEqual(await l.trialBalance(), { ok: true, total: '0', postings: 4, entries: 8, mismatched: [] });
  });

  it('a batch is bounded: at most 500 postings and 10,000 entries a transaction, in order', async (l) => {
    await standard(l, 'c1');
    const before = (l as BaseLedger).commits;
    const out = await l.postMany(Array.from({ length: 1_200 }, (_, i) => topUp(`t${i}`, 'c1', 1)));
    assert.ok(out.every((o) => o.ok && !o.replayed));
    const ids = out.map((o) => (o.ok ? o.posting.id : 0));
    assert.ok(ids.every((id, i) => i === 0 || id > (ids[i - 1] as number)), 'ids follow the inputs');
    const mid = (l as BaseLedger).commits;
    assert.deepEqual([mid.transactions - before.transactions, mid.largest], [3, 500]);
    // 150 postings of 100 entries: 100 of them (10,000 entries) in the first transaction
    const accounts = Array.from({ length: 99 }, (_, i) => `customer:w${i}:balance`);
    for (const id of accounts) await l.openAccount({ id });
    const wide = (key: string): PostingInput => ({ key, reason: 'wide', entries: [{ account: 'external:payments', amount: -99 }, ...accounts.map((account) => ({ account, amount: 1 }))] });
    const start = (l as BaseLedger).commits.transactions;
    assert.ok((await l.postMany(Array.from({ length: 150 }, (_, i) => wide(`w${i}`)))).every((o) => o.ok));
    assert.equal((l as BaseLedger).commits.transactions - start, 2);
    assert.equal(await l.balance('customer:w0:balance'), 150);
    assert.equal((await l.trialBalance()).ok, true);
  });

  it('one transaction per posting (batch: 1): the same results, one after another', async (l) => {
    await standard(l, 'c1');
    await l.post(topUp('pay', 'c1', 5));
    const before = (l as BaseLedger).commits;
    const out = await l.postMany([spend('a', 'c1', 3), spend('b', 'c1', 3), spend('c', 'c1', 2), spend('a', 'c1', 3)]);
    assert.deepEqual(out.map((o) => (o.ok ? o.replayed : 'refused')), [false, 'refused', false, true]);
    assert.deepEqual((l as BaseLedger).commits.transactions - before.transactions, 4);
    assert.equal(await l.balance('customer:c1:balance'), 0);
  }, { batch: 1 });

  it('many callers spending at once across many batches: funds for k, exactly k succeed', async (l) => {
    await standard(l, 'c1', 'c2');
    await l.post(topUp('pay', 'c1', 73));
    await l.post(topUp('pay-2', 'c2', 1_000));
    // callers that post again as soon as they are answered, a batch of at most 7 at a time
    let next = 0;
    const taken: string[] = [];
    const refused: unknown[] = [];
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (next < 300) {
          const i = next++;
          await l.post(spend(`s${i}`, i % 3 === 0 ? 'c2' : 'c1', 1)).then(
            (r) => taken.push(r.posting.entries[0]?.account as string),
            (err: unknown) => refused.push(err),
          );
        }
      }),
    );
    assert.equal(taken.filter((a) => a === 'customer:c1:balance').length, 73);
    assert.equal(taken.filter((a) => a === 'customer:c2:balance').length, 100);
    assert.equal(refused.length, 200 - 73);
    for (const err of refused) assert.ok(status(409, FUNDS_ID)(err), String(err));
    assert.ok((l as BaseLedger).commits.largest <= 7);
    assert.equal(await l.balance('customer:c1:balance'), 0);
    assert.equal((await l.trialBalance()).ok, true);
  }, { batch: 7 });

  it('close: what was queued is decided first, later posts are refused', async (l) => {
    await standard(l, 'c1');
    const queued = l.post(topUp('pay', 'c1', 5));
    await l.close();
    assert.equal((await queued).replayed, false);
    await assert.rejects(l.post(topUp('late', 'c1', 5)), status(503));
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

  it('property: a batch decides every posting as if it ran alone after the ones before it', async (l) => {
    const customers = ['a', 'b'];
    await standard(l, ...customers);
    const accounts = ['external:payments', 'platform:revenue', ...customers.map((c) => `customer:${c}:balance`)];
    const mayGoNegative = new Set(['external:payments']);
    const model = new Map(accounts.map((a) => [a, 0]));
    /** key → the content it was recorded with */
    const recorded = new Map<string, string>();
    let round = 0;
    const move = fc.record({
      key: fc.integer({ min: 0, max: 11 }),
      from: fc.constantFrom(...accounts),
      to: fc.constantFrom(...accounts),
      amount: fc.integer({ min: 1, max: 40 }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(move, { minLength: 1, maxLength: 30 }), async (moves) => {
        // keys repeat within a batch and across batches (a fresh pool of 12 every 3 rounds)
        const pool = Math.floor(round++ / 3);
        const inputs = moves.filter((m) => m.from !== m.to).map((m) => ({ key: `b${pool}-${m.key}`, reason: 'random', entries: [{ account: m.from, amount: -m.amount }, { account: m.to, amount: m.amount }] }));
        const expected = inputs.map((input) => {
          const content = JSON.stringify(input.entries);
          const first = recorded.get(input.key);
          if (first !== undefined) return first === content ? 'replayed' : 'conflict';
          const [from, to] = input.entries as [{ account: string; amount: number }, { account: string; amount: number }];
          const left = (model.get(from.account) ?? 0) + from.amount;
          if (left < 0 && !mayGoNegative.has(from.account)) return 'funds';
          model.set(from.account, left);
          model.set(to.account, (model.get(to.account) ?? 0) + to.amount);
          recorded.set(input.key, content);
          return 'posted';
        });
        const out = await l.postMany(inputs);
        assert.deepEqual(
          out.map((o) => (o.ok ? (o.replayed ? 'replayed' : 'posted') : status(409, FUNDS_ID)(o.error) ? 'funds' : status(409)(o.error) ? 'conflict' : String(o.error))),
          expected,
        );
        const trial = await l.trialBalance();
        assert.equal(trial.ok, true, JSON.stringify(trial));
        for (const a of accounts) assert.equal(await l.balance(a), model.get(a), a);
      }),
      { numRuns: 30 },
    );
  });
}
