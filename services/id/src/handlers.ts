import { errors, type Engines, type Handlers } from '@micro/sdk';
import { publicService } from '@micro/services-kit';
import { ID_TYPES, idDef, type IdType } from './definition.js';
import { BIGFLAKE, Flake, SNOWFLAKE } from './flake.js';
import { ksuid, nanoId, shortid, ulid, uuid, xid } from './ids.js';
import { WorkerSlot } from './worker.js';

export { WorkerSlot } from './worker.js';
export type { WorkerSlotOptions } from './worker.js';

const plain: Record<Exclude<IdType, 'snowflake' | 'bigflake'>, () => string> = { uuid, ulid: () => ulid(), ksuid: () => ksuid(), xid: () => xid(), nanoid: nanoId, shortid };

function idType(value: string | undefined): IdType {
  const type = (value ?? '').trim().toLowerCase() || 'uuid';
  if (!(ID_TYPES as readonly string[]).includes(type)) throw errors.BadRequest('id', `type must be one of ${ID_TYPES.join(', ')} (got "${String(value).slice(0, 32)}")`);
  return type as IdType;
}

/**
 * The id service's handlers; snowflake and bigflake take their worker id from `worker`
 * (by default a WorkerSlot leased through the engines' sync, which every node shares).
 */
export function idHandlers(engines: Pick<Engines, 'sync'>, worker: WorkerSlot = new WorkerSlot(() => engines.sync), now?: () => number): Handlers<typeof idDef> {
  const flakes = { snowflake: new Flake(SNOWFLAKE, now), bigflake: new Flake(BIGFLAKE, now) };
  return {
    async Generate({ type: requested }) {
      const type = idType(requested);
      if (type === 'snowflake' || type === 'bigflake') return { type, id: flakes[type].next(await worker.id()) };
      return { type, id: plain[type]() };
    },
    Types: () => ({ types: [...ID_TYPES] }),
  };
}

export const service = publicService(idDef, (engines) => idHandlers(engines));
