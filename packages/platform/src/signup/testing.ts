import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, configService, MicroError, createClient, createLogger, MemoryBroker, storeService, type ClientMiddleware, type Profile, type ServiceDef, type TypedClient } from '@micro/sdk';
import { configCoreService, openQuotas, storeFactory, type CoreContext, type CoreService, type CoreServiceFactory, type Quotas } from '@micro/server/engine';
import { startAuthHarness, type AuthHarness } from '@micro/server/testing';
import { hostCoreServices } from '../core-testing.js';
import { MemoryMailer } from '../mail/mailer.js';
import { signupService } from './definition.js';
import { signupCoreService, type SignupServiceOptions } from './index.js';

/**
 * The signup service as micro server hosts it — its factory on a CoreContext over a real
 * auth storage (SQLite, a temporary home), behind the server's guard (tokens checked, the
 * public endpoints open) on a TCP RPC address — with a MemoryMailer to read codes back.
 */
export interface SignupHarness {
  auth: AuthHarness;
  mailer: MemoryMailer;
  /** the server's quotas of the profile (SQLite in the home, or the test's PostgreSQL schema) */
  quotas: Quotas;
  /** the signup service, anonymous or with a token */
  as(token?: string): TypedClient<typeof signupService>;
  /** any service of the harness (those given as `more` too), anonymous or with a token */
  client<D extends ServiceDef>(def: D, token?: string): TypedClient<D>;
  /** the store and config core services (local profile only), behind the same guard */
  store(token: string): TypedClient<typeof storeService>;
  config(token: string): TypedClient<typeof configService>;
  /** the CoreContext the services were built on */
  ctx: CoreContext;
  /** a token of the admin of micro */
  adminToken(): Promise<string>;
  /** the 6-digit code of the last message to `email` */
  codeOf(email: string): string;
  close(): Promise<void>;
}

const silent = createLogger({ level: 'silent' });

/**
 * The general token on every call, as the gateway forwards it. (The SDK's `bearer` sends a
 * general token only to the services in CORE_SERVICES, which does not list the platform's
 * yet: see README.)
 */
function withToken(token: string): ClientMiddleware {
  return (req, next) => {
    req.metadata = { ...req.metadata, authorization: `Bearer ${token}` };
    return next(req);
  };
}

/** `more`: other core services (the platform's billing) built on the same context and hosted behind the same guard. */
export async function startSignupHarness(options: SignupServiceOptions = {}, profile: Profile = { name: 'local' }, more: CoreServiceFactory[] = []): Promise<SignupHarness> {
  const auth = await startAuthHarness();
  const home = mkdtempSync(join(tmpdir(), 'micro-signup-svc-'));
  const mailer = new MemoryMailer();
  const quotas = await openQuotas(profile, home);
  const ctx: CoreContext = { home, profile, dataDir: home, logger: silent, registry: auth.registry, broker: new MemoryBroker(), accounts: auth.accounts, tokens: auth.tokens, quotas };
  const core = await signupCoreService({ mailer, ...options })(ctx);
  // the team roles are checked by the guard of every core service: two of them with real local engines
  const others: CoreService[] = profile.name === 'local' ? [await storeFactory(ctx), await configCoreService(ctx)] : [];
  for (const factory of more) others.push(await factory(ctx));
  const { address, close: stopServing } = await hostCoreServices([core, ...others], auth.tokens);
  const client = <D extends ServiceDef>(def: D, token?: string) => createClient(def, new Client({ address, namespace: 'micro', preferLocal: false, timeout: 10_000, middleware: token ? [withToken(token)] : [] }));
  const as = (token?: string) => client(signupService, token);
  return {
    auth,
    mailer,
    quotas,
    as,
    store: (token) => client(storeService, token),
    config: (token) => client(configService, token),
    client,
    ctx,
    adminToken: async () => (await auth.authAs().Token({ id: auth.admin.id, secret: auth.admin.secret, namespace: 'micro' })).token,
    codeOf(email) {
      const code = /code is:\s*([0-9]{6})/.exec(mailer.lastTo(email)?.text ?? '')?.[1];
      if (!code) throw new Error(`no code was mailed to ${email}`);
      return code;
    },
    async close() {
      await stopServing();
      for (const cs of [core, ...others]) await cs.stop?.();
      await quotas.close();
      await auth.close();
      rmSync(home, { recursive: true, force: true });
    },
  };
}

/** An assertion for assert.rejects: a MicroError of this code (and detail). */
export const fails = (code: number, detail?: RegExp) => (err: unknown) => {
  assert.ok(err instanceof MicroError, String(err));
  assert.equal(err.code, code, err.detail);
  if (detail) assert.match(err.detail, detail);
  return true;
};

export const PASSWORD = 'correct horse battery';
