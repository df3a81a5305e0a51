import { errors } from '@micro/sdk';
import type { Claim, Customer, CustomerStatus, Invite, Member, Membership, Page, Role, SignupStorage, StoredCode, TakenOver, WaitlistEntry } from './storage.js';

/**
 * The signup storage, written once over a small SQL driver: the statements below are the
 * common dialect of SQLite (≥ 3.35: upserts with WHERE, RETURNING) and PostgreSQL, `?`
 * placeholders (the Postgres driver numbers them). sqlite.ts and postgres.ts give the
 * drivers; each runs a transaction on one connection, so what a method decides inside
 * one holds on every node.
 */

export interface SqlDriver {
  all<R>(sql: string, params?: unknown[]): Promise<R[]>;
  /** the number of rows changed */
  run(sql: string, params?: unknown[]): Promise<number>;
  /** `fn` in one transaction (rolled back when it throws), its statements through the driver it is given */
  tx<T>(fn: (q: SqlDriver) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** A unique constraint failed; `what` names the table (both engines' messages do). */
export class UniqueViolation extends Error {}

/** The tables, in the common dialect (BIGINT is an integer in SQLite). */
export const SIGNUP_SCHEMA = `
  CREATE TABLE customers (id TEXT PRIMARY KEY, email TEXT UNIQUE, status TEXT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
  CREATE TABLE namespaces (name TEXT PRIMARY KEY, owner TEXT NOT NULL, status TEXT NOT NULL, created_at BIGINT NOT NULL);
  CREATE INDEX namespaces_owner ON namespaces (owner);
  CREATE TABLE members (namespace TEXT NOT NULL, customer TEXT NOT NULL, account TEXT NOT NULL, role TEXT NOT NULL, created_at BIGINT NOT NULL, PRIMARY KEY (namespace, customer));
  CREATE INDEX members_customer ON members (customer);
  CREATE TABLE invites (id TEXT PRIMARY KEY, email TEXT NOT NULL, namespace TEXT, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, used_at BIGINT, revoked_at BIGINT);
  CREATE INDEX invites_email ON invites (email);
  CREATE TABLE waitlist (email TEXT PRIMARY KEY, created_at BIGINT NOT NULL, invited_at BIGINT);
  CREATE INDEX waitlist_order ON waitlist (created_at, email);
  CREATE TABLE codes (email TEXT PRIMARY KEY, hash TEXT NOT NULL, expires_at BIGINT NOT NULL, attempts INTEGER NOT NULL);
  CREATE TABLE sends (key TEXT PRIMARY KEY, until BIGINT NOT NULL, count INTEGER NOT NULL);
  CREATE INDEX sends_until ON sends (until);
`;

/**
 * Version 2: team roles. Invites into a namespace name a role; members that joined before
 * roles (`member`) are developers, as their account's scopes say.
 */
export const SIGNUP_SCHEMA_V2 = `
  ALTER TABLE invites ADD COLUMN role TEXT;
  CREATE INDEX invites_namespace ON invites (namespace);
  UPDATE members SET role = 'developer' WHERE role = 'member';
`;

const UNFINISHED = "('unverified', 'verified')";
const LIVE_INVITE = 'used_at IS NULL AND revoked_at IS NULL AND expires_at > ?';
const INSERT_INVITE = 'INSERT INTO invites (id, email, namespace, role, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)';
type Row = Record<string, unknown>;
const num = (v: unknown): number => Number(v);
const opt = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : Number(v));

export class SqlSignupStorage implements SignupStorage {
  constructor(private readonly db: SqlDriver) {}

  async createInvite(i: Invite): Promise<void> {
    await this.db.run(INSERT_INVITE, [i.id, i.email, i.namespace ?? null, i.role ?? null, i.createdAt, i.expiresAt]);
  }

  async getInvite(id: string): Promise<Invite | undefined> {
    const [row] = await this.db.all<Row>('SELECT * FROM invites WHERE id = ?', [id]);
    return row && toInvite(row);
  }

  async revokeInvite(id: string, now: number): Promise<boolean> {
    return (await this.db.run('UPDATE invites SET revoked_at = ? WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL', [now, id])) > 0;
  }

  async listInvites(limit: number, after = ''): Promise<Page<Invite>> {
    const rows = await this.db.all<Row>('SELECT * FROM invites WHERE id > ? ORDER BY id LIMIT ?', [after, limit + 1]);
    return page(rows.map(toInvite), limit, (i) => i.id);
  }

  async liveInvite(email: string, now: number): Promise<Invite | undefined> {
    const [row] = await this.db.all<Row>('SELECT * FROM invites WHERE email = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ? ORDER BY id DESC LIMIT 1', [email, now]);
    return row && toInvite(row);
  }

  async countInvites(now: number): Promise<number> {
    const [row] = await this.db.all<Row>('SELECT COUNT(*) AS n FROM invites WHERE used_at IS NULL AND revoked_at IS NULL AND expires_at > ?', [now]);
    return num(row?.n ?? 0);
  }

  async joinWaitlist(email: string, now: number, max: number): Promise<boolean> {
    return this.db.tx(async (q) => {
      if ((await q.all('SELECT 1 FROM waitlist WHERE email = ?', [email])).length > 0) return true;
      const [row] = await q.all<Row>('SELECT COUNT(*) AS n FROM waitlist', []);
      if (num(row?.n ?? 0) >= max) return false;
      await q.run('INSERT INTO waitlist (email, created_at) VALUES (?, ?) ON CONFLICT (email) DO NOTHING', [email, now]);
      return true;
    });
  }

  async listWaitlist(limit: number, after?: string): Promise<Page<WaitlistEntry>> {
    const [at, email] = after ? [Number(after.slice(0, after.indexOf(':'))), after.slice(after.indexOf(':') + 1)] : [-1, ''];
    const rows = await this.db.all<Row>('SELECT * FROM waitlist WHERE created_at > ? OR (created_at = ? AND email > ?) ORDER BY created_at, email LIMIT ?', [at, at, email, limit + 1]);
    const entries = rows.map((r) => withOptional({ email: String(r.email), createdAt: num(r.created_at) }, { invitedAt: opt(r.invited_at) }));
    return page(entries, limit, (e) => `${e.createdAt}:${e.email}`);
  }

  async takeWaitlist(count: number, now: number): Promise<string[]> {
    const rows = await this.db.all<Row>(
      `UPDATE waitlist SET invited_at = ? WHERE invited_at IS NULL AND email IN
         (SELECT email FROM waitlist WHERE invited_at IS NULL ORDER BY created_at, email LIMIT ?)
       RETURNING email, created_at`,
      [now, count],
    );
    return rows.sort((a, b) => num(a.created_at) - num(b.created_at) || String(a.email).localeCompare(String(b.email))).map((r) => String(r.email));
  }

  async untakeWaitlist(emails: string[]): Promise<void> {
    for (const email of emails) await this.db.run('UPDATE waitlist SET invited_at = NULL WHERE email = ?', [email]);
  }

  async countSend(key: string, now: number, windowMs: number, max: number): Promise<boolean> {
    await this.db.run('DELETE FROM sends WHERE until <= ?', [now]);
    const changed = await this.db.run(
      `INSERT INTO sends (key, until, count) VALUES (?, ?, 1)
       ON CONFLICT (key) DO UPDATE SET count = sends.count + 1 WHERE sends.until > ? AND sends.count < ?`,
      [key, now + windowMs, now, max],
    );
    return changed > 0;
  }

  async putCode(email: string, hash: string, expiresAt: number): Promise<void> {
    await this.db.run(
      'INSERT INTO codes (email, hash, expires_at, attempts) VALUES (?, ?, ?, 0) ON CONFLICT (email) DO UPDATE SET hash = excluded.hash, expires_at = excluded.expires_at, attempts = 0',
      [email, hash, expiresAt],
    );
  }

  async checkCode(email: string, now: number, maxAttempts: number): Promise<StoredCode | undefined> {
    await this.db.run('DELETE FROM codes WHERE expires_at <= ? AND email <> ?', [now, email]);
    const [row] = await this.db.all<Row>('UPDATE codes SET attempts = attempts + 1 WHERE email = ? AND expires_at > ? AND attempts < ? RETURNING hash, expires_at, attempts', [email, now, maxAttempts]);
    return row && { hash: String(row.hash), expiresAt: num(row.expires_at), attempts: num(row.attempts) };
  }

  async claim(c: Claim): Promise<TakenOver | undefined> {
    try {
      return await this.db.tx(async (q) => {
        const taken = await this.takeOverStale(q, c);
        if (c.owns) await q.run("INSERT INTO namespaces (name, owner, status, created_at) VALUES (?, ?, 'pending', ?)", [c.owns, c.customer.id, c.now]);
        const namespace = c.owns ?? c.joins;
        if (!namespace) throw errors.BadRequest('signup', 'namespace: a signup owns or joins one');
        if (c.joins && (await q.all<Row>("SELECT 1 FROM namespaces WHERE name = ? AND status = 'active'", [c.joins])).length === 0) {
          throw errors.NotFound('signup', `namespace: ${c.joins}, which the invite names, is not active any more`);
        }
        await q.run("INSERT INTO customers (id, email, status, created_at, updated_at) VALUES (?, ?, 'unverified', ?, ?)", [c.customer.id, c.customer.email, c.now, c.now]);
        await q.run('INSERT INTO members (namespace, customer, account, role, created_at) VALUES (?, ?, ?, ?, ?)', [namespace, c.customer.id, c.account, c.owns ? 'owner' : (c.role ?? 'developer'), c.now]);
        return taken;
      });
    } catch (err) {
      if (!(err instanceof UniqueViolation)) throw err;
      if (err.message.includes('namespaces')) throw errors.Conflict('signup', `namespace: ${c.owns} is taken`);
      throw errors.Conflict('signup', `email: ${c.customer.email} has signed up already (log in, or Recover to get your namespaces)`);
    }
  }

  /** A 409 for an email with a customer, unless that is a stale claim: then it goes, and is returned. */
  private async takeOverStale(q: SqlDriver, c: Claim): Promise<TakenOver | undefined> {
    const [row] = await q.all<Row>('SELECT id, status, updated_at FROM customers WHERE email = ?', [c.customer.email]);
    if (!row) return undefined;
    const unfinished = row.status === 'unverified' || row.status === 'verified';
    if (!unfinished || num(row.updated_at) >= c.staleBefore) {
      throw errors.Conflict('signup', `email: ${c.customer.email} has signed up already${unfinished ? ' (a signup is under way)' : ''}`);
    }
    const id = String(row.id);
    const memberships = await membershipsOf(q, id);
    await releaseIn(q, id);
    return { customer: id, memberships };
  }

  async markVerified(customer: string, now: number): Promise<boolean> {
    return (await this.db.run("UPDATE customers SET status = 'verified', updated_at = ? WHERE id = ? AND status = 'unverified'", [now, customer])) > 0;
  }

  async finish(customer: string, email: string, now: number): Promise<boolean> {
    return this.db.tx(async (q) => {
      if ((await q.run(`UPDATE customers SET status = 'active', updated_at = ? WHERE id = ? AND status IN ${UNFINISHED}`, [now, customer])) === 0) return false;
      await q.run("UPDATE namespaces SET status = 'active' WHERE owner = ? AND status = 'pending'", [customer]);
      await q.run('DELETE FROM codes WHERE email = ?', [email]);
      // the invite it used; invites into other namespaces stay live (accepted later: AcceptInvite)
      await q.run(`UPDATE invites SET used_at = ? WHERE email = ? AND ${LIVE_INVITE} AND (namespace IS NULL OR namespace IN (SELECT namespace FROM members WHERE customer = ?))`, [now, email, now, customer]);
      return true;
    });
  }

  async release(customer: string): Promise<void> {
    await this.db.tx((q) => releaseIn(q, customer));
  }

  async getCustomer(by: { id: string } | { email: string }): Promise<Customer | undefined> {
    const [row] = 'id' in by ? await this.db.all<Row>('SELECT * FROM customers WHERE id = ?', [by.id]) : await this.db.all<Row>('SELECT * FROM customers WHERE email = ?', [by.email]);
    return row && toCustomer(row);
  }

  async listCustomers(limit: number, after = '', status?: CustomerStatus): Promise<Page<Customer>> {
    const rows = status
      ? await this.db.all<Row>('SELECT * FROM customers WHERE id > ? AND status = ? ORDER BY id LIMIT ?', [after, status, limit + 1])
      : await this.db.all<Row>('SELECT * FROM customers WHERE id > ? ORDER BY id LIMIT ?', [after, limit + 1]);
    return page(rows.map(toCustomer), limit, (c) => c.id);
  }

  memberships(customer: string): Promise<Membership[]> {
    return membershipsOf(this.db, customer);
  }

  async setStatus(customer: string, status: 'active' | 'suspended', now: number): Promise<boolean> {
    return (await this.db.run("UPDATE customers SET status = ?, updated_at = ? WHERE id = ? AND status IN ('active', 'suspended')", [status, now, customer])) > 0;
  }

  async deleteCustomer(customer: string, now: number): Promise<string[]> {
    return this.db.tx(async (q) => {
      const owned = await q.all<Row>(
        // deleted already (a retry): returned again, so the caller can finish what follows
        "SELECT name FROM namespaces n WHERE owner = ? AND (status = 'deleted' OR NOT EXISTS (SELECT 1 FROM members m WHERE m.namespace = n.name AND m.customer <> ?)) ORDER BY name",
        [customer, customer],
      );
      for (const r of owned) await q.run("UPDATE namespaces SET status = 'deleted' WHERE name = ? AND status <> 'deleted'", [r.name]);
      await q.run('DELETE FROM members WHERE customer = ?', [customer]);
      await q.run("UPDATE customers SET status = 'deleted', email = NULL, updated_at = ? WHERE id = ?", [now, customer]);
      return owned.map((r) => String(r.name));
    });
  }

  async namespaceStatus(name: string): Promise<'pending' | 'active' | 'deleted' | undefined> {
    const [row] = await this.db.all<Row>('SELECT status FROM namespaces WHERE name = ?', [name]);
    return row?.status as 'pending' | 'active' | 'deleted' | undefined;
  }

  async listNamespaces(status: 'pending' | 'active' | 'deleted', limit: number, after = ''): Promise<Page<string>> {
    const rows = await this.db.all<Row>('SELECT name FROM namespaces WHERE status = ? AND name > ? ORDER BY name LIMIT ?', [status, after, limit + 1]);
    return page(rows.map((r) => String(r.name)), limit, (name) => name);
  }

  async members(namespace: string): Promise<Member[]> {
    return (await this.db.all<Row>(`${MEMBERS} WHERE m.namespace = ? ORDER BY m.created_at, m.customer`, [namespace])).map(toMember);
  }

  async memberByAccount(namespace: string, account: string): Promise<Member | undefined> {
    const [row] = await this.db.all<Row>(`${MEMBERS} WHERE m.namespace = ? AND m.account = ?`, [namespace, account]);
    return row && toMember(row);
  }

  async teamInvites(namespace: string, now: number): Promise<Invite[]> {
    return (await this.db.all<Row>(`SELECT * FROM invites WHERE namespace = ? AND ${LIVE_INVITE} ORDER BY id`, [namespace, now])).map(toInvite);
  }

  async liveTeamInvite(email: string, namespace: string, now: number): Promise<Invite | undefined> {
    const [row] = await this.db.all<Row>(`SELECT * FROM invites WHERE email = ? AND namespace = ? AND ${LIVE_INVITE} ORDER BY id DESC LIMIT 1`, [email, namespace, now]);
    return row && toInvite(row);
  }

  async revokeTeamInvites(email: string, namespace: string, now: number): Promise<number> {
    return this.db.run(`UPDATE invites SET revoked_at = ? WHERE email = ? AND namespace = ? AND ${LIVE_INVITE}`, [now, email, namespace, now]);
  }

  async createTeamInvite(i: Invite & { namespace: string }, maxSeats: number | null): Promise<{ created: boolean; seats: number }> {
    return this.db.tx(async (q) => {
      await lockNamespace(q, i.namespace);
      const seats = await countSeats(q, i.namespace, i.createdAt);
      if (maxSeats !== null && seats >= maxSeats) return { created: false, seats };
      await q.run(INSERT_INVITE, [i.id, i.email, i.namespace, i.role ?? null, i.createdAt, i.expiresAt]);
      return { created: true, seats };
    });
  }

  seats(namespace: string, now: number): Promise<number> {
    return countSeats(this.db, namespace, now);
  }

  async join(j: { invite: string; customer: string; namespace: string; account: string; role: Role; now: number; maxMembers: number }): Promise<void> {
    try {
      await this.db.tx(async (q) => {
        await lockNamespace(q, j.namespace);
        const used = await q.run(`UPDATE invites SET used_at = ? WHERE id = ? AND namespace = ? AND ${LIVE_INVITE}`, [j.now, j.invite, j.namespace, j.now]);
        if (used === 0) throw errors.NotFound('signup', `namespace: no live invite into ${j.namespace} (used, revoked or expired)`);
        const [row] = await q.all<Row>('SELECT COUNT(*) AS n FROM members WHERE namespace = ?', [j.namespace]);
        if (num(row?.n ?? 0) >= j.maxMembers) throw errors.TooManyRequests('signup', `namespace: ${j.namespace} has ${j.maxMembers} members, the most it may have`);
        await q.run('INSERT INTO members (namespace, customer, account, role, created_at) VALUES (?, ?, ?, ?, ?)', [j.namespace, j.customer, j.account, j.role, j.now]);
      });
    } catch (err) {
      if (err instanceof UniqueViolation) throw errors.Conflict('signup', `namespace: you are a member of ${j.namespace} already`);
      throw err;
    }
  }

  async setRole(namespace: string, customer: string, role: Role, mayTouchOwner: boolean): Promise<Role> {
    return this.db.tx(async (q) => {
      const current = await changeableMember(q, namespace, customer, mayTouchOwner, role !== 'owner');
      await q.run('UPDATE members SET role = ? WHERE namespace = ? AND customer = ?', [role, namespace, customer]);
      return current.role;
    });
  }

  async removeMember(namespace: string, customer: string, mayTouchOwner: boolean): Promise<Membership> {
    return this.db.tx(async (q) => {
      const current = await changeableMember(q, namespace, customer, mayTouchOwner, true);
      await q.run('DELETE FROM members WHERE namespace = ? AND customer = ?', [namespace, customer]);
      return { namespace, account: current.account, role: current.role, createdAt: current.createdAt };
    });
  }

  close(): Promise<void> {
    return this.db.close();
  }
}

const MEMBERS = 'SELECT m.*, c.email AS email FROM members m LEFT JOIN customers c ON c.id = m.customer';

/**
 * Takes the namespace's row for the rest of the transaction: changes to one team's
 * members are serialised on PostgreSQL (SQLite runs one transaction at a time anyway), so
 * two owners removing each other cannot both pass the last-owner check.
 */
async function lockNamespace(q: SqlDriver, namespace: string): Promise<void> {
  if ((await q.run("UPDATE namespaces SET status = status WHERE name = ? AND status = 'active'", [namespace])) === 0) {
    throw errors.NotFound('signup', `namespace: no active namespace ${namespace}`);
  }
}

/** Members + live invites of a namespace. */
async function countSeats(q: SqlDriver, namespace: string, now: number): Promise<number> {
  const [row] = await q.all<Row>(`SELECT (SELECT COUNT(*) FROM members WHERE namespace = ?) + (SELECT COUNT(*) FROM invites WHERE namespace = ? AND ${LIVE_INVITE}) AS n`, [namespace, namespace, now]);
  return num(row?.n ?? 0);
}

/** The member a role change or removal may touch: 404, 403 (an owner, when not allowed), 409 (the last owner leaving). */
async function changeableMember(q: SqlDriver, namespace: string, customer: string, mayTouchOwner: boolean, ownerLeaves: boolean): Promise<Member> {
  await lockNamespace(q, namespace);
  const [row] = await q.all<Row>(`${MEMBERS} WHERE m.namespace = ? AND m.customer = ?`, [namespace, customer]);
  if (!row) throw errors.NotFound('signup', `email: not a member of ${namespace}`);
  const member = toMember(row);
  if (member.role !== 'owner') return member;
  if (!mayTouchOwner) throw errors.Forbidden('signup', `email: ${member.email ?? member.account} is an owner of ${namespace}: only an owner may change or remove an owner`);
  if (ownerLeaves) {
    const [count] = await q.all<Row>("SELECT COUNT(*) AS n FROM members WHERE namespace = ? AND role = 'owner'", [namespace]);
    if (num(count?.n ?? 0) <= 1) throw errors.Conflict('signup', `email: ${member.email ?? member.account} is the last owner of ${namespace}: make another member owner first`);
  }
  return member;
}

function toMember(r: Row): Member {
  const base = { namespace: String(r.namespace), customer: String(r.customer), account: String(r.account), role: r.role as Role, createdAt: num(r.created_at) };
  return withOptional(base, { email: r.email === null || r.email === undefined ? undefined : String(r.email) });
}

async function membershipsOf(q: SqlDriver, customer: string): Promise<Membership[]> {
  const rows = await q.all<Row>('SELECT * FROM members WHERE customer = ? ORDER BY created_at, namespace', [customer]);
  return rows.map((r) => ({ namespace: String(r.namespace), account: String(r.account), role: r.role as Membership['role'], createdAt: num(r.created_at) }));
}

async function releaseIn(q: SqlDriver, customer: string): Promise<void> {
  await q.run('DELETE FROM members WHERE customer = ?', [customer]);
  await q.run("DELETE FROM namespaces WHERE owner = ? AND status = 'pending'", [customer]);
  await q.run(`DELETE FROM customers WHERE id = ? AND status IN ${UNFINISHED}`, [customer]);
}

function page<T>(items: T[], limit: number, cursor: (item: T) => string): Page<T> {
  if (items.length <= limit) return { items };
  const shown = items.slice(0, limit);
  return { items: shown, next: cursor(shown[shown.length - 1] as T) };
}

/** `base` with the fields of `extra` that are defined. */
function withOptional<T extends object, E extends Record<string, unknown>>(base: T, extra: E): T & Partial<E> {
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) out[k] = v;
  return out as T & Partial<E>;
}

function toInvite(r: Row): Invite {
  const base = { id: String(r.id), email: String(r.email), createdAt: num(r.created_at), expiresAt: num(r.expires_at) };
  const text = (v: unknown) => (v === null || v === undefined ? undefined : String(v));
  return withOptional(base, { namespace: text(r.namespace), role: text(r.role) as Role | undefined, usedAt: opt(r.used_at), revokedAt: opt(r.revoked_at) });
}

function toCustomer(r: Row): Customer {
  const base = { id: String(r.id), status: r.status as CustomerStatus, createdAt: num(r.created_at), updatedAt: num(r.updated_at) };
  return withOptional(base, { email: r.email === null || r.email === undefined ? undefined : String(r.email) });
}
