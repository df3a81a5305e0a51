import type { IncomingHttpHeaders } from 'node:http';
import { errors } from './deps.js';

/**
 * Raw HTTP routes of the core services under `/webhooks/<name>`: what a provider calls back
 * (a payment provider's signed events), which must see the body exactly as it was sent
 * (its signature covers the bytes) and cannot carry our credentials. The gateway reads the
 * body (bounded by its maxBodyBytes), hands it over unparsed and sends the route's answer
 * as JSON; no token, cookie or rule applies: the route authenticates the caller itself.
 */

export interface WebhookRequest {
  method: string;
  headers: IncomingHttpHeaders;
  /** the body as received, byte for byte */
  body: Buffer;
  /** the HTTP client's address, as `peerOf` gives it (for logs) */
  peer: string;
}

export interface WebhookAnswer {
  /** the HTTP status (a MicroError thrown instead becomes its JSON error) */
  status: number;
  /** sent as JSON */
  body: unknown;
}

export type WebhookRoute = (req: WebhookRequest) => Promise<WebhookAnswer>;

/** `<name>`: what follows /webhooks/ (lower-case letters, digits, `-`, `_`). */
export const WEBHOOK_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** The route of a `/webhooks/<name>` path, or a 404. */
export function webhookRoute(routes: ReadonlyMap<string, WebhookRoute>, path: string): WebhookRoute {
  const name = path.slice('/webhooks/'.length).replace(/\/$/, '');
  const route = WEBHOOK_NAME.test(name) ? routes.get(name) : undefined;
  if (!route) {
    const served = routes.size > 0 ? `the webhooks here are ${[...routes.keys()].map((n) => `/webhooks/${n}`).join(', ')}` : 'this server serves none (a payment provider, once configured, serves /webhooks/<provider>)';
    throw errors.NotFound('gateway', `no webhook ${JSON.stringify(name.slice(0, 64))}: ${served}`);
  }
  return route;
}

/** The routes of the core services in one map; two services claiming one name stop the server. */
export function collectWebhooks(services: readonly { def: { name: string }; webhooks?: Record<string, WebhookRoute> }[]): Map<string, WebhookRoute> {
  const routes = new Map<string, WebhookRoute>();
  const owner = new Map<string, string>();
  for (const cs of services) {
    for (const [name, route] of Object.entries(cs.webhooks ?? {})) {
      if (!WEBHOOK_NAME.test(name)) throw new Error(`core service ${cs.def.name}: webhook name ${JSON.stringify(name)} must be 1-64 of a-z, 0-9, - and _`);
      if (owner.has(name)) throw new Error(`core services ${owner.get(name)} and ${cs.def.name} both serve /webhooks/${name}`);
      owner.set(name, cs.def.name);
      routes.set(name, route);
    }
  }
  return routes;
}
