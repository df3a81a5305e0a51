import { randomBytes, randomUUID } from 'node:crypto';
import { errors, type Account } from '@micro/sdk';
import type { Db } from './db.js';

/**
 * Refresh tokens: opaque random values (`mrt_<256 bits>`), stored only as an HMAC, each
 * good for one exchange. A session is a chain ("family") of them: every Refresh marks
 * the token used and issues the next one of the chain. A used token that comes back was
 * copied — by a thief or by a client that lost the answer — and it ends the whole
 * chain: whoever holds the newest token must log in again too.
 */

export interface RefreshRow {
  hash: string;
  family: string;
  namespace: string;
  account: string;
  used_at: number | null;
  created_at: number;
  expires_at: number;
}

/** seconds a refresh token lives (each refresh starts a new period) */
export const REFRESH_TTL = 7 * 24 * 3600;
/** sessions an account may hold at once; the oldest ends when a new one starts beyond that */
export const MAX_SESSIONS = 64;
export const REFRESH_FORMAT = /^mrt_[A-Za-z0-9_-]{43}$/;

export class Sessions {
  private readonly st;

  constructor(
    private readonly db: Db,
    private readonly hash: (secret: string) => string,
    private readonly account: (id: string, namespace: string) => Account | undefined,
    private readonly ttl = REFRESH_TTL,
  ) {
    this.st = {
      insert: db.prepare('INSERT INTO refresh_tokens (hash, family, namespace, account, used_at, created_at, expires_at) VALUES (?, ?, ?, ?, NULL, ?, ?)'),
      get: db.prepare<[string], RefreshRow>('SELECT * FROM refresh_tokens WHERE hash = ?'),
      use: db.prepare('UPDATE refresh_tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL'),
      dropFamily: db.prepare('DELETE FROM refresh_tokens WHERE family = ?'),
      dropAccount: db.prepare('DELETE FROM refresh_tokens WHERE namespace = ? AND account = ?'),
      families: db.prepare<[string, string], { family: string }>('SELECT family FROM refresh_tokens WHERE namespace = ? AND account = ? GROUP BY family ORDER BY MIN(created_at), family'),
      prune: db.prepare('DELETE FROM refresh_tokens WHERE expires_at <= ?'),
    };
  }

  /** Starts a session (a new chain) for an account. */
  start(account: Account): { refreshToken: string; refreshExpiresAt: number; session: string } {
    return this.db.transaction(() => {
      this.st.prune.run(Date.now());
      const families = this.st.families.all(account.issuer, account.id);
      for (const f of families.slice(0, Math.max(0, families.length - MAX_SESSIONS + 1))) this.st.dropFamily.run(f.family);
      return this.issue(account.issuer, account.id, randomUUID());
    })();
  }

  private issue(namespace: string, id: string, family: string): { refreshToken: string; refreshExpiresAt: number; session: string } {
    const token = `mrt_${randomBytes(32).toString('base64url')}`;
    const now = Date.now();
    const expiresAt = now + this.ttl * 1000;
    this.st.insert.run(this.hash(token), family, namespace, id, now, expiresAt);
    return { refreshToken: token, refreshExpiresAt: Math.floor(expiresAt / 1000), session: family };
  }

  /** Exchanges a refresh token for the next one of its chain; a 401 that says why otherwise. */
  rotate(token: string): { account: Account; refreshToken: string; refreshExpiresAt: number; session: string } {
    const refused = (why: string) => errors.Unauthorized('auth', `refresh token refused: ${why}`);
    if (!REFRESH_FORMAT.test(token)) throw refused('not a refresh token');
    const hash = this.hash(token);
    const outcome = this.db.transaction(() => {
      const row = this.st.get.get(hash);
      if (!row) return { error: 'unknown (revoked, or never issued) — log in again' };
      if (row.used_at !== null) {
        this.st.dropFamily.run(row.family);
        return { error: 'it was used before, so it may have been stolen: the session is revoked — log in again', ended: row.family };
      }
      if (row.expires_at <= Date.now()) {
        this.st.dropFamily.run(row.family);
        return { error: `expired at ${new Date(row.expires_at).toISOString()} — log in again` };
      }
      const account = this.account(row.account, row.namespace);
      if (!account) {
        this.st.dropFamily.run(row.family);
        return { error: `account ${row.account} no longer exists` };
      }
      this.st.use.run(Date.now(), hash);
      return { account, ...this.issue(row.namespace, row.account, row.family) };
    })();
    if ('error' in outcome) throw Object.assign(refused(outcome.error as string), { endedSession: 'ended' in outcome ? outcome.ended : undefined });
    return outcome;
  }

  /** Ends the session of a refresh token, used or not (logout): its id, or undefined when it is not known. */
  end(token: string): string | undefined {
    if (!REFRESH_FORMAT.test(token)) return undefined;
    const row = this.st.get.get(this.hash(token));
    if (!row) return undefined;
    this.st.dropFamily.run(row.family);
    return row.family;
  }

  endSession(session: string): void {
    this.st.dropFamily.run(session);
  }

  /** Ends every session of an account (new password, reset admin). */
  revokeAccount(id: string, namespace: string): void {
    this.st.dropAccount.run(namespace, id);
  }
}
