import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { MicroError } from '../errors/errors.js';
import { MAX_TOPIC_LENGTH, type Broker, type Message } from './broker.js';

/**
 * What every Broker must do, run against each engine: MemoryBroker (contract.test.ts)
 * and NatsBroker (nats.test.ts). Delivery may come later than `publish` returns (across a
 * network), so the checks wait for it; queue groups may spread in turn or at random.
 */

export interface ContractBroker extends Broker {
  stats(): { failed: number; dropped: number; subscriptions: number };
}

export interface ContractOptions {
  onError?: (err: unknown, message: Message) => void;
  maxPending?: number;
}

/** Makes a fresh broker of its own for one test (and closes it after), or undefined to skip. */
export type MakeBroker = (t: TestContext, options?: ContractOptions) => Promise<ContractBroker | undefined>;

function recorder(): { messages: Message[]; handler: (m: Message) => void } {
  const messages: Message[] = [];
  return { messages, handler: (m) => void messages.push(m) };
}

export async function eventually(what: string, check: () => boolean): Promise<void> {
  const end = Date.now() + 5_000;
  while (!check()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export function isCode(code: number, pattern?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof MicroError, `expected a MicroError, got ${String(err)}`);
    assert.equal(err.code, code, err.detail);
    if (pattern) assert.match(err.detail, pattern);
    return true;
  };
}

export function brokerContract(label: string, make: MakeBroker): void {
  describe(`broker contract: ${label}`, () => {
    it('fans a message out to every plain subscriber with topic, header and body', async (t) => {
      const b = await make(t);
      if (!b) return;
      const a = recorder();
      const c = recorder();
      await b.subscribe('user.created', a.handler);
      await b.subscribe('user.created', c.handler);
      await b.publish('user.created', { id: 1 }, { header: { traceparent: 't1' } });
      await eventually('both deliveries', () => a.messages.length === 1 && c.messages.length === 1);
      for (const r of [a, c]) assert.deepEqual(r.messages, [{ topic: 'user.created', header: { traceparent: 't1' }, body: { id: 1 } }]);
    });

    it('delivers nothing for other topics, and keeps order for one subscriber', async (t) => {
      const b = await make(t);
      if (!b) return;
      const got: unknown[] = [];
      await b.subscribe('seq', (m) => void got.push(m.body));
      await b.publish('seq.more', 'no');
      await b.publish('other', 'no');
      for (let i = 0; i < 100; i++) await b.publish('seq', i);
      await eventually('100 messages', () => got.length >= 100);
      // one publisher to one subscription keeps its order: anything misrouted would show
      assert.deepEqual(got, Array.from({ length: 100 }, (_, i) => i));
    });

    it('shares a queue group: each message reaches exactly one member; every group and plain subscriber gets all', async (t) => {
      const b = await make(t);
      if (!b) return;
      const groups = { billing: [recorder(), recorder(), recorder()], audit: [recorder(), recorder()] };
      for (const [queue, members] of Object.entries(groups)) for (const m of members) await b.subscribe('order.placed', m.handler, { queue });
      const plain = recorder();
      await b.subscribe('order.placed', plain.handler);
      const n = 30;
      for (let i = 0; i < n; i++) await b.publish('order.placed', i);
      await eventually('all deliveries', () => plain.messages.length === n && Object.values(groups).every((ms) => ms.reduce((s, m) => s + m.messages.length, 0) === n));
      for (const members of Object.values(groups)) {
        const bodies = members.flatMap((m) => m.messages.map((msg) => msg.body as number)).sort((x, y) => x - y);
        assert.deepEqual(bodies, Array.from({ length: n }, (_, i) => i), 'every message exactly once per group');
      }
    });

    it('keeps sharing among the remaining members after one leaves, and stops delivery on unsubscribe', async (t) => {
      const b = await make(t);
      if (!b) return;
      const a = recorder();
      const c = recorder();
      const subA = await b.subscribe('jobs', a.handler, { queue: 'w' });
      const subC = await b.subscribe('jobs', c.handler, { queue: 'w' });
      assert.equal(subA.topic, 'jobs');
      assert.equal(subA.queue, 'w');
      await subA.unsubscribe();
      await subA.unsubscribe(); // twice is harmless
      for (let i = 0; i < 4; i++) await b.publish('jobs', i);
      await eventually('four to the remaining member', () => c.messages.length === 4);
      assert.equal(a.messages.length, 0);
      await subC.unsubscribe();
      const sentinel = recorder();
      await b.subscribe('jobs', sentinel.handler);
      await b.publish('jobs', 'after');
      await eventually('the sentinel', () => sentinel.messages.length === 1);
      assert.equal(c.messages.length, 4);
      assert.equal(b.stats().subscriptions, 1);
    });

    it('matches wildcards: * one token, > the rest', async (t) => {
      const b = await make(t);
      if (!b) return;
      const star = recorder();
      const rest = recorder();
      const all = recorder();
      await b.subscribe('user.*.created', star.handler);
      await b.subscribe('user.>', rest.handler);
      await b.subscribe('>', all.handler);
      const topics = ['user.eu.created', 'user.created', 'user.eu.west.created', 'order.placed', 'user'];
      for (const topic of topics) await b.publish(topic, topic);
      await eventually('every topic at >', () => all.messages.length === topics.length);
      assert.deepEqual(star.messages.map((m) => m.topic), ['user.eu.created']);
      assert.deepEqual(rest.messages.map((m) => m.topic), ['user.eu.created', 'user.created', 'user.eu.west.created']);
      assert.deepEqual(all.messages.map((m) => m.topic), topics);
    });

    it('keeps namespaces apart (micro by default), even names with dots or wildcards', async (t) => {
      const b = await make(t);
      if (!b) return;
      const dflt = recorder();
      const acme = recorder();
      const dotted = recorder();
      const trap = recorder();
      await b.subscribe('t', dflt.handler, { namespace: 'micro' });
      await b.subscribe('t', acme.handler, { namespace: 'acme' });
      await b.subscribe('x', dotted.handler, { namespace: 'a.b' });
      // ns "a" topic "b.x" must not see ns "a.b" topic "x"; nor may ns "*" see other namespaces
      await b.subscribe('b.x', trap.handler, { namespace: 'a' });
      await b.subscribe('t', trap.handler, { namespace: '*' });
      await b.subscribe('>', trap.handler, { namespace: '>' });
      await b.publish('t', 'to default');
      await b.publish('t', 'to acme', { namespace: 'acme' });
      await b.publish('x', 'to a.b', { namespace: 'a.b' });
      await eventually('three deliveries', () => dflt.messages.length + acme.messages.length + dotted.messages.length === 3);
      const sentinel = recorder();
      await b.subscribe('done', sentinel.handler, { namespace: '*' });
      await b.publish('done', 1, { namespace: '*' });
      await eventually('the sentinel', () => sentinel.messages.length === 1);
      assert.deepEqual(dflt.messages.map((m) => m.body), ['to default']);
      assert.deepEqual(acme.messages.map((m) => m.body), ['to acme']);
      assert.deepEqual(dotted.messages.map((m) => m.body), ['to a.b']);
      assert.equal(trap.messages.length, 0);
    });

    it('swallows throwing and rejecting handlers without disturbing the others', async (t) => {
      const errors: unknown[] = [];
      const b = await make(t, {
        onError: (err) => {
          errors.push(err);
          throw new Error('callback boom');
        },
      });
      if (!b) return;
      const good = recorder();
      await b.subscribe('t', () => {
        throw new Error('sync boom');
      });
      await b.subscribe('t', async () => {
        throw new Error('async boom');
      });
      await b.subscribe('t', good.handler);
      await b.publish('t', 1);
      await b.publish('t', 2);
      await eventually('failures counted', () => good.messages.length === 2 && b.stats().failed === 4);
      assert.deepEqual(errors.map((e) => (e as Error).message).sort(), ['async boom', 'async boom', 'sync boom', 'sync boom']);
    });

    it('drops messages for a subscriber that cannot keep up, and no others', async (t) => {
      const b = await make(t, { maxPending: 2 });
      if (!b) return;
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let slowCalls = 0;
      const fast = recorder();
      await b.subscribe('t', async () => {
        slowCalls++;
        await gate;
      });
      await b.subscribe('t', fast.handler);
      for (let i = 0; i < 5; i++) await b.publish('t', i);
      await eventually('the fast subscriber', () => fast.messages.length === 5);
      assert.equal(slowCalls, 2);
      assert.equal(b.stats().dropped, 3);
      release();
      // the handlers' promises settle on the next turns of the event loop
      await new Promise((r) => setImmediate(r));
      await b.publish('t', 5);
      await eventually('room again once the handler finished', () => slowCalls === 3);
    });

    it('rejects bad topics, namespaces, queues, headers, handlers and bodies with a 400', async (t) => {
      const b = await make(t);
      if (!b) return;
      const cases: [string, RegExp][] = [
        ['', /topic is empty/],
        ['a b', /whitespace/],
        ['a\u0000b', /control character/],
        ['a..b', /empty token/],
        ['x'.repeat(MAX_TOPIC_LENGTH + 1), /longer than 256/],
        ['a.b*', /\* must be a whole token/],
        ['a.>.b', /> must be the last token/],
      ];
      for (const [topic, why] of cases) {
        await assert.rejects(b.subscribe(topic, () => {}), isCode(400, why), `subscribe ${JSON.stringify(topic)}`);
        await assert.rejects(b.publish(topic, 1), isCode(400, /invalid topic/), `publish ${JSON.stringify(topic)}`);
      }
      await assert.rejects(b.publish('a.*', 1), isCode(400, /cannot publish to a wildcard/));
      await assert.rejects(b.publish('t', 1, { namespace: '' }), isCode(400, /namespace must be a non-empty string/));
      await assert.rejects(b.subscribe('t', () => {}, { namespace: 'a b' }), isCode(400, /invalid namespace/));
      await assert.rejects(b.subscribe('t', () => {}, { queue: '' }), isCode(400, /queue must be a non-empty string/));
      await assert.rejects(b.publish('t', 1, { header: { n: 1 } as unknown as Record<string, string> }), isCode(400, /header "n" must be a string/));
      await assert.rejects(b.subscribe('t', 'nope' as never), isCode(400, /handler function/));
      await assert.rejects(b.publish('t', { f: () => 1 }), isCode(400));
      // a queue name with characters a subject cannot hold still works
      const r = recorder();
      await b.subscribe('q', r.handler, { queue: 'group.with.dots' });
      await b.publish('q', 'ok');
      await eventually('delivery to the odd queue', () => r.messages.length === 1);
    });

    it('ends everything on close, and refuses calls after it with a 503', async (t) => {
      const b = await make(t);
      if (!b) return;
      await b.subscribe('t', () => {});
      await b.close?.();
      await b.close?.(); // idempotent
      assert.equal(b.stats().subscriptions, 0);
      await assert.rejects(b.publish('t', 2), isCode(503, /closed/));
      await assert.rejects(b.subscribe('t', () => {}), isCode(503, /closed/));
    });
  });
}
