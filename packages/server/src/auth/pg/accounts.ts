import { randomBytes, randomUUID } from 'node:crypto';
import type pg from 'pg';
import { compareRules, DEFAULT_RULE, errors, type Account, type AccountInfo, type KeyInfo, type Revocation, type RevocationList, type Rule } from '@micro/sdk';
import type { Postgres } from '../../postgres/index.js';
import { LIMITS, toAccount, toInfo, type AccountRow, type NewAccount } from '../accounts.js';
import type { SecretHasher, StoredSecret } from '../crypto.js';
import { admit } from '../../quota/limits.js';
import { alreadyBlocked, info, KEY_FORMAT, keyAccount, MAX_KEYS_PER_ACCOUNT, newKey, notBlocked, tooManyKeys, type KeyDetails, type KeyRow } from '../keys.js';
import { KeyUsage } from '../key-usage.js';
import { checkNewRule, toRule, type RuleRow, type StoredRule } from '../rules.js';
import { MAX_SESSIONS, REFRESH_FORMAT, REFRESH_TTL, type RefreshRow } from '../sessions.js';
import type { ApiKeyStorage, AuthAccounts, RuleStorage, SessionStorage } from '../storage.js';
import type { AuthCache } from './cache.js';
import { PgRevocations } from './revocations.js';

/**
 * The accounts, API keys, sessions and rules of auth in PostgreSQL: the same behaviour as
 * the SQLite storage (../accounts.ts and its neighbours), for several nodes at once.
 *
 * - What SQLite serialises by having one writer, Postgres does with locks: an advisory
 *   lock per namespace where a bound or a conflict is checked before an insert
 *   (accounts, rules), the account's row (FOR UPDATE) for its keys and sessions, the
 *   refresh token's row for its rotation (two nodes refreshing the same token at once:
 *   one wins, the other sees it used and ends the session, as a reuse).
 * - Every change the caches of other nodes hold (rules, keys, accounts) sends a NOTIFY
 *   in its transaction (see cache.ts).
 * - Instance secrets and admin secrets carry the node that handed them out: a node that
 *   starts drops only its own (the instances of other nodes keep running).
 */

/** Anything that runs a statement: the pool handle, or a client inside a transaction. */
export interface Q {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
}

export type Change = { t: 'rules'; ns: string } | { t: 'key'; id: string } | { t: 'account'; ns: string; id: string } | { t: 'signing' } | { t: 'revoke'; r: Revocation };

// the first key of auth's advisory locks (the second: a hash of what is locked)
export const AUTH_LOCK = 0x61757468; // "auth"

export interface Tables {
  meta: string;
  namespaces: string;
  accounts: string;
  secrets: string;
  keys: string;
  refresh: string;
  rules: string;
  signing: string;
  revocations: string;
}

export function tables(schema: string): Tables {
  return {
    meta: `${schema}.auth_meta`,
    namespaces: `${schema}.auth_namespaces`,
    accounts: `${schema}.auth_accounts`,
    secrets: `${schema}.auth_secrets`,
    keys: `${schema}.auth_api_keys`,
    refresh: `${schema}.auth_refresh_tokens`,
    rules: `${schema}.auth_rules`,
    signing: `${schema}.auth_signing_keys`,
    revocations: `${schema}.auth_revocations`,
  };
}

/** What the storage classes share: the database, its tables, the cache, and how to announce a change. */
export interface PgContext {
  db: Postgres;
  t: Tables;
  hasher: SecretHasher;
  cache: AuthCache;
  /** this node (instance and admin secrets are its own) */
  node: string;
  channel: string;
  /** this node's revocation list, which its Tokens verify against */
  revoked: RevocationList;
}

/** Announces a change to every node (sent when the transaction of `q` commits). */
export async function announce(ctx: PgContext, q: Q, change: Change): Promise<void> {
  await q.query('SELECT pg_notify($1, $2)', [ctx.channel, JSON.stringify(change)]);
}

async function lock(ctx: PgContext, q: Q, what: string): Promise<void> {
  await q.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [AUTH_LOCK, `${ctx.db.prefix}:${what}`]);
}

const num = (v: unknown): number => Number(v);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

function accountRow(r: Record<string, unknown>): AccountRow {
  return { namespace: r.namespace as string, id: r.id as string, type: r.type as string, scopes: r.scopes as string, metadata: r.metadata as string, created_at: num(r.created_at), disabled: r.disabled === true };
}

function keyRow(r: Record<string, unknown>): KeyRow {
  return {
    key_id: r.key_id as string,
    namespace: r.namespace as string,
    account: r.account as string,
    name: r.name as string,
    description: r.description as string,
    scopes: r.scopes as string,
    services: r.services as string,
    hash: r.hash as string,
    created_at: num(r.created_at),
    expires_at: numOrNull(r.expires_at),
    last_used_at: numOrNull(r.last_used_at),
    blocked_at: numOrNull(r.blocked_at),
    block_message: (r.block_message as string | null) ?? null,
  };
}

function refreshRow(r: Record<string, unknown>): RefreshRow {
  return {
    hash: r.hash as string,
    family: r.family as string,
    namespace: r.namespace as string,
    account: r.account as string,
    used_at: numOrNull(r.used_at),
    created_at: num(r.created_at),
    expires_at: num(r.expires_at),
  };
}

async function getAccount(ctx: PgContext, q: Q, id: string, namespace: string, forUpdate = false): Promise<AccountRow | undefined> {
  const { rows } = await q.query(`SELECT * FROM ${ctx.t.accounts} WHERE namespace = $1 AND id = $2${forUpdate ? ' FOR UPDATE' : ''}`, [namespace, id]);
  return rows[0] ? accountRow(rows[0]) : undefined;
}

export class PgAccounts implements AuthAccounts {
  readonly keys: PgApiKeys;
  readonly sessions: PgSessions;
  readonly rules: PgRules;
  readonly revocations: PgRevocations;

  constructor(
    private readonly ctx: PgContext,
    private readonly onClose: () => Promise<void>,
  ) {
    const account = (q: Q, id: string, ns: string) => this.getWith(q, id, ns);
    this.keys = new PgApiKeys(ctx, account);
    this.sessions = new PgSessions(ctx, account);
    this.rules = new PgRules(ctx);
    this.revocations = new PgRevocations(ctx);
  }

  private get t(): Tables {
    return this.ctx.t;
  }

  private get db(): Postgres {
    return this.ctx.db;
  }

  /** Writes the last uses of API keys remembered since the last write (lost if Postgres is away), then closes. */
  async close(): Promise<void> {
    await Promise.resolve(this.keys.usage.close()).catch(() => undefined);
    return this.onClose();
  }

  /**
   * Forgets a namespace (purge/): its accounts with their secrets, API keys and sessions
   * (ON DELETE CASCADE), its rules and its name, in one transaction whose NOTIFYs drop what
   * every node caches of them. Returns the ids of the accounts that went.
   */
  async purgeNamespace(namespace: string): Promise<string[]> {
    const ids = await this.db.transaction(async (c) => {
      const { rows } = await c.query<{ id: string }>(`DELETE FROM ${this.t.accounts} WHERE namespace = $1 RETURNING id`, [namespace]);
      await c.query(`DELETE FROM ${this.t.rules} WHERE namespace = $1`, [namespace]);
      await c.query(`DELETE FROM ${this.t.namespaces} WHERE name = $1`, [namespace]);
      await announce(this.ctx, c, { t: 'rules', ns: namespace });
      // one account change drops every node's whole key cache: enough for all of them
      if (rows[0]) await announce(this.ctx, c, { t: 'account', ns: namespace, id: rows[0].id });
      return rows.map((r) => r.id);
    });
    this.ctx.cache.dropRules(namespace);
    this.ctx.cache.dropAccount();
    return ids;
  }

  /** The first use of a namespace gives it the default rule; only the first (a deleted default stays deleted). */
  async ensureNamespace(namespace: string): Promise<void> {
    await this.db.transaction((c) => this.ensureWith(c, namespace));
    this.ctx.cache.dropRules(namespace);
  }

  private async ensureWith(q: Q, namespace: string): Promise<void> {
    const now = Date.now();
    const { rowCount } = await q.query(`INSERT INTO ${this.t.namespaces} (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [namespace, now]);
    if (!rowCount) return;
    const r = DEFAULT_RULE;
    await q.query(`INSERT INTO ${this.t.rules} (namespace, id, resource, scope, access, priority, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`, [
      namespace,
      r.id,
      r.resource,
      r.scope,
      r.access,
      r.priority,
      now,
    ]);
    await announce(this.ctx, q, { t: 'rules', ns: namespace });
  }

  private async getWith(q: Q, id: string, namespace: string): Promise<Account | undefined> {
    const row = await getAccount(this.ctx, q, id, namespace);
    // a disabled account is as good as none for keys and sessions
    return row && !row.disabled ? toAccount(row) : undefined;
  }

  get(id: string, namespace: string): Promise<Account | undefined> {
    return this.getWith(this.db, id, namespace);
  }

  async info(id: string, namespace: string): Promise<AccountInfo | undefined> {
    const row = await getAccount(this.ctx, this.db, id, namespace);
    return row && toInfo(row);
  }

  async update(id: string, namespace: string, change: { disabled?: boolean; scopes?: string[] }): Promise<AccountInfo> {
    const row = await this.db.transaction(async (c) => {
      const { rows } = await c.query(
        `UPDATE ${this.t.accounts} SET disabled = COALESCE($3, disabled), scopes = COALESCE($4, scopes) WHERE namespace = $1 AND id = $2 RETURNING *`,
        [namespace, id, change.disabled ?? null, change.scopes ? JSON.stringify(change.scopes) : null],
      );
      if (!rows[0]) throw errors.NotFound('auth', `no account ${id} in namespace ${namespace}`);
      if (change.disabled) await c.query(`DELETE FROM ${this.t.refresh} WHERE namespace = $1 AND account = $2`, [namespace, id]);
      await announce(this.ctx, c, { t: 'account', ns: namespace, id });
      return accountRow(rows[0]);
    });
    this.ctx.cache.dropAccount();
    return toInfo(row);
  }

  async create(spec: NewAccount): Promise<{ account: AccountInfo; secret?: string }> {
    const generated = spec.secret === undefined ? randomBytes(24).toString('base64url') : undefined;
    // hashed before the transaction: scrypt is slow and runs off the event loop
    const stored: StoredSecret = spec.secret !== undefined ? await this.ctx.hasher.slow(spec.secret) : { kind: 'hmac', salt: null, hash: this.ctx.hasher.keyed(generated as string) };
    const now = Date.now();
    await this.db.transaction(async (c) => {
      await lock(this.ctx, c, `ns:${spec.namespace}`);
      if (await getAccount(this.ctx, c, spec.id, spec.namespace)) throw errors.Conflict('auth', `account ${spec.id} exists in namespace ${spec.namespace}`);
      const { rows } = await c.query<{ n: string }>(`SELECT COUNT(*) AS n FROM ${this.t.accounts} WHERE namespace = $1`, [spec.namespace]);
      if (num(rows[0]?.n ?? 0) >= LIMITS.accountsPerNamespace) {
        throw errors.TooManyRequests('auth', `namespace ${spec.namespace} has ${LIMITS.accountsPerNamespace} accounts, the most it may have`);
      }
      await this.ensureWith(c, spec.namespace);
      await c.query(`INSERT INTO ${this.t.accounts} (namespace, id, type, scopes, metadata, created_at) VALUES ($1, $2, $3, $4, $5, $6)`, [
        spec.namespace,
        spec.id,
        spec.type,
        JSON.stringify(spec.scopes ?? []),
        JSON.stringify(spec.metadata ?? {}),
        now,
      ]);
      await this.addSecret(c, spec.namespace, spec.id, stored, false, null, now);
    });
    this.ctx.cache.dropRules(spec.namespace);
    const account = (await this.info(spec.id, spec.namespace)) as AccountInfo;
    return generated === undefined ? { account } : { account, secret: generated };
  }

  private async addSecret(q: Q, namespace: string, id: string, s: StoredSecret, ephemeral: boolean, node: string | null, now: number): Promise<void> {
    await q.query(`INSERT INTO ${this.t.secrets} (namespace, account, kind, salt, hash, ephemeral, node, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, [
      namespace,
      id,
      s.kind,
      s.salt,
      s.hash,
      ephemeral,
      node,
      now,
    ]);
  }

  async list(namespace: string, limit = 100, after = ''): Promise<{ accounts: AccountInfo[]; next?: string }> {
    const { rows } = await this.db.query(`SELECT * FROM ${this.t.accounts} WHERE namespace = $1 AND id > $2 ORDER BY id LIMIT $3`, [namespace, after, limit + 1]);
    const page = rows.slice(0, limit).map((r) => {
      return toInfo(accountRow(r));
    });
    return rows.length > limit ? { accounts: page, next: page[page.length - 1]?.id } : { accounts: page };
  }

  async delete(id: string, namespace: string): Promise<void> {
    if (id === 'admin' && namespace === 'micro') throw errors.Forbidden('auth', 'the admin account of micro cannot be deleted');
    const deleted = await this.db.transaction(async (c) => {
      const { rowCount } = await c.query(`DELETE FROM ${this.t.accounts} WHERE namespace = $1 AND id = $2`, [namespace, id]);
      if (rowCount) await announce(this.ctx, c, { t: 'account', ns: namespace, id });
      return !!rowCount;
    });
    if (!deleted) throw errors.NotFound('auth', `no account ${id} in namespace ${namespace}`);
    this.ctx.cache.dropAccount();
  }

  /**
   * A new secret for the admin of `micro`, of this node: it replaces the admin secret this
   * node made before, not those of the other nodes (each node keeps its own admin.json).
   */
  async createAdmin(): Promise<{ id: string; secret: string }> {
    const secret = randomBytes(24).toString('base64url');
    const now = Date.now();
    await this.db.transaction(async (c) => {
      await this.ensureWith(c, 'micro');
      await c.query(`INSERT INTO ${this.t.accounts} (namespace, id, type, scopes, metadata, created_at) VALUES ('micro', 'admin', 'user', $1, '{}', $2) ON CONFLICT DO NOTHING`, [
        JSON.stringify(['admin']),
        now,
      ]);
      await c.query(`DELETE FROM ${this.t.secrets} WHERE namespace = 'micro' AND account = 'admin' AND NOT ephemeral AND node = $1`, [this.ctx.node]);
      // a random secret needs no slow hash: 192 bits cannot be guessed
      await this.addSecret(c, 'micro', 'admin', { kind: 'hmac', salt: null, hash: this.ctx.hasher.keyed(secret) }, false, this.ctx.node, now);
    });
    this.ctx.cache.dropRules('micro');
    return { id: 'admin', secret };
  }

  async issueServiceSecret(service: string, namespace: string): Promise<{ id: string; secret: string }> {
    const id = `service:${service}`;
    const secret = randomBytes(32).toString('base64url');
    const now = Date.now();
    await this.db.transaction(async (c) => {
      if (!(await getAccount(this.ctx, c, id, namespace))) {
        await this.ensureWith(c, namespace);
        await c.query(`INSERT INTO ${this.t.accounts} (namespace, id, type, scopes, metadata, created_at) VALUES ($1, $2, 'service', $3, '{}', $4) ON CONFLICT DO NOTHING`, [
          namespace,
          id,
          JSON.stringify(['service']),
          now,
        ]);
      }
      await this.addSecret(c, namespace, id, { kind: 'hmac', salt: null, hash: this.ctx.hasher.keyed(secret) }, true, this.ctx.node, now);
      await c.query(
        `DELETE FROM ${this.t.secrets} WHERE namespace = $1 AND account = $2 AND ephemeral AND seq NOT IN
           (SELECT seq FROM ${this.t.secrets} WHERE namespace = $1 AND account = $2 AND ephemeral ORDER BY seq DESC LIMIT $3)`,
        [namespace, id, LIMITS.ephemeralSecrets],
      );
    });
    return { id, secret };
  }

  /** Forgets the secrets this node's runtime handed to its instances (it starts them afresh). */
  async dropServiceSecrets(): Promise<void> {
    await this.db.query(`DELETE FROM ${this.t.secrets} WHERE ephemeral AND node = $1`, [this.ctx.node]);
  }

  async verify(id: string, namespace: string, secret: string): Promise<Account | undefined> {
    const row = await getAccount(this.ctx, this.db, id, namespace);
    const secrets = row
      ? (await this.db.query<StoredSecret>(`SELECT kind, salt, hash FROM ${this.t.secrets} WHERE namespace = $1 AND account = $2 ORDER BY seq DESC`, [namespace, id])).rows
      : [];
    const ok = await this.ctx.hasher.matches(secret, secrets);
    return ok && row && !row.disabled ? toAccount(row) : undefined;
  }

  async verifyGenerated(id: string, namespace: string, secret: string): Promise<Account | undefined> {
    // the same reads for an id that does not exist: timing tells nothing
    const row = await getAccount(this.ctx, this.db, id, namespace);
    const { rows } = await this.db.query<StoredSecret>(`SELECT kind, salt, hash FROM ${this.t.secrets} WHERE namespace = $1 AND account = $2 AND kind = 'hmac'`, [namespace, id]);
    const ok = rows.some((s) => this.ctx.hasher.keyedMatches(secret, s.hash));
    return ok && row && !row.disabled ? toAccount(row) : undefined;
  }

  async setPassword(id: string, namespace: string, password: string): Promise<void> {
    const stored = await this.ctx.hasher.slow(password);
    await this.db.transaction(async (c) => {
      if (!(await getAccount(this.ctx, c, id, namespace, true))) throw errors.NotFound('auth', `no account ${id} in namespace ${namespace}`);
      await c.query(`DELETE FROM ${this.t.secrets} WHERE namespace = $1 AND account = $2 AND NOT ephemeral`, [namespace, id]);
      await this.addSecret(c, namespace, id, stored, false, null, Date.now());
    });
    await this.sessions.revokeAccount(id, namespace);
  }
}

type AccountOf = (q: Q, id: string, namespace: string) => Promise<Account | undefined>;

export class PgApiKeys implements ApiKeyStorage {
  readonly usage: KeyUsage;

  constructor(
    private readonly ctx: PgContext,
    private readonly account: AccountOf,
  ) {
    // one statement per batch; GREATEST: another node may have written a later use
    this.usage = new KeyUsage(async (uses) => {
      await ctx.db.query(
        `UPDATE ${ctx.t.keys} k SET last_used_at = GREATEST(COALESCE(k.last_used_at, 0), u.at) FROM unnest($1::text[], $2::bigint[]) AS u(id, at) WHERE k.key_id = u.id`,
        [uses.map(([id]) => id), uses.map(([, at]) => at)],
      );
    });
  }

  async create(owner: Account, name: string, scopes: string[], expiresIn?: number, maxInNamespace?: number | null, details?: KeyDetails): Promise<{ key: string; info: KeyInfo }> {
    const k = newKey(expiresIn, details);
    const t = this.ctx.t;
    const row = await this.ctx.db.transaction(async (c) => {
      // the account's row serialises the count and the insert of its keys
      if (!(await getAccount(this.ctx, c, owner.id, owner.issuer, true))) throw errors.NotFound('auth', `account ${owner.id} no longer exists`);
      const { rows } = await c.query<{ n: string }>(`SELECT COUNT(*) AS n FROM ${t.keys} WHERE namespace = $1 AND account = $2`, [owner.issuer, owner.id]);
      if (num(rows[0]?.n ?? 0) >= MAX_KEYS_PER_ACCOUNT) throw tooManyKeys(owner);
      if (typeof maxInNamespace === 'number') {
        // the namespace's keys: creates of every account of it, on every node, one at a time
        await c.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`${t.keys} ${owner.issuer}`]);
        const all = await c.query<{ n: string }>(`SELECT COUNT(*) AS n FROM ${t.keys} WHERE namespace = $1`, [owner.issuer]);
        admit('apiKeys', num(all.rows[0]?.n ?? 0), 1, maxInNamespace, owner.issuer);
      }
      const inserted = await c.query(
        `INSERT INTO ${t.keys} (key_id, namespace, account, name, description, scopes, services, hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING *`,
        [k.keyId, owner.issuer, owner.id, name, k.description, JSON.stringify(scopes), k.services, this.ctx.hasher.keyed(`${k.keyId}.${k.secret}`), k.now, k.expiresAt],
      );
      return keyRow(inserted.rows[0] as Record<string, unknown>);
    });
    // a lookup of this id that missed (a guess) may be cached: forget it
    this.ctx.cache.dropKey(k.keyId);
    return { key: `${k.keyId}.${k.secret}`, info: info(row) };
  }

  /** On the gateway's hot path: the key's row and owner come from the cache when they can. */
  async verify(key: string): Promise<Account | undefined> {
    if (!KEY_FORMAT.test(key)) return undefined;
    const keyId = key.slice(0, key.indexOf('.'));
    let hit = this.ctx.cache.getKey(keyId);
    if (!hit) {
      const generation = this.ctx.cache.generation;
      const row = await this.row(keyId);
      const owner = row && (await this.account(this.ctx.db, row.account, row.namespace));
      hit = { row, owner };
      this.ctx.cache.setKey(keyId, row, owner, generation);
    }
    if (!hit.row || !this.ctx.hasher.keyedMatches(key, hit.row.hash)) return undefined;
    const account = keyAccount(hit.row, hit.owner);
    if (account) this.usage.touch(keyId);
    return account;
  }

  private async row(keyId: string): Promise<KeyRow | undefined> {
    const { rows } = await this.ctx.db.query(`SELECT * FROM ${this.ctx.t.keys} WHERE key_id = $1`, [keyId]);
    return rows[0] ? keyRow(rows[0]) : undefined;
  }

  async get(keyId: string): Promise<KeyInfo | undefined> {
    const row = await this.row(keyId);
    return row && info(row, this.usage.seen(keyId));
  }

  async list(namespace: string, account?: string): Promise<KeyInfo[]> {
    const t = this.ctx.t;
    const { rows } =
      account === undefined
        ? await this.ctx.db.query(`SELECT * FROM ${t.keys} WHERE namespace = $1 ORDER BY account, created_at, key_id LIMIT 10000`, [namespace])
        : await this.ctx.db.query(`SELECT * FROM ${t.keys} WHERE namespace = $1 AND account = $2 ORDER BY created_at, key_id`, [namespace, account]);
    return rows.map((r) => {
      const row = keyRow(r);
      return info(row, this.usage.seen(row.key_id));
    });
  }

  async revoke(keyId: string): Promise<boolean> {
    return this.change(keyId, `DELETE FROM ${this.ctx.t.keys} WHERE key_id = $1 RETURNING *`, []).then((row) => !!row);
  }

  async block(keyId: string, message: string): Promise<KeyInfo | undefined> {
    const row = await this.change(keyId, `UPDATE ${this.ctx.t.keys} SET blocked_at = $2, block_message = $3 WHERE key_id = $1 AND blocked_at IS NULL RETURNING *`, [Date.now(), message]);
    if (row) return info(row, this.usage.seen(keyId));
    const now = await this.row(keyId);
    if (now) throw alreadyBlocked(now);
    return undefined;
  }

  async unblock(keyId: string): Promise<KeyInfo | undefined> {
    const row = await this.change(keyId, `UPDATE ${this.ctx.t.keys} SET blocked_at = NULL, block_message = NULL WHERE key_id = $1 AND blocked_at IS NOT NULL RETURNING *`, []);
    if (row) return info(row, this.usage.seen(keyId));
    if (await this.row(keyId)) throw notBlocked(keyId);
    return undefined;
  }

  flushUsage(): Promise<void> {
    return Promise.resolve(this.usage.flush());
  }

  /**
   * A change of one key (`sql` with $1 the key id, RETURNING its row): announced to every
   * node, whose caches drop the key, in its transaction; dropped here at once. The row, or
   * undefined when nothing changed.
   */
  private async change(keyId: string, sql: string, params: unknown[]): Promise<KeyRow | undefined> {
    const row = await this.ctx.db.transaction(async (c) => {
      const { rows } = await c.query(sql, [keyId, ...params]);
      if (rows[0]) await announce(this.ctx, c, { t: 'key', id: keyId });
      return rows[0] ? keyRow(rows[0]) : undefined;
    });
    this.ctx.cache.dropKey(keyId);
    return row;
  }
}

export class PgSessions implements SessionStorage {
  constructor(
    private readonly ctx: PgContext,
    private readonly account: AccountOf,
    private readonly ttl = REFRESH_TTL,
  ) {}

  async start(account: Account): Promise<{ refreshToken: string; refreshExpiresAt: number; session: string }> {
    const t = this.ctx.t;
    return this.ctx.db.transaction(async (c) => {
      // the account's row serialises the sessions of one account
      if (!(await getAccount(this.ctx, c, account.id, account.issuer, true))) throw errors.Unauthorized('auth', `account ${account.id} no longer exists`);
      await c.query(`DELETE FROM ${t.refresh} WHERE expires_at <= $1`, [Date.now()]);
      const { rows } = await c.query<{ family: string }>(
        `SELECT family FROM ${t.refresh} WHERE namespace = $1 AND account = $2 GROUP BY family ORDER BY MIN(created_at), family`,
        [account.issuer, account.id],
      );
      const drop = rows.slice(0, Math.max(0, rows.length - MAX_SESSIONS + 1)).map((r) => r.family);
      if (drop.length > 0) await c.query(`DELETE FROM ${t.refresh} WHERE family = ANY($1)`, [drop]);
      return this.issue(c, account.issuer, account.id, randomUUID());
    });
  }

  private async issue(q: Q, namespace: string, id: string, family: string): Promise<{ refreshToken: string; refreshExpiresAt: number; session: string }> {
    const token = `mrt_${randomBytes(32).toString('base64url')}`;
    const now = Date.now();
    const expiresAt = now + this.ttl * 1000;
    await q.query(`INSERT INTO ${this.ctx.t.refresh} (hash, family, namespace, account, used_at, created_at, expires_at) VALUES ($1, $2, $3, $4, NULL, $5, $6)`, [
      this.ctx.hasher.keyed(token),
      family,
      namespace,
      id,
      now,
      expiresAt,
    ]);
    return { refreshToken: token, refreshExpiresAt: Math.floor(expiresAt / 1000), session: family };
  }

  async rotate(token: string): Promise<{ account: Account; refreshToken: string; refreshExpiresAt: number; session: string }> {
    const refused = (why: string) => errors.Unauthorized('auth', `refresh token refused: ${why}`);
    if (!REFRESH_FORMAT.test(token)) throw refused('not a refresh token');
    const hash = this.ctx.hasher.keyed(token);
    const t = this.ctx.t;
    // the refusals that end a session commit the end, then throw
    const outcome = await this.ctx.db.transaction(async (c) => {
      const { rows } = await c.query(`SELECT * FROM ${t.refresh} WHERE hash = $1 FOR UPDATE`, [hash]);
      const row = rows[0] ? refreshRow(rows[0]) : undefined;
      const dropFamily = () => c.query(`DELETE FROM ${t.refresh} WHERE family = $1`, [row?.family]);
      if (!row) return { error: 'unknown (revoked, or never issued) — log in again' };
      if (row.used_at !== null) {
        await dropFamily();
        return { error: 'it was used before, so it may have been stolen: the session is revoked — log in again', ended: row.family };
      }
      if (row.expires_at <= Date.now()) {
        await dropFamily();
        return { error: `expired at ${new Date(row.expires_at).toISOString()} — log in again` };
      }
      const account = await this.account(c, row.account, row.namespace);
      if (!account) {
        await dropFamily();
        return { error: `account ${row.account} no longer exists` };
      }
      await c.query(`UPDATE ${t.refresh} SET used_at = $1 WHERE hash = $2 AND used_at IS NULL`, [Date.now(), hash]);
      return { account, ...(await this.issue(c, row.namespace, row.account, row.family)) };
    });
    if ('error' in outcome) throw Object.assign(refused(outcome.error as string), { endedSession: 'ended' in outcome ? outcome.ended : undefined });
    return outcome;
  }

  async end(token: string): Promise<string | undefined> {
    if (!REFRESH_FORMAT.test(token)) return undefined;
    const t = this.ctx.t;
    const { rows } = await this.ctx.db.query<{ family: string }>(`DELETE FROM ${t.refresh} WHERE family = (SELECT family FROM ${t.refresh} WHERE hash = $1) RETURNING family`, [
      this.ctx.hasher.keyed(token),
    ]);
    return rows[0]?.family;
  }

  async endSession(session: string): Promise<void> {
    await this.ctx.db.query(`DELETE FROM ${this.ctx.t.refresh} WHERE family = $1`, [session]);
  }

  async revokeAccount(id: string, namespace: string): Promise<void> {
    await this.ctx.db.query(`DELETE FROM ${this.ctx.t.refresh} WHERE namespace = $1 AND account = $2`, [namespace, id]);
  }
}

export class PgRules implements RuleStorage {
  constructor(private readonly ctx: PgContext) {}

  /** On the hot path (the gateway, ListRules that services poll): from the cache when it can. */
  async list(namespace: string): Promise<StoredRule[]> {
    const hit = this.ctx.cache.getRules(namespace);
    if (hit) return hit;
    const generation = this.ctx.cache.generation;
    const rules = await this.read(this.ctx.db, namespace);
    this.ctx.cache.setRules(namespace, rules, generation);
    return rules;
  }

  private async read(q: Q, namespace: string): Promise<StoredRule[]> {
    const { rows } = await q.query<RuleRow>(`SELECT namespace, id, resource, scope, access, priority FROM ${this.ctx.t.rules} WHERE namespace = $1`, [namespace]);
    return rows.map(toRule).sort(compareRules);
  }

  async create(namespace: string, rule: Rule): Promise<StoredRule> {
    const stored: StoredRule = { id: rule.id, resource: rule.resource, scope: rule.scope, access: rule.access, priority: rule.priority, namespace };
    await this.ctx.db.transaction(async (c) => {
      await lock(this.ctx, c, `ns:${namespace}`);
      checkNewRule(await this.read(c, namespace), namespace, stored);
      await c.query(`INSERT INTO ${this.ctx.t.rules} (namespace, id, resource, scope, access, priority, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`, [
        namespace,
        rule.id,
        rule.resource,
        rule.scope,
        rule.access,
        rule.priority,
        Date.now(),
      ]);
      await announce(this.ctx, c, { t: 'rules', ns: namespace });
    });
    this.ctx.cache.dropRules(namespace);
    return stored;
  }

  async delete(namespace: string, id: string): Promise<void> {
    const deleted = await this.ctx.db.transaction(async (c) => {
      const { rowCount } = await c.query(`DELETE FROM ${this.ctx.t.rules} WHERE namespace = $1 AND id = $2`, [namespace, id]);
      if (rowCount) await announce(this.ctx, c, { t: 'rules', ns: namespace });
      return !!rowCount;
    });
    this.ctx.cache.dropRules(namespace);
    if (!deleted) throw errors.NotFound('auth', `no rule ${id} in namespace ${namespace}`);
  }
}
