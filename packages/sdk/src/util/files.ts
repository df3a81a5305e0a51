import { mkdirSync, openSync, writeSync, fsyncSync, closeSync, renameSync, readFileSync, existsSync, chmodSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { randomHex } from './ids.js';

/**
 * Durable, private files for what Micro keeps in MICRO_HOME (keys, credentials, state).
 * "Acknowledged means durable": the data is written to a temp file, flushed, renamed
 * over the old file and the directory flushed, so a crash leaves the old or the new
 * file, never half of one. Files are 0600 and folders 0700: they may hold secrets.
 */
export function writeFileDurable(path: string, data: string | Uint8Array): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomHex(4)}.tmp`);
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  syncDir(dir);
}

export function writeJsonDurable(path: string, value: unknown): void {
  writeFileDurable(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** The parsed JSON file, or undefined when it does not exist. */
export function readJson<T>(path: string): T | undefined {
  if (!existsSync(path)) return undefined;
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

/** Makes a folder that only its owner may enter (and tightens one that exists). */
export function privateDir(path: string): string {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  chmodSync(path, 0o700);
  return path;
}

/** Flushes a folder, so that a rename or a new file in it survives a crash. */
export function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // some file systems cannot fsync a directory; the rename is still atomic
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
