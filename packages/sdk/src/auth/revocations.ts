import { ServiceUnavailable } from '../errors/errors.js';
import { CLOCK_LEEWAY, TokenError, type AccessClaims } from './jwt.js';

/**
 * Revocation of access tokens before they expire. An entry names what it ends:
 *
 * - `account`: every token of an account (`<namespace>/<id>`: deleted, or its access removed);
 * - `session`: every token of one login session (`sid`: the refresh family of a user's
 *   login, `key:<id>` for the tokens an API key was exchanged for, or the fresh id of one
 *   id/secret exchange) — logout, a revoked key;
 * - `token`: one token (`jti`).
 *
 * A token is dead when an entry matches it and it was issued no later than the entry's
 * `before` (epoch seconds): tokens issued afterwards (a new login) are not touched, except
 * within the same second (iat has whole seconds). An entry is kept until `before` plus the
 * longest lifetime a token may have (`keepFor`, the max token TTL plus clock leeway): by
 * then every token it could match has expired anyway, so the list stays as small as the
 * revocations of the last few minutes.
 */
export interface Revocation {
  kind: 'account' | 'session' | 'token';
  id: string;
  /** epoch seconds: tokens issued at or before it are dead */
  before: number;
}

/** What of a token's claims revocation looks at. */
export type RevocableClaims = Pick<AccessClaims, 'sub' | 'iss' | 'iat' | 'jti'> & { sid?: string };

/** The key of an entry in the list. */
function keyOf(kind: Revocation['kind'], id: string): string {
  return `${kind}\u0000${id}`;
}

export class RevocationList {
  private readonly map = new Map<string, Revocation>();
  private readonly listeners = new Set<(r: Revocation) => void>();
  private lastPrune = 0;
  /**
   * Why the list may be missing entries made elsewhere (undefined: it is current). A list
   * fed from a shared store sets it (see the server's pg/revocations.ts): while it says
   * so, tokens are refused with a 503 rather than risk accepting a revoked one.
   */
  stale: () => string | undefined = () => undefined;

  /** keepFor: seconds an entry is kept after its `before` (the max token lifetime, plus leeway) */
  constructor(
    public keepFor = 900 + CLOCK_LEEWAY,
    private readonly now: () => number = Date.now,
  ) {}

  /** Adds (or extends) an entry; listeners hear of it when it changed the list. */
  add(r: Revocation): boolean {
    const k = keyOf(r.kind, r.id);
    const had = this.map.get(k);
    if (had && had.before >= r.before) return false;
    if (r.before + this.keepFor <= this.now() / 1000) return false;
    const entry = { kind: r.kind, id: r.id, before: r.before };
    this.map.set(k, entry);
    for (const l of this.listeners) l(entry);
    return true;
  }

  /** The entry that kills a token, or undefined. A map lookup or three: on every call's path. */
  match(c: RevocableClaims): Revocation | undefined {
    if (this.map.size === 0) return undefined;
    this.pruneSometimes();
    const hit = this.map.get(keyOf('account', `${c.iss}/${c.sub}`)) ?? (c.sid ? this.map.get(keyOf('session', c.sid)) : undefined) ?? (c.jti ? this.map.get(keyOf('token', c.jti)) : undefined);
    return hit && c.iat <= hit.before ? hit : undefined;
  }

  /** The entries still in force. */
  entries(): Revocation[] {
    this.prune();
    return [...this.map.values()];
  }

  get size(): number {
    return this.map.size;
  }

  /** Tells `fn` of every entry added from now on; returns the unsubscribe. */
  subscribe(fn: (r: Revocation) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Drops the entries whose tokens have all expired. */
  prune(): void {
    const now = this.now() / 1000;
    this.lastPrune = now;
    for (const [k, r] of this.map) if (r.before + this.keepFor <= now) this.map.delete(k);
  }

  private pruneSometimes(): void {
    if (this.now() / 1000 - this.lastPrune >= 60) this.prune();
  }
}

/** The 401 of a revoked token, saying why. */
export function revokedError(id: string, r: Revocation): TokenError {
  const why = r.kind === 'account' ? 'its account was deleted or lost its access' : r.kind === 'session' ? (r.id.startsWith('key:') ? 'its API key was revoked or blocked' : 'its session ended (logout)') : 'it was revoked';
  return new TokenError(id, 'revoked', `token revoked: ${why} — get a new one (micro login)`);
}

/**
 * A validly signed token that claims a longer life than `maxTtl` seconds (exp - iat) is
 * refused: no key the server holds should ever have signed it, so it is a sign of a
 * leaked key or a forged issuer, and it would outlive every revocation entry.
 */
export function checkLifetime(claims: Pick<AccessClaims, 'iat' | 'exp'>, maxTtl: number, id: string): void {
  if (claims.exp - claims.iat > maxTtl) {
    throw new TokenError(id, 'lifetime', `invalid token: it claims a lifetime of ${claims.exp - claims.iat} s, more than the ${maxTtl} s tokens may have`);
  }
}

/** The whole check after the signature: lifetime, then revocation. */
export function admitClaims(claims: RevocableClaims & { exp: number }, list: RevocationList, maxTtl: number, id: string): void {
  checkLifetime(claims, maxTtl, id);
  const stale = list.stale();
  if (stale) throw ServiceUnavailable(id, `cannot check the token: ${stale}`);
  const r = list.match(claims);
  if (r) throw revokedError(id, r);
}

/** MICRO_AUTH_TOKEN_MAX_TTL (seconds), or `fallback`; a clear error for a value that is not a positive integer. */
export function maxTokenTtlFromEnv(fallback: number, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.MICRO_AUTH_TOKEN_MAX_TTL;
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 60 || n > 86_400) throw new Error(`MICRO_AUTH_TOKEN_MAX_TTL: seconds between 60 and 86400, not ${JSON.stringify(raw)}`);
  return n;
}
