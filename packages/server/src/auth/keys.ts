import { randomBytes, timingSafeEqual } from 'node:crypto';
import { admit } from '../quota/limits.js';
import { errors, keyBlocked, KEY_SERVICES_METADATA, type Account, type KeyInfo } from '@micro/sdk';
import type { Db } from './db.js';
import { KeyUsage } from './key-usage.js';

/**
 * API keys: long-lived credentials of an account for programs, `<keyId>.<secret>`.
 * The key id is stored as is (to find the key, to list and revoke it); the secret only
 * as an HMAC. A key acts for its account with the scopes it was given (a subset of the
 * account's), and never with more than the account has now; it may call the services it
 * was given (`*`: any). Revoking deletes it; blocking keeps it, refused with the admin's
 * message until unblocked. Its last use is remembered in memory and written at most once
 * a minute (key-usage.ts).
 */

export interface KeyRow {
  key_id: string;
  namespace: string;
  account: string;
  name: string;
  description: string;
  scopes: string;
  /** JSON: ["*"] or service names */
  services: string;
  hash: string;
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
  blocked_at: number | null;
  block_message: string | null;
}

/** What a key is made with besides its name and scopes. */
export interface KeyDetails {
  /** default '' */
  description?: string;
  /** default ['*'] */
  services?: string[];
}

export const KEY_PREFIX = 'mk_';
export const KEY_FORMAT = /^mk_[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/;
export const MAX_KEYS_PER_ACCOUNT = 100;

/** A new key id and secret, and the row's fields that do not come from the caller. */
export function newKey(expiresIn: number | undefined, details: KeyDetails = {}): { keyId: string; secret: string; now: number; expiresAt: number | null; description: string; services: string } {
  const now = Date.now();
  return {
    keyId: `${KEY_PREFIX}${randomBytes(8).toString('hex')}`,
    secret: randomBytes(32).toString('base64url'),
    now,
    expiresAt: expiresIn === undefined ? null : now + expiresIn * 1000,
    description: details.description ?? '',
    services: JSON.stringify(details.services ?? ['*']),
  };
}

export class ApiKeys {
  private readonly st;
  readonly usage: KeyUsage;

  constructor(
    private readonly db: Db,
    private readonly hash: (secret: string) => string,
    private readonly account: (id: string, namespace: string) => Account | undefined,
  ) {
    this.st = {
      insert: db.prepare(
        'INSERT INTO api_keys (key_id, namespace, account, name, description, scopes, services, hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      get: db.prepare<[string], KeyRow>('SELECT * FROM api_keys WHERE key_id = ?'),
      count: db.prepare<[string, string], { n: number }>('SELECT COUNT(*) AS n FROM api_keys WHERE namespace = ? AND account = ?'),
      inNamespace: db.prepare<[string], { n: number }>('SELECT COUNT(*) AS n FROM api_keys WHERE namespace = ?'),
      byAccount: db.prepare<[string, string], KeyRow>('SELECT * FROM api_keys WHERE namespace = ? AND account = ? ORDER BY created_at, key_id'),
      byNamespace: db.prepare<[string], KeyRow>('SELECT * FROM api_keys WHERE namespace = ? ORDER BY account, created_at, key_id LIMIT 10000'),
      delete: db.prepare('DELETE FROM api_keys WHERE key_id = ?'),
      block: db.prepare('UPDATE api_keys SET blocked_at = ?, block_message = ? WHERE key_id = ? AND blocked_at IS NULL'),
      unblock: db.prepare('UPDATE api_keys SET blocked_at = NULL, block_message = NULL WHERE key_id = ? AND blocked_at IS NOT NULL'),
      used: db.prepare('UPDATE api_keys SET last_used_at = MAX(COALESCE(last_used_at, 0), ?) WHERE key_id = ?'),
    };
    const used = this.st.used;
    this.usage = new KeyUsage((uses) => {
      if (!db.open) return;
      db.transaction(() => {
        for (const [id, at] of uses) used.run(at, id);
      })();
    });
  }

  /** A new key for an account; the key itself is returned here and never again. */
  create(owner: Account, name: string, scopes: string[], expiresIn?: number, maxInNamespace?: number | null, details?: KeyDetails): { key: string; info: KeyInfo } {
    const k = newKey(expiresIn, details);
    this.db.transaction(() => {
      if ((this.st.count.get(owner.issuer, owner.id)?.n ?? 0) >= MAX_KEYS_PER_ACCOUNT) throw tooManyKeys(owner);
      if (typeof maxInNamespace === 'number') admit('apiKeys', this.st.inNamespace.get(owner.issuer)?.n ?? 0, 1, maxInNamespace, owner.issuer);
      this.st.insert.run(k.keyId, owner.issuer, owner.id, name, k.description, JSON.stringify(scopes), k.services, this.hash(`${k.keyId}.${k.secret}`), k.now, k.expiresAt);
    })();
    return { key: `${k.keyId}.${k.secret}`, info: info(this.st.get.get(k.keyId) as KeyRow) };
  }

  /**
   * The account a key acts as; undefined for a key that is unknown, revoked or wrong, or
   * whose account is gone or disabled. A key whose secret matched but that expired is a
   * 401 saying so, one that is blocked a 403 v1.blocked with the admin's message.
   */
  verify(key: string): Account | undefined {
    if (!KEY_FORMAT.test(key)) return undefined;
    const keyId = key.slice(0, key.indexOf('.'));
    const row = this.st.get.get(keyId);
    const candidate = Buffer.from(this.hash(key), 'hex');
    if (!row) return undefined;
    const expected = Buffer.from(row.hash, 'hex');
    if (candidate.length !== expected.length || !timingSafeEqual(candidate, expected)) return undefined;
    const account = keyAccount(row, this.account(row.account, row.namespace));
    if (account) this.usage.touch(keyId);
    return account;
  }

  get(keyId: string): KeyInfo | undefined {
    const row = this.st.get.get(keyId);
    return row && info(row, this.usage.seen(keyId));
  }

  list(namespace: string, account?: string): KeyInfo[] {
    const rows = account === undefined ? this.st.byNamespace.all(namespace) : this.st.byAccount.all(namespace, account);
    return rows.map((r) => info(r, this.usage.seen(r.key_id)));
  }

  revoke(keyId: string): boolean {
    return this.st.delete.run(keyId).changes > 0;
  }

  /** Blocks a key with a message; undefined when there is no such key, a 409 when it is blocked already. */
  block(keyId: string, message: string): KeyInfo | undefined {
    const { changes } = this.st.block.run(Date.now(), message, keyId);
    const row = this.st.get.get(keyId);
    if (row && changes === 0) throw alreadyBlocked(row);
    return row && info(row, this.usage.seen(keyId));
  }

  /** Lifts the block of a key; undefined when there is no such key, a 409 when it is not blocked. */
  unblock(keyId: string): KeyInfo | undefined {
    const { changes } = this.st.unblock.run(keyId);
    const row = this.st.get.get(keyId);
    if (row && changes === 0) throw notBlocked(keyId);
    return row && info(row, this.usage.seen(keyId));
  }

  /** Writes the last uses remembered (close does it too). */
  flushUsage(): void {
    void this.usage.flush();
  }
}

export function tooManyKeys(owner: Account): Error {
  return errors.TooManyRequests('auth', `account ${owner.id} has ${MAX_KEYS_PER_ACCOUNT} API keys, the most it may have — revoke one first`);
}

export function alreadyBlocked(row: KeyRow): Error {
  const since = new Date(row.blocked_at ?? 0).toISOString();
  return errors.Conflict('auth', `API key ${row.key_id} is blocked already (since ${since}: ${JSON.stringify(row.block_message ?? '')}): unblock it first to block it with another message`);
}

export function notBlocked(keyId: string): Error {
  return errors.Conflict('auth', `API key ${keyId} is not blocked`);
}

/**
 * What a key whose secret matched acts as, now: undefined when its account is gone (or
 * disabled); a 401 when it expired, a 403 v1.blocked when it is blocked; the key's scopes
 * intersected with the account's current ones, and the services it may call in its
 * metadata (always set, so that no account metadata can stand in for it).
 */
export function keyAccount(row: KeyRow, owner: Account | undefined, now = Date.now()): Account | undefined {
  if (!owner) return undefined;
  if (row.expires_at !== null && row.expires_at <= now) {
    throw errors.Unauthorized('auth', `API key ${row.key_id} expired at ${new Date(row.expires_at).toISOString()}: create a new one`);
  }
  if (row.blocked_at !== null) throw keyBlocked(row.block_message ?? '');
  const keyScopes = JSON.parse(row.scopes) as string[];
  const services = JSON.parse(row.services) as string[];
  return {
    id: owner.id,
    type: 'apikey',
    issuer: owner.issuer,
    scopes: keyScopes.filter((s) => owner.scopes.includes(s)),
    metadata: { ...owner.metadata, key: row.key_id, keyName: row.name, [KEY_SERVICES_METADATA]: services.join(',') },
  };
}

/** What listings show of a key: its row, with `seen` (a use this node has not written yet) over the stored last use. */
export function info(row: KeyRow, seen?: number): KeyInfo {
  const out: KeyInfo = {
    id: row.key_id,
    name: row.name,
    description: row.description,
    account: row.account,
    namespace: row.namespace,
    scopes: JSON.parse(row.scopes) as string[],
    services: JSON.parse(row.services) as string[],
    createdAt: row.created_at,
    blocked: row.blocked_at !== null,
  };
  const lastUsed = Math.max(row.last_used_at ?? 0, seen ?? 0);
  if (lastUsed > 0) out.lastUsedAt = lastUsed;
  if (row.expires_at !== null) out.expiresAt = row.expires_at;
  if (row.blocked_at !== null) {
    out.blockedAt = row.blocked_at;
    out.blockMessage = row.block_message ?? '';
  }
  return out;
}
