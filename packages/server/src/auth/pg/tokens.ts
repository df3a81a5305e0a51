import { createPrivateKey, type KeyObject } from 'node:crypto';
import { accountOf, admitClaims, errors, KeySet, TokenError, type AccessClaims, type Account, type Jwks, type Logger, type PublicJwk, type RevocationList } from '@micro/sdk';
import type { Sealer } from '../crypto.js';
import type { AuthTokens } from '../storage.js';
import { signScoped } from '../scoped.js';
import { ACCESS_TTL, defaultSid, issuedAt, newSigningKey, signAccessToken, tokenLimits, VerifiedTokens, type TokensOptions } from '../tokens.js';
import { announce, AUTH_LOCK, type PgContext } from './accounts.js';

/**
 * The signing keys of a platform in Postgres, one ring for every node: a token signed by
 * one node verifies at any other. The same ring as ../tokens.ts (24 h rotation, retired
 * keys keep their public half for TTL + 60 s), with:
 *
 * - the private half of the current key sealed (AES-256-GCM under MICRO_AUTH_KEY, bound to
 *   its kid): the database alone does not let anyone sign;
 * - verification in memory (no round trip): the ring is read at start, again when a
 *   NOTIFY says it changed, every 30 s, and when a token names a kid this node does not
 *   know (a token of a key made a moment ago on another node; such reads start at most
 *   once a second, and the token waits for the next one);
 * - rotation under an advisory lock: nodes due to rotate at the same moment make one new
 *   key, not one each.
 */

interface RingKey {
  kid: string;
  createdAt: number;
  publicJwk: PublicJwk;
  retiredAt?: number;
}

const ROTATE_EVERY = 24 * 3600 * 1000;
const RELOAD_EVERY = 30_000;

export class PgTokens implements AuthTokens {
  private ring: RingKey[] = [];
  private signing!: { kid: string; privateKey: KeyObject; createdAt: number };
  private keySet = new KeySet({ keys: [] });
  private readonly cache = new VerifiedTokens();
  private readonly ttl: number;
  private readonly rotateEvery: number;
  private reloading: Promise<void> | undefined;
  private scheduled: Promise<void> | undefined;
  private lastReload = 0;
  private readonly timer: NodeJS.Timeout;
  readonly maxTtl: number;
  /** every node's revocations (pg/revocations.ts keeps it in step with the table and its NOTIFYs) */
  readonly revocations: RevocationList;

  private constructor(
    private readonly ctx: PgContext,
    private readonly sealer: Sealer,
    options: TokensOptions,
    private readonly logger?: Logger,
  ) {
    this.ttl = options.ttl ?? ACCESS_TTL;
    this.rotateEvery = options.rotateEvery ?? ROTATE_EVERY;
    ({ maxTtl: this.maxTtl, revocations: this.revocations } = tokenLimits(options, this.ttl));
    // a backstop for a NOTIFY lost on a connection that died silently
    this.timer = setInterval(() => {
      this.reload().catch((err: unknown) => this.logger?.warn({ err: (err as Error).message }, 'auth: could not reload the signing keys'));
    }, RELOAD_EVERY);
    this.timer.unref();
  }

  static async open(ctx: PgContext, sealer: Sealer, options: TokensOptions = {}, logger?: Logger): Promise<PgTokens> {
    const tokens = new PgTokens(ctx, sealer, options, logger);
    try {
      await tokens.rotateIf('missing');
    } catch (err) {
      tokens.stop();
      throw err;
    }
    return tokens;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  get accessTtl(): number {
    return this.ttl;
  }

  get currentKid(): string {
    return this.signing.kid;
  }

  /** Starts signing with a new key, on every node. */
  async rotate(): Promise<string> {
    await this.rotateIf('always');
    return this.signing.kid;
  }

  /**
   * Under the lock: `missing` makes the first key of a platform, `due` replaces a key
   * older than the rotation period (unless another node just did), `always` replaces it.
   */
  private async rotateIf(when: 'missing' | 'due' | 'always'): Promise<void> {
    const t = this.ctx.t;
    await this.ctx.db.transaction(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [AUTH_LOCK, `${this.ctx.db.prefix}:signing`]);
      const now = Date.now();
      const { rows } = await c.query<{ created_at: string }>(`SELECT created_at FROM ${t.signing} WHERE retired_at IS NULL AND private_sealed IS NOT NULL`);
      const current = rows[0];
      if (when === 'missing' && current) return;
      if (when === 'due' && current && now - Number(current.created_at) < this.rotateEvery) return;
      const key = newSigningKey(now);
      await c.query(`UPDATE ${t.signing} SET retired_at = COALESCE(retired_at, $1), private_sealed = NULL WHERE retired_at IS NULL OR private_sealed IS NOT NULL`, [now]);
      await c.query(`INSERT INTO ${t.signing} (kid, created_at, private_sealed, public_jwk) VALUES ($1, $2, $3, $4)`, [
        key.kid,
        now,
        this.sealer.seal(JSON.stringify(key.privateJwk), `signing-key:${key.kid}`),
        JSON.stringify(key.publicJwk),
      ]);
      await c.query(`DELETE FROM ${t.signing} WHERE retired_at IS NOT NULL AND retired_at <= $1`, [now - this.keepFor]);
      await announce(this.ctx, c, { t: 'signing' });
    });
    await this.load();
  }

  private get keepFor(): number {
    return (this.ttl + 60) * 1000;
  }

  /** Reads the ring again (coalesced: callers at the same moment share one read). */
  reload(): Promise<void> {
    this.reloading ??= this.load().finally(() => {
      this.reloading = undefined;
    });
    return this.reloading;
  }

  /**
   * A reading of the ring that starts at most once a second; callers in the meantime
   * share the next one (a flood of made-up kids costs one query a second).
   */
  private reloadSoon(): Promise<void> {
    this.scheduled ??= new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, this.lastReload + 1_000 - Date.now()))).then(() => {
      this.scheduled = undefined;
      return this.reload();
    });
    return this.scheduled;
  }

  private async load(): Promise<void> {
    this.lastReload = Date.now();
    const { rows } = await this.ctx.db.query<{ kid: string; created_at: string; private_sealed: string | null; public_jwk: string; retired_at: string | null }>(
      `SELECT kid, created_at, private_sealed, public_jwk, retired_at FROM ${this.ctx.t.signing} ORDER BY created_at, kid`,
    );
    const ring: RingKey[] = rows.map((r) => ({
      kid: r.kid,
      createdAt: Number(r.created_at),
      publicJwk: JSON.parse(r.public_jwk) as PublicJwk,
      ...(r.retired_at === null ? {} : { retiredAt: Number(r.retired_at) }),
    }));
    const current = rows.find((r) => r.private_sealed !== null && r.retired_at === null);
    if (!current) throw errors.ServiceUnavailable('auth', 'no current signing key in the database (rotation in progress?)');
    if (current.kid !== this.signing?.kid) {
      let jwk: Record<string, unknown>;
      try {
        jwk = JSON.parse(this.sealer.open(current.private_sealed as string, `signing-key:${current.kid}`).toString('utf8')) as Record<string, unknown>;
      } catch {
        throw new Error(`the signing key ${current.kid} does not open with this node's MICRO_AUTH_KEY: every node of a platform needs the same MICRO_AUTH_KEY`);
      }
      this.signing = { kid: current.kid, privateKey: createPrivateKey({ key: jwk as never, format: 'jwk' }), createdAt: Number(current.created_at) };
    }
    this.ring = ring;
    this.keySet = new KeySet({ keys: ring.map((k) => k.publicJwk) });
  }

  jwks(): Jwks {
    const now = Date.now();
    return { keys: this.ring.filter((k) => !k.retiredAt || k.retiredAt + this.keepFor > now).map((k) => k.publicJwk) };
  }

  async issue(account: Account, sid?: string): Promise<{ token: string; expiresAt: number }> {
    if (Date.now() - this.signing.createdAt >= this.rotateEvery) await this.rotateIf('due');
    const session = sid ?? defaultSid(account);
    return signAccessToken(account, this.ttl, this.signing, session, issuedAt(this.revocations, account, session));
  }

  async verify(token: string): Promise<Account> {
    return (await this.verifyClaims(token)).account;
  }

  async verifyClaims(token: string): Promise<{ account: Account; claims: AccessClaims }> {
    const now = Date.now() / 1000;
    const hit = this.cache.get(token, now);
    if (hit) {
      admitClaims(hit.claims, this.revocations, this.maxTtl, 'auth');
      return hit;
    }
    let claims;
    try {
      claims = this.keySet.verify(token, 'auth', now);
    } catch (err) {
      // a key made a moment ago on another node: read the ring again (at most once a second)
      if (!(err instanceof TokenError) || err.problem !== 'unknown-key') throw err;
      await this.reloadSoon();
      claims = this.keySet.verify(token, 'auth', now);
    }
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
