import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { defineService, disableTracing, enableTracing, endpoint, Service, tracingRatioFromEnv, z } from '@micro/sdk';
import { silent, startAuthHarness, type AuthHarness } from '../auth/testing.js';
import { Gateway } from '../gateway/gateway.js';
import { http } from '../gateway/testing.js';
import { recordingExporter } from './testing.js';

test('MICRO_TRACING: off, on, a share from 0 to 1; anything else says what to write', () => {
  assert.equal(tracingRatioFromEnv(undefined), undefined);
  assert.equal(tracingRatioFromEnv(''), undefined);
  assert.equal(tracingRatioFromEnv('off'), undefined);
  assert.equal(tracingRatioFromEnv('on'), 1);
  assert.equal(tracingRatioFromEnv('0'), 0);
  assert.equal(tracingRatioFromEnv('0.25'), 0.25);
  assert.equal(tracingRatioFromEnv('.5'), 0.5);
  assert.equal(tracingRatioFromEnv('1'), 1);
  for (const bad of ['yes', 'ON', '1.5', '-0.1', '2', 'NaN', 'Infinity', '1e-3', '0x1', ' 0.5', '0.5 ', 'x'.repeat(10_000)]) {
    assert.throws(() => tracingRatioFromEnv(bad), /MICRO_TRACING is ".{0,40}": use on, off or the share of new traces to record, from 0 to 1/, bad.slice(0, 20));
  }
});

const greeter = defineService({ name: 'sampled', version: '1.0.0', endpoints: { Hello: endpoint({ request: z.object({}), response: z.object({ ok: z.boolean() }) }) } });

describe('sampling: a share of new traces, and what callers ask for', () => {
  let h: AuthHarness;
  let gw: Gateway;
  let svc: Service;
  const exporter = recordingExporter();
  const spans = exporter.records;

  before(async () => {
    // none of the new traces: only those whose caller sets the sampled flag
    enableTracing({ ratio: 0, immediate: true, exporter });
    h = await startAuthHarness();
    await h.authAs(h.admin).CreateRule({ id: 'public-sampled', namespace: 'micro', resource: 'service:sampled:*', scope: '', access: 'granted', priority: 1 });
    svc = new Service(greeter, { Hello: () => ({ ok: true }) }, { namespace: 'micro', registry: h.registry, logger: silent, auth: false });
    await svc.start();
    gw = new Gateway({ address: '127.0.0.1:0', registry: h.registry, tokens: h.tokens, accounts: h.accounts, logger: silent, rateLimit: false });
    await gw.listen();
  });
  after(async () => {
    await gw?.close();
    await svc?.stop();
    await h?.close();
    await disableTracing();
  });

  const call = (traceparent?: string) =>
    http(gw.url, 'POST', '/v1/sampled/Hello', { headers: { 'content-type': 'application/json', ...(traceparent ? { traceparent } : {}) }, body: '{}' });

  test('with a share of 0 a new trace is handed on unsampled and nothing is recorded', async () => {
    for (let i = 0; i < 20; i++) {
      const res = await call();
      assert.equal(res.status, 200, res.body);
      assert.match(String(res.headers.traceresponse), /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
    }
    assert.deepEqual(spans, []);
  });

  test('a caller that sets the sampled flag gets its trace recorded, gateway and service', async () => {
    const traceId = 'a'.repeat(31) + '1';
    const res = await call(`00-${traceId}-${'b'.repeat(16)}-01`);
    assert.equal(res.status, 200, res.body);
    assert.match(String(res.headers.traceresponse), new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    for (let i = 0; i < 100 && spans.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(spans.map((s) => `${s.kind}:${s.name}`).sort(), ['client:sampled.Hello', 'server:POST /v1/sampled/Hello', 'server:sampled.Hello']);
    assert.ok(spans.every((s) => s.traceId === traceId));
  });
});
