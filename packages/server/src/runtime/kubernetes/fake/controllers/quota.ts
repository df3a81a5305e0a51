import { quotaStatus } from '../quota.js';
import type { Change } from '../store.js';
import { type Context, Controller, R } from './context.js';

/**
 * The resource quota controller: keeps each ResourceQuota's `status` (`hard`, and what of it
 * is `used`) in step with its namespace's objects.
 */
export class QuotaController extends Controller {
  constructor(ctx: Context) {
    super(ctx, 'resourcequota controller');
  }

  protected override onChange(c: Change): void {
    const ns = c.object.metadata.namespace;
    if (!ns || c.resource === R.Event) return;
    // a quota's own status write changes nothing it counts
    if (c.resource === R.ResourceQuota && c.type === 'MODIFIED' && JSON.stringify(c.prev?.spec) === JSON.stringify(c.object.spec)) return;
    if (this.ctx.store.scan(R.ResourceQuota, ns).length > 0) this.queue.add(ns, 5);
  }

  protected sync(_ns: string, namespace: string): void {
    for (const q of this.ctx.store.scan(R.ResourceQuota, namespace)) this.ctx.api.writeStatus(R.ResourceQuota, q, quotaStatus(this.ctx.store, q));
  }
}
