/**
 * Micro for TypeScript — the SDK a service author imports.
 *
 * ```ts
 * import { defineService, endpoint, run, z } from '@micro/sdk';
 * ```
 */
export { z } from 'zod';

// defining and running services
export {
  defineService,
  endpoint,
  serverStream,
  clientStream,
  bidiStream,
  endpointRecord,
  jsonSchemaOf,
  SERVICE_NAME,
  PUBLIC_SERVICE_KEY,
  isPublicService,
  ENDPOINT_NAME,
} from './service/definition.js';
export { PRICE_LIMITS, priceProblem } from './service/price.js';
export type { ServiceDef, EndpointDef, AnyEndpointDef, EndpointMap, EndpointOptions, RequestIn, RequestOut, ResponseIn, ResponseOut } from './service/definition.js';
export type { Handlers, HandlerFor, UnaryHandler, ServerStreamHandler, ClientStreamHandler, BidiStreamHandler } from './service/handlers.js';
export { Service, run, HEALTH_ENDPOINT } from './service/service.js';
export type { ServiceOptions, ServiceState } from './service/service.js';
export type { HandlerMiddleware } from './service/router.js';
export { formatIssues } from './service/validate.js';

// metrics (issue 7): per-service registry, call counters, the Prometheus text format
export { ServiceMetrics, METRICS_ENDPOINT, formatPrometheus, mergeFamilies, sanitizeFamilies, statsService, StatsReadResponse, CallStats, Series } from './metrics/index.js';
export { quotaService, QuotaReadResponse, QUOTA_LIMIT_KEYS } from './quota/definition.js';
export type { QuotaService } from './quota/definition.js';
export { mailService, MAIL_LIMITS } from './mail/definition.js';
export { addressProblem, oneLine, MAX_ADDRESS_LENGTH } from './mail/address.js';
export { Outbox, DEFAULT_OUTBOX_MAX } from './outbox/outbox.js';
export type { OutboxOptions } from './outbox/outbox.js';
export type { MailService } from './mail/definition.js';
export type { MetricFamily, MetricSample, Sanitized, StatsService } from './metrics/index.js';

// calling services
export { Client } from './client/client.js';
export type { CallOptions, ClientOptions, ClientMiddleware, ClientRequest, PreparedCall } from './client/client.js';
export { createClient } from './client/typed.js';
export type { TypedClient, MethodFor } from './client/typed.js';
export type { ResponseStream } from './client/stream.js';
export { defaultRegistry, setDefaultRegistry, sharedPool } from './client/defaults.js';

// context and errors
export type { Context, Metadata, Account } from './context/context.js';
export * as errors from './errors/errors.js';
export { MicroError, isMicroError } from './errors/errors.js';
export type { ErrorJSON } from './errors/errors.js';

// codecs and transport
export { jsonCodec, msgpackCodec } from './codec/codec.js';
export type { Codec, CodecName } from './codec/codec.js';
export { RpcServer } from './transport/server.js';
export type { RpcListener } from './transport/server.js';
export { NatsRpcListener } from './transport/nats/server.js';
export type { NatsTransportOptions } from './transport/nats/server.js';
export { closeLinks as closeNatsConnections } from './transport/nats/link.js';
export type { RpcServerOptions } from './transport/server.js';
export { ConnectionPool, ConnectionError } from './transport/client.js';
export type { PoolOptions } from './transport/client.js';
export { DEFAULT_MAX_FRAME } from './transport/frame.js';

// registry and selection
export { DEFAULT_NAMESPACE } from './registry/registry.js';
export type * from './registry/registry.js';
export { MemoryRegistry } from './registry/memory.js';
export { FileRegistry } from './registry/file.js';
// the registry on a NATS JetStream KV bucket and the KV helpers: `@micro/sdk/nats` (nats.ts),
// so that services which never use NATS do not load nats.js
export { Selector } from './selector/selector.js';

// pub/sub
export type { Broker, Message, PublishOptions, SubscribeOptions, Subscription, MessageHandler } from './broker/broker.js';
export { MemoryBroker } from './broker/memory.js';
export { NatsBroker } from './broker/nats.js';
export type { NatsBrokerOptions, NatsBrokerStats } from './broker/nats.js';
export { topic, publish, subscribe } from './broker/topic.js';
export type { Topic, TypedSubscription, TypedSubscribeOptions } from './broker/topic.js';

// logging and environment
export { createLogger, rootLogger, setRootLogger, serviceLogger } from './logger/logger.js';
export type { Logger, ServiceLogFields } from './logger/logger.js';
export { LOG_LEVELS, TRACE_ID, effectiveLevel, isLogLevel, levelName, levelNumber, lineFields, parseSince } from './logger/fields.js';
export type { LineFields, LineFilter, LogLevel } from './logger/fields.js';
export { microHome, defaultNamespace } from './config/env.js';
export { writeFileDurable, writeJsonDurable, readJson, privateDir, syncDir } from './util/files.js';

// talking to micro server
export { serverAddress, platformClient, authFromEnv } from './client/platform.js';
export { registryService, registryHandlers, RemoteRegistry, ServiceRecordSchema } from './registry/service.js';
export { brokerService, brokerHandlers, RemoteBroker } from './broker/service.js';
export { authService } from './auth/definition.js';
export type { Credentials } from './auth/definition.js';
export { TokenSource, bearer } from './auth/token.js';
export * from './runtime/definition.js';
export { processAlive } from './util/process.js';
// auth: the contract, tokens, rules, the checks of every service (auth/index.ts)
export * from './auth/index.js';
export * from './store/index.js';
export * from './config/index.js';
export * from './sync/index.js';
export * from './cache/index.js';
export * from './fulltext/index.js';
export * from './events/index.js';
// traces: OpenTelemetry spans of calls, exported to micro server (tracing/index.ts)
export * from './tracing/index.js';
// the default engines of a service: the server's with MICRO_SERVER, else in memory
export { store, blobs, config, events, sync, broker, cache, fulltext, defaultEngines, remoteEngines, namespacedClient } from './client/engines.js';
export type { Engines } from './client/engines.js';

// profiles: embedded engines, or NATS, PostgreSQL and Redis shared by several nodes
export { profileFromEnv, checkPrefix, redactUrl, DEFAULT_NATS_URL, DEFAULT_POSTGRES_URL, DEFAULT_REDIS_URL, DEFAULT_PREFIX } from './engines/profile.js';
export type { Profile, ProfileName, LocalProfile, NatsProfile } from './engines/profile.js';
export { connectWithBackoff } from './engines/connect.js';
export type { BackoffOptions } from './engines/connect.js';
