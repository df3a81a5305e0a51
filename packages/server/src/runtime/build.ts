import { closeSync, constants, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, rm, symlink, lstat, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { delimiter, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errors } from '@micro/sdk';
import { runCommand, type CommandOptions, type CommandResult } from './exec.js';

/**
 * Turning fetched source into something to run: install dependencies, make @micro/sdk
 * resolvable, compile, find the entry file. Everything happens inside the build folder.
 */

const ERROR_ID = 'runtime';
const SDK_PACKAGE = '@micro/sdk';
/** What the runtime provides itself, so a service depending only on these needs no npm install. */
const PROVIDED = new Set([SDK_PACKAGE]);
export const ENTRY_CANDIDATES = ['dist/main.js', 'dist/index.js', 'main.js', 'index.js'];

export interface PackageJson {
  name?: string;
  version?: string;
  main?: string;
  scripts?: Record<string, string>;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

export function readPackage(dir: string): PackageJson | undefined {
  const file = join(dir, 'package.json');
  if (!existsSync(file)) return undefined;
  try {
    // a symlink planted in a tenant's source must not make the server read another file
    const pkg: unknown = JSON.parse(readNoFollow(file));
    if (!pkg || typeof pkg !== 'object' || Array.isArray(pkg)) throw new Error('not an object');
    return pkg as PackageJson;
  } catch (err) {
    throw errors.BadRequest(ERROR_ID, `package.json is not valid: ${(err as Error).message}`);
  }
}

/** A file's text, refusing a symlink (ELOOP). */
function readNoFollow(file: string): string {
  const fd = openSync(file, NOFOLLOW_READ);
  try {
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/** The service's name: as asked, else package.json's name without its @scope/, else the folder's. */
export function serviceName(requested: string | undefined, pkg: PackageJson | undefined, folder: string): string {
  if (requested) return checkServiceName(requested);
  const fromPkg = typeof pkg?.name === 'string' ? pkg.name.replace(/^@[^/]+\//, '') : undefined;
  return checkServiceName(fromPkg || folder, fromPkg ? ' (from package.json; or give a name)' : ' (from the folder name; or give a name)');
}

/** The NAME rule of the runtime contract; names are also file names (logs, builds). */
export function checkServiceName(name: string, from = ''): string {
  if (!SERVICE_NAME_RE.test(name) || name.length > 128) {
    throw errors.BadRequest(ERROR_ID, `"${name}"${from} is not a valid service name: use lower-case letters, digits, ".", "-" or "_", starting with a letter`);
  }
  return name;
}
// the NAME rule of the runtime contract (packages/sdk/src/runtime/definition.ts)
const SERVICE_NAME_RE = /^[a-z][a-z0-9]*([._-][a-z0-9]+)*$/;

export interface BuildOptions {
  /** root of the SDK package, linked as node_modules/@micro/sdk */
  sdkPath: string;
  /** the folder the source came from, to resolve tsconfig paths that point outside it */
  origin?: string;
  env: NodeJS.ProcessEnv;
  installTimeout: number;
  buildTimeout: number;
  signal?: AbortSignal;
  progress: (step: 'install' | 'build', message: string) => void;
  /** runs the steps sandboxed (tenant namespaces); default: as the server */
  sandbox?: BuildSandbox;
}

/** How build steps run in the sandbox of the service's namespace. */
export interface BuildSandbox {
  /** the command running argv sandboxed; `network` only for npm install (it needs the registry) */
  wrap(argv: string[], network: boolean, env: NodeJS.ProcessEnv): { command: string; args: string[]; env: NodeJS.ProcessEnv; input: Buffer; verdict(): string | undefined; dispose(): void };
}

const NOFOLLOW_READ = constants.O_RDONLY | constants.O_NOFOLLOW;
const NOFOLLOW_WRITE = constants.O_WRONLY | constants.O_TRUNC | constants.O_NOFOLLOW;

/**
 * The links of linkProvided, made as the tenant's uid inside its sandbox: the server
 * never follows a path the tenant's npm may have turned into a symlink.
 */
const LINK_SCRIPT = 'mkdir -p node_modules/@micro node_modules/@types && rm -rf node_modules/@micro/sdk && ln -s "$1" node_modules/@micro/sdk && { [ -z "$2" ] || [ -e node_modules/@types/node ] || [ -L node_modules/@types/node ] || ln -s "$2" node_modules/@types/node; }';

/** npm scripts of the package itself that `npm install` would have run, in its order. */
const LIFECYCLE = ['preinstall', 'install', 'postinstall', 'prepare'];

/** Installs, links, compiles; returns the entry file (relative to dir). Throws BadRequest with the tool's output on failure. */
export async function buildService(dir: string, pkg: PackageJson | undefined, options: BuildOptions): Promise<string> {
  if (options.origin) await relocateTsconfig(dir, options.origin);
  const run = (step: 'install' | 'build', command: string, args: string[], timeout: number, network = false) =>
    options.sandbox
      ? sandboxed(options.sandbox, [command, ...args], network, dir, { env: options.env, timeout, signal: options.signal, onLine: (line) => options.progress(step, line) })
      : runCommand(command, args, { cwd: dir, env: options.env, timeout, signal: options.signal, onLine: (line) => options.progress(step, line) });

  const install = pkg !== undefined && needsInstall(pkg);
  if (install) {
    options.progress('install', 'npm install');
    // sandboxed, npm fetches with the network but runs no script; the scripts run after,
    // without network
    const args = ['install', '--no-audit', '--no-fund', '--include=dev', '--loglevel=error', ...(options.sandbox ? ['--ignore-scripts'] : [])];
    const res = await withoutProvided(dir, () => run('install', 'npm', args, options.installTimeout, true));
    if (!res.ok) throw failure('npm install', res);
  }
  if (options.sandbox) {
    const res = await run('install', 'sh', ['-c', LINK_SCRIPT, 'link', options.sdkPath, nodeTypesPath() ?? ''], options.installTimeout);
    if (!res.ok) throw failure('linking @micro/sdk', res);
  } else {
    await linkProvided(dir, options.sdkPath);
  }
  if (install && options.sandbox) {
    options.progress('install', 'npm rebuild');
    const res = await run('install', 'npm', ['rebuild', '--loglevel=error'], options.installTimeout);
    if (!res.ok) throw failure('npm rebuild', res);
    for (const script of LIFECYCLE.filter((s) => typeof pkg.scripts?.[s] === 'string')) {
      options.progress('install', `npm run ${script}`);
      const ran = await run('install', 'npm', ['run', script, '--silent'], options.installTimeout);
      if (!ran.ok) throw failure(`npm run ${script}`, ran);
    }
  }

  if (pkg?.scripts?.build) {
    options.progress('build', 'npm run build');
    const res = await run('build', 'npm', ['run', 'build', '--silent'], options.buildTimeout);
    if (!res.ok) throw failure('npm run build', res);
  } else if (existsSync(join(dir, 'tsconfig.json'))) {
    options.progress('build', 'tsc -p .');
    const res = await run('build', process.execPath, [tscPath(), '-p', '.', '--pretty', 'false'], options.buildTimeout);
    if (!res.ok) throw failure('tsc', res);
  }
  return findEntry(dir, pkg);
}

async function sandboxed(sandbox: BuildSandbox, argv: string[], network: boolean, dir: string, options: Omit<CommandOptions, 'cwd' | 'input'>): Promise<CommandResult> {
  const cmd = sandbox.wrap(argv, network, options.env);
  try {
    const res = await runCommand(cmd.command, cmd.args, { ...options, cwd: dir, env: cmd.env, input: cmd.input });
    const verdict = cmd.verdict();
    return verdict ? { ...res, ok: false, reason: verdict } : res;
  } finally {
    cmd.dispose();
  }
}

function needsInstall(pkg: PackageJson): boolean {
  const deps = [pkg.dependencies, pkg.devDependencies, pkg.optionalDependencies].flatMap((d) => (d && typeof d === 'object' ? Object.keys(d) : []));
  return deps.some((d) => !PROVIDED.has(d));
}

function failure(what: string, res: CommandResult): Error {
  const output = res.output || '(no output)';
  return Object.assign(errors.BadRequest(ERROR_ID, `${what} failed (${res.reason}):\n${output}`), { output });
}

/** The output of a failed build step, for RuntimeService.build.error. */
export function buildOutput(err: unknown): string | undefined {
  const output = (err as { output?: unknown }).output;
  return typeof output === 'string' ? output : undefined;
}

/**
 * npm cannot install @micro/sdk: it is not published, the runtime links its own. So npm
 * sees a package.json without it (restored afterwards), and the link is made after npm,
 * which would otherwise remove it as extraneous.
 */
async function withoutProvided(dir: string, install: () => Promise<CommandResult>): Promise<CommandResult> {
  const file = join(dir, 'package.json');
  // never through a symlink: the tenant's npm may have replaced the file by one meanwhile
  const original = await readFile(file, { encoding: 'utf8', flag: NOFOLLOW_READ });
  const pkg = JSON.parse(original) as Record<string, Record<string, string> | undefined>;
  for (const field of ['dependencies', 'devDependencies', 'optionalDependencies', 'peerDependencies']) {
    const deps = pkg[field];
    if (deps && typeof deps === 'object') for (const name of PROVIDED) delete deps[name];
  }
  await writeFile(file, JSON.stringify(pkg, null, 2), { flag: NOFOLLOW_WRITE });
  try {
    return await install();
  } finally {
    await writeFile(file, original, { flag: NOFOLLOW_WRITE });
  }
}

/**
 * Links node_modules/@micro/sdk to the server's own SDK (a service must speak the
 * server's protocol), and @types/node to the server's when the service brings none, so
 * that a service without devDependencies still compiles against Node's types.
 */
export async function linkProvided(dir: string, sdkPath: string): Promise<void> {
  await link(join(dir, 'node_modules', '@micro', 'sdk'), sdkPath, true);
  const types = nodeTypesPath();
  if (types) await link(join(dir, 'node_modules', '@types', 'node'), types, false);
}

async function link(at: string, target: string, replace: boolean): Promise<void> {
  const exists = await lstat(at).then(
    () => true,
    () => false,
  );
  if (exists && !replace) return;
  if (exists) await rm(at, { recursive: true, force: true });
  await mkdir(dirname(at), { recursive: true });
  await symlink(target, at, 'dir');
}

const require = createRequire(import.meta.url);

/** The TypeScript compiler of the server's installation. */
export function tscPath(): string {
  return require.resolve('typescript/bin/tsc');
}

function nodeTypesPath(): string | undefined {
  try {
    return dirname(require.resolve('@types/node/package.json'));
  } catch {
    return undefined; // a production install of the server may not have it
  }
}

/** The root folder of the SDK package (the one holding its package.json). */
export function defaultSdkPath(): string {
  let dir = dirname(fileURLToPath(import.meta.resolve(SDK_PACKAGE)));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find the root of ${SDK_PACKAGE}`);
    dir = up;
  }
  return dir;
}

/**
 * The environment of build steps: PATH with node, and TypeScript's bin folder last so
 * that `"build": "tsc"` works without the service installing TypeScript (its own, when it
 * has one, comes first through node_modules/.bin).
 */
export function buildPath(path: string | undefined): string {
  const extra = [dirname(process.execPath), dirname(tscPath())];
  return [...(path ? path.split(delimiter) : []), ...extra].join(delimiter);
}

export function findEntry(dir: string, pkg: PackageJson | undefined): string {
  const candidates = typeof pkg?.main === 'string' && pkg.main ? [pkg.main] : ENTRY_CANDIDATES;
  for (const c of candidates) {
    const file = resolve(dir, c);
    if (relative(dir, file).startsWith('..')) throw errors.BadRequest(ERROR_ID, `package.json main "${c}" points outside the service's folder`);
    if (existsSync(file)) return relative(dir, file);
  }
  throw errors.BadRequest(ERROR_ID, `no entry file: looked for ${candidates.join(', ')}${pkg?.main ? ' (package.json main)' : ''} after the build`);
}

/**
 * A copied folder loses what its tsconfig.json points to outside of it (a monorepo's
 * `"extends": "../../tsconfig.base.json"`, project `references`). Such paths, when they
 * exist next to the original folder, are made absolute in the copy.
 */
export async function relocateTsconfig(dir: string, origin: string): Promise<void> {
  const file = join(dir, 'tsconfig.json');
  if (!existsSync(file)) return;
  const text = readFileSync(file, 'utf8');
  if (!/"(extends|references)"/.test(text)) return;
  let config: { extends?: unknown; references?: unknown };
  try {
    config = JSON.parse(stripJsonComments(text)) as typeof config;
  } catch {
    return; // tsc will report it
  }
  let changed = false;
  const fix = (p: unknown): unknown => {
    if (typeof p !== 'string' || !(p.startsWith('./') || p.startsWith('../')) || isAbsolute(p)) return p;
    if (!relative(origin, resolve(origin, p)).startsWith('..')) return p; // inside: copied along
    const abs = resolve(origin, p);
    if (!existsSync(abs)) return p;
    changed = true;
    return abs;
  };
  if (Array.isArray(config.extends)) config.extends = config.extends.map(fix);
  else config.extends = fix(config.extends);
  if (Array.isArray(config.references)) {
    config.references = config.references.map((r: unknown) => (r && typeof r === 'object' && 'path' in r ? { ...r, path: fix((r as { path: unknown }).path) } : r));
  }
  if (changed) writeFileSync(file, JSON.stringify(config, null, 2));
}

/** JSON with comments and trailing commas (tsconfig's dialect) to JSON. */
export function stripJsonComments(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j;
    } else if (c === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') i++;
      out += '\n';
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      i = end === -1 ? text.length : end + 1;
    } else {
      out += c;
    }
  }
  return out.replace(/,(\s*[}\]])/g, '$1');
}
