import type { Queue } from '../clock.js';
import { RESOURCES } from '../resources.js';
import { StatusError } from '../status.js';
import type { Change } from '../store.js';
import type { Condition, KObj } from '../types.js';
import { timestamp } from '../types.js';
import { type Context, controllerQueue, R } from './context.js';

/**
 * The namespace controller: a namespace being deleted (phase Terminating) has everything in
 * it deleted (pods gracefully, by the kubelet), says what remains in its conditions, and
 * goes once nothing is left (its `kubernetes` finalizer removed).
 */
export class NamespaceController {
  private readonly queue: Queue;
  private readonly stop: () => void;

  constructor(private readonly ctx: Context) {
    this.queue = controllerQueue(ctx, 'namespace controller', (_ns, name) => this.sync(name));
    this.stop = ctx.store.subscribe((c) => this.onChange(c));
  }

  close(): void {
    this.stop();
  }

  private onChange(c: Change): void {
    if (c.resource === R.Namespace) {
      if (c.type !== 'DELETED' && c.object.metadata.deletionTimestamp) this.queue.add(c.object.metadata.name);
      return;
    }
    const ns = c.object.metadata.namespace;
    if (c.type === 'DELETED' && ns && this.ctx.store.peek(R.Namespace, undefined, ns)?.metadata.deletionTimestamp) this.queue.add(ns, 5);
  }

  private sync(name: string): void {
    const ns = this.ctx.store.get(R.Namespace, undefined, name);
    if (!ns?.metadata.deletionTimestamp) return;
    const remaining = new Map<string, number>();
    const finalizers = new Map<string, number>();
    for (const r of RESOURCES) {
      if (!r.namespaced) continue;
      const kind = r.group ? `${r.plural}.${r.group}` : r.plural;
      for (const o of this.ctx.store.scan(r, name)) {
        remaining.set(kind, (remaining.get(kind) ?? 0) + 1);
        for (const f of o.metadata.finalizers ?? []) finalizers.set(f, (finalizers.get(f) ?? 0) + 1);
        if (!o.metadata.deletionTimestamp) this.remove(r, o);
      }
    }
    if (remaining.size === 0) return this.finish(ns);
    this.report(ns, remaining, finalizers);
    this.queue.add(name, this.ctx.clock.seconds(1));
  }

  private remove(r: (typeof RESOURCES)[number], o: KObj): void {
    try {
      this.ctx.api.delete(r, o.metadata.namespace, o.metadata.name, { propagationPolicy: 'Background', preconditions: { uid: o.metadata.uid as string } });
    } catch (err) {
      if (!(err instanceof StatusError && (err.code === 404 || err.code === 409))) throw err;
    }
  }

  private report(ns: KObj, remaining: Map<string, number>, finalizers: Map<string, number>): void {
    const kinds = [...remaining.keys()].sort();
    const counts = kinds.map((k) => `${k} has ${remaining.get(k)} resource instances`).join(', ');
    const held = [...finalizers.keys()].sort().map((f) => `${f} in ${finalizers.get(f)} resource instances`).join(', ');
    const now = timestamp(this.ctx.clock.now());
    const conditions: Condition[] = [
      { type: 'NamespaceDeletionDiscoveryFailure', status: 'False', reason: 'ResourcesDiscovered', message: 'All resources successfully discovered', lastTransitionTime: now },
      { type: 'NamespaceDeletionGroupVersionParsingFailure', status: 'False', reason: 'ParsedGroupVersions', message: 'All legacy kube types successfully parsed', lastTransitionTime: now },
      { type: 'NamespaceDeletionContentFailure', status: 'False', reason: 'ContentDeleted', message: 'All content successfully deleted, may be waiting on finalization', lastTransitionTime: now },
      { type: 'NamespaceContentRemaining', status: 'True', reason: 'SomeResourcesRemain', message: `Some resources are remaining: ${counts}`, lastTransitionTime: now },
      held
        ? { type: 'NamespaceFinalizersRemaining', status: 'True', reason: 'SomeFinalizersRemain', message: `Some content in the namespace has finalizers remaining: ${held}`, lastTransitionTime: now }
        : { type: 'NamespaceFinalizersRemaining', status: 'False', reason: 'ContentHasNoFinalizers', message: 'All content-preserving finalizers finished', lastTransitionTime: now },
    ];
    const old = ((ns.status as { conditions?: Condition[] } | undefined)?.conditions ?? []).find((c) => c.type === 'NamespaceContentRemaining');
    const oldHeld = ((ns.status as { conditions?: Condition[] } | undefined)?.conditions ?? []).find((c) => c.type === 'NamespaceFinalizersRemaining');
    if (old?.message === conditions[3]?.message && oldHeld?.message === conditions[4]?.message) return;
    this.ctx.api.writeStatus(R.Namespace, ns, { ...(ns.status as object), phase: 'Terminating', conditions });
  }

  /** nothing left: the `kubernetes` finalizer goes, and with it the namespace */
  private finish(ns: KObj): void {
    this.ctx.api.modify(R.Namespace, ns, (x) => {
      (x.spec as { finalizers?: string[] }).finalizers = [];
    });
    const left = this.ctx.store.get(R.Namespace, undefined, ns.metadata.name);
    if (left && left.metadata.uid === ns.metadata.uid && (left.metadata.finalizers ?? []).length === 0) this.ctx.api.removeNow(R.Namespace, undefined, ns.metadata.name);
  }
}
