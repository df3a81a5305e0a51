import { z } from 'zod';
import { defineService, endpoint, serverStream, SERVICE_NAME } from '../service/definition.js';
import { KEY_LIMITS } from './keys.js';
import { RESOURCE_PATTERN } from './rules.js';

/**
 * The contract of the auth service of `micro server`: accounts, credentials, tokens,
 * API keys and access rules. Access tokens are short-lived Ed25519 JWTs; callers send
 * them as `authorization: Bearer <token>` metadata, and every service checks them with
 * the public keys of `Keys` (a JWKS).
 *
 * Public (no token): Token, Login, Refresh, Inspect, Keys. Scope turns the caller's
 * token into one for a single service (see scoped.ts). Everything else acts in the
 * caller's namespace; `namespace` names another one, which only an admin of `micro` may.
 * Managing accounts and rules needs scope `admin` in the namespace.
 */

export const NAMESPACE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const Namespace = z.string().min(1).max(63).regex(NAMESPACE_NAME, 'letters, digits, ".", "_" and "-", starting with a letter or digit').optional().describe("the namespace (default: the caller's own)");
/** account ids: service accounts of the runtime are `service:<name>` */
export const ACCOUNT_ID = /^[A-Za-z0-9][A-Za-z0-9._:@+-]*$/;
const AccountId = z.string().min(1).max(255).regex(ACCOUNT_ID, 'letters, digits and . _ : @ + -, starting with a letter or digit');
export const SCOPE_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;
const Scope = z.string().min(1).max(64).regex(SCOPE_NAME, 'letters, digits and . _ : -, starting with a letter or digit');
const Scopes = z.array(Scope).max(32).describe('what the account may do, e.g. admin, developer');
const Metadata = z
  .record(z.string().min(1).max(64), z.string().max(512))
  .refine((m) => Object.keys(m).length <= 16, 'at most 16 entries')
  .describe('free-form labels of the account');
/** chosen secrets and passwords */
const Password = z.string().min(8, 'at least 8 characters').max(1024);
const Id = z.string().min(1).max(128).regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'letters, digits, ".", "_" and "-", starting with a letter or digit');

export const AccountSchema = z.object({
  id: z.string(),
  type: z.string().describe('user, service or apikey'),
  issuer: z.string().describe('the namespace of the account'),
  scopes: z.array(z.string()),
  metadata: z.record(z.string(), z.string()).optional(),
});

export const AccountInfoSchema = AccountSchema.extend({ createdAt: z.number().describe('epoch ms'), disabled: z.boolean().optional().describe('a disabled account gets no tokens, and its tokens are refused') });

export const RuleSchema = z.object({
  id: Id.describe('a name for the rule, unique in the namespace'),
  resource: z
    .string()
    .max(255)
    .regex(RESOURCE_PATTERN, 'type:name:endpoint, e.g. service:helloworld:* (segments of letters, digits, . _ - and * wildcards)')
    .describe('type:name:endpoint with * wildcards, e.g. service:helloworld:*'),
  scope: z
    .string()
    .max(64)
    .refine((s) => s === '' || s === '*' || SCOPE_NAME.test(s), "'' (public), '*' (any account) or a scope name")
    .describe("'' public (no token needed), '*' any authenticated account, or a scope"),
  access: z.enum(['granted', 'denied']),
  priority: z.number().int().min(-1_000_000).max(1_000_000).describe('higher is evaluated first'),
});

export const KeyInfoSchema = z.object({
  id: z.string().describe('the key id, the part before the dot'),
  name: z.string(),
  description: z.string().describe("what the key is for, in its owner's words ('' when none)"),
  account: z.string().describe('the account the key acts for'),
  namespace: z.string(),
  scopes: z.array(z.string()).describe("the account's permission scopes the key acts with"),
  services: z.array(z.string()).describe('the services the key may call: ["*"] any, or their names'),
  createdAt: z.number().describe('epoch ms'),
  lastUsedAt: z.number().optional().describe('epoch ms of its last use (a call through the gateway, or Token), to the minute; none: never used'),
  expiresAt: z.number().optional().describe('epoch ms; none: until revoked'),
  blocked: z.boolean().describe('blocked by an admin of micro: refused (403 v1.blocked) until unblocked'),
  blockedAt: z.number().optional().describe('epoch ms, while blocked'),
  blockMessage: z.string().optional().describe('what the refused caller is told, while blocked'),
});

/** text shown to people (a key's description, a block message): no control characters */
const Text = (max: number) => z.string().max(max).regex(/^\P{Cc}*$/u, 'no control characters (new lines, tabs…)');
// bounded so that a key's list fits in the tokens it is exchanged for (with the account's metadata)
const KeyService = z
  .string()
  .min(1)
  .max(KEY_LIMITS.serviceName)
  .refine((s) => s === '*' || SERVICE_NAME.test(s), 'a service name (lower-case letters, digits and . _ -, starting with a letter) or *');
const KeyServices = z
  .array(KeyService)
  .min(1)
  .max(KEY_LIMITS.services)
  .refine((l) => !l.includes('*') || l.length === 1, '* (any service) stands alone')
  .describe('the services the key may call through the gateway: ["*"] (default) or service names');
const KeyId = z.string().min(1).max(64).describe('the key id (the part before the dot)');

export const JwkSchema = z.object({ kty: z.literal('OKP'), crv: z.literal('Ed25519'), x: z.string(), kid: z.string(), alg: z.literal('EdDSA'), use: z.literal('sig') });

const TokenResponse = z.object({
  token: z.string().describe('the access token (JWT)'),
  refreshToken: z.string().optional().describe('exchange it with Refresh for new tokens; it can be used once'),
  expiresAt: z.number().describe('epoch seconds when the access token expires'),
  refreshExpiresAt: z.number().optional().describe('epoch seconds when the refresh token expires'),
  account: AccountSchema,
});

const RefreshToken = z.string().min(1).max(512);
const ApiKey = z.string().min(1).max(512).describe('<keyId>.<secret>');

/**
 * The auth service as micro server serves it: every endpoint. (`authService` below is
 * the part every process needs — exchanging credentials for a token — and what a test
 * double of the server implements.)
 */
export const authApi = defineService({
  name: 'auth',
  version: '1.0.0',
  description: 'Accounts, credentials, tokens, API keys and access rules',
  endpoints: {
    Token: endpoint({
      description: 'Exchanges credentials for an access token (public): an account id and secret, a refresh token, or an API key',
      request: z
        .object({
          id: z.string().min(1).max(255).optional(),
          secret: z.string().min(1).max(1024).optional(),
          namespace: z.string().max(255).optional().describe('the namespace of the account (default micro)'),
          refreshToken: RefreshToken.optional(),
          apiKey: ApiKey.optional(),
        })
        .superRefine((r, ctx) => {
          const forms = [r.id !== undefined || r.secret !== undefined, r.refreshToken !== undefined, r.apiKey !== undefined].filter(Boolean).length;
          if (forms !== 1) ctx.addIssue({ code: 'custom', path: ['id'], message: 'give id and secret, or refreshToken, or apiKey (one of them)' });
          else if (r.id !== undefined && r.secret === undefined) ctx.addIssue({ code: 'custom', path: ['secret'], message: 'required with id' });
          else if (r.secret !== undefined && r.id === undefined) ctx.addIssue({ code: 'custom', path: ['id'], message: 'required with secret' });
        }),
      response: TokenResponse,
    }),
    Login: endpoint({
      description: 'Logs a user in with a password (public)',
      request: z.object({ id: z.string().min(1).max(255), password: z.string().min(1).max(1024), namespace: z.string().max(255).optional().describe('default micro') }),
      response: TokenResponse,
    }),
    Refresh: endpoint({
      description: 'Exchanges a refresh token for new tokens (public); each refresh token works once, and using one twice revokes the session',
      request: z.object({ refreshToken: RefreshToken }),
      response: TokenResponse,
    }),
    Logout: endpoint({
      description:
        'Ends a session (public): that of the refresh token given, or without one that of the bearer token of the call; its refresh tokens and access tokens stop working at once',
      request: z.object({ refreshToken: RefreshToken.optional() }),
      response: z.object({}),
      idempotent: true,
    }),
    Revocations: serverStream({
      description:
        'The revocation list (any account): the entries in force that concern the caller\'s namespace, then each new one as it is made, and an empty message every second so a follower knows it is current',
      request: z.object({}),
      response: z.object({
        entries: z.array(z.object({ kind: z.enum(['account', 'session', 'token']), id: z.string(), before: z.number() })),
        maxTokenTtl: z.number().describe('seconds: a token whose exp - iat exceeds it is refused'),
      }),
    }),
    Inspect: endpoint({
      description: 'The account an access token or API key speaks for (public)',
      request: z.object({ token: z.string().min(1).max(16 * 1024).describe('an access token or an API key') }),
      response: z.object({ account: AccountSchema, expiresAt: z.number().optional().describe('epoch seconds') }),
      idempotent: true,
    }),
    Scope: endpoint({
      description:
        "Exchanges the caller's access token for one scoped to a service (aud = <namespace>/<service>): the same account, scopes and expiry, accepted by that service only. What callers send to a service other than the core ones",
      request: z.object({
        audience: z.string().min(3).max(320).describe('<namespace>/<service>, e.g. acme/greeter (namespace: the caller\'s own, unless an admin of micro)'),
      }),
      response: z.object({ token: z.string(), expiresAt: z.number().describe('epoch seconds (never later than the token it came from)') }),
      idempotent: true,
    }),
    Keys: endpoint({
      description: 'The public keys that sign access tokens, as a JWKS (public)',
      request: z.object({}),
      response: z.object({ keys: z.array(JwkSchema) }),
      idempotent: true,
      readonly: true,
    }),
    RotateKeys: endpoint({
      description: 'Starts signing with a new key; the old one stays in the JWKS until its tokens expired (admins of micro)',
      request: z.object({}),
      response: z.object({ kid: z.string() }),
    }),
    CreateAccount: endpoint({
      description: 'Creates an account; without a secret one is generated and returned once',
      request: z.object({
        id: AccountId,
        type: z.enum(['user', 'service']).default('user'),
        secret: Password.optional().describe('the password or secret (default: generated)'),
        scopes: Scopes.optional(),
        metadata: Metadata.optional(),
        namespace: Namespace,
      }),
      response: z.object({ account: AccountInfoSchema, secret: z.string().optional().describe('the generated secret, shown once') }),
    }),
    ListAccounts: endpoint({
      description: 'The accounts of a namespace, by id',
      request: z.object({
        namespace: Namespace,
        limit: z.number().int().min(1).max(1000).optional().describe('page size (default 100)'),
        after: z.string().max(255).optional().describe('the last id of the previous page'),
      }),
      response: z.object({ accounts: z.array(AccountInfoSchema), next: z.string().optional() }),
      idempotent: true,
      readonly: true,
    }),
    DeleteAccount: endpoint({
      description: 'Deletes an account with its secrets, API keys and sessions',
      request: z.object({ id: AccountId, namespace: Namespace }),
      response: z.object({}),
      idempotent: true,
    }),
    UpdateAccount: endpoint({
      description: "Disables (or enables) an account or replaces its scopes; its tokens already issued stop at once (they carry the old scopes)",
      request: z
        .object({ id: AccountId, disabled: z.boolean().optional(), scopes: Scopes.optional(), namespace: Namespace })
        .refine((r) => r.disabled !== undefined || r.scopes !== undefined, { path: ['disabled'], message: 'give disabled or scopes (or both)' }),
      response: z.object({ account: AccountInfoSchema }),
    }),
    SetPassword: endpoint({
      description: "Sets an account's password: one's own (with the current one), or any of the namespace (admins)",
      request: z.object({
        id: AccountId.optional().describe("default: the caller's own account"),
        current: z.string().min(1).max(1024).optional().describe('the current password (needed for one\'s own)'),
        password: Password,
        namespace: Namespace,
      }),
      response: z.object({}),
    }),
    CreateRule: endpoint({
      description: 'Creates an access rule',
      request: RuleSchema.extend({ namespace: Namespace }),
      response: z.object({ rule: RuleSchema.extend({ namespace: z.string() }) }),
    }),
    ListRules: endpoint({
      description: 'The rules of a namespace, in evaluation order',
      request: z.object({ namespace: Namespace }),
      response: z.object({ rules: z.array(RuleSchema.extend({ namespace: z.string() })) }),
      idempotent: true,
      readonly: true,
    }),
    DeleteRule: endpoint({
      description: 'Deletes a rule',
      request: z.object({ id: Id, namespace: Namespace }),
      response: z.object({}),
      idempotent: true,
    }),
    CreateKey: endpoint({
      description: "Creates an API key acting for the caller's account (with the same or fewer scopes), for all services or some; the key is returned once",
      request: z.object({
        name: Id.describe('what the key is called'),
        description: Text(KEY_LIMITS.description).optional().describe('what the key is for (default none)'),
        scopes: Scopes.optional().describe("the account's permission scopes it acts with (default: the account's)"),
        services: KeyServices.optional(),
        expiresIn: z.number().int().min(60).max(10 * 365 * 86_400).optional().describe('seconds (default: until revoked)'),
        namespace: Namespace,
      }),
      response: z.object({ key: z.string().describe('<keyId>.<secret>, shown once'), info: KeyInfoSchema }),
    }),
    ListKeys: endpoint({
      description: "API keys: one's own, or all of the namespace for admins",
      request: z.object({ namespace: Namespace }),
      response: z.object({ keys: z.array(KeyInfoSchema) }),
      idempotent: true,
      readonly: true,
    }),
    RevokeKey: endpoint({
      description: 'Revokes an API key (one\'s own, or any of the namespace for admins)',
      request: z.object({ id: KeyId, namespace: Namespace }),
      response: z.object({}),
      idempotent: true,
    }),
    BlockKey: endpoint({
      description:
        'Blocks an API key (admins of micro): its calls and Token exchanges are refused with 403 v1.blocked and the message, on every node at once, until UnblockKey; its access tokens stop',
      request: z.object({
        id: KeyId,
        message: Text(KEY_LIMITS.blockMessage).min(1).describe('what the refused caller is told, e.g. "unpaid invoice: contact billing@example.com"'),
        namespace: Namespace.describe("the key's namespace (default: the caller's own)"),
      }),
      response: z.object({ key: KeyInfoSchema }),
    }),
    UnblockKey: endpoint({
      description: 'Lifts the block of an API key (admins of micro): it works again',
      request: z.object({ id: KeyId, namespace: Namespace.describe("the key's namespace (default: the caller's own)") }),
      response: z.object({ key: KeyInfoSchema }),
    }),
  },
});

/**
 * The contract of auth that every process needs: an account id and secret in, an access
 * token out. A subset of `authApi` (same service, same endpoint), kept on its own so that
 * a stand-in of the server needs to implement only this.
 */
export const authService = defineService({
  name: 'auth',
  version: '1.0.0',
  description: 'Accounts, credentials and tokens',
  endpoints: {
    Token: endpoint({
      description: 'Exchanges an account id and secret for an access token (public)',
      request: z.object({
        id: z.string().min(1).max(255),
        secret: z.string().min(1).max(1024),
        namespace: z.string().max(255).optional().describe('the namespace of the account (default micro)'),
      }),
      response: TokenResponse,
    }),
  },
});

/** The endpoints of auth that need no token. */
export const AUTH_PUBLIC_ENDPOINTS: readonly string[] = ['Token', 'Login', 'Refresh', 'Logout', 'Inspect', 'Keys'];

/** How a process proves who it is to `micro server`. */
export interface Credentials {
  id: string;
  secret: string;
  namespace?: string;
}

export type AuthAccount = z.infer<typeof AccountSchema>;
export type AccountInfo = z.infer<typeof AccountInfoSchema>;
export type KeyInfo = z.infer<typeof KeyInfoSchema>;
