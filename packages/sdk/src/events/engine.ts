import { randomUUID } from 'node:crypto';
import { Conflict, MicroError, NotFound, ServiceUnavailable } from '../errors/errors.js';
import { rootLogger, type Logger } from '../logger/logger.js';
import { randomHex } from '../util/ids.js';
import {
  bad,
  cappedAge,
  checkConsume,
  checkGroup,
  checkId,
  checkInt,
  checkNamespace,
  checkReason,
  checkRetention,
  checkTime,
  checkTopic,
  encodeMetadata,
  encodePayload,
  shown,
  type Start,
} from './checks.js';
import {
  DEAD_LETTER,
  DEFAULTS,
  EVENTS_ERROR_ID,
  LIMITS,
  type ConsumeOptions,
  type Consumer,
  type Delivery,
  type Event,
  type Events,
  type GroupInfo,
  type NamespaceOptions,
  type PublishOptions,
  type ReadOptions,
  type ReadResult,
  type RetentionPolicy,
  type TopicInfo,
} from './events.js';
import type { EventStorage, StoredEvent, TopicRecord } from './storage.js';

/*
 * The events engine of the embedded engines (memory, SQLite): offsets, groups,
 * deliveries, retries, dead letters and retention, over an EventStorage.
 *
 * A group's state is its `committed` offset (everything up to it is done), its
 * `cursor` (the highest offset handed out at least once) and its in-flight slots: the
 * offsets above `committed` handed out and not done, each held by a member until its
 * deadline, or returned and due again at its deadline. Slots are kept in offset order
 * (a Map in insertion order: offsets only ever join at the cursor), so the lowest due
 * one is found first and `committed` is the first slot's offset - 1.
 *
 * While a group has members its state lives here as well as in the storage (written
 * through); when the last member leaves it is dropped and read again on the next consume.
 * The storage belongs to one engine (one process), so nothing else changes it meanwhile.
 */

export interface EngineOptions {
  /** the clock, epoch ms (tests move time without sleeping) */
  now?: () => number;
  /** engine-wide retention; fields left out take DEFAULTS.retention, 0 = no limit */
  retention?: RetentionPolicy;
  /** ms between retention sweeps (default 60,000; 0 = only when `sweep()` is called) */
  sweepInterval?: number;
  logger?: Logger;
  /** per-namespace limits (micro server's eventsBytes and eventRetention); none: unlimited */
  quota?: EventsQuota;
}

/**
 * Per-namespace limits of an embedded engine. `limits` is asked before each publish and
 * before each sweep; the check and the append then run with no await between, so of
 * concurrent publishes with room for k exactly k are stored. Dead letters are not
 * checked: losing the event would be worse than passing the limit by it.
 */
export interface EventsQuota {
  /** the namespace's limits now: bytes of stored events and ms events are kept (each null for none) */
  limits(namespace: string): Promise<{ bytes: number | null; maxAge: number | null }>;
  /** the refusal of a publish that would pass `max` (micro server: the quota 403) */
  refuse(namespace: string, used: number, max: number): Error;
}

interface Settings {
  ackWait: number;
  maxRetries: number;
  deadLetter: string;
  maxInFlight: number;
}

interface Slot {
  offset: number;
  attempts: number;
  deadline: number;
  member: Member | undefined;
  lastError: string | undefined;
}

class Group {
  committed = 0;
  cursor = 0;
  readonly inflight = new Map<number, Slot>();
  readonly members = new Set<Member>();
  /** members waiting for a delivery, served in turn */
  readonly waiting: Member[] = [];
  timer: NodeJS.Timeout | undefined;
  timerAt = Infinity;

  constructor(
    readonly key: string,
    readonly namespace: string,
    readonly topic: string,
    readonly name: string,
  ) {}
}

type Past = 'acked' | 'nacked' | 'released' | 'expired' | 'removed';
const PAST_LIMIT = 10_000;

const gone = (detail: string) => new MicroError(EVENTS_ERROR_ID, 410, detail);

function topicKey(namespace: string, topic: string): string {
  return `${namespace}\n${topic}`;
}

function parseMetadata(text: string | undefined): Record<string, string> | undefined {
  return text === undefined ? undefined : (JSON.parse(text) as Record<string, string>);
}

function toEvent(topic: string, stored: StoredEvent): Event {
  const event: Event = { id: stored.id, topic, offset: stored.offset, timestamp: stored.ts, payload: JSON.parse(stored.payload) };
  const metadata = parseMetadata(stored.metadata);
  if (metadata) event.metadata = metadata;
  return event;
}

function eventSize(payload: string, metadata: string | undefined): number {
  return Buffer.byteLength(payload, 'utf8') + (metadata === undefined ? 0 : Buffer.byteLength(metadata, 'utf8'));
}

export class EventsEngine implements Events {
  readonly name: string;
  private readonly now: () => number;
  private readonly retention: Required<RetentionPolicy>;
  private readonly logger: Logger;
  private readonly quota: EventsQuota | undefined;
  /** topics with appends not yet committed: the newest offset readers may see */
  private readonly visible = new Map<string, number>();
  private readonly groupCache = new Map<string, Group>();
  private readonly topicGroups = new Map<string, Set<Group>>();
  private sweeper: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    name: string,
    private readonly storage: EventStorage,
    options: EngineOptions = {},
  ) {
    this.name = name;
    this.now = options.now ?? Date.now;
    this.logger = options.logger ?? rootLogger();
    this.quota = options.quota;
    let r: RetentionPolicy = {};
    try {
      if (options.retention !== undefined) r = checkRetention(options.retention);
    } catch (err) {
      storage.close();
      throw err;
    }
    this.retention = { ...DEFAULTS.retention, ...r };
    const interval = options.sweepInterval ?? DEFAULTS.sweepInterval;
    if (interval > 0) {
      this.sweeper = setInterval(() => {
        this.sweep().catch((err: unknown) => this.logger.error({ err }, 'events retention sweep failed'));
      }, interval);
      this.sweeper.unref();
    }
  }

  // ---- publish and read ----------------------------------------------------------------

  async publish(topic: string, payload: unknown, options: PublishOptions = {}): Promise<Event> {
    const namespace = checkNamespace(options.namespace);
    const name = checkTopic(topic);
    const json = encodePayload(payload);
    const metadata = encodeMetadata(options.metadata);
    const id = checkId(options.id);
    this.open();
    // asked first: from here to the append nothing awaits, so the check below stays exact
    const maxBytes = this.quota ? (await this.quota.limits(namespace)).bytes : null;
    this.open();
    const existing = this.storage.topic(namespace, name) !== undefined ? this.storage.eventById(namespace, name, id) : undefined;
    if (existing) {
      if (existing.payload !== json || existing.metadata !== metadata) {
        throw Conflict(EVENTS_ERROR_ID, `event id ${shown(id)} is already used in topic ${name} (offset ${existing.offset}) by an event with another payload or metadata`);
      }
      // a retried publish: the same event, once it is durable
      await this.durable();
      return toEvent(name, existing);
    }
    if (maxBytes !== null) this.admit(namespace, eventSize(json, metadata), maxBytes);
    if (!this.storage.topic(namespace, name)) this.createTopic(namespace, name);
    const stored = this.append(namespace, name, json, metadata, id);
    await this.durable();
    this.reveal(namespace, name, stored.offset);
    return toEvent(name, stored);
  }

  async read(topic: string, options: ReadOptions = {}): Promise<ReadResult> {
    const namespace = checkNamespace(options.namespace);
    const name = checkTopic(topic);
    const limit = checkInt(options.limit, 'limit', 1, LIMITS.readLimit, DEFAULTS.readLimit);
    if (options.offset !== undefined && options.from !== undefined) throw bad('give offset or from, not both');
    const offset = options.offset === undefined ? undefined : checkInt(options.offset, 'offset', 1, Number.MAX_SAFE_INTEGER, 1);
    const from = options.from === undefined ? undefined : checkTime(options.from, 'from');
    this.open();
    const t = this.topicOrThrow(namespace, name);
    const last = this.visibleLast(namespace, t);
    if (offset !== undefined && offset > last + 1) throw bad(`offset ${offset} is past the end of topic ${name} (its last offset is ${last})`);
    let start = offset ?? t.first;
    if (from !== undefined) start = this.storage.offsetAt(namespace, name, from) ?? last + 1;
    start = Math.max(start, t.first);
    const stored = start > last ? [] : this.storage.events(namespace, name, start, last, limit, LIMITS.pageBytes);
    const result: ReadResult = { events: stored.map((e) => toEvent(name, e)), first: Math.min(t.first, last + 1), last };
    const end = stored.length > 0 ? (stored[stored.length - 1] as StoredEvent).offset : start - 1;
    if (end < last) result.next = end + 1;
    return result;
  }

  async topics(options: NamespaceOptions = {}): Promise<TopicInfo[]> {
    const namespace = checkNamespace(options.namespace);
    this.open();
    return this.storage.topics(namespace).map((t) => this.topicInfo(namespace, t));
  }

  async groups(topic: string, options: NamespaceOptions = {}): Promise<GroupInfo[]> {
    const namespace = checkNamespace(options.namespace);
    const name = checkTopic(topic);
    this.open();
    const t = this.topicOrThrow(namespace, name);
    const last = this.visibleLast(namespace, t);
    return this.storage.groups(namespace, name).map((g) => {
      const cached = this.groupCache.get(this.groupKey(namespace, name, g.name));
      const committed = cached?.committed ?? g.committed;
      return {
        name: g.name,
        committed,
        pending: Math.max(0, last - committed),
        inflight: cached?.inflight.size ?? g.inflight,
        members: cached?.members.size ?? 0,
      };
    });
  }

  async deleteGroup(topic: string, group: string, options: NamespaceOptions = {}): Promise<void> {
    const namespace = checkNamespace(options.namespace);
    const name = checkTopic(topic);
    const groupName = checkGroup(group);
    this.open();
    this.topicOrThrow(namespace, name);
    if (!this.storage.group(namespace, name, groupName)) throw NotFound(EVENTS_ERROR_ID, `no group ${groupName} on topic ${name} in namespace ${namespace}`);
    const cached = this.groupCache.get(this.groupKey(namespace, name, groupName));
    if (cached && cached.members.size > 0) {
      throw Conflict(EVENTS_ERROR_ID, `group ${groupName} of topic ${name} has ${cached.members.size} consumer(s) connected; stop them first`);
    }
    if (cached) this.evict(cached);
    this.storage.deleteGroup(namespace, name, groupName);
    await this.durable();
  }

  async setRetention(topic: string, policy: RetentionPolicy, options: NamespaceOptions = {}): Promise<TopicInfo> {
    const namespace = checkNamespace(options.namespace);
    const name = checkTopic(topic);
    const checked = checkRetention(policy);
    this.open();
    this.topicOrThrow(namespace, name);
    this.storage.setRetention(namespace, name, checked);
    await this.durable();
    return this.topicInfo(namespace, this.topicOrThrow(namespace, name));
  }

  // ---- consume -------------------------------------------------------------------------

  async consume(topic: string, options: ConsumeOptions): Promise<EngineConsumer> {
    const { namespace, topic: name, group: groupName, start, ...settings } = checkConsume(topic, options);
    this.open();
    const key = this.groupKey(namespace, name, groupName);
    if (!this.groupCache.has(key) && !this.storage.group(namespace, name, groupName)) {
      this.createGroup(namespace, name, groupName, start);
      // the group's start must be durable before the consumer counts as in place
      await this.durable();
      this.open();
    }
    // from here on nothing waits: the group found or loaded is the one joined
    const group = this.groupCache.get(key) ?? this.load(namespace, name, groupName);
    if (group.members.size >= LIMITS.membersPerGroup) {
      throw Conflict(EVENTS_ERROR_ID, `group ${groupName} of topic ${name} has ${LIMITS.membersPerGroup} consumers, the most it may have`);
    }
    const member = new Member(this, group, settings);
    group.members.add(member);
    // slots loaded with a later deadline (a nack's delay) need the group's timer
    if (group.members.size === 1) this.rearm(group);
    return member;
  }

  private createGroup(namespace: string, topic: string, name: string, start: Start): void {
    let t = this.storage.topic(namespace, topic);
    if (!t) {
      this.createTopic(namespace, topic);
      t = this.topicOrThrow(namespace, topic);
    }
    if (this.storage.countGroups(namespace, topic) >= LIMITS.groupsPerTopic) {
      throw Conflict(EVENTS_ERROR_ID, `topic ${topic} has ${LIMITS.groupsPerTopic} groups, the most it may have; delete one with deleteGroup`);
    }
    const last = this.visibleLast(namespace, t);
    let position: number;
    switch (start.kind) {
      case 'earliest':
        position = t.first - 1;
        break;
      case 'latest':
        position = last;
        break;
      case 'time':
        position = (this.storage.offsetAt(namespace, topic, start.time) ?? last + 1) - 1;
        break;
      case 'offset':
        if (start.offset > last + 1) throw bad(`offset ${start.offset} is past the end of topic ${topic} (its last offset is ${last})`);
        position = start.offset - 1;
        break;
    }
    position = Math.min(Math.max(position, t.first - 1), last);
    this.storage.putGroup(namespace, topic, { name, committed: position, cursor: position });
  }

  /** A group's state from the storage; held slots of an earlier process are due at once. */
  private load(namespace: string, topic: string, name: string): Group {
    const record = this.storage.group(namespace, topic, name);
    if (!record) throw NotFound(EVENTS_ERROR_ID, `no group ${name} on topic ${topic} in namespace ${namespace}`);
    const group = new Group(this.groupKey(namespace, topic, name), namespace, topic, name);
    group.committed = record.committed;
    group.cursor = record.cursor;
    const now = this.now();
    for (const r of this.storage.inflight(namespace, topic, name)) {
      group.inflight.set(r.offset, { offset: r.offset, attempts: r.attempts, deadline: r.held ? Math.min(r.deadline, now) : r.deadline, member: undefined, lastError: r.lastError });
    }
    this.groupCache.set(group.key, group);
    const tk = topicKey(namespace, topic);
    let set = this.topicGroups.get(tk);
    if (!set) this.topicGroups.set(tk, (set = new Set()));
    set.add(group);
    return group;
  }

  private evict(group: Group): void {
    if (group.timer) clearTimeout(group.timer);
    group.timer = undefined;
    group.timerAt = Infinity;
    this.groupCache.delete(group.key);
    const tk = topicKey(group.namespace, group.topic);
    const set = this.topicGroups.get(tk);
    set?.delete(group);
    if (set?.size === 0) this.topicGroups.delete(tk);
  }

  /** @internal a member asks for its next delivery */
  pull(member: Member): Promise<IteratorResult<Delivery>> {
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      member.waiters.push({ resolve, reject });
      this.enqueue(member);
      this.serve(member.owner);
    });
  }

  /** @internal */
  ack(member: Member, id: string): Promise<void> {
    const slot = this.settleable(member, id);
    const group = member.owner;
    member.forget(id, 'acked');
    this.done(group, slot);
    this.enqueue(member);
    this.serve(group);
    return this.durable();
  }

  /** @internal */
  nack(member: Member, id: string, delay: unknown, reason: unknown): Promise<void> {
    const ms = checkInt(delay, 'delay', 0, LIMITS.nackDelayMax, 0);
    const why = checkReason(reason) ?? 'nacked';
    const slot = this.settleable(member, id);
    const group = member.owner;
    const now = this.now();
    member.forget(id, 'nacked');
    slot.member = undefined;
    slot.lastError = why;
    slot.deadline = now + ms;
    this.failed(group, slot, member.settings);
    if (ms > 0) this.wakeAt(group, slot.deadline);
    this.enqueue(member);
    this.serve(group);
    return this.durable();
  }

  /**
   * @internal Gives a delivery back as if it had not been made (its attempt does not
   * count): for deliveries a remote consumer received but never showed its user.
   */
  release(member: Member, id: string): Promise<void> {
    const slot = this.settleable(member, id);
    member.forget(id, 'released');
    slot.member = undefined;
    slot.attempts = Math.max(0, slot.attempts - 1);
    slot.deadline = this.now();
    this.putSlot(member.owner, slot);
    this.enqueue(member);
    this.serve(member.owner);
    return this.durable();
  }

  /** @internal A member leaves: what it holds goes back to the group at once. */
  leave(member: Member, reason: string): Promise<void> {
    const group = member.owner;
    const now = this.now();
    for (const [id, slot] of member.live) {
      member.forget(id, 'expired');
      slot.member = undefined;
      slot.deadline = now;
      slot.lastError = reason;
      this.failed(group, slot, member.settings);
    }
    for (const w of member.waiters.splice(0)) w.resolve({ value: undefined, done: true });
    group.members.delete(member);
    const i = group.waiting.indexOf(member);
    if (i >= 0) group.waiting.splice(i, 1);
    if (group.members.size === 0) this.evict(group);
    else this.serve(group);
    return this.closed ? Promise.resolve() : this.durable().catch(() => undefined);
  }

  /** The live slot of a delivery id, or the error that says why it cannot be settled. */
  private settleable(member: Member, id: string): Slot {
    const where = `topic ${member.topic}, group ${member.owner.name}`;
    if (typeof id !== 'string' || id.length === 0 || id.length > 64) throw NotFound(EVENTS_ERROR_ID, `no delivery ${shown(id)} for this consumer of ${where}`);
    const slot = member.live.get(id);
    if (!slot) {
      const past = member.past.get(id);
      if (past === 'acked' || past === 'nacked') throw Conflict(EVENTS_ERROR_ID, `delivery ${id} of ${where} was already ${past}`);
      if (past === 'released') throw Conflict(EVENTS_ERROR_ID, `delivery ${id} of ${where} was given back to the group`);
      if (past === 'expired') throw gone(`delivery ${id} of ${where} is over: its ack wait expired or its consumer left, and the event is handed out again`);
      if (past === 'removed') throw gone(`the event of delivery ${id} of ${where} was removed by retention`);
      if (member.closed) throw gone(`this consumer of ${where} is closed; its deliveries went back to the group`);
      throw NotFound(EVENTS_ERROR_ID, `no delivery ${shown(id)} for this consumer of ${where}`);
    }
    const now = this.now();
    if (slot.deadline <= now) {
      this.expire(member.owner, slot, now);
      this.serve(member.owner);
      throw gone(`delivery ${id} of ${where} is over: its ack wait of ${member.settings.ackWait} ms expired and the event is handed out again`);
    }
    return slot;
  }

  /** Puts a member in the group's queue if it waits and has room. */
  private enqueue(member: Member): void {
    const group = member.owner;
    if (member.closed || member.waiters.length === 0 || member.live.size >= member.settings.maxInFlight) return;
    if (!group.waiting.includes(member)) group.waiting.push(member);
  }

  /** Hands out what is due or new to the members waiting, in turn. */
  private serve(group: Group): void {
    if (this.closed || !this.groupCache.has(group.key)) return;
    const now = this.now();
    while (group.waiting.length > 0) {
      const member = group.waiting[0] as Member;
      if (member.closed || member.waiters.length === 0 || member.live.size >= member.settings.maxInFlight) {
        group.waiting.shift();
        continue;
      }
      const next = this.nextSlot(group, member, now);
      if (!next) break;
      group.waiting.shift();
      this.handOut(group, next.slot, next.stored, member, now);
      // round robin: a member that wants more waits behind the others
      this.enqueue(member);
    }
  }

  /** The lowest due slot, else the next event not handed out yet. */
  private nextSlot(group: Group, member: Member, now: number): { slot: Slot; stored: StoredEvent } | undefined {
    const { namespace, topic } = group;
    for (const slot of group.inflight.values()) {
      if (slot.member || slot.deadline > now) continue;
      // an attempt of an earlier process failed with it (a crash counts as a failure)
      if (slot.attempts > member.settings.maxRetries) {
        this.deadLetter(group, slot, member.settings);
        continue;
      }
      const stored = this.storage.event(namespace, topic, slot.offset);
      if (!stored) {
        this.drop(group, slot);
        continue;
      }
      return { slot, stored };
    }
    const t = this.storage.topic(namespace, topic);
    if (!t) return undefined;
    const last = this.visibleLast(namespace, t);
    while (group.cursor < last) {
      const offset = Math.max(group.cursor + 1, t.first);
      const stored = offset <= last ? this.storage.event(namespace, topic, offset) : undefined;
      if (!stored) {
        // removed by retention meanwhile
        group.cursor = Math.min(Math.max(offset, t.first - 1), last);
        this.advance(group);
        continue;
      }
      group.cursor = offset;
      const slot: Slot = { offset, attempts: 0, deadline: 0, member: undefined, lastError: undefined };
      group.inflight.set(offset, slot);
      return { slot, stored };
    }
    return undefined;
  }

  private handOut(group: Group, slot: Slot, stored: StoredEvent, member: Member, now: number): void {
    slot.attempts++;
    slot.member = member;
    slot.deadline = now + member.settings.ackWait;
    this.putSlot(group, slot);
    this.storage.putGroup(group.namespace, group.topic, { name: group.name, committed: group.committed, cursor: group.cursor });
    // hand-outs need not be durable before they are sent: one lost in a crash is simply
    // handed out again (as a first attempt)
    this.lazy();
    const id = `${slot.offset}.${slot.attempts}`;
    member.live.set(id, slot);
    const delivery = new EngineDelivery(member, id, toEvent(group.topic, stored), slot.attempts, slot.deadline);
    this.wakeAt(group, slot.deadline);
    (member.waiters.shift() as Waiter).resolve({ value: delivery, done: false });
  }

  /** A held slot whose deadline passed: its member loses it, and it is due again. */
  private expire(group: Group, slot: Slot, now: number): void {
    const member = slot.member;
    if (!member) return;
    member.forget(`${slot.offset}.${slot.attempts}`, 'expired');
    slot.member = undefined;
    slot.deadline = now;
    slot.lastError = `not acknowledged within the ack wait of ${member.settings.ackWait} ms`;
    this.failed(group, slot, member.settings);
    this.enqueue(member);
  }

  /** A failed attempt: due again, or a dead letter after the last one. */
  private failed(group: Group, slot: Slot, settings: Settings): void {
    if (slot.attempts > settings.maxRetries) this.deadLetter(group, slot, settings);
    else this.putSlot(group, slot);
  }

  private deadLetter(group: Group, slot: Slot, settings: Settings): void {
    const stored = this.storage.event(group.namespace, group.topic, slot.offset);
    if (stored) {
      const metadata: Record<string, string> = {
        ...parseMetadata(stored.metadata),
        [DEAD_LETTER.topic]: group.topic,
        [DEAD_LETTER.offset]: String(slot.offset),
        [DEAD_LETTER.id]: stored.id,
        [DEAD_LETTER.group]: group.name,
        [DEAD_LETTER.attempts]: String(slot.attempts),
        [DEAD_LETTER.error]: slot.lastError ?? '',
      };
      const sorted = JSON.stringify(Object.fromEntries(Object.entries(metadata).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
      const { namespace } = group;
      const dead = settings.deadLetter;
      // the dead-letter topic may exceed the namespace's topic count: losing the event would be worse
      if (!this.storage.topic(namespace, dead)) this.storage.createTopic(namespace, dead);
      const appended = this.append(namespace, dead, stored.payload, sorted, randomUUID());
      this.durable().then(
        () => this.reveal(namespace, dead, appended.offset),
        () => undefined,
      );
    }
    this.drop(group, slot);
  }

  /** The event is done for the group. */
  private done(group: Group, slot: Slot): void {
    this.drop(group, slot);
  }

  private drop(group: Group, slot: Slot): void {
    group.inflight.delete(slot.offset);
    this.storage.deleteInflight(group.namespace, group.topic, group.name, slot.offset);
    this.advance(group);
  }

  /** Moves `committed` up to just below the lowest slot (or to the cursor when none). */
  private advance(group: Group): void {
    const first = group.inflight.keys().next();
    const floor = first.done ? group.cursor : first.value - 1;
    if (floor !== group.committed) {
      group.committed = floor;
      this.storage.putGroup(group.namespace, group.topic, { name: group.name, committed: group.committed, cursor: group.cursor });
    }
  }

  private putSlot(group: Group, slot: Slot): void {
    this.storage.putInflight(group.namespace, group.topic, group.name, {
      offset: slot.offset,
      attempts: slot.attempts,
      deadline: slot.deadline,
      held: slot.member !== undefined,
      lastError: slot.lastError,
    });
  }

  /** Makes sure the group's timer fires by `at`. */
  private wakeAt(group: Group, at: number): void {
    if (at >= group.timerAt || group.members.size === 0) return;
    if (group.timer) clearTimeout(group.timer);
    group.timerAt = at;
    // not unref'd: a consumer waiting for a redelivery keeps its process alive, as its
    // socket would (the timer goes when the group's last consumer closes)
    group.timer = setTimeout(() => this.tick(group), Math.max(0, at - this.now()));
  }

  /** Sets the group's timer for its earliest future deadline. */
  private rearm(group: Group): void {
    const now = this.now();
    let next = Infinity;
    for (const slot of group.inflight.values()) if (slot.deadline > now && slot.deadline < next) next = slot.deadline;
    if (next < Infinity) this.wakeAt(group, next);
  }

  /** Deadlines passed: expire held slots, serve due ones, and wait for the next deadline. */
  private tick(group: Group): void {
    group.timer = undefined;
    group.timerAt = Infinity;
    if (this.closed || !this.groupCache.has(group.key)) return;
    const now = this.now();
    let next = Infinity;
    for (const slot of group.inflight.values()) {
      if (slot.member && slot.deadline <= now) this.expire(group, slot, now);
      else if (slot.deadline > now && slot.deadline < next) next = slot.deadline;
    }
    this.lazy();
    this.serve(group);
    if (next < Infinity) this.wakeAt(group, next);
  }

  // ---- topics, appends and visibility -------------------------------------------------

  /** Refuses an event of `size` bytes that would take the namespace past `max`. */
  private admit(namespace: string, size: number, max: number): void {
    const used = this.storage.namespaceBytes(namespace);
    if (used + size > max) throw (this.quota as EventsQuota).refuse(namespace, used, max);
  }

  /** Payload and metadata bytes of the events a namespace holds (what eventsBytes counts). */
  namespaceBytes(namespace: string): number {
    return this.storage.namespaceBytes(checkNamespace(namespace));
  }

  private createTopic(namespace: string, topic: string): void {
    if (this.storage.countTopics(namespace) >= LIMITS.topicsPerNamespace) {
      throw Conflict(EVENTS_ERROR_ID, `namespace ${namespace} has ${LIMITS.topicsPerNamespace} topics, the most it may have`);
    }
    this.storage.createTopic(namespace, topic);
  }

  private append(namespace: string, topic: string, payload: string, metadata: string | undefined, id: string): StoredEvent {
    const t = this.topicOrThrow(namespace, topic);
    const key = topicKey(namespace, topic);
    if (!this.visible.has(key)) this.visible.set(key, t.last);
    const stored: StoredEvent = { offset: t.last + 1, id, ts: Math.max(this.now(), t.lastTs), payload, metadata };
    this.storage.append(namespace, topic, stored, eventSize(payload, metadata));
    return stored;
  }

  /** A committed append becomes visible to readers and groups. */
  private reveal(namespace: string, topic: string, offset: number): void {
    const key = topicKey(namespace, topic);
    const seen = this.visible.get(key);
    if (seen !== undefined) {
      const t = this.storage.topic(namespace, topic);
      if (!t || offset >= t.last) this.visible.delete(key);
      else if (offset > seen) this.visible.set(key, offset);
    }
    for (const group of this.topicGroups.get(key) ?? []) this.serve(group);
  }

  private visibleLast(namespace: string, t: TopicRecord): number {
    return this.visible.get(topicKey(namespace, t.name)) ?? t.last;
  }

  private topicOrThrow(namespace: string, topic: string): TopicRecord {
    const t = this.storage.topic(namespace, topic);
    if (!t) throw NotFound(EVENTS_ERROR_ID, `no topic ${topic} in namespace ${namespace}`);
    return t;
  }

  private topicInfo(namespace: string, t: TopicRecord): TopicInfo {
    const last = this.visibleLast(namespace, t);
    const info: TopicInfo = { name: t.name, count: t.count, bytes: t.bytes, first: Math.min(t.first, last + 1), last };
    if (t.lastTs > 0) info.lastTimestamp = t.lastTs;
    if (Object.keys(t.retention).length > 0) info.retention = { ...t.retention };
    return info;
  }

  private groupKey(namespace: string, topic: string, group: string): string {
    return `${namespace}\n${topic}\n${group}`;
  }

  // ---- retention -----------------------------------------------------------------------

  /** Applies every topic's retention now (also done every sweepInterval ms). */
  async sweep(): Promise<void> {
    this.open();
    const caps = await this.retentionCaps();
    this.open();
    const now = this.now();
    let changed = false;
    for (const { namespace, topic: t } of this.storage.allTopics()) {
      const policy = { ...this.retention, ...t.retention };
      const maxAge = cappedAge(policy.maxAge, caps.get(namespace));
      const last = this.visibleLast(namespace, t);
      let before = t.first;
      if (maxAge !== undefined) before = Math.max(before, this.storage.offsetAt(namespace, t.name, now - maxAge) ?? t.last + 1);
      if (policy.maxEvents > 0) before = Math.max(before, t.last - policy.maxEvents + 1);
      if (policy.maxBytes > 0) before = Math.max(before, this.storage.offsetKeepingBytes(namespace, t.name, policy.maxBytes));
      // events not committed yet are not the sweep's to remove
      before = Math.min(before, last + 1);
      if (before <= t.first) continue;
      this.storage.trimBefore(namespace, t.name, before);
      changed = true;
      for (const group of this.topicGroups.get(topicKey(namespace, t.name)) ?? []) {
        for (const slot of group.inflight.values()) {
          if (slot.offset >= before) break;
          slot.member?.forget(`${slot.offset}.${slot.attempts}`, 'removed');
          group.inflight.delete(slot.offset);
        }
        group.cursor = Math.max(group.cursor, before - 1);
        group.committed = Math.max(group.committed, before - 1);
        this.advance(group);
        for (const m of group.members) this.enqueue(m);
        this.serve(group);
      }
    }
    if (changed) await this.durable();
  }

  /**
   * The retention (ms) of each namespace that has one. A namespace whose limits cannot be
   * read keeps its topics' own retention this sweep; the next one asks again.
   */
  private async retentionCaps(): Promise<Map<string, number>> {
    const caps = new Map<string, number>();
    const quota = this.quota;
    if (!quota) return caps;
    const namespaces = [...new Set(this.storage.allTopics().map((t) => t.namespace))];
    await Promise.all(
      namespaces.map(async (namespace) => {
        try {
          const maxAge = (await quota.limits(namespace)).maxAge;
          if (maxAge !== null) caps.set(namespace, maxAge);
        } catch (err) {
          this.logger.warn({ err, namespace }, 'events: cannot read the namespace retention; its topics keep their own this sweep');
        }
      }),
    );
    return caps;
  }

  // ---- life cycle ----------------------------------------------------------------------

  private open(): void {
    if (this.closed) throw ServiceUnavailable(EVENTS_ERROR_ID, 'the events engine is closed');
  }

  /** Resolves when every write so far is durable; a failed commit resets the groups. */
  private durable(): Promise<void> {
    return this.storage.commit().catch((err: unknown) => {
      throw this.fail(err);
    });
  }

  /** Writes that need not be awaited are committed all the same; a failure resets. */
  private lazy(): void {
    this.storage.commit().catch((err: unknown) => this.fail(err));
  }

  /**
   * The storage lost writes it had taken (a failed commit rolls back): the groups here
   * may hold state it no longer has, so every consumer ends with the error, and the
   * groups are read again from the storage on the next consume.
   */
  private fail(err: unknown): MicroError {
    if (err instanceof MicroError) return err;
    this.logger.error({ err }, 'events storage failed to commit');
    const e = ServiceUnavailable(EVENTS_ERROR_ID, `the events storage failed: ${(err as Error)?.message ?? String(err)}`);
    this.visible.clear();
    for (const group of [...this.groupCache.values()]) {
      for (const member of group.members) member.fail(e);
      this.evict(group);
    }
    return e;
  }

  /**
   * Deletes every topic of a namespace with its events, groups and in-flight deliveries
   * (the server's namespace purge); its consumers connected here end first.
   */
  async purgeNamespace(namespace: string): Promise<void> {
    const ns = checkNamespace(namespace);
    this.open();
    for (const group of [...this.groupCache.values()]) {
      if (group.namespace !== ns) continue;
      for (const member of [...group.members]) await member.close('the namespace was deleted');
      this.evict(group);
    }
    for (const key of [...this.visible.keys()]) if (key.startsWith(topicKey(ns, ''))) this.visible.delete(key);
    this.storage.deleteNamespace(ns);
    await this.durable();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const group of [...this.groupCache.values()]) {
      for (const member of [...group.members]) await member.close('the events engine closed');
      this.evict(group);
    }
    this.closed = true;
    await this.storage.commit().catch((err: unknown) => this.logger.error({ err }, 'events storage failed to commit on close'));
    this.storage.close();
  }
}

/**
 * The consumer EventsEngine returns: a Consumer that also settles deliveries by id (what
 * the RPC handler needs), and can give back a delivery its remote user never saw.
 */
export interface EngineConsumer extends Consumer {
  /** names the member, e.g. in logs */
  readonly id: string;
  ack(id: string): Promise<void>;
  nack(id: string, delay?: number, reason?: string): Promise<void>;
  release(id: string): Promise<void>;
  close(reason?: string): Promise<void>;
}

interface Waiter {
  resolve: (r: IteratorResult<Delivery>) => void;
  reject: (err: unknown) => void;
}

/** One consumer: a member of a group. */
class Member implements EngineConsumer {
  readonly id = randomHex(8);
  readonly topic: string;
  readonly waiters: Waiter[] = [];
  /** deliveries held now, by id */
  readonly live = new Map<string, Slot>();
  /** recent deliveries no longer held, and why (for clear errors on late settles) */
  readonly past = new Map<string, Past>();
  closed = false;
  private failure: unknown;

  readonly group: string;

  constructor(
    private readonly engine: EventsEngine,
    /** the group's state */
    readonly owner: Group,
    readonly settings: Settings,
  ) {
    this.topic = owner.topic;
    this.group = owner.name;
  }

  forget(id: string, why: Past): void {
    this.live.delete(id);
    if (this.past.size >= PAST_LIMIT) this.past.delete(this.past.keys().next().value as string);
    this.past.set(id, why);
  }

  next(): Promise<IteratorResult<Delivery>> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    return this.engine.pull(this);
  }

  async return(): Promise<IteratorResult<Delivery>> {
    await this.close();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** The settles of a delivery, through its consumer (a closed one refuses them). */
  ack(id: string): Promise<void> {
    try {
      return this.engine.ack(this, id);
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  nack(id: string, delay?: unknown, reason?: unknown): Promise<void> {
    try {
      return this.engine.nack(this, id, delay, reason);
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  release(id: string): Promise<void> {
    try {
      return this.engine.release(this, id);
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  close(reason = 'the consumer closed before acknowledging'): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return this.engine.leave(this, reason);
  }

  /** Ends with an error: waiting and later reads reject with it. */
  fail(err: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.failure = err;
    for (const w of this.waiters.splice(0)) w.reject(err);
  }
}

/** A delivery of an engine's consumer (this engine's, or another's such as JetStream): acks and nacks go to it. */
export class EngineDelivery implements Delivery {
  constructor(
    private readonly member: Pick<EngineConsumer, 'ack' | 'nack'>,
    readonly id: string,
    readonly event: Event,
    readonly attempt: number,
    readonly deadline: number,
  ) {}

  ack(): Promise<void> {
    return this.member.ack(this.id);
  }

  nack(delay?: number, reason?: string): Promise<void> {
    return this.member.nack(this.id, delay, reason);
  }
}

