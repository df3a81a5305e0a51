import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { bearer, Client, createClient, createLogger, MemoryBroker, mailService } from '@micro/sdk';
import type { CoreContext } from '@micro/server/engine';
import { startAuthHarness } from '@micro/server/testing';
import { hostCoreServices } from '../core-testing.js';
import { mailCoreService } from './service.js';
import { parseMail, startSmtpServer } from './testing.js';

const silent = createLogger({ level: 'silent' });

test('mail.Send: micro\'s accounts only, the tenant\'s from-name on the platform\'s address, a rate per tenant', async (t) => {
  const smtp = await startSmtpServer(t);
  const auth = await startAuthHarness();
  const home = mkdtempSync(join(tmpdir(), 'micro-mail-svc-'));
  t.after(async () => {
    await auth.close();
    rmSync(home, { recursive: true, force: true });
  });
  const ctx: CoreContext = { home, profile: { name: 'local' }, dataDir: home, logger: silent, registry: auth.registry, broker: new MemoryBroker(), accounts: auth.accounts, tokens: auth.tokens };
  const core = await mailCoreService({ env: { MICRO_SMTP_URL: smtp.url(), MICRO_SMTP_FROM: 'M3O <no-reply@m3o.test>' }, perTenant: 2 })(ctx);
  const { address, close } = await hostCoreServices([core], auth.tokens);
  t.after(async () => {
    await close();
    await core.stop?.();
  });
  const as = (token?: string) => createClient(mailService, new Client({ address, namespace: 'micro', preferLocal: false, timeout: 10_000, middleware: token ? [bearer(token)] : [] }));
  const adminAuth = auth.authAs(auth.admin);
  const tokenOf = async (namespace: string, id: string, scopes: string[]) => {
    await adminAuth.CreateAccount({ id, namespace, secret: 'account-password-1', scopes });
    return (await auth.authAs().Token({ id, secret: 'account-password-1', namespace })).token;
  };
  const hosted = await tokenOf('micro', 'service:hosted-test', ['service']);
  const tenant = await tokenOf('acme', 'owner', ['admin']);
  const message = { tenant: 'acme', to: 'user@example.com', subject: 'Hello', text: 'Your code is 1234', fromName: 'Acme Support' };

  await as(hosted).Send(message);
  const got = await parseMail(smtp.received[0]?.raw ?? '');
  assert.equal(got.from?.value[0]?.name, 'Acme Support');
  assert.equal(got.from?.value[0]?.address, 'no-reply@m3o.test');
  assert.equal(got.text?.trim(), 'Your code is 1234');

  // a tenant's own account may not send through the platform's address; nor may anyone without a token
  await assert.rejects(as(tenant).Send(message), (e: { code: number }) => e.code === 403);
  await assert.rejects(as().Send(message), (e: { code: number }) => e.code === 401);
  // a from-name that would start a header of its own
  await assert.rejects(as(hosted).Send({ ...message, tenant: 'other', fromName: 'Evil\r\nBcc: x@evil.com' }), (e: { code: number; detail: string }) => e.code === 400 && /fromName/.test(e.detail));
  // the rate: 2 per window for acme, another tenant untouched
  await as(hosted).Send(message);
  await assert.rejects(as(hosted).Send(message), (e: { code: number; detail: string }) => e.code === 429 && /acme/.test(e.detail));
  await as(hosted).Send({ ...message, tenant: 'globex' });
  assert.equal(smtp.received.length, 3);
});
