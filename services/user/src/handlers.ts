import { randomInt, randomUUID } from 'node:crypto';
import { errors, type Context, type Engines, type Handlers } from '@micro/sdk';
import { publicService, type TenantStore } from '@micro/services-kit';
import {
  accountOut,
  bad,
  checkEmail,
  checkId,
  checkNewPassword,
  checkProfile,
  checkUsername,
  claimKey,
  readRecord,
  required,
  sessionIndexKey,
  sessionOut,
  storeOf,
  withLock,
  type StoredAccount,
  type StoredSession,
} from './accounts.js';
import { user, USER_LIMITS } from './definition.js';
import { fill, sendEmail } from './mail.js';
import { checkPassword, digest, hashPassword, newSecret, sameDigest } from './password.js';

export interface UserOptions {
  /** ms a session lasts (default 7 days) */
  sessionTtl?: number;
  /** ms an email verification link lasts (default 24 hours) */
  verifyTtl?: number;
  /** ms a magic link lasts (default 15 minutes) */
  magicTtl?: number;
  /** wrong codes a password reset takes before it ends (default 5) */
  resetTries?: number;
  /** default Date.now */
  now?: () => number;
}

const DAY = 86_400_000;
const RESET_DEFAULT_S = 1800;
const RESET_MAX_S = 86_400;

interface StoredToken {
  kind: 'verify' | 'magic';
  userId: string;
  email: string;
  expires: number;
}

interface StoredReset {
  userId: string;
  code: string;
  expires: number;
  tries: number;
}

/** The user service's handlers on a set of engines. */
export function userHandlers(engines: Engines, options: UserOptions = {}): Handlers<typeof user> {
  const now = options.now ?? Date.now;
  const sessionTtl = options.sessionTtl ?? 7 * DAY;
  const tries = options.resetTries ?? 5;

  const byId = async (db: TenantStore, id: string) => readRecord<StoredAccount>(db, 'accounts', id);
  const byClaim = async (db: TenantStore, table: 'usernames' | 'emails', name: string) => {
    const id = await readRecord<string>(db, table, claimKey(name));
    return id === undefined ? undefined : byId(db, id);
  };
  const mustFind = (a: StoredAccount | undefined, what: string): StoredAccount => {
    if (!a) throw errors.NotFound('user', `no account with ${what}`);
    return a;
  };

  const newSession = async (db: TenantStore, userId: string) => {
    const id = newSecret();
    const created = now();
    const session: StoredSession = { userId, created, expires: created + sessionTtl };
    const ttl = sessionTtl / 1000;
    await db.write({ key: digest(id), value: session }, { table: 'sessions', ttl });
    await db.write({ key: sessionIndexKey(userId, digest(id)), value: null }, { table: 'user_sessions', ttl });
    return sessionOut(id, session);
  };

  const endSessions = async (db: TenantStore, userId: string) => {
    const prefix = `${encodeURIComponent(userId)}/`;
    for (;;) {
      const keys = await db.list({ table: 'user_sessions', prefix, limit: 1000 });
      if (keys.length === 0) return;
      for (const key of keys) {
        await db.delete(key.slice(prefix.length), { table: 'sessions' });
        await db.delete(key, { table: 'user_sessions' });
      }
    }
  };

  /** A one-time token for `account`, stored as its digest. */
  const newToken = async (db: TenantStore, kind: StoredToken['kind'], account: StoredAccount, ttl: number) => {
    const token = newSecret();
    await db.write({ key: digest(token), value: { kind, userId: account.id, email: account.email, expires: now() + ttl } satisfies StoredToken }, { table: 'tokens', ttl: ttl / 1000 });
    return token;
  };

  /** Uses a one-time token once: the account it names, or why not. */
  const useToken = (ctx: Context, db: TenantStore, kind: StoredToken['kind'], token: string) =>
    withLock(engines, ctx, `token/${digest(token)}`, async (): Promise<StoredAccount | string> => {
      const stored = await readRecord<StoredToken>(db, 'tokens', digest(token));
      if (!stored || stored.kind !== kind || stored.expires <= now()) return 'the token is wrong, used or expired';
      await db.delete(digest(token), { table: 'tokens' });
      const account = await byId(db, stored.userId);
      // an email changed since the link was sent: the link was for the old one
      if (!account || account.email !== stored.email) return 'the account of the token is gone or its email changed';
      return account;
    });

  return {
    Create: async (req, ctx) => {
      const db = storeOf(engines, ctx);
      const username = checkUsername(req.username);
      const email = checkEmail(req.email);
      const password = checkNewPassword(req.password);
      const id = req.id === undefined || req.id === '' ? randomUUID() : checkId(req.id);
      const profile = checkProfile(req.profile);
      const hash = await hashPassword(password);
      return withLock(engines, ctx, 'identity', async () => {
        if (await byId(db, id)) bad('id', `${JSON.stringify(id)} is taken`);
        if (await readRecord(db, 'usernames', claimKey(username))) bad('username', 'is taken');
        if (await readRecord(db, 'emails', claimKey(email))) bad('email', 'is taken');
        const t = now();
        const account: StoredAccount = { id, username, email, created: t, updated: t, verified: false, verification_date: 0, profile, password: hash };
        await db.write({ key: claimKey(username), value: id }, { table: 'usernames' });
        await db.write({ key: claimKey(email), value: id }, { table: 'emails' });
        await db.write({ key: id, value: account }, { table: 'accounts' });
        return { account: accountOut(account) };
      });
    },

    Read: async ({ id, username, email }, ctx) => {
      const db = storeOf(engines, ctx);
      if (id) return { account: accountOut(mustFind(await byId(db, id), 'this id')) };
      if (username) return { account: accountOut(mustFind(await byClaim(db, 'usernames', username), 'this username')) };
      if (email) return { account: accountOut(mustFind(await byClaim(db, 'emails', email.trim()), 'this email')) };
      throw errors.BadRequest('user', 'Missing id, username or email');
    },

    Update: async (req, ctx) => {
      const db = storeOf(engines, ctx);
      const id = checkId(req.id);
      const username = req.username ? checkUsername(req.username) : undefined;
      const email = req.email ? checkEmail(req.email) : undefined;
      const profile = req.profile ? checkProfile(req.profile) : undefined;
      await withLock(engines, ctx, 'identity', async () => {
        const account = mustFind(await byId(db, id), 'this id');
        const next: StoredAccount = { ...account, updated: now(), ...(profile ? { profile } : {}) };
        if (username && claimKey(username) !== claimKey(account.username)) {
          if (await readRecord(db, 'usernames', claimKey(username))) bad('username', 'is taken');
          await db.write({ key: claimKey(username), value: id }, { table: 'usernames' });
          await db.delete(claimKey(account.username), { table: 'usernames' });
        }
        if (username) next.username = username;
        if (email && email !== account.email) {
          if (await readRecord(db, 'emails', claimKey(email))) bad('email', 'is taken');
          await db.write({ key: claimKey(email), value: id }, { table: 'emails' });
          await db.delete(claimKey(account.email), { table: 'emails' });
          Object.assign(next, { email, verified: false, verification_date: 0 });
        }
        await db.write({ key: id, value: next }, { table: 'accounts' });
      });
      return {};
    },

    Delete: async (req, ctx) => {
      const db = storeOf(engines, ctx);
      const id = checkId(req.id);
      await withLock(engines, ctx, 'identity', async () => {
        const account = mustFind(await byId(db, id), 'this id');
        await endSessions(db, id);
        await db.delete(claimKey(account.username), { table: 'usernames' });
        await db.delete(claimKey(account.email), { table: 'emails' });
        await db.delete(account.email, { table: 'resets' });
        await db.delete(id, { table: 'accounts' });
      });
      return {};
    },

    List: async ({ limit, offset }, ctx) => {
      const db = storeOf(engines, ctx);
      const ids = await db.list({ table: 'accounts', limit: limit || USER_LIMITS.list.default, offset: offset ?? 0 });
      const users: ReturnType<typeof accountOut>[] = [];
      for (const id of ids) {
        const a = await byId(db, id);
        if (a) users.push(accountOut(a));
      }
      return { users };
    },

    Login: async ({ username, email, password }, ctx) => {
      const db = storeOf(engines, ctx);
      if (!username && !email) throw errors.BadRequest('user', 'Missing username or email');
      const pw = required('password', password);
      const account = username ? await byClaim(db, 'usernames', username) : await byClaim(db, 'emails', (email as string).trim());
      // the same answer, after the same work, for an unknown user and a wrong password
      if (!(await checkPassword(pw, account?.password)) || !account) throw errors.Unauthorized('user', 'wrong username, email or password');
      return { session: await newSession(db, account.id) };
    },

    Logout: async ({ session_id }, ctx) => {
      const db = storeOf(engines, ctx);
      const id = required('session_id', session_id);
      const session = await readRecord<StoredSession>(db, 'sessions', digest(id));
      if (!session) throw errors.NotFound('user', 'session_id: no such session (ended or expired)');
      await db.delete(digest(id), { table: 'sessions' });
      await db.delete(sessionIndexKey(session.userId, digest(id)), { table: 'user_sessions' });
      return {};
    },

    LogoutAll: async ({ user_id }, ctx) => {
      const db = storeOf(engines, ctx);
      const id = checkId(user_id, 'user_id');
      mustFind(await byId(db, id), 'this user_id');
      await endSessions(db, id);
      return {};
    },

    ReadSession: async ({ session_id }, ctx) => {
      const db = storeOf(engines, ctx);
      const id = required('session_id', session_id);
      const session = await readRecord<StoredSession>(db, 'sessions', digest(id));
      const account = session && session.expires > now() ? await byId(db, session.userId) : undefined;
      if (!session || !account) throw errors.Unauthorized('user', 'session_id: no such session, or it has expired');
      return { session: sessionOut(id, session), account: accountOut(account) };
    },

    UpdatePassword: async (req, ctx) => {
      const db = storeOf(engines, ctx);
      const id = checkId(req.userId, 'userId');
      const old = required('old_password', req.old_password);
      const password = checkNewPassword(req.new_password, req.confirm_password ?? req.new_password, 'new_password');
      const account = mustFind(await byId(db, id), 'this userId');
      if (!(await checkPassword(old, account.password))) throw errors.Unauthorized('user', 'old_password: wrong password');
      const hash = await hashPassword(password);
      await withLock(engines, ctx, 'identity', async () => {
        const current = mustFind(await byId(db, id), 'this userId');
        await db.write({ key: id, value: { ...current, password: hash, updated: now() } }, { table: 'accounts' });
      });
      return {};
    },

    SendVerificationEmail: async (req, ctx) => {
      const db = storeOf(engines, ctx);
      const email = checkEmail(req.email);
      const redirect = linkBase(required('redirect_url', req.redirect_url), 'redirect_url');
      const account = mustFind(await byClaim(db, 'emails', email), 'this email');
      const token = await newToken(db, 'verify', account, options.verifyTtl ?? DAY);
      redirect.searchParams.set('token', token);
      const link = redirect.toString();
      const text = fill(req.text_content || 'Verify your email address: $micro_verification_link', { link });
      await sendEmail(engines, ctx, { to: account.email, subject: req.subject || 'Verify your email address', text, fromName: req.from_name });
      return {};
    },

    VerifyEmail: async ({ token }, ctx) => {
      const db = storeOf(engines, ctx);
      const used = await useToken(ctx, db, 'verify', required('token', token));
      if (typeof used === 'string') throw errors.BadRequest('user', `token: ${used}`);
      await withLock(engines, ctx, 'identity', async () => {
        const current = await byId(db, used.id);
        if (current) await db.write({ key: used.id, value: { ...current, verified: true, verification_date: now(), updated: now() } }, { table: 'accounts' });
      });
      return {};
    },

    SendPasswordResetEmail: async (req, ctx) => {
      const db = storeOf(engines, ctx);
      const email = checkEmail(req.email);
      const seconds = req.expiration === undefined || req.expiration === 0 ? RESET_DEFAULT_S : req.expiration;
      if (seconds < 60 || seconds > RESET_MAX_S) bad('expiration', `must be from 60 to ${RESET_MAX_S} seconds`);
      const account = mustFind(await byClaim(db, 'emails', email), 'this email');
      const code = String(randomInt(0, 100_000_000)).padStart(8, '0');
      const reset: StoredReset = { userId: account.id, code: digest(`${account.id}:${code}`), expires: now() + seconds * 1000, tries };
      await db.write({ key: account.email, value: reset }, { table: 'resets', ttl: seconds });
      const text = fill(req.text_content || 'Your password reset code is $code', { code });
      await sendEmail(engines, ctx, { to: account.email, subject: req.subject || 'Reset your password', text, fromName: req.from_name });
      return {};
    },

    ResetPassword: async (req, ctx) => {
      const db = storeOf(engines, ctx);
      const email = checkEmail(req.email);
      const code = required('code', req.code).trim();
      const password = checkNewPassword(req.new_password, req.confirm_password ?? req.new_password, 'new_password');
      const userId = await withLock(engines, ctx, `reset/${digest(email)}`, async () => {
        const reset = await readRecord<StoredReset>(db, 'resets', email);
        if (!reset || reset.expires <= now()) bad('code', 'no password reset is pending for this email, or it expired: send a new one');
        if (!sameDigest(digest(`${reset.userId}:${code}`), reset.code)) {
          const left = reset.tries - 1;
          if (left <= 0) await db.delete(email, { table: 'resets' });
          else await db.write({ key: email, value: { ...reset, tries: left } }, { table: 'resets', ttl: (reset.expires - now()) / 1000 });
          bad('code', left <= 0 ? 'wrong code; that was the last try: send a new one' : `wrong code (${left} tries left)`);
        }
        await db.delete(email, { table: 'resets' });
        return reset.userId;
      });
      const hash = await hashPassword(password);
      await withLock(engines, ctx, 'identity', async () => {
        const current = await byId(db, userId);
        if (!current || current.email !== email) bad('email', 'the account changed its email or is gone');
        await db.write({ key: userId, value: { ...current, password: hash, updated: now() } }, { table: 'accounts' });
      });
      await endSessions(db, userId);
      return {};
    },

    SendMagicLink: async (req, ctx) => {
      const db = storeOf(engines, ctx);
      const email = checkEmail(req.email);
      const base = linkBase(required('address', req.address), 'address');
      const path = (req.endpoint ?? '').replace(/^\/+/, '');
      if (!/^[A-Za-z0-9._~\-/]*$/.test(path) || path.split('/').includes('..')) bad('endpoint', 'must be a path of letters, digits and . _ ~ - /');
      const link = new URL(`${base.pathname.replace(/\/+$/, '')}/${path}`, base);
      const account = mustFind(await byClaim(db, 'emails', email), 'this email');
      link.searchParams.set('token', await newToken(db, 'magic', account, options.magicTtl ?? 15 * 60_000));
      const text = fill(req.text_content || 'Sign in: $micro_verification_link', { link: link.toString() });
      await sendEmail(engines, ctx, { to: account.email, subject: req.subject || 'Your sign-in link', text, fromName: req.from_name });
      return {};
    },

    VerifyToken: async ({ token }, ctx) => {
      const db = storeOf(engines, ctx);
      const used = await useToken(ctx, db, 'magic', required('token', token));
      if (typeof used === 'string') return { is_valid: false, message: used };
      return { is_valid: true, message: '', session: await newSession(db, used.id) };
    },
  };
}

/** An http(s) URL a link is built on (`example.com` taken as https://example.com). */
function linkBase(value: string, field: string): URL {
  const text = /^[a-z][a-z0-9+.-]*:/i.test(value.trim()) ? value.trim() : `https://${value.trim()}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    bad(field, 'must be an http(s) URL like https://example.com/verify');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') bad(field, 'must be an http(s) URL');
  if (url.username || url.password) bad(field, 'must not hold a user name or password');
  return url;
}

export const service = publicService(user, (engines) => userHandlers(engines));
export { user } from './definition.js';
