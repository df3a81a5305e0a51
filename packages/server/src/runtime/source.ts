import { existsSync, statSync } from 'node:fs';
import { copyFile, lstat, mkdir, readdir, readlink, rm, symlink } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { errors } from '@micro/sdk';
import { runCommand } from './exec.js';

/**
 * Where a service's code comes from (`micro run <source>`):
 *
 * - a local folder, as an absolute path or a `file://` URL: its files are copied (the
 *   working tree, uncommitted changes included, without node_modules, dist and .git);
 * - a git repository: `https://`, `http://`, `ssh://`, `git://` URLs, `git@host:path`, or
 *   a local repository (path or `file://` URL) followed by `@ref`. `@ref` is a branch, a
 *   tag or a commit; without it the repository's default branch.
 *
 * A local path that exists as given is a folder even if it contains an `@`; only when it
 * does not is the part after the last `@` read as a ref.
 */
export type SourceSpec = { kind: 'folder'; path: string } | { kind: 'git'; url: string; ref: string | undefined };

const ERROR_ID = 'runtime';
const REF = /^[A-Za-z0-9._/+-]{1,255}$/;
const REMOTE = /^(https?|ssh|git):\/\//;
const SCP = /^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:/;

export function parseSource(source: string): SourceSpec {
  const s = source.trim();
  if (s.length === 0 || /[\s\0]/.test(s) || s.startsWith('-')) throw errors.BadRequest(ERROR_ID, `source "${source}" is not a path or a git URL`);
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
}

/** Bounds of a source tree: a folder with more is almost certainly the wrong folder. */
export const MAX_SOURCE_FILES = 50_000;
export const MAX_SOURCE_BYTES = 512 * 1024 * 1024;

/**
 * Puts the source's files into `dest` (which must not exist). Returns the commit for git
 * sources. Every build gets its own copy, so building never touches running instances.
 */
export async function fetchSource(spec: SourceSpec, dest: string, options: FetchOptions): Promise<{ commit?: string }> {
  if (spec.kind === 'folder') {
    await copyTree(spec.path, dest);
    return {};
  }
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

/**
 * Clones `url` at `ref` into `dest` and drops .git. Branches and tags take a shallow
 * clone; a commit needs the history, so when the shallow clone finds no such branch or
 * tag, a full clone checks the commit out.
 */
async function cloneRepo(url: string, ref: string | undefined, dest: string, options: FetchOptions): Promise<string> {
  const git = (args: string[], cwd: string) => runCommand('git', args, { cwd, env: gitEnv(), timeout: options.timeout, onLine: options.onLine, signal: options.signal });
  const parent = resolve(dest, '..');
  await mkdir(parent, { recursive: true, mode: 0o700 });
  let res = await git(['clone', '--quiet', '--depth', '1', ...(ref ? ['--branch', ref] : []), '--', url, dest], parent);
  if (!res.ok && ref) {
    await rm(dest, { recursive: true, force: true });
    const full = await git(['clone', '--quiet', '--no-checkout', '--', url, dest], parent);
    if (!full.ok) throw errors.BadRequest(ERROR_ID, `could not clone ${url}: ${full.reason}\n${full.output}`);
    res = await git(['-c', 'advice.detachedHead=false', 'checkout', '--quiet', '--detach', ref, '--'], dest);
    if (!res.ok) throw errors.BadRequest(ERROR_ID, `${url} has no branch, tag or commit "${ref}"\n${res.output}`);
  } else if (!res.ok) {
    throw errors.BadRequest(ERROR_ID, `could not clone ${url}: ${res.reason}\n${res.output}`);
  }
  const head = await git(['rev-parse', 'HEAD'], dest);
  if (!head.ok) throw errors.BadRequest(ERROR_ID, `could not read the commit of ${url}: ${head.output}`);
  await rm(join(dest, '.git'), { recursive: true, force: true });
  return head.output.trim();
}
