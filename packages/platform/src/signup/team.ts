import { errors, type Account, type Context } from '@micro/sdk';
import { isAdmin, quotaExceeded, sourceOf, type AuthAccounts, type LoginThrottle, type Quotas } from '@micro/server/engine';
import type { Mailer } from '../mail/mailer.js';
import { teamInviteMessage } from '../mail/messages.js';
import { normaliseEmail } from './email.js';
import { checkNamespaceName } from './names.js';
import { ROLES, type Invite, type Member, type Role, type SignupStorage } from './storage.js';

/**
 * Teams: the members of a namespace and their roles (README: "Teams"). The membership is
 * signup's storage; the role is also the scope of the member's account in the namespace
 * (owner and admin: `admin`, developer: `developer`, viewer: `viewer`), which the guard of
 * every core service checks (server auth/roles.ts). Every change of a role or removal cuts
 * the member's access at once: its account's tokens are revoked and its API keys in the
 * namespace revoked (a new login gets the new scope).
 */

export interface TeamOptions {
  mailer: Mailer;
  now: () => number;
  siteUrl: string;
  /** days an invite lives */
  inviteDays: number;
  /** live invites of the whole platform */
  maxInvites: number;
  /** mails to one address per window */
  sendsPerEmail: number;
  sendWindowMs: number;
  loginThrottle: LoginThrottle;
  /** members of one namespace (default 100) */
  maxMembers: number;
  /** live invites into one namespace (default 100) */
  maxTeamInvites: number;
  newId: (prefix: string, now: number) => string;
  warn: (fields: object, message: string) => void;
}

interface Deps {
  storage: SignupStorage;
  accounts: AuthAccounts;
  /** micro server's quotas (`CoreContext.quotas`): the `members` limit; absent, invites are bounded by maxTeamInvites alone */
  quotas?: Pick<Quotas, 'limits'>;
}

const DAY = 24 * 3_600_000;

/** The scopes of a member's account for each role. */
export const ROLE_SCOPES: Readonly<Record<Role, readonly string[]>> = { owner: ['admin'], admin: ['admin'], developer: ['developer'], viewer: ['viewer'] };

/** A role by name: a 400 naming the roles for one that does not exist (or may not be given here). */
function roleNamed(value: string, allowed: readonly Role[] = ROLES): Role {
  if (!(allowed as readonly string[]).includes(value)) throw errors.BadRequest('signup', `role: ${JSON.stringify(value.slice(0, 16))} is not one of ${allowed.join(', ')}`);
  return value as Role;
}

/** Who manages a team in a call: an owner or admin of the namespace, or an admin of micro (as an owner). */
interface Manager {
  owner: boolean;
  name: string;
}

export function teamHandlers(deps: Deps, o: TeamOptions) {
  const { storage, accounts } = deps;

  /** The caller as a manager of `namespace`: 403 for another namespace, for developers and viewers, and for keys without scope admin. */
  const manager = async (ctx: Context, asked: string): Promise<Manager> => {
    const namespace = checkNamespaceName(asked);
    const me = ctx.account as Account;
    if (isAdmin(me)) {
      if ((await storage.namespaceStatus(namespace)) !== 'active') throw errors.NotFound('signup', `namespace: no active namespace ${namespace}`);
      return { owner: true, name: 'M3O staff' };
    }
    if (me.issuer !== namespace) throw errors.Forbidden('signup', `namespace: account ${me.id} of namespace ${me.issuer} may not manage the members of ${namespace}`);
    const member = await storage.memberByAccount(namespace, me.id);
    if (!member || (member.role !== 'owner' && member.role !== 'admin') || !me.scopes.includes('admin')) {
      throw errors.Forbidden('signup', `${ctx.endpoint} needs an owner or admin of ${namespace} (you are ${member?.role ?? 'not a member'}${member && !me.scopes.includes('admin') ? ', with a token or key without scope admin' : ''})`);
    }
    return { owner: member.role === 'owner', name: member.email ?? me.id };
  };

  /** The calling customer (a token of one of its accounts), for AcceptInvite and Namespaces. */
  const customerOf = async (ctx: Context) => {
    const me = ctx.account as Account;
    const member = await storage.memberByAccount(me.issuer, me.id);
    const customer = member && (await storage.getCustomer({ id: member.customer }));
    if (!customer?.email || customer.status !== 'active') throw errors.Forbidden('signup', `${ctx.endpoint} is for customers: log in with your email (Login)`);
    return { me, customer: { id: customer.id, email: customer.email } };
  };

  const memberOf = async (namespace: string, email: string): Promise<Member | undefined> => (await storage.members(namespace)).find((m) => m.email === email);

  /** Tokens of the account and its API keys in the namespace stop now (see auth/revocations.ts). */
  const cutOff = async (account: string, namespace: string) => {
    for (const key of await accounts.keys.list(namespace, account)) {
      await accounts.keys.revoke(key.id);
      await accounts.revocations.add({ kind: 'session', id: `key:${key.id}`, before: Math.floor(o.now() / 1000) });
    }
    await accounts.revocations.add({ kind: 'account', id: `${namespace}/${account}`, before: Math.floor(o.now() / 1000) });
  };

  const view = (m: Member) => ({ ...(m.email ? { email: m.email } : {}), account: m.account, role: m.role, createdAt: m.createdAt });
  const inviteView = (i: Invite) => ({ id: i.id, email: i.email, role: i.role ?? 'developer', createdAt: i.createdAt, expiresAt: i.expiresAt });

  return {
    InviteMember: async (req: { namespace: string; email: string; role: string }, ctx: Context) => {
      const role = roleNamed(req.role, ['admin', 'developer', 'viewer']);
      const email = normaliseEmail(req.email);
      const by = await manager(ctx, req.namespace);
      const namespace = req.namespace;
      if (await memberOf(namespace, email)) throw errors.Conflict('signup', `email: ${email} is a member of ${namespace} already (SetRole changes a role)`);
      const now = o.now();
      if (await storage.liveTeamInvite(email, namespace, now)) throw errors.Conflict('signup', `email: ${email} is invited into ${namespace} already (RemoveMember revokes the invite)`);
      if ((await storage.teamInvites(namespace, now)).length >= o.maxTeamInvites) throw errors.TooManyRequests('signup', `namespace: ${namespace} has ${o.maxTeamInvites} live invites, the most it may have`);
      if ((await storage.countInvites(now)) >= o.maxInvites) throw errors.TooManyRequests('signup', 'too many live invites on the platform: try again later');
      // one address is mailed at most sendsPerEmail times a window, whoever invites it
      if (!(await storage.countSend(`team:${email}`, now, o.sendWindowMs, o.sendsPerEmail))) throw errors.TooManyRequests('signup', `email: ${email} was invited too often: try again in an hour`);
      const invite = { id: o.newId('inv', now), email, namespace, role, createdAt: now, expiresAt: now + o.inviteDays * DAY };
      // every live invite holds a seat: accepting one never passes the limit
      const max = deps.quotas ? (await deps.quotas.limits(namespace)).members : null;
      const { created, seats } = await storage.createTeamInvite(invite, max);
      if (!created) throw quotaExceeded('members', seats, max ?? 0, namespace);
      o.mailer.send(teamInviteMessage({ to: email, base: o.siteUrl, namespace, inviter: by.name, role })).catch((err: unknown) => o.warn({ err, to: email }, 'signup: a team invite could not be mailed'));
      return { invite: inviteView(invite) };
    },

    ListMembers: async ({ namespace }: { namespace: string }, ctx: Context) => {
      await manager(ctx, namespace);
      const [members, invites] = await Promise.all([storage.members(namespace), storage.teamInvites(namespace, o.now())]);
      return { members: members.map(view), invites: invites.map(inviteView) };
    },

    SetRole: async (req: { namespace: string; email: string; role: string }, ctx: Context) => {
      const role = roleNamed(req.role);
      const email = normaliseEmail(req.email);
      const by = await manager(ctx, req.namespace);
      if (role === 'owner' && !by.owner) throw errors.Forbidden('signup', 'role: only an owner makes owners');
      const member = await memberOf(req.namespace, email);
      if (!member) throw errors.NotFound('signup', `email: ${email} is not a member of ${req.namespace}`);
      await storage.setRole(req.namespace, member.customer, role, by.owner);
      // done again on a retry: the account follows the stored role
      await accounts.update(member.account, req.namespace, { scopes: [...ROLE_SCOPES[role]] });
      await cutOff(member.account, req.namespace);
      return { member: view({ ...member, role }) };
    },

    RemoveMember: async (req: { namespace: string; email: string }, ctx: Context) => {
      const email = normaliseEmail(req.email);
      const by = await manager(ctx, req.namespace);
      const namespace = req.namespace;
      const member = await memberOf(namespace, email);
      if (!member) {
        if ((await storage.revokeTeamInvites(email, namespace, o.now())) > 0) return {};
        throw errors.NotFound('signup', `email: ${email} is neither a member of nor invited into ${namespace}`);
      }
      if (member.role === 'owner' && !by.owner) throw errors.Forbidden('signup', `email: ${email} is an owner of ${namespace}: only an owner may remove an owner`);
      if (member.role === 'owner' && (await storage.members(namespace)).filter((m) => m.role === 'owner').length <= 1) {
        throw errors.Conflict('signup', `email: ${email} is the last owner of ${namespace}: make another member owner first (or ask M3O to delete the namespace)`);
      }
      // access stops first; the row goes in a transaction that checks again (two owners removing each other)
      await accounts.update(member.account, namespace, { disabled: true });
      await cutOff(member.account, namespace);
      try {
        await storage.removeMember(namespace, member.customer, by.owner);
      } catch (err) {
        await accounts.update(member.account, namespace, { disabled: false });
        throw err;
      }
      await Promise.resolve(accounts.delete(member.account, namespace)).catch((err: unknown) => o.warn({ err, namespace }, 'signup: a removed member\'s (disabled) account could not be deleted'));
      return {};
    },

    AcceptInvite: async (req: { namespace: string; password: string }, ctx: Context) => {
      const { me, customer } = await customerOf(ctx);
      if (me.type === 'apikey') throw errors.Forbidden('signup', 'an API key cannot accept invites: log in with your email');
      const namespace = checkNamespaceName(req.namespace);
      const invite = await storage.liveTeamInvite(customer.email, namespace, o.now());
      if (!invite) throw errors.NotFound('signup', `namespace: no live invite of ${customer.email} into ${namespace}`);
      const ok = await o.loginThrottle.attempt('signup', customer.email, sourceOf(ctx.peer), 'password', () => accounts.verify(me.id, me.issuer, req.password));
      if (!ok) throw errors.Unauthorized('signup', 'password: wrong password');
      const role = invite.role ?? 'developer';
      // an account left by an earlier membership of this customer (removed halfway) is replaced
      const old = await accounts.info(customer.email, namespace);
      if (old && old.metadata?.customer === customer.id && !(await memberOf(namespace, customer.email))) await accounts.delete(customer.email, namespace);
      else if (old) throw errors.Conflict('signup', `namespace: ${namespace} has an account ${customer.email} already`);
      await accounts.create({ id: customer.email, namespace, type: 'user', scopes: [...ROLE_SCOPES[role]], metadata: { customer: customer.id }, secret: req.password });
      try {
        await storage.join({ invite: invite.id, customer: customer.id, namespace, account: customer.email, role, now: o.now(), maxMembers: o.maxMembers });
      } catch (err) {
        await Promise.resolve(accounts.delete(customer.email, namespace)).catch(() => undefined);
        throw err;
      }
      return { namespace, role, account: customer.email };
    },

    Namespaces: async (_req: Record<string, never>, ctx: Context) => {
      const { customer } = await customerOf(ctx);
      return { namespaces: (await storage.memberships(customer.id)).map(({ namespace, role }) => ({ namespace, role })) };
    },
  };
}
