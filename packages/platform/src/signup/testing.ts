import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, createClient, createLogger, MemoryBroker, MemoryRegistry, RpcServer, Service, type ClientMiddleware, type Profile, type TypedClient } from '@micro/sdk';
import { authenticate, type CoreContext } from '@micro/server/engine';
import { startAuthHarness, type AuthHarness } from '@micro/server/testing';
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
  /** the signup service, anonymous or with a token */
  as(token?: string): TypedClient<typeof signupService>;
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

export async function startSignupHarness(options: SignupServiceOptions = {}, profile: Profile = { name: 'local' }): Promise<SignupHarness> {
  const auth = await startAuthHarness();
  const home = mkdtempSync(join(tmpdir(), 'micro-signup-svc-'));
  const mailer = new MemoryMailer();
  const ctx: CoreContext = { home, profile, dataDir: home, logger: silent, registry: auth.registry, broker: new MemoryBroker(), accounts: auth.accounts, tokens: auth.tokens };
  const core = await signupCoreService({ mailer, ...options })(ctx);
  const rpc = new RpcServer({ logger: silent });
  const address = await rpc.listen('tcp://127.0.0.1:0');
  const service = new Service(core.def, core.handlers, {
    server: rpc,
    namespace: 'micro',
    registry: new MemoryRegistry(),
    logger: silent,
    registerTTL: 0,
    auth: false,
    middleware: [authenticate(auth.tokens, new Set(['Debug.Health', ...(core.publicEndpoints ?? [])]))],
  });
  await service.start();
  const as = (token?: string) => createClient(signupService, new Client({ address, namespace: 'micro', preferLocal: false, timeout: 10_000, middleware: token ? [withToken(token)] : [] }));
  return {
    auth,
    mailer,
    as,
    adminToken: async () => (await auth.authAs().Token({ id: auth.admin.id, secret: auth.admin.secret, namespace: 'micro' })).token,
    codeOf(email) {
      const code = /code is:\s*([0-9]{6})/.exec(mailer.lastTo(email)?.text ?? '')?.[1];
      if (!code) throw new Error(`no code was mailed to ${email}`);
      return code;
    },
    async close() {
      await service.stop();
      await rpc.close();
      await core.stop?.();
      await auth.close();
      rmSync(home, { recursive: true, force: true });
    },
  };
}
