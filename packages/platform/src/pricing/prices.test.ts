import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger } from '@micro/sdk';
import { openPostgres } from '@micro/server/engine';
import { testPostgres } from '@micro/server/testing';
import { openSqliteLedger } from '../ledger/index.js';
import { setting } from './contract.js';
import { openPgPricing } from './postgres.js';
import { PlatformPricing } from './prices.js';
import { openSqlitePricing } from './sqlite.js';
import type { PricingStorage } from './storage.js';

const read = { name: 'Read', price: 100, freeQuota: 1000 };

function sqlitePair(t: { after(fn: () => unknown): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'micro-prices-'));
  const [a, b] = [openSqliteLedger(join(dir, 'billing.db')), openSqliteLedger(join(dir, 'billing.db'))];
  t.after(async () => {
    await a.close();
    await b.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { ledgers: [a, b] as const, storages: [openSqlitePricing(a.db), openSqlitePricing(b.db)] as const };
}

/** Polls until `check` holds (every 10 ms, at most 10 s): for what a timer does in its own time. */
async function eventually(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within 10 s`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('priceOf: an admin price over the definition; unpriced endpoints are not metered; price 0 or a free quota alone are', async (t) => {
  const { storages } = sqlitePair(t);
  const p = new PlatformPricing();
  t.after(() => p.detach());
  // before the storage is attached: the definitions alone
  assert.deepEqual(p.priceOf('acme', 'books', read), { price: 100, freeQuota: 1000 });
  await p.attach(storages[0]);
  assert.equal(p.priceOf('acme', 'books', { name: 'Write' }), undefined);
  assert.deepEqual(p.priceOf('acme', 'books', { name: 'Free', price: 0 }), { price: 0, freeQuota: 0 });
  assert.deepEqual(p.priceOf('acme', 'books', { name: 'Count', freeQuota: 5 }), { price: 0, freeQuota: 5 });
  await storages[0].set(setting('Read', 7, { namespace: 'acme', freeQuota: 3 }), 10);
  await storages[0].set(setting('Write', 0, { namespace: 'acme' }), 10);
  await p.refresh();
  assert.deepEqual(p.priceOf('acme', 'books', read), { price: 7, freeQuota: 3 });
  assert.deepEqual(p.priceOf('acme', 'books', { name: 'Write' }), { price: 0, freeQuota: 0 }, 'an admin may meter an unpriced endpoint');
  // the same names elsewhere are untouched
  assert.deepEqual(p.priceOf('globex', 'books', read), { price: 100, freeQuota: 1000 });
  assert.deepEqual(p.priceOf('acme', 'films', read), { price: 100, freeQuota: 1000 });
  assert.deepEqual(p.priceOf('acme', 'books', { ...read, name: 'read' }), { price: 100, freeQuota: 1000 }, 'names are exact');
  // what metering gets cannot change the table
  const got = p.priceOf('acme', 'books', read) as { price: number };
  got.price = 1;
  assert.equal(p.priceOf('acme', 'books', read)?.price, 7);
});

test('another node sees a change at its next refresh: within refreshMs (SQLite, two processes on one file)', async (t) => {
  const { storages } = sqlitePair(t);
  const [a, b] = [new PlatformPricing({ refreshMs: 25 }), new PlatformPricing({ refreshMs: 25 })];
  t.after(() => {
    a.detach();
    b.detach();
  });
  await a.attach(storages[0]);
  await b.attach(storages[1]);
  await storages[0].set(setting('Read', 5, { namespace: 'acme' }), 10);
  await a.refresh(true);
  assert.equal(a.priceOf('acme', 'books', read)?.price, 5);
  await eventually('node b sees the price of node a', () => b.priceOf('acme', 'books', read)?.price === 5);
  await storages[1].clear({ namespace: 'acme', service: 'books', endpoint: 'Read' });
  await eventually('node a sees the clear of node b', () => a.priceOf('acme', 'books', read)?.price === 100);
});

test('another node sees a change at its next refresh (PostgreSQL, two pools on one schema)', async (t) => {
  const db = await testPostgres(t, 'prices');
  if (!db) return;
  const other = await openPostgres({ url: `${db.url}${db.url.includes('?') ? '&' : '?'}application_name=node-b`, prefix: db.prefix });
  t.after(() => other.close());
  const [sa, sb] = [await openPgPricing(db), await openPgPricing(other)];
  const [a, b] = [new PlatformPricing({ refreshMs: 25 }), new PlatformPricing({ refreshMs: 25 })];
  t.after(() => {
    a.detach();
    b.detach();
  });
  await a.attach(sa);
  await b.attach(sb);
  await sa.set(setting('Read', 5, { namespace: 'acme' }), 10);
  await eventually('node b sees the price of node a', () => b.priceOf('acme', 'books', read)?.price === 5);
  assert.equal(b.settingsList().length, 1);
});

test('when the storage cannot be read, the last prices stay in force (said once), and refresh fails loudly', async (t) => {
  const { ledgers, storages } = sqlitePair(t);
  const lines: string[] = [];
  const logger = createLogger({ level: 'info' }, new Writable({ write: (chunk, _e, done) => (lines.push(String(chunk)), done()) }));
  const p = new PlatformPricing({ refreshMs: 10 });
  t.after(() => p.detach());
  await storages[0].set(setting('Read', 9, { namespace: 'acme' }), 10);
  await p.attach(storages[0], logger);
  // the database goes away under it
  await ledgers[0].close();
  await assert.rejects(p.refresh(true), /not open/);
  await eventually('the outage is logged', () => lines.some((l) => l.includes('cannot read the prices')));
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(lines.filter((l) => l.includes('cannot read the prices')).length, 1, 'once per outage, not every refresh');
  assert.deepEqual(p.priceOf('acme', 'books', read), { price: 9, freeQuota: 0 }, 'never none: the last prices');
});

test('one storage at a time: a second attach is refused, a detached Pricing attaches again (a server restarted)', async (t) => {
  const { storages } = sqlitePair(t);
  const p = new PlatformPricing();
  t.after(() => p.detach());
  await p.attach(storages[0]);
  await assert.rejects(p.attach(storages[1]), /attached to a storage already/);
  p.detach();
  await p.attach(storages[1]);
});

test('a server does not start with prices it cannot read', async (t) => {
  const { ledgers, storages } = sqlitePair(t);
  await ledgers[0].close();
  const p = new PlatformPricing();
  t.after(() => p.detach());
  await assert.rejects(p.attach(storages[0]), /not open/);
  // nothing half attached: a storage that reads is taken
  await p.attach(storages[1]);
});

test('refreshes one at a time: racing refreshes and sets end on the last state', async (t) => {
  const { storages } = sqlitePair(t);
  const p = new PlatformPricing({ refreshMs: 60_000 });
  t.after(() => p.detach());
  let reads = 0;
  const counted: PricingStorage = { ...storages[0], load: async () => (reads++, storages[0].load()) };
  await p.attach(counted);
  await Promise.all(Array.from({ length: 20 }, async (_, i) => {
    await storages[0].set(setting(`E${i % 4}`, i, { namespace: 'acme' }), 10);
    await p.refresh(i % 2 === 0);
  }));
  const { settings } = await storages[0].load();
  assert.deepEqual(p.settingsList().map((s) => [s.endpoint, s.price]), settings.map((s) => [s.endpoint, s.price]));
  // unchanged: the version is read, the settings are not
  const before = reads;
  await p.refresh();
  await p.refresh();
  assert.equal(reads, before);
});
