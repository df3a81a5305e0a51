import type { Command } from 'commander';
import { createClient, statsService, type StatsReadResponse } from '@micro/sdk';
import { connect } from '../connect.js';
import type { CliContext } from '../context.js';
import type { Printer } from '../output.js';

/**
 * `micro stats`: calls, errors and latency per endpoint, instances and consumer lag of a
 * namespace — what `GET /metrics` serves to Prometheus, as tables (stats.Read).
 *
 *   micro stats [--namespace N] [-o json]
 */
export function registerStatsCommand(program: Command, ctx: CliContext): void {
  program
    .command('stats')
    .description('calls, errors and latency per endpoint, instances and consumer lag of the namespace')
    .option('--namespace <namespace>', "another namespace than the account's (admins)")
    .option('-o, --output <format>', 'text or json (the whole stats.Read answer)')
    .action(async (opts: { namespace?: string; output?: string }) => {
      const out = ctx.printer(opts.output);
      const conn = connect(ctx.home, opts.namespace);
      const stats = await createClient(statsService, conn.platform)
        .Read({ namespace: opts.namespace })
        .catch((err: unknown) => {
          throw conn.explain(err, 'stats');
        });
      if (out.json) {
        out.value(stats);
        return;
      }
      printStats(out, stats);
    });
}

/** The tables of `micro stats` (exported for its tests). */
export function printStats(out: Printer, s: StatsReadResponse): void {
  out.line(`namespace ${s.namespace}`);
  const endpoints = (rows: StatsReadResponse['endpoints']) => rows.map((e) => [e.service, e.endpoint, String(e.calls), String(e.errors), e.meanMs.toFixed(2), String(e.instances)]);
  if (s.endpoints.length > 0) {
    out.line();
    out.table(['SERVICE', 'ENDPOINT', 'CALLS', 'ERRORS', 'MEAN MS', 'INSTANCES'], endpoints(s.endpoints), s.endpoints);
  } else out.info('no calls served yet');
  if (s.gateway.length > 0) {
    out.line();
    out.line('through the gateway:');
    out.table(['SERVICE', 'ENDPOINT', 'CALLS', 'ERRORS', 'MEAN MS', 'INSTANCES'], endpoints(s.gateway), s.gateway);
  }
  if (s.instances.length > 0) {
    out.line();
    out.table(['SERVICE', 'INSTANCE', 'MEMORY', 'RESTARTS'], s.instances.map((i) => [i.service, i.instance, i.memoryBytes === undefined ? '-' : mib(i.memoryBytes), i.restarts === undefined ? '-' : String(i.restarts)]), s.instances);
  }
  if (s.groups.length > 0) {
    out.line();
    out.table(['TOPIC', 'GROUP', 'PENDING', 'IN FLIGHT'], s.groups.map((g) => [g.topic, g.group, String(g.pending), String(g.inflight)]), s.groups);
  }
  if (s.unreachable.length > 0) out.warn(`did not answer Debug.Metrics: ${s.unreachable.join(', ')}`);
  if (s.dropped > 0) out.warn(`${s.dropped} malformed or excess metrics left out`);
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
