import type { Engines, Handlers, ServiceDef } from '@micro/sdk';

/**
 * A value-add service as micro server hosts it (`MicroServerOptions.services`): its
 * definition and its handlers made from the engines to keep data in. Its `main.ts` runs
 * the same handlers on the process's default engines (`micro run ./services/<name>`).
 */
export interface ServiceFactory<D extends ServiceDef = ServiceDef> {
  def: D;
  handlers(engines: Engines): Handlers<D>;
  /** anonymous HTTP routes the gateway serves with endpoints of this service (see route.ts), by path prefix: `{ u: 'Redirect' }`; default none */
  routes?: Record<string, string>;
  /** work the service does beside answering calls (a scheduler): see Background; default none */
  background?(engines: Engines): Background;
}

/**
 * What a service runs beside its handlers, on the same engines (micro server passes the
 * object it gave `handlers`, so the two may share state): started after the service is
 * serving, stopped before it stops answering, so that nothing it does outlives the server.
 */
export interface Background {
  stop(): Promise<void>;
}

export interface PublicServiceOptions<D extends ServiceDef> {
  /** path prefix → endpoint: the gateway serves `GET /<prefix>/<rest>` with that endpoint (route.ts) */
  routes?: Record<string, keyof D['endpoints'] & string>;
  /** what runs beside the handlers (ServiceFactory.background) */
  background?: (engines: Engines) => Background;
}

/** A ServiceFactory, with the handlers typed by the definition. */
export function publicService<D extends ServiceDef>(def: D, handlers: (engines: Engines) => Handlers<D>, options: PublicServiceOptions<D> = {}): ServiceFactory<D> {
  return { def, handlers, ...(options.routes ? { routes: options.routes } : {}), ...(options.background ? { background: options.background } : {}) };
}
