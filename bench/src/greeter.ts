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

/**
 * The same greeter with Hello priced in its definition (`price` units of 10^-6 USD a
 * call, no free quota): through a gateway with the platform's meter, every successful
 * call is held, recorded and posted to the ledger (gateway-metering). Its handlers are
 * `greeterHandlers`.
 */
export function pricedGreeter(price: number) {
  return defineService({
    name: 'greeter',
    version: '1.0.0',
    endpoints: {
      Hello: endpoint({ request: z.object({ name: z.string() }), response: z.object({ message: z.string() }), price, freeQuota: 0 }),
    },
  });
}

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
/** A request both sides must refuse: proof that each really validates what it is sent. */
export const INVALID = { name: 42 } as const;

/**
 * Checks a side before it is measured: it answers REQUEST as expected and refuses INVALID
 * (so neither side is measured without the validation the other does).
 */
export async function checkGreeter(side: string, call: (request: unknown) => Promise<unknown>): Promise<void> {
  const res = (await call(REQUEST)) as { message?: unknown } | undefined;
  if (res?.message !== EXPECTED) throw new Error(`${side} answered ${JSON.stringify(res)} instead of {"message":"${EXPECTED}"}`);
  const refused = await call(INVALID).then(
    () => false,
    () => true,
  );
  if (!refused) throw new Error(`${side} accepted an invalid request: it does not validate`);
}
