import type { Revocation, RevocationList } from '@micro/sdk';
import type { RevocationStorage } from '../storage.js';
import type { PgContext } from './accounts.js';

/**
 * The revocation list of a platform (nats profile): rows of `auth_revocations`, shared by
 * every node. An entry is committed with a NOTIFY in the same transaction; each node adds
 * what it hears to its own list (`ctx.revoked`, what its Tokens verify against), the node
 * that made it at once. So a token revoked on node A is refused on node B as soon as
 * Postgres delivers the NOTIFY (milliseconds).
 *
 * What a NOTIFY cannot promise, `sync` makes up for: every node reads the table at start,
 * when its LISTEN connection is back (what was sent while it was down is lost), and every
 * second while it is down (pg/index.ts). Rows go when no token they can match is left.
 */
export class PgRevocations implements RevocationStorage {
  /** when the table was last read in full (ms) */
  private syncedAt = 0;

  constructor(private readonly ctx: PgContext) {}

  /**
   * Current while the LISTEN is up (every entry reaches us as it commits), or the table was
   * read less than `within` ms ago; else a reason, and this node's verifiers refuse tokens
   * (503) rather than miss a revocation made on another node.
   */
  watch(listening: () => boolean, within = 5_000): void {
    this.list.stale = () => {
      if (listening()) return undefined;
      const age = Date.now() - this.syncedAt;
      return age < within ? undefined : `the revocation list could not be read from Postgres for ${Math.round(age / 1000)} s`;
    };
  }

  get list(): RevocationList {
    return this.ctx.revoked;
  }

  async add(r: Revocation): Promise<void> {
    const table = this.ctx.t.revocations;
    await this.ctx.db.transaction(async (c) => {
      await c.query(`DELETE FROM ${table} WHERE before <= $1`, [this.horizon()]);
      await c.query(`INSERT INTO ${table} (kind, id, before) VALUES ($1, $2, $3) ON CONFLICT (kind, id) DO UPDATE SET before = GREATEST(${table}.before, EXCLUDED.before)`, [
        r.kind,
        r.id,
        r.before,
      ]);
      await c.query('SELECT pg_notify($1, $2)', [this.ctx.channel, JSON.stringify({ t: 'revoke', r })]);
    });
    this.list.add(r);
  }

  /** Reads every entry in force into this node's list. */
  async sync(): Promise<void> {
    const { rows } = await this.ctx.db.query<{ kind: Revocation['kind']; id: string; before: string }>(`SELECT kind, id, before FROM ${this.ctx.t.revocations} WHERE before > $1`, [
      this.horizon(),
    ]);
    for (const row of rows) this.list.add({ kind: row.kind, id: row.id, before: Number(row.before) });
    this.syncedAt = Date.now();
  }

  private horizon(): number {
    return Math.floor(Date.now() / 1000) - this.list.keepFor;
  }
}
