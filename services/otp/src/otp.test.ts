import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { expectShape, startPlatform } from '@micro/services-kit/testing';
import { service } from './handlers.js';

function refused(res: { status: number; body: any }, status: number, detail: RegExp) { // eslint-disable-line @typescript-eslint/no-explicit-any -- M3O's error body
  assert.equal(res.status, status, JSON.stringify(res.body));
  assert.equal(res.body.code, status);
  assert.match(res.body.detail, detail);
}

for (const profile of ['local', 'nats'] as const) {
  test(`otp: Generate and Validate as M3O's client calls them, tenants apart (${profile})`, async (t) => {
    const p = await startPlatform(t, { services: [service], profile });
    if (!p) return;
    t.after(() => p.close());
    const a = (ep: string, body: unknown) => p.call(p.a.key, 'otp', ep, body);
    const b = (ep: string, body: unknown) => p.call(p.b.key, 'otp', ep, body);

    await t.test('compatibility', async () => {
      const gen = await a('Generate', { id: 'alice@example.com' });
      assert.equal(gen.status, 200, JSON.stringify(gen.body));
      await expectShape('otp', 'Generate', gen.body);
      assert.match(gen.body.code, /^\d{6}$/);
      const eight = await a('Generate', { id: 'eight', size: '8', expiry: 300 });
      assert.match(eight.body.code, /^\d{8}$/);
      const ok = await a('Validate', { id: 'alice@example.com', code: gen.body.code });
      await expectShape('otp', 'Validate', ok.body);
      assert.deepEqual(ok.body, { success: true });
      assert.deepEqual((await a('Validate', { id: 'alice@example.com', code: gen.body.code })).body, { success: false });
      assert.deepEqual((await a('Validate', { id: 'eight', code: eight.body.code })).body, { success: true });
      // the secret is never answered, only the code
      assert.deepEqual(Object.keys(gen.body), ['code']);
    });

    if (profile === 'local') {
      await t.test('the secret is encrypted at rest: no file of the server holds it', async () => {
        await a('Generate', { id: 'at-rest@example.com' });
        const path = `micro_otp._${createHash('sha256').update('at-rest@example.com').digest('hex')}`;
        // the staff read it in clear (config secrets of any namespace), to know what to look for
        const read = await fetch(`${p.url}/v1/config/Get`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${p.adminToken}` },
          body: JSON.stringify({ path, namespace: p.a.namespace, secrets: true }),
        });
        const secret = ((await read.json()) as { value: unknown }).value;
        assert.equal(typeof secret, 'string', 'the secret is a config secret of the tenant');
        const raw = Buffer.from(secret as string, 'base64');
        const files = (dir: string): string[] => readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? files(join(dir, f)) : [join(dir, f)]));
        const all = files(p.home);
        assert.ok(all.some((f) => f.endsWith('.db')), 'the server keeps its data in files of its home');
        for (const f of all) {
          const bytes = readFileSync(f);
          assert.equal(bytes.includes(secret as string), false, `${f} holds the secret in base64`);
          assert.equal(bytes.includes(raw), false, `${f} holds the secret's bytes`);
          assert.equal(bytes.includes(raw.toString('hex')), false, `${f} holds the secret in hex`);
        }
        // and the tenant sees it masked
        const masked = await a('Generate', { id: 'at-rest@example.com' });
        assert.equal(masked.status, 200);
      });
    }

    await t.test("isolation: b's codes and ids are its own", async () => {
      const mine = (await a('Generate', { id: 'shared-id' })).body.code;
      const theirs = (await b('Generate', { id: 'shared-id' })).body.code;
      // the same id in b has its own secret: a's code does not validate there (unless the 1-in-10^6 chance)
      if (mine !== theirs) assert.deepEqual((await b('Validate', { id: 'shared-id', code: mine })).body, { success: false });
      refused(await b('Validate', { id: 'alice@example.com', code: '123456' }), 404, /id: no code/);
      assert.deepEqual((await a('Validate', { id: 'shared-id', code: mine })).body, { success: true });
      await fc.assert(
        // eslint-disable-next-line no-control-regex -- ids with control characters are refused (tested below)
        fc.asyncProperty(fc.string({ minLength: 1, maxLength: 40 }).filter((s) => s.trim() !== '' && !/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(s)), async (id) => {
          await a('Generate', { id });
          const r = await b('Validate', { id, code: '000000' });
          return r.status === 404;
        }),
        { numRuns: 15 },
      );
    });

    await t.test('bad input: a 400 naming the field', async () => {
      refused(await a('Generate', {}), 400, /Missing id/);
      refused(await a('Generate', { id: 'x', size: 3 }), 400, /size/);
      refused(await a('Generate', { id: 'x', size: 'six' }), 400, /size/);
      refused(await a('Generate', { id: 'x', expiry: 999_999 }), 400, /expiry/);
      refused(await a('Generate', { id: 'x'.repeat(1000) }), 400, /id/);
      refused(await a('Generate', { id: 'a\nb' }), 400, /id/);
      refused(await a('Validate', { id: 'x' }), 400, /Missing code/);
      refused(await a('Validate', { id: 'x', code: 123456 }), 400, /code/);
      refused(await a('Validate', { id: 'never-generated', code: '123456' }), 404, /id/);
      // bounded tries: five wrong, then 429 until a new Generate
      const code = (await a('Generate', { id: 'guess' })).body.code;
      const wrong = code === '999999' ? '999998' : '999999';
      for (let i = 0; i < 5; i++) assert.deepEqual((await a('Validate', { id: 'guess', code: wrong })).body, { success: false });
      refused(await a('Validate', { id: 'guess', code }), 429, /Generate a new code/);
    });
  });
}
