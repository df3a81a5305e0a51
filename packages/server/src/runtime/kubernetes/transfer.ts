import { createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errors, MicroError } from '@micro/sdk';

/**
 * How a build's source and result travel between micro server and the pods of the
 * cluster: plain HTTP on the gateway, through URLs signed by the server.
 *
 *   GET /runtime/sources/<token>     the source of one build (the build Job fetches it once)
 *   PUT /runtime/builds/<token>      the packed build (the build Job uploads it once)
 *   GET /runtime/artifacts/<token>   the packed build (each pod of the service, at each start)
 *
 * A token is `<claim>.<mac>`: the claim (base64url JSON: kind, platform namespace,
 * service, build id, expiry, a nonce) and its HMAC-SHA256 under a key derived from
 * MICRO_AUTH_KEY (HKDF, its own label: no other use of the key can make one). A source or
 * build token lives `ttl` (default 30 minutes: a build's bound) and is single-use on this
 * server; an artifact token is reused by every start of a pod, so it lives as long as the
 * build (a year as a bound) and dies with it: its artifact is deleted when the build is
 * replaced or the service killed, after which the token reaches nothing. Each token names
 * one build of one service of one namespace; the route checks the kind, so a source
 * token cannot upload a build. Wrong, altered, expired or reused tokens are a 403 that
 * says which; nothing is read before the token is checked.
 *
 * Bounds: a build upload at most `maxBytes` (default 256 MiB, the artifact bound), counted
 * as it comes; a body announced larger is refused before it is read.
 */

export type TransferKind = 'source' | 'build' | 'artifact';

export interface TransferClaim {
  kind: TransferKind;
  namespace: string;
  service: string;
  build: string;
  /** ms since the epoch */
  exp: number;
  nonce: string;
}

/** What the runtime serves and keeps for the routes (kubernetes/runtime.ts). */
export interface TransferStore {
  /** the source of a build (a gzipped tar) */
  source(claim: TransferClaim): AsyncIterable<Uint8Array>;
  /** keeps the packed build that `data` streams; `entry` is the entry file the build found */
  build(claim: TransferClaim, data: AsyncIterable<Uint8Array>, entry: string): Promise<void>;
  /** the packed build */
  artifact(claim: TransferClaim): AsyncIterable<Uint8Array>;
}

export const TRANSFER_PREFIX = '/runtime/';
const ERROR_ID = 'runtime';
const TOKEN = /^[A-Za-z0-9_-]{16,2048}\.[A-Za-z0-9_-]{43}$/;
const ENTRY = /^(?!\/)(?!.*(?:^|\/)\.\.(?:\/|$))[A-Za-z0-9._@/+-]{1,512}$/;

export class Transfers {
  private readonly key: Buffer;
  private readonly now: () => number;
  private readonly used = new Map<string, number>();
  readonly maxBytes: number;

  constructor(options: { secret: string | Buffer; now?: () => number; maxBytes?: number }) {
    this.key = Buffer.from(hkdfSync('sha256', options.secret, 'micro runtime transfers', 'v1', 32));
    this.now = options.now ?? Date.now;
    this.maxBytes = options.maxBytes ?? 256 * 1024 * 1024;
  }

  sign(claim: Omit<TransferClaim, 'exp' | 'nonce'>, ttlMs: number): string {
    const full: TransferClaim = { ...claim, exp: this.now() + ttlMs, nonce: randomBytes(9).toString('base64url') };
    const body = Buffer.from(JSON.stringify(full)).toString('base64url');
    return `${body}.${this.mac(body)}`;
  }

  /** The claim of a token of `kind`, or a 403 saying what is wrong; `once` spends it. */
  verify(token: string, kind: TransferKind, once: boolean): TransferClaim {
    if (!TOKEN.test(token)) throw errors.Forbidden(ERROR_ID, 'not a transfer token of this server');
    const [body, mac] = token.split('.') as [string, string];
    const want = Buffer.from(this.mac(body));
    if (!timingSafeEqual(want, Buffer.from(mac))) throw errors.Forbidden(ERROR_ID, 'the transfer token is not signed by this platform (or was altered)');
    const claim = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as TransferClaim;
    if (claim.kind !== kind) throw errors.Forbidden(ERROR_ID, `the transfer token is for a ${claim.kind}, not a ${kind}`);
    const now = this.now();
    if (!(claim.exp > now)) throw errors.Forbidden(ERROR_ID, 'the transfer token has expired');
    if (once) {
      for (const [n, exp] of this.used) if (exp <= now) this.used.delete(n);
      if (this.used.has(claim.nonce)) throw errors.Forbidden(ERROR_ID, 'the transfer token was used already');
      this.used.set(claim.nonce, claim.exp);
    }
    return claim;
  }

  private mac(body: string): string {
    return createHmac('sha256', this.key).update(body).digest('base64url');
  }

  /**
   * The gateway's handler of `/runtime/…` (the path after the prefix). Errors are thrown
   * as MicroErrors; the gateway writes them.
   */
  async serve(req: IncomingMessage, res: ServerResponse, rest: string, store: TransferStore): Promise<void> {
    const [route, token = '', extra] = rest.split('/');
    if (extra !== undefined) throw errors.NotFound(ERROR_ID, 'not a transfer path: /runtime/sources/<token>, /runtime/builds/<token>, /runtime/artifacts/<token>');
    const method = req.method ?? '';
    if (route === 'sources' || route === 'artifacts') {
      if (method !== 'GET') throw errors.MethodNotAllowed(ERROR_ID, `${method} is not allowed here: GET`);
      const kind = route === 'sources' ? 'source' : 'artifact';
      const claim = this.verify(token, kind, kind === 'source');
      await stream(res, kind === 'source' ? store.source(claim) : store.artifact(claim));
      return;
    }
    if (route === 'builds') {
      if (method !== 'PUT') throw errors.MethodNotAllowed(ERROR_ID, `${method} is not allowed here: PUT`);
      const entry = String(req.headers['micro-entry'] ?? '');
      if (!ENTRY.test(entry)) throw errors.BadRequest(ERROR_ID, 'the Micro-Entry header must name the entry file, a relative path inside the build');
      const length = Number(req.headers['content-length'] ?? 0);
      if (length > this.maxBytes) throw errors.PayloadTooLarge(ERROR_ID, `the build is ${length} bytes; at most ${this.maxBytes}`);
      const claim = this.verify(token, 'build', true);
      await store.build(claim, bounded(req, this.maxBytes), entry);
      res.writeHead(204);
      res.end();
      return;
    }
    throw errors.NotFound(ERROR_ID, 'not a transfer path: /runtime/sources/<token>, /runtime/builds/<token>, /runtime/artifacts/<token>');
  }
}

/** Writes a stream as the answer; a failure before the first byte is thrown (the gateway answers it), after it the connection is cut. */
async function stream(res: ServerResponse, data: AsyncIterable<Uint8Array>): Promise<void> {
  const it = data[Symbol.asyncIterator]();
  let first: IteratorResult<Uint8Array>;
  try {
    first = await it.next();
  } catch (err) {
    if (err instanceof MicroError) throw err;
    throw errors.NotFound(ERROR_ID, `nothing to transfer: ${(err as Error).message}`);
  }
  res.writeHead(200, { 'content-type': 'application/gzip', 'cache-control': 'no-store' });
  try {
    for (let r = first; !r.done; r = await it.next()) {
      if (!res.write(r.value)) await new Promise((resolve) => res.once('drain', resolve));
    }
    res.end();
  } catch {
    res.destroy();
  }
}

async function* bounded(req: IncomingMessage, max: number): AsyncGenerator<Uint8Array> {
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) throw errors.PayloadTooLarge(ERROR_ID, `the build is larger than ${max} bytes`);
    yield chunk;
  }
}

/** The secret transfer tokens are signed with: MICRO_AUTH_KEY when set, else `fallback` (a key file of the server). */
export function transferSecret(env: NodeJS.ProcessEnv, fallback: () => Buffer): Buffer {
  const key = env.MICRO_AUTH_KEY;
  return key && key.length >= 16 ? createHash('sha256').update(key).digest() : fallback();
}
