import { createHmac, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import { readJson, writeJsonDurable, errors, type Account } from '@micro/sdk';

/**
 * The accounts of micro server, kept in <home>/server/accounts.json (0600).
 *
 * Secrets are never stored: a person's secret is kept as a scrypt hash (slow, salted);
 * the secrets the runtime hands to the services it starts are random 32-byte values kept
 * as HMAC-SHA256 under a server key (keyed: fast to check, useless without the key).
 * A service account holds one secret per running instance; they are dropped when the
 * server starts, because the runtime then starts every instance afresh.
 */

interface StoredSecret {
  kind: 'scrypt' | 'hmac';
  salt?: string;
  hash: string;
  createdAt: number;
}

interface StoredAccount {
  id: string;
  type: 'user' | 'service' | 'admin';
  namespace: string;
  scopes: string[];
  secrets: StoredSecret[];
  createdAt: number;
}

interface AccountsFile {
  version: 1;
  hmacKey: string;
  accounts: StoredAccount[];
}

const SCRYPT = { N: 16384, r: 8, p: 1, keylen: 32 };
const MAX_SECRETS = 256;

export class Accounts {
  private data: AccountsFile;

  constructor(private readonly path: string) {
    this.data = readJson<AccountsFile>(path) ?? { version: 1, hmacKey: randomBytes(32).toString('hex'), accounts: [] };
  }

  private save(): void {
    writeJsonDurable(this.path, this.data);
  }

  private find(id: string, namespace: string): StoredAccount | undefined {
    return this.data.accounts.find((a) => a.id === id && a.namespace === namespace);
  }

  get(id: string, namespace: string): Account | undefined {
    const a = this.find(id, namespace);
    return a && publicAccount(a);
  }

  /** Creates the admin account of namespace `micro` with a new random secret, returned once. */
  createAdmin(): { id: string; secret: string } {
    const secret = randomBytes(24).toString('base64url');
    const existing = this.find('admin', 'micro');
    const stored: StoredAccount = existing ?? { id: 'admin', type: 'admin', namespace: 'micro', scopes: ['admin'], secrets: [], createdAt: Date.now() };
    stored.secrets = [this.slowHash(secret)];
    if (!existing) this.data.accounts.push(stored);
    this.save();
    return { id: 'admin', secret };
  }

  /** A new secret for the service account of (service, namespace), for one instance. */
  issueServiceSecret(service: string, namespace: string): { id: string; secret: string } {
    const id = `service:${service}`;
    let account = this.find(id, namespace);
    if (!account) {
      account = { id, type: 'service', namespace, scopes: ['service'], secrets: [], createdAt: Date.now() };
      this.data.accounts.push(account);
    }
    const secret = randomBytes(32).toString('base64url');
    account.secrets.push({ kind: 'hmac', hash: this.keyedHash(secret), createdAt: Date.now() });
    if (account.secrets.length > MAX_SECRETS) account.secrets.splice(0, account.secrets.length - MAX_SECRETS);
    this.save();
    return { id, secret };
  }

  /** Forgets the secrets of every service account (their instances are restarted). */
  dropServiceSecrets(): void {
    let changed = false;
    for (const a of this.data.accounts) {
      if (a.type === 'service' && a.secrets.length > 0) {
        a.secrets = [];
        changed = true;
      }
    }
    if (changed || !this.exists()) this.save();
  }

  private exists(): boolean {
    return readJson(this.path) !== undefined;
  }

  /** The account when the secret is one of its secrets; undefined otherwise (same time either way). */
  verify(id: string, namespace: string, secret: string): Account | undefined {
    const account = this.find(id, namespace);
    if (!account) {
      // spend the same time as a real check, so that timing does not tell which ids exist
      this.slowHash(secret);
      return undefined;
    }
    for (const stored of account.secrets) {
      const candidate = stored.kind === 'scrypt' ? scryptSync(secret, Buffer.from(stored.salt ?? '', 'hex'), SCRYPT.keylen, SCRYPT) : Buffer.from(this.keyedHash(secret), 'hex');
      const expected = Buffer.from(stored.hash, 'hex');
      if (candidate.length === expected.length && timingSafeEqual(candidate, expected)) return publicAccount(account);
    }
    return undefined;
  }

  private slowHash(secret: string): StoredSecret {
    const salt = randomBytes(16);
    const hash = scryptSync(secret, salt, SCRYPT.keylen, SCRYPT);
    return { kind: 'scrypt', salt: salt.toString('hex'), hash: hash.toString('hex'), createdAt: Date.now() };
  }

  private keyedHash(secret: string): string {
    return createHmac('sha256', Buffer.from(this.data.hmacKey, 'hex')).update(secret).digest('hex');
  }
}

function publicAccount(a: StoredAccount): Account {
  return { id: a.id, type: a.type, issuer: a.namespace, scopes: [...a.scopes] };
}

export function unauthorized(detail: string): Error {
  return errors.Unauthorized('auth', detail);
}
