import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, type Message, type Profile, type TypedClient } from '@micro/sdk';
import { MicroServer } from '@micro/server';
import type { BillingEngines } from '../billing/engines.js';
import { PlatformHub } from '../hub.js';
import { MemoryMailer } from '../mail/mailer.js';
import { FakeStripe } from '../payments/stripe-fake.js';
import { signupCoreService } from '../signup/index.js';
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

/** A real micro server (signup and balance on one hub) whose payments go to a FakeStripe, for end-to-end and browser tests. */
export interface PaidPlatform {
  /** the gateway's http:// address */
  url: string;
  fake: FakeStripe;
  mailer: MemoryMailer;
  hub: PlatformHub;
  engines: BillingEngines;
  /** a token of the admin of micro */
  admin: string;
  /** POSTs JSON to the gateway */
  post(path: string, body: unknown, token?: string): Promise<{ status: number; json: Record<string, unknown> }>;
  /** a customer signed up through the gateway (invited by the admin, the mailed code): its token */
  customer(email: string, namespace: string): Promise<string>;
}

/**
 * Runs `fn` with a PaidPlatform, stopped and removed afterwards. `gateway`: where the gateway
 * listens (default a free port); `siteUrl`: the dashboard address the payment page returns to.
 */
export async function paidPlatform(t: { after(fn: () => unknown): void }, fn: (p: PaidPlatform) => Promise<void>, options: { gateway?: string; siteUrl?: string } = {}): Promise<void> {
  const home = mkdtempSync(join(tmpdir(), 'micro-paid-'));
  const fake = new FakeStripe();
  await fake.listen();
  const mailer = new MemoryMailer();
  const hub = new PlatformHub();
  const site = options.siteUrl ? { siteUrl: options.siteUrl } : {};
  const stripe = { secretKey: fake.secretKey, webhookSecret: fake.webhookSecret, apiUrl: fake.url };
  const coreServices = [signupCoreService({ hub, mailer, ...site }), balanceCoreService({ hub, mailer, env: {}, stripe, ...site })];
  const server = await new MicroServer({ home, address: 'tcp://127.0.0.1:0', gateway: options.gateway ?? '127.0.0.1:0', logger: createLogger({ level: 'silent' }), coreServices }).start();
  t.after(async () => {
    await server.stop();
    await fake.close();
    rmSync(home, { recursive: true, force: true });
  });
  const url = server.gatewayUrl as string;
  fake.endpoint = `${url}/webhooks/stripe`;
  const post = async (path: string, body: unknown, token?: string) => {
    const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };
  const adminFile = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
  const admin = (await post('/v1/auth/Token', adminFile)).json.token as string;
  const customer = async (email: string, namespace: string) => {
    assert.equal((await post('/v1/signup/Invite', { email }, admin)).status, 200);
    await post('/v1/signup/SendCode', { email });
    const code = /code is:\s*([0-9]{6})/.exec(mailer.lastTo(email)?.text ?? '')?.[1];
    const made = await post('/v1/signup/CompleteSignup', { email, code, password: PASSWORD, namespace });
    assert.equal(made.status, 200, JSON.stringify(made.json));
    return made.json.token as string;
  };
  const engines = await hub.billing({ profile: { name: 'local' }, dataDir: join(home, 'data') });
  await fn({ url, fake, mailer, hub, engines, admin, post, customer });
}
