import { type Handlers, type RuntimeProgress, type RuntimeService, runtime } from '@micro/sdk';
import type { ProgressFn } from './local.js';
import type { Runtime } from './runtime.js';
import { namespaceFor as guarded, isAdmin } from '../auth/guard.js';

/**
 * The runtime service's handlers (the contract is `runtime` in the SDK). Create and
 * Update stream their progress and end with a `done` message carrying the service.
 *
 * An operation goes on when its caller goes away (Ctrl-C on `micro run` does not leave a
 * half-built service behind); its outcome is in `micro status` and `micro logs`.
 *
 * Namespaces: a call without one acts on the caller's namespace (its account's issuer);
 * only an admin of `micro` reaches another (the rule of every core service, auth/guard.ts).
 *
 * Sources: only an admin of `micro` is trusted with paths of the server's machine and
 * any git URL; everyone else uploads or gives a public https:// or ssh:// URL (source.ts).
 * An upload is read from the namespace the call acts in, so never from another tenant's.
 */
export function runtimeHandlers(rt: Runtime): Handlers<typeof runtime> {
  return {
    Create: (req, ctx) => progressStream((push) => rt.create({ ...req, namespace: guarded(ctx, req.namespace), trusted: isAdmin(ctx.account) }, push), 'is running'),
    Read: (req, ctx) => rt.read({ ...req, namespace: guarded(ctx, req.namespace) }),
    Update: (req, ctx) => progressStream((push) => rt.update({ ...req, namespace: guarded(ctx, req.namespace), trusted: isAdmin(ctx.account) }, push), 'is updated'),
    Delete: async (req, ctx) => {
      await rt.delete({ ...req, namespace: guarded(ctx, req.namespace) });
      return {};
    },
    async *Logs(req, ctx) {
      yield* rt.logs({ ...req, namespace: guarded(ctx, req.namespace) }, ctx.signal);
    },
  };
}

/** Turns an operation reporting progress through a callback into the stream of its progress. */
async function* progressStream(run: (push: ProgressFn) => Promise<RuntimeService>, outcome: string): AsyncGenerator<RuntimeProgress> {
  const queue: RuntimeProgress[] = [];
  let wake: (() => void) | undefined;
  let finished = false;
  let result: RuntimeService | undefined;
  let failure: unknown;
  void run((p) => {
    queue.push(p);
    wake?.();
  })
    .then(
      (service) => (result = service),
      (err: unknown) => (failure = err),
    )
    .finally(() => {
      finished = true;
      wake?.();
    });
  for (;;) {
    const next = queue.shift();
    if (next) {
      yield next;
      continue;
    }
    if (finished) break;
    await new Promise<void>((resolve) => (wake = resolve));
    wake = undefined;
  }
  if (failure !== undefined) throw failure;
  const service = result as RuntimeService;
  yield { step: 'done', message: `${service.name} ${outcome} (${service.instances.length} instance${service.instances.length === 1 ? '' : 's'})`, service };
}
