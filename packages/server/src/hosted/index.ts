export { HostedServices, selectHosted } from './hosted.js';
export type { HostedService, HostedOptions } from './hosted.js';
