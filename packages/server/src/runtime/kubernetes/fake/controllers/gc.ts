import type { Queue } from '../clock.js';
import type { Resource } from '../resources.js';
import { RESOURCES } from '../resources.js';
import { StatusError } from '../status.js';
import type { Change } from '../store.js';
import type { KObj } from '../types.js';
import { type Context, controllerQueue } from './context.js';

/**
 * The garbage collector: follows ownerReferences. When an owner is gone its dependents are
 * deleted (Background), unless another owner of theirs is still there; an owner deleted
 * with `Orphan` (the `orphan` finalizer) first has the references to it taken off its
 * dependents; one deleted with `Foreground` (`foregroundDeletion`) stays until its
 * dependents are gone. All of it asynchronously, as on a cluster.
 */
export class GarbageCollector {
  /** uid → where the object is */
  private readonly where = new Map<string, { r: Resource; namespace?: string; name: string }>();
  private readonly queue: Queue;
  private readonly stop: () => void;

  constructor(private readonly ctx: Context) {
    this.queue = controllerQueue(ctx, 'garbage collector', (_ns, uid) => this.sync(uid));
    for (const r of RESOURCES) for (const o of ctx.store.scan(r)) this.index(r, o);
    this.stop = ctx.store.subscribe((c) => this.onChange(c));
  }

  close(): void {
    this.stop();
  }

  private index(r: Resource, o: KObj): void {
    if (o.metadata.uid) this.where.set(o.metadata.uid, { r, ...(o.metadata.namespace ? { namespace: o.metadata.namespace } : {}), name: o.metadata.name });
  }

  private onChange(c: Change): void {
    const uid = c.object.metadata.uid as string;
    if (c.type === 'DELETED') {
      this.where.delete(uid);
      this.queue.add(uid, 1);
    } else {
      this.index(c.resource, c.object);
      const f = c.object.metadata.finalizers ?? [];
      if (c.object.metadata.deletionTimestamp && (f.includes('orphan') || f.includes('foregroundDeletion'))) this.queue.add(uid, 1);
    }
    // a dependent going may let an owner in foreground deletion go
    if (c.type === 'DELETED') for (const ref of c.object.metadata.ownerReferences ?? []) this.queue.add(ref.uid, 1);
  }

  private dependents(uid: string, namespace: string | undefined): { r: Resource; o: KObj }[] {
    const out: { r: Resource; o: KObj }[] = [];
    for (const r of RESOURCES) {
      if (!r.namespaced && namespace) continue;
      for (const o of this.ctx.store.scan(r, namespace)) if (o.metadata.ownerReferences?.some((ref) => ref.uid === uid)) out.push({ r, o });
    }
    return out;
  }

  private sync(uid: string): void {
    const at = this.where.get(uid);
    const owner = at && this.ctx.store.get(at.r, at.namespace, at.name);
    if (!owner || owner.metadata.uid !== uid) return this.ownerGone(uid);
    const f = owner.metadata.finalizers ?? [];
    if (!owner.metadata.deletionTimestamp) return;
    if (f.includes('orphan')) return this.orphan(at.r, owner);
    if (f.includes('foregroundDeletion')) this.foreground(at.r, owner);
  }

  /** the owner is gone: dependents with no other owner left go too */
  private ownerGone(uid: string): void {
    for (const { r, o } of this.dependents(uid, undefined)) {
      const others = (o.metadata.ownerReferences ?? []).filter((ref) => ref.uid !== uid && this.where.has(ref.uid));
      if (others.length > 0) {
        this.ctx.api.modify(r, o, (x) => {
          x.metadata.ownerReferences = x.metadata.ownerReferences?.filter((ref) => ref.uid !== uid);
        });
      } else this.remove(r, o, 'Background');
    }
  }

  private orphan(r: Resource, owner: KObj): void {
    const uid = owner.metadata.uid as string;
    for (const d of this.dependents(uid, owner.metadata.namespace)) {
      this.ctx.api.modify(d.r, d.o, (x) => {
        const refs = x.metadata.ownerReferences?.filter((ref) => ref.uid !== uid) ?? [];
        if (refs.length) x.metadata.ownerReferences = refs;
        else delete x.metadata.ownerReferences;
      });
    }
    this.dropFinalizer(r, owner, 'orphan');
  }

  private foreground(r: Resource, owner: KObj): void {
    const deps = this.dependents(owner.metadata.uid as string, owner.metadata.namespace);
    for (const d of deps) if (!d.o.metadata.deletionTimestamp) this.remove(d.r, d.o, 'Foreground');
    if (deps.length === 0) this.dropFinalizer(r, owner, 'foregroundDeletion');
  }

  private dropFinalizer(r: Resource, owner: KObj, finalizer: string): void {
    this.ctx.api.modify(r, owner, (x) => {
      x.metadata.finalizers = (x.metadata.finalizers ?? []).filter((f) => f !== finalizer);
      if (x.metadata.finalizers.length === 0) delete x.metadata.finalizers;
    });
  }

  private remove(r: Resource, o: KObj, propagationPolicy: string): void {
    try {
      this.ctx.api.delete(r, o.metadata.namespace, o.metadata.name, { propagationPolicy, preconditions: { uid: o.metadata.uid as string } });
    } catch (err) {
      if (!(err instanceof StatusError && (err.code === 404 || err.code === 409))) throw err;
    }
  }
}
