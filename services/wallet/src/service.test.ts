import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { expectShape, startPlatform, type Platform } from '@micro/services-kit/testing';
import { service } from './handlers.js';

async function ok(p: Platform, key: string, endpoint: string, body: unknown) {
  const res = await p.call(key, 'wallet', endpoint, body);
  assert.equal(res.status, 200, `${endpoint} ${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
  await expectShape('wallet', endpoint, res.body);
  return res.body;
}

function refused(res: { status: number; body: { code: number; detail: string; id: string; status: string } }, status: number, detail: RegExp): void {
  assert.equal(res.status, status, JSON.stringify(res.body));
  assert.equal(res.body.code, status);
  assert.equal(typeof res.body.status, 'string');
  assert.match(res.body.detail, detail);
}

for (const profile of ['local', 'nats'] as const) {
  test(`wallet through the gateway as M3O's client calls it: every endpoint, double spends, isolation, bad input (${profile})`, async (t) => {
    const p = await startPlatform(t, { services: [service], profile });
    if (!p) return;
    t.after(() => p.close());
    const { a, b } = p;

    // every endpoint, with behaviour
    const created = await ok(p, a.key, 'Create', { id: 'alice', name: 'Alice', description: 'main' });
    assert.deepEqual(created.account, { id: 'alice', name: 'Alice', description: 'main', balance: '0' });
    const generated = (await ok(p, a.key, 'Create', {})).account.id;
    assert.match(generated, /^[0-9a-f-]{36}$/);
    assert.deepEqual(await ok(p, a.key, 'Credit', { id: 'alice', amount: '100', reference: 'top-up', visible: true, idempotency_key: 'c1' }), { balance: '100' });
    assert.deepEqual(await ok(p, a.key, 'Credit', { id: 'alice', amount: 100, reference: 'top-up', visible: true, idempotencyKey: 'c1' }), { balance: '100' });
    assert.deepEqual(await ok(p, a.key, 'Debit', { id: 'alice', amount: 30, reference: 'coffee', visible: true, idempotency_key: 'd1' }), { balance: '70' });
    assert.deepEqual(await ok(p, a.key, 'Transfer', { fromId: 'alice', toId: generated, amount: '20', reference: 'gift', visible: true }), {});
    await ok(p, a.key, 'Debit', { id: 'alice', amount: 1, reference: 'hidden fee' });
    assert.deepEqual(await ok(p, a.key, 'Balance', { id: 'alice' }), { balance: '49' });
    assert.deepEqual((await ok(p, a.key, 'Read', { id: generated })).account.balance, '20');
    const listed = (await ok(p, a.key, 'List', {})).accounts.map((x: { id: string }) => x.id);
    assert.deepEqual([...listed].sort(), ['alice', generated].sort());
    const txs = (await ok(p, a.key, 'Transactions', { id: 'alice' })).transactions;
    // visible ones only, newest first, amounts signed, metadata saying what moved
    assert.deepEqual(txs.map((x: { amount: string; reference: string }) => [x.amount, x.reference]), [['-20', 'gift'], ['-30', 'coffee'], ['100', 'top-up']]);
    assert.deepEqual(txs[0].metadata.to, generated);
    assert.equal(txs[2].metadata.idempotency_key, 'c1');
    assert.ok(!Number.isNaN(Date.parse(txs[0].created)));

    // overdraft and double spend
    refused(await p.call(a.key, 'wallet', 'Debit', { id: 'alice', amount: 50 }), 400, /insufficient balance/);
    refused(await p.call(a.key, 'wallet', 'Transfer', { from_id: 'alice', to_id: generated, amount: 50 }), 400, /insufficient balance/);
    refused(await p.call(a.key, 'wallet', 'Debit', { id: 'alice', amount: 49, idempotency_key: 'd1' }), 409, /idempotency_key/);
    // funds for 4 debits of 10, 12 at once: exactly 4 succeed
    await ok(p, a.key, 'Create', { id: 'race' });
    await ok(p, a.key, 'Credit', { id: 'race', amount: 45 });
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => p.call(a.key, 'wallet', 'Debit', { id: 'race', amount: 10, idempotency_key: `race-${i}` })));
    assert.equal(results.filter((r) => r.status === 200).length, 4, JSON.stringify(results.map((r) => r.body)));
    for (const r of results) if (r.status !== 200) refused(r, 400, /insufficient balance/);
    assert.deepEqual(await ok(p, a.key, 'Balance', { id: 'race' }), { balance: '5' });
    // the same key sent 8 times at once: applied once
    const again = await Promise.all(Array.from({ length: 8 }, () => p.call(a.key, 'wallet', 'Credit', { id: 'race', amount: 7, idempotency_key: 'once' })));
    assert.deepEqual(new Set(again.map((r) => r.body.balance)), new Set(['12']));

    // isolation: b uses the same wallet ids and keys and reaches none of a's money
    refused(await p.call(b.key, 'wallet', 'Balance', { id: 'alice' }), 404, /alice not found/);
    refused(await p.call(b.key, 'wallet', 'Debit', { id: 'alice', amount: 1 }), 404, /not found/);
    refused(await p.call(b.key, 'wallet', 'Transactions', { id: 'alice' }), 404, /not found/);
    refused(await p.call(b.key, 'wallet', 'Delete', { id: generated }), 404, /not found/);
    assert.deepEqual((await ok(p, b.key, 'List', {})).accounts, []);
    await ok(p, b.key, 'Create', { id: 'alice' });
    assert.deepEqual(await ok(p, b.key, 'Credit', { id: 'alice', amount: 3, idempotency_key: 'c1' }), { balance: '3' });
    refused(await p.call(b.key, 'wallet', 'Transfer', { from_id: 'alice', to_id: generated, amount: 1 }), 404, /not found/);
    await ok(p, b.key, 'Create', { id: generated });
    await ok(p, b.key, 'Transfer', { from_id: 'alice', to_id: generated, amount: 1 });
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('alice', generated, 'race', 'ALICE', 'alice ', '../alice', 'tenant-a/alice'), fc.constantFrom('Balance', 'Read', 'Debit', 'Transactions', 'Delete'), fc.integer({ min: 1, max: 1000 }), async (id, endpoint, amount) => {
          const res = await p.call(b.key, 'wallet', endpoint, { id, amount, idempotency_key: 'c1' });
          if (res.status === 200) assert.ok(id === 'alice' || id === generated, `${endpoint} ${id}: ${JSON.stringify(res.body)}`);
        }),
      { numRuns: 25 },
    );
    // a's books unchanged by all of it
    assert.deepEqual(await ok(p, a.key, 'Balance', { id: 'alice' }), { balance: '49' });
    assert.deepEqual(await ok(p, a.key, 'Balance', { id: generated }), { balance: '20' });
    assert.deepEqual(await ok(p, a.key, 'Balance', { id: 'race' }), { balance: '12' });

    // bad input: 400s naming the field, nothing moved
    const bad: [string, unknown, RegExp][] = [
      ['Credit', { id: 'alice', amount: -5 }, /amount/],
      ['Credit', { id: 'alice', amount: 0 }, /amount/],
      ['Credit', { id: 'alice', amount: 1.5 }, /amount/],
      ['Credit', { id: 'alice', amount: '1e3' }, /amount/],
      ['Credit', { id: 'alice', amount: '99999999999999999999' }, /amount/],
      ['Credit', { id: 'alice', amount: 2e15 }, /amount/],
      ['Credit', { id: 'alice', amount: 'ten' }, /amount/],
      ['Credit', { id: 'alice' }, /amount/],
      ['Debit', { id: 'alice', amount: [1] }, /amount/],
      ['Credit', { amount: 1 }, /id/],
      ['Credit', { id: '../etc/passwd', amount: 1 }, /id/],
      ['Credit', { id: "x' OR 1=1 --", amount: 1 }, /id/],
      ['Credit', { id: 'a'.repeat(200), amount: 1 }, /id/],
      ['Credit', { id: { $ne: null }, amount: 1 }, /id/],
      ['Credit', { id: 'alice', amount: 1, idempotency_key: 'x'.repeat(300) }, /idempotency_key/],
      ['Credit', { id: 'alice', amount: 1, idempotency_key: 'a\nb' }, /idempotency_key/],
      ['Credit', { id: 'alice', amount: 1, visible: 'yes' }, /visible/],
      ['Credit', { id: 'alice', amount: 1, reference: 'r'.repeat(2000) }, /reference/],
      ['Transfer', { from_id: 'alice', to_id: 'alice', amount: 1 }, /different/],
      ['Transfer', { from_id: 'alice', amount: 1 }, /to_id/],
      ['Create', { id: 'a/b' }, /id/],
      ['Create', { name: { deep: { deeper: [] } } }, /name/],
    ];
    for (const [endpoint, body, detail] of bad) refused(await p.call(a.key, 'wallet', endpoint, body), 400, detail);
    refused(await p.call(a.key, 'wallet', 'Create', { id: 'alice' }), 409, /already exists/);
    refused(await p.call(a.key, 'wallet', 'Delete', { id: 'alice' }), 400, /balance of 49/);
    assert.deepEqual(await ok(p, a.key, 'Balance', { id: 'alice' }), { balance: '49' });
    assert.equal((await p.call(undefined, 'wallet', 'Balance', { id: 'alice' })).status, 401);

    // delete at zero
    await ok(p, a.key, 'Transfer', { from_id: generated, to_id: 'alice', amount: 20 });
    assert.deepEqual(await ok(p, a.key, 'Delete', { id: generated }), {});
    refused(await p.call(a.key, 'wallet', 'Read', { id: generated }), 404, /not found/);
  });
}
