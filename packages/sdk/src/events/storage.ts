import type { RetentionPolicy } from './events.js';

/*
 * What an embedded events engine stores, behind a small synchronous interface: the
 * memory engine keeps it in maps, the SQLite engine of micro server in tables. The
 * logic (offsets, groups, deliveries, retries, retention) is EventsEngine's alone, so
 * both behave the same.
 *
 * Writes take effect at once for later reads of the same storage; `commit()` resolves
 * when everything written so far is durable (SQLite commits what was written in one
 * turn of the event loop as one transaction). The engine answers a publish or an ack
 * only after that.
 */

export interface StoredEvent {
  offset: number;
  id: string;
  /** epoch ms */
  ts: number;
  /** the payload as JSON text */
  payload: string;
  /** the metadata as JSON text with sorted keys, or undefined */
  metadata: string | undefined;
}

export interface TopicRecord {
  name: string;
  /** the offset of the newest event ever published (0 for none) */
  last: number;
  /** the oldest offset held (last + 1 when none) */
  first: number;
  count: number;
  /** payload and metadata bytes of the events held */
  bytes: number;
  /** when the newest event was stored (0 for none) */
  lastTs: number;
  /** the topic's own retention; {} for the engine's defaults */
  retention: RetentionPolicy;
}

export interface GroupRecord {
  name: string;
  /** every offset up to here is done */
  committed: number;
  /** the highest offset handed out at least once */
  cursor: number;
}

export interface InflightRecord {
  offset: number;
  /** deliveries so far */
  attempts: number;
  /** epoch ms: when a held delivery expires, or when a returned one is due again */
  deadline: number;
  /** handed to a consumer (of the process that wrote it) and not settled */
  held: boolean;
  lastError: string | undefined;
}

export interface EventStorage {
  topic(namespace: string, topic: string): TopicRecord | undefined;
  /** the namespace's topics, by name */
  topics(namespace: string): TopicRecord[];
  /** every topic of every namespace (for the retention sweep) */
  allTopics(): Array<{ namespace: string; topic: TopicRecord }>;
  countTopics(namespace: string): number;
  /** payload and metadata bytes of every event the namespace holds (its topics' `bytes` summed) */
  namespaceBytes(namespace: string): number;
  createTopic(namespace: string, topic: string): void;
  setRetention(namespace: string, topic: string, policy: RetentionPolicy): void;

  /** adds the event as the topic's newest (offset = last + 1, checked by the engine) */
  append(namespace: string, topic: string, event: StoredEvent, size: number): void;
  event(namespace: string, topic: string, offset: number): StoredEvent | undefined;
  eventById(namespace: string, topic: string, id: string): StoredEvent | undefined;
  /**
   * Events from `from` to `until`, oldest first: at most `limit`, and no more once their
   * sizes pass `maxBytes` (the first one always comes).
   */
  events(namespace: string, topic: string, from: number, until: number, limit: number, maxBytes: number): StoredEvent[];
  /** the first offset stored at or after `time`, or undefined */
  offsetAt(namespace: string, topic: string, time: number): number | undefined;
  /** the lowest offset from which the events take at most `maxBytes` */
  offsetKeepingBytes(namespace: string, topic: string, maxBytes: number): number;
  /**
   * Removes the events before `offset`, the in-flight records of every group below it,
   * and moves group positions that were below it up to `offset - 1`.
   */
  trimBefore(namespace: string, topic: string, offset: number): void;

  group(namespace: string, topic: string, group: string): GroupRecord | undefined;
  groups(namespace: string, topic: string): Array<GroupRecord & { inflight: number }>;
  countGroups(namespace: string, topic: string): number;
  putGroup(namespace: string, topic: string, group: GroupRecord): void;
  /** removes the group and its in-flight records */
  deleteGroup(namespace: string, topic: string, group: string): void;
  /** the group's in-flight records, by offset */
  inflight(namespace: string, topic: string, group: string): InflightRecord[];
  putInflight(namespace: string, topic: string, group: string, record: InflightRecord): void;
  deleteInflight(namespace: string, topic: string, group: string, offset: number): void;

  /** removes every topic of the namespace with its events, groups and in-flight records */
  deleteNamespace(namespace: string): void;

  /** resolves when every write made so far is durable; rejects when that failed */
  commit(): Promise<void>;
  close(): void;
}
