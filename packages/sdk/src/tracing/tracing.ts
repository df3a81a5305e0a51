import { AsyncLocalStorage } from 'node:async_hooks';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace, type Attributes, type Span, type Tracer } from '@opentelemetry/api';
import { BasicTracerProvider, BatchSpanProcessor, SimpleSpanProcessor, type IdGenerator, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { Context, Metadata } from '../context/context.js';
import { formatTraceparent, sampledFlag, sampleRoot, setRootSampler, validTraceparent } from '../context/context.js';
import type { ClientMiddleware } from '../client/client.js';
import type { HandlerMiddleware } from '../service/router.js';
import { newSpanId, newTraceId } from '../util/ids.js';
import { isMicroError } from '../errors/errors.js';
import { TRACE_LIMITS, type SpanRecord } from './definition.js';

/**
 * One OpenTelemetry BasicTracerProvider per process. Spans take the ids the call
 * context already has (CallContext.traceId/spanId, the W3C traceparent that travels in
 * the transport meta `tp`), so the span context IS what goes over the wire: a span made
 * here and the one the callee makes are parent and child without any propagator.
 */
export interface TracingOptions {
  /** where finished spans go (RemoteSpanExporter to micro server, or the server's own store) */
  exporter: SpanExporter;
  /** the process's service name (resource `service.name`); spans name their own service too */
  serviceName?: string;
  /** export each span at once (tests) instead of in batches (default false) */
  immediate?: boolean;
  /** batch delay, ms (default 1,000) */
  delay?: number;
  /**
   * The share of new traces recorded, from 0 to 1 (default 1: all). A trace that comes
   * with a traceparent follows its sampled flag, so a trace is whole or not at all.
   */
  ratio?: number;
}

/**
 * MICRO_TRACING: `off` or unset → undefined (tracing off); `on` → 1 (every trace); a
 * number from 0 to 1 → that share of new traces (0: only those whose caller sets the
 * sampled flag of its traceparent). Anything else is an error that says what to write.
 */
export function tracingRatioFromEnv(value: string | undefined = process.env.MICRO_TRACING): number | undefined {
  if (value === undefined || value === '' || value === 'off') return undefined;
  if (value === 'on') return 1;
  const ratio = Number(value);
  if (/^\d*\.?\d+$/.test(value) && ratio >= 0 && ratio <= 1) return ratio;
  throw new Error(`MICRO_TRACING is "${value.slice(0, 40)}": use on, off or the share of new traces to record, from 0 to 1 (e.g. 0.1)`);
}

/** The ids of the next span, set just before the tracer asks for them (synchronously). */
class PresetIds implements IdGenerator {
  trace: string | undefined;
  span: string | undefined;
  generateTraceId(): string {
    const id = this.trace ?? newTraceId();
    this.trace = undefined;
    return id;
  }
  generateSpanId(): string {
    const id = this.span ?? newSpanId();
    this.span = undefined;
    return id;
  }
}

/** The attributes every span of a call carries (read back by toSpanRecord). */
export const ATTR = { service: 'micro.service', namespace: 'micro.namespace', endpoint: 'micro.endpoint', code: 'micro.code' } as const;

/** The namespace of micro server's core services. */
const PLATFORM_NAMESPACE = 'micro';

export class Tracing {
  readonly provider: BasicTracerProvider;
  private readonly tracer: Tracer;
  private readonly ids = new PresetIds();

  constructor(options: TracingOptions) {
    const processor = options.immediate
      ? new SimpleSpanProcessor(options.exporter)
      : new BatchSpanProcessor(options.exporter, { scheduledDelayMillis: options.delay ?? 1_000, maxQueueSize: 4_096, maxExportBatchSize: 512 });
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': options.serviceName ?? 'micro' }),
      idGenerator: this.ids,
      spanProcessors: [processor],
    });
    this.tracer = this.provider.getTracer('@micro/sdk');
  }

  /**
   * A span with the given ids: its trace and span id are taken as they are, its parent
   * is `parentSpanId` (a remote parent) or none (a root).
   */
  startSpan(name: string, kind: SpanKind, traceId: string, spanId: string, parentSpanId: string | undefined, attributes: Attributes): Span {
    const parent = parentSpanId ? trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId: parentSpanId, traceFlags: TraceFlags.SAMPLED, isRemote: true }) : ROOT_CONTEXT;
    this.ids.trace = traceId;
    this.ids.span = spanId;
    try {
      return this.tracer.startSpan(name, { kind, attributes }, parent);
    } finally {
      this.ids.trace = undefined;
      this.ids.span = undefined;
    }
  }

  /** Server middleware: one SERVER span per call served, with the call context's own ids. */
  serverMiddleware(namespace: string): HandlerMiddleware {
    return async (ctx, req, next) => {
      // the trace service's own calls would trace the export of traces, forever
      if (ctx.service === 'trace') return next(req);
      // not recorded: still the call being served, so that what it calls keeps the trace
      if (ctx.sampled === false) return current.run(ctx, () => next(req));
      const span = this.startSpan(`${ctx.service}.${ctx.endpoint}`, SpanKind.SERVER, ctx.traceId, ctx.spanId, ctx.parentSpanId, {
        [ATTR.service]: ctx.service,
        [ATTR.endpoint]: ctx.endpoint,
        [ATTR.namespace]: ctx.namespace || namespace,
      });
      try {
        // the call being served, for what the handler does without naming it (publish, events)
        const out = await current.run(ctx, () => next(req));
        span.setStatus({ code: SpanStatusCode.OK });
        return out;
      } catch (err) {
        failed(span, err);
        throw err;
      } finally {
        // the core services (namespace micro) serve every namespace: their span belongs
        // to the caller's (known once auth has run), so that a tenant's trace is whole
        const issuer = ctx.account?.issuer;
        if (issuer && issuer !== ctx.namespace && ctx.namespace === PLATFORM_NAMESPACE) span.setAttribute(ATTR.namespace, issuer);
        span.end();
      }
    };
  }

  /**
   * Client middleware: one CLIENT span per call made, a child of the call being served
   * (options.parent) or a new root; the callee sees the client span as its parent.
   */
  clientMiddleware(caller: string): ClientMiddleware {
    return async (req, next) => {
      if (req.service === 'trace') return next(req);
      // the parent given, else the call (or delivery) this one is made in
      const parent = req.options.parent ?? current.getStore();
      if (parent ? parent.sampled === false : !sampleRoot()) {
        // not recorded: the trace and its flag (00) still travel
        const unsampled = parent ?? childOf(undefined, newTraceId(), newSpanId(), caller, false);
        return next(req.options.parent === unsampled ? req : { ...req, options: { ...req.options, parent: unsampled } });
      }
      const traceId = parent?.traceId ?? newTraceId();
      const spanId = newSpanId();
      const span = this.startSpan(`${req.service}.${req.endpoint}`, SpanKind.CLIENT, traceId, spanId, parent?.spanId, {
        [ATTR.service]: parent?.service || caller,
        [ATTR.endpoint]: `${req.service}.${req.endpoint}`,
        [ATTR.namespace]: req.namespace,
      });
      try {
        const out = await next({ ...req, options: { ...req.options, parent: childOf(parent, traceId, spanId) } });
        span.setStatus({ code: SpanStatusCode.OK });
        return out;
      } catch (err) {
        failed(span, err);
        throw err;
      } finally {
        span.end();
      }
    };
  }

  /**
   * A span of something other than an RPC (a gateway request, a publish, an event
   * delivery) under `traceparent` (or a new root). `traceparent()` of the result is what
   * to hand on; `end(err)` finishes it.
   */
  span(name: string, kind: SpanRecord['kind'], traceparent: unknown, attributes: Attributes): ActiveSpan {
    const tp = parseTraceparent(traceparent);
    const traceId = tp?.traceId ?? newTraceId();
    const spanId = newSpanId();
    const service = attributes[ATTR.service];
    if (!(tp ? tp.sampled : sampleRoot())) {
      return {
        traceId,
        spanId,
        traceparent: () => formatTraceparent(traceId, spanId, false),
        parent: () => childOf(undefined, traceId, spanId, typeof service === 'string' ? service : undefined, false),
        end: () => undefined,
      };
    }
    const span = this.startSpan(name, OTEL_KINDS[kind], traceId, spanId, tp?.spanId, attributes);
    return {
      traceId,
      spanId,
      traceparent: () => formatTraceparent(traceId, spanId, true),
      parent: () => childOf(undefined, traceId, spanId, typeof service === 'string' ? service : undefined),
      end: (err?: unknown) => {
        if (err === undefined) span.setStatus({ code: SpanStatusCode.OK });
        else failed(span, err);
        span.end();
      },
    };
  }

  /** Sends what is buffered. */
  flush(): Promise<void> {
    return this.provider.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.provider.shutdown();
  }
}

const OTEL_KINDS: Record<SpanRecord['kind'], SpanKind> = {
  server: SpanKind.SERVER,
  client: SpanKind.CLIENT,
  producer: SpanKind.PRODUCER,
  consumer: SpanKind.CONSUMER,
  internal: SpanKind.INTERNAL,
};

export interface ActiveSpan {
  readonly traceId: string;
  readonly spanId: string;
  traceparent(): string;
  /** a Context to pass as CallOptions.parent: calls made with it are children of this span */
  parent(): Context;
  end(err?: unknown): void;
}

function failed(span: Span, err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  span.setStatus({ code: SpanStatusCode.ERROR, message: message.slice(0, TRACE_LIMITS.attributeChars) });
  if (isMicroError(err)) span.setAttribute(ATTR.code, err.code);
}

const EMPTY: Metadata = Object.freeze({}) as Metadata;
const NEVER = new AbortController().signal;

/**
 * What the client sees as the parent of a call made under a span: the parent call's
 * deadline, metadata and signal, with the span's ids as the trace to hand on.
 */
export function childOf(parent: Context | undefined, traceId: string, spanId: string, service?: string, sampled = parent?.sampled ?? true): Context {
  return {
    service: parent?.service ?? service ?? '',
    endpoint: parent?.endpoint ?? '',
    namespace: parent?.namespace ?? '',
    tenant: parent?.tenant ?? parent?.namespace ?? '',
    account: parent?.account,
    metadata: parent?.metadata ?? EMPTY,
    deadline: parent?.deadline,
    get signal() {
      return parent?.signal ?? NEVER;
    },
    traceId,
    spanId,
    parentSpanId: parent?.spanId,
    get logger() {
      if (!parent) throw new Error('no logger outside a call');
      return parent.logger;
    },
    remaining: () => parent?.remaining() ?? Infinity,
    sampled,
    traceparent: () => formatTraceparent(traceId, spanId, sampled),
  };
}

/** The ids and sampled flag of a well-formed W3C traceparent (all-zero ids are invalid), else undefined. */
export function parseTraceparent(value: unknown): { traceId: string; spanId: string; sampled: boolean } | undefined {
  const tp = validTraceparent(value);
  if (!tp) return undefined;
  const traceId = tp.slice(3, 35);
  const spanId = tp.slice(36, 52);
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return { traceId, spanId, sampled: sampledFlag(tp.slice(53, 55)) };
}

/**
 * A parent for a call whose only trace is an incoming traceparent (the gateway with
 * tracing off): calls made with it continue that trace. undefined when it is malformed.
 */
export function remoteParent(traceparent: unknown): Context | undefined {
  const tp = parseTraceparent(traceparent);
  return tp ? childOf(undefined, tp.traceId, tp.spanId, undefined, tp.sampled) : undefined;
}

/**
 * The call (or event delivery) being handled, while tracing is on: what a publish or a
 * call made without `parent` continues.
 */
const current = new AsyncLocalStorage<Context>();

/** The call being handled in this async context (only while tracing is on), or undefined. */
export function currentCall(): Context | undefined {
  return current.getStore();
}

/** Runs fn with `ctx` as the call being handled (for deliveries of messages and events). */
export function runInCall<T>(ctx: Context, fn: () => T): T {
  return current.run(ctx, fn);
}

// ---- the process's tracing -------------------------------------------------------------

let active: Tracing | undefined;
let fromEnv: ((t: Tracing | undefined) => Tracing | undefined) | undefined;

/** Turns tracing on for this process (services and clients made from now on trace). */
export function enableTracing(options: TracingOptions): Tracing {
  const t = new Tracing(options);
  const old = active;
  active = t;
  const ratio = options.ratio ?? 1;
  setRootSampler(ratio >= 1 ? () => true : ratio <= 0 ? () => false : () => Math.random() < ratio);
  if (old) void old.shutdown();
  return t;
}

/** Turns tracing off (and sends what is buffered). */
export async function disableTracing(): Promise<void> {
  const t = active;
  active = undefined;
  setRootSampler(() => true);
  await t?.shutdown();
}

/**
 * The tracing of this process, or undefined when it is off. The first look starts it
 * from the environment when a hook was installed (see tracingFromEnv in exporter.ts):
 * a service run against a micro server exports there.
 */
export function activeTracing(): Tracing | undefined {
  if (!active && fromEnv) {
    const init = fromEnv;
    fromEnv = undefined;
    active = init(active);
  }
  return active;
}

/** @internal the exporter module installs how tracing starts from the environment */
export function setTracingFromEnv(init: (t: Tracing | undefined) => Tracing | undefined): void {
  fromEnv = init;
}

// ---- spans on the wire -----------------------------------------------------------------

const KINDS: Record<number, SpanRecord['kind']> = {
  [SpanKind.SERVER]: 'server',
  [SpanKind.CLIENT]: 'client',
  [SpanKind.PRODUCER]: 'producer',
  [SpanKind.CONSUMER]: 'consumer',
  [SpanKind.INTERNAL]: 'internal',
};

function hrMs(t: [number, number]): number {
  return t[0] * 1_000 + t[1] / 1e6;
}

/** A finished OpenTelemetry span as the trace service keeps it. */
export function toSpanRecord(span: ReadableSpan): SpanRecord {
  const ctx = span.spanContext();
  const attributes: Record<string, string | number | boolean> = {};
  let n = 0;
  for (const [k, v] of Object.entries(span.attributes)) {
    if (n >= TRACE_LIMITS.attributes) break;
    if (typeof v === 'string') attributes[k.slice(0, 100)] = v.slice(0, TRACE_LIMITS.attributeChars);
    else if (typeof v === 'number' || typeof v === 'boolean') attributes[k.slice(0, 100)] = v;
    else continue;
    n++;
  }
  const service = span.attributes[ATTR.service] ?? span.resource.attributes['service.name'];
  const record: SpanRecord = {
    traceId: ctx.traceId,
    spanId: ctx.spanId,
    name: span.name.slice(0, TRACE_LIMITS.nameChars) || 'span',
    kind: KINDS[span.kind] ?? 'internal',
    service: typeof service === 'string' ? service.slice(0, TRACE_LIMITS.nameChars) : 'unknown',
    start: hrMs(span.startTime),
    duration: Math.max(0, hrMs(span.duration)),
    status: span.status.code === SpanStatusCode.ERROR ? 'error' : span.status.code === SpanStatusCode.OK ? 'ok' : 'unset',
    attributes,
  };
  const parent = span.parentSpanContext?.spanId;
  if (parent) record.parentSpanId = parent;
  if (span.status.message) record.error = span.status.message.slice(0, TRACE_LIMITS.attributeChars);
  return record;
}

/** The namespace a span belongs to (the attribute every span of the SDK sets). */
export function spanNamespace(span: ReadableSpan | SpanRecord): string | undefined {
  const ns = span.attributes?.[ATTR.namespace];
  return typeof ns === 'string' ? ns : undefined;
}
