import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { CallContext } from '../context/context.js';
import { defineService, endpoint } from '../service/definition.js';
import { Service } from '../service/service.js';
import { MemoryRegistry } from '../registry/memory.js';
import { z } from 'zod';
import { createLogger, serviceLogger } from './logger.js';
import { effectiveLevel, isLogLevel, levelName, lineFields, parseSince, TRACE_ID } from './fields.js';

/** A logger writing into an array of parsed lines. */
function capture(): { lines: Record<string, unknown>[]; logger: ReturnType<typeof createLogger> } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { lines, logger: createLogger({ level: 'trace' }, sink) };
}

const TRACE = '0af7651916cd43dd8448eb211c80319c';

describe('service logs', () => {
  it("a Service's lines carry service, namespace and instance; a call's also its trace id", () => {
    const { lines, logger } = capture();
    const def = defineService({ name: 'greeter', version: '1.0.0', endpoints: { Hi: endpoint({ request: z.object({}), response: z.object({}) }) } });
    const svc = new Service(def, { Hi: async () => ({}) }, { logger, namespace: 'shop', registry: new MemoryRegistry(), auth: false });
    svc.logger.info('started');
    const ctx = new CallContext({ service: 'greeter', endpoint: 'Hi', namespace: 'shop', traceparent: `00-${TRACE}-b7ad6b7169203331-01`, logger: svc.logger });
    ctx.logger.warn({ order: 7 }, 'out of stock');
    assert.equal(lines.length, 2);
    const [plain, inCall] = lines as [Record<string, unknown>, Record<string, unknown>];
    assert.deepEqual([plain.service, plain.namespace, plain.instance, plain.msg, plain.level], ['greeter', 'shop', svc.nodeId, 'started', 30]);
    assert.equal(typeof plain.time, 'number');
    assert.equal(plain.traceId, undefined);
    assert.deepEqual([inCall.service, inCall.namespace, inCall.traceId, inCall.order, inCall.level], ['greeter', 'shop', TRACE, 7, 40]);
  });

  it('uses the instance id the runtime gives, so that a line matches micro status', () => {
    const { lines, logger } = capture();
    const before = process.env.MICRO_RUNTIME_INSTANCE;
    process.env.MICRO_RUNTIME_INSTANCE = 'greeter-3f2a';
    try {
      serviceLogger(logger, { service: 'greeter', namespace: 'micro', node: 'greeter-node' }).info('hi');
    } finally {
      if (before === undefined) delete process.env.MICRO_RUNTIME_INSTANCE;
      else process.env.MICRO_RUNTIME_INSTANCE = before;
    }
    assert.equal(lines[0]?.instance, 'greeter-3f2a');
    assert.equal(lines[0]?.node, 'greeter-node');
  });

  it('finds the level and trace id of a line, whole or cut, and of nothing else', () => {
    const { lines, logger } = capture();
    const raw: string[] = [];
    logger.child({ traceId: TRACE }).error('boom');
    raw.push(JSON.stringify(lines[0]));
    assert.deepEqual(lineFields(raw[0] as string), { level: 'error', traceId: TRACE });
    // cut by the runtime's 16 KiB bound: no longer JSON, the fields are still found
    assert.deepEqual(lineFields((raw[0] as string).slice(0, -10) + ' …[truncated]'), { level: 'error', traceId: TRACE });
    assert.deepEqual(lineFields('{"level":"warn","msg":"x"}'), { level: 'warn' });
    assert.deepEqual(lineFields('{"level":"shouting"}'), {});
    assert.deepEqual(lineFields('{"level":35}'), { level: 'info' });
    assert.deepEqual(lineFields('plain "level":50 "traceId":"' + TRACE + '"'), {});
    assert.deepEqual(lineFields('{"msg":"\\"traceId\\":\\"' + TRACE + '\\""}'), {});
    assert.deepEqual(lineFields(''), {});
    assert.equal(effectiveLevel({}, 'stderr'), 'error');
    assert.equal(effectiveLevel({}, 'stdout'), 'info');
    assert.equal(effectiveLevel({}, 'runtime'), 'warn');
    assert.equal(effectiveLevel({ level: 'debug' }, 'stderr'), 'debug');
    assert.equal(levelName(5), 'trace');
    assert.equal(levelName(1000), 'fatal');
  });

  it('checks levels, trace ids and since, refusing what is wrong or too big', () => {
    for (const l of ['trace', 'debug', 'info', 'warn', 'error', 'fatal']) assert.ok(isLogLevel(l));
    for (const l of ['WARN', 'warning', '', 'silent', 'constructor', '__proto__', 40]) assert.ok(!isLogLevel(l), String(l));
    assert.ok(TRACE_ID.test(TRACE));
    for (const id of [TRACE.toUpperCase(), '0'.repeat(32), TRACE.slice(1), TRACE + '0', `${TRACE}\n`, 'g'.repeat(32)]) assert.ok(!TRACE_ID.test(id), id);
    const now = Date.parse('2026-01-01T00:00:00Z');
    assert.equal(parseSince('10m', now), now - 600_000);
    assert.equal(parseSince(' 1.5h ', now), now - 5_400_000);
    assert.equal(parseSince('2024-05-01T10:00:00Z', now), Date.parse('2024-05-01T10:00:00Z'));
    assert.equal(parseSince('36500d', now), now - 36_500 * 86_400_000);
    for (const bad of ['', 'yesterday', '10', '-10m', '10 m', '1e9d', '99999999999999999d', '36501d', '2024-13-45', '1'.repeat(100), '10m; rm -rf /']) {
      assert.throws(() => parseSince(bad, now), RangeError, bad);
    }
  });
});
