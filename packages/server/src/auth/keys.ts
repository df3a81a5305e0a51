import { randomBytes, timingSafeEqual } from 'node:crypto';
import { admit } from '../quota/limits.js';
import { errors, type Account, type KeyInfo } from '@micro/sdk';
import type { Db } from './db.js';

/**
 * API keys: long-lived credentials of an account for programs, `<keyId>.<secret>`.
 * The key id is stored as is (to find the key, to list and revoke it); the secret only
 * as an HMAC. A key acts for its account with the scopes it was given (a subset of the
 * account's), and never with more than the account has now. Revoking deletes it.
 */

export interface KeyRow {
  key_id: string;
  namespace: string;
  account: string;
  name: string;
  scopes: string;
  hash: string;
  created_at: number;
  expires_at: number | null;
}

export const KEY_PREFIX = 'mk_';
export const KEY_FORMAT = /^mk_[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/;
export const MAX_KEYS_PER_ACCOUNT = 100;

export class ApiKeys {
  private readonly st;

  constructor(
    private readonly db: Db,
    private readonly hash: (secret: string) => string,
    private readonly account: (id: string, namespace: string) => Account | undefined,
  ) {
    this.st = {
      insert: db.prepare('INSERT INTO api_keys (key_id, namespace, account, name, scopes, hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
      get: db.prepare<[string], KeyRow>('SELECT * FROM api_keys WHERE key_id = ?'),
      count: db.prepare<[string, string], { n: number }>('SELECT COUNT(*) AS n FROM api_keys WHERE namespace = ? AND account = ?'),
      inNamespace: db.prepare<[string], { n: number }>('SELECT COUNT(*) AS n FROM api_keys WHERE namespace = ?'),
      byAccount: db.prepare<[string, string], KeyRow>('SELECT * FROM api_keys WHERE namespace = ? AND account = ? ORDER BY created_at, key_id'),
      byNamespace: db.prepare<[string], KeyRow>('SELECT * FROM api_keys WHERE namespace = ? ORDER BY account, created_at, key_id LIMIT 10000'),
      delete: db.prepare('DELETE FROM api_keys WHERE key_id = ?'),
    };
  }

  /** A new key for an account; the key itself is returned here and never again. */
  create(owner: Account, name: string, scopes: string[], expiresIn?: number, maxInNamespace?: number | null): { key: string; info: KeyInfo } {
    const keyId = `${KEY_PREFIX}${randomBytes(8).toString('hex')}`;
    const secret = randomBytes(32).toString('base64url');
    const now = Date.now();
    const expiresAt = expiresIn === undefined ? null : now + expiresIn * 1000;
    this.db.transaction(() => {
      if ((this.st.count.get(owner.issuer, owner.id)?.n ?? 0) >= MAX_KEYS_PER_ACCOUNT) {
        throw errors.TooManyRequests('auth', `account ${owner.id} has ${MAX_KEYS_PER_ACCOUNT} API keys, the most it may have — revoke one first`);
      }
      if (typeof maxInNamespace === 'number') admit('apiKeys', this.st.inNamespace.get(owner.issuer)?.n ?? 0, 1, maxInNamespace, owner.issuer);
      this.st.insert.run(keyId, owner.issuer, owner.id, name, JSON.stringify(scopes), this.hash(`${keyId}.${secret}`), now, expiresAt);
    })();
    return { key: `${keyId}.${secret}`, info: info(this.st.get.get(keyId) as KeyRow) };
  }

  /** The account a key acts as, or undefined for a key that is unknown, revoked, expired or wrong. */
  verify(key: string): Account | undefined {
    if (!KEY_FORMAT.test(key)) return undefined;
    const keyId = key.slice(0, key.indexOf('.'));
    const row = this.st.get.get(keyId);
    const candidate = Buffer.from(this.hash(key), 'hex');
    if (!row) return undefined;
    const expected = Buffer.from(row.hash, 'hex');
    if (candidate.length !== expected.length || !timingSafeEqual(candidate, expected)) return undefined;
    return keyAccount(row, this.account(row.account, row.namespace));
  }

  get(keyId: string): KeyInfo | undefined {
    const row = this.st.get.get(keyId);
    return row && info(row);
  }

  list(namespace: string, account?: string): KeyInfo[] {
    const rows = account === undefined ? this.st.byNamespace.all(namespace) : this.st.byAccount.all(namespace, account);
    return rows.map(info);
  }

  revoke(keyId: string): boolean {
    return this.st.delete.run(keyId).changes > 0;
  }
}

/**
 * What a key whose secret matched acts as, now: undefined when it expired or its account
 * is gone; the key's scopes intersected with the account's current ones.
 */
export function keyAccount(row: KeyRow, owner: Account | undefined, now = Date.now()): Account | undefined {
  if (row.expires_at !== null && row.expires_at <= now) return undefined;
  if (!owner) return undefined;
  const keyScopes = JSON.parse(row.scopes) as string[];
  return {
    id: owner.id,
    type: 'apikey',
    issuer: owner.issuer,
    scopes: keyScopes.filter((s) => owner.scopes.includes(s)),
    metadata: { ...owner.metadata, key: row.key_id, keyName: row.name },
  };
}

export function info(row: KeyRow): KeyInfo {
  const out: KeyInfo = { id: row.key_id, name: row.name, account: row.account, namespace: row.namespace, scopes: JSON.parse(row.scopes) as string[], createdAt: row.created_at };
  if (row.expires_at !== null) out.expiresAt = row.expires_at;
  return out;
}
