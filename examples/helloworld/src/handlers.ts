import type { Handlers } from '@micro/sdk';
import type { helloworld } from './definition.js';

export const handlers: Handlers<typeof helloworld> = {
  Call: ({ name }) => ({ message: `Hello ${name}` }),
  async *Stream({ name, messages }, ctx) {
    for (let i = 0; i < messages && !ctx.signal.aborted; i++) yield { message: `Hello ${name}` };
  },
};
