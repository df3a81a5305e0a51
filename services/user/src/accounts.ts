import { errors, type Context, type Engines } from '@micro/sdk';
import { tenantStore, unixSeconds, type TenantStore } from '@micro/services-kit';
import { USER_LIMITS } from './definition.js';
import type { PasswordHash } from './password.js';

/**
 * Where the user service keeps a tenant's accounts: database `user` of the tenant's own
 * namespace (tenantStore), tables
 * - `accounts`: id → the account with its password hash;
 * - `usernames`, `emails`: the lower-cased name → id, the claims that keep them unique;
 * - `sessions`: SHA-256 of the session id → the session (expiring with it);
 *   `user_sessions`: `<encoded user id>/<that digest>`, to end every session of a user;
 * - `tokens`: SHA-256 of an emailed token → what it verifies (expiring with it);
 * - `resets`: the email → the pending password reset (code digest, tries left).
 */
export interface StoredAccount {
  id: string;
  username: string;
  email: string;
  created: number;
  updated: number;
  verified: boolean;
  verification_date: number;
  profile: Record<string, string>;
  password: PasswordHash;
}

export interface StoredSession {
  userId: string;
  created: number;
  expires: number;
}

export const DB = 'user';

export function storeOf(engines: Engines, ctx: Context): TenantStore {
  return tenantStore(engines.store, ctx, DB);
}

export async function readRecord<T>(db: TenantStore, table: string, key: string): Promise<T | undefined> {
  const [rec] = await db.read(key, { table });
  return rec?.value as T | undefined;
}

export const claimKey = (name: string) => name.toLowerCase();
export const sessionIndexKey = (userId: string, sessionDigest: string) => `${encodeURIComponent(userId)}/${sessionDigest}`;

/** The account as M3O answers it: never the password hash. */
export function accountOut(a: StoredAccount) {
  return {
    id: a.id,
    username: a.username,
    email: a.email,
    created: unixSeconds(a.created),
    updated: unixSeconds(a.updated),
    verified: a.verified,
    verification_date: a.verified ? unixSeconds(a.verification_date) : '0',
    profile: a.profile,
  };
}

export function sessionOut(id: string, s: StoredSession) {
  return { id, userId: s.userId, created: unixSeconds(s.created), expires: unixSeconds(s.expires) };
}

/**
 * Runs `fn` holding the tenant's lock `name` (sync engine, namespace ctx.tenant): what
 * reads, then writes (claiming a username, using a one-time token) is done by one caller
 * at a time, on every node.
 */
export async function withLock<T>(engines: Engines, ctx: Context, name: string, fn: () => Promise<T>): Promise<T> {
  const lock = await engines.sync.lock(`user/${name}`, { namespace: ctx.tenant, ttl: 30_000, wait: 15_000, owner: 'user service' });
  try {
    return await fn();
  } finally {
    await lock.release().catch(() => undefined);
  }
}

// eslint-disable-next-line no-control-regex -- control characters are what is refused
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
// one bare address: what the platform's mail checks take, roughly; they check it again on send
const EMAIL = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;

export function bad(field: string, why: string): never {
  throw errors.BadRequest('user', `${field}: ${why}`);
}

export function required(field: string, value: string | undefined): string {
  if (value === undefined || value.trim() === '') throw errors.BadRequest('user', `Missing ${field}`);
  return value;
}

export function checkEmail(value: string | undefined, field = 'email'): string {
  const email = required(field, value).trim().toLowerCase();
  if (!EMAIL.test(email)) bad(field, 'must be one address like name@example.com');
  return email;
}

export function checkUsername(value: string | undefined): string {
  const username = required('username', value);
  if (CONTROLS.test(username) || username.trim() !== username) bad('username', 'must not start or end with spaces or hold control characters');
  return username;
}

export function checkId(value: string | undefined, field = 'id'): string {
  const id = required(field, value);
  if (CONTROLS.test(id)) bad(field, 'must not hold control characters');
  return id;
}

export function checkNewPassword(password: string | undefined, confirm?: string, field = 'password'): string {
  const p = required(field, password);
  if (p.length < USER_LIMITS.password.min) bad(field, `must be at least ${USER_LIMITS.password.min} characters`);
  if (confirm !== undefined && confirm !== p) bad('confirm_password', `is not the same as ${field}`);
  return p;
}

export function checkProfile(profile: Record<string, string> | undefined): Record<string, string> {
  if (!profile) return {};
  if (Object.keys(profile).length > USER_LIMITS.profileKeys) bad('profile', `at most ${USER_LIMITS.profileKeys} keys`);
  return profile;
}
