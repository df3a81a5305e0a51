import type { Account, AccountInfo, Jwks, KeyInfo, Rule } from '@micro/sdk';
import type { NewAccount } from './accounts.js';
import type { StoredRule } from './rules.js';

/**
 * What the auth service, the gateway and micro server need of auth's storage: the
 * SQLite one (`Accounts`, `Tokens`: one node, the local profile, synchronous) and the
 * PostgreSQL one (`openPgAuth` in pg/: several nodes, the nats profile, asynchronous)
 * both satisfy it. Callers `await` every result (a value of the SQLite storage passes
 * through `await` unchanged).
 */

export type MaybePromise<T> = T | Promise<T>;

export interface ApiKeyStorage {
  /** A new key for an account; the key itself is returned here and never again. */
  create(owner: Account, name: string, scopes: string[], expiresIn?: number): MaybePromise<{ key: string; info: KeyInfo }>;
  /** What a key acts as; undefined for a key that is unknown, revoked, expired or wrong. */
  verify(key: string): MaybePromise<Account | undefined>;
  get(keyId: string): MaybePromise<KeyInfo | undefined>;
  list(namespace: string, account?: string): MaybePromise<KeyInfo[]>;
  revoke(keyId: string): MaybePromise<boolean>;
}

export interface SessionStorage {
  start(account: Account): MaybePromise<{ refreshToken: string; refreshExpiresAt: number }>;
  rotate(token: string): MaybePromise<{ account: Account; refreshToken: string; refreshExpiresAt: number }>;
  revokeAccount(id: string, namespace: string): MaybePromise<void>;
}

export interface RuleStorage {
  /** The rules of a namespace in evaluation order. */
  list(namespace: string): MaybePromise<StoredRule[]>;
  create(namespace: string, rule: Rule): MaybePromise<StoredRule>;
  delete(namespace: string, id: string): MaybePromise<void>;
}

export interface AuthAccounts {
  readonly keys: ApiKeyStorage;
  readonly sessions: SessionStorage;
  readonly rules: RuleStorage;
  ensureNamespace(namespace: string): MaybePromise<void>;
  get(id: string, namespace: string): MaybePromise<Account | undefined>;
  info(id: string, namespace: string): MaybePromise<AccountInfo | undefined>;
  create(spec: NewAccount): Promise<{ account: AccountInfo; secret?: string }>;
  list(namespace: string, limit?: number, after?: string): MaybePromise<{ accounts: AccountInfo[]; next?: string }>;
  delete(id: string, namespace: string): MaybePromise<void>;
  /** A new secret for the admin of `micro` (the account is made when missing), returned once. */
  createAdmin(): MaybePromise<{ id: string; secret: string }>;
  issueServiceSecret(service: string, namespace: string): MaybePromise<{ id: string; secret: string }>;
  /** Forgets the secrets this node's runtime handed to its instances. */
  dropServiceSecrets(): MaybePromise<void>;
  verify(id: string, namespace: string, secret: string): Promise<Account | undefined>;
  setPassword(id: string, namespace: string, password: string): Promise<void>;
  close(): MaybePromise<void>;
}

export interface AuthTokens {
  /** seconds an access token lives */
  readonly accessTtl: number;
  /** the kid of the key that signs now */
  readonly currentKid: string;
  /** Starts signing with a new key; returns its kid. */
  rotate(): MaybePromise<string>;
  /** The public keys, current and previous. */
  jwks(): MaybePromise<Jwks>;
  issue(account: Account): Promise<{ token: string; expiresAt: number }>;
  /** The account a token speaks for; a 401 (TokenError) otherwise. */
  verify(token: string): Promise<Account>;
  /** A general token that `verify` accepts, scoped to one service (`<namespace>/<service>`): see scoped.ts. */
  scope(token: string, audience: string): Promise<{ token: string; expiresAt: number }>;
}
