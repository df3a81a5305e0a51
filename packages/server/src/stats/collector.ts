import { Client, errors, type Service, formatPrometheus, mergeFamilies, sanitizeFamilies, type Events, type Logger, type MetricFamily, type Registry, type RuntimeService, type StatsReadResponse } from '@micro/sdk';
import { GatewayMetrics } from './gateway-metrics.js';

/** What the collector reads of the runtime: its services with their instances. */
export interface RuntimeSource {
  read(req: { namespace?: string }): Promise<{ services: RuntimeService[] }>;
}

export interface StatsCollectorOptions {
  registry: Registry;
  /** ms to wait for one instance's Debug.Metrics (default 2,000) */
  timeout?: number;
  /** most instances asked per collection (default 500) */
  maxInstances?: number;
  /** most topics whose groups are read per collection (default 200) */
  maxTopics?: number;
  logger?: Logger;
}

const NAMESPACE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

interface Collected {
  families: MetricFamily[];
  /** registry node id → the runtime's instance id (node metadata `instance`), for nodes the runtime started */
  runtimeIds: Map<string, string>;
  unreachable: string[];
  dropped: number;
}

/**
 * Collects the metrics of a namespace when asked (a scrape, `micro stats`): the
 * Debug.Metrics of every instance in the registry, the gateway's counters, the runtime's
 * restarts and the consumer groups of the events engine. Every sample carries the
 * namespace label, set here (an instance cannot claim another namespace's).
 */
export class StatsCollector {
  readonly gateway = new GatewayMetrics();
  private runtime: RuntimeSource | undefined;
  private events: Pick<Events, 'topics' | 'groups'> | undefined;
  private readonly clients = new Map<string, Client>();
  /** services of this process (the core services), read directly rather than over RPC */
  private readonly local = new Map<string, Pick<Service, 'nodeId' | 'metrics'>>();
  private readonly timeout: number;
  private readonly maxInstances: number;
  private readonly maxTopics: number;

  constructor(private readonly options: StatsCollectorOptions) {
    this.timeout = options.timeout ?? 2_000;
    this.maxInstances = options.maxInstances ?? 500;
    this.maxTopics = options.maxTopics ?? 200;
  }

  /** The runtime whose restarts are reported (set once it exists). */
  setRuntime(runtime: RuntimeSource | undefined): void {
    this.runtime = runtime;
  }

  /** A service of this process: its metrics are read directly (core services answer Debug.Metrics only with a token). */
  addLocal(service: Pick<Service, 'nodeId' | 'metrics'>): void {
    this.local.set(service.nodeId, service);
  }

  /** The events engine whose consumer groups are reported. */
  setEvents(events: Pick<Events, 'topics' | 'groups'> | undefined): void {
    this.events = events;
  }

  /** The namespace's figures in the Prometheus text format. */
  async prometheus(namespace: string): Promise<string> {
    return formatPrometheus((await this.collect(namespace)).families);
  }

  /** The namespace's figures as a table (stats.Read, `micro stats`). */
  async read(namespace: string): Promise<StatsReadResponse> {
    const { families, unreachable, dropped, runtimeIds } = await this.collect(namespace);
    return {
      namespace,
      endpoints: table(families, 'micro_calls_total', 'micro_call_duration_seconds'),
      gateway: table(families, 'micro_gateway_requests_total', 'micro_gateway_request_duration_seconds'),
      instances: instances(families, runtimeIds),
      groups: groupsOf(families),
      unreachable,
      dropped,
    };
  }

  async collect(namespace: string): Promise<Collected> {
    if (!NAMESPACE.test(namespace)) throw errors.BadRequest('stats', 'invalid namespace');
    const lists: MetricFamily[][] = [];
    const unreachable: string[] = [];
    let dropped = 0;
    const runtimeIds = new Map<string, string>();
    const [fromInstances, gateway, runtime, events] = await Promise.all([this.instances(namespace, runtimeIds), this.gatewayFamilies(namespace), this.runtimeFamilies(namespace), this.eventFamilies(namespace)]);
    for (const r of fromInstances) {
      if ('error' in r) unreachable.push(r.instance);
      else {
        lists.push(r.families);
        dropped += r.dropped;
      }
    }
    lists.push(gateway, runtime, events);
    return { families: mergeFamilies(lists), unreachable: unreachable.sort(), dropped, runtimeIds };
  }

  private client(namespace: string): Client {
    let c = this.clients.get(namespace);
    if (!c) {
      if (this.clients.size >= 1_000) this.clients.clear();
      c = new Client({ namespace, registry: this.options.registry, timeout: this.timeout, retries: 0 });
      this.clients.set(namespace, c);
    }
    return c;
  }

  private async instances(namespace: string, runtimeIds: Map<string, string>): Promise<Array<{ instance: string; families: MetricFamily[]; dropped: number } | { instance: string; error: unknown }>> {
    const records = await this.options.registry.listServices({ namespace });
    const nodes = new Map<string, { service: string; address: string }>();
    for (const r of records) {
      for (const n of r.nodes) {
        if (nodes.size >= this.maxInstances) break;
        nodes.set(n.id, { service: r.name, address: n.address });
        const runtimeId = n.metadata?.instance;
        if (runtimeId) runtimeIds.set(n.id, runtimeId);
      }
    }
    const client = this.client(namespace);
    return Promise.all(
      [...nodes].map(async ([id, n]) => {
        try {
          const local = this.local.get(id);
          if (local) return { instance: id, ...sanitizeFamilies(await local.metrics.snapshot(), { namespace, instance: id }) };
          const res = (await client.call(n.service, 'Debug.Metrics', {}, { address: n.address, timeout: this.timeout })) as { metrics?: unknown } | null;
          const { families, dropped } = sanitizeFamilies(res?.metrics, { namespace, instance: id });
          return { instance: id, families, dropped };
        } catch (err) {
          this.options.logger?.debug({ err, instance: id }, 'Debug.Metrics did not answer');
          return { instance: id, error: err };
        }
      }),
    );
  }

  /** The gateway's series of this namespace; the ones without a namespace (all failures) for namespace micro only. */
  private async gatewayFamilies(namespace: string): Promise<MetricFamily[]> {
    const all = this.gateway.families();
    return all.map((f) => ({
      ...f,
      values: f.values.filter((v) => (v.labels.namespace === undefined ? namespace === 'micro' : v.labels.namespace === namespace)),
    }));
  }

  private async runtimeFamilies(namespace: string): Promise<MetricFamily[]> {
    if (!this.runtime) return [];
    let services: RuntimeService[];
    try {
      services = (await this.runtime.read({ namespace })).services;
    } catch (err) {
      this.options.logger?.warn({ err }, 'stats: the runtime could not be read');
      return [];
    }
    const restarts: MetricFamily = { name: 'micro_runtime_restarts_total', help: 'Restarts of an instance by the runtime', type: 'counter', values: [] };
    const up: MetricFamily = { name: 'micro_runtime_instances', help: 'Instances of a service run by the runtime, by state', type: 'gauge', values: [] };
    for (const s of services) {
      const byState = new Map<string, number>();
      for (const i of s.instances) {
        restarts.values.push({ value: i.restarts, labels: { namespace, service: s.name, instance: i.id } });
        byState.set(i.state, (byState.get(i.state) ?? 0) + 1);
      }
      for (const [state, n] of byState) up.values.push({ value: n, labels: { namespace, service: s.name, state } });
    }
    return [restarts, up];
  }

  private async eventFamilies(namespace: string): Promise<MetricFamily[]> {
    if (!this.events) return [];
    const pending: MetricFamily = { name: 'micro_events_group_pending', help: 'Events of a topic not yet done by a consumer group (its lag)', type: 'gauge', values: [] };
    const inflight: MetricFamily = { name: 'micro_events_group_inflight', help: 'Events handed to a consumer group and not settled', type: 'gauge', values: [] };
    try {
      const topics = (await this.events.topics({ namespace })).slice(0, this.maxTopics);
      const groups = await Promise.all(topics.map((t) => this.events?.groups(t.name, { namespace }).catch(() => []) ?? []));
      topics.forEach((t, i) => {
        for (const g of groups[i] ?? []) {
          pending.values.push({ value: g.pending, labels: { namespace, topic: t.name, group: g.name } });
          inflight.values.push({ value: g.inflight, labels: { namespace, topic: t.name, group: g.name } });
        }
      });
    } catch (err) {
      this.options.logger?.warn({ err }, 'stats: the events engine could not be read');
      return [];
    }
    return [pending, inflight];
  }
}

function value(families: MetricFamily[], name: string): MetricFamily | undefined {
  return families.find((f) => f.name === name);
}

/** calls, errors, mean ms per service/endpoint from a counter and its histogram */
function table(families: MetricFamily[], counter: string, histogram: string): StatsReadResponse['endpoints'] {
  const rows = new Map<string, { service: string; endpoint: string; calls: number; errors: number; sum: number; count: number; instances: Set<string> }>();
  const row = (labels: Record<string, string | number>) => {
    const service = String(labels.service ?? '');
    const endpoint = String(labels.endpoint ?? '');
    const key = `${service}\u0000${endpoint}`;
    let r = rows.get(key);
    if (!r) rows.set(key, (r = { service, endpoint, calls: 0, errors: 0, sum: 0, count: 0, instances: new Set() }));
    if (labels.instance !== undefined) r.instances.add(String(labels.instance));
    return r;
  };
  for (const s of value(families, counter)?.values ?? []) {
    const r = row(s.labels);
    r.calls += s.value;
    if (Number(s.labels.code) >= 400) r.errors += s.value;
  }
  for (const s of value(families, histogram)?.values ?? []) {
    if (s.metricName === `${histogram}_sum`) row(s.labels).sum += s.value;
    else if (s.metricName === `${histogram}_count`) row(s.labels).count += s.value;
  }
  return [...rows.values()]
    .map((r) => ({ service: r.service, endpoint: r.endpoint, calls: r.calls, errors: r.errors, meanMs: r.count > 0 ? Math.round((r.sum / r.count) * 1e6) / 1e3 : 0, instances: r.instances.size }))
    .sort((a, b) => a.service.localeCompare(b.service) || a.endpoint.localeCompare(b.endpoint));
}

function instances(families: MetricFamily[], runtimeIds: Map<string, string>): StatsReadResponse['instances'] {
  const rows = new Map<string, StatsReadResponse['instances'][number]>();
  // each instance's service, from its call counters (an instance that served nothing yet has none)
  const serviceOf = new Map<string, string>();
  for (const s of value(families, 'micro_call_duration_seconds')?.values ?? []) serviceOf.set(String(s.labels.instance), String(s.labels.service));
  for (const s of value(families, 'process_resident_memory_bytes')?.values ?? []) {
    const id = String(s.labels.instance);
    rows.set(id, { service: serviceOf.get(id) ?? id.replace(/-[0-9a-f]{16}$/, ''), instance: id, memoryBytes: s.value });
  }
  // the runtime names its instances by its own ids: the node of each, when it registered
  const nodeOf = new Map<string, string>();
  for (const [node, runtimeId] of runtimeIds) nodeOf.set(runtimeId, node);
  for (const s of value(families, 'micro_runtime_restarts_total')?.values ?? []) {
    const id = nodeOf.get(String(s.labels.instance)) ?? String(s.labels.instance);
    const have = rows.get(id);
    if (have) have.restarts = s.value;
    else rows.set(id, { service: String(s.labels.service), instance: id, restarts: s.value });
  }
  return [...rows.values()].sort((a, b) => a.service.localeCompare(b.service) || a.instance.localeCompare(b.instance));
}

function groupsOf(families: MetricFamily[]): StatsReadResponse['groups'] {
  const inflight = new Map<string, number>();
  for (const s of value(families, 'micro_events_group_inflight')?.values ?? []) inflight.set(`${s.labels.topic}\u0000${s.labels.group}`, s.value);
  return (value(families, 'micro_events_group_pending')?.values ?? []).map((s) => ({
    topic: String(s.labels.topic),
    group: String(s.labels.group),
    pending: s.value,
    inflight: inflight.get(`${s.labels.topic}\u0000${s.labels.group}`) ?? 0,
  }));
}
