import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ApiException } from '@kubernetes/client-node';
import { refused, until, withFake } from './testkit.js';

describe('injected faults', () => {
  const env = withFake({}, (c) => c.core.createNamespace({ body: { metadata: { name: 'f' } } }));

  test('429 with Retry-After, `times` times, then answers as usual', async () => {
    const remove = env.fake.fault({ method: 'GET', path: /\/namespaces\/f\/secrets/, status: 429, times: 2, retryAfterSeconds: 3 });
    for (let i = 0; i < 2; i++) {
      try {
        await env.c.core.listNamespacedSecret({ namespace: 'f' });
        assert.fail('expected 429');
      } catch (err) {
        assert.ok(err instanceof ApiException);
        assert.equal(err.code, 429);
        assert.equal((err.headers as Record<string, string>)['retry-after'], '3');
        const status = JSON.parse(err.body as string) as { reason: string; details: { retryAfterSeconds: number } };
        assert.equal(status.reason, 'TooManyRequests');
        assert.equal(status.details.retryAfterSeconds, 3);
      }
    }
    const list = await env.c.core.listNamespacedSecret({ namespace: 'f' });
    assert.ok(Array.isArray(list.items));
    remove();
    const seen = env.fake.requests.filter((r) => r.path.startsWith('/api/v1/namespaces/f/secrets'));
    assert.deepEqual(seen.map((r) => r.status), [429, 429, 200]);
  });

  test('500 and 503 until the rule is removed; other methods and paths are not touched', async () => {
    const remove = env.fake.fault({ method: 'POST', path: /\/configmaps$/, status: 500 });
    const s = await refused(env.c.core.createNamespacedConfigMap({ namespace: 'f', body: { metadata: { name: 'x' } } }));
    assert.equal(s.code, 500);
    assert.equal(s.reason, 'InternalError');
    assert.equal((await env.c.core.listNamespacedConfigMap({ namespace: 'f' })).kind, 'ConfigMapList');
    remove();
    await env.c.core.createNamespacedConfigMap({ namespace: 'f', body: { metadata: { name: 'x' } } });
    const unavailable = env.fake.fault({ status: 503, times: 1 });
    assert.equal((await refused(env.c.core.readNamespace({ name: 'f' }))).reason, 'ServiceUnavailable');
    unavailable();
  });

  test('delayMs: a slow API server answers late', async () => {
    const remove = env.fake.fault({ path: /\/namespaces\/f$/, delayMs: 300 });
    const t0 = Date.now();
    await env.c.core.readNamespace({ name: 'f' });
    assert.ok(Date.now() - t0 >= 290);
    remove();
    const t1 = Date.now();
    await env.c.core.readNamespace({ name: 'f' });
    assert.ok(Date.now() - t1 < 250);
  });

  test('down: connections are refused until the rule is removed; open watches are cut', async () => {
    let ended = false;
    await env.c.watch.watch('/api/v1/namespaces/f/configmaps', {}, () => {}, () => (ended = true));
    const up = env.fake.fault({ down: true });
    await assert.rejects(fetch(`${env.fake.url}/api/v1/namespaces`, { headers: { Authorization: `Bearer ${env.fake.token}` } }), (err: Error) => /ECONNREFUSED/.test(String((err.cause as Error)?.message ?? err.cause)));
    await until('the watch ended', () => ended);
    up();
    await until('up again', async () => (await env.c.core.readNamespace({ name: 'f' })).metadata?.name === 'f');
  });

  test('down with times: that many connections are reset, then it serves again', async () => {
    env.fake.fault({ down: true, times: 1 });
    await assert.rejects(fetch(`${env.fake.url}/api/v1/namespaces`, { headers: { Authorization: `Bearer ${env.fake.token}`, Connection: 'close' } }));
    const res = await fetch(`${env.fake.url}/api/v1/namespaces`, { headers: { Authorization: `Bearer ${env.fake.token}`, Connection: 'close' } });
    assert.equal(res.status, 200);
  });

  test('a conflict and an expired list can be injected as well', async () => {
    const remove = env.fake.fault({ method: 'PUT', status: 409, times: 1 });
    const ns = await env.c.core.readNamespace({ name: 'f' });
    assert.equal((await refused(env.c.core.replaceNamespace({ name: 'f', body: ns }))).reason, 'Conflict');
    await env.c.core.replaceNamespace({ name: 'f', body: ns });
    remove();
    env.fake.fault({ path: /watch=/, status: 410, times: 1 });
    let err: unknown;
    await env.c.watch.watch('/api/v1/namespaces/f/secrets', {}, () => {}, (e) => (err = e));
    await until('the watch refused', () => err !== undefined);
    assert.equal((err as { statusCode?: number }).statusCode, 410);
  });
});
