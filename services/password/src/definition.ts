import { defineService, endpoint, z } from '@micro/sdk';
import { m3oRequest } from '@micro/services-kit';

/** Lengths a password may have; 0 or none is the default (M3O's). */
export const PASSWORD_LENGTH = Object.freeze({ min: 4, max: 128, default: 8 });

/** The character classes, in the order of the request's fields; special is M3O's set. */
export const CLASSES = Object.freeze({
  lowercase: 'abcdefghijklmnopqrstuvwxyz',
  numbers: '0123456789',
  special: '!@#$%&*',
  uppercase: 'ABCDEFGHIJKLMNOPQRSTUVWXYZ',
});
export type CharClass = keyof typeof CLASSES;

const flag = (what: string) => z.boolean().optional().describe(what);

/** The password service, as M3O's password API: `Generate`. */
export const password = defineService({
  name: 'password',
  version: '1.0.0',
  description: 'Strong random passwords of chosen length and character classes',
  public: true,
  endpoints: {
    Generate: endpoint({
      description: `A random password of \`length\` characters (${PASSWORD_LENGTH.min} to ${PASSWORD_LENGTH.max}, default ${PASSWORD_LENGTH.default}) with at least one of each class asked for (every class when none is)`,
      request: m3oRequest({
        length: z.number().int().optional().describe(`${PASSWORD_LENGTH.min} to ${PASSWORD_LENGTH.max}; 0 or none: ${PASSWORD_LENGTH.default}`),
        lowercase: flag('include a-z'),
        numbers: flag('include 0-9'),
        special: flag(`include one of ${CLASSES.special}`),
        uppercase: flag('include A-Z'),
      }),
      response: z.object({ password: z.string() }),
      price: 10,
      freeQuota: 10_000,
    }),
  },
});
