import type { Queue } from '../clock.js';
import { quotaStatus } from '../quota.js';
import type { Change } from '../store.js';
import { type Context, controllerQueue, R } from './context.js';

/**
 * The resource quota controller: keeps each ResourceQuota's `status` (`hard`, and what of it
 * is `used`) in step with its namespace's objects.
 */
export class QuotaController {
  private readonly queue: Queue;
  private readonly stop: () => void;

  constructor(private readonly ctx: Context) {
    this.queue = controllerQueue(ctx, 'resourcequota controller', (_ns, namespace) => this.sync(namespace));
    this.stop = ctx.store.subscribe((c) => this.onChange(c));
  }

  close(): void {
    this.stop();
  }

  private onChange(c: Change): void {
    const ns = c.object.metadata.namespace;
    if (!ns || c.resource === R.Event) return;
    // a quota's own status write changes nothing it counts
    if (c.resource === R.ResourceQuota && c.type === 'MODIFIED' && JSON.stringify(c.prev?.spec) === JSON.stringify(c.object.spec)) return;
    if (this.ctx.store.scan(R.ResourceQuota, ns).length > 0) this.queue.add(ns, 5);
  }

  private sync(namespace: string): void {
    for (const q of this.ctx.store.scan(R.ResourceQuota, namespace)) this.ctx.api.writeStatus(R.ResourceQuota, q, quotaStatus(this.ctx.store, q));
  }
}
