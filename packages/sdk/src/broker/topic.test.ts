import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { MicroError } from '../errors/errors.js';
import type { Message } from './broker.js';
import { MemoryBroker } from './memory.js';
import { publish, subscribe, topic } from './topic.js';
import { formatIssues } from '../service/validate.js';

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const userCreated = topic(
  'user.created',
  z.object({
    name: z.string(),
    age: z.number().int().min(0).optional(),
    address: z.object({ city: z.string() }).optional(),
    // a transform: the handler sees the output type, the wire carries the input
    joined: z.string().transform((s) => new Date(s)),
  }),
);

function badRequest(pattern: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof MicroError, `expected a MicroError, got ${String(err)}`);
    assert.equal(err.code, 400);
    assert.match(err.detail, pattern);
    return true;
  };
}

describe('typed topics', () => {
  it('keeps the literal name and the schema', () => {
    const name: 'user.created' = userCreated.name;
    assert.equal(name, 'user.created');
    assert.ok(Object.isFrozen(userCreated));
  });

  it('rejects invalid topic names and non-schemas', () => {
    assert.throws(() => topic('user created', z.string()), badRequest(/invalid topic "user created": .*whitespace/));
    assert.throws(() => topic('user.*', z.string()), badRequest(/wildcard/));
    assert.throws(() => topic('user.x', { parse: () => 1 } as unknown as z.ZodString), badRequest(/must be a zod schema/));
  });

  it('publishes a valid payload and hands the parsed output to a typed handler', async () => {
    const broker = new MemoryBroker();
    const got: { name: string; joined: Date; message: Message }[] = [];
    await subscribe(broker, userCreated, (user, message) => {
      // type-level: the handler gets z.output, so joined is a Date
      const joined: Date = user.joined;
      got.push({ name: user.name, joined, message });
    });
    await publish(broker, userCreated, { name: 'Alice', joined: '2024-01-02T00:00:00.000Z' }, { header: { k: 'v' } });
    await settle();
    assert.equal(got.length, 1);
    assert.equal(got[0]!.name, 'Alice');
    assert.ok(got[0]!.joined instanceof Date);
    assert.equal(got[0]!.joined.toISOString(), '2024-01-02T00:00:00.000Z');
    assert.equal(got[0]!.message.topic, 'user.created');
    assert.deepEqual(got[0]!.message.header, { k: 'v' });
    assert.deepEqual(got[0]!.message.body, { name: 'Alice', joined: '2024-01-02T00:00:00.000Z' }, 'the wire carries the input form');
  });

  it('rejects an invalid payload naming the field, and publishes nothing', async () => {
    const broker = new MemoryBroker();
    let calls = 0;
    await broker.subscribe('user.created', () => void calls++);
    await assert.rejects(
      publish(broker, userCreated, {
        // @ts-expect-error name must be a string: the compiler catches it before the schema does
        name: 42,
        joined: 'x',
      }),
      badRequest(/^invalid message for topic user\.created: name: .*expected string/),
    );
    await assert.rejects(
      publish(broker, userCreated, { name: 'Bob', joined: 'x', age: -1, address: { city: 7 as unknown as string } }),
      badRequest(/age: .*>=0.*; address\.city: .*expected string/),
    );
    await settle();
    assert.equal(calls, 0);
    assert.equal(broker.stats().published, 0);
  });

  it('type-checks payloads and handler fields at compile time', async () => {
    const broker = new MemoryBroker();
    const ping = topic('ping', z.object({ n: z.number() }));
    // @ts-expect-error a required field is missing
    await assert.rejects(publish(broker, ping, {}), badRequest(/n: /));
    await subscribe(broker, ping, (payload) => {
      const n: number = payload.n;
      // @ts-expect-error no such field on the payload
      void payload.missing;
      void n;
    });
    await publish(broker, ping, { n: 1 });
  });

  it('drops and counts incoming messages that do not match the schema', async () => {
    const broker = new MemoryBroker();
    const names: string[] = [];
    const invalid: string[] = [];
    const sub = await subscribe(broker, userCreated, (user) => void names.push(user.name), {
      onInvalid: (error, message) => invalid.push(`${message.topic}: ${formatIssues(error.issues)}`),
    });
    // an untyped publisher (another language, an old version) sends bad data
    await broker.publish('user.created', { name: 7, joined: 'x' });
    await broker.publish('user.created', 'not an object');
    await broker.publish('user.created', { name: 'Carol', joined: 'x' });
    await settle();
    assert.deepEqual(names, ['Carol']);
    assert.equal(sub.invalid, 2);
    assert.equal(invalid.length, 2);
    assert.match(invalid[0]!, /^user\.created: name: /);
    assert.equal(broker.stats().failed, 0, 'dropping is not a handler failure');
  });

  it('passes queue groups and namespaces through, and unsubscribes', async () => {
    const broker = new MemoryBroker();
    const a: string[] = [];
    const b: string[] = [];
    const subA = await subscribe(broker, userCreated, (u) => void a.push(u.name), { queue: 'q', namespace: 'acme' });
    const subB = await subscribe(broker, userCreated, (u) => void b.push(u.name), { queue: 'q', namespace: 'acme' });
    assert.equal(subA.topic, 'user.created');
    assert.equal(subA.queue, 'q');
    for (const name of ['1', '2', '3', '4']) await publish(broker, userCreated, { name, joined: 'x' }, { namespace: 'acme' });
    await publish(broker, userCreated, { name: 'elsewhere', joined: 'x' });
    await settle();
    assert.deepEqual([...a, ...b].sort(), ['1', '2', '3', '4']);
    assert.equal(a.length, 2);
    await subA.unsubscribe();
    await subB.unsubscribe();
    await publish(broker, userCreated, { name: '5', joined: 'x' }, { namespace: 'acme' });
    await settle();
    assert.equal(a.length + b.length, 4);
  });

  it('awaits async handlers so their failures are counted by the broker', async () => {
    const broker = new MemoryBroker();
    await subscribe(broker, userCreated, async () => {
      throw new Error('handler failed');
    });
    await publish(broker, userCreated, { name: 'x', joined: 'x' });
    await settle();
    assert.equal(broker.stats().failed, 1);
  });

  it('formats issues as path: message, bounded', () => {
    const schema = z.object({ a: z.array(z.object({ b: z.string() })), c: z.string(), d: z.string(), e: z.string(), f: z.string(), g: z.string() });
    const result = schema.safeParse({ a: [{ b: 1 }] });
    assert.ok(!result.success);
    const text = formatIssues(result.error.issues);
    assert.match(text, /^a\.0\.b: /);
    assert.match(text, /; and 1 more$/);
    assert.equal(formatIssues(z.string().safeParse(1).error!.issues), z.string().safeParse(1).error!.issues[0]!.message, 'no path, no prefix');
  });
});
