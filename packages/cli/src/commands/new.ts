import { existsSync, lstatSync, mkdirSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { SERVICE_NAME } from '@micro/sdk';
import type { CliContext } from '../context.js';
import { CliError, UsageError, formatTable } from '../output.js';
import { scaffoldFiles } from '../templates.js';

/**
 * `micro new <name>`: a service that builds, passes its test and runs with
 * `micro run ./<name>` as it is.
 */
export function registerNewCommand(program: Command, ctx: CliContext): void {
  program
    .command('new <name>')
    .description('scaffold a service: definition, handlers, a passing test and a README')
    .option('--dir <dir>', 'the folder to create (default ./<name>)')
    .action((name: string, opts: { dir?: string }) => {
      const out = ctx.printer();
      const result = scaffold(name, opts.dir);
      const shown = relative(process.cwd(), result.dir) || '.';
      const runPath = shown.startsWith('.') || shown.startsWith('/') ? shown : `./${shown}`;
      out.line(`created ${shown}/ with ${result.files.join(', ')}`);
      if (result.linked.length) out.line(`linked ${result.linked.join(', ')} of this micro installation into node_modules (nothing to npm install)`);
      for (const missing of result.missing) out.warn(`warning: ${missing} is not installed with micro — run \`npm install --save-dev ${missing}\` in ${shown} before \`npm test\``);
      out.line('');
      out.line('Next:');
      const next = [
        [`cd ${shown} && npm test`, 'build it and run its test'],
        [`micro run ${runPath}`, 'run it (with `micro server` running)'],
        [`micro ${name} call --name=Alice`, 'call it'],
      ];
      for (const line of formatTable(['', ''], next, 200).split('\n').slice(1).filter(Boolean)) out.line(`  ${line}`);
    });
}

export interface ScaffoldResult {
  dir: string;
  files: string[];
  /** packages linked into node_modules from this installation */
  linked: string[];
  /** packages the test needs that this installation does not have */
  missing: string[];
}

/** Writes the files of a new service into `dir` (default ./<name>), refusing to overwrite anything. */
export function scaffold(name: string, dir?: string, options: { link?: boolean } = {}): ScaffoldResult {
  if (typeof name !== 'string' || name.length > 128 || !SERVICE_NAME.test(name)) {
    throw new UsageError(`invalid service name "${name}": use lower-case letters and digits, with ".", "-" or "_" between them, starting with a letter (e.g. greeter, user-profile)`);
  }
  const target = resolve(dir ?? name);
  if (existsSync(target)) {
    if (!statSync(target).isDirectory()) throw new CliError(`${target} exists and is not a folder — choose another name, or a folder with --dir`);
    if (readdirSync(target).length > 0) throw new CliError(`${target} exists and is not empty — choose another name, or an empty folder with --dir`);
  }
  const files = scaffoldFiles({ name, ident: identifier(name) });
  for (const [file, content] of Object.entries(files)) {
    const path = join(target, file);
    mkdirSync(dirname(path), { recursive: true });
    // 'wx': never overwrite, even if something appeared since the check above
    writeFileSync(path, content, { flag: 'wx' });
  }
  const { linked, missing } = options.link === false ? { linked: [], missing: [] } : linkToolchain(target);
  return { dir: target, files: Object.keys(files).filter((f) => !f.startsWith('.')), linked, missing };
}

const require = createRequire(import.meta.url);

/**
 * Links @micro/sdk, typescript and @types/node of this installation into the new
 * service's node_modules, as the runtime does when it builds: the SDK is not on npm,
 * and the test should pass without a download. `micro run` copies the folder without
 * node_modules, so the links never reach a build.
 */
function linkToolchain(dir: string): { linked: string[]; missing: string[] } {
  const linked: string[] = [];
  const missing: string[] = [];
  const packages: [string, string | undefined][] = [
    ['@micro/sdk', packageRoot('@micro/sdk')],
    ['typescript', packageRoot('typescript')],
    ['@types/node', packageRoot('@types/node')],
  ];
  for (const [name, root] of packages) {
    if (!root) {
      if (name !== '@micro/sdk') missing.push(name);
      continue;
    }
    const at = join(dir, 'node_modules', name);
    mkdirSync(dirname(at), { recursive: true });
    symlinkSync(root, at, 'dir');
    linked.push(name);
  }
  // what npm install would do for typescript: its command on the scripts' PATH
  if (linked.includes('typescript')) {
    const bin = join(dir, 'node_modules', '.bin');
    mkdirSync(bin, { recursive: true });
    symlinkSync(join('..', 'typescript', 'bin', 'tsc'), join(bin, 'tsc'));
  }
  return { linked, missing };
}

/** The folder holding a package's package.json, or undefined when it is not installed. */
function packageRoot(name: string): string | undefined {
  try {
    return dirname(require.resolve(`${name}/package.json`));
  } catch {
    // packages whose exports hide package.json (the SDK): walk up from the entry
    try {
      let dir = dirname(fileURLToPath(import.meta.resolve(name)));
      while (!existsSync(join(dir, 'package.json')) || lstatSync(join(dir, 'package.json')).isDirectory()) {
        const up = dirname(dir);
        if (up === dir) return undefined;
        dir = up;
      }
      return dir;
    } catch {
      return undefined;
    }
  }
}

const TAKEN = new Set([
  // what the generated files import or declare
  'handlers', 'run', 'test', 'assert', 'z', 'defineService', 'endpoint', 'serverStream', 'Service', 'MemoryRegistry', 'createClient', 'isMicroError', 'Handlers',
  // JavaScript's reserved words that a service name can spell
  'break', 'case', 'catch', 'class', 'const', 'continue', 'debugger', 'default', 'delete', 'do', 'else', 'enum', 'export', 'extends', 'false', 'finally',
  'for', 'function', 'if', 'import', 'in', 'instanceof', 'new', 'null', 'return', 'super', 'switch', 'this', 'throw', 'true', 'try', 'typeof', 'var',
  'void', 'while', 'with', 'yield', 'let', 'static', 'implements', 'interface', 'package', 'private', 'protected', 'public', 'await', 'arguments', 'eval',
]);

/** The definition's identifier: `user-profile` → `userProfile`, `new` → `newService`. */
export function identifier(name: string): string {
  const camel = name.replace(/[._-]+([a-z0-9])/g, (_, c: string) => c.toUpperCase());
  return TAKEN.has(camel) ? `${camel}Service` : camel;
}
