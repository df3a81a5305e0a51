import type { Command } from 'commander';
import { MicroError } from '@micro/sdk';
import { displayAddress, normalizeAddress } from '../config.js';
import type { CliContext } from '../context.js';
import { CliError } from '../output.js';

/**
 * `micro server`: every core service in this process, in the foreground, until Ctrl-C
 * or SIGTERM. One per MICRO_HOME: a second one is refused and the first keeps serving.
 */
export function registerServerCommand(program: Command, ctx: CliContext): void {
  program
    .command('server')
    .description('run micro server in the foreground: registry, auth, broker and runtime for this MICRO_HOME')
    .option('--address <address>', 'where to listen for RPC (default MICRO_SERVER_ADDRESS or tcp://127.0.0.1:8081; tcp://127.0.0.1:0 picks a free port)')
    .option('--gateway <address>', 'where the HTTP API gateway listens (default MICRO_GATEWAY_ADDRESS or 127.0.0.1:8080; 127.0.0.1:0 picks a free port; "false" turns it off)')
    .action(async (opts: { address?: string; gateway?: string }) => {
      // handlers first: a signal that came before them would kill the process with the
      // default action once the server has started, leaving server.json and the lock behind
      const stopped = new Promise<NodeJS.Signals>((resolve) => {
        process.once('SIGINT', () => resolve('SIGINT'));
        process.once('SIGTERM', () => resolve('SIGTERM'));
      });
      const out = ctx.printer();
      const address = opts.address === undefined ? undefined : normalizeAddress(opts.address);
      // loaded here, not at the top: every other command starts faster without the server
      const { MicroServer } = await import('@micro/server');
      const { platformCoreServices } = await import('@micro/platform');
      const { valueAddServices } = await import('../services.js');
      const gateway = opts.gateway === undefined ? undefined : opts.gateway === 'false' ? (false as const) : opts.gateway;
      const server = new MicroServer({ home: ctx.home.dir, address, gateway, coreServices: platformCoreServices(), services: await valueAddServices() });
      try {
        await server.start();
      } catch (err) {
        throw startError(err, address);
      }
      const bound = server.address;
      out.line(`micro server is listening on ${bound} (RPC)`);
      if (server.gatewayUrl) out.line(`API gateway on ${server.gatewayUrl}`);
      out.line(`  home:  ${ctx.home.dir}`);
      if (server.gatewayUrl && !isLoopback(server.gatewayUrl.replace(/^http:/, 'tcp:'))) out.warn(`warning: the API gateway ${server.gatewayUrl} is reachable from other machines`);
      if (!isLoopback(bound)) out.warn(`warning: ${displayAddress(bound)} is reachable from other machines; every call still needs credentials`);
      out.line('Use it from another terminal: micro services, micro run ./<folder>. Stop it with Ctrl-C.');

      const signal = await stopped;
      out.line(`${signal}: stopping micro server…`);
      await server.stop();
      out.line('micro server stopped');
    });
}

function startError(err: unknown, address: string | undefined): CliError {
  if (err instanceof MicroError) {
    // 409: this home has a server already; its detail says which and what to do
    if (err.code === 409 || err.id === 'gateway') return new CliError(err.detail);
    if (err.code === 503) return new CliError(`${err.detail} — choose another address with --address (tcp://127.0.0.1:0 picks a free port)`);
    return new CliError(`micro server could not start: ${err.detail}`);
  }
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'EADDRINUSE') return new CliError(`${address ?? 'the address'} is in use — choose another address with --address (tcp://127.0.0.1:0 picks a free port)`);
  if (e?.code === 'EACCES') return new CliError(`micro server could not start: ${e.message} — check the permissions of MICRO_HOME and of the address`);
  return new CliError(`micro server could not start: ${e instanceof Error ? e.message : String(err)}`);
}

function isLoopback(address: string): boolean {
  if (address.startsWith('unix://')) return true;
  const host = displayAddress(address).replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}
