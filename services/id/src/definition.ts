import { defineService, endpoint, z } from '@micro/sdk';
import { m3oRequest } from '@micro/services-kit';

/** The id types, in the order `Types` lists them; uuid is the default. */
export const ID_TYPES = ['uuid', 'ulid', 'ksuid', 'xid', 'nanoid', 'shortid', 'snowflake', 'bigflake'] as const;
export type IdType = (typeof ID_TYPES)[number];

/** The id service, as M3O's id API: `Generate {type}` and `Types`. */
export const idDef = defineService({
  name: 'id',
  version: '1.0.0',
  description: 'Unique ids of eight kinds: uuid, ulid, ksuid, xid, nanoid, shortid, snowflake and bigflake',
  public: true,
  endpoints: {
    Generate: endpoint({
      description: 'A new id of `type` (default uuid); snowflake and bigflake are unique across every node of the service',
      request: m3oRequest({
        type: z
          .string()
          .max(32)
          .optional()
          .describe(`one of ${ID_TYPES.join(', ')} (default uuid)`),
      }),
      response: z.object({ id: z.string(), type: z.string() }),
      price: 1,
      freeQuota: 100_000,
    }),
    Types: endpoint({
      description: 'The id types Generate makes',
      request: z.object({}).passthrough(),
      response: z.object({ types: z.array(z.string()) }),
      idempotent: true,
      readonly: true,
      price: 0,
      freeQuota: 1_000_000,
    }),
  },
});
