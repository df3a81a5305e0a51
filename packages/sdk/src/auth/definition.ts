import { z } from 'zod';
import { defineService, endpoint } from '../service/definition.js';

/**
 * The contract of the auth service of `micro server` (the part the SDK needs: turning
 * credentials into a short-lived access token). Tokens are JWTs signed by the server;
 * callers send them as `authorization: Bearer <token>` metadata.
 */
export const authService = defineService({
  name: 'auth',
  version: '1.0.0',
  description: 'Accounts, credentials and tokens',
  endpoints: {
    Token: endpoint({
      description: 'Exchanges an account id and secret for an access token (public)',
      request: z.object({
        id: z.string().min(1).max(255),
        secret: z.string().min(1).max(1024),
        namespace: z.string().max(255).optional().describe('the namespace of the account (default micro)'),
      }),
      response: z.object({
        token: z.string(),
        expiresAt: z.number().describe('epoch seconds'),
        account: z.object({ id: z.string(), type: z.string(), issuer: z.string(), scopes: z.array(z.string()) }),
      }),
    }),
  },
});

/** How a process proves who it is to `micro server`. */
export interface Credentials {
  id: string;
  secret: string;
  namespace?: string;
}
