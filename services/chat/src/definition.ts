import { defineService, endpoint, serverStream, z } from '@micro/sdk';
import { m3oRequest, recordId, text } from '@micro/services-kit';

/**
 * M3O's chat: groups of users (`user_ids`, the ids of the caller's own users), messages
 * sent to a group by its members, a group's history, and Join, a live stream of a group's
 * messages for one of its members. Times (`created_at`, `sent_at`) are RFC 3339.
 */

export const LIMITS = Object.freeze({
  /** members of one group */
  members: 1_000,
  /** messages a group keeps: the newest; older ones go */
  messages: 1_000,
  text: 8_192,
});

/** The id of one of the caller's users: any text, as the caller's app names them. */
const userId = text(256);

const Group = z.object({ id: z.string(), name: z.string(), description: z.string(), private: z.boolean(), user_ids: z.array(z.string()), created_at: z.string() });
const Message = z.object({ id: z.string(), group_id: z.string(), user_id: z.string(), client: z.string(), subject: z.string(), text: z.string(), sent_at: z.string() });
const group = z.object({ group: Group.optional() });
const member = m3oRequest({ group_id: recordId().optional(), user_id: userId.optional() });
const priced = { price: 1, freeQuota: 10_000 };

export const chat = defineService({
  name: 'chat',
  description: 'Group chat: groups with members, messages, history and a live stream of a group',
  public: true,
  endpoints: {
    Create: endpoint({
      description: 'Creates a group (name is needed) with its first members',
      request: m3oRequest({ name: text(256).optional(), description: text(4_096).optional(), private: z.boolean().optional(), user_ids: z.array(userId).max(LIMITS.members).optional() }),
      response: group,
      ...priced,
    }),
    Delete: endpoint({ description: 'Deletes a group and its messages; its Join streams end', request: m3oRequest({ group_id: recordId().optional() }), response: group, ...priced }),
    History: endpoint({ description: "A group's messages, oldest first (it keeps the newest 1,000)", request: m3oRequest({ group_id: recordId().optional() }), response: z.object({ messages: z.array(Message) }), readonly: true, ...priced }),
    Invite: endpoint({ description: 'Makes a user a member of a group', request: member, response: group, ...priced }),
    Kick: endpoint({ description: 'Takes a user out of a group; their Join streams of it end', request: member, response: group, ...priced }),
    Leave: endpoint({ description: 'A user leaves a group; their Join streams of it end', request: member, response: group, ...priced }),
    List: endpoint({ description: 'The groups a user is in (every group without user_id), oldest first', request: m3oRequest({ user_id: userId.optional() }), response: z.object({ groups: z.array(Group) }), readonly: true, ...priced }),
    Send: endpoint({
      description: 'A member sends a message to a group',
      request: m3oRequest({ group_id: recordId().optional(), user_id: userId.optional(), client: text(256).optional(), subject: text(256).optional(), text: text(LIMITS.text).optional() }),
      response: z.object({ message: Message.optional() }),
      ...priced,
    }),
    Join: serverStream({ description: "A member's live stream of the messages sent to a group from now on", request: member, response: z.object({ message: Message.optional() }), readonly: true, ...priced }),
  },
});

export type GroupOut = z.output<typeof Group>;
export type MessageOut = z.output<typeof Message>;
