import { MicroError, type Logger } from '@micro/sdk';
import type { NamespaceHook, NamespaceSource } from '../runtime.js';
import type { TenantNamespaces } from './tenant.js';

/**
 * The cluster namespaces kept in step with the platform's namespaces (README "When a
 * namespace is made"): the platform's hook (`changed`) ensures one at once, and a reconcile
 * loop makes what is missing, repairs what drifted and removes what belongs to a deleted
 * namespace — so a cluster that was down when a customer signed up, a change this server
 * missed (another node's, a plan's new period) or a purge whose cluster step failed is put
 * right without anyone calling again.
 */

export interface ReconcileOptions {
  /** ms between two passes over every namespace of the source (MICRO_KUBERNETES_RECONCILE; default 10 minutes) */
  intervalMs?: number;
  /** ms before a namespace whose ensure failed is tried again, doubled at each failure up to intervalMs (default 15 s) */
  retryMs?: number;
}

export interface ReconcileReport {
  /** namespaces of the source ensured, changed or not */
  ensured: number;
  /** those whose cluster namespace had to be made or put right */
  changed: string[];
  /** cluster namespaces removed: their platform namespace was deleted */
  removed: string[];
  /** namespaces whose ensure or removal failed (tried again later) */
  failed: string[];
}

type Tenants = Pick<TenantNamespaces, 'ensure' | 'remove' | 'list'>;

const DEFAULT_INTERVAL = 10 * 60_000;
const DEFAULT_RETRY = 15_000;

/**
 * The Kubernetes runtime's NamespaceHook. Every node of a platform runs one: `ensure` is
 * idempotent (a namespace that holds what it should gets no write), so nodes that pass over
 * the same namespaces, or a hook and a pass that meet, converge on the same objects.
 */
export class TenantReconciler implements NamespaceHook {
  private source: NamespaceSource | undefined;
  /** namespaces whose last ensure failed: when to try again */
  private readonly retries = new Map<string, { attempts: number; at: number }>();
  private readonly intervalMs: number;
  private readonly retryMs: number;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private running: Promise<ReconcileReport> | undefined;
  private nextPass = 0;
  /** between start and stop: changes are applied, the loop runs */
  private started = false;
  /** stop was called: a pass under way ends between two namespaces */
  private stopping = false;

  constructor(
    private readonly tenants: Tenants,
    private readonly logger: Logger,
    options: ReconcileOptions = {},
    private readonly now: () => number = Date.now,
  ) {
    this.intervalMs = options.intervalMs ?? DEFAULT_INTERVAL;
    this.retryMs = Math.min(options.retryMs ?? DEFAULT_RETRY, this.intervalMs);
  }

  setSource(source: NamespaceSource | undefined): void {
    this.source = source;
  }

  /**
   * A namespace became active or its plan, owner or quota changed: its cluster namespace is
   * ensured now, from what the quotas say now. A namespace the source says was deleted is
   * left alone (a late change must not bring back what the purge removed). Never rejects.
   * Before `start` and after `stop` it does nothing: the pass at start covers what it missed.
   */
  async changed(namespace: string): Promise<void> {
    // before start and after stop nothing is done: the first pass at start makes what was missed
    if (!this.started) return;
    try {
      if (await this.source?.deleted(namespace)) return;
    } catch (err) {
      this.logger.warn({ err, namespace }, 'kubernetes: whether the namespace was deleted could not be read; its cluster namespace is ensured at the next pass');
      this.retryLater(namespace);
      return;
    }
    await this.ensure(namespace);
  }

  /** Starts the loop: a first pass at once (what changed while no server ran), then every intervalMs; failures every retryMs. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.stopping = false;
    this.nextPass = 0;
    this.schedule(0);
  }

  /** Stops the loop; resolves once a pass under way has stopped (it stops between two namespaces). */
  async stop(): Promise<void> {
    this.started = false;
    this.stopping = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.ticking;
  }

  /** One pass: every namespace of the source ensured, every cluster namespace of a deleted one removed. One at a time per process. */
  run(): Promise<ReconcileReport> {
    this.running ??= this.pass().finally(() => (this.running = undefined));
    return this.running;
  }

  /** The namespaces waiting for another try: how many tries failed, and when the next is (ms). */
  pending(): { namespace: string; attempts: number; at: number }[] {
    return [...this.retries].map(([namespace, r]) => ({ namespace, ...r })).sort((a, b) => (a.namespace < b.namespace ? -1 : 1));
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => {
      this.ticking = this.tick().finally(() => {
        this.ticking = undefined;
        if (this.started) this.schedule(this.retryMs);
      });
    }, ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.now() >= this.nextPass) {
      this.nextPass = this.now() + this.intervalMs;
      const report = await this.run();
      if (report.changed.length > 0 || report.removed.length > 0 || report.failed.length > 0) this.logger.info(report, 'kubernetes: the cluster namespaces were reconciled');
    }
    for (const [namespace, retry] of [...this.retries]) {
      if (this.stopping) return;
      if (retry.at <= this.now()) await this.changed(namespace);
    }
  }

  private async pass(): Promise<ReconcileReport> {
    const report: ReconcileReport = { ensured: 0, changed: [], removed: [], failed: [] };
    const source = this.source;
    if (!source) return report;
    try {
      for await (const namespace of source.active()) {
        if (this.stopping) return report;
        const result = await this.ensure(namespace);
        report.ensured++;
        if (result === 'changed') report.changed.push(namespace);
        if (result === 'failed') report.failed.push(namespace);
      }
      for (const namespace of await this.tenants.list()) {
        if (this.stopping) return report;
        if (!(await source.deleted(namespace))) continue;
        try {
          // not waiting for it to be gone: the cluster finishes the deletion, a server stopping is not held up
          await this.tenants.remove(namespace, 0);
          this.retries.delete(namespace);
          report.removed.push(namespace);
        } catch (err) {
          report.failed.push(namespace);
          this.logger.warn({ err, namespace }, 'kubernetes: the cluster namespace of a deleted namespace could not be removed; tried again at the next pass');
        }
      }
    } catch (err) {
      // the source's database or the cluster is away: the next pass starts over
      this.logger.warn({ err }, 'kubernetes: a pass over the cluster namespaces stopped; the next one starts over');
      report.failed.push('*');
    }
    return report;
  }

  private async ensure(namespace: string): Promise<'changed' | 'same' | 'failed'> {
    try {
      const { changed } = await this.tenants.ensure(namespace);
      this.retries.delete(namespace);
      if (changed.length > 0) this.logger.info({ namespace, changed }, 'kubernetes: cluster namespace ensured');
      return changed.length > 0 ? 'changed' : 'same';
    } catch (err) {
      if (err instanceof MicroError && err.code === 400) {
        // a name or quota the cluster cannot hold: trying again changes nothing (README "Names")
        this.retries.delete(namespace);
        this.logger.warn({ err, namespace }, 'kubernetes: the namespace cannot have a cluster namespace');
      } else {
        this.retryLater(namespace);
        this.logger.warn({ err, namespace, attempts: this.retries.get(namespace)?.attempts }, 'kubernetes: the cluster namespace could not be ensured; tried again later');
      }
      return 'failed';
    }
  }

  private retryLater(namespace: string): void {
    const attempts = (this.retries.get(namespace)?.attempts ?? 0) + 1;
    this.retries.set(namespace, { attempts, at: this.now() + Math.min(this.retryMs * 2 ** (attempts - 1), this.intervalMs) });
  }
}
