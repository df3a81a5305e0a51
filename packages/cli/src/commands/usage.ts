import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { createClient } from '@micro/sdk';
import { USAGE_LIMITS, usageService } from '@micro/platform/client';
import { connect } from '../connect.js';
import type { CliContext } from '../context.js';
import { CliError, formatTable } from '../output.js';
import { count, quotaTable, usageFilter, usageHeading, usageTable, type UsageFlags } from './usage-format.js';

/**
 * `micro usage`: the metered calls of the namespace (the usage service): calls, charges and
 * free quota left, per API and endpoint, per day or per API key; `--csv` the calls themselves.
 *
 *   micro usage [--period 2026-01 | --from 2026-01-01 --to 2026-01-15] [--by endpoint|day|key]
 *               [--service s] [--endpoint e] [--key mk_…] [--namespace ns] [-o json]
 *   micro usage --csv [file]        (stdout without a file, or with -)
 */
export function registerUsageCommand(program: Command, ctx: CliContext): void {
  program
    .command('usage')
    .description('calls, charges and free quota left of priced APIs, per endpoint, day or API key; --csv exports the calls')
    .option('--period <YYYY-MM>', 'a month, UTC (default the current one)')
    .option('--from <YYYY-MM-DD>', 'first day, inclusive (with --to; instead of --period)')
    .option('--to <YYYY-MM-DD>', 'last day, inclusive (at most 366 days after --from)')
    .option('--by <what>', 'rows per endpoint (default), per endpoint and day, or per endpoint and API key: endpoint, day or key')
    .option('--service <service>', 'only this API')
    .option('--endpoint <endpoint>', 'only this endpoint')
    .option('--key <id>', 'only the calls made with this API key (mk_…)')
    .option('--namespace <namespace>', "another namespace than the account's (admins of micro)")
    .option('--csv [file]', `write the calls as CSV (at most ${count(USAGE_LIMITS.csvRows)}) to a file, or to stdout without one or with -`)
    .option('-o, --output <format>', 'text or json (the whole usage.Read answer)')
    .action(async (opts: UsageFlags & { csv?: string | true; output?: string }) => {
      const { by, ...filter } = usageFilter(opts);
      const conn = connect(ctx.home, opts.namespace);
      const api = createClient(usageService, conn.platform);
      const out = ctx.printer(opts.output);
      try {
        if (opts.csv !== undefined) {
          const res = await api.Export(filter);
          if (opts.csv === true || opts.csv === '-') ctx.io.stdout.write(res.csv.endsWith('\n') ? res.csv : `${res.csv}\n`);
          else {
            writeFileSync(opts.csv, res.csv, { mode: 0o600 });
            out.warn(`wrote ${opts.csv} (${res.filename})`);
          }
          if (res.truncated) out.warn(`only the first ${count(USAGE_LIMITS.csvRows)} calls: more matched; narrow the filter (--from/--to, --service, --endpoint, --key)`);
          return;
        }
        const read = await api.Read({ ...filter, by });
        if (out.json) return out.value(read);
        out.line(usageHeading(read));
        out.line();
        const calls = usageTable(read, by);
        out.line(formatTable(calls.headers, calls.rows).trimEnd());
        if (read.quotas.length > 0) {
          out.line();
          out.line('free quotas this month:');
          const quotas = quotaTable(read);
          out.line(formatTable(quotas.headers, quotas.rows).trimEnd());
        }
      } catch (err) {
        if (err instanceof CliError) throw err;
        throw conn.explain(err, 'usage');
      }
    });
}
