import { createHash } from 'node:crypto';
import { headers as natsHeaders, type Msg, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  RetentionPolicy as StreamRetention,
  StorageType,
  jetstreamManager,
  type ConsumerConfig,
  type ConsumerInfo,
  type JetStreamManager,
  type StreamConfig,
  type StreamInfo,
  type StreamState,
} from '@nats-io/jetstream';
import {
  DEAD_LETTER,
  EVENTS_DEFAULTS,
  EVENTS_ERROR_ID,
  EVENTS_LIMITS,
  MicroError,
  checkPrefix,
  errors,
  eventChecks,
  redactUrl,
  rootLogger,
  type EngineConsumer,
  type Event,
  type EventPublishOptions,
  type EventReadOptions,
  type EventReadResult,
  type EventsNamespaceOptions,
  type EventsQuota,
  type ConsumeOptions,
  type GroupInfo,
  type Logger,
  type Profile,
  type RetentionPolicy,
  type TopicInfo,
} from '@micro/sdk';
import { acquireNats, checkConnected, encodeKeySegment, natsError, trackConnection } from '@micro/sdk/nats';
import type { CoreServiceFactory } from '../core.js';
import { onSharedNats } from '../shared-nats.js';
import { eventsHandlers, type ServedEvents } from './handlers.js';
import { eventsCoreService, retentionFromEnv } from './index.js';
import { eventsQuota } from './quota.js';
import { JetStreamConsumer, type ConsumerHost, type Held } from './jetstream-consumer.js';
import { eventsService } from '@micro/sdk';

/*
 * Events on NATS JetStream: what several micro server nodes share in the nats profile.
 * The same interface, checks and errors as the SQLite engine; README.md says what differs.
 *
 * - One stream per topic, `<prefix>_events_<hash of namespace and topic>`, on the subject
 *   `<prefix>.events.<namespace, encoded>.<topic>`. A topic's offsets are its stream's
 *   sequences (1, 2, 3 ..., never reused). The stream's description holds the namespace,
 *   the topic and the topic's own retention.
 * - An event is one message: the payload's JSON as data; headers Nats-Msg-Id (`e:<id>`,
 *   de-duplication within the stream's duplicate window), Micro-Time (epoch ms from the
 *   publishing node's clock, never decreasing within a node) and Micro-Metadata (JSON).
 * - Publish answers once JetStream acknowledged the message (stored by the stream).
 * - A group is a durable pull consumer with explicit acks; its members pull when their
 *   user asks, and ahead of a user that settles and reads on (never past maxInFlight,
 *   which each member keeps; see jetstream-consumer.ts). Ack waits are timed here; the
 *   consumer's own ack_wait (longer by `ackGrace`) only hands out again what a node that
 *   died held. Dead letters are published here, on the last failed attempt.
 * - Retention is the stream's limits: maxEvents = max_msgs, maxBytes = max_bytes,
 *   maxAge = max_age; JetStream applies them itself.
 */

/** JetStream (2.9) refuses a max_age below 100 ms. */
export const MIN_MAX_AGE = 100;
const DEFAULT_DUPLICATE_WINDOW = 2 * 60_000;
const DEFAULT_ACK_GRACE = 2_000;
const DEFAULT_API_TIMEOUT = 5_000;
/** a group's members each keep maxInFlight; the consumer itself never stops them */
const MAX_ACK_PENDING = EVENTS_LIMITS.membersPerGroup * EVENTS_LIMITS.maxInFlight;
/** pull requests a consumer keeps waiting (a member has one or a few) */
const MAX_WAITING = 4 * EVENTS_LIMITS.membersPerGroup;
const H_MSG_ID = 'Nats-Msg-Id';
const H_TIME = 'Micro-Time';
const H_METADATA = 'Micro-Metadata';
/** what an API error says when a stream or consumer is not there */
const STREAM_NOT_FOUND = 10059;
const CONSUMER_NOT_FOUND = 10014;
const STREAM_NAME_IN_USE = 10058;

const { bad, shown } = eventChecks;

export interface JetStreamEventsOptions {
  /** what every stream and subject starts with (default `micro`, see MICRO_PREFIX) */
  prefix?: string;
  /** engine-wide retention of new topics; fields left out take the defaults (7 days), 0 = no limit */
  retention?: RetentionPolicy;
  /** ms a publish id is remembered for de-duplication (default 2 minutes; at most a topic's maxAge) */
  duplicateWindow?: number;
  /** replicas of each stream (default 1; 3 in a NATS cluster for durability across machines) */
  replicas?: number;
  /** 'file' (default) or 'memory' (lost when nats-server restarts) */
  storage?: 'file' | 'memory';
  /** ms the consumer's ack_wait in JetStream exceeds a member's ackWait (default 2,000): a delivery held by a node that died is handed out again after it */
  ackGrace?: number;
  /** ms a JetStream API call, publish or ack may take (default 5,000) */
  apiTimeout?: number;
  /** per-namespace limits (micro server's eventsBytes and eventRetention), applied to each topic's stream; none: unlimited */
  quota?: EventsQuota;
  logger?: Logger;
}

/** A namespace's limits as a stream has them applied (null: none). */
export interface StreamQuota {
  bytes: number | null;
  /** ms */
  maxAge: number | null;
}

/** One topic's stream, as this node knows it. */
export interface TopicStream {
  namespace: string;
  topic: string;
  /** the stream's name */
  name: string;
  subject: string;
  /** the topic's own retention ({} for the engine's) */
  retention: RetentionPolicy;
  /** the namespace's limits the stream was given (none without quotas) */
  quota?: StreamQuota;
}

/** An event as it is stored: the payload as JSON text, the metadata as sorted JSON text. */
export interface StoredEvent {
  offset: number;
  id: string;
  ts: number;
  payload: string;
  metadata: string | undefined;
}

interface StreamMeta {
  micro: 'events';
  namespace: string;
  topic: string;
  retention?: RetentionPolicy;
}

const nanos = (ms: number) => ms * 1_000_000;
const decoder = new TextDecoder();

function apiCode(err: unknown): number | undefined {
  const e = err as { code?: unknown; api_error?: { err_code?: number } } | undefined;
  return e?.api_error?.err_code ?? (typeof e?.code === 'number' ? e.code : undefined);
}

function parseMeta(description: string | undefined): StreamMeta | undefined {
  if (!description) return undefined;
  try {
    const meta = JSON.parse(description) as Partial<StreamMeta>;
    if (meta.micro !== 'events' || typeof meta.namespace !== 'string' || typeof meta.topic !== 'string') return undefined;
    return { micro: 'events', namespace: meta.namespace, topic: meta.topic, retention: eventChecks.checkRetention(meta.retention ?? {}) };
  } catch {
    return undefined;
  }
}

/** The durable name of a group: groups hold letters, digits, `_`, `.` and `-`; `.` is not allowed in a name, `~` is in no group. */
export function durableOf(group: string): string {
  return group.replaceAll('.', '~');
}

function groupOf(info: ConsumerInfo): string | undefined {
  const durable = info.config.durable_name;
  if (!durable) return undefined;
  const group = durable.replaceAll('~', '.');
  try {
    return eventChecks.checkGroup(group);
  } catch {
    // not one of ours
    return undefined;
  }
}

/** The bytes of the header block nats.js sends ("NATS/1.0\r\n", "k: v\r\n" each, "\r\n"). */
function headerBytes(h: Array<[string, string]>): number {
  let n = 'NATS/1.0\r\n\r\n'.length;
  for (const [k, v] of h) n += Buffer.byteLength(`${k}: ${v}\r\n`, 'utf8');
  return n;
}

/** The event id a message carries: `e:<id>`, or `r<seq>:<id>` for an id published again after retention removed its first event. */
function idOf(msgId: string | undefined, seq: number): string {
  if (msgId?.startsWith('e:')) return msgId.slice(2);
  const m = msgId ? /^r\d+:/.exec(msgId) : null;
  if (m && msgId) return msgId.slice(m[0].length);
  return msgId ?? `seq-${seq}`;
}

/** An event from a stored or delivered message. */
export function storedOf(seq: number, data: Uint8Array, h: MsgHdrs | undefined, serverTime: number): StoredEvent {
  const time = Number(h?.get(H_TIME));
  const metadata = h?.get(H_METADATA);
  return {
    offset: seq,
    id: idOf(h?.get(H_MSG_ID) || undefined, seq),
    ts: Number.isSafeInteger(time) && time > 0 ? time : serverTime,
    payload: decoder.decode(data),
    metadata: metadata ? metadata : undefined,
  };
}

export function toEvent(topic: string, stored: StoredEvent): Event {
  let payload: unknown;
  try {
    payload = JSON.parse(stored.payload);
  } catch {
    // a message some other client put on the subject: shown as text
    payload = stored.payload;
  }
  const event: Event = { id: stored.id, topic, offset: stored.offset, timestamp: stored.ts, payload };
  if (stored.metadata !== undefined) {
    try {
      event.metadata = JSON.parse(stored.metadata) as Record<string, string>;
    } catch {
      // as above: not ours
    }
  }
  return event;
}

function eventSize(e: StoredEvent): number {
  return Buffer.byteLength(e.payload, 'utf8') + (e.metadata === undefined ? 0 : Buffer.byteLength(e.metadata, 'utf8'));
}

/** The ms of an RFC 3339 time with nanoseconds, as JetStream writes them; undefined for the zero time. */
function msOf(time: string | undefined): number | undefined {
  if (!time || time.startsWith('0001-')) return undefined;
  const ms = Date.parse(time.replace(/(\.\d{3})\d+/, '$1'));
  return Number.isFinite(ms) ? ms : undefined;
}

function firstOf(state: StreamState): number {
  return state.messages > 0 ? state.first_seq : state.last_seq + 1;
}

/** JetStream's answer to a publish into a full stream that discards new messages. */
const MAX_BYTES_EXCEEDED = /maximum bytes exceeded/i;

/**
 * The stream's byte limit and discard policy. The namespace's eventsBytes, where it is the
 * tighter limit, becomes max_bytes with discard new, so JetStream itself refuses a publish
 * past it. A topic with its own maxEvents keeps discard old (discard new would refuse at
 * maxEvents instead of dropping the oldest): at eventsBytes it then drops its oldest events.
 * A topic whose own maxBytes is tighter keeps dropping its oldest at that.
 */
function streamBytes(policy: Required<RetentionPolicy>, quota: number | null): Pick<StreamConfig, 'max_bytes' | 'discard'> {
  const own = policy.maxBytes > 0 ? policy.maxBytes : Infinity;
  // JetStream reads a max_bytes of 0 as no limit: 1 byte holds no event
  if (quota === null || own <= Math.max(quota, 1)) return { max_bytes: own === Infinity ? -1 : own, discard: DiscardPolicy.Old };
  return { max_bytes: Math.max(quota, 1), discard: policy.maxEvents > 0 ? DiscardPolicy.Old : DiscardPolicy.New };
}

export class JetStreamEvents implements ServedEvents, ConsumerHost {
  readonly name = 'jetstream';
  readonly prefix: string;
  readonly logger: Logger;
  readonly apiTimeout: number;
  private readonly retention: Required<RetentionPolicy>;
  private readonly duplicateWindow: number;
  private readonly replicas: number;
  private readonly storage: StorageType;
  private readonly quota: EventsQuota | undefined;
  readonly ackGrace: number;
  /** deliveries this node gave back unseen, by `<stream>.<durable>.<offset>`: JetStream counted them, a member subtracts them */
  readonly unseen = new Map<string, number>();
  private readonly streams = new Map<string, TopicStream>();
  private readonly opening = new Map<string, Promise<TopicStream>>();
  private readonly members = new Set<JetStreamConsumer>();
  private status: (AsyncIterable<unknown> & { stop?: () => void }) | undefined;
  private lastTs = 0;
  private closed = false;

  private constructor(
    readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    options: JetStreamEventsOptions,
  ) {
    this.prefix = checkPrefix(options.prefix ?? 'micro');
    this.logger = options.logger ?? rootLogger();
    this.retention = { ...EVENTS_DEFAULTS.retention, ...eventChecks.checkRetention(options.retention ?? {}) };
    this.duplicateWindow = eventChecks.checkInt(options.duplicateWindow, 'duplicateWindow', 100, EVENTS_LIMITS.maxAge, DEFAULT_DUPLICATE_WINDOW);
    this.replicas = eventChecks.checkInt(options.replicas, 'replicas', 1, 5, 1);
    this.storage = options.storage === 'memory' ? StorageType.Memory : StorageType.File;
    this.quota = options.quota;
    this.ackGrace = eventChecks.checkInt(options.ackGrace, 'ackGrace', 0, 3_600_000, DEFAULT_ACK_GRACE);
    this.apiTimeout = eventChecks.checkInt(options.apiTimeout, 'apiTimeout', 100, 600_000, DEFAULT_API_TIMEOUT);
    void this.watch();
  }

  /**
   * The engine on an open connection, which stays the caller's to close. Fails when the
   * server has no JetStream.
   */
  static async open(nc: NatsConnection, options: JetStreamEventsOptions = {}): Promise<JetStreamEvents> {
    trackConnection(nc);
    let jsm: JetStreamManager;
    try {
      jsm = await jetstreamManager(nc, { timeout: options.apiTimeout ?? DEFAULT_API_TIMEOUT });
    } catch (err) {
      throw errors.ServiceUnavailable(EVENTS_ERROR_ID, `NATS at ${redactUrl(nc.getServer())} has no JetStream (${(err as Error).message}): start nats-server with -js`);
    }
    return new JetStreamEvents(nc, jsm, options);
  }

  /** The largest payload (bytes of JSON) a publish with a generated id and no metadata may have: the server's max_payload less the headers. */
  get maxPayload(): number {
    return this.maxPayloadBytes() - headerBytes([[H_MSG_ID, `e:${'x'.repeat(36)}`], [H_TIME, String(Date.now())]]);
  }

  private maxPayloadBytes(): number {
    return this.nc.info?.max_payload ?? 1024 * 1024;
  }

  // ---- names -----------------------------------------------------------------------------

  private key(namespace: string, topic: string): string {
    return `${namespace}\n${topic}`;
  }

  /** the subjects of a namespace's topics, for listing its streams */
  private namespaceFilter(namespace: string): string {
    return `${this.prefix}.events.${encodeKeySegment(namespace)}.>`;
  }

  private topicStream(namespace: string, topic: string, retention: RetentionPolicy = {}): TopicStream {
    const hash = createHash('sha256').update(`${namespace}\n${topic}`, 'utf8').digest('hex').slice(0, 32);
    return { namespace, topic, name: `${this.prefix}_events_${hash}`, subject: `${this.prefix}.events.${encodeKeySegment(namespace)}.${topic}`, retention };
  }

  private streamConfig(ts: TopicStream): Partial<StreamConfig> & { name: string } {
    const policy = { ...this.retention, ...ts.retention };
    const age = eventChecks.cappedAge(policy.maxAge, ts.quota?.maxAge ?? undefined);
    const maxAge = age === undefined ? 0 : Math.max(age, MIN_MAX_AGE);
    const meta: StreamMeta = { micro: 'events', namespace: ts.namespace, topic: ts.topic };
    if (Object.keys(ts.retention).length > 0) meta.retention = ts.retention;
    return {
      name: ts.name,
      subjects: [ts.subject],
      description: JSON.stringify(meta),
      retention: StreamRetention.Limits,
      storage: this.storage,
      num_replicas: this.replicas,
      ...streamBytes(policy, ts.quota?.bytes ?? null),
      max_msgs: policy.maxEvents > 0 ? policy.maxEvents : -1,
      max_age: nanos(maxAge),
      // JetStream wants the window within max_age
      duplicate_window: nanos(maxAge > 0 ? Math.min(this.duplicateWindow, maxAge) : this.duplicateWindow),
      // offsets stay contiguous: no single event is deleted, only the oldest by the limits
      deny_delete: true,
    };
  }

  // ---- streams -------------------------------------------------------------------------

  private async streamInfo(name: string): Promise<StreamInfo | undefined> {
    try {
      return await this.jsm.streams.info(name);
    } catch (err) {
      if (apiCode(err) === STREAM_NOT_FOUND) return undefined;
      throw natsError(err, EVENTS_ERROR_ID, 'cannot read a stream');
    }
  }

  /** The topic's stream and its state now; a 404 when there is none. */
  private async state(namespace: string, topic: string): Promise<{ ts: TopicStream; state: StreamState }> {
    const probe = this.topicStream(namespace, topic);
    const info = await this.streamInfo(probe.name);
    if (!info) {
      this.streams.delete(this.key(namespace, topic));
      throw errors.NotFound(EVENTS_ERROR_ID, `no topic ${topic} in namespace ${namespace}`);
    }
    return { ts: this.checked(info, namespace, topic), state: info.state };
  }

  private checked(info: StreamInfo, namespace: string, topic: string): TopicStream {
    const meta = parseMeta(info.config.description);
    if (!meta || meta.namespace !== namespace || meta.topic !== topic) {
      throw errors.InternalServerError(EVENTS_ERROR_ID, `stream ${info.config.name} is not the one of topic ${shown(topic)} in namespace ${shown(namespace)}`);
    }
    return this.topicStream(namespace, topic, meta.retention ?? {});
  }

  /** The topic's stream, made when `create` (and the namespace has room, unless not `counted`); a 404 otherwise. */
  private stream(namespace: string, topic: string, create: boolean, counted = true): Promise<TopicStream> {
    const key = this.key(namespace, topic);
    const known = this.streams.get(key);
    if (known) return Promise.resolve(known);
    let p = this.opening.get(key);
    if (!p) {
      p = this.openStream(namespace, topic, create, counted).finally(() => this.opening.delete(key));
      this.opening.set(key, p);
    }
    return p.catch((err: unknown) => {
      // a look without creating may be followed by one that creates
      if (create && err instanceof MicroError && err.code === 404) return this.stream(namespace, topic, create, counted);
      throw err;
    });
  }

  private async openStream(namespace: string, topic: string, create: boolean, counted: boolean): Promise<TopicStream> {
    const quota = await this.quotaOf(namespace);
    const fresh = { ...this.topicStream(namespace, topic), quota };
    let info = await this.streamInfo(fresh.name);
    if (!info) {
      if (!create) throw errors.NotFound(EVENTS_ERROR_ID, `no topic ${topic} in namespace ${namespace}`);
      if (counted && (await this.countTopics(namespace)) >= EVENTS_LIMITS.topicsPerNamespace) {
        throw errors.Conflict(EVENTS_ERROR_ID, `namespace ${namespace} has ${EVENTS_LIMITS.topicsPerNamespace} topics, the most it may have`);
      }
      try {
        info = await this.jsm.streams.add(this.streamConfig(fresh));
      } catch (err) {
        // another node made it meanwhile
        if (apiCode(err) !== STREAM_NAME_IN_USE) throw natsError(err, EVENTS_ERROR_ID, `cannot create the stream of topic ${topic}`);
        info = await this.streamInfo(fresh.name);
        if (!info) throw natsError(err, EVENTS_ERROR_ID, `cannot create the stream of topic ${topic}`);
      }
    }
    const ts: TopicStream = { ...this.checked(info, namespace, topic), quota };
    // the engine-wide retention or the namespace's limits may have changed since the stream was made
    const want = this.streamConfig(ts);
    const c = info.config;
    if (c.max_msgs !== want.max_msgs || c.max_bytes !== want.max_bytes || c.max_age !== want.max_age || c.duplicate_window !== want.duplicate_window || c.discard !== want.discard) {
      await this.jsm.streams.update(ts.name, want).catch((err: unknown) => this.logger.warn({ err, stream: ts.name }, 'events: cannot bring the stream limits in line with the retention'));
    }
    this.streams.set(this.key(namespace, topic), ts);
    return ts;
  }

  private async countTopics(namespace: string): Promise<number> {
    let n = 0;
    try {
      for await (const name of this.jsm.streams.names(this.namespaceFilter(namespace))) if (name.startsWith(`${this.prefix}_events_`)) n++;
    } catch (err) {
      throw natsError(err, EVENTS_ERROR_ID, 'cannot list the streams');
    }
    return n;
  }

  private topicInfo(ts: TopicStream, state: StreamState): TopicInfo {
    const last = state.last_seq;
    const info: TopicInfo = { name: ts.topic, count: state.messages, bytes: state.bytes, first: firstOf(state), last };
    const lastTs = last > 0 ? msOf(state.last_ts) : undefined;
    if (lastTs !== undefined) info.lastTimestamp = lastTs;
    if (Object.keys(ts.retention).length > 0) info.retention = { ...ts.retention };
    return info;
  }

  // ---- publish and read ----------------------------------------------------------------

  async publish(topic: string, payload: unknown, options: EventPublishOptions = {}): Promise<Event> {
    const namespace = eventChecks.checkNamespace(options.namespace);
    const name = eventChecks.checkTopic(topic);
    const json = eventChecks.encodePayload(payload);
    const metadata = eventChecks.encodeMetadata(options.metadata);
    const id = eventChecks.checkId(options.id);
    this.open('cannot publish');
    let ts = await this.stream(namespace, name, true);
    ts = await this.withQuota(ts, await this.quotaOf(namespace));
    return toEvent(name, await this.append(ts, json, metadata, id, true));
  }

  /** The namespace's limits now (undefined without quotas); read on every publish, so a Set reaches a stream at its next publish. */
  private async quotaOf(namespace: string): Promise<StreamQuota | undefined> {
    return this.quota ? await this.quota.limits(namespace) : undefined;
  }

  /** The stream with the namespace's limits applied: updated in JetStream first when they changed. */
  private async withQuota(ts: TopicStream, quota: StreamQuota | undefined): Promise<TopicStream> {
    if (quota === undefined || (ts.quota?.bytes === quota.bytes && ts.quota.maxAge === quota.maxAge)) return ts;
    const next = { ...ts, quota };
    try {
      await this.jsm.streams.update(ts.name, this.streamConfig(next));
    } catch (err) {
      if (apiCode(err) === STREAM_NOT_FOUND) {
        // deleted behind this node's back: made again (with the limits) on the next call
        this.streams.delete(this.key(ts.namespace, ts.topic));
        return this.withQuota(await this.stream(ts.namespace, ts.topic, true), quota);
      }
      throw natsError(err, EVENTS_ERROR_ID, `cannot apply the quotas of namespace ${ts.namespace} to topic ${ts.topic}`);
    }
    this.streams.set(this.key(ts.namespace, ts.topic), next);
    return next;
  }

  /** Payload and metadata bytes plus JetStream's own per message of every stream of a namespace (its eventsBytes usage). */
  async namespaceBytes(namespace: string): Promise<number> {
    const ns = eventChecks.checkNamespace(namespace);
    let bytes = 0;
    try {
      for await (const info of this.jsm.streams.list(this.namespaceFilter(ns))) {
        if (parseMeta(info.config.description)?.namespace === ns && info.config.name.startsWith(`${this.prefix}_events_`)) bytes += info.state.bytes;
      }
    } catch (err) {
      throw natsError(err, EVENTS_ERROR_ID, `cannot read the topics of namespace ${ns}`);
    }
    return bytes;
  }

  /**
   * Stores an event once JetStream acknowledged it. A duplicate (the id was published in
   * the window) returns the stored event, or a 409 for another payload when `strict`; an
   * id whose event retention removed is published again under `r<seq>:<id>`, which a
   * retry finds the same way.
   */
  private async append(ts: TopicStream, json: string, metadata: string | undefined, id: string, strict: boolean): Promise<StoredEvent> {
    const data = Buffer.from(json, 'utf8');
    let msgId = `e:${id}`;
    let stream = ts;
    for (let round = 0; round < 8; round++) {
      const time = this.clock();
      const h: Array<[string, string]> = [
        [H_MSG_ID, msgId],
        [H_TIME, String(time)],
      ];
      if (metadata !== undefined) h.push([H_METADATA, metadata]);
      const size = headerBytes(h) + data.length;
      if (size > this.maxPayloadBytes()) {
        throw errors.PayloadTooLarge(
          EVENTS_ERROR_ID,
          `the event is ${size} bytes with its headers, more than the NATS server's max_payload of ${this.maxPayloadBytes()}: raise max_payload (e.g. to 2MB) in nats-server.conf for events of up to 1 MiB`,
        );
      }
      const hdrs = natsHeaders();
      for (const [k, v] of h) hdrs.set(k, v);
      let reply: Msg;
      try {
        reply = await this.nc.request(stream.subject, data, { headers: hdrs, timeout: this.apiTimeout });
      } catch (err) {
        if ((err as { isNoResponders?: () => boolean }).isNoResponders?.() || /no responders/i.test((err as Error).message ?? '')) {
          // the stream went (deleted behind this node's back): make it again
          this.streams.delete(this.key(ts.namespace, ts.topic));
          stream = await this.stream(ts.namespace, ts.topic, true, strict);
          continue;
        }
        throw natsError(err, EVENTS_ERROR_ID, `cannot publish to ${ts.topic}`);
      }
      let ack: { seq?: number; duplicate?: boolean; error?: { code?: number; err_code?: number; description?: string } };
      try {
        ack = JSON.parse(decoder.decode(reply.data)) as typeof ack;
      } catch {
        // something other than JetStream answers on the subject
        ack = { error: { description: 'an answer that is not JSON' } };
      }
      if (ack.error && stream.quota?.bytes != null && MAX_BYTES_EXCEEDED.test(ack.error.description ?? '')) {
        throw await this.overQuota(stream, stream.quota.bytes);
      }
      if (ack.error || typeof ack.seq !== 'number') {
        throw errors.ServiceUnavailable(EVENTS_ERROR_ID, `cannot publish to ${ts.topic}: JetStream answered ${shown(ack.error?.description ?? 'no sequence')}`);
      }
      if (!ack.duplicate) return { offset: ack.seq, id, ts: time, payload: json, metadata };
      const existing = await this.get(stream, ack.seq);
      if (!existing) {
        msgId = `r${ack.seq}:${id}`;
        continue;
      }
      if (strict && (existing.payload !== json || existing.metadata !== metadata)) {
        throw errors.Conflict(EVENTS_ERROR_ID, `event id ${shown(id)} is already used in topic ${ts.topic} (offset ${existing.offset}) by an event with another payload or metadata`);
      }
      return existing;
    }
    throw errors.ServiceUnavailable(EVENTS_ERROR_ID, `cannot publish to ${ts.topic}: its stream keeps changing; retry`);
  }

  /** The quota 403 of a stream that JetStream found full (discard new): its bytes now as the usage. */
  private async overQuota(ts: TopicStream, max: number): Promise<Error> {
    const used = (await this.streamInfo(ts.name).catch(() => undefined))?.state.bytes ?? max;
    return (this.quota as EventsQuota).refuse(ts.namespace, used, max);
  }

  /** Epoch ms that never decrease on this node. */
  private clock(): number {
    this.lastTs = Math.max(Date.now(), this.lastTs);
    return this.lastTs;
  }

  /** One stored event, or undefined when it is not there (retention removed it). */
  private async get(ts: TopicStream, seq: number): Promise<StoredEvent | undefined> {
    try {
      const m = await this.jsm.streams.getMessage(ts.name, { seq });
      return m ? storedOf(m.seq, m.data, m.header, m.time.getTime()) : undefined;
    } catch (err) {
      throw natsError(err, EVENTS_ERROR_ID, `cannot read topic ${ts.topic}`);
    }
  }

  async read(topic: string, options: EventReadOptions = {}): Promise<EventReadResult> {
    const namespace = eventChecks.checkNamespace(options.namespace);
    const name = eventChecks.checkTopic(topic);
    const limit = eventChecks.checkInt(options.limit, 'limit', 1, EVENTS_LIMITS.readLimit, EVENTS_DEFAULTS.readLimit);
    if (options.offset !== undefined && options.from !== undefined) throw bad('give offset or from, not both');
    const offset = options.offset === undefined ? undefined : eventChecks.checkInt(options.offset, 'offset', 1, Number.MAX_SAFE_INTEGER, 1);
    const from = options.from === undefined ? undefined : eventChecks.checkTime(options.from, 'from');
    this.open('cannot read');
    const { ts, state } = await this.state(namespace, name);
    const last = state.last_seq;
    const first = firstOf(state);
    if (offset !== undefined && offset > last + 1) throw bad(`offset ${offset} is past the end of topic ${name} (its last offset is ${last})`);
    let start = offset ?? first;
    if (from !== undefined) start = (await this.offsetAt(ts, from, first, last)) ?? last + 1;
    start = Math.max(start, first);
    const page = start > last ? { events: [], end: start - 1 } : await this.range(ts, start, last, limit, EVENTS_LIMITS.pageBytes);
    const result: EventReadResult = { events: page.events.map((e) => toEvent(name, e)), first: Math.min(first, last + 1), last };
    if (page.end < last) result.next = page.end + 1;
    return result;
  }

  /**
   * Events from `start` to `last`: at most `limit`, and no more once they pass `maxBytes`
   * (one always comes). Fetched a few at a time, as many as the bytes left allow.
   * `end` is the last offset looked at.
   */
  private async range(ts: TopicStream, start: number, last: number, limit: number, maxBytes: number): Promise<{ events: StoredEvent[]; end: number }> {
    const out: StoredEvent[] = [];
    let bytes = 0;
    let seq = start;
    let window = 1;
    while (seq <= last && out.length < limit) {
      const n = Math.min(window, limit - out.length, last - seq + 1);
      const got = await Promise.all(Array.from({ length: n }, (_, i) => this.get(ts, seq + i)));
      for (let i = 0; i < n; i++) {
        const e = got[i];
        if (!e) continue;
        const size = eventSize(e);
        if (out.length > 0 && bytes + size > maxBytes) return { events: out, end: seq + i - 1 };
        bytes += size;
        out.push(e);
      }
      seq += n;
      const average = out.length > 0 ? bytes / out.length : 1024;
      window = Math.min(64, Math.max(1, Math.floor((maxBytes - bytes) / Math.max(average, 1))));
    }
    return { events: out, end: seq - 1 };
  }

  /** The first offset stored at or after `time` (by Micro-Time, which does not decrease), by binary search; undefined for none. */
  private async offsetAt(ts: TopicStream, time: number, first: number, last: number): Promise<number | undefined> {
    let lo = first;
    let hi = last + 1;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      const e = await this.get(ts, mid);
      if (e && e.ts >= time) hi = mid;
      else lo = mid + 1;
    }
    return lo <= last ? lo : undefined;
  }

  async topics(options: EventsNamespaceOptions = {}): Promise<TopicInfo[]> {
    const namespace = eventChecks.checkNamespace(options.namespace);
    this.open('cannot list topics');
    const out: TopicInfo[] = [];
    try {
      for await (const info of this.jsm.streams.list(this.namespaceFilter(namespace))) {
        const meta = parseMeta(info.config.description);
        if (!meta || meta.namespace !== namespace || !info.config.name.startsWith(`${this.prefix}_events_`)) continue;
        out.push(this.topicInfo(this.topicStream(namespace, meta.topic, meta.retention ?? {}), info.state));
      }
    } catch (err) {
      throw natsError(err, EVENTS_ERROR_ID, 'cannot list the topics');
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  // ---- groups --------------------------------------------------------------------------

  private async consumerInfo(stream: string, durable: string): Promise<ConsumerInfo | undefined> {
    try {
      return await this.jsm.consumers.info(stream, durable);
    } catch (err) {
      const code = apiCode(err);
      if (code === CONSUMER_NOT_FOUND) return undefined;
      throw natsError(err, EVENTS_ERROR_ID, 'cannot read a consumer group');
    }
  }

  private async consumerInfos(stream: string): Promise<ConsumerInfo[]> {
    const out: ConsumerInfo[] = [];
    try {
      for await (const info of this.jsm.consumers.list(stream)) out.push(info);
    } catch (err) {
      throw natsError(err, EVENTS_ERROR_ID, 'cannot list the consumer groups');
    }
    return out;
  }

  private membersOf(ts: TopicStream, group: string): number {
    let n = 0;
    for (const m of this.members) if (m.stream.name === ts.name && m.group === group) n++;
    return n;
  }

  /** Deliveries this node's members of the group received ahead of their reads: JetStream counts them as pending acks, no user holds them. */
  private aheadOf(ts: TopicStream, group: string): number {
    let n = 0;
    for (const m of this.members) if (m.stream.name === ts.name && m.group === group) n += m.aheadCount;
    return n;
  }

  async groups(topic: string, options: EventsNamespaceOptions = {}): Promise<GroupInfo[]> {
    const namespace = eventChecks.checkNamespace(options.namespace);
    const name = eventChecks.checkTopic(topic);
    this.open('cannot list groups');
    const { ts, state } = await this.state(namespace, name);
    const last = state.last_seq;
    const first = firstOf(state);
    const out: GroupInfo[] = [];
    for (const info of await this.consumerInfos(ts.name)) {
      const group = groupOf(info);
      if (!group) continue;
      // what retention removed is done for every group
      const committed = Math.min(Math.max(info.ack_floor.stream_seq, first - 1), last);
      out.push({ name: group, committed, pending: Math.max(0, last - committed), inflight: Math.max(0, info.num_ack_pending - this.aheadOf(ts, group)), members: this.membersOf(ts, group) });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async deleteGroup(topic: string, group: string, options: EventsNamespaceOptions = {}): Promise<void> {
    const namespace = eventChecks.checkNamespace(options.namespace);
    const name = eventChecks.checkTopic(topic);
    const groupName = eventChecks.checkGroup(group);
    this.open('cannot delete a group');
    const { ts } = await this.state(namespace, name);
    const durable = durableOf(groupName);
    if (!(await this.consumerInfo(ts.name, durable))) throw errors.NotFound(EVENTS_ERROR_ID, `no group ${groupName} on topic ${name} in namespace ${namespace}`);
    const members = this.membersOf(ts, groupName);
    if (members > 0) throw errors.Conflict(EVENTS_ERROR_ID, `group ${groupName} of topic ${name} has ${members} consumer(s) connected; stop them first`);
    try {
      await this.jsm.consumers.delete(ts.name, durable);
    } catch (err) {
      if (apiCode(err) !== CONSUMER_NOT_FOUND) throw natsError(err, EVENTS_ERROR_ID, `cannot delete group ${groupName}`);
    }
    // a group made again under the name counts its deliveries afresh
    const unseen = `${ts.name}.${durable}.`;
    for (const key of this.unseen.keys()) if (key.startsWith(unseen)) this.unseen.delete(key);
  }

  /**
   * Deletes every topic of a namespace (the server's namespace purge): its streams, with
   * their events and groups (consumers go with their stream); the members of this node end
   * first. A node that still knows such a stream finds it gone on its next call.
   */
  async purgeNamespace(namespace: string): Promise<void> {
    const ns = eventChecks.checkNamespace(namespace);
    this.open('cannot purge a namespace');
    for (const m of [...this.members]) if (m.stream.namespace === ns) await m.close('the namespace was deleted');
    const names: string[] = [];
    try {
      for await (const info of this.jsm.streams.list(this.namespaceFilter(ns))) {
        if (parseMeta(info.config.description)?.namespace === ns && info.config.name.startsWith(`${this.prefix}_events_`)) names.push(info.config.name);
      }
      for (const name of names) {
        await this.jsm.streams.delete(name).catch((err: unknown) => {
          if (apiCode(err) !== STREAM_NOT_FOUND) throw err;
        });
      }
    } catch (err) {
      throw natsError(err, EVENTS_ERROR_ID, `cannot purge the topics of namespace ${ns}`);
    }
    for (const key of [...this.streams.keys()]) if (key.startsWith(this.key(ns, ''))) this.streams.delete(key);
    for (const key of [...this.unseen.keys()]) if (names.some((n) => key.startsWith(`${n}.`))) this.unseen.delete(key);
  }

  async setRetention(topic: string, policy: RetentionPolicy, options: EventsNamespaceOptions = {}): Promise<TopicInfo> {
    const namespace = eventChecks.checkNamespace(options.namespace);
    const name = eventChecks.checkTopic(topic);
    const checked = eventChecks.checkRetention(policy);
    this.open('cannot set the retention');
    const { ts } = await this.state(namespace, name);
    const next: TopicStream = { ...ts, retention: checked, quota: await this.quotaOf(namespace) };
    let info: StreamInfo;
    try {
      info = await this.jsm.streams.update(ts.name, this.streamConfig(next));
    } catch (err) {
      throw natsError(err, EVENTS_ERROR_ID, `cannot set the retention of topic ${name}`);
    }
    this.streams.set(this.key(namespace, name), next);
    return this.topicInfo(next, info.state);
  }

  // ---- consume -------------------------------------------------------------------------

  async consume(topic: string, options: ConsumeOptions): Promise<EngineConsumer> {
    const { namespace, topic: name, group, start, ...settings } = eventChecks.checkConsume(topic, options);
    this.open('cannot consume');
    const ts = await this.stream(namespace, name, true);
    const durable = durableOf(group);
    const ackWait = nanos(settings.ackWait + this.ackGrace);
    const info = await this.consumerInfo(ts.name, durable);
    if (!info) {
      await this.createGroup(ts, durable, group, start, ackWait);
    } else if ((info.config.ack_wait ?? 0) < ackWait) {
      // the consumer's ack wait covers its longest member's
      await this.jsm.consumers.update(ts.name, durable, { ack_wait: ackWait }).catch((err: unknown) => {
        throw natsError(err, EVENTS_ERROR_ID, `cannot update group ${group}`);
      });
    }
    if (this.membersOf(ts, group) >= EVENTS_LIMITS.membersPerGroup) {
      throw errors.Conflict(EVENTS_ERROR_ID, `group ${group} of topic ${name} has ${EVENTS_LIMITS.membersPerGroup} consumers, the most it may have`);
    }
    this.open('cannot consume');
    const member = new JetStreamConsumer(this, ts, group, durable, settings);
    this.members.add(member);
    member.start();
    return member;
  }

  private async createGroup(ts: TopicStream, durable: string, group: string, start: eventChecks.Start, ackWait: number): Promise<void> {
    const infos = await this.consumerInfos(ts.name);
    if (infos.filter((c) => groupOf(c) !== undefined).length >= EVENTS_LIMITS.groupsPerTopic) {
      throw errors.Conflict(EVENTS_ERROR_ID, `topic ${ts.topic} has ${EVENTS_LIMITS.groupsPerTopic} groups, the most it may have; delete one with deleteGroup`);
    }
    let deliver: Partial<ConsumerConfig>;
    if (start.kind === 'earliest') deliver = { deliver_policy: DeliverPolicy.All };
    else if (start.kind === 'latest') deliver = { deliver_policy: DeliverPolicy.New };
    else {
      const { state } = await this.state(ts.namespace, ts.topic);
      const last = state.last_seq;
      let seq: number;
      if (start.kind === 'offset') {
        if (start.offset > last + 1) throw bad(`offset ${start.offset} is past the end of topic ${ts.topic} (its last offset is ${last})`);
        seq = start.offset;
      } else {
        seq = (await this.offsetAt(ts, start.time, firstOf(state), last)) ?? last + 1;
      }
      deliver = { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: seq };
    }
    const config: Partial<ConsumerConfig> = {
      durable_name: durable,
      description: `micro events: group ${group}`,
      ack_policy: AckPolicy.Explicit,
      ack_wait: ackWait,
      // dead letters are this engine's: JetStream never stops handing an event out
      max_deliver: -1,
      max_ack_pending: MAX_ACK_PENDING,
      max_waiting: MAX_WAITING,
      ...deliver,
    };
    try {
      await this.jsm.consumers.add(ts.name, config);
    } catch (err) {
      // another member (of this node or another) made the group meanwhile: join it
      if (await this.consumerInfo(ts.name, durable).catch(() => undefined)) return;
      throw natsError(err, EVENTS_ERROR_ID, `cannot create group ${group}`);
    }
  }

  // ---- what consumers need (ConsumerHost) ------------------------------------------------

  /**
   * Publishes the event of a failed last attempt to the member's dead-letter topic, with
   * where it came from and why. Its id is made of the group and offset, so that a dead
   * letter published twice (a node died in between) is stored once within the window.
   */
  async deadLetter(member: JetStreamConsumer, held: Held, attempts: number, reason: string): Promise<void> {
    const src = member.stream;
    const dl = await this.stream(src.namespace, member.settings.deadLetter, true, false);
    let original: Record<string, string> = {};
    if (held.stored.metadata) {
      try {
        original = JSON.parse(held.stored.metadata) as Record<string, string>;
      } catch {
        // not ours: kept out
      }
    }
    const metadata: Record<string, string> = {
      ...original,
      [DEAD_LETTER.topic]: src.topic,
      [DEAD_LETTER.offset]: String(held.stored.offset),
      [DEAD_LETTER.id]: held.stored.id,
      [DEAD_LETTER.group]: member.group,
      [DEAD_LETTER.attempts]: String(attempts),
      [DEAD_LETTER.error]: reason,
    };
    const sorted = JSON.stringify(Object.fromEntries(Object.entries(metadata).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
    const id = `dead-${createHash('sha256').update(`${src.name}\n${member.group}\n${held.stored.offset}`).digest('hex').slice(0, 32)}`;
    await this.append(dl, held.stored.payload, sorted, id, false);
  }

  left(member: JetStreamConsumer): void {
    this.members.delete(member);
  }

  /** After a reconnect, the pull requests members had waiting may be gone: they ask again. */
  private async watch(): Promise<void> {
    const status = this.nc.status() as AsyncIterable<{ type: string }> & { stop?: () => void };
    this.status = status;
    try {
      for await (const s of status) {
        if (this.closed) break;
        if (s.type === 'reconnect') for (const m of this.members) m.reconnected();
      }
    } catch {
      // the connection closed
    }
    // the connection is closed for good: its consumers end (what they held comes back after JetStream's ack wait)
    const lost = errors.ServiceUnavailable(EVENTS_ERROR_ID, 'the NATS connection of the events engine is closed');
    for (const m of [...this.members]) m.lost(lost);
  }

  // ---- life cycle ----------------------------------------------------------------------

  private open(what: string): void {
    if (this.closed) throw errors.ServiceUnavailable(EVENTS_ERROR_ID, 'the events engine is closed');
    checkConnected(this.nc, EVENTS_ERROR_ID, what);
  }

  /** Closes the consumers (what they hold goes back to the groups); the connection stays the caller's. */
  async close(): Promise<void> {
    if (this.closed) return;
    for (const m of [...this.members]) await m.close('the events engine closed');
    this.closed = true;
    this.status?.stop?.();
  }
}

// ---- connecting and hosting ---------------------------------------------------------------

/**
 * The engine on the process's shared NATS connection to `url` (opened if need be, with
 * backoff while NATS is not there; the error at the end names the URL). `close()` closes
 * the engine and gives the connection back.
 */
export async function connectJetStreamEvents(
  url: string,
  options: JetStreamEventsOptions & { maxWait?: number; onRetry?: (message: string) => void } = {},
): Promise<{ events: JetStreamEvents; close(): Promise<void> }> {
  const { maxWait, onRetry, ...engine } = options;
  const link = await acquireNats(url, { maxWait, onRetry });
  try {
    const events = await JetStreamEvents.open(link.nc, engine);
    return {
      events,
      async close() {
        await events.close();
        link.release();
      },
    };
  } catch (err) {
    link.release();
    throw err;
  }
}

/**
 * The events service of micro server on JetStream, on a NATS connection that stays the
 * caller's. The engine-wide retention comes from MICRO_EVENTS_MAX_AGE / _MAX_EVENTS /
 * _MAX_BYTES, as for SQLite.
 */
export function jetstreamEventsCoreService(nc: NatsConnection, prefix: string, options: Omit<JetStreamEventsOptions, 'prefix' | 'logger'> = {}): CoreServiceFactory {
  return async (ctx) => {
    const events = await JetStreamEvents.open(nc, { retention: retentionFromEnv(process.env), quota: eventsQuota(ctx), ...options, prefix, logger: ctx.logger.child({ component: 'events' }) });
    ctx.quotas?.addSource(async (namespace) => ({ eventsBytes: await events.namespaceBytes(namespace) }));
    return { def: eventsService, handlers: eventsHandlers(events), stop: () => events.close(), events, purge: (namespace) => events.purgeNamespace(namespace) };
  };
}

/**
 * The events service for a profile: SQLite in <home>/data (local), or JetStream streams
 * shared by every node on the process's NATS connection (nats), given back when the
 * service stops.
 */
export function eventsCoreServiceFor(profile: Profile, options: { maxWait?: number } = {}): CoreServiceFactory {
  if (profile.name !== 'nats') return eventsCoreService;
  return onSharedNats(profile.natsUrl, options, (nc) => jetstreamEventsCoreService(nc, profile.prefix));
}
