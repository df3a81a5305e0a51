import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { connect } from '@nats-io/transport-node';
import { engineUrl, testPrefix } from '../engines/testing.js';
import { closeLinks } from '../transport/nats/link.js';
import type { Message } from './broker.js';
import { brokerContract, eventually, isCode } from './contract.js';
import { NatsBroker, type NatsBrokerOptions } from './nats.js';

/*
 * The NATS broker against the real NATS: the broker contract (contract.ts, which
 * MemoryBroker passes too), then what is NATS's own. Each test has its own prefix; core
 * NATS keeps nothing, so only connections need closing.
 */

after(() => closeLinks());

async function broker(t: TestContext, options: NatsBrokerOptions = {}): Promise<NatsBroker | undefined> {
  const url = await engineUrl(t, 'nats');
  if (!url) return undefined;
  const b = new NatsBroker({ url, prefix: testPrefix('broker'), ...options });
  t.after(() => b.close());
  return b;
}

function recorder(): { messages: Message[]; handler: (m: Message) => void } {
  const messages: Message[] = [];
  return { messages, handler: (m) => void messages.push(m) };
}

brokerContract('nats', broker);

describe('NatsBroker on NATS', () => {
  it('is named nats; bodies travel as JSON', async (t) => {
    const b = await broker(t);
    if (!b) return;
    assert.equal(b.name, 'nats');
    const r = recorder();
    await b.subscribe('t', r.handler);
    await b.publish('t', { when: new Date(0), list: [1, 'a', null], nested: { ok: true } });
    await eventually('the message', () => r.messages.length === 1);
    assert.deepEqual(r.messages[0]?.body, { when: '1970-01-01T00:00:00.000Z', list: [1, 'a', null], nested: { ok: true } });
  });

  it('two brokers on one prefix are one broker (two server nodes); another prefix is another platform', async (t) => {
    const url = await engineUrl(t, 'nats');
    if (!url) return;
    const prefix = testPrefix('nodes');
    const a = new NatsBroker({ url, prefix });
    const c = new NatsBroker({ url, prefix });
    const other = new NatsBroker({ url, prefix: testPrefix('other') });
    t.after(() => Promise.all([a.close(), c.close(), other.close()]));
    const got = recorder();
    const stray = recorder();
    await a.subscribe('t', got.handler);
    await other.subscribe('t', stray.handler);
    await c.publish('t', 'from c');
    await eventually('delivery across brokers', () => got.messages.length === 1);
    assert.equal(stray.messages.length, 0);
  });

  it('refuses what NATS cannot carry: 400 for bodies and header names, 413 past max_payload', async (t) => {
    const b = await broker(t);
    if (!b) return;
    await assert.rejects(b.publish('t', 1, { header: { 'bad key': 'v' } }), isCode(400, /cannot travel on NATS/));
    await assert.rejects(b.publish('t', { f: () => 1 }), isCode(400, /cannot be encoded as JSON/));
    await assert.rejects(b.publish('t', 10n), isCode(400, /cannot be encoded as JSON/));
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await assert.rejects(b.publish('t', cyclic), isCode(400, /cannot be encoded as JSON/));
    await assert.rejects(b.publish('t', 'x'.repeat(2 * 1024 * 1024)), isCode(413, /max_payload/));
    assert.throws(() => new NatsBroker({ maxPending: 0 }), isCode(400, /maxPending/));
  });

  it('drops what is not its own on its subjects and delivers on', async (t) => {
    const b = await broker(t);
    if (!b) return;
    const r = recorder();
    await b.subscribe('t', r.handler);
    const nc = await connect({ servers: b.url.replace('nats://', '') });
    t.after(() => nc.close());
    nc.publish(`${b.prefix}.broker.micro.t`, 'not json {');
    nc.publish(`${b.prefix}.broker.micro.t`, new Uint8Array([0xff, 0xfe]));
    await nc.flush();
    await b.publish('t', 'fine');
    await eventually('the good message', () => r.messages.length === 1);
    assert.equal(b.stats().malformed, 2);
    // an empty payload is an undefined body
    nc.publish(`${b.prefix}.broker.micro.t`);
    await eventually('the empty message', () => r.messages.length === 2);
    assert.equal(r.messages[1]?.body, undefined);
  });

  it('NATS unreachable is a 503 naming the URL', async (t) => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const down = new NatsBroker({ url: `nats://127.0.0.1:${port}`, prefix: 'micro', maxWait: 0 });
    t.after(() => down.close());
    await assert.rejects(down.publish('t', 1), isCode(503, new RegExp(`cannot reach NATS at nats://127\\.0\\.0\\.1:${port}`)));
    await assert.rejects(down.connect(), isCode(503, /start NATS/));
  });
});
