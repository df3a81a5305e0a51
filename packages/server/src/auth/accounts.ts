import { randomBytes } from 'node:crypto';
import { DEFAULT_RULE, errors, type Account, type AccountInfo } from '@micro/sdk';
import { SecretHasher, type StoredSecret } from './crypto.js';
import { openAuthDb, type Db } from './db.js';
import { ApiKeys } from './keys.js';
import { RuleStore } from './rules.js';
import { Sessions } from './sessions.js';
import { SqliteRevocations } from './revocations.js';

/**
 * The accounts of micro server, in `<dataDir>/auth.db` (see db.ts).
 *
 * Secrets are never stored. What a person chose (a password, a secret given to
 * `micro auth create account --secret`) is kept as a scrypt hash: salted and slow, so a
 * stolen database does not give the passwords away. What the server generated (service
 * secrets, API keys, refresh tokens: 256 random bits each) is kept as HMAC-SHA256 under
 * a server key: fast to check on every exchange, useless without the key.
 *
 * A service account of the runtime holds one secret per running instance ("ephemeral"
 * secrets); they are dropped when the server starts, because the runtime then starts
 * every instance afresh with new ones.
 */

export interface AccountsOptions {
  /** scrypt cost (default N = 16384); tests make it cheap */
  scrypt?: { N: number };
}

type AccountType = 'user' | 'service';

export interface AccountRow {
  namespace: string;
  id: string;
  type: string;
  scopes: string;
  metadata: string;
  created_at: number;
  /** 1 (SQLite) or true (Postgres): no tokens, no logins, no keys */
  disabled?: number | boolean;
}

type SecretRow = StoredSecret;

export interface NewAccount {
  id: string;
  namespace: string;
  type: AccountType;
  scopes?: string[];
  metadata?: Record<string, string>;
  /** a chosen secret (stored with scrypt); without it one is generated and returned */
  secret?: string;
}

/** bounds, so that no caller can grow the database without limit */
export const LIMITS = { accountsPerNamespace: 10_000, ephemeralSecrets: 256 };

export class Accounts {
  readonly db: Db;
  readonly keys: ApiKeys;
  readonly sessions: Sessions;
  readonly rules: RuleStore;
  readonly revocations: SqliteRevocations;
  private readonly hasher: SecretHasher;
  private readonly st;

  constructor(path: string, options: AccountsOptions = {}) {
    this.db = openAuthDb(path);
    const db = this.db;
    let key = (db.prepare("SELECT value FROM meta WHERE key = 'hmac_key'").get() as { value: string } | undefined)?.value;
    if (!key) {
      key = randomBytes(32).toString('hex');
      db.prepare("INSERT INTO meta (key, value) VALUES ('hmac_key', ?)").run(key);
    }
    this.hasher = new SecretHasher(Buffer.from(key, 'hex'), options.scrypt?.N);
    this.st = {
      get: db.prepare<[string, string], AccountRow>('SELECT * FROM accounts WHERE namespace = ? AND id = ?'),
      insert: db.prepare('INSERT INTO accounts (namespace, id, type, scopes, metadata, created_at) VALUES (?, ?, ?, ?, ?, ?)'),
      count: db.prepare<[string], { n: number }>('SELECT COUNT(*) AS n FROM accounts WHERE namespace = ?'),
      list: db.prepare<[string, string, number], AccountRow>('SELECT * FROM accounts WHERE namespace = ? AND id > ? ORDER BY id LIMIT ?'),
      delete: db.prepare('DELETE FROM accounts WHERE namespace = ? AND id = ?'),
      secrets: db.prepare<[string, string], SecretRow>('SELECT kind, salt, hash FROM secrets WHERE namespace = ? AND account = ? ORDER BY seq DESC'),
      addSecret: db.prepare('INSERT INTO secrets (namespace, account, kind, salt, hash, ephemeral, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      dropChosen: db.prepare('DELETE FROM secrets WHERE namespace = ? AND account = ? AND ephemeral = 0'),
      trimEphemeral: db.prepare(
        'DELETE FROM secrets WHERE namespace = ? AND account = ? AND ephemeral = 1 AND seq NOT IN (SELECT seq FROM secrets WHERE namespace = ? AND account = ? AND ephemeral = 1 ORDER BY seq DESC LIMIT ?)',
      ),
      dropEphemeral: db.prepare('DELETE FROM secrets WHERE ephemeral = 1'),
      namespace: db.prepare('INSERT OR IGNORE INTO namespaces (name, created_at) VALUES (?, ?)'),
    };
    this.rules = new RuleStore(db);
    this.keys = new ApiKeys(db, (s) => this.keyedHash(s), (id, ns) => this.get(id, ns));
    this.sessions = new Sessions(db, (s) => this.keyedHash(s), (id, ns) => this.get(id, ns));
    this.revocations = new SqliteRevocations(db);
  }

  close(): void {
    // the last uses of API keys remembered since the last write
    void this.keys.usage.close();
    if (this.db.open) this.db.close();
  }

  /**
   * Forgets a namespace (purge/): its accounts with their secrets, API keys and sessions
   * (ON DELETE CASCADE), its rules and its name, in one transaction. Returns the ids of the
   * accounts that went, whose access tokens the caller revokes.
   */
  purgeNamespace(namespace: string): string[] {
    return this.db.transaction(() => {
      const ids = this.db.prepare<[string], { id: string }>('SELECT id FROM accounts WHERE namespace = ?').all(namespace).map((r) => r.id);
      this.db.prepare('DELETE FROM accounts WHERE namespace = ?').run(namespace);
      this.db.prepare('DELETE FROM rules WHERE namespace = ?').run(namespace);
      this.db.prepare('DELETE FROM namespaces WHERE name = ?').run(namespace);
      return ids;
    })();
  }

  /**
   * The first use of a namespace gives it the default rule (any account of the namespace
   * may call its services). Only the first: a default rule deleted stays deleted.
   */
  ensureNamespace(namespace: string): void {
    const { changes } = this.st.namespace.run(namespace, Date.now());
    if (changes > 0) this.rules.insertDefault(namespace, DEFAULT_RULE);
  }

  /** The account, unless it does not exist or is disabled (then keys and sessions do not work either). */
  get(id: string, namespace: string): Account | undefined {
    const row = this.st.get.get(namespace, id);
    return row && !row.disabled ? toAccount(row) : undefined;
  }

  info(id: string, namespace: string): AccountInfo | undefined {
    const row = this.st.get.get(namespace, id);
    return row && toInfo(row);
  }

  /** Disables (ending its sessions) or enables an account, or replaces its scopes; a 404 when it does not exist. */
  update(id: string, namespace: string, change: { disabled?: boolean; scopes?: string[] }): AccountInfo {
    const row = this.st.get.get(namespace, id);
    if (!row) throw errors.NotFound('auth', `no account ${id} in namespace ${namespace}`);
    const disabled = change.disabled ?? !!row.disabled;
    const scopes = change.scopes ?? (JSON.parse(row.scopes) as string[]);
    this.db.prepare('UPDATE accounts SET disabled = ?, scopes = ? WHERE namespace = ? AND id = ?').run(disabled ? 1 : 0, JSON.stringify(scopes), namespace, id);
    if (disabled) this.sessions.revokeAccount(id, namespace);
    return this.info(id, namespace) as AccountInfo;
  }

  /** Creates an account; a 409 when it exists. Returns the generated secret, if one was generated. */
  async create(spec: NewAccount): Promise<{ account: AccountInfo; secret?: string }> {
    const generated = spec.secret === undefined ? randomBytes(24).toString('base64url') : undefined;
    // hashed before the transaction: scrypt is slow and runs off the event loop
    const stored = spec.secret !== undefined ? await this.slowHash(spec.secret) : { kind: 'hmac' as const, salt: null, hash: this.keyedHash(generated as string) };
    const now = Date.now();
    this.db.transaction(() => {
      if (this.st.get.get(spec.namespace, spec.id)) throw errors.Conflict('auth', `account ${spec.id} exists in namespace ${spec.namespace}`);
      if ((this.st.count.get(spec.namespace)?.n ?? 0) >= LIMITS.accountsPerNamespace) {
        throw errors.TooManyRequests('auth', `namespace ${spec.namespace} has ${LIMITS.accountsPerNamespace} accounts, the most it may have`);
      }
      this.ensureNamespace(spec.namespace);
      this.st.insert.run(spec.namespace, spec.id, spec.type, JSON.stringify(spec.scopes ?? []), JSON.stringify(spec.metadata ?? {}), now);
      this.st.addSecret.run(spec.namespace, spec.id, stored.kind, stored.salt, stored.hash, 0, now);
    })();
    const account = this.info(spec.id, spec.namespace) as AccountInfo;
    return generated === undefined ? { account } : { account, secret: generated };
  }

  /** One page of the accounts of a namespace, by id. */
  list(namespace: string, limit = 100, after = ''): { accounts: AccountInfo[]; next?: string } {
    const rows = this.st.list.all(namespace, after, limit + 1);
    const page = rows.slice(0, limit).map(toInfo);
    return rows.length > limit ? { accounts: page, next: page[page.length - 1]?.id } : { accounts: page };
  }

  /** Deletes an account with its secrets, API keys and sessions (cascade). */
  delete(id: string, namespace: string): void {
    if (id === 'admin' && namespace === 'micro') throw errors.Forbidden('auth', 'the admin account of micro cannot be deleted');
    const { changes } = this.st.delete.run(namespace, id);
    if (changes === 0) throw errors.NotFound('auth', `no account ${id} in namespace ${namespace}`);
  }

  /** Creates (or resets) the admin account of namespace `micro` with a new random secret, returned once. */
  createAdmin(): { id: string; secret: string } {
    const secret = randomBytes(24).toString('base64url');
    const now = Date.now();
    this.db.transaction(() => {
      this.ensureNamespace('micro');
      if (!this.st.get.get('micro', 'admin')) this.st.insert.run('micro', 'admin', 'user', JSON.stringify(['admin']), '{}', now);
      this.st.dropChosen.run('micro', 'admin');
      // a random secret needs no slow hash: 192 bits cannot be guessed
      this.st.addSecret.run('micro', 'admin', 'hmac', null, this.keyedHash(secret), 0, now);
    })();
    this.sessions.revokeAccount('admin', 'micro');
    return { id: 'admin', secret };
  }

  /** A new secret for the service account of (service, namespace), for one instance. */
  issueServiceSecret(service: string, namespace: string): { id: string; secret: string } {
    const id = `service:${service}`;
    const secret = randomBytes(32).toString('base64url');
    const now = Date.now();
    this.db.transaction(() => {
      if (!this.st.get.get(namespace, id)) {
        this.ensureNamespace(namespace);
        this.st.insert.run(namespace, id, 'service', JSON.stringify(['service']), '{}', now);
      }
      this.st.addSecret.run(namespace, id, 'hmac', null, this.keyedHash(secret), 1, now);
      this.st.trimEphemeral.run(namespace, id, namespace, id, LIMITS.ephemeralSecrets);
    })();
    return { id, secret };
  }

  /** Forgets the secrets the runtime handed to its instances (they are all restarted). */
  dropServiceSecrets(): void {
    this.st.dropEphemeral.run();
  }

  /** The account when the secret is one of its secrets; undefined otherwise (as slow either way). */
  async verify(id: string, namespace: string, secret: string): Promise<Account | undefined> {
    const row = this.st.get.get(namespace, id);
    const secrets = row ? this.st.secrets.all(namespace, id) : [];
    const ok = await this.hasher.matches(secret, secrets);
    return ok && row && !row.disabled ? toAccount(row) : undefined;
  }

  /** The account when the secret is one the server generated for it (keyed hash only: no scrypt, no throttle needed). */
  verifyGenerated(id: string, namespace: string, secret: string): Account | undefined {
    // the same reads for an id that does not exist: timing tells nothing
    const row = this.st.get.get(namespace, id);
    const ok = this.st.secrets.all(namespace, id).some((s) => s.kind === 'hmac' && this.hasher.keyedMatches(secret, s.hash));
    return ok && row && !row.disabled ? toAccount(row) : undefined;
  }

  /** Replaces the chosen secrets of an account by a new password, and ends its sessions. */
  async setPassword(id: string, namespace: string, password: string): Promise<void> {
    const stored = await this.slowHash(password);
    this.db.transaction(() => {
      if (!this.st.get.get(namespace, id)) throw errors.NotFound('auth', `no account ${id} in namespace ${namespace}`);
      this.st.dropChosen.run(namespace, id);
      this.st.addSecret.run(namespace, id, 'scrypt', stored.salt, stored.hash, 0, Date.now());
    })();
    this.sessions.revokeAccount(id, namespace);
  }

  private slowHash(secret: string): Promise<{ kind: 'scrypt'; salt: string; hash: string }> {
    return this.hasher.slow(secret);
  }

  private keyedHash(secret: string): string {
    return this.hasher.keyed(secret);
  }
}

/** An account of a row of either storage (scopes and metadata as JSON). */
export function toAccount(row: AccountRow): Account {
  const account: Account = { id: row.id, type: row.type, issuer: row.namespace, scopes: JSON.parse(row.scopes) as string[] };
  const metadata = JSON.parse(row.metadata) as Record<string, string>;
  if (Object.keys(metadata).length > 0) account.metadata = metadata;
  return account;
}

/** What ListAccounts and the like show of a row of either storage. */
export function toInfo(row: AccountRow): AccountInfo {
  return { ...toAccount(row), createdAt: row.created_at, ...(row.disabled ? { disabled: true } : {}) };
}

export function unauthorized(detail: string): Error {
  return errors.Unauthorized('auth', detail);
}
