import { existsSync, statSync } from 'node:fs';
import { copyFile, lstat, mkdir, readdir, readlink, rm, symlink } from 'node:fs/promises';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { errors, type BlobStore, type Logger } from '@micro/sdk';
import { AddressRefused, publicAddress, type Resolver } from './address.js';
import { runCommand, type CommandResult } from './exec.js';
import { treeSize } from './disk.js';
import { extractUpload, UPLOAD_LIMITS, type UploadLimits } from './upload.js';

/**
 * Where a service's code comes from (`micro run <source>`):
 *
 * - a local folder, as an absolute path or a `file://` URL: its files are copied (the
 *   working tree, uncommitted changes included, without node_modules, dist and .git);
 * - a git repository: `https://`, `http://`, `ssh://`, `git://` URLs, `git@host:path`, or
 *   a local repository (path or `file://` URL) followed by `@ref`. `@ref` is a branch, a
 *   tag or a commit; without it the repository's default branch.
 *
 * - an upload: `upload:<key>`, a gzipped tar the CLI put in the blob store of the
 *   service's namespace under `runtime/uploads/<id>/<folder>.tar.gz` (upload.ts).
 *
 * A local path that exists as given is a folder even if it contains an `@`; only when it
 * does not is the part after the last `@` read as a ref.
 *
 * Who may use what: paths of the server's machine (folders, `file://`, local and bare
 * repositories) only a trusted caller (an admin of `micro`); everyone else an upload, or
 * an `https://` or `ssh://` (or `git@host:path`) URL of a public host, fetched under the
 * rules of `cloneUntrusted`.
 */
export type SourceSpec = { kind: 'folder'; path: string } | { kind: 'git'; url: string; ref: string | undefined } | { kind: 'upload'; key: string };

const ERROR_ID = 'runtime';
const REF = /^[A-Za-z0-9._/+-]{1,255}$/;
const REMOTE = /^(https?|ssh|git):\/\//;
const SCP = /^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:/;
/** Where the CLI puts uploads: the runtime reads (and later deletes) no other blob. */
export const UPLOAD_KEY = /^runtime\/uploads\/[0-9a-f]{16,64}\/[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.tar\.gz$/;
const UPLOAD_PREFIX = 'upload:';

/** What to use instead of a source only admins of micro may give. */
const TENANT_SOURCES = 'run a folder of your own machine with `micro run ./dir` (the CLI uploads it), or give a public https:// or ssh:// git URL';

/**
 * Reads a source. With `trusted: false` (a caller that is not an admin of `micro`),
 * server-side paths are refused with a 403 before the disk is looked at (their existence
 * is not the caller's business), and so are `http://` and `git://` URLs (a 400).
 */
export function parseSource(source: string, options: { trusted?: boolean } = {}): SourceSpec {
  const s = source.trim();
  if (s.length === 0 || /[\s\0]/.test(s) || s.startsWith('-')) throw errors.BadRequest(ERROR_ID, `source "${source}" is not a path or a git URL`);
  if (s.startsWith(UPLOAD_PREFIX)) {
    const key = s.slice(UPLOAD_PREFIX.length);
    if (!UPLOAD_KEY.test(key)) throw errors.BadRequest(ERROR_ID, `source "${source}" is not an upload the CLI made: upload:runtime/uploads/<hex id>/<folder>.tar.gz`);
    return { kind: 'upload', key };
  }
  const trusted = options.trusted ?? true;
  if (!trusted) return untrustedGit(s, source);
  if (REMOTE.test(s)) {
    // the ref is an @ in the path, not the user@ of the host part
    const pathStart = s.indexOf('/', s.indexOf('://') + 3);
    const [url, ref] = pathStart === -1 ? [s, undefined] : splitRef(s, pathStart);
    return { kind: 'git', url, ref: checkRef(ref, source) };
  }
  if (SCP.test(s)) {
    const [url, ref] = splitRef(s, s.indexOf(':'));
    return { kind: 'git', url, ref: checkRef(ref, source) };
  }
  let path: string;
  if (s.startsWith('file://')) {
    try {
      path = fileURLToPath(s);
    } catch {
      throw errors.BadRequest(ERROR_ID, `source "${source}" is not a valid file:// URL`);
    }
  } else if (isAbsolute(s)) {
    path = resolve(s);
  } else {
    throw errors.BadRequest(ERROR_ID, `source "${source}" must be an absolute path, a file:// URL or a git URL (micro run resolves relative paths)`);
  }
  return localSource(path, source);
}

/** A git source a caller that is not an admin of micro may give: https://, ssh:// or git@host:path. */
function untrustedGit(s: string, source: string): SourceSpec {
  if (/^(http|git):\/\//.test(s)) {
    throw errors.BadRequest(ERROR_ID, `source "${source}": http:// and git:// are neither encrypted nor authenticated (anyone on the way could change the code the server builds); use https:// or ssh://`);
  }
  if (REMOTE.test(s) || SCP.test(s)) {
    const spec = parseSource(s, { trusted: true });
    if (spec.kind === 'git') return spec;
  }
  throw errors.Forbidden(ERROR_ID, `source "${source}" is a path of the server's machine (or a file:// URL), which only admins of namespace micro may run: ${TENANT_SOURCES}`);
}

/** The name of the folder an upload was made from (the default service name). */
export function uploadFolderName(key: string): string {
  return basename(key).replace(/\.tar\.gz$/, '');
}

function splitRef(s: string, after: number): [string, string | undefined] {
  const at = s.lastIndexOf('@');
  return at > after ? [s.slice(0, at), s.slice(at + 1)] : [s, undefined];
}

function checkRef(ref: string | undefined, source: string): string | undefined {
  if (ref === undefined) return undefined;
  if (!REF.test(ref) || ref.startsWith('-') || ref.includes('..')) throw errors.BadRequest(ERROR_ID, `"${ref}" in source "${source}" is not a branch, tag or commit name`);
  return ref;
}

function localSource(path: string, source: string): SourceSpec {
  if (existsSync(path)) {
    if (!statSync(path).isDirectory()) throw errors.BadRequest(ERROR_ID, `source ${path} is not a folder`);
    // a bare repository has no working tree to copy: it is read with git
    if (isBareRepo(path)) return { kind: 'git', url: pathToFileURL(path).href, ref: undefined };
    return { kind: 'folder', path };
  }
  const at = path.lastIndexOf('@');
  if (at > 0) {
    const repo = path.slice(0, at);
    const ref = checkRef(path.slice(at + 1), source);
    if (existsSync(repo)) {
      if (!existsSync(join(repo, '.git')) && !isBareRepo(repo)) throw errors.BadRequest(ERROR_ID, `source ${repo} is not a git repository: @${ref} needs one`);
      return { kind: 'git', url: pathToFileURL(repo).href, ref };
    }
  }
  throw errors.NotFound(ERROR_ID, `source ${path} does not exist`);
}

function isBareRepo(path: string): boolean {
  return existsSync(join(path, 'HEAD')) && existsSync(join(path, 'objects')) && existsSync(join(path, 'refs'));
}

export interface FetchOptions {
  onLine: (line: string) => void;
  timeout: number;
  signal?: AbortSignal;
  /** the blob of an upload (of the service's namespace: the caller binds it) */
  upload?: (key: string) => AsyncIterable<Uint8Array>;
  uploadLimits?: UploadLimits;
  /** set for a source a caller that is not an admin of micro gave: git runs under cloneUntrusted's rules */
  untrusted?: UntrustedFetch;
}

export interface UntrustedFetch {
  /** default: the system's (dns.lookup) */
  resolver?: Resolver;
  /** ms the whole fetch may take (default 60 s) */
  timeout?: number;
  /** bytes the clone may grow to, .git included (default 256 MiB) */
  maxBytes?: number;
  /** ssh host keys seen first here are trusted afterwards (a file of the runtime, never the server user's own) */
  knownHosts: string;
  /** where git's own words go: the server's log, never the caller */
  log: (message: string, detail: Record<string, unknown>) => void;
}

/** Bounds of a source tree: a folder with more is almost certainly the wrong folder. */
export const MAX_SOURCE_FILES = 50_000;
export const MAX_SOURCE_BYTES = 512 * 1024 * 1024;
export const UNTRUSTED_FETCH_TIMEOUT = 60_000;
export const UNTRUSTED_FETCH_BYTES = 256 * 1024 * 1024;

/**
 * Puts the source's files into `dest` (which must not exist). Returns the commit for git
 * sources. Every build gets its own copy, so building never touches running instances.
 */
export async function fetchSource(spec: SourceSpec, dest: string, options: FetchOptions): Promise<{ commit?: string }> {
  if (spec.kind === 'folder') {
    if (options.untrusted) throw errors.Forbidden(ERROR_ID, `a path of the server's machine is for admins of namespace micro only: ${TENANT_SOURCES}`);
    await copyTree(spec.path, dest);
    return {};
  }
  if (spec.kind === 'upload') {
    if (!options.upload) throw errors.ServiceUnavailable(ERROR_ID, 'this server keeps no blob store for uploads');
    const { files, bytes } = await extractUpload(options.upload(spec.key), dest, uploadFolderName(spec.key), options.uploadLimits);
    options.onLine(`unpacked ${files} files (${Math.ceil(bytes / 1024)} KiB)`);
    return {};
  }
  if (options.untrusted) return { commit: await cloneUntrusted(spec.url, spec.ref, dest, options, options.untrusted) };
  const commit = await cloneRepo(spec.url, spec.ref, dest, options);
  return { commit };
}

/** Copies a folder, leaving out what a build makes or installs (node_modules, dist) and .git. */
export async function copyTree(from: string, to: string): Promise<void> {
  const budget = { files: MAX_SOURCE_FILES, bytes: MAX_SOURCE_BYTES };
  await copyDir(from, to, true, budget, from);
}

async function copyDir(from: string, to: string, top: boolean, budget: { files: number; bytes: number }, root: string): Promise<void> {
  await mkdir(to, { recursive: true, mode: 0o700 });
  for (const entry of await readdir(from, { withFileTypes: true })) {
    const name = entry.name;
    if (name === 'node_modules' || name === '.git' || (top && name === 'dist')) continue;
    const src = join(from, name);
    const dst = join(to, name);
    if (--budget.files < 0) throw errors.BadRequest(ERROR_ID, `source ${root} has more than ${MAX_SOURCE_FILES} files; is it the service's folder?`);
    if (entry.isDirectory()) {
      await copyDir(src, dst, false, budget, root);
    } else if (entry.isSymbolicLink()) {
      await symlink(await readlink(src), dst);
    } else if (entry.isFile()) {
      budget.bytes -= (await lstat(src)).size;
      if (budget.bytes < 0) throw errors.BadRequest(ERROR_ID, `source ${root} is larger than ${MAX_SOURCE_BYTES / 1024 / 1024} MiB; is it the service's folder?`);
      await copyFile(src, dst);
    }
    // sockets, fifos and devices are not source code: left out
  }
}

const gitEnv = (): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH,
  HOME: process.env.HOME,
  // never wait for a password on a terminal nobody watches
  GIT_TERMINAL_PROMPT: '0',
  GIT_SSH_COMMAND: process.env.GIT_SSH_COMMAND ?? 'ssh -o BatchMode=yes',
  ...pick(process.env, ['SSH_AUTH_SOCK', 'HTTPS_PROXY', 'HTTP_PROXY', 'NO_PROXY', 'https_proxy', 'http_proxy', 'no_proxy', 'GIT_SSL_CAINFO']),
});

function pick(env: NodeJS.ProcessEnv, keys: string[]): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const k of keys) if (env[k] !== undefined) out[k] = env[k];
  return out;
}

type Git = (args: string[], cwd: string) => Promise<CommandResult>;
type CloneFailure = (kind: 'clone' | 'ref' | 'head', res: CommandResult) => Error;

/** Clones `url` at `ref` with the server's own git settings (a trusted caller's source). */
async function cloneRepo(url: string, ref: string | undefined, dest: string, options: FetchOptions): Promise<string> {
  const git: Git = (args, cwd) => runCommand('git', args, { cwd, env: gitEnv(), timeout: options.timeout, onLine: options.onLine, signal: options.signal });
  return clone(url, ref, dest, git, (kind, res) => {
    if (kind === 'ref') return errors.BadRequest(ERROR_ID, `${url} has no branch, tag or commit "${ref}"\n${res.output}`);
    if (kind === 'head') return errors.BadRequest(ERROR_ID, `could not read the commit of ${url}: ${res.output}`);
    return errors.BadRequest(ERROR_ID, `could not clone ${url}: ${res.reason}\n${res.output}`);
  });
}

/**
 * Clones `url` at `ref` into `dest` and drops .git. Branches and tags take a shallow
 * clone; a commit needs the history, so when the shallow clone finds no such branch or
 * tag, a full clone checks the commit out.
 */
async function clone(url: string, ref: string | undefined, dest: string, git: Git, failed: CloneFailure): Promise<string> {
  const parent = resolve(dest, '..');
  await mkdir(parent, { recursive: true, mode: 0o700 });
  let res = await git(['clone', '--quiet', '--depth', '1', ...(ref ? ['--branch', ref] : []), '--', url, dest], parent);
  if (!res.ok && ref) {
    await rm(dest, { recursive: true, force: true });
    const full = await git(['clone', '--quiet', '--no-checkout', '--', url, dest], parent);
    if (!full.ok) throw failed('clone', full);
    res = await git(['-c', 'advice.detachedHead=false', 'checkout', '--quiet', '--detach', ref, '--'], dest);
    if (!res.ok) throw failed('ref', res);
  } else if (!res.ok) {
    throw failed('clone', res);
  }
  const head = await git(['rev-parse', 'HEAD'], dest);
  if (!head.ok) throw failed('head', head);
  await rm(join(dest, '.git'), { recursive: true, force: true });
  return head.output.trim();
}

/** Where a git URL connects: its scheme, host (as written, IPv6 without brackets) and port. */
export function gitTarget(url: string): { scheme: 'https' | 'ssh'; host: string; port: number } {
  const scp = /^[^@/]+@([^:/]+):/.exec(url);
  if (scp && !url.includes('://')) return { scheme: 'ssh', host: scp[1] as string, port: 22 };
  const u = new URL(url);
  const scheme = u.protocol === 'https:' ? 'https' : u.protocol === 'ssh:' ? 'ssh' : undefined;
  if (!scheme || !u.hostname) throw errors.BadRequest(ERROR_ID, `source "${url}" is not an https:// or ssh:// URL`);
  return { scheme, host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: u.port ? Number(u.port) : scheme === 'https' ? 443 : 22 };
}

/**
 * Clones the git source of a caller that is not an admin of micro:
 *
 * - the host is resolved first; every address must be public (address.ts), and git is
 *   pinned to the first (https: curl's `http.curloptResolve`; ssh: `HostName=<address>`
 *   with `HostKeyAlias=<host>`), so a second resolution cannot lead elsewhere;
 * - only the URL's own protocol (https or ssh), no redirects, no proxy, no submodules,
 *   no hooks, no system or global git config (so no credential helpers, LFS filters or
 *   rewrites of the server's), symbolic links checked out as plain files;
 * - ssh carries no credentials of the server (no agent, no keys) and trusts a host key
 *   first seen in the runtime's own known_hosts;
 * - bounded: the whole fetch in time, the folder (.git included) in bytes, checked as it
 *   grows (git is killed past the bound);
 * - git's output (which holds what the remote said) goes to the server's log; the caller
 *   gets a fixed message.
 */
async function cloneUntrusted(url: string, ref: string | undefined, dest: string, options: FetchOptions, u: UntrustedFetch): Promise<string> {
  const target = gitTarget(url);
  const unreachable = () => errors.BadRequest(ERROR_ID, `could not fetch ${url}: the repository was not found or is not reachable`);
  let address: string;
  try {
    address = await publicAddress(target.host, u.resolver);
  } catch (err) {
    if (err instanceof AddressRefused) {
      u.log('refused a git source on a non-public address', { url, address: err.address, kind: err.kind });
      throw errors.Forbidden(ERROR_ID, `could not fetch ${url}: ${target.host} is not a public address (${err.kind.replace(/ \d.*$/, '')}); git sources must be on public hosts: ${TENANT_SOURCES}`);
    }
    u.log('a git source did not resolve', { url, err });
    throw unreachable();
  }
  const timeout = u.timeout ?? UNTRUSTED_FETCH_TIMEOUT;
  const maxBytes = u.maxBytes ?? UNTRUSTED_FETCH_BYTES;
  const stop = new AbortController();
  let why: 'time' | 'size' | undefined;
  const onAbort = () => stop.abort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const deadline = setTimeout(() => {
    why ??= 'time';
    stop.abort();
  }, timeout);
  const watch = watchSize(dest, maxBytes, () => {
    why ??= 'size';
    stop.abort();
  });
  const env = untrustedGitEnv(target, address, u.knownHosts);
  const config = untrustedGitConfig(target, address).flatMap((c) => ['-c', c]);
  const git: Git = (args, cwd) => runCommand('git', [...config, ...args], { cwd, env, timeout, onLine: () => undefined, signal: stop.signal });
  try {
    const commit = await clone(url, ref, dest, git, (kind, res) => {
      u.log('a git source could not be fetched', { url, ref, kind, reason: res.reason, output: res.output });
      if (why === 'size') return errors.BadRequest(ERROR_ID, `could not fetch ${url}: the repository is larger than ${maxBytes / 1024 / 1024} MiB`);
      if (why === 'time') return errors.BadRequest(ERROR_ID, `could not fetch ${url}: it took longer than ${Math.round(timeout / 1000)} s`);
      if (kind === 'ref') return errors.BadRequest(ERROR_ID, `${url} has no branch, tag or commit "${ref}"`);
      return unreachable();
    });
    if ((await treeSize(dest, maxBytes)) > maxBytes) throw errors.BadRequest(ERROR_ID, `could not fetch ${url}: the repository is larger than ${maxBytes / 1024 / 1024} MiB`);
    return commit;
  } catch (err) {
    await rm(dest, { recursive: true, force: true });
    throw err;
  } finally {
    clearTimeout(deadline);
    watch.stop();
    options.signal?.removeEventListener('abort', onAbort);
  }
}

function untrustedGitConfig(target: { scheme: string; host: string; port: number }, address: string): string[] {
  const config = [
    'protocol.allow=never',
    `protocol.${target.scheme}.allow=always`,
    'protocol.file.allow=never',
    'http.followRedirects=false',
    'http.proxy=',
    'http.lowSpeedLimit=1000',
    'http.lowSpeedTime=20',
    'credential.helper=',
    'core.askPass=',
    'core.hooksPath=/dev/null',
    'core.symlinks=false',
    'core.fsmonitor=false',
    'submodule.recurse=false',
    'transfer.fsckObjects=true',
  ];
  // a literal address needs no pin: curl resolves nothing
  if (target.scheme === 'https' && target.host !== address) config.push(`http.curloptResolve=${target.host}:${target.port}:${address.includes(':') ? `[${address}]` : address}`);
  return config;
}

function untrustedGitEnv(target: { scheme: string; host: string }, address: string, knownHosts: string): NodeJS.ProcessEnv {
  const ssh = [
    'ssh -F /dev/null -o BatchMode=yes',
    `-o HostName=${shellQuote(address)} -o HostKeyAlias=${shellQuote(target.host)} -o CheckHostIP=no`,
    `-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=${shellQuote(knownHosts)} -o GlobalKnownHostsFile=/dev/null -o UpdateHostKeys=no`,
    '-o ProxyCommand=none -o ProxyJump=none -o ControlMaster=no -o ControlPath=none -o PermitLocalCommand=no',
    '-o ForwardAgent=no -o ForwardX11=no -o ClearAllForwardings=yes -o IdentityAgent=none -o IdentitiesOnly=yes -o IdentityFile=/dev/null',
    '-o PubkeyAuthentication=no -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no -o GSSAPIAuthentication=no -o HostbasedAuthentication=no',
    '-o ConnectTimeout=15',
  ].join(' ');
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    GIT_TERMINAL_PROMPT: '0',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    // overrides protocol.allow: only the URL's own protocol, whatever git would follow
    GIT_ALLOW_PROTOCOL: target.scheme,
    GIT_SSH_VARIANT: 'ssh',
    GIT_SSH_COMMAND: ssh,
    ...pick(process.env, ['GIT_SSL_CAINFO', 'SSL_CERT_FILE', 'SSL_CERT_DIR']),
  };
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Calls `over` once when the folder grows past `max` bytes; checked every 250 ms. */
function watchSize(dir: string, max: number, over: () => void): { stop: () => void } {
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void treeSize(dir, max)
      .then((bytes) => {
        if (bytes > max) over();
      })
      .finally(() => (busy = false));
  }, 250);
  return { stop: () => clearInterval(timer) };
}

/** What a runtime driver fetches with: see RuntimeOptions (local.ts) for each. */
export interface FetchSettings {
  blobs: BlobStore | undefined;
  namespace: string;
  trusted: boolean;
  onLine: (line: string) => void;
  signal: AbortSignal;
  timeout?: number | undefined;
  uploadLimits?: Partial<UploadLimits> | undefined;
  untrusted?: { resolver?: Resolver; timeout?: number; maxBytes?: number } | undefined;
  /** where strangers' ssh host keys are kept */
  knownHosts: string;
  logger: Logger;
}

/** The FetchOptions of a service's source: its namespace's uploads only; a stranger's git under cloneUntrusted's rules. */
export function fetchOptionsFor(s: FetchSettings): FetchOptions {
  const options: FetchOptions = { onLine: s.onLine, timeout: s.timeout ?? 5 * 60_000, signal: s.signal, uploadLimits: { ...UPLOAD_LIMITS, ...s.uploadLimits } };
  const blobs = s.blobs;
  // the service's namespace: a caller reaches only its own (handlers.ts), so only its own uploads
  if (blobs) options.upload = (blobKey) => blobs.get(blobKey, { namespace: s.namespace });
  if (!s.trusted) {
    options.untrusted = { ...s.untrusted, knownHosts: s.knownHosts, log: (message, detail) => s.logger.warn({ ...detail, namespace: s.namespace }, message) };
  }
  return options;
}

/** Deletes the blob of an upload source (nothing for other sources); a failure is logged. */
export async function deleteUpload(blobs: BlobStore | undefined, namespace: string, source: string, logger: Logger): Promise<void> {
  let spec: SourceSpec;
  try {
    spec = parseSource(source, { trusted: false });
  } catch {
    return;
  }
  if (spec.kind !== 'upload' || !blobs) return;
  await blobs.delete(spec.key, { namespace }).catch((err: unknown) => logger.warn({ err, namespace, key: spec.key }, 'could not delete an upload'));
}

/** The folder name a source was made from: the service's default name. */
export function sourceFolderName(spec: SourceSpec): string {
  if (spec.kind === 'folder') return basename(spec.path);
  if (spec.kind === 'upload') return uploadFolderName(spec.key);
  return basename(spec.url.replace(/\/+$/, '')).replace(/\.git$/, '');
}

/** The git ref of a source (`…@ref`), the version status shows before a service registers one; undefined for any other source. */
export function sourceRef(source: string): string | undefined {
  try {
    const spec = parseSource(source);
    return spec.kind === 'git' ? spec.ref : undefined;
  } catch {
    return undefined;
  }
}
