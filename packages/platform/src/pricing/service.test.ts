import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { DEFAULT_NATS_URL, DEFAULT_REDIS_URL, defineService, endpoint, endpointRecord, MicroError, z, type Profile } from '@micro/sdk';
import { testPostgres } from '@micro/server/testing';
import { startPricingHarness, type PricingHarness } from './testing.js';

/**
 * The pricing service end to end through micro server's guard, on both engines: prices
 * from definitions and from admins, who may do what, and hostile input.
 */

const io = { request: z.object({}), response: z.object({}) };
const books = defineService({
  name: 'books',
  version: '1.0.0',
  endpoints: { Read: endpoint({ ...io, price: 100, freeQuota: 1000 }), Write: endpoint(io), Count: endpoint({ ...io, freeQuota: 50 }) },
});
const booksV2 = defineService({ name: 'books', version: '2.0.0', endpoints: { Read: endpoint({ ...io, price: 120, freeQuota: 1000 }), Write: endpoint(io), Count: endpoint({ ...io, freeQuota: 50 }) } });
const cloud = defineService({ name: 'cloud', version: '1.0.0', endpoints: { Resize: endpoint({ ...io, price: 5_000 }), Status: endpoint(io) } });
const films = defineService({ name: 'films', version: '1.0.0', endpoints: { Watch: endpoint(io) } });

const fails = (code: number, detail?: RegExp) => (err: unknown) => {
  assert.ok(err instanceof MicroError, String(err));
  assert.equal(err.code, code, err.detail);
  if (detail) assert.match(err.detail, detail);
  return true;
};

const ids = (rows: { namespace: string; service: string; endpoint: string }[]) => rows.map((r) => `${r.namespace}/${r.service}.${r.endpoint}`);

async function scenario(t: TestContext, profile: Profile): Promise<void> {
  const h: PricingHarness = await startPricingHarness({ maxSettings: 6 }, profile);
  t.after(() => h.close());
  const admin = h.as(await h.adminToken());
  const acme = h.as(await h.tenant('acme'));
  const globex = h.as(await h.tenant('globex'));
  await h.register('acme', books);
  await h.register('micro', cloud);
  const readRecord = endpointRecord('Read', books.endpoints.Read);

  await t.test('definitions price endpoints: a tenant lists its own and the platform\'s, never another\'s', async () => {
    const mine = (await acme.List({})).prices;
    assert.deepEqual(ids(mine), ['acme/books.Count', 'acme/books.Read', 'micro/cloud.Resize']);
    const read = mine.find((p) => p.endpoint === 'Read');
    assert.deepEqual(read, { namespace: 'acme', service: 'books', endpoint: 'Read', price: 100, freeQuota: 1000, source: 'definition', definition: { price: 100, freeQuota: 1000 }, versions: ['1.0.0'] });
    assert.deepEqual(mine.find((p) => p.endpoint === 'Count')?.definition, { price: 0, freeQuota: 50 }, 'a free quota alone: metered, free of charge');
    assert.deepEqual(ids((await globex.List({})).prices), ['micro/cloud.Resize'], "acme's prices are not globex's business");
    await assert.rejects(globex.List({ namespace: 'acme' }), fails(403, /may not list the prices of namespace acme/));
    assert.deepEqual(ids((await acme.List({ service: 'cloud' })).prices), ['micro/cloud.Resize']);
    assert.deepEqual(h.pricing.priceOf('acme', 'books', readRecord), { price: 100, freeQuota: 1000 });
    assert.equal(h.pricing.priceOf('acme', 'books', endpointRecord('Write', books.endpoints.Write)), undefined, 'not priced: not metered');
  });

  await t.test("an admin's price wins over the definition at once, for every version; Clear brings the definition back", async () => {
    await h.register('acme', booksV2);
    const split = (await acme.List({ service: 'books' })).prices.filter((p) => p.endpoint === 'Read');
    assert.deepEqual(split.map((p) => [p.price, p.versions]), [[100, ['1.0.0']], [120, ['2.0.0']]], 'versions that price differently get a row each');
    const { price } = await admin.Set({ namespace: 'acme', service: 'books', endpoint: 'Read', price: 250, freeQuota: 10 });
    assert.equal(price.source, 'admin');
    assert.deepEqual([price.price, price.freeQuota, price.setBy], [250, 10, h.auth.admin.id]);
    // the pricing of this node knows before Set answers
    assert.deepEqual(h.pricing.priceOf('acme', 'books', readRecord), { price: 250, freeQuota: 10 });
    assert.deepEqual(h.pricing.priceOf('acme', 'books', endpointRecord('Read', booksV2.endpoints.Read)), { price: 250, freeQuota: 10 });
    const seen = (await acme.List({ service: 'books' })).prices.filter((p) => p.endpoint === 'Read');
    assert.deepEqual(seen.map((p) => [p.source, p.price, p.definition?.price]), [['admin', 250, 100], ['admin', 250, 120]]);
    assert.equal(seen[0]?.setBy, undefined, 'who on the staff set it is not shown to tenants');
    const cleared = await admin.Clear({ namespace: 'acme', service: 'books', endpoint: 'Read' });
    assert.equal(cleared.cleared, true);
    assert.equal(cleared.price?.source, 'definition');
    assert.deepEqual(h.pricing.priceOf('acme', 'books', readRecord), { price: 100, freeQuota: 1000 });
    assert.deepEqual(await admin.Clear({ namespace: 'acme', service: 'books', endpoint: 'Write' }), { cleared: false }, 'nothing set, nothing priced');
    // an admin may price what the definition does not; freeQuota defaults to 0
    const write = await admin.Set({ namespace: 'acme', service: 'books', endpoint: 'Write', price: 0 });
    assert.deepEqual([write.price.price, write.price.freeQuota, write.price.definition], [0, 0, undefined]);
    assert.deepEqual(h.pricing.priceOf('acme', 'books', endpointRecord('Write', books.endpoints.Write)), { price: 0, freeQuota: 0 }, 'price 0: counted, free');
    await admin.Clear({ namespace: 'acme', service: 'books', endpoint: 'Write' });
    // the platform's own services: namespace micro is the default
    assert.equal((await admin.Set({ service: 'cloud', endpoint: 'Status', price: 1 })).price.namespace, 'micro');
    assert.ok(ids((await globex.List({})).prices).includes('micro/cloud.Status'), 'every tenant sees the platform\'s prices');
    await admin.Clear({ service: 'cloud', endpoint: 'Status' });
  });

  await t.test('a service not running yet may be priced (it applies once it runs); an endpoint a running service lacks is a 404', async () => {
    const early = await admin.Set({ namespace: 'acme', service: 'films', endpoint: 'Watch', price: 300 });
    assert.deepEqual([early.price.source, early.price.versions], ['admin', []]);
    await h.register('acme', films);
    const now = (await admin.List({ namespace: 'acme', service: 'films' })).prices;
    assert.deepEqual(now.map((p) => [p.endpoint, p.price, p.versions]), [['Watch', 300, ['1.0.0']]]);
    assert.deepEqual(h.pricing.priceOf('acme', 'films', endpointRecord('Watch', films.endpoints.Watch)), { price: 300, freeQuota: 0 });
    await assert.rejects(admin.Set({ namespace: 'acme', service: 'books', endpoint: 'read', price: 1 }), fails(404, /^endpoint: service books of namespace acme has no endpoint read \(did you mean Read\?\); its endpoints: .*Count.*Read.*Write/));
    await assert.rejects(admin.Set({ namespace: 'acme', service: 'books', endpoint: 'Delete', price: 1 }), fails(404, /has no endpoint Delete; its endpoints/));
    // an admin without a namespace sees the platform's and every namespace with an admin price
    // (books 1.0.0 and 2.0.0 price Read differently: a row each)
    assert.deepEqual(ids((await admin.List({})).prices), ['acme/books.Count', 'acme/books.Read', 'acme/books.Read', 'acme/films.Watch', 'micro/cloud.Resize']);
    await admin.Clear({ namespace: 'acme', service: 'films', endpoint: 'Watch' });
  });

  await t.test('tenants set and clear no price, not even their own namespace\'s; strangers nothing', async () => {
    const before = JSON.stringify((await admin.List({ namespace: 'acme' })).prices);
    const owner = acme;
    const viewer = h.as(await h.tenant('acme', 'viewer-1', ['viewer']));
    for (const who of [owner, globex, viewer]) {
      await assert.rejects(who.Set({ namespace: 'acme', service: 'books', endpoint: 'Read', price: 0 }), fails(403));
      await assert.rejects(who.Set({ service: 'cloud', endpoint: 'Resize', price: 0 }), fails(403));
      await assert.rejects(who.Clear({ namespace: 'acme', service: 'books', endpoint: 'Read' }), fails(403));
    }
    await assert.rejects(owner.Set({ namespace: 'acme', service: 'books', endpoint: 'Read', price: 0 }), fails(403, /needs an admin of namespace micro/));
    await assert.rejects(h.as().List({}), fails(401));
    await assert.rejects(h.as().Set({ service: 'cloud', endpoint: 'Resize', price: 0 }), fails(401));
    await assert.rejects(h.as('not-a-token').List({}), fails(401));
    assert.deepEqual(ids((await viewer.List({})).prices), ['acme/books.Count', 'acme/books.Read', 'acme/books.Read', 'micro/cloud.Resize'], 'a viewer reads prices');
    assert.equal(JSON.stringify((await admin.List({ namespace: 'acme' })).prices), before, 'nothing changed');
  });

  await t.test('hostile input is a 400 naming the field, and changes nothing', async () => {
    const before = JSON.stringify((await admin.List({ namespace: 'acme' })).prices);
    const target = { namespace: 'acme', service: 'books', endpoint: 'Read' };
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...target, price: -1 }, /^invalid request: price: must be a whole number of units \(10\^-6 USD\) a call from 0 to 10\^15, not -1$/],
      [{ ...target, price: 1.5 }, /price: must be .*not 1\.5/],
      [{ ...target, price: 2 ** 60 }, /price: must be .*not 1152921504606847000/],
      [{ ...target, price: 1e15 + 1 }, /price: must be/],
      [{ ...target, price: 'abc' }, /price: must be .*not "abc"/],
      [{ ...target, price: '100' }, /price: must be .*not "100"/],
      [{ ...target, price: '$1' }, /price: must be .*not "\$1"/],
      [{ ...target, price: null }, /price: must be .*not null/],
      [{ ...target, price: { units: 1 } }, /price: must be/],
      [{ ...target }, /price: is required: must be/],
      [{ ...target, price: 1, freeQuota: -1 }, /freeQuota: must be a whole number of calls a month from 0 to 10\^12, not -1/],
      [{ ...target, price: 1, freeQuota: 0.5 }, /freeQuota: must be/],
      [{ ...target, price: 1, freeQuota: 2 ** 60 }, /freeQuota: must be/],
      [{ ...target, price: 1, freeQuota: '1e3' }, /freeQuota: must be .*not "1e3"/],
      [{ ...target, namespace: '../etc', price: 1 }, /namespace: must be a namespace name/],
      [{ ...target, namespace: '', price: 1 }, /namespace/],
      [{ ...target, namespace: 'a'.repeat(64), price: 1 }, /namespace/],
      [{ ...target, service: 'Books', price: 1 }, /service: must be a service name/],
      [{ ...target, service: 'x'.repeat(129), price: 1 }, /service/],
      [{ ...target, endpoint: 'Read; DROP TABLE', price: 1 }, /endpoint: must be an endpoint name/],
      [{ ...target, endpoint: '', price: 1 }, /endpoint/],
      [{ ...target, price: 1, rootAccess: true }, /rootAccess/],
    ];
    const raw = h.as(await h.adminToken()) as unknown as { Set(r: unknown): Promise<unknown>; Clear(r: unknown): Promise<unknown>; List(r: unknown): Promise<unknown> };
    for (const [request, detail] of cases) await assert.rejects(raw.Set(request), fails(400, detail), JSON.stringify(request).slice(0, 80));
    await assert.rejects(raw.Clear({ ...target, endpoint: '../../x' }), fails(400, /endpoint/));
    await assert.rejects(raw.List({ namespace: 'x'.repeat(100) }), fails(400, /namespace/));
    await assert.rejects(raw.List({ service: 'a b' }), fails(400, /service/));
    assert.equal(JSON.stringify((await admin.List({ namespace: 'acme' })).prices), before, 'nothing changed');
  });

  await t.test('at most maxSettings admin prices: the next new one is a 409, changing one is allowed', async () => {
    for (let i = 0; i < 6; i++) await admin.Set({ namespace: 'later', service: 'api', endpoint: `E${i}`, price: i });
    await assert.rejects(admin.Set({ namespace: 'later', service: 'api', endpoint: 'E6', price: 1 }), fails(409, /at most 6 prices .* clear some first/));
    assert.equal((await admin.Set({ namespace: 'later', service: 'api', endpoint: 'E0', price: 9 })).price.price, 9);
    for (let i = 0; i < 6; i++) await admin.Clear({ namespace: 'later', service: 'api', endpoint: `E${i}` });
  });

  await t.test('the core service hands micro server the same prices for /openapi.json', () => {
    assert.deepEqual(h.core.prices?.('acme', 'books', readRecord), { price: 100, freeQuota: 1000 });
    assert.equal(h.core.prices?.('acme', 'books', endpointRecord('Write', books.endpoints.Write)), undefined);
  });
}

test('pricing service (local profile: SQLite billing.db)', (t) => scenario(t, { name: 'local' }));

test('pricing service (nats profile: PostgreSQL)', async (t) => {
  const db = await testPostgres(t, 'pricing_svc');
  if (!db) return;
  await scenario(t, { name: 'nats', natsUrl: DEFAULT_NATS_URL, redisUrl: DEFAULT_REDIS_URL, postgresUrl: db.url, prefix: db.prefix });
});
