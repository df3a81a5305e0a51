import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { z } from 'zod';
import { MicroError } from '../errors/errors.js';
import { MemoryRegistry } from '../registry/memory.js';
import { Service } from '../service/service.js';
import { defineService, endpoint } from '../service/definition.js';
import { Client, type ClientMiddleware } from './client.js';
import { Selector } from '../selector/selector.js';
import { createClient } from './typed.js';
import type { HandlerMiddleware } from '../service/router.js';
import { echo, echoHandlers, silent, startEcho } from '../test/fixtures.js';

test('the typed client rejects wrong endpoints and fields at compile time', async () => {
  const h = await startEcho();
  try {
    const res = await h.typed.Call({ name: 'typed' });
    // the response type is inferred: message is a string
    const message: string = res.message;
    assert.equal(message, 'Hello typed');
    // these lines are compiled by tsc; each directive fails the build if the line compiles
    // @ts-expect-error -- no such endpoint
    assert.equal(typeof h.typed.Nope, 'undefined');
    // @ts-expect-error -- name must be a string
    await assert.rejects(h.typed.Call({ name: 42 }));
    // @ts-expect-error -- name is required
    await assert.rejects(h.typed.Call({}));
    // @ts-expect-error -- unknown response field
    assert.equal(res.nope, undefined);
    // @ts-expect-error -- a server stream is not a promise
    void (await h.typed.Count({ to: 1 })).n;
    // streams yield typed messages
    for await (const item of h.typed.Count({ to: 1 })) {
      const n: number = item.n;
      assert.equal(n, 1);
    }
  } finally {
    await h.close();
  }
});

test('handlers are typed from the definition', () => {
  const def = defineService({
    name: 'typed',
    endpoints: { Get: endpoint({ request: z.object({ id: z.number() }), response: z.object({ ok: z.boolean() }) }) },
  });
  // @ts-expect-error -- the response must have ok: boolean
  const bad = new Service(def, { Get: () => ({ ok: 'yes' }) }, { address: false, registry: new MemoryRegistry(), logger: silent });
  assert.ok(bad);
  // @ts-expect-error -- a handler for every endpoint
  assert.throws(() => new Service(def, {}, { address: false, registry: new MemoryRegistry(), logger: silent }), /no handler for endpoint Get/);
  assert.throws(() => defineService({ name: 'Bad Name', endpoints: {} }), /invalid service name/);
  assert.throws(() => defineService({ name: 'ok', endpoints: { 'a/b': endpoint({ request: z.object({}), response: z.object({}) }) } }), /invalid endpoint name/);
});

test('server and client middleware run in order around every call', async () => {
  const order: string[] = [];
  const server = (tag: string): HandlerMiddleware => async (ctx, req, next) => {
    order.push(`server ${tag} in ${ctx.endpoint}`);
    const res = await next(req);
    order.push(`server ${tag} out`);
    return res;
  };
  const client = (tag: string): ClientMiddleware => async (req, next) => {
    order.push(`client ${tag} in ${req.endpoint}`);
    req.metadata = { ...req.metadata, [`x-${tag}`]: 'yes' };
    const res = await next(req);
    order.push(`client ${tag} out`);
    return res;
  };
  for (const remote of [false, true]) {
    order.length = 0;
    const h = await startEcho({ remote, service: { middleware: [server('a'), server('b')] }, client: { middleware: [client('1'), client('2')] } });
    try {
      const res = await h.typed.Call({ name: 'mw' });
      assert.deepEqual(res.metadata, { 'x-1': 'yes', 'x-2': 'yes' });
      assert.deepEqual(order, ['client 1 in Call', 'client 2 in Call', 'server a in Call', 'server b in Call', 'server b out', 'server a out', 'client 2 out', 'client 1 out']);
    } finally {
      await h.close();
    }
  }
});

test('the registry holds each endpoint with JSON Schemas derived from zod', async () => {
  const h = await startEcho({ remote: true });
  try {
    const [record] = await h.registry.getService('echo', { namespace: h.service.namespace });
    assert.ok(record);
    assert.equal(record.version, '1.2.3');
    assert.equal(record.nodes.length, 1);
    assert.equal(record.nodes[0]!.address, h.service.address);
    const call = record.endpoints.find((e) => e.name === 'Call');
    assert.equal(call?.kind, 'unary');
    assert.equal(call?.idempotent, true);
    assert.deepEqual((call?.request as { required?: string[] }).required, ['name']);
    assert.equal(((call?.request as { properties: Record<string, { type: string }> }).properties.name)?.type, 'string');
    assert.equal(record.endpoints.find((e) => e.name === 'Count')?.kind, 'server');
    assert.ok(record.endpoints.some((e) => e.name === 'Debug.Health'));
  } finally {
    await h.close();
  }
});

test('calls are balanced across instances found in the registry', async () => {
  const registry = new MemoryRegistry();
  const namespace = 'balance';
  const seen = new Map<string, number>();
  const make = (tag: string) =>
    new Service(echo, { ...echoHandlers(), Call: ({ name }) => {
      seen.set(tag, (seen.get(tag) ?? 0) + 1);
      return { message: `${tag} ${name}` };
    } }, { registry, namespace, logger: silent });
  const a = await make('a').start();
  const b = await make('b').start();
  try {
    const client = createClient(echo, new Client({ registry, namespace, preferLocal: false }));
    for (let i = 0; i < 20; i++) await client.Call({ name: String(i) });
    assert.equal(seen.get('a'), 10);
    assert.equal(seen.get('b'), 10);
    // once a instance stops (deregisters), every call goes to b
    await a.stop();
    for (let i = 0; i < 5; i++) assert.match((await client.Call({ name: 'x' })).message, /^b /);
  } finally {
    await a.stop();
    await b.stop();
    await registry.close();
  }
});

/** A node that accepts connections and drops each one as soon as a request arrives. */
async function droppingNode(): Promise<{ server: Server; address: string }> {
  const server = createServer((socket) => {
    socket.on('data', (chunk: Buffer) => {
      if (chunk.length > 5) socket.destroy();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return { server, address: `tcp://127.0.0.1:${port}` };
}

test('retries: unsent calls and idempotent calls move to another node; others fail with 503', async () => {
  const registry = new MemoryRegistry();
  const namespace = 'retries';
  const good = await new Service(echo, echoHandlers(), { registry, namespace, logger: silent }).start();
  const dropper = await droppingNode();
  // a node that refuses connections (nothing listens there any more) and one that drops calls
  const closed = await droppingNode();
  await new Promise<void>((r) => closed.server.close(() => r()));
  const fake = (id: string, address: string) => ({ name: 'echo', version: '1.2.3', endpoints: [], nodes: [{ id, address }] });
  await registry.register(fake('refusing', closed.address), { namespace });
  await registry.register(fake('dropping', dropper.address), { namespace });
  try {
    // a breaker that never opens, so that every node keeps getting calls
    const selector = new Selector({ registry, breaker: { failureThreshold: 1_000 } });
    const client = createClient(echo, new Client({ registry, selector, namespace, preferLocal: false, retries: 2 }));
    // Call is idempotent: it always ends on the good node
    for (let i = 0; i < 9; i++) assert.equal((await client.Call({ name: 'r' })).message, 'Hello r');
    // Slow is not idempotent: a call lost after it was sent is not repeated
    const outcomes = await Promise.allSettled(Array.from({ length: 9 }, () => client.Slow({ ms: 0 })));
    const lost = outcomes.filter((o) => o.status === 'rejected').map((o) => (o as PromiseRejectedResult).reason as MicroError);
    assert.ok(lost.length > 0, 'some calls reached the dropping node');
    for (const err of lost) {
      assert.equal(err.code, 503);
      assert.match(err.detail, /lost/);
    }
    assert.ok(outcomes.some((o) => o.status === 'fulfilled'));
    // without retries the refusing node's error surfaces as a 503 too
    const noRetry = new Client({ registry, namespace, preferLocal: false, retries: 0, address: closed.address });
    await assert.rejects(noRetry.call('echo', 'Call', { name: 'x' }), (err: MicroError) => err.code === 503 && /cannot reach/.test(err.detail));
    await selector.close();
  } finally {
    await good.stop();
    dropper.server.close();
    await registry.close();
  }
});

test('the circuit breaker stops sending calls to a node that keeps failing', async () => {
  const registry = new MemoryRegistry();
  const namespace = 'breaker';
  const good = await new Service(echo, echoHandlers(), { registry, namespace, logger: silent }).start();
  const dropper = await droppingNode();
  await registry.register({ name: 'echo', version: '1.2.3', endpoints: [], nodes: [{ id: 'dropping', address: dropper.address }] }, { namespace });
  const selector = new Selector({ registry, breaker: { failureThreshold: 2, resetTimeout: 60_000 } });
  try {
    const client = createClient(echo, new Client({ registry, selector, namespace, preferLocal: false, retries: 0 }));
    const outcomes = await Promise.allSettled(Array.from({ length: 10 }, async () => client.Slow({ ms: 0 })));
    const failed = outcomes.filter((o) => o.status === 'rejected').length;
    assert.ok(failed >= 1 && failed <= 5, `${failed} calls failed before the circuit opened`);
    assert.equal(selector.breakerState('dropping'), 'open');
    // from now on every call goes to the good node
    for (let i = 0; i < 10; i++) assert.equal((await client.Slow({ ms: 0 })).aborted, false);
  } finally {
    await selector.close();
    await good.stop();
    dropper.server.close();
    await registry.close();
  }
});
