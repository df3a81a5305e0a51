import { EventsEngine, type EngineOptions } from './engine.js';
import type { RetentionPolicy } from './events.js';
import type { EventStorage, GroupRecord, InflightRecord, StoredEvent, TopicRecord } from './storage.js';

/**
 * Events in memory, for unit tests and single-process programs: the same engine as
 * micro server's (offsets, groups, acks, retries, dead letters, retention, every bound
 * and error), over maps instead of tables. Nothing survives the process.
 *
 * ```ts
 * const events = new MemoryEvents();
 * const consumer = await events.consume('orders', { group: 'billing' });
 * await events.publish('orders', { id: 1 });
 * for await (const d of consumer) { handle(d.event.payload); await d.ack(); }
 * ```
 */
export class MemoryEvents extends EventsEngine {
  constructor(options: EngineOptions = {}) {
    super('memory', new MemoryStorage(), options);
  }
}

interface MemoryTopic {
  record: TopicRecord;
  /** the events held, offsets first..last without gaps */
  events: StoredEvent[];
  sizes: number[];
  ids: Map<string, number>;
  groups: Map<string, { record: GroupRecord; inflight: Map<number, InflightRecord> }>;
}

const DONE = Promise.resolve();

/** EventStorage in maps: writes are durable as soon as they are made (there is no disk). */
export class MemoryStorage implements EventStorage {
  private readonly namespaces = new Map<string, Map<string, MemoryTopic>>();

  private get(namespace: string, topic: string): MemoryTopic | undefined {
    return this.namespaces.get(namespace)?.get(topic);
  }

  private must(namespace: string, topic: string): MemoryTopic {
    const t = this.get(namespace, topic);
    if (!t) throw new Error(`no topic ${topic} in namespace ${namespace}`);
    return t;
  }

  topic(namespace: string, topic: string): TopicRecord | undefined {
    const t = this.get(namespace, topic);
    return t && { ...t.record, retention: { ...t.record.retention } };
  }

  topics(namespace: string): TopicRecord[] {
    const ns = this.namespaces.get(namespace);
    if (!ns) return [];
    return [...ns.keys()].sort().map((name) => this.topic(namespace, name) as TopicRecord);
  }

  allTopics(): Array<{ namespace: string; topic: TopicRecord }> {
    const out: Array<{ namespace: string; topic: TopicRecord }> = [];
    for (const [namespace, ns] of this.namespaces) for (const name of ns.keys()) out.push({ namespace, topic: this.topic(namespace, name) as TopicRecord });
    return out;
  }

  countTopics(namespace: string): number {
    return this.namespaces.get(namespace)?.size ?? 0;
  }

  namespaceBytes(namespace: string): number {
    let bytes = 0;
    for (const t of this.namespaces.get(namespace)?.values() ?? []) bytes += t.record.bytes;
    return bytes;
  }

  createTopic(namespace: string, topic: string): void {
    let ns = this.namespaces.get(namespace);
    if (!ns) this.namespaces.set(namespace, (ns = new Map()));
    if (ns.has(topic)) return;
    ns.set(topic, {
      record: { name: topic, last: 0, first: 1, count: 0, bytes: 0, lastTs: 0, retention: {} },
      events: [],
      sizes: [],
      ids: new Map(),
      groups: new Map(),
    });
  }

  setRetention(namespace: string, topic: string, policy: RetentionPolicy): void {
    this.must(namespace, topic).record.retention = { ...policy };
  }

  append(namespace: string, topic: string, event: StoredEvent, size: number): void {
    const t = this.must(namespace, topic);
    if (event.offset !== t.record.last + 1) throw new Error(`offset ${event.offset} does not follow ${t.record.last}`);
    t.events.push({ ...event });
    t.sizes.push(size);
    t.ids.set(event.id, event.offset);
    t.record.last = event.offset;
    t.record.count++;
    t.record.bytes += size;
    t.record.lastTs = event.ts;
  }

  event(namespace: string, topic: string, offset: number): StoredEvent | undefined {
    const t = this.get(namespace, topic);
    if (!t) return undefined;
    const e = t.events[offset - t.record.first];
    return e && { ...e };
  }

  eventById(namespace: string, topic: string, id: string): StoredEvent | undefined {
    const offset = this.get(namespace, topic)?.ids.get(id);
    return offset === undefined ? undefined : this.event(namespace, topic, offset);
  }

  events(namespace: string, topic: string, from: number, until: number, limit: number, maxBytes: number): StoredEvent[] {
    const t = this.get(namespace, topic);
    if (!t) return [];
    const out: StoredEvent[] = [];
    let bytes = 0;
    for (let offset = Math.max(from, t.record.first); offset <= Math.min(until, t.record.last) && out.length < limit; offset++) {
      const i = offset - t.record.first;
      if (out.length > 0 && bytes + (t.sizes[i] as number) > maxBytes) break;
      bytes += t.sizes[i] as number;
      out.push({ ...(t.events[i] as StoredEvent) });
    }
    return out;
  }

  offsetAt(namespace: string, topic: string, time: number): number | undefined {
    const t = this.get(namespace, topic);
    if (!t || t.events.length === 0) return undefined;
    // timestamps never decrease within a topic: binary search
    let lo = 0;
    let hi = t.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((t.events[mid] as StoredEvent).ts < time) lo = mid + 1;
      else hi = mid;
    }
    return lo < t.events.length ? (t.events[lo] as StoredEvent).offset : undefined;
  }

  offsetKeepingBytes(namespace: string, topic: string, maxBytes: number): number {
    const t = this.get(namespace, topic);
    if (!t) return 1;
    let bytes = t.record.bytes;
    let offset = t.record.first;
    for (let i = 0; i < t.sizes.length && bytes > maxBytes; i++) {
      bytes -= t.sizes[i] as number;
      offset++;
    }
    return offset;
  }

  trimBefore(namespace: string, topic: string, offset: number): void {
    const t = this.get(namespace, topic);
    if (!t || offset <= t.record.first) return;
    const n = Math.min(offset - t.record.first, t.events.length);
    for (const e of t.events.splice(0, n)) t.ids.delete(e.id);
    for (const size of t.sizes.splice(0, n)) t.record.bytes -= size;
    t.record.count -= n;
    t.record.first = offset;
    for (const g of t.groups.values()) {
      for (const o of g.inflight.keys()) if (o < offset) g.inflight.delete(o);
      g.record.committed = Math.max(g.record.committed, offset - 1);
      g.record.cursor = Math.max(g.record.cursor, offset - 1);
    }
  }

  group(namespace: string, topic: string, group: string): GroupRecord | undefined {
    const g = this.get(namespace, topic)?.groups.get(group);
    return g && { ...g.record };
  }

  groups(namespace: string, topic: string): Array<GroupRecord & { inflight: number }> {
    const t = this.get(namespace, topic);
    if (!t) return [];
    return [...t.groups.keys()].sort().map((name) => {
      const g = t.groups.get(name) as { record: GroupRecord; inflight: Map<number, InflightRecord> };
      return { ...g.record, inflight: g.inflight.size };
    });
  }

  countGroups(namespace: string, topic: string): number {
    return this.get(namespace, topic)?.groups.size ?? 0;
  }

  putGroup(namespace: string, topic: string, group: GroupRecord): void {
    const t = this.must(namespace, topic);
    const g = t.groups.get(group.name);
    if (g) g.record = { ...group };
    else t.groups.set(group.name, { record: { ...group }, inflight: new Map() });
  }

  deleteNamespace(namespace: string): void {
    this.namespaces.delete(namespace);
  }

  deleteGroup(namespace: string, topic: string, group: string): void {
    this.get(namespace, topic)?.groups.delete(group);
  }

  inflight(namespace: string, topic: string, group: string): InflightRecord[] {
    const g = this.get(namespace, topic)?.groups.get(group);
    if (!g) return [];
    return [...g.inflight.values()].sort((a, b) => a.offset - b.offset).map((r) => ({ ...r }));
  }

  putInflight(namespace: string, topic: string, group: string, record: InflightRecord): void {
    const g = this.get(namespace, topic)?.groups.get(group);
    if (!g) throw new Error(`no group ${group} on topic ${topic}`);
    g.inflight.set(record.offset, { ...record });
  }

  deleteInflight(namespace: string, topic: string, group: string, offset: number): void {
    this.get(namespace, topic)?.groups.get(group)?.inflight.delete(offset);
  }

  commit(): Promise<void> {
    return DONE;
  }

  close(): void {
    this.namespaces.clear();
  }
}
