import { closeSync, constants, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, rm, symlink, lstat, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { delimiter, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errors } from '@micro/sdk';
import { runCommand, type CommandOptions, type CommandResult } from './exec.js';
import { relocateTsconfig } from './tsconfig.js';

/**
 * Turning fetched source into something to run: install dependencies, make @micro/sdk
 * resolvable, compile, find the entry file. Everything happens inside the build folder.
 */

const ERROR_ID = 'runtime';
const SDK_PACKAGE = '@micro/sdk';
const KIT_PACKAGE = '@micro/services-kit';
/**
 * What the runtime provides itself, linked to the server's installation, so a service
 * depending only on these needs no npm install: the SDK (a service must speak the
 * server's protocol) and the kit the value-add services in services/ are built on.
 * Neither is published.
 */
export const PROVIDED_PACKAGES = [SDK_PACKAGE, KIT_PACKAGE] as const;
const PROVIDED = new Set<string>(PROVIDED_PACKAGES);
/**
 * The scope of the platform's own packages, none of them published: a service's
 * devDependencies in it (@micro/server, @micro/platform for its tests' harness) are left
 * out of npm install. What the runtime compiles must not need them: see tsconfig.build.json.
 */
const OWN_SCOPE = '@micro/';
export const ENTRY_CANDIDATES = ['dist/main.js', 'dist/index.js', 'main.js', 'index.js'];

export interface PackageJson {
  name?: string;
  version?: string;
  main?: string;
  scripts?: Record<string, string>;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  /** what the runtime reads beyond npm's fields: `name`, the service's name when the package's is npm's only (@micro/service-id runs as id) */
  micro?: { name?: unknown };
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

/** The service's name: as asked, else package.json's micro.name, else its name without its @scope/, else the folder's. */
export function serviceName(requested: string | undefined, pkg: PackageJson | undefined, folder: string): string {
  if (requested) return checkServiceName(requested);
  const own = pkg?.micro && typeof pkg.micro === 'object' ? pkg.micro.name : undefined;
  if (own !== undefined) return checkServiceName(String(own), ' (package.json micro.name)');
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

/** A package the runtime provides: its name and the root folder of the server's installation of it. */
export interface ProvidedPackage {
  name: string;
  path: string;
}

export interface BuildOptions {
  /** linked as node_modules/<name> (defaultProvided()) */
  provided: readonly ProvidedPackage[];
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
const LINK_SCRIPT = [
  'types="$1"; shift; mkdir -p node_modules/@types || exit 1',
  'while [ $# -gt 1 ]; do mkdir -p "node_modules/${1%/*}" && rm -rf "node_modules/$1" && ln -s "$2" "node_modules/$1" || exit 1; shift 2; done',
  '[ -z "$types" ] || [ -e node_modules/@types/node ] || [ -L node_modules/@types/node ] || ln -s "$types" node_modules/@types/node',
].join('\n');
/** The TypeScript project the runtime compiles when the folder has it (else tsconfig.json): the service without its tests. */
export const BUILD_TSCONFIG = 'tsconfig.build.json';

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
    const links = options.provided.flatMap((p) => [p.name, p.path]);
    const res = await run('install', 'sh', ['-c', LINK_SCRIPT, 'link', nodeTypesPath() ?? '', ...links], options.installTimeout);
    if (!res.ok) throw failure(`linking ${options.provided.map((p) => p.name).join(', ')}`, res);
  } else {
    await linkProvided(dir, options.provided);
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
  } else if (existsSync(join(dir, 'tsconfig.json')) || existsSync(join(dir, BUILD_TSCONFIG))) {
    const project = existsSync(join(dir, BUILD_TSCONFIG)) ? BUILD_TSCONFIG : '.';
    options.progress('build', `tsc -p ${project}`);
    const res = await run('build', process.execPath, [tscPath(), '-p', project, '--pretty', 'false'], options.buildTimeout);
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
  const names = (d: Record<string, string> | undefined) => (d && typeof d === 'object' ? Object.keys(d) : []);
  const deps = [...names(pkg.dependencies), ...names(pkg.optionalDependencies), ...names(pkg.devDependencies).filter((d) => !d.startsWith(OWN_SCOPE))];
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
 * npm cannot install the provided packages nor the platform's own (none is published):
 * the runtime links the provided ones, and the own ones in devDependencies are only for
 * the service's tests. So npm sees a package.json without them (restored afterwards), and
 * the links are made after npm, which would otherwise remove them as extraneous.
 */
async function withoutProvided(dir: string, install: () => Promise<CommandResult>): Promise<CommandResult> {
  const file = join(dir, 'package.json');
  // never through a symlink: the tenant's npm may have replaced the file by one meanwhile
  const original = await readFile(file, { encoding: 'utf8', flag: NOFOLLOW_READ });
  const pkg = JSON.parse(original) as Record<string, Record<string, string> | undefined>;
  for (const field of ['dependencies', 'devDependencies', 'optionalDependencies', 'peerDependencies']) {
    const deps = pkg[field];
    if (!deps || typeof deps !== 'object') continue;
    for (const name of Object.keys(deps)) if (PROVIDED.has(name) || (field === 'devDependencies' && name.startsWith(OWN_SCOPE))) delete deps[name];
  }
  await writeFile(file, JSON.stringify(pkg, null, 2), { flag: NOFOLLOW_WRITE });
  try {
    return await install();
  } finally {
    await writeFile(file, original, { flag: NOFOLLOW_WRITE });
  }
}

/**
 * Links node_modules/<name> of each provided package to the server's installation of it
 * (node_modules/@micro/sdk to the server's own SDK), and @types/node to the server's when
 * the service brings none, so that a service without devDependencies still compiles
 * against Node's types.
 */
export async function linkProvided(dir: string, provided: readonly ProvidedPackage[]): Promise<void> {
  for (const p of provided) await link(join(dir, 'node_modules', ...p.name.split('/')), p.path, true);
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

/**
 * What the runtime provides: the SDK this package resolves, and @micro/services-kit where
 * the server's installation has it (the `micro` command's does: it hosts the value-add
 * services); without it a service that needs the kit fails at npm install.
 */
export function defaultProvided(): ProvidedPackage[] {
  const provided = [{ name: SDK_PACKAGE, path: packageRoot(SDK_PACKAGE) }];
  try {
    provided.push({ name: KIT_PACKAGE, path: packageRoot(KIT_PACKAGE) });
  } catch {
    // not installed beside the server
  }
  return provided;
}

/** The root folder of a package this one resolves (the one holding its package.json). */
function packageRoot(name: string): string {
  let dir = dirname(fileURLToPath(import.meta.resolve(name)));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find the root of ${name}`);
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
