import { defineService, endpoint, serverStream, z } from '@micro/sdk';

/**
 * The contract of the helloworld service. Callers import this file (not the handlers)
 * to get a typed client.
 */
export const helloworld = defineService({
  name: 'helloworld',
  version: '1.0.0',
  description: 'Greets whoever calls it',
  endpoints: {
    Call: endpoint({
      description: 'Returns a greeting',
      request: z.object({ name: z.string().min(1).max(256).describe('who to greet') }),
      response: z.object({ message: z.string() }),
      idempotent: true,
      readonly: true,
    }),
    Stream: serverStream({
      description: 'Streams `messages` greetings',
      request: z.object({
        name: z.string().min(1).max(256),
        messages: z.number().int().min(1).max(10_000).describe('how many greetings to send'),
      }),
      response: z.object({ message: z.string() }),
      readonly: true,
    }),
  },
});
