import { errors } from '@micro/sdk';
import type { Claim, Customer, CustomerStatus, Invite, Membership, Page, SignupStorage, StoredCode, TakenOver, WaitlistEntry } from './storage.js';

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

const UNFINISHED = "('unverified', 'verified')";
type Row = Record<string, unknown>;
const num = (v: unknown): number => Number(v);
const opt = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : Number(v));

export class SqlSignupStorage implements SignupStorage {
  constructor(private readonly db: SqlDriver) {}

  async createInvite(i: Invite): Promise<void> {
    await this.db.run('INSERT INTO invites (id, email, namespace, created_at, expires_at) VALUES (?, ?, ?, ?, ?)', [i.id, i.email, i.namespace ?? null, i.createdAt, i.expiresAt]);
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
        await q.run('INSERT INTO members (namespace, customer, account, role, created_at) VALUES (?, ?, ?, ?, ?)', [namespace, c.customer.id, c.account, c.owns ? 'owner' : 'member', c.now]);
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
      await q.run('UPDATE invites SET used_at = ? WHERE email = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?', [now, email, now]);
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

  close(): Promise<void> {
    return this.db.close();
  }
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
  return withOptional(base, { namespace: r.namespace === null || r.namespace === undefined ? undefined : String(r.namespace), usedAt: opt(r.used_at), revokedAt: opt(r.revoked_at) });
}

function toCustomer(r: Row): Customer {
  const base = { id: String(r.id), status: r.status as CustomerStatus, createdAt: num(r.created_at), updatedAt: num(r.updated_at) };
  return withOptional(base, { email: r.email === null || r.email === undefined ? undefined : String(r.email) });
}
