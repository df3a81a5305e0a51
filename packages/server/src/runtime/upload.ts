import { closeSync, mkdirSync, openSync, symlinkSync, writeSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { errors } from '@micro/sdk';

/**
 * Unpacking an uploaded source (`micro run ./dir` as a tenant, or against a remote
 * server): a gzipped tar in the blob store of the service's namespace, made by the CLI.
 *
 * The archive is a stranger's: it may hold only plain files and folders under relative
 * paths. Absolute paths, `..` components, symbolic and hard links (wherever they would
 * point), devices and fifos are refused; so are more entries, more bytes in one file or
 * in all of them than the limits allow. Sizes are checked from each entry's header
 * before anything of it is written, and the decompressed stream is counted as it comes,
 * so a gzip bomb stops at the limit without being written out. Any refusal is a 400
 * naming the entry, and the folder is removed: nothing is left behind. Since no link is
 * ever created, every path written is inside the destination.
 */

export interface UploadLimits {
  /** entries (files and folders) */
  files: number;
  /** bytes of all files, unpacked */
  bytes: number;
  /** bytes of one file */
  fileBytes: number;
}

/** 50,000 entries, 256 MiB unpacked, 64 MiB a file. */
export const UPLOAD_LIMITS: Readonly<UploadLimits> = { files: 50_000, bytes: 256 * 1024 * 1024, fileBytes: 64 * 1024 * 1024 };

const ERROR_ID = 'runtime';
const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);
/** what a tar stream may hold beyond the files' bytes: a header and padding per entry, long names, the end */
const OVERHEAD_PER_ENTRY = 3 * 512;
/** what may follow the end of the archive (tar pads to its record size, 10 KiB by default) */
const MAX_TRAILER = 1024 * 1024;

/** Unpacks the gzipped tar `data` into `dest`, which must not exist; on any failure `dest` is gone. */
export interface ExtractOptions {
  /**
   * Symbolic links allowed when they stay inside the folder (a build's node_modules: .bin
   * links, package links): a relative target of leading `..` components then plain ones,
   * whose `..`s do not climb above the folder from the link's place. Nothing is ever
   * written through a link (an entry under a path that is a link is refused), so every
   * link's folder is a real one and the check above is what the kernel resolves.
   * Default false: any link is refused.
   */
  links?: boolean;
}

export async function extractUpload(data: AsyncIterable<Uint8Array>, dest: string, label: string, limits: UploadLimits = UPLOAD_LIMITS, options: ExtractOptions = {}): Promise<{ files: number; bytes: number }> {
  await mkdir(dirname(dest), { recursive: true, mode: 0o700 });
  await mkdir(dest, { mode: 0o700 });
  try {
    return await unpack(data, dest, label, limits, options);
  } catch (err) {
    await rm(dest, { recursive: true, force: true });
    throw err;
  }
}

async function unpack(data: AsyncIterable<Uint8Array>, dest: string, label: string, limits: UploadLimits, options: ExtractOptions): Promise<{ files: number; bytes: number }> {
  const bad = (message: string) => errors.BadRequest(ERROR_ID, `upload ${label}: ${message}`);
  const seen = { entries: 0, files: 0, bytes: 0 };
  /** the links made so far (options.links) */
  const links = new Set<string>();
  let failure: Error | undefined;
  let open: { fd: number; path: string } | undefined;
  const fail = (err: unknown) => {
    failure ??= err instanceof Error ? err : new Error(String(err));
  };

  const accept = (entry: ReadEntry) => {
    if (++seen.entries > limits.files) throw bad(`it has more than ${limits.files} entries; is it the service's folder?`);
    const path = safePath(entry.path, bad);
    if (links.size > 0 && underLink(path, links)) throw bad(`entry "${path}" is under a symbolic link of the archive: nothing is written through a link`);
    if (entry.type === 'SymbolicLink' && options.links && path !== '') {
      const target = entry.linkpath ?? '';
      if (!linkInside(path, target)) throw bad(`entry "${path}" is a symbolic link to "${printable(target)}", outside the folder`);
      makeDir(join(dest, dirname(path)), dirname(path), bad);
      try {
        symlinkSync(target, join(dest, path));
      } catch (err) {
        throw bad(`entry "${path}" could not be written (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): is it in the archive twice?`);
      }
      links.add(path);
      entry.resume();
      return;
    }
    if (entry.type === 'Directory') {
      if (path !== '') makeDir(join(dest, path), path, bad);
      entry.resume();
      return;
    }
    if (!FILE_TYPES.has(entry.type)) {
      throw bad(`entry "${printable(entry.path)}" is a ${entry.type}: an upload may hold only files and folders (links, devices and fifos are refused)`);
    }
    if (path === '') throw bad(`entry "${printable(entry.path)}" is a file without a name`);
    const size = entry.size;
    if (size > limits.fileBytes) throw bad(`entry "${path}" is ${size} bytes; a file may have at most ${limits.fileBytes}`);
    seen.bytes += size;
    if (seen.bytes > limits.bytes) throw bad(`it unpacks to more than ${limits.bytes / 1024 / 1024} MiB (at entry "${path}")`);
    seen.files++;
    const target = join(dest, path);
    makeDir(dirname(target), dirname(path), bad);
    let fd: number;
    try {
      fd = openSync(target, 'wx', entry.mode !== undefined && entry.mode & 0o111 ? 0o755 : 0o644);
    } catch (err) {
      throw bad(`entry "${path}" could not be written (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): is it in the archive twice?`);
    }
    open = { fd, path };
    let written = 0;
    entry.on('data', (chunk: Buffer) => {
      if (failure || open?.fd !== fd) return;
      written += chunk.length;
      try {
        if (written > size) throw bad(`entry "${path}" holds more than its header says`);
        writeSync(fd, chunk);
      } catch (err) {
        fail(err);
      }
    });
    entry.on('end', () => {
      if (open?.fd === fd) {
        closeSync(fd);
        open = undefined;
      }
    });
  };

  const parser = new Parser({
    strict: true,
    onReadEntry: (entry) => {
      try {
        if (failure) throw failure;
        accept(entry);
      } catch (err) {
        fail(err);
        entry.resume();
      }
    },
  });
  parser.on('error', (err: Error) => fail(bad(`it is not a valid tar archive (${err.message})`)));
  const ended = new Promise<void>((resolve) => parser.once('end', () => resolve()));
  // after the end-of-archive blocks the parser only buffers (each write copies what it
  // holds): what follows is counted here instead, and bounded
  let eof = false;
  let trailer = 0;
  parser.on('eof', () => (eof = true));

  const streamMax = limits.bytes + (limits.files + 16) * OVERHEAD_PER_ENTRY;
  let streamed = 0;
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      streamed += chunk.length;
      if (!failure && streamed > streamMax) fail(bad(`it unpacks to more than ${limits.bytes / 1024 / 1024} MiB`));
      if (failure) return callback(failure);
      if (eof) {
        trailer += chunk.length;
        if (trailer > MAX_TRAILER) fail(bad(`it goes on for more than ${MAX_TRAILER / 1024 / 1024} MiB after the end of the archive`));
        return callback(failure);
      }
      // entries are written synchronously as the parser hands them out: it never holds back
      parser.write(chunk);
      callback(failure);
    },
    final(callback) {
      parser.end();
      void ended.then(() => callback(failure));
    },
  });
  try {
    await pipeline(Readable.from(data), createGunzip(), sink);
  } catch (err) {
    if (failure) throw failure;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'Z_DATA_ERROR' || code === 'Z_BUF_ERROR') throw bad('it is not a gzipped tar archive (micro run makes one from a folder)');
    throw err;
  } finally {
    if (open) closeSync(open.fd);
  }
  if (failure) throw failure;
  return { files: seen.files, bytes: seen.bytes };
}

/** The entry's path as a relative path of plain components ('' for the archive's root), or a 400. */
export function safePath(path: string, bad: (message: string) => Error): string {
  const shown = printable(path);
  if (path.includes('\0')) throw bad(`entry "${shown}" has a NUL character in its name`);
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path) || path.includes('\\')) throw bad(`entry "${shown}" has an absolute path (or a \\ in it): only relative paths are allowed`);
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw bad(`entry "${shown}" has a ".." component: only paths inside the folder are allowed`);
  if (Buffer.byteLength(path) > 4096 || parts.some((p) => Buffer.byteLength(p) > 255)) throw bad(`entry "${shown.slice(0, 200)}…" has a name too long`);
  return parts.join('/');
}

/** Whether `path` or a folder above it is one of `links`. */
function underLink(path: string, links: Set<string>): boolean {
  const parts = path.split('/');
  for (let i = 1; i <= parts.length; i++) if (links.has(parts.slice(0, i).join('/'))) return true;
  return false;
}

/**
 * Whether a link at `path` (relative, its folders real) to `target` stays inside the
 * folder: relative, `..` only at the start and no deeper than the link's folder, then
 * plain components (a `..` after a component could climb out of a link's target).
 */
export function linkInside(path: string, target: string): boolean {
  if (target === '' || target.includes('\0') || target.startsWith('/') || target.includes('\\')) return false;
  const parts = target.split('/').filter((p) => p !== '');
  let up = 0;
  while (parts[up] === '..') up++;
  const rest = parts.slice(up);
  if (rest.length === 0 || rest.some((p) => p === '..' || p === '.')) return false;
  return up <= path.split('/').length - 1;
}

function makeDir(dir: string, shown: string, bad: (message: string) => Error): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
  } catch (err) {
    throw bad(`folder "${shown}" could not be made (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): a file of that name is in the archive`);
  }
}

function printable(s: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are what is replaced
  return s.slice(0, 300).replace(/[\u0000-\u001f\u007f]/g, '?');
}
