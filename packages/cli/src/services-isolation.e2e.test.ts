import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { callPatiently, endpointsOf, startPlatform, type EndpointShape, type Field, type Platform } from '@micro/services-kit/testing';
import { valueAddServices } from './services.js';

/*
 * Tenant isolation of every value-add service micro server hosts, as a property. Tenant A
 * fills every service with data that carries a secret mark, through every unary endpoint
 * M3O's API lists. Then tenant B — a stranger who knows every id, name, table, topic and
 * path A used (it reads them off A's answers here) — calls every endpoint with random
 * requests built from those names: no answer B gets, error or success, contains A's mark,
 * and what A reads afterwards is what it read before.
 */

const MARK = `a-secret-${process.pid}`;

/** The names B may try: what A used and got back, and some of its own. */
const names = new Set<string>(['default', 'x', 'test', 'a', 'tenant-a', 'micro', '../x', '*']);

function collectNames(value: unknown, depth = 0): void {
  if (depth > 6 || value === null || typeof value !== 'object') return;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v === 'string' && v.length > 0 && v.length < 200 && !v.includes(MARK) && /(^id$|_id$|Id$|^name$|^key$|^path$|^topic$|^table$|^index$|^channel$|^shortURL$|^username$|^email$)/.test(k)) names.add(v);
    else collectNames(v, depth + 1);
  }
}

/** A request of A: every field given, text-like ones carrying the mark. */
function seedValue(f: Field, service: string): unknown {
  const type = f.type;
  if (type.endsWith('[]')) return type === 'string[]' ? [`${MARK}-item`] : [];
  if (type.startsWith('map<')) return { mark: MARK };
  if (type === 'object' || /^object@/.test(type)) return { mark: MARK, text: MARK, name: 'seed', id: 'seed' };
  if (type === 'i64' || type === 'number') return /amount/.test(f.name) ? 100 : 5;
  if (type === 'boolean') return false;
  if (type === 'string@bytes') return Buffer.from(MARK).toString('base64');
  if (/url/i.test(f.name)) return `https://example.com/${MARK}`;
  if (f.name === 'email' || f.name === 'address') return `${service}-seed@example.com`;
  if (f.name === 'password' || /_password$/.test(f.name)) return 'correct horse battery';
  if (/^(id|key|name|table|index|topic|channel|path|project|username|group_id|user_id|from_id|to_id|subject|prefix|from|to)$/.test(f.name)) return 'seed';
  if (f.name === 'type') return 'uuid';
  if (f.name === 'query') return "mark == 'x'";
  if (f.name === 'visibility') return 'private';
  return MARK;
}

/** A random request of B from the names it knows. */
function strangerRequest(shape: EndpointShape, pool: string[]): fc.Arbitrary<Record<string, unknown>> {
  const field = (f: Field): fc.Arbitrary<unknown> => {
    if (f.type.endsWith('[]')) return fc.array(fc.constantFrom(...pool), { maxLength: 2 });
    if (f.type.startsWith('map<') || f.type === 'object' || /^object@/.test(f.type)) return fc.record({ id: fc.constantFrom(...pool), name: fc.constantFrom(...pool) });
    if (f.type === 'i64' || f.type === 'number') return fc.integer({ min: 0, max: 10 });
    if (f.type === 'boolean') return fc.boolean();
    if (f.type === 'string@bytes') return fc.constant('');
    return fc.oneof(fc.constantFrom(...pool), fc.string({ maxLength: 12 }));
  };
  return fc.record(Object.fromEntries(shape.request.map((f) => [f.name, field(f)])), { requiredKeys: [] });
}

test('no value-add service lets a stranger read or change another tenant\'s data (property)', async (t) => {
  const services = await valueAddServices();
  if (services.length === 0) return;
  const p = (await startPlatform(t, { services })) as Platform;
  t.after(() => p.close());
  const hosted = new Set(services.map((s) => s.def.name));
  const endpoints = [...hosted].flatMap((s) => endpointsOf(s)).filter((e) => !e.stream);
  // the destructive ones run last for A, never between its seeding and its reads
  const destructive = /^(Delete|DropTable|Truncate|RenameTable|DeleteIndex|Logout|LogoutAll|Kick|Leave|Debit|Transfer|ResetPassword|UpdatePassword|Update)$/;
  const reads = endpoints.filter((e) => /^(Read|List|Count|ListTables|Get|Search|Balance|Transactions|History|Head|ListMessages|ListChannels|Types)$/.test(e.endpoint));

  // A seeds every service
  for (const e of endpoints.filter((e) => !destructive.test(e.endpoint))) {
    const body = Object.fromEntries(e.request.map((f) => [f.name, seedValue(f, e.service)]));
    const answer = await callPatiently(p, p.a.key, e.service, e.endpoint, body);
    collectNames(answer.body);
  }
  const readAll = async () => {
    const out: string[] = [];
    for (const e of reads) {
      const body = Object.fromEntries(e.request.map((f) => [f.name, seedValue(f, e.service)]));
      const answer = await callPatiently(p, p.a.key, e.service, e.endpoint, body);
      // what changes by itself (hit counts, timestamps of reads) is not what B did
      out.push(`${e.service}.${e.endpoint} ${answer.status} ${JSON.stringify(answer.body).replace(/"(hitCount|last_active|expires|updated|timestamp)":"?[^",}]*"?/g, '')}`);
    }
    return out;
  };
  const before = await readAll();
  assert.ok(before.some((r) => r.includes(MARK)), `A's reads show its own data: ${before.join('\n').slice(0, 2000)}`);

  const pool = [...names];
  for (const e of endpoints) {
    await fc.assert(
      fc.asyncProperty(strangerRequest(e, pool), async (body) => {
        // the gateway's rate limit is waited out: every call must reach the service
        const answer = await callPatiently(p, p.b.key, e.service, e.endpoint, body);
        assert.ok(answer.status < 500, `${e.service}.${e.endpoint} ${JSON.stringify(body)} → ${answer.status} ${JSON.stringify(answer.body)}`);
        assert.ok(!JSON.stringify(answer.body).includes(MARK), `${e.service}.${e.endpoint} ${JSON.stringify(body)} gave B A's data: ${JSON.stringify(answer.body).slice(0, 500)}`);
      }),
      { numRuns: 8 },
    );
  }
  assert.deepEqual(await readAll(), before, 'what A reads is unchanged by B');
});
