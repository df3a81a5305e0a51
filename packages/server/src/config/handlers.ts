import { errors, type Context, type Handlers } from '@micro/sdk';
import { isAdmin, namespaceFor } from '../auth/guard.js';
import { configService, type Config } from '@micro/sdk';

/** The scope that lets an account of a namespace read its secrets in clear. */
export const SECRETS_SCOPE = 'config:secrets';

/**
 * The config service's handlers. Every request acts in the caller's namespace unless an
 * admin of `micro` names another (auth/guard.ts). Anyone of a namespace may set a secret;
 * reading secrets in clear needs an admin of `micro` or an account with scope
 * config:secrets (403 otherwise). Watches show secrets masked, always.
 */
export function configHandlers(config: Config): Handlers<typeof configService> {
  return {
    Get: async (req, ctx) => {
      const namespace = namespaceFor(ctx, req.namespace);
      if (req.secrets) requireSecretsReader(ctx);
      const value = await config.get(req.path, { namespace, secrets: req.secrets === true });
      return value === undefined ? { found: false } : { found: true, value };
    },
    Set: async (req, ctx) => {
      await config.set(req.path, req.value, { namespace: namespaceFor(ctx, req.namespace), secret: req.secret === true });
      return {};
    },
    Delete: async (req, ctx) => ({ deleted: await config.delete(req.path, { namespace: namespaceFor(ctx, req.namespace) }) }),
    async *Watch(req, ctx) {
      const watcher = config.watch(req.path, { namespace: namespaceFor(ctx, req.namespace) });
      const stop = () => watcher.stop();
      ctx.signal.addEventListener('abort', stop, { once: true });
      try {
        yield* watcher;
      } finally {
        ctx.signal.removeEventListener('abort', stop);
        watcher.stop();
      }
    },
  };
}

function requireSecretsReader(ctx: Context): void {
  const account = ctx.account;
  if (isAdmin(account) || account?.scopes.includes(SECRETS_SCOPE)) return;
  throw errors.Forbidden(
    ctx.service,
    `reading secrets in clear needs an admin of micro or scope ${SECRETS_SCOPE}; account ${account?.id ?? '?'} has ${JSON.stringify(account?.scopes ?? [])} (without secrets: true they read as ••••••)`,
  );
}
