import type { Command } from 'commander';
// WIRING: once @micro/sdk exports the sync module, import RemoteSync from '@micro/sdk'.
import { RemoteSync, SYNC_LIMITS } from '@micro/sdk';
import { connect } from '../connect.js';
import type { CliContext } from '../context.js';
import { UsageError, formatDuration } from '../output.js';

/** `micro sync locks`: the locks held now in a namespace (who holds them, until when). */
export function registerSyncCommands(program: Command, ctx: CliContext): void {
  const sync = program.command('sync').description('distributed locks and leader elections');
  sync
    .command('locks')
    .description('the locks held now, by name: fencing token, owner, time left on the lease')
    .option('--prefix <prefix>', 'only locks whose name starts with this')
    .option('--limit <n>', `at most this many (default ${SYNC_LIMITS.listDefault}, at most ${SYNC_LIMITS.listMax})`)
    .option('--namespace <namespace>', "another namespace than the account's (admins)")
    .option('-o, --output <format>', 'text or json')
    .action(async (opts: { prefix?: string; limit?: string; namespace?: string; output?: string }) => {
      const out = ctx.printer(opts.output);
      const limit = opts.limit === undefined ? undefined : parseLimit(opts.limit);
      const conn = connect(ctx.home, opts.namespace);
      const locks = await new RemoteSync(conn.platform).locks({ namespace: opts.namespace, prefix: opts.prefix, limit }).catch((err: unknown) => {
        throw conn.explain(err);
      });
      if (!out.json && locks.length === 0) {
        out.info(`no locks are held in namespace ${conn.namespace}`);
        return;
      }
      const now = Date.now();
      out.table(
        LOCK_HEADERS,
        locks.map((l) => [l.name, String(l.token), l.owner ?? '-', formatDuration(l.expiresAt - now)]),
        locks,
      );
    });
}

export const LOCK_HEADERS = ['NAME', 'TOKEN', 'OWNER', 'EXPIRES IN'];

export function parseLimit(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < 1 || n > SYNC_LIMITS.listMax) throw new UsageError(`--limit must be a whole number from 1 to ${SYNC_LIMITS.listMax}, not "${value}"`);
  return n;
}
