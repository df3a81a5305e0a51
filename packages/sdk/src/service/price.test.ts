import assert from 'node:assert/strict';
import { test } from 'node:test';
import { z } from 'zod';
import { Client } from '../client/client.js';
import { createLogger } from '../logger/logger.js';
import { MemoryRegistry } from '../registry/memory.js';
import type { ServiceRecord } from '../registry/registry.js';
import { RemoteRegistry, registryHandlers, registryService } from '../registry/service.js';
import { Service } from './service.js';
import { defineService, endpoint, endpointRecord, serverStream } from './definition.js';
import { PRICE_LIMITS, priceProblem } from './price.js';
import { MicroError } from '../errors/errors.js';

const silent = createLogger({ level: 'silent' });
const io = { request: z.object({}), response: z.object({}) };

test('a price and a free quota travel from the definition to the registry record', () => {
  const books = defineService({
    name: 'books',
    endpoints: {
      Read: endpoint({ ...io, price: 100, freeQuota: 1000 }),
      Free: endpoint({ ...io, price: 0 }),
      Counted: endpoint({ ...io, freeQuota: 0 }),
      Plain: endpoint(io),
      Feed: serverStream({ ...io, price: PRICE_LIMITS.price }),
    },
  });
  assert.deepEqual([endpointRecord('Read', books.endpoints.Read).price, endpointRecord('Read', books.endpoints.Read).freeQuota], [100, 1000]);
  // 0 is a price: the endpoint is metered, free of charge
  assert.equal(endpointRecord('Free', books.endpoints.Free).price, 0);
  assert.equal('freeQuota' in endpointRecord('Free', books.endpoints.Free), false);
  assert.equal(endpointRecord('Counted', books.endpoints.Counted).freeQuota, 0);
  const plain = endpointRecord('Plain', books.endpoints.Plain);
  assert.equal('price' in plain || 'freeQuota' in plain, false, 'an unpriced endpoint says nothing of prices');
  assert.equal(endpointRecord('Feed', books.endpoints.Feed).price, 1e15);
});

test('a wrong price or free quota stops the definition, naming the service, the endpoint and the field', () => {
  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['negative', { price: -1 }, /invalid price of endpoint Read in service books: price must be a whole number of units \(10\^-6 USD\) a call from 0 to 10\^15, not -1/],
    ['fractional', { price: 0.5 }, /price must be .*not 0\.5/],
    ['huge', { price: 2 ** 60 }, /price must be .*not 1152921504606847000/],
    ['just above the bound', { price: PRICE_LIMITS.price + 1 }, /price must be/],
    ['a string', { price: '100' }, /price must be .*not "100"/],
    ['NaN', { price: Number.NaN }, /not NaN/],
    ['Infinity', { price: Infinity }, /not Infinity/],
    ['-0', { price: -0 }, /not -0/],
    ['null', { price: null }, /not null/],
    ['negative quota', { freeQuota: -5 }, /invalid freeQuota of endpoint Read in service books: freeQuota must be a whole number of calls a month from 0 to 10\^12, not -5/],
    ['fractional quota', { freeQuota: 1.5 }, /freeQuota must be/],
    ['huge quota', { freeQuota: PRICE_LIMITS.freeQuota + 1 }, /freeQuota must be/],
    ['quota as text', { freeQuota: '1e3' }, /not "1e3"/],
  ];
  for (const [what, extra, message] of bad) {
    assert.throws(() => defineService({ name: 'books', endpoints: { Read: endpoint({ ...io, ...(extra as object) }) } }), message, what);
  }
});

test('priceProblem: the check the SDK and every registry share', () => {
  assert.equal(priceProblem('price', 0), undefined);
  assert.equal(priceProblem('price', 1e15), undefined);
  assert.equal(priceProblem('freeQuota', 1e12), undefined);
  assert.match(priceProblem('price', {}, 'service.endpoints[2].price') ?? '', /^service\.endpoints\[2\]\.price must be .* not object$/);
  assert.match(priceProblem('price', 'x'.repeat(500)) ?? '', /not "x{40}"$/, 'hostile text is cut in the message');
});

test('the remote registry (the registry service over RPC) keeps prices, and refuses wrong ones with a 400 naming the endpoint', async (t) => {
  const behind = new MemoryRegistry();
  const served = new Service(registryService, registryHandlers(behind), { address: 'tcp://127.0.0.1:0', namespace: 'micro', registry: new MemoryRegistry(), registerTTL: 0, auth: false, logger: silent });
  await served.start();
  const client = new Client({ address: served.address, namespace: 'micro', preferLocal: false });
  t.after(async () => {
    await served.stop();
    await behind.close();
  });
  const remote = new RemoteRegistry(client);
  const record = (endpoints: unknown[]) => ({ name: 'books', version: '1', endpoints, nodes: [{ id: 'n1', address: 'tcp://127.0.0.1:1' }] }) as ServiceRecord;
  const ep = { name: 'Read', kind: 'unary', request: {}, response: {}, price: 100, freeQuota: 10 };
  await remote.register(record([ep]));
  const [got] = await remote.getService('books');
  assert.deepEqual([got?.endpoints[0]?.price, got?.endpoints[0]?.freeQuota], [100, 10]);
  const refused = (detail: RegExp) => (err: MicroError) => err.code === 400 && detail.test(err.detail);
  await assert.rejects(remote.register(record([{ ...ep, price: -1 }])), refused(/service\.endpoints\[0\]\.price must be .* not -1/));
  await assert.rejects(remote.register(record([{ ...ep, freeQuota: 2 ** 60 }])), refused(/service\.endpoints\[0\]\.freeQuota must be/));
  await assert.rejects(remote.register(record([{ ...ep, price: 'abc' }])), refused(/price/));
  assert.equal((await remote.getService('books'))[0]?.endpoints[0]?.price, 100, 'the refused registrations changed nothing');
});
