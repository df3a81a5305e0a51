import type { HostedService } from '@micro/server';

/**
 * The value-add services `micro server` hosts (services/ in the repository; which of them
 * run: MICRO_SERVICES, default all). Loaded only by `micro server`.
 */
export async function valueAddServices(): Promise<HostedService[]> {
  return Promise.all([
    // one line a service, in the order of M3O-API.md
    import('@micro/service-db').then((m) => m.service),
  ]);
}
