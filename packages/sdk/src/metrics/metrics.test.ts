import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { MicroError } from '../errors/errors.js';
import { startEcho } from '../test/fixtures.js';
import { ServiceMetrics, type MetricFamily } from './metrics.js';
import { formatPrometheus, mergeFamilies, sanitizeFamilies, SANITIZE_LIMITS } from './text.js';

function sample(families: MetricFamily[], name: string, labels: Record<string, string>): number | undefined {
  for (const f of families) {
    for (const s of f.values) {
      if ((s.metricName ?? f.name) === name && Object.entries(labels).every(([k, v]) => String(s.labels[k]) === v)) return s.value;
    }
  }
  return undefined;
}

test('a service counts calls and errors per endpoint and answers Debug.Metrics over TCP', async () => {
  const h = await startEcho({ remote: true });
  try {
    await h.typed.Call({ name: 'a' });
    await h.typed.Call({ name: 'b' });
    await assert.rejects(h.typed.Fail({ kind: 'typed' }), (err: MicroError) => err.code === 404);
    const res = (await h.client.call('echo', 'Debug.Metrics', {})) as { metrics: MetricFamily[] };
    const m = res.metrics;
    assert.equal(sample(m, 'micro_calls_total', { service: 'echo', endpoint: 'Call', code: '200' }), 2);
    assert.equal(sample(m, 'micro_calls_total', { service: 'echo', endpoint: 'Fail', code: '404' }), 1);
    assert.equal(sample(m, 'micro_call_duration_seconds_count', { service: 'echo', endpoint: 'Call' }), 2);
    assert.equal(sample(m, 'micro_call_duration_seconds_bucket', { service: 'echo', endpoint: 'Call', le: '+Inf' }), 2);
    // process figures come with them
    assert.ok((sample(m, 'process_resident_memory_bytes', {}) ?? 0) > 0);
    // and the endpoint is in the registry record, like Debug.Health
    assert.ok(h.service.record().endpoints.some((e) => e.name === 'Debug.Metrics'));
  } finally {
    await h.close();
  }
});

test('the same child metrics serve every call of an endpoint (no per-call label objects)', () => {
  const m = new ServiceMetrics('svc');
  m.observe('A', 200, 0.001);
  const children = (m as unknown as { byEndpoint: Map<string, { codes: Map<number, unknown>; duration: unknown }> }).byEndpoint;
  const first = children.get('A');
  m.observe('A', 200, 0.002);
  m.observe('A', 500, 0.002);
  assert.equal(children.get('A'), first);
  assert.equal(children.size, 1);
  assert.equal(first?.codes.size, 2);
});

test('hostile families are checked: bad names, types, labels and sizes are dropped; namespace cannot be claimed', () => {
  const override = { namespace: 'tenant', instance: 'n1' };
  assert.deepEqual(sanitizeFamilies('nope', override), { families: [], dropped: 1 });
  assert.deepEqual(sanitizeFamilies(null, override).families, []);
  const r = sanitizeFamilies(
    [
      { name: 'ok_total', help: 'h', type: 'counter', values: [{ value: 1, labels: { namespace: 'other', a: 'x' } }] },
      { name: 'bad name', help: '', type: 'counter', values: [] },
      { name: 'x', help: '', type: 'weird', values: [] },
      null,
      { name: 'y', help: '', type: 'gauge', values: [{ value: 'NaN', labels: {} }, { value: 1, labels: { 'bad-label': 1 } }, { value: 1, labels: { __name__: 'z' } }, { value: 2, labels: {}, metricName: 'other_metric' }] },
    ],
    override,
  );
  assert.equal(r.dropped, 7);
  assert.deepEqual(r.families[0]?.values[0]?.labels, { a: 'x', namespace: 'tenant', instance: 'n1' });
  assert.deepEqual(r.families[1]?.values, []);
  const huge = sanitizeFamilies(Array.from({ length: SANITIZE_LIMITS.families + 10 }, (_, i) => ({ name: `m${i}`, help: '', type: 'gauge', values: [] })), override);
  assert.equal(huge.families.length, SANITIZE_LIMITS.families);
  assert.equal(huge.dropped, 10);
  const longValue = sanitizeFamilies([{ name: 'g', help: 'x'.repeat(5000), type: 'gauge', values: [{ value: 1, labels: { a: 'v'.repeat(10_000) } }] }], override);
  assert.equal(String(longValue.families[0]?.values[0]?.labels.a).length, SANITIZE_LIMITS.labelValue);
  assert.equal(longValue.families[0]?.help.length, SANITIZE_LIMITS.help);
});

test('the text format escapes labels and help, merges instances and keeps one of duplicate series', () => {
  const a: MetricFamily[] = [{ name: 'g', help: 'line\none \\', type: 'gauge', values: [{ value: 1, labels: { v: 'say "hi"\n\\' } }, { value: Infinity, labels: { v: 'inf' } }] }];
  const b: MetricFamily[] = [
    { name: 'g', help: 'other', type: 'gauge', values: [{ value: 2, labels: { v: 'say "hi"\n\\' } }, { value: NaN, labels: { v: 'nan' } }] },
    { name: 'g', help: '', type: 'counter', values: [{ value: 3, labels: {} }] },
  ];
  const text = formatPrometheus(mergeFamilies([a, b]));
  assert.equal(text, ['# HELP g line\\none \\\\', '# TYPE g gauge', 'g{v="say \\"hi\\"\\n\\\\"} 1', 'g{v="inf"} +Inf', 'g{v="nan"} NaN', ''].join('\n'));
});

test('promtool accepts the text of a service', async (t) => {
  const m = new ServiceMetrics('svc');
  m.observe('Call', 200, 0.01);
  m.observe('Call', 400, 0.5);
  const text = formatPrometheus(mergeFamilies([sanitizeFamilies(await m.snapshot(), { namespace: 'micro', instance: 'svc-1' }).families]));
  const run = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (run.error) {
    if (process.env.MICRO_REQUIRE_ENGINES === '1') throw new Error(`promtool is required (MICRO_REQUIRE_ENGINES=1): ${run.error.message}`);
    t.skip(`promtool not found (apt-get install prometheus): ${run.error.message}`);
    return;
  }
  assert.equal(run.status, 0, `promtool: ${run.stdout}${run.stderr}`);
});
