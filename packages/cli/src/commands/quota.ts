import type { Command } from 'commander';
import { createClient, errors, quotaService, QUOTA_LIMIT_KEYS, type QuotaReadResponse } from '@micro/sdk';
import { connect } from '../connect.js';
import type { CliContext } from '../context.js';
import type { Printer } from '../output.js';

/**
 * `micro quota`: the limits of a namespace and what it uses of them (quota.Read);
 * `micro quota set <namespace> key=value ...` changes them (quota.Set: admins of micro any value;
 * a namespace's owners and admins up to their plan's limits, when the plan has per-namespace quotas).
 *
 *   micro quota [--namespace N] [-o json]
 *   micro quota set acme storeBytes=1048576 apiKeys=10 [-o json]
 */
export function registerQuotaCommand(program: Command, ctx: CliContext): void {
  const quota = program
    .command('quota')
    .description('limits of the namespace and its usage; `micro quota set` changes them (staff; owners and admins of the namespace within their plan)')
    .option('--namespace <namespace>', "another namespace than the account's (admins)")
    .option('-o, --output <format>', 'text or json (the whole quota.Read answer)')
    .action(async (opts: { namespace?: string; output?: string }) => {
      const conn = connect(ctx.home, opts.namespace);
      const answer = await createClient(quotaService, conn.platform)
        .Read({ namespace: opts.namespace })
        .catch((err: unknown) => {
          throw conn.explain(err, 'quota');
        });
      show(ctx.printer(opts.output), answer);
    });
  quota
    .command('set <namespace> <limits...>')
    .description(`set limits of a namespace (staff: any value; its owners and admins: up to their plan's, on plans with per-namespace quotas): key=value for ${QUOTA_LIMIT_KEYS.join(', ')}`)
    // -o is the parent's option (commander gives it to `quota` wherever it is written)
    .action(async (namespace: string, pairs: string[]) => {
      const opts = quota.opts<{ output?: string }>();
      const limits = parsePairs(pairs);
      const conn = connect(ctx.home, namespace);
      const answer = await createClient(quotaService, conn.platform)
        .Set({ namespace, limits })
        .catch((err: unknown) => {
          throw conn.explain(err, 'quota');
        });
      show(ctx.printer(opts.output), answer);
    });
}

/** key=value pairs as limits; the values are sent as numbers, checked (whole, >= 0, known key) by the service. */
export function parsePairs(pairs: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const pair of pairs) {
    const m = /^([A-Za-z]+)=(.+)$/.exec(pair);
    if (!m) throw errors.BadRequest('quota', `"${pair.slice(0, 64)}" is not key=value, e.g. storeBytes=1048576`);
    const n = Number(m[2]);
    if (m[2]!.trim() === '' || Number.isNaN(n)) throw errors.BadRequest('quota', `${m[1]}: "${m[2]!.slice(0, 64)}" is not a number`);
    out[m[1]!] = n;
  }
  return out;
}

function show(out: Printer, q: QuotaReadResponse): void {
  if (out.json) {
    out.value(q);
    return;
  }
  out.line(`namespace ${q.namespace}`);
  const rows = QUOTA_LIMIT_KEYS.map((key) => {
    const limit = q.limits[key];
    const used = q.usage[key];
    return [key, used === undefined ? '-' : String(used), limit === null || limit === undefined ? 'unlimited' : String(limit), q.custom.includes(key) ? 'set' : 'default'];
  });
  out.table(['LIMIT', 'USED', 'OF', 'SOURCE'], rows, q);
}
