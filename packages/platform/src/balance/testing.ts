import type { Message, Profile, TypedClient } from '@micro/sdk';
import type { BillingEngines } from '../billing/engines.js';
import { PlatformHub } from '../hub.js';
import { MemoryMailer } from '../mail/mailer.js';
import { startSignupHarness, type SignupHarness } from '../signup/testing.js';
import { balanceCoreService, type BalanceServiceOptions } from './index.js';
import { balanceService } from './definition.js';

/**
 * The balance service as micro server hosts it, beside signup on one hub (customers and
 * namespaces are real signups), behind the server's guard on an RPC address; the manual
 * provider unless `options.stripe` says otherwise; a MemoryMailer for the balance emails and
 * the broker's `balance.*` messages collected.
 */
export interface BalanceHarness {
  signup: SignupHarness;
  hub: PlatformHub;
  engines: BillingEngines;
  mailer: MemoryMailer;
  /** the messages published on balance.* in namespace micro, in order */
  published: Message[];
  balance(token?: string): TypedClient<typeof balanceService>;
  admin: string;
  /** a customer signed up (invited by the admin) into `namespace`: its token and payer id */
  customer(email: string, namespace: string): Promise<{ token: string; payer: string }>;
  close(): Promise<void>;
}

export const PASSWORD = 'correct horse battery';

export async function startBalanceHarness(options: BalanceServiceOptions = {}, profile: Profile = { name: 'local' }, clock?: () => number): Promise<BalanceHarness> {
  const hub = options.hub ?? new PlatformHub(clock ? { clock } : {});
  const mailer = new MemoryMailer();
  const signup = await startSignupHarness({ hub, sourceLimit: 10_000 }, profile, [balanceCoreService({ stripe: false, env: {}, mailer, ...options, hub })]);
  const published: Message[] = [];
  await signup.ctx.broker.subscribe('balance.*', (m) => void published.push(m), { namespace: 'micro' });
  const admin = await signup.adminToken();
  const engines = await hub.billing(signup.ctx);
  return {
    signup,
    hub,
    engines,
    mailer,
    published,
    admin,
    balance: (token) => signup.client(balanceService, token),
    async customer(email, namespace) {
      await signup.as(admin).Invite({ email });
      await signup.as().SendCode({ email });
      const s = await signup.as().CompleteSignup({ email, code: signup.codeOf(email), password: PASSWORD, namespace });
      const { customer } = await signup.as(admin).ReadCustomer({ email });
      return { token: s.token, payer: customer.id };
    },
    close: () => signup.close(),
  };
}
