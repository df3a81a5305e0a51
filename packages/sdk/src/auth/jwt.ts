import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { MicroError, Unauthorized } from '../errors/errors.js';
import type { Account } from '../context/context.js';

/**
 * Access tokens are compact JWTs signed with Ed25519 (`alg: EdDSA`), each naming the key
 * that signed it (`kid`). This module signs and checks them with node:crypto only, so
 * that every service can verify a token locally with the public keys the auth service
 * serves as a JWKS — no call per request, no extra dependency.
 *
 * Verification is strict: exactly three base64url parts, a header of `alg: EdDSA` (no
 * `none`, no HMAC confusion), a `kid` of the key set, a valid signature, then the claims
 * (`sub`, `iss`, `exp`, `iat` present and well typed, `exp` in the future).
 */

export const JWT_ALG = 'EdDSA';
/** tokens longer than this are refused before any parsing (metadata is bounded too) */
export const MAX_TOKEN_LENGTH = 16 * 1024;
/** seconds of clock difference tolerated on `exp` and `iat` */
export const CLOCK_LEEWAY = 10;

/** A public key as served in the JWKS (RFC 8037 OKP key). */
export interface PublicJwk {
  kty: 'OKP';
  crv: 'Ed25519';
  x: string;
  kid: string;
  alg: 'EdDSA';
  use: 'sig';
}

export interface Jwks {
  keys: PublicJwk[];
}

/** The claims of an access token. */
export interface AccessClaims {
  /** account id */
  sub: string;
  /** the account's namespace */
  iss: string;
  iat: number;
  exp: number;
  jti: string;
  /** account type: user, service, apikey */
  typ: string;
  scopes: string[];
  md?: Record<string, string>;
  /**
   * `<namespace>/<service>` on a service-scoped token (see scoped.ts): only that service
   * accepts it. Absent on a general token, which only the server (its core services and
   * gateway) accepts.
   */
  aud?: string;
  /** the login session the token came from (see revocations.ts) */
  sid?: string;
}

export interface SigningKey {
  kid: string;
  privateKey: KeyObject;
}

function b64json(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

export function signJwt(claims: AccessClaims, key: SigningKey): string {
  const head = b64json({ alg: JWT_ALG, typ: 'JWT', kid: key.kid });
  const body = b64json(claims);
  const signature = sign(null, Buffer.from(`${head}.${body}`), key.privateKey).toString('base64url');
  return `${head}.${body}.${signature}`;
}

/** The account a set of verified claims speaks for. */
export function accountOf(claims: AccessClaims): Account {
  const account: Account = { id: claims.sub, type: claims.typ, issuer: claims.iss, scopes: claims.scopes };
  if (claims.md) account.metadata = claims.md;
  return account;
}

const B64URL = /^[A-Za-z0-9_-]*$/;

/** Why a token was refused; the detail of the 401 says it in words. */
export type TokenProblem = 'malformed' | 'algorithm' | 'unknown-key' | 'signature' | 'expired' | 'not-yet-valid' | 'claims' | 'audience' | 'revoked' | 'lifetime';

export class TokenError extends MicroError {
  constructor(
    id: string,
    readonly problem: TokenProblem,
    detail: string,
  ) {
    super(id, 401, detail);
  }
}

function parsePart(part: string): Record<string, unknown> | undefined {
  if (!B64URL.test(part)) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The key id a token names, without checking anything else (to know whether the key set must be refreshed). */
export function tokenKid(token: string): string | undefined {
  const dot = token.indexOf('.');
  if (dot <= 0 || token.length > MAX_TOKEN_LENGTH) return undefined;
  const kid = parsePart(token.slice(0, dot))?.kid;
  return typeof kid === 'string' ? kid : undefined;
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.length <= 64 && v.every((s) => typeof s === 'string');
}

/**
 * Public keys by kid, made once from a JWKS; `verify` checks a token against them.
 * Keys that are not Ed25519 OKP keys are skipped (they cannot have signed our tokens).
 */
export class KeySet {
  private readonly keys = new Map<string, KeyObject>();

  constructor(jwks: Jwks | { keys: unknown[] }) {
    for (const jwk of jwks.keys) {
      const k = jwk as Partial<PublicJwk>;
      if (k?.kty !== 'OKP' || k.crv !== 'Ed25519' || typeof k.kid !== 'string' || typeof k.x !== 'string') continue;
      try {
        this.keys.set(k.kid, createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: k.x }, format: 'jwk' }));
      } catch {
        // a broken key is as good as no key
      }
    }
  }

  has(kid: string): boolean {
    return this.keys.has(kid);
  }

  get size(): number {
    return this.keys.size;
  }

  /**
   * The verified claims; a TokenError (401) that says why otherwise. `audience` is who
   * checks: undefined for the server itself, which takes general tokens only; a
   * service's `<namespace>/<name>`, which takes only tokens scoped to it. A token handed
   * to one service is thus worthless anywhere else.
   */
  verify(token: string, id = 'auth', now = Date.now() / 1000, audience?: string): AccessClaims {
    const bad = (problem: TokenProblem, why: string) => new TokenError(id, problem, `invalid token: ${why}`);
    if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH) throw bad('malformed', 'not a token (empty or too long)');
    const parts = token.split('.');
    if (parts.length !== 3) throw bad('malformed', 'not a JWT (it must have three parts)');
    const [h, p, s] = parts as [string, string, string];
    const header = parsePart(h);
    if (!header) throw bad('malformed', 'the header is not base64url JSON');
    if (header.alg !== JWT_ALG) throw bad('algorithm', `algorithm ${JSON.stringify(header.alg ?? null)} is not accepted (EdDSA only)`);
    if (typeof header.kid !== 'string') throw bad('malformed', 'the header names no key (kid)');
    const key = this.keys.get(header.kid);
    if (!key) throw bad('unknown-key', `signed by an unknown key ${JSON.stringify(header.kid).slice(0, 80)} (forged, or from another server)`);
    if (!s || !B64URL.test(s)) throw bad('signature', 'the signature is missing');
    if (!verify(null, Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url'))) throw bad('signature', 'the signature does not match (forged or tampered)');
    const c = parsePart(p);
    if (!c) throw bad('claims', 'the payload is not base64url JSON');
    if (typeof c.sub !== 'string' || typeof c.iss !== 'string' || typeof c.exp !== 'number' || typeof c.iat !== 'number' || !isStringArray(c.scopes)) {
      throw bad('claims', 'the claims sub, iss, exp, iat and scopes are required');
    }
    if (c.exp + CLOCK_LEEWAY <= now) throw new TokenError(id, 'expired', `token expired at ${new Date(c.exp * 1000).toISOString()} — get a new one (micro login, or refresh)`);
    if (c.iat - CLOCK_LEEWAY > now) throw bad('not-yet-valid', 'issued in the future');
    if (c.aud !== undefined && typeof c.aud !== 'string') throw bad('claims', 'the claim aud must be a string');
    if (c.aud !== audience) {
      if (audience === undefined) throw bad('audience', `the token is scoped to service ${String(c.aud).slice(0, 200)} and is accepted there only`);
      if (c.aud === undefined) throw bad('audience', `a general token is not accepted by ${audience}: send a token scoped to it (auth.Scope; the SDK's bearer middleware and the gateway do this)`);
      throw bad('audience', `the token is scoped to service ${String(c.aud).slice(0, 200)}, not ${audience}`);
    }
    const claims: AccessClaims = {
      sub: c.sub,
      iss: c.iss,
      iat: c.iat,
      exp: c.exp,
      jti: typeof c.jti === 'string' ? c.jti : '',
      typ: typeof c.typ === 'string' ? c.typ : 'user',
      scopes: c.scopes,
    };
    if (c.aud !== undefined) claims.aud = c.aud;
    if (typeof c.sid === 'string') claims.sid = c.sid;
    if (c.md && typeof c.md === 'object' && !Array.isArray(c.md)) {
      const md: Record<string, string> = {};
      for (const [k, v] of Object.entries(c.md as Record<string, unknown>)) if (typeof v === 'string') md[k] = v;
      claims.md = md;
    }
    return claims;
  }
}

/** The credentials of a bearer header, or a 401 saying what the header must look like. */
export function bearerToken(header: string, id: string): string {
  const m = /^Bearer\s+(\S+)$/i.exec(header);
  if (!m) throw Unauthorized(id, 'authorization must be "Bearer <token>"');
  return m[1] as string;
}
