import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '@micro/sdk';
import { MicroServer } from '@micro/server';
import { PlatformHub } from '../hub.js';
import { MemoryMailer } from '../mail/mailer.js';
import { signupCoreService } from '../signup/index.js';
import { invoicesCoreService } from './index.js';
import { at, Bill } from './testing.js';

/**
 * For the service and dashboard tests of invoices: a real micro server (gateway on a free
 * port) hosting signup and invoices on one PlatformHub with a clock of the test's, its
 * ledger to post to as the other parts of billing would, and customers signed up by the
 * API with the mailed code.
 */

const silent = createLogger({ level: 'silent' });

export interface Answer {
  status: number;
  json: Record<string, unknown> & { detail?: string };
}

export interface InvoicesPlatform {
  url: string;
  clock: { now: number };
  bill: Bill;
  hub: PlatformHub;
  admin: string;
  post(path: string, body: unknown, token?: string): Promise<Answer>;
  /** invites and signs up `email` into `namespace`: its token and customer id */
  signUp(email: string, password: string, namespace: string): Promise<{ token: string; customer: string }>;
  stop(): Promise<void>;
}

export async function startInvoicesPlatform(options: { gateway?: string; env?: Record<string, string> } = {}): Promise<InvoicesPlatform> {
  const home = mkdtempSync(join(tmpdir(), 'micro-invoices-svc-'));
  const clock = { now: at(2027, 1, 2) };
  const hub = new PlatformHub({ clock: () => clock.now, payerTtl: 0 });
  const mailer = new MemoryMailer();
  const seller = { name: 'Micro Test Ltd', lines: ['1 Main Street'] };
  const server = await new MicroServer({
    home,
    address: 'tcp://127.0.0.1:0',
    gateway: options.gateway ?? '127.0.0.1:0',
    logger: silent,
    coreServices: [signupCoreService({ hub, mailer }), invoicesCoreService({ hub, interval: 0, taxRate: 2000, seller })],
  }).start();
  const url = server.gatewayUrl as string;
  const post = async (path: string, body: unknown, token?: string): Promise<Answer> => {
    const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
    return { status: res.status, json: (await res.json()) as Answer['json'] };
  };
  const adminFile = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
  const admin = (await post('/v1/auth/Token', adminFile)).json.token as string;
  const billing = await hub.billing({ profile: { name: 'local' }, dataDir: join(home, 'data') });
  const ok = (a: Answer) => {
    assert.equal(a.status, 200, JSON.stringify(a.json));
    return a.json;
  };
  return {
    url,
    clock,
    hub,
    admin,
    bill: new Bill(billing.ledger),
    post,
    async signUp(email, password, namespace) {
      ok(await post('/v1/signup/Invite', { email }, admin));
      ok(await post('/v1/signup/SendCode', { email }));
      const code = /code is:\s*([0-9]{6})/.exec(mailer.lastTo(email)?.text ?? '')?.[1];
      const made = ok(await post('/v1/signup/CompleteSignup', { email, code, password, namespace }));
      const customer = ok(await post('/v1/signup/ReadCustomer', { email }, admin)).customer as { id: string };
      return { token: made.token as string, customer: customer.id };
    },
    async stop() {
      await server.stop();
      rmSync(home, { recursive: true, force: true });
    },
  };
}
