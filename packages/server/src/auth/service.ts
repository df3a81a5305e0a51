import { authService, errors, type Handlers } from '@micro/sdk';
import type { Accounts } from './accounts.js';
import type { Tokens } from './tokens.js';

/** The auth service of micro server: credentials in, short-lived token out. */
export function authHandlers(accounts: Accounts, tokens: Tokens): Handlers<typeof authService> {
  return {
    Token: async ({ id, secret, namespace }) => {
      const account = accounts.verify(id, namespace ?? 'micro', secret);
      if (!account) throw errors.Unauthorized('auth', `wrong id or secret for ${id} in namespace ${namespace ?? 'micro'}`);
      const { token, expiresAt } = await tokens.issue(account);
      return { token, expiresAt, account };
    },
  };
}
