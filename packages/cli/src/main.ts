import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { SERVICE_NAME } from '@micro/sdk';
import { registerCallCommands, runDynamic } from './commands/call.js';
import { registerEnvCommands } from './commands/env.js';
import { registerNewCommand } from './commands/new.js';
import { registerRuntimeCommands } from './commands/runtime.js';
import { registerServerCommand } from './commands/server.js';
import { registerStoreCommands } from './commands/store.js';
import { registerConfigCommands } from './commands/config.js';
import { registerSyncCommands } from './commands/sync.js';
import { registerEventsCommands } from './commands/events.js';
import { registerAuthCommands } from './commands/auth.js';
import { registerUserCommands } from './commands/user.js';
import { registerStatsCommand } from './commands/stats.js';
import { registerQuotaCommand } from './commands/quota.js';
import { registerTraceCommand } from './commands/trace.js';
import { registerSignupCommands } from './commands/signup.js';
import { registerPlatformCommands } from './commands/platform.js';
import { registerTeamCommands } from './commands/team.js';
import { registerInvoicesCommands } from './commands/invoices.js';
import { registerBalanceCommands } from './commands/balance.js';
import { registerUsageCommand } from './commands/usage.js';
import { registerPlanCommands } from './commands/plan.js';
import { CliContext } from './context.js';
import { explainError } from './connect.js';
import { CliError } from './output.js';
import { suggest } from './flags.js';

/**
 * The `micro` command: the commands of Go micro v3 (server, run, update, kill, status,
 * logs, services, call, stream, new, env, login, logout) and, for any other first word,
 * a dynamic command that calls the service of that name.
 */

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export function buildProgram(ctx: CliContext): Command {
  const program = new Command('micro')
    .description('Micro for TypeScript: build, run and call services')
    .version(VERSION, '-v, --version')
    .usage('<command> [options]  |  micro <service> <endpoint> [--field=value ...]')
    .configureOutput({
      writeOut: (s) => ctx.io.stdout.write(s),
      writeErr: (s) => ctx.io.stderr.write(s),
    })
    .showSuggestionAfterError(true)
    .showHelpAfterError('(add --help for usage)')
    // throw instead of exiting; subcommands made below inherit this and the output
    .exitOverride();
  registerServerCommand(program, ctx);
  registerRuntimeCommands(program, ctx);
  registerCallCommands(program, ctx);
  registerNewCommand(program, ctx);
  registerEnvCommands(program, ctx);
  registerStoreCommands(program, ctx);
  registerConfigCommands(program, ctx);
  registerSyncCommands(program, ctx);
  registerEventsCommands(program, ctx);
  registerAuthCommands(program, ctx);
  registerUserCommands(program, ctx);
  registerStatsCommand(program, ctx);
  registerQuotaCommand(program, ctx);
  registerTraceCommand(program, ctx);
  registerSignupCommands(program, ctx);
  registerPlatformCommands(program, ctx);
  registerTeamCommands(program, ctx);
  registerInvoicesCommands(program, ctx);
  registerBalanceCommands(program, ctx);
  registerUsageCommand(program, ctx);
  registerPlanCommands(program, ctx);
  program.addHelpText(
    'after',
    `
Call a running service with flags typed from its schema:
  micro <service> --help                       its endpoints and their fields
  micro helloworld call --name=Alice           nested fields: --outer_inner=value

Every command that prints data takes --output json. The environment (server and
account) is chosen with \`micro env\`; MICRO_HOME (default ~/.micro) holds the config.`,
  );
  return program;
}

/** Runs `micro` with these arguments (without node and the script); returns the exit code. */
export async function main(argv: readonly string[], ctx: CliContext = new CliContext()): Promise<number> {
  const program = buildProgram(ctx);
  const names = program.commands.flatMap((c) => [c.name(), ...c.aliases()]);
  try {
    const first = argv[0];
    if (first !== undefined && !first.startsWith('-') && first !== 'help' && !names.includes(first)) {
      if (!SERVICE_NAME.test(first)) throw unknownCommand(first, names);
      await runDynamic(ctx, argv, names);
      return 0;
    }
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander printed its message already; help and --version end with code 0
      return err.exitCode;
    }
    const cli = err instanceof CliError ? err : explainError(err, { env: { name: '?', credentialSource: 'none' } });
    if (cli.message) ctx.io.stderr.write(`${cli.message}\n`);
    return cli.exitCode;
  }
}

function unknownCommand(word: string, names: readonly string[]): CliError {
  const close = suggest(word, names);
  return new CliError(`error: unknown command '${word}'${close ? ` (Did you mean ${close}?)` : ''} — see \`micro --help\``);
}
