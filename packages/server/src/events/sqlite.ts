import type Database from 'better-sqlite3';
import { openDatabase } from '../sqlite.js';
import { errors } from '@micro/sdk';
import { EVENTS_ERROR_ID, EventsEngine, type EventStorage, type EventsEngineOptions, type GroupRecord, type InflightRecord, type RetentionPolicy, type StoredEvent, type TopicRecord } from '@micro/sdk';

/**
 * Events in SQLite: the engine of micro server (<home>/data/events.db).
 *
 * - WAL with synchronous = FULL: a publish, an ack or a nack is committed and flushed
 *   before it is answered, so a kill -9 right after loses nothing.
 * - Group commit: what the engine writes in one turn of the event loop (every publish,
 *   ack and hand-out that arrived together) is one transaction, committed on the next
 *   turn, so N concurrent publishes cost one fsync, not N.
 * - Hand-outs are written in the same transactions but answered before their commit: a
 *   delivery lost in a crash is handed out again as a first attempt, which is what
 *   at-least-once allows. In-flight rows that survive a crash are due again at once.
 * - The offsets of the brief's schema are the `seq` columns (OFFSET is an SQL word).
 */

export const EVENTS_SCHEMA_VERSION = 2;

export interface SqliteEventsOptions extends EventsEngineOptions {
  /** the database file, e.g. <home>/data/events.db */
  path: string;
}

export class SqliteEvents extends EventsEngine {
  readonly path: string;

  constructor(options: SqliteEventsOptions) {
    const { path, ...engine } = options;
    super('sqlite', new SqliteStorage(path), engine);
    this.path = path;
  }
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS topics (
  namespace TEXT NOT NULL,
  topic TEXT NOT NULL,
  last_seq INTEGER NOT NULL DEFAULT 0,
  first_seq INTEGER NOT NULL DEFAULT 1,
  count INTEGER NOT NULL DEFAULT 0,
  bytes INTEGER NOT NULL DEFAULT 0,
  last_ts INTEGER NOT NULL DEFAULT 0,
  max_age INTEGER,
  max_events INTEGER,
  max_bytes INTEGER,
  PRIMARY KEY (namespace, topic)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
  namespace TEXT NOT NULL,
  topic TEXT NOT NULL,
  seq INTEGER NOT NULL,
  id TEXT NOT NULL,
  ts INTEGER NOT NULL,
  payload TEXT NOT NULL,
  metadata TEXT,
  size INTEGER NOT NULL,
  PRIMARY KEY (namespace, topic, seq)
);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_id ON events (namespace, topic, id);
CREATE INDEX IF NOT EXISTS events_by_ts ON events (namespace, topic, ts, seq);
CREATE TABLE IF NOT EXISTS consumer_groups (
  namespace TEXT NOT NULL,
  topic TEXT NOT NULL,
  grp TEXT NOT NULL,
  committed INTEGER NOT NULL,
  cursor INTEGER NOT NULL,
  PRIMARY KEY (namespace, topic, grp)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inflight (
  namespace TEXT NOT NULL,
  topic TEXT NOT NULL,
  grp TEXT NOT NULL,
  seq INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  deadline INTEGER NOT NULL,
  held INTEGER NOT NULL,
  last_error TEXT,
  PRIMARY KEY (namespace, topic, grp, seq)
) WITHOUT ROWID;
`;

/**
 * Version 2: the bytes each namespace holds (its eventsBytes usage), kept by triggers on
 * `events`, so every insert and delete (publish, dead letter, sweep, purge) changes the
 * count in its own transaction and no path can forget it. Filled from `topics` once.
 */
const NAMESPACE_USAGE = `
CREATE TABLE IF NOT EXISTS namespace_usage (
  namespace TEXT PRIMARY KEY,
  bytes INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS events_usage_insert AFTER INSERT ON events BEGIN
  INSERT INTO namespace_usage (namespace, bytes) VALUES (NEW.namespace, NEW.size)
    ON CONFLICT (namespace) DO UPDATE SET bytes = bytes + NEW.size;
END;
CREATE TRIGGER IF NOT EXISTS events_usage_delete AFTER DELETE ON events BEGIN
  UPDATE namespace_usage SET bytes = bytes - OLD.size WHERE namespace = OLD.namespace;
END;
INSERT OR REPLACE INTO namespace_usage (namespace, bytes) SELECT namespace, coalesce(sum(size), 0) FROM events GROUP BY namespace;
`;

function migrate(db: Database.Database, path: string): void {
  db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID');
  const row = db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'schema_version'").get();
  const version = row ? Number(row.value) : 0;
  if (version > EVENTS_SCHEMA_VERSION) {
    throw errors.ServiceUnavailable(EVENTS_ERROR_ID, `${path} has schema version ${version}, newer than this micro knows (${EVENTS_SCHEMA_VERSION}): upgrade micro`);
  }
  if (version < EVENTS_SCHEMA_VERSION) {
    db.transaction(() => {
      if (version < 1) db.exec(SCHEMA);
      db.exec(NAMESPACE_USAGE);
      db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)").run(String(EVENTS_SCHEMA_VERSION));
    })();
  }
}

interface TopicRow {
  namespace: string;
  topic: string;
  last_seq: number;
  first_seq: number;
  count: number;
  bytes: number;
  last_ts: number;
  max_age: number | null;
  max_events: number | null;
  max_bytes: number | null;
}

interface EventRow {
  seq: number;
  id: string;
  ts: number;
  payload: string;
  metadata: string | null;
  size: number;
}

interface InflightRow {
  seq: number;
  attempts: number;
  deadline: number;
  held: number;
  last_error: string | null;
}

function topicRecord(r: TopicRow): TopicRecord {
  const retention: RetentionPolicy = {};
  if (r.max_age !== null) retention.maxAge = r.max_age;
  if (r.max_events !== null) retention.maxEvents = r.max_events;
  if (r.max_bytes !== null) retention.maxBytes = r.max_bytes;
  return { name: r.topic, last: r.last_seq, first: r.first_seq, count: r.count, bytes: r.bytes, lastTs: r.last_ts, retention };
}

function storedEvent(r: EventRow): StoredEvent {
  return { offset: r.seq, id: r.id, ts: r.ts, payload: r.payload, metadata: r.metadata ?? undefined };
}

type Key = [namespace: string, topic: string];

/** Every statement, prepared once. */
function prepare(db: Database.Database) {
  return {
    begin: db.prepare('BEGIN IMMEDIATE'),
    commit: db.prepare('COMMIT'),
    rollback: db.prepare('ROLLBACK'),
    topic: db.prepare<Key, TopicRow>('SELECT * FROM topics WHERE namespace = ? AND topic = ?'),
    topics: db.prepare<[string], TopicRow>('SELECT * FROM topics WHERE namespace = ? ORDER BY topic'),
    allTopics: db.prepare<[], TopicRow>('SELECT * FROM topics'),
    countTopics: db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM topics WHERE namespace = ?'),
    namespaceBytes: db.prepare<[string], { bytes: number }>('SELECT bytes FROM namespace_usage WHERE namespace = ?'),
    createTopic: db.prepare<Key>('INSERT OR IGNORE INTO topics (namespace, topic) VALUES (?, ?)'),
    setRetention: db.prepare<[number | null, number | null, number | null, string, string]>('UPDATE topics SET max_age = ?, max_events = ?, max_bytes = ? WHERE namespace = ? AND topic = ?'),
    insertEvent: db.prepare<[string, string, number, string, number, string, string | null, number]>(
      'INSERT INTO events (namespace, topic, seq, id, ts, payload, metadata, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    appended: db.prepare<[number, number, number, string, string]>('UPDATE topics SET last_seq = ?, count = count + 1, bytes = bytes + ?, last_ts = ? WHERE namespace = ? AND topic = ?'),
    event: db.prepare<[string, string, number], EventRow>('SELECT seq, id, ts, payload, metadata, size FROM events WHERE namespace = ? AND topic = ? AND seq = ?'),
    eventById: db.prepare<[string, string, string], EventRow>('SELECT seq, id, ts, payload, metadata, size FROM events WHERE namespace = ? AND topic = ? AND id = ?'),
    events: db.prepare<[string, string, number, number, number], EventRow>(
      'SELECT seq, id, ts, payload, metadata, size FROM events WHERE namespace = ? AND topic = ? AND seq >= ? AND seq <= ? ORDER BY seq LIMIT ?',
    ),
    offsetAt: db.prepare<[string, string, number], { seq: number }>('SELECT seq FROM events WHERE namespace = ? AND topic = ? AND ts >= ? ORDER BY ts, seq LIMIT 1'),
    oldest: db.prepare<[string, string], { seq: number; size: number }>('SELECT seq, size FROM events WHERE namespace = ? AND topic = ? ORDER BY seq'),
    removedBefore: db.prepare<[string, string, number], { n: number; bytes: number }>(
      'SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM events WHERE namespace = ? AND topic = ? AND seq < ?',
    ),
    deleteBefore: db.prepare<[string, string, number]>('DELETE FROM events WHERE namespace = ? AND topic = ? AND seq < ?'),
    trimmed: db.prepare<[number, number, number, string, string]>('UPDATE topics SET first_seq = ?, count = count - ?, bytes = bytes - ? WHERE namespace = ? AND topic = ?'),
    deleteInflightBefore: db.prepare<[string, string, number]>('DELETE FROM inflight WHERE namespace = ? AND topic = ? AND seq < ?'),
    raiseGroups: db.prepare<[number, number, string, string]>('UPDATE consumer_groups SET committed = max(committed, ?), cursor = max(cursor, ?) WHERE namespace = ? AND topic = ?'),
    group: db.prepare<[string, string, string], { grp: string; committed: number; cursor: number }>('SELECT grp, committed, cursor FROM consumer_groups WHERE namespace = ? AND topic = ? AND grp = ?'),
    groups: db.prepare<Key, { grp: string; committed: number; cursor: number; inflight: number }>(
      `SELECT g.grp, g.committed, g.cursor,
         (SELECT count(*) FROM inflight i WHERE i.namespace = g.namespace AND i.topic = g.topic AND i.grp = g.grp) AS inflight
       FROM consumer_groups g WHERE g.namespace = ? AND g.topic = ? ORDER BY g.grp`,
    ),
    countGroups: db.prepare<Key, { n: number }>('SELECT count(*) AS n FROM consumer_groups WHERE namespace = ? AND topic = ?'),
    putGroup: db.prepare<[string, string, string, number, number]>(
      'INSERT INTO consumer_groups (namespace, topic, grp, committed, cursor) VALUES (?, ?, ?, ?, ?) ON CONFLICT (namespace, topic, grp) DO UPDATE SET committed = excluded.committed, cursor = excluded.cursor',
    ),
    deleteGroup: db.prepare<[string, string, string]>('DELETE FROM consumer_groups WHERE namespace = ? AND topic = ? AND grp = ?'),
    deleteGroupInflight: db.prepare<[string, string, string]>('DELETE FROM inflight WHERE namespace = ? AND topic = ? AND grp = ?'),
    inflight: db.prepare<[string, string, string], InflightRow>('SELECT seq, attempts, deadline, held, last_error FROM inflight WHERE namespace = ? AND topic = ? AND grp = ? ORDER BY seq'),
    putInflight: db.prepare<[string, string, string, number, number, number, number, string | null]>(
      `INSERT INTO inflight (namespace, topic, grp, seq, attempts, deadline, held, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (namespace, topic, grp, seq) DO UPDATE SET attempts = excluded.attempts, deadline = excluded.deadline, held = excluded.held, last_error = excluded.last_error`,
    ),
    deleteInflight: db.prepare<[string, string, string, number]>('DELETE FROM inflight WHERE namespace = ? AND topic = ? AND grp = ? AND seq = ?'),
  };
}

type Statements = ReturnType<typeof prepare>;

/** EventStorage in one SQLite database, written in group-committed transactions. */
export class SqliteStorage implements EventStorage {
  private readonly db: Database.Database;
  private readonly s: Statements;
  /** the open transaction, committed on the next turn of the event loop */
  private batch: { promise: Promise<void>; resolve: () => void; reject: (err: unknown) => void } | undefined;

  constructor(readonly path: string) {
    this.db = openDatabase(path);
    try {
      migrate(this.db, path);
      this.s = prepare(this.db);
    } catch (err) {
      this.db.close();
      throw err;
    }
  }

  // ---- transactions ---------------------------------------------------------------------

  /** Opens the batch's transaction before a write; it commits on the next turn. */
  private write(): void {
    if (this.batch) return;
    this.s.begin.run();
    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // nobody may be waiting (hand-outs): an unobserved failure is reported by the engine
    promise.catch(() => undefined);
    this.batch = { promise, resolve, reject };
    setImmediate(() => this.flush());
  }

  private flush(): void {
    const batch = this.batch;
    if (!batch) return;
    this.batch = undefined;
    try {
      this.s.commit.run();
      batch.resolve();
    } catch (err) {
      try {
        if (this.db.inTransaction) this.s.rollback.run();
      } catch {
        // the rollback reports nothing more useful than the commit did
      }
      batch.reject(err);
    }
  }

  commit(): Promise<void> {
    return this.batch ? this.batch.promise : Promise.resolve();
  }

  close(): void {
    this.flush();
    if (this.db.open) this.db.close();
  }

  deleteNamespace(namespace: string): void {
    this.write();
    for (const table of ['inflight', 'consumer_groups', 'events', 'topics', 'namespace_usage']) this.db.prepare(`DELETE FROM ${table} WHERE namespace = ?`).run(namespace);
  }

  // ---- topics ---------------------------------------------------------------------------

  topic(namespace: string, topic: string): TopicRecord | undefined {
    const r = this.s.topic.get(namespace, topic);
    return r && topicRecord(r);
  }

  topics(namespace: string): TopicRecord[] {
    return this.s.topics.all(namespace).map(topicRecord);
  }

  allTopics(): Array<{ namespace: string; topic: TopicRecord }> {
    return this.s.allTopics.all().map((r) => ({ namespace: r.namespace, topic: topicRecord(r) }));
  }

  countTopics(namespace: string): number {
    return (this.s.countTopics.get(namespace) as { n: number }).n;
  }

  namespaceBytes(namespace: string): number {
    return this.s.namespaceBytes.get(namespace)?.bytes ?? 0;
  }

  createTopic(namespace: string, topic: string): void {
    this.write();
    this.s.createTopic.run(namespace, topic);
  }

  setRetention(namespace: string, topic: string, policy: RetentionPolicy): void {
    this.write();
    this.s.setRetention.run(policy.maxAge ?? null, policy.maxEvents ?? null, policy.maxBytes ?? null, namespace, topic);
  }

  // ---- events ---------------------------------------------------------------------------

  append(namespace: string, topic: string, event: StoredEvent, size: number): void {
    this.write();
    this.s.insertEvent.run(namespace, topic, event.offset, event.id, event.ts, event.payload, event.metadata ?? null, size);
    this.s.appended.run(event.offset, size, event.ts, namespace, topic);
  }

  event(namespace: string, topic: string, offset: number): StoredEvent | undefined {
    const r = this.s.event.get(namespace, topic, offset);
    return r && storedEvent(r);
  }

  eventById(namespace: string, topic: string, id: string): StoredEvent | undefined {
    const r = this.s.eventById.get(namespace, topic, id);
    return r && storedEvent(r);
  }

  events(namespace: string, topic: string, from: number, until: number, limit: number, maxBytes: number): StoredEvent[] {
    const out: StoredEvent[] = [];
    let bytes = 0;
    for (const r of this.s.events.iterate(namespace, topic, from, until, limit)) {
      if (out.length > 0 && bytes + r.size > maxBytes) break;
      bytes += r.size;
      out.push(storedEvent(r));
    }
    return out;
  }

  offsetAt(namespace: string, topic: string, time: number): number | undefined {
    return this.s.offsetAt.get(namespace, topic, time)?.seq;
  }

  offsetKeepingBytes(namespace: string, topic: string, maxBytes: number): number {
    const t = this.topic(namespace, topic);
    if (!t) return 1;
    let excess = t.bytes - maxBytes;
    if (excess <= 0) return t.first;
    // walk from the oldest until enough is dropped: only the events that go are read
    let before = t.first;
    for (const r of this.s.oldest.iterate(namespace, topic)) {
      if (excess <= 0) break;
      excess -= r.size;
      before = r.seq + 1;
    }
    return before;
  }

  trimBefore(namespace: string, topic: string, offset: number): void {
    const t = this.topic(namespace, topic);
    if (!t || offset <= t.first) return;
    this.write();
    const removed = this.s.removedBefore.get(namespace, topic, offset) as { n: number; bytes: number };
    this.s.deleteBefore.run(namespace, topic, offset);
    this.s.trimmed.run(offset, removed.n, removed.bytes, namespace, topic);
    this.s.deleteInflightBefore.run(namespace, topic, offset);
    this.s.raiseGroups.run(offset - 1, offset - 1, namespace, topic);
  }

  // ---- groups ---------------------------------------------------------------------------

  group(namespace: string, topic: string, group: string): GroupRecord | undefined {
    const r = this.s.group.get(namespace, topic, group);
    return r && { name: r.grp, committed: r.committed, cursor: r.cursor };
  }

  groups(namespace: string, topic: string): Array<GroupRecord & { inflight: number }> {
    return this.s.groups.all(namespace, topic).map((r) => ({ name: r.grp, committed: r.committed, cursor: r.cursor, inflight: r.inflight }));
  }

  countGroups(namespace: string, topic: string): number {
    return (this.s.countGroups.get(namespace, topic) as { n: number }).n;
  }

  putGroup(namespace: string, topic: string, group: GroupRecord): void {
    this.write();
    this.s.putGroup.run(namespace, topic, group.name, group.committed, group.cursor);
  }

  deleteGroup(namespace: string, topic: string, group: string): void {
    this.write();
    this.s.deleteGroupInflight.run(namespace, topic, group);
    this.s.deleteGroup.run(namespace, topic, group);
  }

  inflight(namespace: string, topic: string, group: string): InflightRecord[] {
    return this.s.inflight.all(namespace, topic, group).map((r) => ({
      offset: r.seq,
      attempts: r.attempts,
      deadline: r.deadline,
      held: r.held === 1,
      lastError: r.last_error ?? undefined,
    }));
  }

  putInflight(namespace: string, topic: string, group: string, record: InflightRecord): void {
    this.write();
    this.s.putInflight.run(namespace, topic, group, record.offset, record.attempts, record.deadline, record.held ? 1 : 0, record.lastError ?? null);
  }

  deleteInflight(namespace: string, topic: string, group: string, offset: number): void {
    this.write();
    this.s.deleteInflight.run(namespace, topic, group, offset);
  }
}
