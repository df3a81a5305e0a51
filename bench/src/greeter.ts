/**
 * The service every call benchmark uses, written once for each framework: one endpoint
 * that validates `{ name: string }` and answers `{ message: 'Hello <name>' }`.
 */
import { defineService, endpoint, z, type Handlers } from '@micro/sdk';
import type { Context, ServiceSchema } from 'moleculer';

export const greeter = defineService({
  name: 'greeter',
  version: '1.0.0',
  endpoints: {
    Hello: endpoint({ request: z.object({ name: z.string() }), response: z.object({ message: z.string() }) }),
  },
});

export const greeterHandlers: Handlers<typeof greeter> = {
  Hello: ({ name }) => ({ message: `Hello ${name}` }),
};

/** The same service for Moleculer; `params` turns on its validator (fastest-validator), as zod does ours. */
export const moleculerGreeter: ServiceSchema = {
  name: 'greeter',
  actions: {
    hello: {
      params: { name: 'string' },
      handler(ctx: Context<{ name: string }>) {
        return { message: `Hello ${ctx.params.name}` };
      },
    },
  },
};

/** The payload of every call. */
export const REQUEST = { name: 'x' } as const;
export const EXPECTED = 'Hello x';
