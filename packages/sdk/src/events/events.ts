/**
 * Events: durable streams. Unlike the broker (fire and forget), every event is stored
 * before `publish` returns, gets an offset in its topic, and stays readable until the
 * topic's retention removes it. Consumers read through groups:
 *
 * - every group sees every event of the topic; the members of one group share them (an
 *   event is handed to one member at a time);
 * - a member acknowledges (`ack`) each delivery, or gives it back (`nack`, with a delay);
 *   a delivery neither acked nor nacked within the ack wait is handed out again;
 * - after `maxRetries` failed attempts the event goes to a dead-letter topic;
 * - delivery is at least once; a group hands out events in offset order (see Consumer).
 *
 * Every record belongs to one namespace (default `micro`).
 */

export const EVENTS_ERROR_ID = 'micro.events';

/** One event of a topic. */
export interface Event {
  /** unique in its topic; a publish that gives the id of a stored event is a no-op */
  id: string;
  topic: string;
  /** 1 for the first event of the topic, then 2, 3, ...: never reused, also after retention */
  offset: number;
  /** epoch ms when it was stored; never decreases within a topic */
  timestamp: number;
  /** any JSON value, at most 1 MiB as JSON and 256 levels deep */
  payload: unknown;
  metadata?: Record<string, string>;
}

export interface NamespaceOptions {
  namespace?: string;
}

export interface PublishOptions extends NamespaceOptions {
  metadata?: Record<string, string>;
  /**
   * De-duplication id (default: a random one). Publishing again with the id of an event
   * the topic still holds returns that event instead of storing a new one, so a publish
   * retried after a lost answer is stored once; the same id with another payload or
   * metadata is a 409.
   */
  id?: string;
}

/** Where a new group starts: its first consumer's choice, ignored once the group exists. */
export type StartOffset = 'earliest' | 'latest' | { time: number | Date } | { offset: number };

export interface ConsumeOptions extends NamespaceOptions {
  /** the consumer group: members of a group share the events, every group sees all of them */
  group: string;
  /** where a new group starts (default 'latest': events published from now on) */
  offset?: StartOffset;
  /** ms a delivery may stay unacknowledged before it is handed out again (default 30,000) */
  ackWait?: number;
  /** redeliveries after the first attempt before the event goes to the dead-letter topic (default 5) */
  maxRetries?: number;
  /** where events go after maxRetries (default `<topic>.dead`) */
  deadLetter?: string;
  /** deliveries this consumer may hold unacknowledged at once (default 100) */
  maxInFlight?: number;
}

/** One delivery of an event to one consumer; settle it with `ack` or `nack`. */
export interface Delivery {
  /** names this delivery (event and attempt) within its consumer */
  readonly id: string;
  readonly event: Event;
  /** 1 for the first delivery of the event to this group, 2 for the first redelivery, ... */
  readonly attempt: number;
  /** epoch ms when the ack wait expires and the event is handed out again */
  readonly deadline: number;
  /**
   * The event is done for this group. Resolves once that is durable. Fails with a 409
   * when this delivery was already settled, a 410 when its ack wait expired (the event
   * is handed out again) or its consumer was closed.
   */
  ack(): Promise<void>;
  /**
   * The event failed: hand it out again after `delay` ms (default 0), or send it to the
   * dead-letter topic when this was the last attempt. `reason` is kept for the dead letter.
   */
  nack(delay?: number, reason?: string): Promise<void>;
}

/**
 * The deliveries of one member of a group, in the order the group hands them out:
 *
 * - events are first handed out in offset order, and a redelivery (nack, expired ack
 *   wait, a member that went away) is handed out before any event not yet delivered;
 * - a member holds at most `maxInFlight` unsettled deliveries, and gets a new one only
 *   when it asks for it (`next()`, or the next turn of a for-await loop): backpressure;
 * - so with one member and `maxInFlight: 1` the group processes the topic strictly in
 *   order, one event at a time. With more in flight (or more members) events are
 *   processed in parallel, and a redelivered event comes after later ones were handed out.
 *
 * Breaking out of a for-await loop, or `close()`, ends the consumer: its unsettled
 * deliveries go back to the group at once (they count as failed attempts).
 */
export interface Consumer extends AsyncIterableIterator<Delivery> {
  readonly topic: string;
  readonly group: string;
  close(): Promise<void>;
}

export interface ReadOptions extends NamespaceOptions {
  /** the first offset to read (default: the oldest event the topic holds) */
  offset?: number;
  /** or: the first event stored at or after this time (epoch ms or a Date) */
  from?: number | Date;
  /** at most this many events (default 100, at most 1000); a page also stops at about 2 MiB */
  limit?: number;
}

export interface ReadResult {
  events: Event[];
  /** the offset to read from for the next page, when there are more events */
  next?: number;
  /** the oldest offset the topic holds (last + 1 when it holds none) */
  first: number;
  /** the offset of the newest event ever published (0 for none) */
  last: number;
}

/**
 * How long a topic keeps its events. A field left out takes the engine's default; 0
 * means no limit. The oldest events go first, by a periodic sweep.
 */
export interface RetentionPolicy {
  /** ms an event is kept after it was published */
  maxAge?: number;
  /** the newest this many events are kept */
  maxEvents?: number;
  /** events are kept while their payloads and metadata take at most this many bytes */
  maxBytes?: number;
}

export interface TopicInfo {
  name: string;
  /** events the topic holds now */
  count: number;
  /** bytes of their payloads and metadata */
  bytes: number;
  first: number;
  last: number;
  /** when the newest event was published (epoch ms) */
  lastTimestamp?: number;
  /** the topic's own retention (fields not set take the engine's default) */
  retention?: RetentionPolicy;
}

export interface GroupInfo {
  name: string;
  /** every event up to this offset is done for the group */
  committed: number;
  /** events after `committed` not done yet (delivered or not) */
  pending: number;
  /** events handed out and not settled, or waiting to be handed out again */
  inflight: number;
  /** consumers connected now */
  members: number;
}

export interface Events {
  readonly name: string;
  /** Stores an event; resolves with it once it is durable. */
  publish(topic: string, payload: unknown, options?: PublishOptions): Promise<Event>;
  /**
   * Joins a group of consumers of the topic; resolves when the consumer is in place
   * (with `offset: 'latest'`, every event published after that reaches the group). The
   * topic need not exist yet.
   */
  consume(topic: string, options: ConsumeOptions): Promise<Consumer>;
  /** A page of the topic's history, oldest first. A 404 for a topic that does not exist. */
  read(topic: string, options?: ReadOptions): Promise<ReadResult>;
  /** Every topic of the namespace, by name. */
  topics(options?: NamespaceOptions): Promise<TopicInfo[]>;
  /** The groups of a topic with their positions. */
  groups(topic: string, options?: NamespaceOptions): Promise<GroupInfo[]>;
  /** Forgets a group (its position and in-flight deliveries); a 409 while it has consumers. */
  deleteGroup(topic: string, group: string, options?: NamespaceOptions): Promise<void>;
  /** Sets the topic's own retention (replacing what it had); {} returns it to the defaults. */
  setRetention(topic: string, policy: RetentionPolicy, options?: NamespaceOptions): Promise<TopicInfo>;
  close?(): Promise<void>;
}

/** Bounds on every input, the same for every engine. */
export const LIMITS = Object.freeze({
  /** topic names, as for the broker */
  topic: 256,
  group: 255,
  namespace: 255,
  id: 255,
  /** the payload as JSON (UTF-8 bytes) */
  payloadBytes: 1024 * 1024,
  /** arrays and objects in the payload nest at most this deep */
  payloadDepth: 256,
  metadataEntries: 64,
  metadataKey: 255,
  metadataValue: 4096,
  reason: 1024,
  readLimit: 1000,
  /** a page of read stops when it passes this many bytes of events (always one event at least) */
  pageBytes: 2 * 1024 * 1024,
  maxInFlight: 1000,
  maxRetries: 1000,
  /** ack wait and nack delay: a day */
  ackWaitMin: 10,
  ackWaitMax: 24 * 3600 * 1000,
  nackDelayMax: 24 * 3600 * 1000,
  /** a namespace's topics, a topic's groups, a group's consumers */
  topicsPerNamespace: 1000,
  groupsPerTopic: 1000,
  membersPerGroup: 1000,
  /** retention bounds */
  maxAge: 10 * 365 * 24 * 3600 * 1000,
  maxEvents: 1e12,
  maxBytes: 1e15,
});

export const DEFAULTS = Object.freeze({
  ackWait: 30_000,
  maxRetries: 5,
  maxInFlight: 100,
  readLimit: 100,
  /** the engine-wide retention when none is configured: a week, like Kafka's default */
  retention: { maxAge: 7 * 24 * 3600 * 1000, maxEvents: 0, maxBytes: 0 } satisfies Required<RetentionPolicy>,
  /** ms between retention sweeps */
  sweepInterval: 60_000,
});

/** The dead-letter topic of a topic unless the consumer names another. */
export function deadLetterTopic(topic: string): string {
  return `${topic}.dead`;
}

/** Metadata keys of a dead letter: where the event came from and why it failed. */
export const DEAD_LETTER = Object.freeze({
  topic: 'dead.topic',
  offset: 'dead.offset',
  id: 'dead.id',
  group: 'dead.group',
  attempts: 'dead.attempts',
  error: 'dead.error',
});
