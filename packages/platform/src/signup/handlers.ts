import { randomBytes, randomInt } from 'node:crypto';
import { errors, MicroError, type Account, type Context, type Handlers, type Logger } from '@micro/sdk';
import { LoginThrottle, requireAdmin, sourceOf, type AuthAccounts, type AuthTokens, type Quotas, type SecretHasher } from '@micro/server/engine';
import type { Mailer, MailMessage } from '../mail/mailer.js';
import { namespacesMessage, platformInviteMessage, verificationMessage } from '../mail/messages.js';
import type { signupService } from './definition.js';
import { normaliseEmail } from './email.js';
import { SourceLimiter } from './limiter.js';
import { checkNamespaceName, generatedName } from './names.js';
import type { Customer, Invite, Membership, Role, SignupStorage } from './storage.js';
import { ROLE_SCOPES, teamHandlers } from './team.js';

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

export interface SignupHandlerOptions {
  /** how mail leaves; the factory's default is a MemoryMailer */
  mailer: Mailer;
  /** anyone may sign up, not only invited addresses (default false: invite only) */
  openSignup?: boolean;
  now?: () => number;
  /** ms a code lives (default 15 minutes) */
  codeTtlMs?: number;
  /** checks of one code, right or wrong, before it is dead (default 5) */
  maxCodeAttempts?: number;
  /** days an invite lives unless the call says (default 7) */
  inviteDays?: number;
  /** emails (codes, recovery lists) to one address per window (default 5) */
  sendsPerEmail?: number;
  /** the window of sendsPerEmail and sourceLimit (default 1 hour) */
  sendWindowMs?: number;
  /** public calls that mail or write (SendCode, Recover, JoinWaitlist) per source per window (default 30) */
  sourceLimit?: number;
  /** entries of the waiting list (default 100,000) */
  maxWaitlist?: number;
  /** live invites at once (default 10,000) */
  maxInvites?: number;
  /** members of one namespace (default 100) */
  maxMembers?: number;
  /** live invites into one namespace (default 100) */
  maxTeamInvites?: number;
  /** ms after which an unfinished signup (a crash halfway) is taken over by a new try (default 5 minutes) */
  claimTtlMs?: number;
  /**
   * the site the emails link to: `<siteUrl>/signup/verify?email=…&code=…`, `<siteUrl>/signup?email=…`
   * (default the dashboard of the gateway: `<MICRO_PUBLIC_URL>/dashboard`, else
   * http://127.0.0.1:8080/dashboard, whose pages answer those links)
   */
  siteUrl?: string;
  /** wrong passwords of Login (default a LoginThrottle: see auth/throttle.ts) */
  loginThrottle?: LoginThrottle;
  /** who may call the staff endpoints (default requireAdmin: admins of micro) */
  admin?: (ctx: Context) => void;
  logger?: Logger;
}

interface Deps {
  storage: SignupStorage;
  accounts: AuthAccounts;
  tokens: AuthTokens;
  /** HMAC of the codes under the server's key (see index.ts) */
  hasher: SecretHasher;
  /**
   * micro server's purge of a namespace (`CoreContext.purge`): everything it holds in every
   * core service deleted. Absent (the service built alone): deleted namespaces keep their
   * data, with every account disabled.
   */
  purge?: (namespace: string) => Promise<unknown>;
  /** micro server's quotas (`CoreContext.quotas`): the `members` limit of InviteMember */
  quotas?: Pick<Quotas, 'limits'>;
  /**
   * Tells the runtime a namespace became active (`CoreContext.namespaceHook`: on Kubernetes
   * its cluster namespace is made). Not awaited and never failing: a cluster that is down
   * does not fail a signup, the runtime's reconcile makes it later.
   */
  namespaceChanged?: ((namespace: string) => void) | undefined;
}

/** The namespace a Login of an unknown email checks against: never a name (names start with a letter). */
const NOWHERE = '-none-';

/**
 * The handlers of the signup service. Public: JoinWaitlist, SendCode, CompleteSignup,
 * Login, Recover; the rest is for `admin` (default: admins of micro). See README.md for
 * the guarantees and the order of a signup's steps.
 */
export function signupHandlers(deps: Deps, options: SignupHandlerOptions): Handlers<typeof signupService> {
  const o = resolve(options);
  const { storage } = deps;
  const limiter = new SourceLimiter(o.sourceLimit, o.sendWindowMs, o.now);
  const staff = (ctx: Context) => o.admin(ctx);
  const flows = signupFlows(deps, o);
  const customers = customerAdmin(deps, o);
  const team = teamHandlers(deps, { ...o, newId, warn: (fields, message) => o.logger?.warn(fields, message) });

  return {
    JoinWaitlist: async ({ email }, ctx) => {
      limiter.take(sourceOf(ctx.peer), 'waiting-list requests');
      if (!(await storage.joinWaitlist(normaliseEmail(email), o.now(), o.maxWaitlist))) throw errors.ServiceUnavailable('signup', 'the waiting list is full: try again later');
      return {};
    },
    SendCode: async ({ email }, ctx) => {
      const address = normaliseEmail(email);
      limiter.take(sourceOf(ctx.peer), 'codes');
      return flows.sendCode(address);
    },
    CompleteSignup: (req, ctx) => flows.complete(req, ctx),
    Login: (req, ctx) => flows.login(req, ctx),
    Recover: async ({ email }, ctx) => {
      const address = normaliseEmail(email);
      limiter.take(sourceOf(ctx.peer), 'recovery requests');
      await flows.recover(address);
      return {};
    },

    Invite: async ({ email, namespace, expiresInDays }, ctx) => {
      staff(ctx);
      return { invite: view(await flows.invite(normaliseEmail(email), namespace, expiresInDays ?? o.inviteDays), o.now()) };
    },
    RevokeInvite: async ({ id }, ctx) => {
      staff(ctx);
      if (!(await storage.revokeInvite(id, o.now()))) throw errors.NotFound('signup', `id: no invite ${id} that is neither used nor revoked`);
      return {};
    },
    ListInvites: async ({ limit, after }, ctx) => {
      staff(ctx);
      const { items, next } = await storage.listInvites(limit ?? 100, after);
      return { invites: items.map((i) => view(i, o.now())), ...(next ? { next } : {}) };
    },
    ListWaitlist: async ({ limit, after }, ctx) => {
      staff(ctx);
      const { items, next } = await storage.listWaitlist(limit ?? 100, after);
      return { entries: items, ...(next ? { next } : {}) };
    },
    InviteWaitlist: async ({ count }, ctx) => {
      staff(ctx);
      return { invites: (await flows.inviteWaitlist(count)).map((i) => view(i, o.now())) };
    },
    ListCustomers: async ({ limit, after, status }, ctx) => {
      staff(ctx);
      const { items, next } = await storage.listCustomers(limit ?? 100, after, status);
      return { customers: await Promise.all(items.map((c) => customers.withNamespaces(c))), ...(next ? { next } : {}) };
    },
    ReadCustomer: async (ref, ctx) => {
      staff(ctx);
      return { customer: await customers.withNamespaces(await customers.find(ref)) };
    },
    SuspendCustomer: async (ref, ctx) => {
      staff(ctx);
      return { customer: await customers.suspend(await customers.find(ref), true) };
    },
    ReactivateCustomer: async (ref, ctx) => {
      staff(ctx);
      return { customer: await customers.suspend(await customers.find(ref), false) };
    },
    DeleteCustomer: async (ref, ctx) => {
      staff(ctx);
      return { deletedNamespaces: await customers.remove(await customers.find(ref)) };
    },

    ...team,
  };
}

type Resolved = Required<Omit<SignupHandlerOptions, 'logger'>> & { logger?: Logger };

function resolve(options: SignupHandlerOptions): Resolved {
  return {
    openSignup: false,
    now: Date.now,
    codeTtlMs: 15 * MINUTE,
    maxCodeAttempts: 5,
    inviteDays: 7,
    sendsPerEmail: 5,
    sendWindowMs: 60 * MINUTE,
    sourceLimit: 30,
    maxWaitlist: 100_000,
    maxInvites: 10_000,
    claimTtlMs: 5 * MINUTE,
    maxMembers: 100,
    maxTeamInvites: 100,
    siteUrl: `${(process.env.MICRO_PUBLIC_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '')}/dashboard`,
    loginThrottle: new LoginThrottle(),
    admin: requireAdmin,
    ...stripUndefined(options),
    mailer: options.mailer,
  };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Ids that sort by creation: a base-36 time, then 64 random bits. */
export function newId(prefix: string, now: number): string {
  return `${prefix}_${now.toString(36).padStart(9, '0')}${randomBytes(8).toString('hex')}`;
}

function view(i: Invite, now: number) {
  const status = i.usedAt !== undefined ? 'used' : i.revokedAt !== undefined ? 'revoked' : i.expiresAt <= now ? 'expired' : 'pending';
  return { ...i, status } as const;
}

/** The public flows: codes, signup, login, recovery, and making invites. */
function signupFlows(deps: Deps, o: Resolved) {
  const { storage, accounts, tokens, hasher } = deps;
  const mailLater = (message: MailMessage) => {
    // not awaited: the answer takes as long whether or not a message goes (no enumeration by timing)
    o.mailer.send(message).catch((err: unknown) => o.logger?.warn({ err, to: message.to }, 'signup: a message could not be sent'));
  };

  const grant = async (account: Account, namespaces: string[]) => {
    const { refreshToken, refreshExpiresAt, session } = await accounts.sessions.start(account);
    const { token, expiresAt } = await tokens.issue(account, session);
    return { token, expiresAt, refreshToken, refreshExpiresAt, account: { id: account.id, issuer: account.issuer, scopes: account.scopes }, namespace: account.issuer, namespaces };
  };

  /** Checks a code (counted before comparing), a 401 for a wrong, expired, used or dead one. */
  const checkCode = async (email: string, code: string) => {
    const stored = await storage.checkCode(email, o.now(), o.maxCodeAttempts);
    if (!stored) throw errors.Unauthorized('signup', `code: no live code for this address (wrong ${o.maxCodeAttempts} times, expired or used): ask for a new one (SendCode)`);
    if (!/^[0-9]{6}$/.test(code) || !hasher.keyedMatches(code, stored.hash)) {
      const left = o.maxCodeAttempts - stored.attempts;
      throw errors.Unauthorized('signup', `code: wrong code (${left > 0 ? `${left} tries left` : 'no tries left: ask for a new one'})`);
    }
  };

  /** The invite that lets `email` sign up, or undefined with open signup; a 403 otherwise. */
  const inviteOf = async (email: string) => {
    const invite = await storage.liveInvite(email, o.now());
    if (!invite && !o.openSignup) {
      throw errors.Forbidden('signup', 'email: no invite for this address: join the waiting list (JoinWaitlist); customers log in (Login) or get their namespaces by email (Recover)');
    }
    return invite;
  };

  /** Reserves the customer and a namespace: the one asked, or generated ones until one is free. */
  const claim = async (customer: { id: string; email: string }, asked: string | undefined, joins: string | undefined, role: Role) => {
    for (let attempt = 0; ; attempt++) {
      const owns = joins ? undefined : (asked ?? generatedName(attempt));
      try {
        const now = o.now();
        const taken = await storage.claim({ customer, owns, joins, role, account: customer.email, now, staleBefore: now - o.claimTtlMs });
        if (taken) await removeStaleAccounts(taken.customer, taken.memberships);
        // a name in use in auth (accounts made there by other means) is taken too; checked once reserved here
        if (owns && (await accounts.list(owns, 1)).accounts.length > 0) {
          await storage.release(customer.id);
          throw errors.Conflict('signup', `namespace: ${owns} is taken`);
        }
        return (owns ?? joins) as string;
      } catch (err) {
        const nameTaken = err instanceof MicroError && err.code === 409 && err.detail.startsWith('namespace:');
        if (!nameTaken || asked || joins || attempt >= 8) throw err;
      }
    }
  };

  /** The accounts of a stale claim, only those it made (their metadata names it). */
  const removeStaleAccounts = async (customer: string, memberships: Membership[]) => {
    for (const m of memberships) {
      const info = await accounts.info(m.account, m.namespace);
      if (info?.metadata?.customer === customer) await Promise.resolve(accounts.delete(m.account, m.namespace)).catch(() => undefined);
    }
  };

  /** The owner's (or member's) account; compensated by the caller when a later step fails. */
  const makeAccount = (email: string, namespace: string, role: Role, customer: string, password: string) =>
    accounts.create({ id: email, namespace, type: 'user', scopes: [...ROLE_SCOPES[role]], metadata: { customer }, secret: password });

  return {
    async sendCode(email: string) {
      await inviteOf(email);
      if (!(await storage.countSend(`code:${email}`, o.now(), o.sendWindowMs, o.sendsPerEmail))) {
        throw errors.TooManyRequests('signup', 'email: too many codes sent to this address: try again in an hour');
      }
      const customer = await storage.getCustomer({ email });
      if (customer && customer.status !== 'unverified' && customer.status !== 'verified') {
        mailLater({ to: email, subject: 'You have an M3O account', text: `This address has an M3O account already. Log in at ${o.siteUrl}, or ask for the list of your namespaces (micro signup recover).\n` });
        return { sent: true };
      }
      const code = String(randomInt(0, 1_000_000)).padStart(6, '0');
      await storage.putCode(email, hasher.keyed(code), o.now() + o.codeTtlMs);
      await o.mailer.send(verificationMessage({ to: email, code, base: o.siteUrl, validMinutes: Math.round(o.codeTtlMs / MINUTE) }));
      return { sent: true };
    },

    async complete(req: { email: string; code: string; password: string; namespace?: string }, _ctx: Context) {
      const email = normaliseEmail(req.email);
      const asked = req.namespace === undefined ? undefined : checkNamespaceName(req.namespace);
      await checkCode(email, req.code);
      const invite = await inviteOf(email);
      if (invite?.namespace && asked) throw errors.BadRequest('signup', `namespace: your invite makes you a member of ${invite.namespace}; sign up without a namespace`);
      const customer = { id: newId('cus', o.now()), email };
      // a namespace's invite names the role (developer: those made before roles)
      const role: Role = invite?.namespace ? (invite.role ?? 'developer') : 'owner';
      const namespace = await claim(customer, asked, invite?.namespace, role);
      let made = false;
      try {
        await makeAccount(email, namespace, role, customer.id, req.password);
        made = true;
        await storage.markVerified(customer.id, o.now());
        if (!(await storage.finish(customer.id, email, o.now()))) throw errors.Conflict('signup', 'email: this signup was taken over by another try: log in');
      } catch (err) {
        // nothing is left behind: the account (if made here), then the reservation; the code still works
        if (made) await Promise.resolve(accounts.delete(email, namespace)).catch(() => undefined);
        await storage.release(customer.id).catch((e: unknown) => o.logger?.warn({ err: e, customer: customer.id }, 'signup: a claim could not be released (a later try takes it over)'));
        throw err;
      }
      // a namespace of its own is active now (joining one changes nothing of it)
      if (!invite?.namespace) deps.namespaceChanged?.(namespace);
      const account = await accounts.get(email, namespace);
      if (!account) throw errors.InternalServerError('signup', `the account of ${email} in ${namespace} is gone`);
      return grant(account, [namespace]);
    },

    async login(req: { email: string; password: string; namespace?: string }, ctx: Context) {
      const email = normaliseEmail(req.email);
      const customer = await storage.getCustomer({ email });
      const memberships = customer?.status === 'active' ? await storage.memberships(customer.id) : [];
      const target = req.namespace === undefined ? memberships[0] : memberships.find((m) => m.namespace === req.namespace);
      // an unknown email, namespace or suspended customer costs the same scrypt as a wrong password
      const account = await o.loginThrottle.attempt('signup', email, sourceOf(ctx.peer), 'password', () => accounts.verify(target?.account ?? email, target?.namespace ?? NOWHERE, req.password));
      if (!account || !target) throw errors.Unauthorized('signup', 'wrong email or password');
      return grant(account, memberships.map((m) => m.namespace));
    },

    async recover(email: string) {
      if (!(await storage.countSend(`recover:${email}`, o.now(), o.sendWindowMs, o.sendsPerEmail))) return;
      const customer = await storage.getCustomer({ email });
      if (!customer || customer.status !== 'active') return;
      const names = (await storage.memberships(customer.id)).map((m) => `${m.namespace} (${m.role})`);
      mailLater(namespacesMessage({ to: email, namespaces: names }));
    },

    async invite(email: string, namespace: string | undefined, days: number): Promise<Invite> {
      if (namespace !== undefined && (await storage.namespaceStatus(namespace)) !== 'active') throw errors.NotFound('signup', `namespace: no active namespace ${namespace}`);
      const customer = await storage.getCustomer({ email });
      if (customer) throw errors.Conflict('signup', `email: ${email} is customer ${customer.id} already`);
      const live = await storage.liveInvite(email, o.now());
      if (live) throw errors.Conflict('signup', `email: ${email} has a live invite (${live.id}): revoke it first`);
      if ((await storage.countInvites(o.now())) >= o.maxInvites) throw errors.TooManyRequests('signup', `${o.maxInvites} invites are live, the most there may be: revoke some or wait for them to expire`);
      const now = o.now();
      const invite: Invite = { id: newId('inv', now), email, createdAt: now, expiresAt: now + days * DAY, ...(namespace ? { namespace } : {}) };
      await storage.createInvite(invite);
      mailLater(platformInviteMessage({ to: email, base: o.siteUrl, ...(namespace ? { namespace } : {}) }));
      return invite;
    },

    async inviteWaitlist(count: number): Promise<Invite[]> {
      const emails = await storage.takeWaitlist(count, o.now());
      const made: Invite[] = [];
      for (const [i, email] of emails.entries()) {
        try {
          made.push(await this.invite(email, undefined, o.inviteDays));
        } catch (err) {
          // signed up or invited since they joined: nothing to do for them
          if (err instanceof MicroError && err.code === 409) continue;
          await storage.untakeWaitlist(emails.slice(i));
          throw err;
        }
      }
      return made;
    },
  };
}

/** The staff's management of customers and what it does to their accounts. */
function customerAdmin(deps: Deps, o: Resolved) {
  const { storage, accounts } = deps;

  /** Each account, skipping those gone already (a retry after a partial failure). */
  const each = async (list: { namespace: string; account: string }[], fn: (id: string, namespace: string) => unknown) => {
    for (const { namespace, account } of list) {
      try {
        await fn(account, namespace);
      } catch (err) {
        if (!(err instanceof MicroError && err.code === 404)) throw err;
      }
    }
  };
  const disable = async (id: string, namespace: string, disabled: boolean) => {
    await accounts.update(id, namespace, { disabled });
    // tokens issued before now stop at once, on every verifier (see auth/revocations.ts)
    if (disabled) await accounts.revocations.add({ kind: 'account', id: `${namespace}/${id}`, before: Math.floor(o.now() / 1000) });
  };
  /** Every account of a namespace (services and others the owner made too), page by page. */
  const accountsOf = async (namespace: string) => {
    const out: { namespace: string; account: string }[] = [];
    let after = '';
    for (;;) {
      const { accounts: page, next } = await accounts.list(namespace, 100, after);
      out.push(...page.map((a) => ({ namespace, account: a.id })));
      if (!next) return out;
      after = next;
    }
  };

  return {
    async find(ref: { id: string } | { email: string }): Promise<Customer> {
      const by = 'id' in ref ? ref : { email: normaliseEmail(ref.email) };
      const customer = await storage.getCustomer(by);
      if (!customer) throw errors.NotFound('signup', `${'id' in by ? `id: no customer ${by.id}` : `email: no customer with ${by.email}`}`);
      return customer;
    },

    async withNamespaces(c: Customer) {
      const namespaces = (await storage.memberships(c.id)).map(({ namespace, role, account }) => ({ namespace, role, account }));
      return { ...c, namespaces };
    },

    async suspend(c: Customer, suspended: boolean) {
      if (c.status !== 'active' && c.status !== 'suspended') throw errors.BadRequest('signup', `customer ${c.id} is ${c.status}: only active and suspended customers can be suspended or reactivated`);
      const memberships = await storage.memberships(c.id);
      // suspending: the status first (a retry finishes the accounts); reactivating: the accounts first
      if (suspended) await storage.setStatus(c.id, 'suspended', o.now());
      await each(memberships, (id, ns) => disable(id, ns, suspended));
      if (!suspended) await storage.setStatus(c.id, 'active', o.now());
      return this.withNamespaces((await storage.getCustomer({ id: c.id })) as Customer);
    },

    /** Accounts disabled and deleted first, then the rows: a retry after a failure redoes what is left. */
    async remove(c: Customer): Promise<string[]> {
      const memberships = await storage.memberships(c.id);
      await each(memberships, (id, ns) => disable(id, ns, true));
      await each(memberships, (id, ns) => accounts.delete(id, ns));
      const namespaces = await storage.deleteCustomer(c.id, o.now());
      for (const ns of namespaces) {
        // every account of theirs stops first; then (in micro server) all they hold goes
        await each(await accountsOf(ns), (id, n) => disable(id, n, true));
        await deps.purge?.(ns);
      }
      return namespaces;
    },
  };
}
