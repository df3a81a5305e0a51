import { createPrivateKey, generateKeyPairSync, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { KeySet, readJson, signJwt, writeJsonDurable, accountOf, admitClaims, CLOCK_LEEWAY, RevocationList, type AccessClaims, type Account, type Jwks, type PublicJwk } from '@micro/sdk';
import type { AuthTokens } from './storage.js';
import { signScoped } from './scoped.js';

/**
 * Access tokens: JWTs signed with the server's Ed25519 key, short-lived (15 minutes by
 * default). The keys are kept in <home>/server/jwt-keys.json (0600) as a ring:
 *
 * - the current key signs; it is replaced by a new one every 24 hours (on the first
 *   token issued after that) or on demand (`rotate`, auth.RotateKeys);
 * - a replaced key keeps only its public half, served in the JWKS until every token it
 *   signed has expired, then it is dropped.
 *
 * A file of the earlier single-key format is replaced by a new ring (the tokens it
 * signed simply stop working: they lived an hour at most).
 */

export interface TokensOptions {
  /** seconds an access token lives (default 900) */
  ttl?: number;
  /** ms a signing key is used before a new one replaces it (default 24 h) */
  rotateEvery?: number;
  /**
   * seconds: a validly signed token whose exp - iat is longer is refused (default: ttl;
   * MICRO_AUTH_TOKEN_MAX_TTL). At least ttl.
   */
  maxTtl?: number;
  /** the revocation list verify checks (default: a new, empty one; the server gives auth storage's) */
  revocations?: RevocationList;
}

/** maxTtl of the options, checked against ttl; the list keeps its entries that long. */
export function tokenLimits(options: TokensOptions, ttl: number): { maxTtl: number; revocations: RevocationList } {
  const maxTtl = options.maxTtl ?? ttl;
  if (maxTtl < ttl) throw new Error(`MICRO_AUTH_TOKEN_MAX_TTL (${maxTtl} s) is shorter than the access-token lifetime (${ttl} s): the server's own tokens would be refused`);
  const revocations = options.revocations ?? new RevocationList();
  revocations.keepFor = Math.max(revocations.keepFor, maxTtl + CLOCK_LEEWAY);
  return { maxTtl, revocations };
}

export interface StoredKey {
  kid: string;
  createdAt: number;
  /** the private JWK; only the current key keeps it */
  privateJwk?: Record<string, unknown>;
  publicJwk: PublicJwk;
  /** when it stopped signing (ms) */
  retiredAt?: number;
}

interface KeysFile {
  version: 2;
  keys: StoredKey[];
}

export const ACCESS_TTL = 900;
const ROTATE_EVERY = 24 * 3600 * 1000;

export class Tokens implements AuthTokens {
  private file: KeysFile;
  private signing!: { kid: string; privateKey: KeyObject };
  private keySet!: KeySet;
  private jwksCache!: Jwks;
  private readonly ttl: number;
  private readonly rotateEvery: number;
  private readonly cache = new VerifiedTokens();
  readonly maxTtl: number;
  readonly revocations: RevocationList;

  private constructor(
    private readonly path: string,
    file: KeysFile | undefined,
    options: TokensOptions,
  ) {
    this.ttl = options.ttl ?? ACCESS_TTL;
    this.rotateEvery = options.rotateEvery ?? ROTATE_EVERY;
    ({ maxTtl: this.maxTtl, revocations: this.revocations } = tokenLimits(options, this.ttl));
    this.file = file ?? { version: 2, keys: [] };
    const current = this.file.keys.find((k) => k.privateJwk && !k.retiredAt);
    if (!current) this.rotate();
    else this.load();
  }

  static async load(path: string, options: TokensOptions = {}): Promise<Tokens> {
    let raw: Partial<KeysFile> | undefined;
    try {
      raw = readJson<Partial<KeysFile>>(path);
    } catch {
      // unreadable: a new ring (the tokens of the old keys stop working; they are short-lived)
      raw = undefined;
    }
    const file = raw?.version === 2 && Array.isArray(raw.keys) ? (raw as KeysFile) : undefined;
    const tokens = new Tokens(path, file, options);
    if (!file) tokens.save();
    return tokens;
  }

  /** seconds an access token lives */
  get accessTtl(): number {
    return this.ttl;
  }

  /** The kid of the key that signs now. */
  get currentKid(): string {
    return this.signing.kid;
  }

  /** Starts signing with a new key; the old one's public key stays until its tokens expired. */
  rotate(): string {
    const now = Date.now();
    for (const k of this.file.keys) {
      if (!k.retiredAt) k.retiredAt = now;
      delete k.privateJwk;
    }
    const key = newSigningKey(now);
    this.file.keys.push(key);
    this.prune(now);
    this.save();
    this.load();
    return key.kid;
  }

  /** Retired keys whose tokens have all expired leave the ring. */
  private prune(now: number): void {
    const keepFor = (this.ttl + 60) * 1000;
    this.file.keys = this.file.keys.filter((k) => !k.retiredAt || k.retiredAt + keepFor > now);
  }

  private save(): void {
    writeJsonDurable(this.path, this.file);
  }

  private load(): void {
    const current = this.file.keys.find((k) => k.privateJwk && !k.retiredAt) as StoredKey;
    this.signing = { kid: current.kid, privateKey: createPrivateKey({ key: current.privateJwk as never, format: 'jwk' }) };
    this.jwksCache = { keys: this.file.keys.map((k) => k.publicJwk) };
    this.keySet = new KeySet(this.jwksCache);
    this.cache.clear();
  }

  /** The public keys, current and previous, as a JWKS. */
  jwks(): Jwks {
    const now = Date.now();
    const before = this.file.keys.length;
    this.prune(now);
    if (this.file.keys.length !== before) {
      this.save();
      this.load();
    }
    return this.jwksCache;
  }

  async issue(account: Account, sid?: string): Promise<{ token: string; expiresAt: number }> {
    const current = this.file.keys.find((k) => k.kid === this.signing.kid);
    if (current && Date.now() - current.createdAt >= this.rotateEvery) this.rotate();
    const session = sid ?? defaultSid(account);
    return signAccessToken(account, this.ttl, this.signing, session, issuedAt(this.revocations, account, session));
  }

  /** The account a token speaks for; a 401 (TokenError) for a token that is forged, expired, too long-lived, revoked or malformed. */
  async verify(token: string): Promise<Account> {
    return (await this.verifyClaims(token)).account;
  }

  /** verify, with the token's claims (its sid, to mint a token of the same session). */
  async verifyClaims(token: string): Promise<{ account: Account; claims: AccessClaims }> {
    const now = Date.now() / 1000;
    const hit = this.cache.get(token, now);
    if (hit) {
      admitClaims(hit.claims, this.revocations, this.maxTtl, 'auth');
      return hit;
    }
    const claims = this.keySet.verify(token, 'auth', now);
    admitClaims(claims, this.revocations, this.maxTtl, 'auth');
    const account = accountOf(claims);
    this.cache.set(token, account, claims);
    return { account, claims };
  }

  async scope(token: string, audience: string): Promise<{ token: string; expiresAt: number }> {
    await this.verify(token);
    return signScoped(token, audience, this.signing);
  }
}

/** A new Ed25519 signing key with its public JWK. */
export function newSigningKey(now: number): StoredKey & { privateJwk: Record<string, unknown> } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const kid = `k${now.toString(36)}${randomBytes(3).toString('hex')}`;
  const pub = publicKey.export({ format: 'jwk' }) as { x: string };
  return {
    kid,
    createdAt: now,
    privateJwk: privateKey.export({ format: 'jwk' }) as Record<string, unknown>,
    publicJwk: { kty: 'OKP', crv: 'Ed25519', x: pub.x, kid, alg: 'EdDSA', use: 'sig' },
  };
}

/**
 * The session a token is issued for when the caller names none: `key:<id>` for what an API
 * key acts as (revoking the key ends its tokens), else a fresh id (one credential exchange).
 */
export function defaultSid(account: Account): string {
  const key = account.type === 'apikey' ? account.metadata?.key : undefined;
  return key ? `key:${key}` : `x:${randomUUID()}`;
}

/** An access token for an account, valid `ttl` seconds, of session `sid` (see defaultSid). */
export function signAccessToken(
  account: Account,
  ttl: number,
  key: { kid: string; privateKey: KeyObject },
  sid = defaultSid(account),
  iat = Math.floor(Date.now() / 1000),
): { token: string; expiresAt: number } {
  const expiresAt = iat + ttl;
  const claims = { sub: account.id, iss: account.issuer, iat, exp: expiresAt, jti: randomUUID(), sid, typ: account.type, scopes: account.scopes, ...(account.metadata ? { md: account.metadata } : {}) };
  return { token: signJwt(claims, key), expiresAt };
}

/**
 * When a token issued now says it was issued: now, or just after a revocation of its account
 * or session made in this same second (iat has whole seconds, and a revocation kills what
 * was issued up to its second): so a login right after an account is enabled again is not
 * born dead. At most a second ahead, well inside the verifiers' clock leeway.
 */
export function issuedAt(revocations: RevocationList, account: Account, sid: string): number {
  const now = Math.floor(Date.now() / 1000);
  const r = revocations.match({ sub: account.id, iss: account.issuer, sid, jti: '', iat: now });
  return r ? r.before + 1 : now;
}

/** Verified tokens by their text until they expire (bounded): the hot path verifies each token once. */
export class VerifiedTokens {
  private readonly map = new Map<string, { account: Account; claims: AccessClaims }>();

  /** the account and claims of a token verified before (revocation is checked on every use, by the caller) */
  get(token: string, now: number): { account: Account; claims: AccessClaims } | undefined {
    const hit = this.map.get(token);
    return hit && hit.claims.exp > now ? hit : undefined;
  }

  set(token: string, account: Account, claims: AccessClaims): void {
    if (this.map.size >= 1000) this.map.clear();
    this.map.set(token, { account, claims });
  }

  clear(): void {
    this.map.clear();
  }
}
