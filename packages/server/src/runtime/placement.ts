import type { Logger } from '@micro/sdk';
import type { Sealer } from '../auth/crypto.js';
import type { Postgres } from '../postgres/index.js';
import { admitService } from './quota.js';
import type { BuildRecord } from './state.js';

/**
 * Desired state and placement (nats profile): what should run on the platform, and which
 * node runs each instance, in PostgreSQL, so that a node's death moves its instances to the
 * nodes that remain (see README.md, "Several nodes").
 *
 * - `runtime_desired` (namespace, name, spec, instances, generation): a service as `micro
 *   run` made it — its source, whether its giver was trusted, its env (sealed with the
 *   platform's key: --env values are secrets), its build (the artifact in the blob store,
 *   so any node can run it without the source). `generation` counts the changes of what
 *   runs: each node rolls its instances when it sees a newer one.
 * - `runtime_slots` (namespace, name, slot, node, next_node, next_ready, avoid): instance
 *   number `slot` of a service runs on `node`. A hand-over is make-before-break: the
 *   scheduler names `next_node`, which starts an instance for the slot and says when it is
 *   ready (`next_ready`); the next pass makes it the slot's node, and the old node stops
 *   its instance at its next reconcile. So a slot never has more than two instances, and
 *   two only for the length of a hand-over. `avoid`: nodes that could not run the slot
 *   (its build failed there), not chosen again until the next generation.
 *
 * Any node may run a scheduler pass (`schedule`): one at a time, under a transaction-scoped
 * advisory lock, judged by PostgreSQL's clock (which nodes hold a lease). The pass itself
 * is `plan`, a pure function.
 */

export const PLACEMENT_MIGRATION = {
  version: 3,
  description: 'runtime_desired and runtime_slots: what should run, and where',
  up: `CREATE TABLE runtime_desired (
    namespace text NOT NULL,
    name text NOT NULL,
    spec jsonb NOT NULL,
    instances integer NOT NULL CHECK (instances > 0),
    generation bigint NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, name)
  );
  CREATE TABLE runtime_slots (
    namespace text NOT NULL,
    name text NOT NULL,
    slot integer NOT NULL CHECK (slot >= 0),
    node text NOT NULL,
    next_node text,
    next_ready boolean NOT NULL DEFAULT false,
    avoid text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (namespace, name, slot),
    FOREIGN KEY (namespace, name) REFERENCES runtime_desired (namespace, name) ON DELETE CASCADE
  );
  CREATE INDEX runtime_slots_node ON runtime_slots (node);
  CREATE INDEX runtime_slots_next ON runtime_slots (next_node) WHERE next_node IS NOT NULL`,
};

/** A build as every node knows it: without the folder, which is each node's own. */
export type SharedBuild = Omit<BuildRecord, 'dir'>;

/** What should run: a service as `micro run` (and the last `micro update`) made it. */
export interface ServiceSpec {
  source: string;
  trusted: boolean;
  env: Record<string, string>;
  build: SharedBuild;
  version?: string;
  /** set for a plain HTTP app */
  app?: { port: number };
  createdAt: string;
  updatedAt: string;
}

export interface DesiredService {
  namespace: string;
  name: string;
  instances: number;
  generation: number;
}

export interface Slot {
  namespace: string;
  name: string;
  slot: number;
  node: string;
  next: string | null;
  nextReady: boolean;
  avoid: string[];
}

export type SlotChange = { kind: 'put'; slot: Slot } | { kind: 'drop'; namespace: string; name: string; slot: number };

export interface PlanOptions {
  /** hand-overs in flight at once, over the whole platform (default 4) */
  maxHandovers?: number;
  /** the node new slots of these services (namespace/name) go to first: the one that built them */
  prefer?: { node: string; services: Set<string> };
}

const skey = (s: { namespace: string; name: string }) => `${s.namespace}/${s.name}`;

/**
 * One scheduler pass: the slot changes that bring the placement to what is desired, on the
 * nodes that hold a lease (`live`). In this order, per service: slots past its instance
 * count go; a hand-over whose new instance is ready completes; a hand-over to a node that is
 * gone (or refused the slot) is called off; a slot on a gone node, or on a node that
 * refused it, moves at once to the best live node; missing slots are placed. Then, while
 * fewer than maxHandovers are in flight, one hand-over at a time: first to spread a
 * service whose instances differ by two or more between nodes, then to even out nodes whose
 * totals differ by two or more (a node that came back gets its share). A node is best when
 * it runs the fewest instances of the service, then the fewest in all, then by id.
 */
export function plan(desired: DesiredService[], slots: Slot[], live: string[], options: PlanOptions = {}): SlotChange[] {
  const alive = new Set(live);
  const nodes = [...alive].sort();
  const wanted = new Map(desired.map((d) => [skey(d), d]));
  const changed = new Map<string, Slot>();
  const drops: SlotChange[] = [];
  const current = new Map<string, Slot[]>();
  for (const s of slots) {
    const list = current.get(skey(s)) ?? [];
    list.push({ ...s, avoid: [...s.avoid] });
    current.set(skey(s), list);
  }
  const put = (s: Slot) => changed.set(`${skey(s)}#${s.slot}`, s);
  /** where a slot counts: where it will be once its hand-over is done */
  const home = (s: Slot) => s.next ?? s.node;
  const kept = new Map<string, Slot[]>();
  for (const [k, list] of current) {
    const d = wanted.get(k);
    const keep: Slot[] = [];
    for (const s of list) {
      if (!d || s.slot >= d.instances) drops.push({ kind: 'drop', namespace: s.namespace, name: s.name, slot: s.slot });
      else keep.push(s);
    }
    kept.set(k, keep);
  }
  /** the nodes that could not run a service (their build failed) are avoided for all of its slots */
  const avoided = new Map<string, string[]>();
  for (const [k, list] of kept) avoided.set(k, [...new Set(list.flatMap((s) => s.avoid))]);
  const avoidOf = (k: string) => avoided.get(k) ?? [];
  const perService = (k: string, node: string) => (kept.get(k) ?? []).filter((s) => home(s) === node).length;
  const total = (node: string) => {
    let n = 0;
    for (const list of kept.values()) for (const s of list) if (home(s) === node) n++;
    return n;
  };
  const best = (k: string, avoid: string[], except?: string): string | undefined => {
    let choice: string | undefined;
    let score: [number, number] | undefined;
    for (const node of nodes) {
      if (avoid.includes(node) || node === except) continue;
      const sc: [number, number] = [perService(k, node), total(node)];
      if (!score || sc[0] < score[0] || (sc[0] === score[0] && sc[1] < score[1])) {
        choice = node;
        score = sc;
      }
    }
    return choice;
  };
  for (const d of [...desired].sort((a, b) => skey(a).localeCompare(skey(b)))) {
    const k = skey(d);
    const list = kept.get(k) ?? [];
    kept.set(k, list);
    const avoid = avoidOf(k);
    for (const s of list) {
      if (s.next !== null && s.nextReady && alive.has(s.next) && !avoid.includes(s.next)) {
        s.node = s.next;
        s.next = null;
        s.nextReady = false;
        put(s);
      } else if (s.next !== null && (!alive.has(s.next) || avoid.includes(s.next))) {
        s.next = null;
        s.nextReady = false;
        put(s);
      }
      if (!alive.has(s.node) || avoid.includes(s.node)) {
        const to = best(k, avoid, s.node);
        if (to !== undefined) {
          s.node = to;
          s.next = null;
          s.nextReady = false;
          put(s);
        }
      }
    }
    for (let i = 0; i < d.instances; i++) {
      if (list.some((s) => s.slot === i)) continue;
      const preferred = options.prefer?.services.has(k) && alive.has(options.prefer.node) && perService(k, options.prefer.node) === 0 ? options.prefer.node : undefined;
      const to = preferred ?? best(k, avoid);
      if (to === undefined) continue;
      const s: Slot = { namespace: d.namespace, name: d.name, slot: i, node: to, next: null, nextReady: false, avoid: [] };
      list.push(s);
      put(s);
    }
  }
  // hand-overs: spread each service, then even out the nodes
  const limit = options.maxHandovers ?? 4;
  let inFlight = [...kept.values()].flat().filter((s) => s.next !== null).length;
  const movable = (s: Slot) => s.next === null && alive.has(s.node);
  const busy = (k: string) => (kept.get(k) ?? []).some((s) => s.next !== null);
  const handOver = (s: Slot, to: string) => {
    s.next = to;
    s.nextReady = false;
    put(s);
    inFlight++;
  };
  const services = [...kept.keys()].filter((k) => wanted.has(k)).sort();
  while (inFlight < limit) {
    let moved = false;
    for (const k of services) {
      if (inFlight >= limit) break;
      if (busy(k)) continue;
      const list = kept.get(k) ?? [];
      for (const from of nodes) {
        const s = list.find((x) => x.node === from && movable(x));
        if (!s) continue;
        const to = best(k, avoidOf(k), from);
        if (to !== undefined && perService(k, from) - perService(k, to) >= 2) {
          handOver(s, to);
          moved = true;
          break;
        }
      }
    }
    if (moved) continue;
    const byLoad = [...nodes].sort((a, b) => total(b) - total(a) || a.localeCompare(b));
    const heavy = byLoad[0];
    const light = byLoad[byLoad.length - 1];
    if (heavy === undefined || light === undefined || total(heavy) - total(light) < 2) break;
    const candidate = services
      .filter((k) => !busy(k) && perService(k, light) < perService(k, heavy))
      .map((k) => (kept.get(k) ?? []).find((s) => s.node === heavy && movable(s) && !avoidOf(k).includes(light)))
      .find((s): s is Slot => s !== undefined);
    if (!candidate) break;
    handOver(candidate, light);
  }
  return [...drops, ...[...changed.values()].map((slot) => ({ kind: 'put' as const, slot }))];
}

/** One desired service with this node's slots, as a node reconciles it. */
export interface Assignment {
  namespace: string;
  name: string;
  spec: ServiceSpec;
  instances: number;
  generation: number;
  /** the slots this node runs an instance for: its own, and those handed over to it */
  slots: { slot: number; handover: boolean; ready: boolean }[];
}

export interface PlacementStore {
  /** One scheduler pass (skipped when another node is running one); the number of changes made. */
  schedule(): Promise<number>;
  /**
   * Records a new service and places its slots (the first on `node`, the one that built
   * it); false when the name is taken already (another node made it meanwhile). With
   * `maxServices`, a service past the namespace's `services` quota is refused (403), counted
   * and inserted in one transaction under a lock per namespace: exact across nodes.
   */
  create(namespace: string, name: string, spec: ServiceSpec, instances: number, node: string, maxServices?: number | null): Promise<boolean>;
  /** How many services of a namespace are in the desired state. */
  count(namespace: string): Promise<number>;
  /** A new spec (a new build, source or env): the next generation; undefined when the service is gone. */
  update(namespace: string, name: string, spec: ServiceSpec): Promise<number | undefined>;
  /** Forgets a service and its slots; false when it was not there. */
  remove(namespace: string, name: string): Promise<boolean>;
  /** The names of a namespace's services as desired (the namespace purge), by name. */
  names(namespace: string): Promise<string[]>;
  /** The service as desired, or undefined. */
  get(namespace: string, name: string): Promise<(Omit<Assignment, 'slots'> & { nodes: string[] }) | undefined>;
  /** Every service with at least one slot for `node`. */
  assigned(node: string): Promise<Assignment[]>;
  /** The instance `node` started for a slot handed over to it is ready: the next pass completes the hand-over. */
  ready(namespace: string, name: string, slot: number, node: string): Promise<void>;
  /** `node` could not run these slots (its build failed there): they move to other nodes. */
  refuse(namespace: string, name: string, slots: number[], node: string): Promise<void>;
}

interface SlotRow {
  namespace: string;
  name: string;
  slot: number;
  node: string;
  next_node: string | null;
  next_ready: boolean;
  avoid: string[];
}

export class PostgresPlacement implements PlacementStore {
  constructor(
    private readonly db: Postgres,
    /** seals each service's env (MICRO_AUTH_KEY's key: the database never sees --env values) */
    private readonly sealer: Sealer,
    private readonly options: { logger?: Logger; maxHandovers?: number } = {},
  ) {}

  private get t() {
    return { desired: `${this.db.schema}.runtime_desired`, slots: `${this.db.schema}.runtime_slots`, nodes: `${this.db.schema}.runtime_nodes` };
  }

  /** the advisory lock of this platform's scheduler: one pass at a time */
  private lockKey(): string {
    return `${this.db.schema}.runtime_scheduler`;
  }

  async schedule(prefer?: PlanOptions['prefer']): Promise<number> {
    return this.db.transaction(async (client) => {
      const got = await client.query<{ ok: boolean }>(`SELECT pg_try_advisory_xact_lock(hashtext($1)) AS ok`, [this.lockKey()]);
      if (!got.rows[0]?.ok) return 0;
      const { t } = this;
      const desired = await client.query<{ namespace: string; name: string; instances: number; generation: string }>(`SELECT namespace, name, instances, generation FROM ${t.desired}`);
      const slots = await client.query<SlotRow>(`SELECT namespace, name, slot, node, next_node, next_ready, avoid FROM ${t.slots}`);
      const live = await client.query<{ node: string }>(`SELECT node FROM ${t.nodes} WHERE lease_until > now()`);
      const changes = plan(
        desired.rows.map((d) => ({ namespace: d.namespace, name: d.name, instances: d.instances, generation: Number(d.generation) })),
        slots.rows.map(fromRow),
        live.rows.map((r) => r.node),
        { ...(this.options.maxHandovers ? { maxHandovers: this.options.maxHandovers } : {}), ...(prefer ? { prefer } : {}) },
      );
      for (const c of changes) {
        if (c.kind === 'drop') {
          await client.query(`DELETE FROM ${t.slots} WHERE namespace = $1 AND name = $2 AND slot = $3`, [c.namespace, c.name, c.slot]);
          continue;
        }
        const s = c.slot;
        await client.query(
          `INSERT INTO ${t.slots} (namespace, name, slot, node, next_node, next_ready, avoid) VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (namespace, name, slot) DO UPDATE SET node = EXCLUDED.node, next_node = EXCLUDED.next_node, next_ready = EXCLUDED.next_ready, avoid = EXCLUDED.avoid`,
          [s.namespace, s.name, s.slot, s.node, s.next, s.nextReady, s.avoid],
        );
      }
      if (changes.length > 0) this.options.logger?.debug({ changes: changes.length }, 'runtime placement changed');
      return changes.length;
    });
  }

  async create(namespace: string, name: string, spec: ServiceSpec, instances: number, node: string, maxServices: number | null = null): Promise<boolean> {
    const insert = `INSERT INTO ${this.t.desired} (namespace, name, spec, instances) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`;
    const params = [namespace, name, JSON.stringify(this.seal(namespace, name, spec)), instances];
    const inserted = await this.db.transaction(async (client) => {
      if (maxServices !== null) {
        await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`${this.db.schema}.runtime_desired ${namespace}`]);
        admitService(namespace, await this.countIn((sql, params) => client.query<{ n: string }>(sql, params), namespace), maxServices);
      }
      return (await client.query(insert, params)).rowCount === 1;
    });
    if (!inserted) return false;
    // placed at once (the caller starts its own share next); waits for a pass another node runs
    for (let i = 0; i < 50; i++) {
      await this.schedule({ node, services: new Set([`${namespace}/${name}`]) });
      const placed = await this.db.query<{ n: string }>(`SELECT count(*) AS n FROM ${this.t.slots} WHERE namespace = $1 AND name = $2`, [namespace, name]);
      if (Number(placed.rows[0]?.n) >= instances) return true;
      await new Promise((r) => setTimeout(r, 100));
    }
    return true;
  }

  async update(namespace: string, name: string, spec: ServiceSpec): Promise<number | undefined> {
    return this.db.transaction(async (client) => {
      const res = await client.query<{ generation: string }>(
        `UPDATE ${this.t.desired} SET spec = $3, generation = generation + 1, updated_at = now() WHERE namespace = $1 AND name = $2 RETURNING generation`,
        [namespace, name, JSON.stringify(this.seal(namespace, name, spec))],
      );
      const row = res.rows[0];
      if (!row) return undefined;
      // a new build: the nodes that could not run the old one may run this one
      await client.query(`UPDATE ${this.t.slots} SET avoid = '{}' WHERE namespace = $1 AND name = $2`, [namespace, name]);
      return Number(row.generation);
    });
  }

  async count(namespace: string): Promise<number> {
    return this.countIn((sql, params) => this.db.query<{ n: string }>(sql, params), namespace);
  }

  private async countIn(query: (sql: string, params: unknown[]) => Promise<{ rows: { n: string }[] }>, namespace: string): Promise<number> {
    const res = await query(`SELECT count(*) AS n FROM ${this.t.desired} WHERE namespace = $1`, [namespace]);
    return Number(res.rows[0]?.n ?? 0);
  }

  async remove(namespace: string, name: string): Promise<boolean> {
    const res = await this.db.query(`DELETE FROM ${this.t.desired} WHERE namespace = $1 AND name = $2`, [namespace, name]);
    return res.rowCount === 1;
  }

  async names(namespace: string): Promise<string[]> {
    const res = await this.db.query<{ name: string }>(`SELECT name FROM ${this.t.desired} WHERE namespace = $1 ORDER BY name`, [namespace]);
    return res.rows.map((r) => r.name);
  }

  async get(namespace: string, name: string): Promise<(Omit<Assignment, 'slots'> & { nodes: string[] }) | undefined> {
    const res = await this.db.query<{ spec: SealedSpec; instances: number; generation: string; nodes: string[] | null }>(
      `SELECT d.spec, d.instances, d.generation, (SELECT array_agg(DISTINCT s.node) FROM ${this.t.slots} s WHERE s.namespace = d.namespace AND s.name = d.name) AS nodes
       FROM ${this.t.desired} d WHERE d.namespace = $1 AND d.name = $2`,
      [namespace, name],
    );
    const row = res.rows[0];
    if (!row) return undefined;
    return { namespace, name, spec: this.open(namespace, name, row.spec), instances: row.instances, generation: Number(row.generation), nodes: row.nodes ?? [] };
  }

  async assigned(node: string): Promise<Assignment[]> {
    const res = await this.db.query<{ namespace: string; name: string; spec: SealedSpec; instances: number; generation: string; slot: number; next_node: string | null; next_ready: boolean }>(
      `SELECT d.namespace, d.name, d.spec, d.instances, d.generation, s.slot, s.next_node, s.next_ready
       FROM ${this.t.slots} s JOIN ${this.t.desired} d ON d.namespace = s.namespace AND d.name = s.name
       WHERE (s.node = $1 AND NOT ($1 = ANY(s.avoid))) OR s.next_node = $1
       ORDER BY d.namespace, d.name, s.slot`,
      [node],
    );
    const out = new Map<string, Assignment>();
    for (const r of res.rows) {
      const k = skey(r);
      let a = out.get(k);
      if (!a) {
        try {
          a = { namespace: r.namespace, name: r.name, spec: this.open(r.namespace, r.name, r.spec), instances: r.instances, generation: Number(r.generation), slots: [] };
        } catch (err) {
          this.options.logger?.error({ err, namespace: r.namespace, service: r.name }, 'a service\'s desired state does not open with this node\'s MICRO_AUTH_KEY: every node of a platform needs the same one');
          continue;
        }
        out.set(k, a);
      }
      a.slots.push({ slot: r.slot, handover: r.next_node === node, ready: r.next_ready });
    }
    return [...out.values()];
  }

  async ready(namespace: string, name: string, slot: number, node: string): Promise<void> {
    await this.db.query(`UPDATE ${this.t.slots} SET next_ready = true WHERE namespace = $1 AND name = $2 AND slot = $3 AND next_node = $4`, [namespace, name, slot, node]);
  }

  async refuse(namespace: string, name: string, slots: number[], node: string): Promise<void> {
    await this.db.query(
      `UPDATE ${this.t.slots} SET avoid = array_append(avoid, $4::text),
         next_node = CASE WHEN next_node = $4 THEN NULL ELSE next_node END, next_ready = CASE WHEN next_node = $4 THEN false ELSE next_ready END
       WHERE namespace = $1 AND name = $2 AND slot = ANY($3::int[]) AND NOT ($4 = ANY(avoid))`,
      [namespace, name, slots, node],
    );
  }

  private seal(namespace: string, name: string, spec: ServiceSpec): SealedSpec {
    const { env, ...rest } = spec;
    return { ...rest, env: this.sealer.seal(JSON.stringify(env), envAad(namespace, name)) };
  }

  private open(namespace: string, name: string, sealed: SealedSpec): ServiceSpec {
    const { env, ...rest } = sealed;
    return { ...rest, env: JSON.parse(this.sealer.open(env, envAad(namespace, name)).toString('utf8')) as Record<string, string> };
  }
}

type SealedSpec = Omit<ServiceSpec, 'env'> & { env: string };

/** a sealed env opens only as the env of the service it was sealed for */
function envAad(namespace: string, name: string): string {
  return `runtime-env:${namespace}/${name}`;
}

function fromRow(r: SlotRow): Slot {
  return { namespace: r.namespace, name: r.name, slot: r.slot, node: r.node, next: r.next_node, nextReady: r.next_ready, avoid: r.avoid };
}
