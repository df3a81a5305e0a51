import { defineService, endpoint, z } from '@micro/sdk';
import { m3oRequest, needs } from '@micro/services-kit';

/**
 * M3O's secret API: values kept encrypted, by key and an optional path (e.g. `prod`).
 * Prices are in units of 1/10,000 of a cent.
 */

export const NAME_MAX = 128;
export const VALUE_MAX = 64 * 1024;

// control characters would corrupt logs and terminals that show a key
const CONTROL = /\p{Cc}/u;

const name = (what: string) =>
  z
    .string(needs('must be a string'))
    .max(NAME_MAX, `must be at most ${NAME_MAX} characters`)
    .refine((s) => !CONTROL.test(s), `${what} must not contain control characters`);

const key = name('a key').pipe(z.string().min(1, 'required'));
const path = name('a path').optional();

export const secret = defineService({
  name: 'secret',
  public: true,
  description: 'Secrets, encrypted at rest: set, get, delete and list by key and path',
  endpoints: {
    Set: endpoint({
      description: `Stores a secret value (at most ${VALUE_MAX / 1024} KiB) at a key, in a path if given`,
      request: m3oRequest({ key, path, value: z.string(needs('must be a string')).max(VALUE_MAX, `must be at most ${VALUE_MAX} characters`) }),
      response: z.object({}),
      idempotent: true,
      price: 10,
      freeQuota: 10_000,
    }),
    Get: endpoint({
      description: 'The value of a secret, with when it was created and last set',
      request: m3oRequest({ key, path }),
      response: z.object({ key: z.string(), path: z.string(), value: z.string(), created: z.string(), updated: z.string() }),
      readonly: true,
      price: 10,
      freeQuota: 10_000,
    }),
    Delete: endpoint({
      description: 'Deletes a secret',
      request: m3oRequest({ key, path }),
      response: z.object({}),
      price: 10,
      freeQuota: 10_000,
    }),
    List: endpoint({
      description: 'The keys of every secret (`path/key` for those in a path), never their values',
      request: z.object({}).passthrough(),
      response: z.object({ keys: z.array(z.string()) }),
      readonly: true,
      price: 10,
      freeQuota: 10_000,
    }),
  },
});
