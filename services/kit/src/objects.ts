import { randomUUID } from 'node:crypto';
import { errors, readBlob, type Engines } from '@micro/sdk';

/**
 * Objects of a tenant (space's objects, file's files): the bytes in the blob store of the
 * tenant's namespace (so its blobBytes quota counts them and a purge deletes them), the
 * description (visibility, times, media type) in a store record of the same namespace
 * that names the blob. A write puts the new bytes under a new blob key first, then points
 * the record to it, then deletes the old blob: a reader sees the old object or the new one,
 * and a write that fails half way (a quota, a crash) leaves the object as it was.
 */

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** The longest object name, UTF-8 bytes. */
export const MAX_NAME_BYTES = 512;

/** What a store record of an object holds. */
export interface ObjectRecord {
  /** the blob key of its bytes */
  blob: string;
  size: number;
  /** epoch ms */
  created: number;
  /** epoch ms */
  modified: number;
  /** public objects are served by the gateway to anyone */
  public: boolean;
  /** what the service keeps beside (file: its metadata map) */
  extra?: Record<string, unknown>;
}

/**
 * An object name or file path as given, or a 400 naming `field`: 1 to MAX_NAME_BYTES UTF-8
 * bytes, `/`-separated segments none of which is empty, `.` or `..`, no leading `/`, no
 * backslash, no control characters (they would make names that print alike, paths that
 * climb out of a folder when written to disk, headers that split).
 */
export function checkName(value: string | undefined, field: string, service: string): string {
  const bad = (why: string) => errors.BadRequest(service, `${field}: ${why}`);
  if (value === undefined || value === '') throw bad('is required');
  if (Buffer.byteLength(value, 'utf8') > MAX_NAME_BYTES) throw bad(`must be at most ${MAX_NAME_BYTES} bytes`);
  // eslint-disable-next-line no-control-regex -- control characters are what it looks for
  if (/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(value)) throw bad('must not contain control characters');
  // a lone surrogate is not a character
  if (LONE_SURROGATE.test(value)) throw bad('must be well-formed Unicode');
  if (value.includes('\\')) throw bad('must not contain a backslash');
  if (value.startsWith('/')) throw bad('must not start with /');
  for (const segment of value.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') throw bad('must not have empty, "." or ".." segments');
  }
  return value;
}

/** Bytes from a base64 field (standard or URL-safe alphabet), or a 400 naming it. */
export function fromBase64(value: string, field: string, service: string, max: number): Buffer {
  const clean = value.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(clean)) throw errors.BadRequest(service, `${field}: must be base64`);
  const bytes = Buffer.from(clean, clean.includes('-') || clean.includes('_') ? 'base64url' : 'base64');
  if (bytes.length > max) throw errors.PayloadTooLarge(service, `${field}: at most ${max} bytes (got ${bytes.length})`);
  return bytes;
}

const TYPES: Record<string, string> = {
  txt: 'text/plain; charset=utf-8', md: 'text/plain; charset=utf-8', csv: 'text/csv; charset=utf-8', json: 'application/json',
  html: 'text/html; charset=utf-8', htm: 'text/html; charset=utf-8', xml: 'application/xml', svg: 'image/svg+xml',
  css: 'text/css', js: 'text/javascript', mjs: 'text/javascript', pdf: 'application/pdf',
  png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif', webp: 'image/webp', avif: 'image/avif', ico: 'image/x-icon', bmp: 'image/bmp',
  mp3: 'audio/mpeg', ogg: 'audio/ogg', wav: 'audio/wav', mp4: 'video/mp4', webm: 'video/webm',
  zip: 'application/zip', gz: 'application/gzip', tar: 'application/x-tar', wasm: 'application/wasm',
};

/** The media type of an object by its name's extension (application/octet-stream when unknown). */
export function mediaType(name: string): string {
  const dot = name.lastIndexOf('.');
  const ext = dot < 0 || dot < name.lastIndexOf('/') ? '' : name.slice(dot + 1).toLowerCase();
  return TYPES[ext] ?? 'application/octet-stream';
}

/** The objects of one service in one tenant's namespace. */
export class TenantObjects {
  private readonly scope: { namespace: string; database: string };

  constructor(
    private readonly engines: Pick<Engines, 'store' | 'blobs'>,
    readonly namespace: string,
    /** database of the records and prefix of the blob keys: the service's name */
    private readonly service: string,
  ) {
    this.scope = { namespace, database: service };
  }

  async head(key: string): Promise<ObjectRecord | undefined> {
    const [rec] = await this.engines.store.read(key, this.scope);
    return rec?.value as ObjectRecord | undefined;
  }

  /** The object's bytes (a 404 naming `key` when there is none). */
  async bytes(rec: ObjectRecord): Promise<Buffer> {
    return readBlob(this.engines.blobs.get(rec.blob, { namespace: this.namespace }));
  }

  /** Writes the object (see the class comment); `was` is its record before, if any. */
  async put(key: string, data: Buffer, was: ObjectRecord | undefined, fields: { public: boolean; extra?: Record<string, unknown> }): Promise<ObjectRecord> {
    const now = Date.now();
    const blob = `${this.service}/${randomUUID()}`;
    await this.engines.blobs.put(blob, data, { namespace: this.namespace });
    const rec: ObjectRecord = { blob, size: data.length, created: was?.created ?? now, modified: now, public: fields.public, ...(fields.extra ? { extra: fields.extra } : {}) };
    try {
      await this.engines.store.write({ key, value: rec }, this.scope);
    } catch (err) {
      await this.engines.blobs.delete(blob, { namespace: this.namespace }).catch(() => undefined);
      throw err;
    }
    if (was) await this.engines.blobs.delete(was.blob, { namespace: this.namespace }).catch(() => undefined);
    return rec;
  }

  /** Changes the record only (visibility, extra). */
  async describe(key: string, rec: ObjectRecord): Promise<void> {
    await this.engines.store.write({ key, value: { ...rec, modified: Date.now() } }, this.scope);
  }

  async delete(key: string, rec: ObjectRecord): Promise<void> {
    await this.engines.store.delete(key, this.scope);
    await this.engines.blobs.delete(rec.blob, { namespace: this.namespace }).catch(() => undefined);
  }

  /** The records whose keys start with `prefix`, in key order (at most `limit`). */
  async list(prefix: string, limit = 1000): Promise<{ key: string; rec: ObjectRecord }[]> {
    const records = await this.engines.store.read(prefix, { ...this.scope, prefix: true, limit });
    return records.map((r) => ({ key: r.key, rec: r.value as ObjectRecord }));
  }
}

/** `a/b c` → `a/b%20c`: each segment encoded, the slashes kept. */
export function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}
