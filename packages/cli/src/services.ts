import type { HostedService } from '@micro/server';

/**
 * The value-add services `micro server` hosts (services/ in the repository; which of them
 * run: MICRO_SERVICES, default all). Loaded only by `micro server`.
 */
export async function valueAddServices(): Promise<HostedService[]> {
  return Promise.all([
    // one line a service, in the order of M3O-API.md
    import('@micro/service-db').then((m) => m.service),
    import('@micro/service-user').then((m) => m.service),
    import('@micro/service-url').then((m) => m.service),
    import('@micro/service-id').then((m) => m.service),
    import('@micro/service-otp').then((m) => m.service),
    import('@micro/service-file').then((m) => m.service),
    import('@micro/service-space').then((m) => m.service),
    import('@micro/service-search').then((m) => m.service),
    import('@micro/service-event').then((m) => m.service),
    import('@micro/service-stream').then((m) => m.service),
    import('@micro/service-mq').then((m) => m.service),
    import('@micro/service-secret').then((m) => m.service),
    import('@micro/service-notes').then((m) => m.service),
    import('@micro/service-lists').then((m) => m.service),
    import('@micro/service-comments').then((m) => m.service),
    import('@micro/service-chat').then((m) => m.service),
    import('@micro/service-contact').then((m) => m.service),
    import('@micro/service-wallet').then((m) => m.service),
    import('@micro/service-qr').then((m) => m.service),
    import('@micro/service-password').then((m) => m.service),
    import('@micro/service-avatar').then((m) => m.service),
    import('@micro/service-time').then((m) => m.service),
    import('@micro/service-sentiment').then((m) => m.service),
    import('@micro/service-spam').then((m) => m.service),
    import('@micro/service-email').then((m) => m.service),
    import('@micro/service-sms').then((m) => m.service),
    import('@micro/service-function').then((m) => m.service),
    import('@micro/service-app').then((m) => m.service),
    import('@micro/service-image').then((m) => m.service),
    import('@micro/service-cron').then((m) => m.service),
  ]);
}
