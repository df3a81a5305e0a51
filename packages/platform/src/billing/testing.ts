import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testPostgres } from '@micro/server/testing';
import { openBillingEngines, type BillingEngines } from './engines.js';

export type BillingEngineName = 'sqlite' | 'postgres';
export const BILLING_ENGINES: readonly BillingEngineName[] = ['sqlite', 'postgres'];

interface TestContext {
  skip(message?: string): void;
  after(fn: () => unknown): void;
}

/**
 * The billing engines of a test, as the hub opens them: billing.db in a temporary folder,
 * or the test's own PostgreSQL schema (undefined, the test skipped with the reason, when
 * PostgreSQL is away). Closed and removed after the test.
 */
export async function testBillingEngines(t: TestContext, engine: BillingEngineName, clock: () => number = Date.now): Promise<BillingEngines | undefined> {
  const dataDir = mkdtempSync(join(tmpdir(), 'micro-billing-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  if (engine === 'sqlite') {
    const engines = await openBillingEngines({ profile: { name: 'local' }, dataDir }, clock);
    t.after(() => engines.ledger.close());
    return engines;
  }
  const db = await testPostgres(t, 'billing');
  if (!db) return undefined;
  const engines = await openBillingEngines({ profile: { name: 'nats', postgresUrl: db.url, prefix: db.prefix, natsUrl: '', redisUrl: '' }, dataDir }, clock);
  t.after(() => engines.ledger.close());
  return engines;
}
