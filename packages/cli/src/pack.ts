import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import ignore, { type Ignore } from 'ignore';
import { Header, Pack, ReadEntry } from 'tar';
import { selfContainedTsconfig } from '@micro/server/tsconfig';
import { UsageError } from './output.js';

/**
 * Packing a folder for `micro run ./dir` and `micro update <service> ./dir` when the
 * server cannot read it (another machine) or may not (an account that is not an admin
 * of `micro`): a gzipped tar of its files, uploaded into the blob store of the caller's
 * namespace, which the runtime unpacks (under its own bounds) into a build folder.
 *
 * Left out: `node_modules` and `.git` folders at any depth, `dist` at the top (what a
 * build makes, as the server's own copy does), and what `.gitignore` files (each for
 * its own folder, as git reads them) and a `.microignore` at the top list (gitignore
 * syntax). Only files and folders travel: a symbolic link is left out with a warning,
 * since the server refuses links in uploads. Bounded before anything is sent.
 *
 * A tsconfig file extending one outside the folder (a monorepo's shared
 * tsconfig.base.json) travels with what it extends merged in, without its references
 * outside the folder (selfContainedTsconfig): the server never sees those files.
 */

export interface PackLimits {
  files: number;
  /** bytes of the gzipped tar */
  bytes: number;
}

/** 50,000 files; 64 MiB packed (the blob store's default bound on one blob). */
export const PACK_LIMITS: Readonly<PackLimits> = { files: 50_000, bytes: 64 * 1024 * 1024 };

export interface Packed {
  /** the blob key the runtime accepts: runtime/uploads/<id>/<folder>.tar.gz */
  key: string;
  data: Buffer;
  files: number;
  /** paths left out because they are links or special files */
  skipped: string[];
}

export async function packFolder(dir: string, limits: PackLimits = PACK_LIMITS): Promise<Packed> {
  const { files, skipped } = await listFiles(dir, limits.files);
  const chunks: Buffer[] = [];
  let size = 0;
  // portable: no owner names or ids of this machine; only the listed files (no recursion)
  const stream = new Pack({ gzip: true, cwd: dir, portable: true, follow: false, noDirRecurse: true });
  for (const file of files) {
    const text = TSCONFIG_RE.test(basename(file)) ? tsconfigFor(dir, file) : undefined;
    if (text === undefined) {
      stream.add(file);
      continue;
    }
    const data = Buffer.from(text);
    const entry = new ReadEntry(new Header({ path: file, type: 'File', size: data.length, mode: 0o644, mtime: new Date() }));
    stream.add(entry);
    entry.end(data);
  }
  stream.end();
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limits.bytes) throw new UsageError(`${dir} packs to more than ${limits.bytes / 1024 / 1024} MiB: is it the service's folder? List what the build does not need in .microignore (gitignore syntax)`);
    chunks.push(chunk);
  }
  return { key: uploadKey(dir), data: Buffer.concat(chunks), files: files.length, skipped };
}

const TSCONFIG_RE = /^tsconfig.*\.json$/;

/** The text to upload for a tsconfig file that points outside `dir`; undefined to upload it as it is. */
function tsconfigFor(dir: string, file: string): string | undefined {
  try {
    return selfContainedTsconfig(join(dir, file), dir);
  } catch (err) {
    throw new UsageError(`${join(dir, file)}: ${(err as Error).message}`);
  }
}

/** The blob key of an upload of `dir`: a fresh id and the folder's name (the service's default name). */
export function uploadKey(dir: string): string {
  const folder = basename(dir).replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 100) || 'source';
  return `runtime/uploads/${randomBytes(16).toString('hex')}/${folder}.tar.gz`;
}

/** The files of `dir` to upload, relative and with / separators, in a stable order. */
export async function listFiles(dir: string, max = PACK_LIMITS.files): Promise<{ files: string[]; skipped: string[] }> {
  const files: string[] = [];
  const skipped: string[] = [];
  const top = ignore().add(['node_modules/', '.git/', '/dist/']);
  const micro = join(dir, '.microignore');
  if (existsSync(micro)) top.add(readFileSync(micro, 'utf8'));
  const walk = async (folder: string, rules: { base: string; ig: Ignore }[]): Promise<void> => {
    const own = join(folder, '.gitignore');
    const here = existsSync(own) ? [...rules, { base: folder, ig: ignore().add(readFileSync(own, 'utf8')) }] : rules;
    const entries = (await readdir(folder, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      const path = join(folder, e.name);
      const isDir = e.isDirectory();
      if (here.some((r) => r.ig.ignores(relative(r.base, path).split('\\').join('/') + (isDir ? '/' : '')))) continue;
      const rel = relative(dir, path).split('\\').join('/');
      if (isDir) await walk(path, here);
      else if (e.isFile()) {
        files.push(rel);
        if (files.length > max) throw new UsageError(`${dir} has more than ${max} files to upload: is it the service's folder? List what the build does not need in .microignore (gitignore syntax)`);
      } else skipped.push(rel);
    }
  };
  await walk(dir, [{ base: dir, ig: top }]);
  return { files, skipped };
}
