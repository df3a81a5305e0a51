import { randomUUID } from 'node:crypto';
import { errors, type Context } from '@micro/sdk';
import { missing, publicService, Records, rfc3339, type Stamped } from '@micro/services-kit';
import { chat, LIMITS, type GroupOut, type MessageOut } from './definition.js';

type Group = Stamped & { name: string; description: string; private: boolean; user_ids: string[] };

/** What a group's topic carries: a message sent, or who is no longer in it (`*`: nobody, the group is gone). */
type Said = { message: MessageOut } | { gone: string };

const MESSAGES = { table: 'messages' };

function groupOut({ id, name, description, private: priv, user_ids, created }: Group): GroupOut {
  return { id, name, description, private: priv, user_ids, created_at: rfc3339(created) };
}

function need<T>(value: T | undefined | '', field: string): T {
  if (value === undefined || value === '') throw missing('chat', field);
  return value;
}

/** Messages are kept under `<group>/<sent, ms, 15 digits>-<id>`: a group's history in the order sent. */
function messageKey(m: MessageOut, ms: number): string {
  return `${m.group_id}/${String(ms).padStart(15, '0')}-${m.id}`;
}

export const service = publicService(chat, (engines) => {
  const groups = new Records<Group>(engines, { service: 'chat', noun: 'group', table: 'groups' });

  async function memberOf(ctx: Context, groupId: string | undefined, userId: string | undefined): Promise<Group> {
    const group = await groups.read(ctx, need(groupId, 'group_id'));
    if (!group.user_ids.includes(need(userId, 'user_id'))) throw errors.Forbidden('chat', `user ${userId} is not a member of group ${groupId}`);
    return group;
  }

  /** Changes the members of a group; `gone` ends that user's Join streams. */
  async function members(ctx: Context, groupId: string | undefined, userId: string | undefined, change: (ids: string[], user: string) => string[]) {
    const user = need(userId, 'user_id');
    const group = await groups.update(ctx, need(groupId, 'group_id'), (g) => ({ ...g, user_ids: change(g.user_ids, user) }));
    if (!group.user_ids.includes(user)) await groups.announce(ctx, group.id, { gone: user } satisfies Said);
    return { group: groupOut(group) };
  }

  async function trim(ctx: Context, groupId: string): Promise<void> {
    const store = groups.store(ctx);
    const old = await store.list({ ...MESSAGES, prefix: `${groupId}/`, order: 'desc', offset: LIMITS.messages, limit: 100 });
    for (const key of old) await store.delete(key, MESSAGES);
  }

  async function forget(ctx: Context, groupId: string): Promise<void> {
    const store = groups.store(ctx);
    for (;;) {
      const keys = await store.list({ ...MESSAGES, prefix: `${groupId}/`, limit: 1_000 });
      if (keys.length === 0) return;
      for (const key of keys) await store.delete(key, MESSAGES);
    }
  }

  return {
    Create: async ({ name, description, private: priv, user_ids }, ctx) => {
      const group = await groups.create(ctx, { name: need(name, 'name'), description: description ?? '', private: priv ?? false, user_ids: [...new Set(user_ids ?? [])] });
      return { group: groupOut(group) };
    },
    Delete: async ({ group_id }, ctx) => {
      const group = await groups.delete(ctx, need(group_id, 'group_id'));
      await forget(ctx, group.id);
      await groups.announce(ctx, group.id, { gone: '*' } satisfies Said);
      return { group: groupOut(group) };
    },
    History: async ({ group_id }, ctx) => {
      const group = await groups.read(ctx, need(group_id, 'group_id'));
      const kept = await groups.store(ctx).read(`${group.id}/`, { ...MESSAGES, prefix: true, limit: LIMITS.messages });
      return { messages: kept.map((r) => r.value as MessageOut) };
    },
    Invite: async ({ group_id, user_id }, ctx) =>
      members(ctx, group_id, user_id, (ids, user) => {
        if (ids.includes(user)) return ids;
        if (ids.length >= LIMITS.members) throw errors.TooManyRequests('chat', `group ${group_id} has ${LIMITS.members} members already`);
        return [...ids, user];
      }),
    Kick: async ({ group_id, user_id }, ctx) => members(ctx, group_id, user_id, (ids, user) => ids.filter((id) => id !== user)),
    Leave: async ({ group_id, user_id }, ctx) => members(ctx, group_id, user_id, (ids, user) => ids.filter((id) => id !== user)),
    List: async ({ user_id }, ctx) => {
      const all = await groups.list(ctx);
      return { groups: all.filter((g) => !user_id || g.user_ids.includes(user_id)).map(groupOut) };
    },
    Send: async ({ group_id, user_id, client, subject, text }, ctx) => {
      const said = need(text, 'text');
      const group = await memberOf(ctx, group_id, user_id);
      const now = Date.now();
      const message: MessageOut = { id: randomUUID(), group_id: group.id, user_id: user_id as string, client: client ?? '', subject: subject ?? '', text: said, sent_at: rfc3339(now) };
      await groups.store(ctx).write({ key: messageKey(message, now), value: message }, MESSAGES);
      await groups.announce(ctx, group.id, { message } satisfies Said);
      await trim(ctx, group.id);
      return { message };
    },
    async *Join({ group_id, user_id }, ctx) {
      const heard = groups.listen<Said>(ctx, need(group_id, 'group_id'));
      try {
        // listening first, then checked: a member kicked in between is not missed
        await heard.ready;
        await memberOf(ctx, group_id, user_id);
        for await (const said of heard) {
          if ('gone' in said && (said.gone === '*' || said.gone === user_id)) return;
          if ('message' in said) yield { message: said.message };
        }
      } finally {
        await heard.close();
      }
    },
  };
});
