import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openQuotas, type Quotas } from '@micro/server/engine';
import { testPostgres } from '@micro/server/testing';
import { openPlatformAccounts } from '../billing/accounts.js';
import { openPgLedger, openSqliteLedger, type Ledger } from '../ledger/index.js';
import { openPgSignup } from '../signup/postgres.js';
import { openSqliteSignup } from '../signup/sqlite.js';
import type { SignupStorage } from '../signup/storage.js';
import { openPgBilling } from './postgres.js';
import { openSqliteBilling } from './sqlite.js';
import type { BillingStorage } from './storage.js';
import { Subscriptions, type SubscriptionsDeps } from './subscriptions.js';

/**
 * The parts of billing over real engines for a test — the ledger, billing's storage,
 * signup's storage and the quotas, on SQLite in a temporary folder or on the test's own
 * PostgreSQL schema — with a clock the test moves, and helpers that make customers and
 * members as signup does.
 */
export interface World {
  ledger: Ledger;
  storage: BillingStorage;
  signup: SignupStorage;
  quotas: Quotas;
  /** the billing clock: set `world.now` */
  now: number;
  /** Subscriptions over these engines (`deps` replaces some: a failing ledger…) */
  subscriptions(deps?: Partial<SubscriptionsDeps>): Promise<Subscriptions>;
  /** the payer of a namespace as the hub says it: the first owner, else `ns.<namespace>` */
  payerOf(namespace: string): Promise<string>;
  /** a customer who signed up at `world.now` and owns `namespace`: its id */
  customer(email: string, namespace: string): Promise<string>;
  /** `member` (a customer id) joins `namespace` at `world.now` with a role (default developer) */
  join(member: string, email: string, namespace: string, role?: 'owner' | 'admin' | 'developer' | 'viewer'): Promise<void>;
  close(): Promise<void>;
}

interface TestContext {
  skip(message?: string): void;
  after(fn: () => unknown): void;
}

let schemas = 0;

/** A world on `engine`; undefined (the test skipped) when PostgreSQL is away. */
export async function openWorld(t: TestContext, engine: 'sqlite' | 'postgres', start: number): Promise<World | undefined> {
  const dir = mkdtempSync(join(tmpdir(), 'micro-plans-'));
  // the ledger's clock reads the world, made once the engines are open
  const made: { world?: World } = {};
  t.after(async () => {
    await made.world?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const clock = () => made.world?.now ?? start;
  const parts = engine === 'sqlite' ? await sqliteParts(dir, clock) : await pgParts(t, clock);
  if (!parts) return undefined;
  await openPlatformAccounts(parts.ledger);
  made.world = makeWorld(parts, start);
  return made.world;
}

interface Parts {
  ledger: Ledger;
  storage: BillingStorage;
  signup: SignupStorage;
  quotas: Quotas;
  close(): Promise<void>;
}

async function sqliteParts(dir: string, clock: () => number): Promise<Parts> {
  const ledger = openSqliteLedger(join(dir, 'billing.db'), { clock });
  const signup = openSqliteSignup(join(dir, 'signup.db')).storage;
  const quotas = await openQuotas({ name: 'local' }, dir);
  return { ledger, storage: openSqliteBilling(ledger.db), signup, quotas, close: async () => void (await Promise.all([ledger.close(), signup.close(), quotas.close()])) };
}

async function pgParts(t: TestContext, clock: () => number): Promise<Parts | undefined> {
  const db = await testPostgres(t, `plans${schemas++}`);
  if (!db) return undefined;
  const options = { url: db.url, prefix: db.prefix };
  const ledger = await openPgLedger({ ...options, clock });
  const signup = await openPgSignup(options);
  const quotas = await openQuotas({ name: 'nats', postgresUrl: db.url, prefix: db.prefix } as unknown as Parameters<typeof openQuotas>[0], '');
  return { ledger, storage: await openPgBilling(ledger.db), signup, quotas, close: async () => void (await Promise.all([ledger.close(), signup.close(), quotas.close()])) };
}

function makeWorld(p: Parts, start: number): World {
  const payerOf = async (namespace: string) => (await p.signup.members(namespace)).find((m) => m.role === 'owner')?.customer ?? `ns.${namespace}`;
  let n = 0;
  const world: World = {
    ...p,
    now: start,
    payerOf,
    async subscriptions(deps = {}) {
      const subs = new Subscriptions({ storage: p.storage, ledger: p.ledger, signup: p.signup, payerOf, quotas: p.quotas, clock: () => world.now, cacheMs: 0, ...deps });
      await subs.seed();
      return subs;
    },
    async customer(email, namespace) {
      const id = `cus_${String(++n).padStart(3, '0')}${email.split('@')[0]}`;
      await p.signup.claim({ customer: { id, email }, owns: namespace, account: email, now: world.now, staleBefore: world.now - 300_000 });
      await p.signup.finish(id, email, world.now);
      return id;
    },
    async join(member, email, namespace, role = 'developer') {
      const invite = `inv_${++n}`;
      await p.signup.createTeamInvite({ id: invite, email, namespace, role, createdAt: world.now, expiresAt: world.now + 86_400_000 }, null);
      await p.signup.join({ invite, customer: member, namespace, account: email, role, now: world.now, maxMembers: 100 });
    },
    close: p.close,
  };
  return world;
}
