import { defineService, endpoint, z } from '@micro/sdk';
import { MAX_EMAIL } from './email.js';

/**
 * The signup service of the platform (namespace micro): how a stranger becomes a customer
 * with a namespace, and how the platform's staff (admins of micro) manage invites, the
 * waiting list and customers. The schemas bound every field; the handlers check the rest
 * (the shape of an email, of a namespace name) and name the field that is wrong.
 */

export const LIMITS = { page: 100, inviteWaitlist: 100, password: 1024, passwordMin: 8, inviteDays: 90 };

const Email = z.string().min(3).max(MAX_EMAIL).describe('an email address (stored in lower case)');
const NamespaceName = z.string().min(3).max(32).describe('a namespace: a-z, 0-9 and -, starting with a letter, 3 to 32 characters');
const Id = z.string().min(1).max(64);
const Limit = z.number().int().min(1).max(LIMITS.page).optional().describe(`at most this many (default and most ${LIMITS.page})`);
const After = z.string().max(320).optional().describe('the cursor `next` of the previous page');
const Time = z.number().int().describe('epoch milliseconds');

const InviteSchema = z.object({
  id: z.string(),
  email: z.string(),
  namespace: z.string().optional().describe('the namespace the invitee joins as a member'),
  status: z.enum(['pending', 'used', 'revoked', 'expired']),
  createdAt: Time,
  expiresAt: Time,
  usedAt: Time.optional(),
  revokedAt: Time.optional(),
});

const CustomerSchema = z.object({
  id: z.string(),
  email: z.string().optional().describe('absent once deleted'),
  status: z.enum(['unverified', 'verified', 'active', 'suspended', 'deleted']),
  createdAt: Time,
  updatedAt: Time,
  namespaces: z.array(z.object({ namespace: z.string(), role: z.enum(['owner', 'admin', 'developer', 'viewer']), account: z.string() })),
});

const Session = z.object({
  token: z.string(),
  expiresAt: z.number().int().describe('epoch seconds'),
  refreshToken: z.string(),
  refreshExpiresAt: z.number().int().describe('epoch seconds'),
  account: z.object({ id: z.string(), issuer: z.string(), scopes: z.array(z.string()) }),
  namespace: z.string().describe('the namespace the token is for'),
  namespaces: z.array(z.string()).describe("the customer's namespaces"),
});

const Empty = z.object({}).strict();
// z.string() rather than z.enum: a role that does not exist gets the handlers' 400 naming the roles
const RoleName = z.string().min(1).max(16).describe('owner, admin, developer or viewer');
const RoleSchema = z.enum(['owner', 'admin', 'developer', 'viewer']);
const MemberSchema = z.object({ email: z.string().optional().describe('absent for a deleted customer'), account: z.string(), role: RoleSchema, createdAt: Time });
const TeamInviteSchema = z.object({ id: z.string(), email: z.string(), role: RoleSchema, createdAt: Time, expiresAt: Time });
const TeamRef = { namespace: NamespaceName, email: Email };
const Sent = z.object({ sent: z.boolean() });
const CustomerRef = z.union([z.object({ id: Id }).strict(), z.object({ email: Email }).strict()]).describe('{id} or {email}');

export const signupService = defineService({
  name: 'signup',
  version: '1.0.0',
  description: 'Signup and customers of the platform',
  endpoints: {
    // --- public
    JoinWaitlist: endpoint({ description: 'Puts an email on the waiting list (public; joining twice changes nothing)', idempotent: true, request: z.object({ email: Email }).strict(), response: Empty }),
    SendCode: endpoint({
      description: 'Emails a one-time code to an invited address (any address when signup is open) (public, throttled)',
      request: z.object({ email: Email }).strict(),
      response: Sent,
    }),
    CompleteSignup: endpoint({
      description: 'With the code: makes the customer, its namespace (the one asked, or a generated one) and its owner account, and logs it in (public)',
      request: z
        .object({
          email: Email,
          code: z.string().min(1).max(16).describe('the 6 digits emailed by SendCode'),
          password: z.string().min(LIMITS.passwordMin).max(LIMITS.password),
          namespace: NamespaceName.optional().describe('default: a generated name such as brave-blue-otter'),
        })
        .strict(),
      response: Session,
    }),
    Login: endpoint({
      description: "Logs a customer in by email and password: a token for the namespace asked (default its first) and the list of its namespaces (public, throttled)",
      request: z.object({ email: Email, password: z.string().min(1).max(LIMITS.password), namespace: NamespaceName.optional() }).strict(),
      response: Session,
    }),
    Recover: endpoint({ description: "Emails the list of one's namespaces; answers the same whether the address is known (public)", request: z.object({ email: Email }).strict(), response: Empty }),
    // --- admins of micro
    Invite: endpoint({
      description: 'Invites an email to sign up, optionally into an existing namespace as a member (admins of micro)',
      request: z
        .object({ email: Email, namespace: NamespaceName.optional(), expiresInDays: z.number().int().min(1).max(LIMITS.inviteDays).optional().describe('default 7') })
        .strict(),
      response: z.object({ invite: InviteSchema }),
    }),
    RevokeInvite: endpoint({ description: 'Revokes an invite not yet used (admins of micro)', request: z.object({ id: Id }).strict(), response: Empty }),
    ListInvites: endpoint({ description: 'Invites, oldest first (admins of micro)', readonly: true, request: z.object({ limit: Limit, after: After }).strict(), response: z.object({ invites: z.array(InviteSchema), next: z.string().optional() }) }),
    ListWaitlist: endpoint({
      description: 'The waiting list, oldest first (admins of micro)',
      readonly: true,
      request: z.object({ limit: Limit, after: After }).strict(),
      response: z.object({ entries: z.array(z.object({ email: z.string(), createdAt: Time, invitedAt: Time.optional() })), next: z.string().optional() }),
    }),
    InviteWaitlist: endpoint({
      description: 'Invites the next `count` of the waiting list, oldest first (admins of micro)',
      request: z.object({ count: z.number().int().min(1).max(LIMITS.inviteWaitlist) }).strict(),
      response: z.object({ invites: z.array(InviteSchema) }),
    }),
    ListCustomers: endpoint({
      description: 'Customers by id (admins of micro)',
      readonly: true,
      request: z.object({ limit: Limit, after: After, status: CustomerSchema.shape.status.optional() }).strict(),
      response: z.object({ customers: z.array(CustomerSchema), next: z.string().optional() }),
    }),
    ReadCustomer: endpoint({ description: 'One customer by id or email (admins of micro)', readonly: true, request: CustomerRef, response: z.object({ customer: CustomerSchema }) }),
    SuspendCustomer: endpoint({ description: "Suspends a customer: its accounts are disabled and their tokens stop (admins of micro)", request: CustomerRef, response: z.object({ customer: CustomerSchema }) }),
    ReactivateCustomer: endpoint({ description: 'Ends a suspension (admins of micro)', request: CustomerRef, response: z.object({ customer: CustomerSchema }) }),
    DeleteCustomer: endpoint({
      description: 'Deletes a customer: its accounts go and the namespaces it alone owns are marked deleted (admins of micro)',
      request: CustomerRef,
      response: z.object({ deletedNamespaces: z.array(z.string()) }),
    }),
    // --- teams: owners and admins of the namespace (admins of micro: any)
    InviteMember: endpoint({
      description: 'Invites an email into a namespace with a role (admin, developer, viewer): a customer accepts (AcceptInvite), a new person signs up by it (owners and admins of the namespace)',
      request: z.object({ ...TeamRef, role: RoleName }).strict(),
      response: z.object({ invite: TeamInviteSchema }),
    }),
    ListMembers: endpoint({
      description: 'The members of a namespace and the live invites into it (owners and admins of the namespace)',
      readonly: true,
      request: z.object({ namespace: NamespaceName }).strict(),
      response: z.object({ members: z.array(MemberSchema), invites: z.array(TeamInviteSchema) }),
    }),
    SetRole: endpoint({
      description: "Changes a member's role; the member's tokens and API keys in the namespace stop at once (owners and admins; only owners touch owners)",
      request: z.object({ ...TeamRef, role: RoleName }).strict(),
      response: z.object({ member: MemberSchema }),
    }),
    RemoveMember: endpoint({
      description: "Removes a member (its account in the namespace, tokens and API keys stop at once) or revokes the live invite of an email (owners and admins; only owners remove owners)",
      request: z.object(TeamRef).strict(),
      response: Empty,
    }),
    // --- teams: any logged-in customer
    AcceptInvite: endpoint({
      description: "Joins the namespace a live invite names; the password is yours (it is checked, and is the new account's too)",
      request: z.object({ namespace: NamespaceName, password: z.string().min(1).max(LIMITS.password) }).strict(),
      response: z.object({ namespace: z.string(), role: RoleSchema, account: z.string() }),
    }),
    Namespaces: endpoint({
      description: "The caller's namespaces with its role in each",
      readonly: true,
      request: Empty,
      response: z.object({ namespaces: z.array(z.object({ namespace: z.string(), role: RoleSchema })) }),
    }),
  },
});

/** The endpoints a stranger may call without a token. */
export const SIGNUP_PUBLIC_ENDPOINTS: readonly string[] = ['JoinWaitlist', 'SendCode', 'CompleteSignup', 'Login', 'Recover'];
