import { defineService, endpoint, z } from '@micro/sdk';
import { i64, i64Out, m3oRequest } from '@micro/services-kit';

/** Bounds of what a caller sends (M3O left them open; a store record and an email need some). */
export const USER_LIMITS = Object.freeze({
  id: 128,
  username: 128,
  email: 254,
  password: { min: 8, max: 128 },
  profileKeys: 50,
  profileKey: 128,
  profileValue: 4096,
  token: 256,
  subject: 200,
  textContent: 20_000,
  url: 2048,
  fromName: 100,
  list: { default: 25, max: 1000 },
});

const Str = (max: number) => z.string().max(max);
const Profile = z.record(z.string().min(1).max(USER_LIMITS.profileKey), z.string().max(USER_LIMITS.profileValue));

const Account = z.object({
  id: z.string(),
  username: z.string(),
  email: z.string(),
  created: i64Out,
  updated: i64Out,
  verified: z.boolean(),
  verification_date: i64Out,
  profile: z.record(z.string(), z.string()),
});

const Session = z.object({ id: z.string(), userId: z.string(), created: i64Out, expires: i64Out });

const Empty = z.object({});

/** An email the service sends: M3O's fields, the body a template with `$code` / `$micro_verification_link`. */
const Email = {
  email: Str(USER_LIMITS.email).optional(),
  subject: Str(USER_LIMITS.subject).optional(),
  text_content: Str(USER_LIMITS.textContent).optional(),
  from_name: Str(USER_LIMITS.fromName).optional(),
};

// Prices in units of 10^-6 USD: account calls $0.0001 beyond 10,000 free a month; an email
// sent $0.001 beyond 100 free (it costs the platform a message and its sender reputation).
const call = { price: 100, freeQuota: 10_000 };
const mail = { price: 1_000, freeQuota: 100 };

export const user = defineService({
  name: 'user',
  version: '1.0.0',
  public: true,
  description: 'User accounts, sessions, email verification, password reset and magic links',
  endpoints: {
    Create: endpoint({
      ...call,
      description: 'Creates an account: email, username and a password of at least 8 characters; usernames and emails are unique (400 when taken)',
      request: m3oRequest({ id: Str(USER_LIMITS.id).optional(), username: Str(USER_LIMITS.username).optional(), email: Str(USER_LIMITS.email).optional(), password: Str(USER_LIMITS.password.max).optional(), profile: Profile.optional() }),
      response: z.object({ account: Account }),
    }),
    Read: endpoint({
      ...call,
      readonly: true,
      description: 'An account by id, username or email',
      request: m3oRequest({ id: Str(USER_LIMITS.id).optional(), username: Str(USER_LIMITS.username).optional(), email: Str(USER_LIMITS.email).optional() }),
      response: z.object({ account: Account }),
    }),
    Update: endpoint({
      ...call,
      description: 'Changes the username, email or profile of an account (a new email is unverified)',
      request: m3oRequest({ id: Str(USER_LIMITS.id).optional(), username: Str(USER_LIMITS.username).optional(), email: Str(USER_LIMITS.email).optional(), profile: Profile.optional() }),
      response: Empty,
    }),
    Delete: endpoint({
      ...call,
      description: 'Deletes an account and its sessions',
      request: m3oRequest({ id: Str(USER_LIMITS.id).optional() }),
      response: Empty,
    }),
    List: endpoint({
      ...call,
      readonly: true,
      description: `Accounts in id order: limit (default ${USER_LIMITS.list.default}, at most ${USER_LIMITS.list.max}) and offset`,
      request: m3oRequest({ limit: z.number().int().min(0).max(USER_LIMITS.list.max).optional(), offset: z.number().int().min(0).max(100_000).optional() }),
      response: z.object({ users: z.array(Account) }),
    }),
    Login: endpoint({
      ...call,
      description: 'A session (7 days) for a username or email and its password; a wrong password is 401',
      request: m3oRequest({ username: Str(USER_LIMITS.username).optional(), email: Str(USER_LIMITS.email).optional(), password: Str(USER_LIMITS.password.max).optional() }),
      response: z.object({ session: Session }),
    }),
    Logout: endpoint({
      ...call,
      description: 'Ends a session',
      request: m3oRequest({ session_id: Str(USER_LIMITS.token).optional() }),
      response: Empty,
    }),
    LogoutAll: endpoint({
      ...call,
      description: 'Ends every session of an account',
      request: m3oRequest({ user_id: Str(USER_LIMITS.id).optional() }),
      response: Empty,
    }),
    ReadSession: endpoint({
      ...call,
      readonly: true,
      description: 'The session and its account; 401 when it does not exist or has expired',
      request: m3oRequest({ session_id: Str(USER_LIMITS.token).optional() }),
      response: z.object({ session: Session, account: Account }),
    }),
    UpdatePassword: endpoint({
      ...call,
      description: 'Changes a password given the old one (401 when it is wrong)',
      request: m3oRequest({ userId: Str(USER_LIMITS.id).optional(), old_password: Str(USER_LIMITS.password.max).optional(), new_password: Str(USER_LIMITS.password.max).optional(), confirm_password: Str(USER_LIMITS.password.max).optional() }),
      response: Empty,
    }),
    SendVerificationEmail: endpoint({
      ...mail,
      description: 'Emails a verification link ($micro_verification_link in text_content): redirect_url?token=…, whose page calls VerifyEmail',
      request: m3oRequest({ ...Email, redirect_url: Str(USER_LIMITS.url).optional(), failure_redirect_url: Str(USER_LIMITS.url).optional() }),
      response: Empty,
    }),
    VerifyEmail: endpoint({
      ...call,
      description: 'Marks the email of the link\'s account verified (a token is used once)',
      request: m3oRequest({ token: Str(USER_LIMITS.token).optional() }),
      response: Empty,
    }),
    SendPasswordResetEmail: endpoint({
      ...mail,
      description: 'Emails a code ($code in text_content) that ResetPassword takes, valid `expiration` seconds (default 1800)',
      request: m3oRequest({ ...Email, expiration: i64().optional() }),
      response: Empty,
    }),
    ResetPassword: endpoint({
      ...call,
      description: 'Sets a new password with the emailed code (5 wrong codes end it); every session of the account ends',
      request: m3oRequest({ email: Str(USER_LIMITS.email).optional(), code: Str(64).optional(), new_password: Str(USER_LIMITS.password.max).optional(), confirm_password: Str(USER_LIMITS.password.max).optional() }),
      response: Empty,
    }),
    SendMagicLink: endpoint({
      ...mail,
      description: 'Emails a sign-in link ($micro_verification_link in text_content): <address>/<endpoint>?token=…, whose page calls VerifyToken',
      request: m3oRequest({ ...Email, address: Str(USER_LIMITS.url).optional(), endpoint: Str(256).optional() }),
      response: Empty,
    }),
    VerifyToken: endpoint({
      ...call,
      description: 'A session for a magic link\'s token (used once, 15 minutes)',
      request: m3oRequest({ token: Str(USER_LIMITS.token).optional() }),
      response: z.object({ is_valid: z.boolean(), message: z.string(), session: Session.optional() }),
    }),
  },
});
