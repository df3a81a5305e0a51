import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MicroError } from '../errors/errors.js';
import { MAX_TOPIC_LENGTH, matchTokens, topicMatches, topicProblem } from './broker.js';
import type { Message } from './broker.js';
import { MemoryBroker } from './memory.js';

/** Resolves after every queued microtask (and so every pending delivery) has run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A handler that records what it receives. */
function recorder(): { messages: Message[]; handler: (m: Message) => void } {
  const messages: Message[] = [];
  return { messages, handler: (m) => void messages.push(m) };
}

function isBadRequest(pattern: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof MicroError, `expected a MicroError, got ${String(err)}`);
    assert.equal(err.code, 400);
    assert.match(err.detail, pattern);
    return true;
  };
}

describe('MemoryBroker', () => {
  it('is named memory', () => {
    assert.equal(new MemoryBroker().name, 'memory');
  });

  it('fans a message out to every plain subscriber with topic, header and body', async () => {
    const broker = new MemoryBroker();
    const a = recorder();
    const b = recorder();
    await broker.subscribe('user.created', a.handler);
    await broker.subscribe('user.created', b.handler);
    await broker.publish('user.created', { id: 1 }, { header: { traceparent: 't1' } });
    await settle();
    for (const r of [a, b]) {
      assert.deepEqual(r.messages, [{ topic: 'user.created', header: { traceparent: 't1' }, body: { id: 1 } }]);
    }
    assert.equal(broker.stats().delivered, 2);
  });

  it('delivers nothing for other topics', async () => {
    const broker = new MemoryBroker();
    const a = recorder();
    await broker.subscribe('user.created', a.handler);
    await broker.publish('user.deleted', 1);
    await broker.publish('user.created.v2', 1);
    await settle();
    assert.equal(a.messages.length, 0);
  });

  it('never runs a handler inside publish, and delivers before the publisher resumes', async () => {
    const broker = new MemoryBroker();
    const order: string[] = [];
    await broker.subscribe('t', () => void order.push('handler'));
    const published = broker.publish('t', null);
    order.push('after publish call');
    await published;
    order.push('after await');
    assert.deepEqual(order, ['after publish call', 'handler', 'after await']);
  });

  it('keeps message order for one subscriber', async () => {
    const broker = new MemoryBroker();
    const got: number[] = [];
    await broker.subscribe('seq', (m) => void got.push(m.body as number));
    for (let i = 0; i < 100; i++) await broker.publish('seq', i);
    await settle();
    assert.deepEqual(got, Array.from({ length: 100 }, (_, i) => i));
  });

  it('shares a queue group: each message reaches exactly one member, round robin', async () => {
    const broker = new MemoryBroker();
    const members = [recorder(), recorder(), recorder()];
    for (const m of members) await broker.subscribe('jobs', m.handler, { queue: 'workers' });
    for (let i = 0; i < 9; i++) await broker.publish('jobs', i);
    await settle();
    const seen = members.flatMap((m) => m.messages.map((msg) => msg.body as number)).sort((x, y) => x - y);
    assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8], 'every message exactly once across the group');
    for (const m of members) assert.equal(m.messages.length, 3, 'round robin spreads evenly');
  });

  it('gives every queue group and every plain subscriber each message', async () => {
    const broker = new MemoryBroker();
    const groups = { billing: [recorder(), recorder()], audit: [recorder(), recorder(), recorder()] };
    for (const [queue, members] of Object.entries(groups)) {
      for (const m of members) await broker.subscribe('order.placed', m.handler, { queue });
    }
    const plain = recorder();
    await broker.subscribe('order.placed', plain.handler);
    const n = 12;
    for (let i = 0; i < n; i++) await broker.publish('order.placed', i);
    await settle();
    for (const members of Object.values(groups)) {
      const bodies = members.flatMap((m) => m.messages.map((msg) => msg.body as number)).sort((x, y) => x - y);
      assert.deepEqual(bodies, Array.from({ length: n }, (_, i) => i));
    }
    assert.equal(plain.messages.length, n);
  });

  it('keeps sharing among the remaining members after one leaves the group', async () => {
    const broker = new MemoryBroker();
    const a = recorder();
    const b = recorder();
    const subA = await broker.subscribe('jobs', a.handler, { queue: 'w' });
    await broker.subscribe('jobs', b.handler, { queue: 'w' });
    await subA.unsubscribe();
    for (let i = 0; i < 4; i++) await broker.publish('jobs', i);
    await settle();
    assert.equal(a.messages.length, 0);
    assert.equal(b.messages.length, 4);
  });

  it('matches wildcards: * one token, > the rest', async () => {
    const broker = new MemoryBroker();
    const star = recorder();
    const rest = recorder();
    const all = recorder();
    await broker.subscribe('user.*.created', star.handler);
    await broker.subscribe('user.>', rest.handler);
    await broker.subscribe('>', all.handler);
    const topics = ['user.eu.created', 'user.created', 'user.eu.west.created', 'order.placed', 'user'];
    for (const t of topics) await broker.publish(t, t);
    await settle();
    assert.deepEqual(star.messages.map((m) => m.topic), ['user.eu.created']);
    assert.deepEqual(rest.messages.map((m) => m.topic), ['user.eu.created', 'user.created', 'user.eu.west.created']);
    assert.deepEqual(all.messages.map((m) => m.topic), topics);
  });

  it('delivers once to a wildcard queue group', async () => {
    const broker = new MemoryBroker();
    const members = [recorder(), recorder()];
    for (const m of members) await broker.subscribe('log.>', m.handler, { queue: 'sink' });
    for (let i = 0; i < 6; i++) await broker.publish(`log.${i % 2 ? 'info' : 'error'}`, i);
    await settle();
    assert.equal(members[0]!.messages.length + members[1]!.messages.length, 6);
  });

  it('keeps namespaces apart, with micro as the default', async () => {
    const broker = new MemoryBroker();
    const dflt = recorder();
    const micro = recorder();
    const acme = recorder();
    await broker.subscribe('t', dflt.handler);
    await broker.subscribe('t', micro.handler, { namespace: 'micro' });
    await broker.subscribe('t', acme.handler, { namespace: 'acme' });
    await broker.publish('t', 'to default');
    await broker.publish('t', 'to acme', { namespace: 'acme' });
    await broker.publish('t', 'to nobody', { namespace: 'other' });
    await settle();
    assert.deepEqual(dflt.messages.map((m) => m.body), ['to default']);
    assert.deepEqual(micro.messages.map((m) => m.body), ['to default']);
    assert.deepEqual(acme.messages.map((m) => m.body), ['to acme']);
  });

  it('stops delivery on unsubscribe, including messages already queued', async () => {
    const broker = new MemoryBroker();
    const a = recorder();
    const sub = await broker.subscribe('t', a.handler);
    assert.equal(sub.topic, 't');
    assert.equal(sub.queue, undefined);
    await broker.publish('t', 1);
    await settle();
    const queued = broker.publish('t', 2);
    await sub.unsubscribe(); // before the queued delivery runs
    await queued;
    await broker.publish('t', 3);
    await settle();
    assert.deepEqual(a.messages.map((m) => m.body), [1]);
    await sub.unsubscribe(); // twice is harmless
    assert.equal(broker.stats().subscriptions, 0);
  });

  it('swallows throwing and rejecting handlers without disturbing the others', async () => {
    const errors: unknown[] = [];
    const broker = new MemoryBroker({ onError: (err) => void errors.push(err) });
    const good = recorder();
    await broker.subscribe('t', () => {
      throw new Error('sync boom');
    });
    await broker.subscribe('t', async () => {
      throw new Error('async boom');
    });
    await broker.subscribe('t', good.handler);
    await broker.publish('t', 1);
    await broker.publish('t', 2);
    await settle();
    assert.deepEqual(good.messages.map((m) => m.body), [1, 2]);
    assert.equal(broker.stats().failed, 4);
    assert.deepEqual(
      errors.map((e) => (e as Error).message).sort(),
      ['async boom', 'async boom', 'sync boom', 'sync boom'],
    );
  });

  it('survives an onError callback that itself throws', async () => {
    const broker = new MemoryBroker({
      onError: () => {
        throw new Error('callback boom');
      },
    });
    const good = recorder();
    await broker.subscribe('t', () => Promise.reject(new Error('x')));
    await broker.subscribe('t', good.handler);
    await broker.publish('t', 1);
    await settle();
    assert.equal(good.messages.length, 1);
    assert.equal(broker.stats().failed, 1);
  });

  it('gives each subscriber its own copy of the body', async () => {
    const broker = new MemoryBroker();
    const seen: unknown[] = [];
    const mutate = (m: Message): void => {
      (m.body as { tags: string[] }).tags.push('mutated');
      m.header['x'] = 'changed';
    };
    await broker.subscribe('t', mutate);
    await broker.subscribe('t', (m) => void seen.push(structuredClone(m)));
    const body = { tags: ['a'], when: new Date(0) };
    const header = { x: 'original' };
    await broker.publish('t', body, { header });
    body.tags.push('changed by publisher after publish');
    await settle();
    assert.deepEqual(seen, [{ topic: 't', header: { x: 'original' }, body: { tags: ['a'], when: new Date(0) } }]);
    assert.deepEqual(body.tags, ['a', 'changed by publisher after publish'], "subscribers did not touch the publisher's object");
    assert.deepEqual(header, { x: 'original' });
  });

  it('rejects a body that cannot be copied, listeners or not', async () => {
    const broker = new MemoryBroker();
    await assert.rejects(broker.publish('t', { f: () => 1 }), isBadRequest(/cannot be copied/));
    await broker.subscribe('t', () => {});
    await assert.rejects(broker.publish('t', { f: () => 1 }), isBadRequest(/cannot be copied/));
  });

  it('rejects bad topic names with a clear BadRequest', async () => {
    const broker = new MemoryBroker();
    const cases: [string, RegExp][] = [
      ['', /topic is empty/],
      ['a b', /whitespace/],
      ['a\u0000b', /control character/],
      ['a\tb', /whitespace/],
      ['a..b', /empty token/],
      ['.a', /empty token/],
      ['a.', /empty token/],
      ['x'.repeat(MAX_TOPIC_LENGTH + 1), /longer than 256/],
      ['a.b*', /\* must be a whole token/],
      ['a.>.b', /> must be the last token/],
    ];
    for (const [topic, why] of cases) {
      await assert.rejects(broker.subscribe(topic, () => {}), isBadRequest(why), `subscribe ${JSON.stringify(topic)}`);
      await assert.rejects(broker.publish(topic, 1), isBadRequest(/invalid topic/), `publish ${JSON.stringify(topic)}`);
    }
    await assert.rejects(broker.publish('a.*', 1), isBadRequest(/cannot publish to a wildcard/));
    await assert.rejects(broker.publish('>', 1), isBadRequest(/cannot publish to a wildcard/));
    // allowed: dots, dashes, underscores, long-but-bounded names
    await broker.subscribe('go.micro-svc.user_created', () => {});
    await broker.publish('x'.repeat(MAX_TOPIC_LENGTH), 1);
  });

  it('rejects bad namespaces, queues, headers and handlers', async () => {
    const broker = new MemoryBroker();
    await assert.rejects(broker.publish('t', 1, { namespace: '' }), isBadRequest(/namespace must be a non-empty string/));
    await assert.rejects(broker.subscribe('t', () => {}, { namespace: 'a b' }), isBadRequest(/invalid namespace/));
    await assert.rejects(broker.subscribe('t', () => {}, { queue: '' }), isBadRequest(/queue must be a non-empty string/));
    await assert.rejects(
      broker.publish('t', 1, { header: { n: 1 } as unknown as Record<string, string> }),
      isBadRequest(/header "n" must be a string/),
    );
    await assert.rejects(broker.subscribe('t', 'nope' as never), isBadRequest(/handler function/));
    assert.throws(() => new MemoryBroker({ maxPending: 0 }), isBadRequest(/maxPending/));
  });

  it('drops messages for a subscriber that cannot keep up, and no others', async () => {
    const broker = new MemoryBroker({ maxPending: 2 });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let slowCalls = 0;
    const fast = recorder();
    await broker.subscribe('t', async () => {
      slowCalls++;
      await gate;
    });
    await broker.subscribe('t', fast.handler);
    for (let i = 0; i < 5; i++) await broker.publish('t', i);
    await settle();
    assert.equal(slowCalls, 2);
    assert.equal(fast.messages.length, 5);
    assert.equal(broker.stats().dropped, 3);
    release();
    await settle();
    await broker.publish('t', 5);
    await settle();
    assert.equal(slowCalls, 3, 'room again once the handler finished');
  });

  it('lets a handler publish without recursing', async () => {
    const broker = new MemoryBroker();
    const got: number[] = [];
    await broker.subscribe('ping', async (m) => {
      const n = m.body as number;
      got.push(n);
      if (n < 50) await broker.publish('ping', n + 1);
    });
    await broker.publish('ping', 0);
    for (let i = 0; i < 5 && got.length < 51; i++) await settle();
    assert.equal(got.length, 51);
  });

  it('ends everything on close', async () => {
    const broker = new MemoryBroker();
    const a = recorder();
    await broker.subscribe('t', a.handler);
    const queued = broker.publish('t', 1);
    await broker.close();
    await queued;
    await settle();
    assert.equal(a.messages.length, 0, 'queued messages are dropped');
    assert.equal(broker.stats().subscriptions, 0);
    await assert.rejects(broker.publish('t', 2), (err: unknown) => err instanceof MicroError && err.code === 503);
    await assert.rejects(broker.subscribe('t', () => {}), (err: unknown) => err instanceof MicroError && err.code === 503);
    await broker.close(); // idempotent
  });
});

describe('topic matching', () => {
  it('matches the documented examples', () => {
    assert.ok(topicMatches('a.b', 'a.b'));
    assert.ok(topicMatches('a.*', 'a.b'));
    assert.ok(!topicMatches('a.*', 'a.b.c'));
    assert.ok(topicMatches('a.>', 'a.b.c'));
    assert.ok(!topicMatches('a.>', 'a'), '> needs at least one token');
    assert.ok(topicMatches('*.*.c', 'a.b.c'));
    assert.ok(!topicMatches('a.b', 'a.b.c'));
    assert.ok(!topicMatches('a.b.c', 'a.b'));
  });

  it('validates patterns: wildcards only where allowed', () => {
    assert.equal(topicProblem('a.*.>', { wildcards: true }), undefined);
    assert.match(topicProblem('a.*', { wildcards: false }) ?? '', /wildcard/);
    assert.match(topicProblem(42, { wildcards: true }) ?? '', /must be a string/);
    assert.match(topicProblem('a\u00a0b', { wildcards: true }) ?? '', /whitespace/, 'unicode whitespace too');
  });

  // An independent definition of the semantics to check the matcher against.
  const reference = (pattern: string[], topic: string[]): boolean => {
    const source = pattern.map((t) => (t === '*' ? '[^.]+' : t === '>' ? '.+' : t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('\\.');
    return new RegExp(`^${source}$`).test(topic.join('.'));
  };
  // A small alphabet so that random patterns and topics actually meet.
  const token = fc.constantFrom('a', 'b', 'c');
  const topicArb = fc.array(token, { minLength: 1, maxLength: 5 });
  const patternArb = fc
    .tuple(fc.array(fc.oneof(token, fc.constant('*')), { minLength: 1, maxLength: 5 }), fc.boolean())
    .map(([tokens, tail]) => (tail ? [...tokens.slice(0, -1), '>'] : tokens));

  it('agrees with a regular-expression reference (property)', () => {
    fc.assert(
      fc.property(patternArb, topicArb, (pattern, topic) => {
        assert.equal(topicProblem(pattern.join('.'), { wildcards: true }), undefined);
        assert.equal(matchTokens(pattern, topic), reference(pattern, topic), `${pattern.join('.')} vs ${topic.join('.')}`);
      }),
      { numRuns: 2000 },
    );
  });

  it('a topic matches itself, with any token starred, and any proper prefix followed by > (property)', () => {
    fc.assert(
      fc.property(topicArb, fc.nat(), (topic, k) => {
        assert.ok(matchTokens(topic, topic));
        const i = k % topic.length;
        assert.ok(matchTokens(topic.map((t, j) => (j === i ? '*' : t)), topic));
        assert.ok(matchTokens([...topic.slice(0, i), '>'], topic));
        assert.ok(!matchTokens([...topic, '>'], topic), '> needs at least one more token');
      }),
    );
  });

  it('routes through the broker exactly as the matcher says (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(patternArb, { minLength: 1, maxLength: 4, selector: (p) => p.join('.') }), topicArb, async (patterns, topic) => {
        const broker = new MemoryBroker();
        const hits: string[] = [];
        for (const p of patterns) await broker.subscribe(p.join('.'), () => void hits.push(p.join('.')));
        await broker.publish(topic.join('.'), null);
        await settle();
        const expected = patterns.filter((p) => matchTokens(p, topic)).map((p) => p.join('.'));
        assert.deepEqual(hits.sort(), expected.sort());
      }),
      { numRuns: 200 },
    );
  });
});
