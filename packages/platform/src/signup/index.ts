import { join } from 'node:path';
import { SecretHasher, type CoreServiceFactory } from '@micro/server/engine';
import { mailerFromEnv } from '../mail/env.js';
import { signupService, SIGNUP_PUBLIC_ENDPOINTS } from './definition.js';
import { signupHandlers, type SignupHandlerOptions } from './handlers.js';
import { codeKeyFrom, openPgSignup } from './postgres.js';
import { signupNamespaces } from './runtime.js';
import { openSqliteSignup } from './sqlite.js';
import type { SignupStorage } from './storage.js';
import type { PlatformHub } from '../hub.js';

export { signupService, SIGNUP_PUBLIC_ENDPOINTS, LIMITS as SIGNUP_LIMITS } from './definition.js';
export { signupHandlers } from './handlers.js';
export type { SignupHandlerOptions } from './handlers.js';
export type { SignupStorage, Customer, CustomerStatus, Invite, Membership } from './storage.js';
export { normaliseEmail, DISPOSABLE_DOMAINS } from './email.js';
export { checkNamespaceName, RESERVED_NAMESPACES } from './names.js';
export { signupNamespaces } from './runtime.js';

export interface SignupServiceOptions extends Partial<Omit<SignupHandlerOptions, 'logger'>> {
  /** the key of the codes' HMAC (default: random in signup.db on the local profile, derived from MICRO_AUTH_KEY on the nats profile) */
  codeKey?: Buffer;
  /** the platform's shared engines: the storage is the hub's (default: its own, for a service built alone) */
  hub?: PlatformHub;
}

/**
 * The signup core service (namespace micro): SQLite in `<dataDir>/signup.db` on the local
 * profile, the tables of schema `<prefix>` in the shared PostgreSQL on the nats profile.
 * Without a mailer, mail goes out as `MICRO_SMTP_URL` says, else into the outbox under
 * MICRO_HOME (mailerFromEnv).
 */
/**
 * Who may sign up: `MICRO_SIGNUP=invite` (the default: invited emails only) or `open`
 * (anyone with an email that takes the code). A wrong value stops micro server saying what to write.
 */
export function signupModeFromEnv(env: NodeJS.ProcessEnv = process.env): { openSignup: boolean } {
  const mode = (env.MICRO_SIGNUP ?? '').trim() || 'invite';
  if (mode !== 'invite' && mode !== 'open') throw new Error(`MICRO_SIGNUP must be "invite" (invited emails only, the default) or "open" (anyone), not "${mode.slice(0, 32)}"`);
  return { openSignup: mode === 'open' };
}

export function signupCoreService(options: SignupServiceOptions = {}): CoreServiceFactory {
  return async (ctx) => {
    const openSignup = options.openSignup ?? signupModeFromEnv().openSignup;
    const logger = ctx.logger.child({ component: 'signup' });
    const mailer = options.mailer ?? mailerFromEnv({ home: ctx.home, logger });
    const hub = options.hub;
    hub?.acquire();
    const { storage, codeKey } = hub ? await hub.signup(ctx) : await openSignupStorage(ctx.profile, ctx.dataDir, options.codeKey);
    // the runtime learns of the namespaces signup makes (with MICRO_RUNTIME=kubernetes: their cluster namespaces)
    const hook = ctx.namespaceHook;
    hook?.setSource(signupNamespaces(storage));
    const namespaceChanged = hook ? (namespace: string) => void hook.changed(namespace) : undefined;
    const handlers = signupHandlers({ storage, accounts: ctx.accounts, tokens: ctx.tokens, hasher: new SecretHasher(codeKey), purge: ctx.purge, quotas: ctx.quotas, namespaceChanged }, { ...options, openSignup, mailer, logger });
    // what a team holds of its `members` quota shows in quota.Read
    ctx.quotas?.addSource(async (namespace) => ({ members: await storage.seats(namespace, Date.now()) }));
    return {
      def: signupService,
      handlers,
      publicEndpoints: [...SIGNUP_PUBLIC_ENDPOINTS],
      stop: async () => {
        hook?.setSource(undefined);
        if (hub) await hub.release();
        else await storage.close();
        // a mailer given by the caller is the caller's to close
        if (!options.mailer) await mailer.close?.();
      },
    };
  };
}

type Profile = Parameters<CoreServiceFactory>[0]['profile'];

export async function openSignupStorage(profile: Profile, dataDir: string, key?: Buffer): Promise<{ storage: SignupStorage; codeKey: Buffer }> {
  if (profile.name !== 'nats') {
    const { storage, codeKey } = openSqliteSignup(join(dataDir, 'signup.db'));
    return { storage, codeKey: key ?? codeKey };
  }
  const storage = await openPgSignup({ url: profile.postgresUrl, prefix: profile.prefix });
  const authKey = process.env.MICRO_AUTH_KEY;
  if (!key && !authKey) {
    await storage.close();
    throw new Error('the signup service of MICRO_PROFILE=nats needs MICRO_AUTH_KEY (the key of its codes derives from it)');
  }
  return { storage, codeKey: key ?? codeKeyFrom(authKey as string) };
}
