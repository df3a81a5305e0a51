import { z } from 'zod';
import { bidiStream, defineService, endpoint } from '../service/definition.js';
import { LIMITS } from './events.js';

/**
 * The events service of `micro server`: RemoteEvents speaks it, the CLI too. The
 * schemas bound every field; the engine behind the service checks the rest (topic
 * syntax, sizes of JSON payloads) the same way for every engine.
 *
 * Consume is a bidirectional stream:
 *
 *   client → server   {subscribe: {...}, credit?}      first, exactly once
 *                     {credit: n}                      ready for n more deliveries
 *                     {seq, ack: id} | {seq, nack: id, delay?, reason?} | {seq, release: [id]}
 *   server → client   {subscribed: {...}}              first: the consumer is in place
 *                     {delivery: {...}}                one per credit
 *                     {seq} | {seq, error}             the answer to each ack, nack or release
 *
 * When the stream ends for any reason (the client closes it, its process dies, the
 * connection breaks), the deliveries it held go back to the group at once.
 */

const Namespace = z.string().min(1).max(LIMITS.namespace).optional().describe("another namespace than the caller's (admins of micro only)");
const Topic = z.string().min(1).max(LIMITS.topic).describe('dot-separated tokens, e.g. orders.created');
const Group = z.string().min(1).max(LIMITS.group).describe('the consumer group: its members share the events, every group sees all of them');
const Metadata = z
  .record(z.string().min(1).max(LIMITS.metadataKey), z.string().max(LIMITS.metadataValue))
  .refine((m) => Object.keys(m).length <= LIMITS.metadataEntries, { message: `at most ${LIMITS.metadataEntries} entries` })
  .describe('string keys and values');
const Offset = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);
const Time = z.number().int().min(0).max(8.64e15).describe('epoch milliseconds');
const DeliveryId = z.string().min(1).max(64).describe('the id of a delivery this stream received');

export const EventSchema = z.object({
  id: z.string(),
  topic: z.string(),
  offset: z.number().int(),
  timestamp: z.number().describe('epoch ms when it was stored'),
  payload: z.unknown(),
  metadata: z.record(z.string(), z.string()).optional(),
});

const Retention = z
  .object({
    maxAge: z.number().int().min(0).max(LIMITS.maxAge).optional().describe('ms an event is kept; 0 = no limit'),
    maxEvents: z.number().int().min(0).max(LIMITS.maxEvents).optional().describe('the newest this many are kept; 0 = no limit'),
    maxBytes: z.number().int().min(0).max(LIMITS.maxBytes).optional().describe('bytes of payloads and metadata kept; 0 = no limit'),
  })
  .strict();

const TopicInfoSchema = z.object({
  name: z.string(),
  count: z.number().int(),
  bytes: z.number().int(),
  first: z.number().int(),
  last: z.number().int(),
  lastTimestamp: z.number().optional(),
  retention: Retention.optional(),
});

const GroupInfoSchema = z.object({
  name: z.string(),
  committed: z.number().int(),
  pending: z.number().int(),
  inflight: z.number().int(),
  members: z.number().int(),
});

export const StartOffsetSchema = z
  .union([z.literal('earliest'), z.literal('latest'), z.object({ time: Time }).strict(), z.object({ offset: Offset }).strict()])
  .describe("where a new group starts: 'earliest', 'latest' (default), {time} or {offset}; ignored once the group exists");

export const SubscribeSchema = z.object({
  topic: Topic,
  group: Group,
  offset: StartOffsetSchema.optional(),
  ackWait: z.number().int().min(LIMITS.ackWaitMin).max(LIMITS.ackWaitMax).optional().describe('ms before an unacknowledged delivery is handed out again (default 30,000)'),
  maxRetries: z.number().int().min(0).max(LIMITS.maxRetries).optional().describe('redeliveries before the dead-letter topic (default 5)'),
  deadLetter: Topic.optional().describe('the dead-letter topic (default <topic>.dead)'),
  maxInFlight: z.number().int().min(1).max(LIMITS.maxInFlight).optional().describe('unsettled deliveries this consumer may hold (default 100)'),
  namespace: Namespace,
});

export const ConsumeRequestSchema = z.object({
  subscribe: SubscribeSchema.optional().describe('the first message, and only the first'),
  credit: z.number().int().min(0).max(10_000).optional().describe('how many more deliveries the client is ready for (without credit in the subscribe message: as many as maxInFlight allows)'),
  seq: z.number().int().min(0).max(2 ** 32).optional().describe('echoed in the answer to ack, nack and release'),
  ack: DeliveryId.optional(),
  nack: DeliveryId.optional(),
  delay: z.number().int().min(0).max(LIMITS.nackDelayMax).optional().describe('with nack: ms before the event is due again'),
  reason: z.string().max(64 * 1024).optional().describe('with nack: why (kept for the dead letter)'),
  release: z.array(DeliveryId).max(LIMITS.maxInFlight).optional().describe('deliveries received but never used: back to the group, not counted as attempts'),
});

export const ErrorSchema = z.object({ id: z.string(), code: z.number().int(), detail: z.string(), status: z.string() });

export const ConsumeResponseSchema = z.object({
  subscribed: z.object({ topic: z.string(), group: z.string(), consumer: z.string() }).optional(),
  delivery: z
    .object({
      id: z.string(),
      attempt: z.number().int(),
      deadline: z.number().describe('epoch ms when the ack wait expires'),
      event: EventSchema,
    })
    .optional(),
  seq: z.number().int().optional(),
  error: ErrorSchema.optional(),
});

export type ConsumeRequest = z.input<typeof ConsumeRequestSchema>;
export type ConsumeResponse = z.output<typeof ConsumeResponseSchema>;

export const eventsService = defineService({
  name: 'events',
  version: '1.0.0',
  description: 'Durable event streams: publish, consume in groups with acknowledgements, read the history',
  endpoints: {
    Publish: endpoint({
      description: 'Stores an event; answers once it is durable',
      request: z.object({
        topic: Topic,
        payload: z.unknown().describe('any JSON value, at most 1 MiB as JSON'),
        metadata: Metadata.optional(),
        id: z.string().min(1).max(LIMITS.id).optional().describe('de-duplication id: a publish with the id of a stored event returns that event'),
        namespace: Namespace,
      }),
      response: z.object({ event: EventSchema }),
    }),
    Read: endpoint({
      description: 'A page of the history of a topic, oldest first',
      request: z.object({
        topic: Topic,
        offset: Offset.optional().describe('the first offset to read (default the oldest held)'),
        from: Time.optional().describe('or: the first event stored at or after this time'),
        limit: z.number().int().min(1).max(LIMITS.readLimit).optional().describe('at most this many events (default 100)'),
        namespace: Namespace,
      }),
      response: z.object({
        events: z.array(EventSchema),
        next: z.number().int().optional().describe('the offset of the next page, when there is more'),
        first: z.number().int(),
        last: z.number().int(),
      }),
      idempotent: true,
      readonly: true,
    }),
    Topics: endpoint({
      description: 'The topics of the namespace with their counts and offsets',
      request: z.object({ namespace: Namespace }),
      response: z.object({ topics: z.array(TopicInfoSchema) }),
      idempotent: true,
      readonly: true,
    }),
    Groups: endpoint({
      description: 'The consumer groups of a topic with their positions',
      request: z.object({ topic: Topic, namespace: Namespace }),
      response: z.object({ groups: z.array(GroupInfoSchema) }),
      idempotent: true,
      readonly: true,
    }),
    DeleteGroup: endpoint({
      description: 'Forgets a consumer group (refused while it has consumers)',
      request: z.object({ topic: Topic, group: Group, namespace: Namespace }),
      response: z.object({}),
    }),
    SetRetention: endpoint({
      description: "Sets a topic's own retention; fields left out take the server's defaults, 0 = no limit",
      request: z.object({ topic: Topic, retention: Retention, namespace: Namespace }),
      response: z.object({ topic: TopicInfoSchema }),
      idempotent: true,
    }),
    Consume: bidiStream({
      description: 'Consume a topic in a group: subscribe, then receive deliveries as credit allows and settle each',
      request: ConsumeRequestSchema,
      response: ConsumeResponseSchema,
    }),
  },
});
