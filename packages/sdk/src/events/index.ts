/**
 * Events: durable streams with consumer groups, acknowledgements, retries, dead letters
 * and retention. `MemoryEvents` for tests, `RemoteEvents` for the events service of
 * `micro server`, `EventsEngine` + `EventStorage` to build an embedded engine.
 */
export type {
  ConsumeOptions,
  Consumer,
  Delivery,
  Event,
  Events,
  GroupInfo,
  NamespaceOptions as EventsNamespaceOptions,
  PublishOptions as EventPublishOptions,
  ReadOptions as EventReadOptions,
  ReadResult as EventReadResult,
  RetentionPolicy,
  StartOffset,
  TopicInfo,
} from './events.js';
export { DEAD_LETTER, DEFAULTS as EVENTS_DEFAULTS, EVENTS_ERROR_ID, LIMITS as EVENTS_LIMITS, deadLetterTopic } from './events.js';
// the input checks every engine shares, for the engines of micro server (JetStream)
export * as eventChecks from './checks.js';
export { EngineDelivery, EventsEngine } from './engine.js';
export type { EngineConsumer, EngineOptions as EventsEngineOptions, EventsQuota } from './engine.js';
export type { EventStorage, GroupRecord, InflightRecord, StoredEvent, TopicRecord } from './storage.js';
export { MemoryEvents, MemoryStorage } from './memory.js';
export { eventsService, EventSchema, ConsumeRequestSchema, ConsumeResponseSchema } from './definition.js';
export type { ConsumeRequest, ConsumeResponse } from './definition.js';
export { RemoteEvents } from './remote.js';
export type { RemoteEventsOptions } from './remote.js';
