import type { NatsConnection } from '@nats-io/transport-node';
import { acquireNats } from '@micro/sdk/nats';
import type { CoreServiceFactory } from './core.js';
/**
 * A core service of the nats profile on the process's shared NATS connection: taken
 * (with backoff, warnings logged) before the service is made, given back when it stops
 * or when making it fails.
 */
export function onSharedNats(
  natsUrl: string,
  options: { maxWait?: number | undefined },
  make: (nc: NatsConnection) => CoreServiceFactory,
): CoreServiceFactory {
  return async (ctx) => {
    const link = await acquireNats(natsUrl, { maxWait: options.maxWait, onRetry: (message) => ctx.logger.warn(message) });
    try {
      const service = await make(link.nc)(ctx);
      return {
        ...service,
        stop: async () => {
          await service.stop?.();
          link.release();
        },
      };
    } catch (err) {
      link.release();
      throw err;
    }
  };
}
