import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from '@nats-io/transport-node';
import type { Context, SpanRecord } from '@micro/sdk';
import { engineUrl, testPrefix } from '@micro/sdk/testing';
import { silent } from '../auth/testing.js';
import type { CoreContext } from '../core.js';
import { traceCoreService } from './index.js';
import { natsTraceShare } from './nats.js';

type Handlers = {
  Record: (req: unknown, ctx: Context) => { accepted: number };
  Read: (req: unknown, ctx: Context) => { spans: SpanRecord[] };
};
const as = (issuer: string) => ({ service: 'trace', endpoint: 'Read', account: { id: 'u', type: 'user', issuer, scopes: [] } }) as unknown as Context;
const span = (traceId: string, spanId: string, service: string): SpanRecord => ({ traceId, spanId, name: `${service}.Call`, kind: 'server', service, start: Date.now(), duration: 1, status: 'ok' });

/** The handler's answer once it stops throwing (a deadline, not a timing assumption). */
async function eventually<T>(fn: () => T, what: string, ms = 5_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      return fn();
    } catch (err) {
      if (Date.now() > until) throw new Error(`${what}: ${String(err)}`, { cause: err });
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

test('nats profile: a trace recorded in part on each of two nodes reads whole on both; malformed messages are dropped', async (t) => {
  const url = await engineUrl(t, 'nats');
  if (!url) return;
  const prefix = testPrefix('trace');
  const [ncA, ncB, raw] = await Promise.all([connect({ servers: url }), connect({ servers: url }), connect({ servers: url })]);
  const dropped: string[] = [];
  const a = await traceCoreService({ tracing: false, share: natsTraceShare(ncA, prefix) })({ logger: silent } as unknown as CoreContext);
  const b = await traceCoreService({ tracing: false, share: natsTraceShare(ncB, prefix, (why) => dropped.push(why)) })({ logger: silent } as unknown as CoreContext);
  try {
    await Promise.all([ncA.flush(), ncB.flush()]);
    const A = a.handlers as unknown as Handlers;
    const B = b.handlers as unknown as Handlers;
    const traceId = 'c'.repeat(31) + '1';
    // the gateway's span on node B, the service's on node A (what its service exported there)
    assert.equal(B.Record({ spans: [span(traceId, '1'.repeat(16), 'gateway')] }, as('tenant-a')).accepted, 1);
    assert.equal(A.Record({ spans: [{ ...span(traceId, '2'.repeat(16), 'orders'), parentSpanId: '1'.repeat(16) }] }, as('tenant-a')).accepted, 1);
    for (const [node, h] of [['A', A], ['B', B]] as const) {
      const spans = await eventually(() => {
        const got = h.Read({ traceId }, as('tenant-a')).spans;
        assert.equal(got.length, 2);
        return got;
      }, `node ${node}`);
      assert.deepEqual(spans.map((s) => s.service).sort(), ['gateway', 'orders']);
      // kept in the namespace it was recorded in, not another
      assert.throws(() => h.Read({ traceId }, as('tenant-b')), (e: { code: number }) => e.code === 404);
    }
    // a message that is not spans (bad JSON, a hostile span, too many) is dropped and counted
    raw.publish(`${prefix}.trace.spans`, 'not json');
    raw.publish(`${prefix}.trace.spans`, JSON.stringify({ node: 'x', namespace: 'tenant-a', spans: [{ ...span('d'.repeat(32), '3'.repeat(16), 'evil'), traceId: '../../etc' }] }));
    raw.publish(`${prefix}.trace.spans`, JSON.stringify({ node: 'x', namespace: 'tenant-a', spans: Array.from({ length: 101 }, () => span('e'.repeat(32), '4'.repeat(16), 'many')) }));
    await raw.flush();
    await eventually(() => assert.equal(dropped.length, 3), 'three dropped');
    assert.match(dropped.join('\n'), /not JSON/);
    assert.throws(() => B.Read({ traceId: 'e'.repeat(32) }, as('tenant-a')), (e: { code: number }) => e.code === 404);
  } finally {
    await a.stop?.();
    await b.stop?.();
    await Promise.all([ncA.close(), ncB.close(), raw.close()]);
  }
});
