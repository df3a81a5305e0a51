import type { AccessClaims, Account, AccountInfo, Jwks, KeyInfo, Revocation, RevocationList, Rule } from '@micro/sdk';
import type { NewAccount } from './accounts.js';
import type { KeyDetails } from './keys.js';
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
  /**
   * A new key for an account; the key itself is returned here and never again. With
   * `maxInNamespace` (the apiKeys quota), the keys of the owner's namespace are counted and
   * the key refused (quotaExceeded) in the same transaction as the insert, serialised per
   * namespace, so concurrent creates never pass it. `details`: its description and the
   * services it may call (default any).
   */
  create(owner: Account, name: string, scopes: string[], expiresIn?: number, maxInNamespace?: number | null, details?: KeyDetails): MaybePromise<{ key: string; info: KeyInfo }>;
  /**
   * What a key acts as (its services in the metadata, see keyAccount); undefined for a key
   * that is unknown, revoked or wrong, or whose account is gone. Once the secret matched: a
   * 401 for an expired key, a 403 v1.blocked with the admin's message for a blocked one.
   * A use is remembered (last used, see key-usage.ts), without a write.
   */
  verify(key: string): MaybePromise<Account | undefined>;
  get(keyId: string): MaybePromise<KeyInfo | undefined>;
  list(namespace: string, account?: string): MaybePromise<KeyInfo[]>;
  revoke(keyId: string): MaybePromise<boolean>;
  /**
   * Blocks a key with the message its callers are told; undefined when there is no such
   * key, a 409 when it is blocked already. Every node refuses it from then on (the Postgres
   * storage drops it from every node's cache).
   */
  block(keyId: string, message: string): MaybePromise<KeyInfo | undefined>;
  /** Lifts a block; undefined when there is no such key, a 409 when it is not blocked. */
  unblock(keyId: string): MaybePromise<KeyInfo | undefined>;
  /** Writes the last uses remembered so far (the storage does it every minute, and on close). */
  flushUsage(): MaybePromise<void>;
}

/** `session`: the id of the session (refresh family), the `sid` of the access tokens issued with it */
export interface SessionStorage {
  start(account: Account): MaybePromise<{ refreshToken: string; refreshExpiresAt: number; session: string }>;
  /** A refusal that ended a session (a reused token: stolen?) names it in the error's `endedSession`, so its access tokens can be revoked. */
  rotate(token: string): MaybePromise<{ account: Account; refreshToken: string; refreshExpiresAt: number; session: string }>;
  /** Ends the session of a refresh token (logout): its session id, or undefined for a token not known (any more). */
  end(token: string): MaybePromise<string | undefined>;
  /** Ends a session by its id (the sid of its access tokens): its refresh tokens go. */
  endSession(session: string): MaybePromise<void>;
  revokeAccount(id: string, namespace: string): MaybePromise<void>;
}

/**
 * The revocation list of auth (see sdk auth/revocations.ts), kept durable: `add` stores an
 * entry (SQLite; Postgres, announced to every node) and puts it in `list` before it
 * returns, so every verifier of this process refuses the token at once.
 */
export interface RevocationStorage {
  readonly list: RevocationList;
  add(r: Revocation): MaybePromise<void>;
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
  readonly revocations: RevocationStorage;
  ensureNamespace(namespace: string): MaybePromise<void>;
  get(id: string, namespace: string): MaybePromise<Account | undefined>;
  info(id: string, namespace: string): MaybePromise<AccountInfo | undefined>;
  create(spec: NewAccount): Promise<{ account: AccountInfo; secret?: string }>;
  list(namespace: string, limit?: number, after?: string): MaybePromise<{ accounts: AccountInfo[]; next?: string }>;
  delete(id: string, namespace: string): MaybePromise<void>;
  /** Disables (ending its sessions) or enables an account, or replaces its scopes; a 404 when it does not exist. */
  update(id: string, namespace: string, change: { disabled?: boolean; scopes?: string[] }): MaybePromise<AccountInfo>;
  /** A new secret for the admin of `micro` (the account is made when missing), returned once. */
  createAdmin(): MaybePromise<{ id: string; secret: string }>;
  issueServiceSecret(service: string, namespace: string): MaybePromise<{ id: string; secret: string }>;
  /** Forgets the secrets this node's runtime handed to its instances. */
  dropServiceSecrets(): MaybePromise<void>;
  verify(id: string, namespace: string, secret: string): Promise<Account | undefined>;
  /**
   * The account when `secret` is one the server generated for it (a service's, admin.json's,
   * a generated one): one keyed hash, no scrypt; undefined otherwise (then `verify` decides).
   * Such secrets cannot be guessed, so this check needs no throttle (see throttle.ts).
   */
  verifyGenerated(id: string, namespace: string, secret: string): MaybePromise<Account | undefined>;
  setPassword(id: string, namespace: string, password: string): Promise<void>;
  /** Deletes every account of a namespace (secrets, keys, sessions with them), its rules and its name; the ids of the accounts that went (purge/). */
  purgeNamespace(namespace: string): MaybePromise<string[]>;
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
  /** seconds: tokens claiming a longer life are refused */
  readonly maxTtl: number;
  /** what verify checks tokens against */
  readonly revocations: RevocationList;
  /** A token of session `sid` (default: `key:<id>` for API keys, else a fresh one). */
  issue(account: Account, sid?: string): Promise<{ token: string; expiresAt: number }>;
  /** The account a token speaks for; a 401 (TokenError) otherwise (also for a revoked or too long-lived one). */
  verify(token: string): Promise<Account>;
  /** A general token that `verify` accepts, scoped to one service (`<namespace>/<service>`): see scoped.ts. */
  scope(token: string, audience: string): Promise<{ token: string; expiresAt: number }>;
  /** verify, with the token's claims (e.g. its `sid`, which a token minted from it keeps). */
  verifyClaims(token: string): Promise<{ account: Account; claims: AccessClaims }>;
}
