import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { accessSync, chmodSync, chownSync, constants, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, realpathSync, rmSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { delimiter, dirname, join, relative, resolve, sep } from 'node:path';
import { errors, writeJsonDurable } from '@micro/sdk';
import { cgroupDriver, type Cgroup, type CgroupDriver, type CgroupLimits } from './cgroup.js';
import { treeSize } from './disk.js';
import { capLimits, type InstanceCap } from './quota.js';

/**
 * The sandbox of tenant services (every namespace but `micro`) and of their build steps:
 * bubblewrap namespaces (pid, ipc, uts, net, cgroup, mounts), an unprivileged uid/gid per
 * namespace, cgroups for memory, processes and CPU, an rlimit for open files and a
 * periodic check of the disk its folder uses. See README.md "Sandbox" for what is isolated
 * and why it is built this way.
 */

export type SandboxMode = 'on' | 'off' | 'auto';

export interface SandboxLimits extends CgroupLimits {
  /** open files (RLIMIT_NOFILE, soft and hard) */
  nofile: number;
  /** bytes the service's build folder may use (checked periodically) */
  disk: number;
  /** bytes of its private /tmp (a tmpfs; counted in its memory too) */
  tmp: number;
}

export interface SandboxOptions {
  /** MICRO_HOME: the ids file is <home>/runtime/sandbox-ids.json; nothing else of it is mounted */
  home: string;
  /** MICRO_RUNTIME_SANDBOX (default auto: on when this machine can, else tenants are refused) */
  mode?: SandboxMode;
  /** folders of the server's installation mounted read-only (default: the SDK and every node_modules above it) */
  installPaths?: string[];
  /** the limits of a namespace, e.g. from its quota (default: the MICRO_SANDBOX_* limits of the environment) */
  limitsFor?: (namespace: string) => Partial<SandboxLimits>;
  /** first uid/gid handed out (default MICRO_SANDBOX_UID_BASE or 200000) */
  uidBase?: number;
  /** where the socket folders go (default /run, else /tmp when /run is not writable) */
  socketRoot?: string;
  /** ms between checks of a build folder's size (default 30 s) */
  diskCheckEvery?: number;
}

/** What a sandboxed command needs: who runs it, where, with what. */
export interface SandboxSpec {
  namespace: string;
  /** the folder mounted read-write, and the working directory */
  dir: string;
  /** the cgroup's name under the namespace's (an instance id, build-<id>) */
  group: string;
  argv: string[];
  env: NodeJS.ProcessEnv;
  /** share the host's network (npm install only: it needs the registry) */
  network?: boolean;
  /**
   * a build step: it may use every core (the CPU limit is for running instances; a build
   * is bounded by its timeouts, and tsc and npm use more than one thread: held to one
   * core, the demo's build took 1.5 times as long)
   */
  build?: boolean;
  /** a running instance's memory and CPU at most: its namespace's quota lowers the limits, never raises them */
  cap?: InstanceCap;
}

/** A prepared command: spawn `command args` with `env`, writing `input` to its stdin (bwrap reads its arguments there). */
export interface SandboxedCommand {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  input: Buffer;
  limits: SandboxLimits;
  cgroup: Cgroup;
  /** why the kernel stopped it, when it did (over its memory limit) */
  verdict(): string | undefined;
  /** removes its cgroup once its processes are gone */
  dispose(): void;
}

const ERROR_ID = 'runtime';
const UNSANDBOXED = 'micro';
const MiB = 1024 * 1024;
/** the self-test drops to nobody: it needs no uid of its own */
const NOBODY = 65534;
/** host paths a node process needs, mounted read-only when they exist */
const SYSTEM_RO = ['/usr', '/etc/ssl', '/etc/ca-certificates', '/etc/alternatives', '/etc/localtime', '/etc/hosts', '/etc/nsswitch.conf', '/etc/resolv.conf'];
const SYSTEM_LINKS = ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

/** Limits from the environment; what a namespace's quota does not say comes from here. */
export function defaultLimits(env: NodeJS.ProcessEnv = process.env): SandboxLimits {
  return {
    memory: size(env.MICRO_SANDBOX_MEMORY, '512m', 'MICRO_SANDBOX_MEMORY'),
    cpu: number(env.MICRO_SANDBOX_CPU, 1, 'MICRO_SANDBOX_CPU'),
    pids: number(env.MICRO_SANDBOX_PIDS, 256, 'MICRO_SANDBOX_PIDS'),
    nofile: number(env.MICRO_SANDBOX_NOFILE, 1024, 'MICRO_SANDBOX_NOFILE'),
    disk: size(env.MICRO_SANDBOX_DISK, '1g', 'MICRO_SANDBOX_DISK'),
    tmp: size(env.MICRO_SANDBOX_TMP, '64m', 'MICRO_SANDBOX_TMP'),
  };
}

/** `512m`, `1g`, `65536` (bytes) to bytes. */
export function size(value: string | undefined, fallback: string, name: string): number {
  const m = /^(\d+(?:\.\d+)?)([kmg]?)i?b?$/i.exec((value ?? fallback).trim());
  if (!m?.[1]) throw new Error(`${name} must be a size such as 512m or 1g, not "${value}"`);
  const unit = { '': 1, k: 1024, m: MiB, g: 1024 * MiB }[(m[2] ?? '').toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Math.floor(Number(m[1]) * unit);
}

function number(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, not "${value}"`);
  return n;
}

export function sandboxMode(value = process.env.MICRO_RUNTIME_SANDBOX): SandboxMode {
  const v = (value ?? 'auto').trim().toLowerCase() || 'auto';
  if (v !== 'on' && v !== 'off' && v !== 'auto') throw new Error(`MICRO_RUNTIME_SANDBOX must be on, off or auto, not "${value}"`);
  return v;
}

export function formatBytes(n: number): string {
  return n >= 1024 * MiB && n % (1024 * MiB) === 0 ? `${n / 1024 / MiB} GiB` : `${Math.round((n / MiB) * 10) / 10} MiB`;
}

export class Sandbox {
  readonly mode: SandboxMode;
  /** why this machine cannot sandbox (undefined: it can, or the mode is off) */
  readonly unavailable: string | undefined;
  /** folder of the server's unix RPC socket, mounted into every sandbox */
  readonly serverSocketDir: string;
  private readonly options: SandboxOptions;
  private readonly root: string;
  private readonly idsFile: string;
  private ids: Record<string, number> | undefined;
  private readonly installPaths: string[];
  private readonly base: Omit<SandboxLimits, never>;
  private readonly cgroups: CgroupDriver | undefined;
  /** this server's part of the cgroup tree and its socket folder's name (two servers on one machine do not mix) */
  readonly tag: string;

  constructor(options: SandboxOptions) {
    this.options = options;
    this.mode = options.mode ?? sandboxMode();
    this.base = defaultLimits();
    this.tag = createHash('sha256').update(resolve(options.home)).digest('hex').slice(0, 10);
    this.root = join(options.socketRoot ?? (writable('/run') ? '/run' : '/tmp'), `micro-${this.tag}`);
    this.serverSocketDir = join(this.root, 's');
    this.idsFile = join(options.home, 'runtime', 'sandbox-ids.json');
    this.installPaths = options.installPaths ?? [];
    let unavailable: string | undefined;
    let driver: CgroupDriver | undefined;
    if (this.mode !== 'off') {
      const found = process.getuid?.() === 0 ? cgroupDriver() : 'the server does not run as root (it needs to switch to the namespaces\' uids and write cgroups)';
      if (typeof found === 'string') unavailable = found;
      else driver = found;
      unavailable ??= missingTools();
    }
    this.cgroups = driver;
    this.unavailable = unavailable;
  }

  /** When the server stops (its services gone): removes its socket folders and empty cgroups. */
  close(): void {
    rmSync(this.root, { recursive: true, force: true });
    this.cgroups?.sweep(this.tag);
  }

  /** Whether services of this namespace run sandboxed. */
  applies(namespace: string): boolean {
    return namespace !== UNSANDBOXED && this.mode !== 'off';
  }

  /** Throws the error `micro run` of a namespace gets when this server cannot sandbox it. */
  check(namespace: string): void {
    if (!this.applies(namespace) || !this.unavailable) return;
    throw errors.ServiceUnavailable(ERROR_ID, `this server cannot sandbox services (${this.unavailable}), so it runs none of namespace ${namespace}; fix that, or start the server with MICRO_RUNTIME_SANDBOX=off to run tenants unsandboxed`);
  }

  /**
   * Makes the socket folders and runs a sandboxed `true` once: a bwrap that the kernel
   * refuses (no namespaces) makes the sandbox unavailable. Returns why, or undefined.
   */
  selfTest(): string | undefined {
    if (this.mode === 'off' || this.unavailable) return this.unavailable;
    try {
      // groups a server killed with -9 left behind (empty once their processes died)
      this.cgroups?.sweep(this.tag);
      this.prepareRoot();
      const cmd = this.command({ namespace: '.self-test', dir: this.serverSocketDir, group: `self-test-${process.pid}`, argv: ['/bin/true'], env: { PATH: '/usr/bin:/bin' } }, NOBODY);
      const res = spawnSync(cmd.command, cmd.args, { env: cmd.env, input: cmd.input, timeout: 10_000, encoding: 'utf8' });
      cmd.dispose();
      if (res.status !== 0) return this.fail(`bwrap failed its self-test: ${(res.stderr || res.error?.message || `exit ${res.status}`).trim()}`);
    } catch (err) {
      return this.fail(`the sandbox could not be set up: ${(err as Error).message}`);
    }
    return undefined;
  }

  private fail(reason: string): string {
    (this as { unavailable: string | undefined }).unavailable = reason;
    return reason;
  }

  /** The limits of a namespace: its quota's, else the environment's. */
  limits(namespace: string): SandboxLimits {
    return { ...this.base, ...this.options.limitsFor?.(namespace) };
  }

  /** The namespace's uid (= gid): handed out once, kept in <home>/runtime/sandbox-ids.json. */
  uid(namespace: string): number {
    const ids = this.loadIds();
    const known = ids[namespace];
    if (known !== undefined) return known;
    const taken = new Set([...Object.values(ids), ...systemIds()]);
    let uid = Math.max(this.options.uidBase ?? number(process.env.MICRO_SANDBOX_UID_BASE, 200_000, 'MICRO_SANDBOX_UID_BASE'), ...Object.values(ids).map((n) => n + 1));
    while (taken.has(uid)) uid++;
    ids[namespace] = uid;
    writeJsonDurable(this.idsFile, ids);
    chmodSync(this.idsFile, 0o600);
    return uid;
  }

  private loadIds(): Record<string, number> {
    if (this.ids) return this.ids;
    let ids: Record<string, number> = {};
    if (existsSync(this.idsFile)) ids = JSON.parse(readFileSync(this.idsFile, 'utf8')) as Record<string, number>;
    this.ids = ids;
    return ids;
  }

  /** The namespace's socket folder (0700, its uid's): where its instances listen. */
  socketDir(namespace: string): string {
    const uid = this.uid(namespace);
    const dir = join(this.root, String(uid));
    this.prepareRoot();
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chownSync(dir, uid, uid);
    chmodSync(dir, 0o700);
    return dir;
  }

  /** unix:///… of an instance's socket (unix socket paths are limited to 107 bytes). */
  serviceAddress(namespace: string, instanceId: string): string {
    const dir = this.socketDir(namespace);
    let file = join(dir, `${instanceId}.sock`);
    if (Buffer.byteLength(file) > 100) file = join(dir, `${instanceId.slice(-8)}.sock`);
    return `unix://${file}`;
  }

  /** unix:///… of the server's RPC socket, as services see it. */
  get serverAddress(): string {
    return `unix://${join(this.serverSocketDir, 'rpc.sock')}`;
  }

  /**
   * Whether a service of `namespace` may serve from `address`: a sandboxed namespace
   * only from its own socket folder; `micro` (and every namespace when the sandbox is off)
   * from anywhere.
   */
  addressAllowed(namespace: string, address: string): boolean {
    if (!this.applies(namespace)) return true;
    if (!address.startsWith('unix:///')) return false;
    const path = resolve(address.slice('unix://'.length));
    const ids = this.loadIds();
    if (ids[namespace] === undefined) return false;
    return dirname(path) === join(this.root, String(ids[namespace]));
  }

  private prepareRoot(): void {
    mkdirSync(this.root, { recursive: true, mode: 0o711 });
    chmodSync(this.root, 0o711);
    mkdirSync(this.serverSocketDir, { recursive: true, mode: 0o755 });
    chmodSync(this.serverSocketDir, 0o755);
  }

  /** Gives the namespace's uid the build folder (after a fetch by the server). */
  async own(namespace: string, dir: string): Promise<void> {
    const uid = this.uid(namespace);
    await chownTree(dir, uid);
  }

  /**
   * The command that runs `spec.argv` sandboxed: a root `sh` puts itself in the cgroup,
   * then execs prlimit (open files) and bwrap, whose arguments (environment included,
   * so that no secret shows in a command line) come on stdin; inside, setpriv drops to
   * the namespace's uid with no capabilities and no way to gain any.
   */
  command(spec: SandboxSpec, uid = this.uid(spec.namespace)): SandboxedCommand {
    if (!this.cgroups) throw new Error(this.unavailable ?? 'the sandbox is off');
    const limits = capLimits(this.limits(spec.namespace), spec.cap);
    if (spec.build) limits.cpu = Math.max(limits.cpu, availableParallelism());
    const cgroup = this.cgroups.create(`${this.tag}/${spec.namespace}/${spec.group}`, limits);
    const bwrap = [...this.mounts(spec, limits), '--clearenv', ...Object.entries(spec.env).flatMap(([k, v]) => (v === undefined ? [] : ['--setenv', k, v]))];
    const inner = ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--no-new-privs', '--inh-caps=-all', '--bounding-set=-all', '--', 'env', `--chdir=${spec.dir}`, '--', ...spec.argv];
    // joins each cgroup file given before the first "--", then execs what follows it
    const script = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"';
    const args = ['-c', script, 'sandbox', ...cgroup.procs, '--', 'prlimit', `--nofile=${limits.nofile}:${limits.nofile}`, '--', 'bwrap', '--args', '0', '--', ...inner];
    return {
      command: '/bin/sh',
      args,
      // the wrapper runs as root: nothing of the tenant's environment (LD_PRELOAD…) reaches it
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', ...(spec.env.MICRO_RUNTIME_INSTANCE ? { MICRO_RUNTIME_INSTANCE: spec.env.MICRO_RUNTIME_INSTANCE } : {}) },
      input: Buffer.from(bwrap.map((a) => `${a}\0`).join('')),
      limits,
      cgroup,
      verdict: () => (cgroup.oomKills() > 0 ? `stopped: over its memory limit of ${formatBytes(limits.memory)}` : undefined),
      dispose: () => {
        for (const pid of cgroup.pids()) signal(pid);
        cgroup.remove();
      },
    };
  }

  /** bwrap's namespaces and mounts: the system read-only, the installation read-only, its folder and sockets. */
  private mounts(spec: SandboxSpec, limits: SandboxLimits): string[] {
    const args = ['--unshare-ipc', '--unshare-pid', '--unshare-uts', '--unshare-cgroup', '--die-with-parent', '--new-session', '--hostname', 'sandbox'];
    if (!spec.network) args.push('--unshare-net');
    // bwrap runs as root (no user namespace: the process has a real unprivileged uid); it
    // keeps only what setpriv needs to drop to that uid (so it cannot enter the 0700
    // folder itself: `env --chdir` does, as the uid)
    args.push('--cap-drop', 'ALL', '--cap-add', 'CAP_SETUID', '--cap-add', 'CAP_SETGID', '--cap-add', 'CAP_SETPCAP');
    // bwrap makes missing parents 0700: the uid could not pass them
    const made = new Set<string>(['/', '/usr', '/tmp', '/proc', '/dev']);
    const dirs = (path: string) => {
      const parts = path.split(sep).filter(Boolean);
      for (let i = 1; i < parts.length; i++) {
        const at = `/${parts.slice(0, i).join('/')}`;
        if (made.has(at) || isUnder(at, '/usr')) continue;
        made.add(at);
        args.push('--perms', '0755', '--dir', at);
      }
    };
    for (const p of SYSTEM_RO) {
      if (!existsSync(p)) continue;
      dirs(p);
      args.push('--ro-bind', p, p);
    }
    for (const p of SYSTEM_LINKS) {
      const st = lstatOrUndefined(p);
      if (st?.isSymbolicLink()) args.push('--symlink', readlinkSync(p), p);
      else if (st?.isDirectory()) args.push('--ro-bind', p, p);
    }
    args.push('--proc', '/proc', '--dev', '/dev', '--size', String(limits.tmp), '--perms', '1777', '--tmpfs', '/tmp');
    const node = dirname(dirname(process.execPath));
    for (const p of [...(isUnder(process.execPath, '/usr') ? [] : [node]), ...this.installPaths]) {
      dirs(p);
      args.push('--ro-bind', p, p);
    }
    // MICRO_HOME inside the installation (a checkout used as home): hidden
    if (this.installPaths.some((p) => isUnder(this.options.home, p))) args.push('--tmpfs', this.options.home);
    for (const [path, mode] of [
      [spec.dir, '--bind'],
      [this.serverSocketDir, '--ro-bind'],
      ...(spec.namespace === '.self-test' ? [] : [[this.socketDir(spec.namespace), '--bind']]),
    ] as const) {
      dirs(path);
      args.push(mode, path, path);
    }
    return args;
  }

  /**
   * Watches the size of a folder every diskCheckEvery ms; calls `over` (once) with the
   * reason when it passes the limit. Returns the function that stops watching.
   */
  watchDisk(dir: string, limit: number, over: (reason: string) => void): () => void {
    let running = false;
    const timer = setInterval(() => {
      if (running) return;
      running = true;
      void treeSize(dir, limit)
        .then((used) => {
          if (used > limit) {
            clearInterval(timer);
            over(`stopped: its folder uses more than its disk limit of ${formatBytes(limit)}`);
          }
        })
        .finally(() => (running = false));
    }, this.options.diskCheckEvery ?? 30_000);
    timer.unref();
    return () => clearInterval(timer);
  }

  /**
   * The environment of a sandboxed service or build step: no MICRO_HOME, no server
   * secrets; HOME and TMPDIR are its private /tmp.
   */
  baseEnv(extraPath: string[] = []): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      PATH: [dirname(process.execPath), ...extraPath, '/usr/local/bin', '/usr/bin', '/bin'].join(delimiter),
      HOME: '/tmp',
      TMPDIR: '/tmp',
    };
    for (const k of ['LANG', 'LC_ALL', 'TZ', 'MICRO_LOG_LEVEL', 'MICRO_TRACING']) if (process.env[k] !== undefined) env[k] = process.env[k];
    const ca = process.env.NODE_EXTRA_CA_CERTS;
    if (ca && (isUnder(ca, '/etc/ssl') || isUnder(ca, '/usr'))) env.NODE_EXTRA_CA_CERTS = ca;
    return env;
  }
}

/**
 * The folders of the server's installation a built service needs: each provided package
 * (the SDK, the services' kit), and the node_modules folders they resolve from.
 */
export function installPathsFor(packagePaths: readonly string[]): string[] {
  const paths = new Set<string>();
  for (const path of packagePaths) {
    const root = realpathSync(path);
    paths.add(root);
    for (let dir = dirname(root); ; dir = dirname(dir)) {
      const nm = join(dir, 'node_modules');
      if (existsSync(nm)) paths.add(nm);
      if (dirname(dir) === dir) break;
    }
  }
  return [...paths];
}

function isUnder(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel === '' || (!rel.startsWith('..') && !rel.startsWith(sep));
}

function writable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function missingTools(): string | undefined {
  for (const tool of ['bwrap', 'setpriv', 'prlimit']) {
    const found = (process.env.PATH ?? '/usr/bin:/bin').split(delimiter).some((d) => d && existsSync(join(d, tool)));
    if (!found) return `${tool} is not installed (apt-get install ${tool === 'bwrap' ? 'bubblewrap' : 'util-linux'})`;
  }
  return undefined;
}

/** uids and gids of /etc/passwd and /etc/group: never handed out. */
function systemIds(): number[] {
  const ids: number[] = [];
  for (const file of ['/etc/passwd', '/etc/group']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const n = Number(line.split(':')[2]);
      if (Number.isInteger(n)) ids.push(n);
    }
  }
  return ids;
}

function lstatOrUndefined(p: string) {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}


function signal(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

/** chown -R without following symlinks (a symlink is owned, its target not touched). */
async function chownTree(dir: string, uid: number): Promise<void> {
  const { lchown } = await import('node:fs/promises');
  await lchown(dir, uid, uid);
  const entries = await readdir(dir, { withFileTypes: true });
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await chownTree(p, uid);
    else await lchown(p, uid, uid);
  }
}
