import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { callPatiently, expectShape, startPlatform, untilHeard, type Platform } from '@micro/services-kit/testing';
import { service } from './handlers.js';

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

async function ok(p: Platform, key: string, endpoint: string, body: unknown) {
  const res = await p.call(key, 'chat', endpoint, body);
  assert.equal(res.status, 200, `chat.${endpoint}: ${JSON.stringify(res.body)}`);
  await expectShape('chat', endpoint, res.body);
  return res.body;
}

async function refused(p: Platform, key: string, endpoint: string, body: unknown, status: number, detail: RegExp) {
  const res = await p.call(key, 'chat', endpoint, body);
  assert.equal(res.status, status, `chat.${endpoint} ${JSON.stringify(body).slice(0, 80)}: ${JSON.stringify(res.body)}`);
  assert.equal(res.body.code, status);
  assert.match(res.body.detail, detail);
}

for (const profile of ['local', 'nats'] as const) {
  test(`chat: every endpoint as M3O's clients call it, Join over the WebSocket (${profile})`, async (t) => {
    const p = await startPlatform(t, { services: [service], profile });
    if (!p) return;
    t.after(() => p.close());
    const key = p.a.key;

    const { group } = await ok(p, key, 'Create', { name: 'team', description: 'the team', userIds: ['alice', 'bob', 'alice'] });
    assert.deepEqual({ ...group, id: '', created_at: '' }, { id: '', name: 'team', description: 'the team', private: false, user_ids: ['alice', 'bob'], created_at: '' });
    assert.match(group.created_at, RFC3339);
    const other = (await ok(p, key, 'Create', { name: 'other', private: true, user_ids: ['carol'] })).group;
    assert.deepEqual((await ok(p, key, 'List', { user_id: 'alice' })).groups, [group]);
    assert.deepEqual((await ok(p, key, 'List', {})).groups.map((g: { id: string }) => g.id), [group.id, other.id]);

    const invited = (await ok(p, key, 'Invite', { group_id: group.id, user_id: 'carol' })).group;
    assert.deepEqual(invited.user_ids, ['alice', 'bob', 'carol']);

    // alice and carol join; bob talks until both hear him
    const alice = p.stream(key, 'chat', 'Join', { group_id: group.id, user_id: 'alice' }, { timeout: 30_000 });
    const carol = p.stream(key, 'chat', 'Join', { groupId: group.id, userId: 'carol' }, { timeout: 30_000 });
    await Promise.all([alice.opened, carol.opened]);
    await untilHeard(alice, () => ok(p, key, 'Send', { group_id: group.id, user_id: 'bob', text: 'anyone?' }));
    await untilHeard(carol, () => ok(p, key, 'Send', { group_id: group.id, user_id: 'bob', text: 'anyone?' }));
    const { message } = await ok(p, key, 'Send', { group_id: group.id, user_id: 'carol', text: 'hi all', subject: 'greeting', client: 'web' });
    assert.deepEqual({ ...message, id: '', sent_at: '' }, { id: '', group_id: group.id, user_id: 'carol', client: 'web', subject: 'greeting', text: 'hi all', sent_at: '' });
    assert.match(message.sent_at, RFC3339);

    // kicked, carol's stream ends and she can no longer send
    await ok(p, key, 'Kick', { group_id: group.id, user_id: 'carol' });
    const carolHeard = await carol.frames;
    assert.deepEqual(carolHeard.at(-1), { message });
    await refused(p, key, 'Send', { group_id: group.id, user_id: 'carol', text: 'hey' }, 403, /not a member/);
    const left = (await ok(p, key, 'Leave', { group_id: group.id, user_id: 'bob' })).group;
    assert.deepEqual(left.user_ids, ['alice']);

    const history = (await ok(p, key, 'History', { group_id: group.id })).messages;
    assert.deepEqual(history.at(-1), message);
    assert.ok(history.slice(0, -1).every((m: { text: string; user_id: string }) => m.text === 'anyone?' && m.user_id === 'bob'));

    // deleting the group ends alice's stream too, after all she heard
    const deleted = (await ok(p, key, 'Delete', { group_id: group.id })).group;
    assert.deepEqual(deleted.user_ids, ['alice']);
    const aliceHeard = await alice.frames;
    for (const f of aliceHeard) await expectShape('chat', 'Join', f);
    assert.deepEqual(aliceHeard.at(-1), { message });
    await refused(p, key, 'History', { group_id: group.id }, 404, /no group/);
    assert.deepEqual((await ok(p, key, 'List', {})).groups, [other]);
  });
}

test("chat: another tenant cannot see, join, change or delete a tenant's groups", async (t) => {
  const p = await startPlatform(t, { services: [service] });
  if (!p) return;
  t.after(() => p.close());
  const { group } = await ok(p, p.a.key, 'Create', { name: 'private', user_ids: ['alice'] });
  await ok(p, p.a.key, 'Send', { group_id: group.id, user_id: 'alice', text: 'secret' });

  // b, knowing the id and a member's name, joins: refused in-band, and hears nothing
  const [joined] = await p.stream(p.b.key, 'chat', 'Join', { group_id: group.id, user_id: 'alice' }).frames;
  assert.equal(joined.error.code, 404, JSON.stringify(joined));
  for (const [endpoint, body] of [
    ['History', { group_id: group.id }],
    ['Send', { group_id: group.id, user_id: 'alice', text: 'from b' }],
    ['Invite', { group_id: group.id, user_id: 'mallory' }],
    ['Kick', { group_id: group.id, user_id: 'alice' }],
    ['Leave', { group_id: group.id, user_id: 'alice' }],
    ['Delete', { group_id: group.id }],
  ] as const) {
    await refused(p, p.b.key, endpoint, body, 404, /no group/);
  }
  assert.deepEqual((await ok(p, p.b.key, 'List', { user_id: 'alice' })).groups, []);

  await fc.assert(
    fc.asyncProperty(fc.oneof(fc.string({ maxLength: 80 }), fc.constantFrom(group.id, `${group.id}/`, '*', '>', `chat.groups.${group.id}`)), async (id) => {
      for (const endpoint of ['History', 'Invite', 'Delete'] as const) {
        const res = await callPatiently(p, p.b.key, 'chat', endpoint, { group_id: id, user_id: 'mallory' });
        assert.ok([400, 404].includes(res.status), `${endpoint} ${JSON.stringify(id)}: ${res.status} ${JSON.stringify(res.body)}`);
      }
    }),
    { numRuns: 30 },
  );

  // a's group and history are as they were
  const mine = (await ok(p, p.a.key, 'List', {})).groups;
  assert.deepEqual(mine, [group]);
  assert.deepEqual((await ok(p, p.a.key, 'History', { group_id: group.id })).messages.map((m: { text: string }) => m.text), ['secret']);
});

test('chat: bad input is a 400 naming the field; only members send and join', async (t) => {
  const p = await startPlatform(t, { services: [service] });
  if (!p) return;
  t.after(() => p.close());
  const key = p.a.key;
  const { group } = await ok(p, key, 'Create', { name: 'g', user_ids: ['alice'] });
  const cases: [string, unknown, RegExp][] = [
    ['Create', { user_ids: ['x'] }, /Missing name/],
    ['Create', { name: 'n', user_ids: 'alice' }, /user_ids/],
    ['Create', { name: 'n', user_ids: Array.from({ length: 1_001 }, (_, i) => `u${i}`) }, /user_ids/],
    ['Create', { name: 'n'.repeat(257) }, /name/],
    ['Create', { name: 'n', user_ids: ['a\u0000b'] }, /user_ids/],
    ['Create', { name: { $gt: '' } }, /name/],
    ['Send', { group_id: group.id, user_id: 'alice' }, /Missing text/],
    ['Send', { group_id: group.id, user_id: 'alice', text: 't'.repeat(8_193) }, /text/],
    ['Send', { group_id: group.id, text: 'x' }, /Missing user_id/],
    ['Send', { user_id: 'alice', text: 'x' }, /Missing group_id/],
    ['History', { group_id: '../groups' }, /group_id/],
    ['Invite', { group_id: group.id }, /Missing user_id/],
    ['Kick', { group_id: "' OR 1=1 --", user_id: 'alice' }, /group_id/],
    ['Delete', {}, /Missing group_id/],
  ];
  for (const [endpoint, body, detail] of cases) await refused(p, key, endpoint, body, 400, detail);

  // not a member: neither sends nor joins (in-band, as M3O's clients read stream errors)
  await refused(p, key, 'Send', { group_id: group.id, user_id: 'eve', text: 'hi' }, 403, /not a member/);
  const [frame] = await p.stream(key, 'chat', 'Join', { group_id: group.id, user_id: 'eve' }).frames;
  assert.equal(frame.error.code, 403, JSON.stringify(frame));
  const [bad] = await p.stream(key, 'chat', 'Join', { group_id: group.id }).frames;
  assert.equal(bad.error.code, 400);
  assert.match(bad.error.detail, /Missing user_id/);

  // nothing stored by any of it
  assert.deepEqual((await ok(p, key, 'List', {})).groups, [group]);
  assert.deepEqual((await ok(p, key, 'History', { group_id: group.id })).messages, []);
});
