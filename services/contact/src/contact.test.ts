import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { callPatiently, expectShape, startPlatform, type Platform } from '@micro/services-kit/testing';
import { service } from './handlers.js';

async function ok(p: Platform, key: string, endpoint: string, body: unknown) {
  const res = await p.call(key, 'contact', endpoint, body);
  assert.equal(res.status, 200, `contact.${endpoint}: ${JSON.stringify(res.body)}`);
  await expectShape('contact', endpoint, res.body);
  return res.body;
}

const ada = {
  name: 'Ada Lovelace',
  note: 'met at the engine',
  birthday: '1815-12-10',
  phones: [{ label: 'home', number: '+44 20 7946 0000' }],
  emails: [{ label: 'work', address: 'ada@example.com' }],
  addresses: [{ label: 'home', location: 'London' }],
  links: [{ label: 'notes', url: 'https://example.com/ada' }],
  socialMedias: [{ label: 'mastodon', username: '@ada' }],
};

for (const profile of ['local', 'nats'] as const) {
  test(`contact: every endpoint as M3O's clients call it (${profile})`, async (t) => {
    const p = await startPlatform(t, { services: [service], profile });
    if (!p) return;
    t.after(() => p.close());
    const key = p.a.key;
    const { contact } = await ok(p, key, 'Create', ada);
    const { socialMedias, ...rest } = ada;
    assert.deepEqual({ ...contact, id: '', created_at: '', updated_at: '' }, { ...rest, social_medias: socialMedias, id: '', created_at: '', updated_at: '' });
    assert.match(contact.created_at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);
    assert.deepEqual((await ok(p, key, 'Read', { id: contact.id })).contact, contact);

    // Update replaces the fields it is given and keeps the others; an entry's missing label is ""
    await new Promise((r) => setTimeout(r, 5));
    const updated = (await ok(p, key, 'Update', { id: contact.id, phones: [{ number: '555' }], note: '' })).contact;
    assert.deepEqual(updated.phones, [{ label: '', number: '555' }]);
    assert.equal(updated.note, '');
    assert.deepEqual(updated.emails, ada.emails);
    assert.equal(updated.created_at, contact.created_at);
    assert.ok(updated.updated_at > contact.updated_at);

    const second = (await ok(p, key, 'Create', { name: 'Charles' })).contact;
    assert.deepEqual(second.social_medias, []);
    assert.deepEqual((await ok(p, key, 'List', {})).contacts.map((c: { name: string }) => c.name), ['Ada Lovelace', 'Charles']);
    assert.deepEqual((await ok(p, key, 'List', { limit: 1, offset: 1 })).contacts, [second]);
    assert.deepEqual(await ok(p, key, 'Delete', { id: contact.id }), {});
    assert.equal((await p.call(key, 'contact', 'Read', { id: contact.id })).status, 404);
    assert.deepEqual((await ok(p, key, 'List', {})).contacts, [second]);
  });
}

test("contact: another tenant cannot read, change, delete or list a tenant's contacts", async (t) => {
  const p = await startPlatform(t, { services: [service] });
  if (!p) return;
  t.after(() => p.close());
  const { contact } = await ok(p, p.a.key, 'Create', ada);
  for (const [endpoint, body] of [
    ['Read', { id: contact.id }],
    ['Update', { id: contact.id, name: 'Mallory' }],
    ['Delete', { id: contact.id }],
  ] as const) {
    const res = await p.call(p.b.key, 'contact', endpoint, body);
    assert.equal(res.status, 404, `${endpoint}: ${JSON.stringify(res.body)}`);
  }
  assert.deepEqual((await ok(p, p.b.key, 'List', { limit: 1000 })).contacts, []);
  await fc.assert(
    fc.asyncProperty(fc.oneof(fc.string({ maxLength: 80 }), fc.constantFrom(contact.id, `${contact.id}/`, '*', `../${contact.id}`)), async (id) => {
      for (const endpoint of ['Read', 'Update', 'Delete'] as const) {
        const res = await callPatiently(p, p.b.key, 'contact', endpoint, { id, name: 'Mallory' });
        assert.ok([400, 404].includes(res.status), `${endpoint} ${JSON.stringify(id)}: ${res.status}`);
      }
    }),
    { numRuns: 40 },
  );
  assert.deepEqual((await ok(p, p.a.key, 'Read', { id: contact.id })).contact, contact);
});

test('contact: bad input is a 400 naming the field, and nothing is stored', async (t) => {
  const p = await startPlatform(t, { services: [service] });
  if (!p) return;
  t.after(() => p.close());
  const key = p.a.key;
  const { contact } = await ok(p, key, 'Create', { name: 'Ada' });
  const cases: [string, unknown, RegExp][] = [
    ['Create', { note: 'no name' }, /Missing name/],
    ['Create', { name: 'x', birthday: '1815-13-40' }, /birthday/],
    ['Create', { name: 'x', birthday: 'yesterday' }, /birthday/],
    ['Create', { name: 'x', emails: [{ address: 'e'.repeat(321) }] }, /emails/],
    ['Create', { name: 'x', phones: Array.from({ length: 101 }, () => ({ number: '1' })) }, /phones/],
    ['Create', { name: 'x', social_medias: [{ username: { nested: { deep: [] } } }] }, /social_medias/],
    ['Create', { name: 'x', links: 'https://example.com' }, /links/],
    ['Create', { name: 'x'.repeat(257) }, /name/],
    ['Read', {}, /Missing id/],
    ['Read', { id: '../../x' }, /id/],
    ['Update', { name: 'y' }, /Missing id/],
    ['Update', { id: contact.id, name: '' }, /Missing name/],
    ['Update', { id: contact.id, note: 'n'.repeat(16_385) }, /note/],
    ['Delete', { id: 42 }, /id/],
    ['List', { limit: -1 }, /limit/],
    ['List', { limit: 1_001 }, /limit/],
    ['List', { offset: 'x' }, /offset/],
  ];
  for (const [endpoint, body, detail] of cases) {
    const res = await p.call(key, 'contact', endpoint, body);
    assert.equal(res.status, 400, `${endpoint} ${JSON.stringify(body).slice(0, 80)}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.status, 'Bad Request');
    assert.match(res.body.detail, detail);
  }
  assert.deepEqual((await ok(p, key, 'List', {})).contacts, [contact]);
});
