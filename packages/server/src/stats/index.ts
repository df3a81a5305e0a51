import { statsService, type Handlers, type StatsService } from '@micro/sdk';
import { namespaceFor } from '../auth/guard.js';
import type { CoreServiceFactory } from '../core.js';
import { StatsCollector } from './collector.js';

export { StatsCollector, type RuntimeSource, type StatsCollectorOptions } from './collector.js';
export { GatewayMetrics } from './gateway-metrics.js';

/** stats.Read and stats.Prometheus: the caller's namespace, or another for an admin of micro. */
export function statsHandlers(collector: StatsCollector): Handlers<StatsService> {
  return {
    Read: (req, ctx) => collector.read(namespaceFor(ctx, req.namespace)),
    Prometheus: async (req, ctx) => ({ text: await collector.prometheus(namespaceFor(ctx, req.namespace)) }),
  };
}

/** The stats core service over a collector the gateway shares (it counts into collector.gateway). */
export function statsCoreService(collector: StatsCollector): CoreServiceFactory {
  return () => ({ def: statsService, handlers: statsHandlers(collector) });
}
