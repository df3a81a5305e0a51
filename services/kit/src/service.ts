import type { Engines, Handlers, ServiceDef } from '@micro/sdk';

/**
 * A value-add service as micro server hosts it (`MicroServerOptions.services`): its
 * definition and its handlers made from the engines to keep data in. Its `main.ts` runs
 * the same handlers on the process's default engines (`micro run ./services/<name>`).
 */
export interface ServiceFactory<D extends ServiceDef = ServiceDef> {
  def: D;
  handlers(engines: Engines): Handlers<D>;
}

/** A ServiceFactory, with the handlers typed by the definition. */
export function publicService<D extends ServiceDef>(def: D, handlers: (engines: Engines) => Handlers<D>): ServiceFactory<D> {
  return { def, handlers };
}
