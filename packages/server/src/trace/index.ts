import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import {
  disableTracing,
  enableTracing,
  errors,
  spanNamespace,
  toReadableSpan,
  toSpanRecord,
  traceService,
  tracingRatioFromEnv,
  TRACE_LIMITS,
  type Context,
  type Handlers,
  type SpanRecord,
  type TraceService,
} from '@micro/sdk';
import { namespaceFor } from '../auth/guard.js';
import { positiveFromEnv, type CoreServiceFactory } from '../core.js';
import { TraceStore, type TraceStoreOptions } from './store.js';

export { TraceStore } from './store.js';
export type { TraceStoreOptions } from './store.js';

/** Where recorded spans go: the store, and the OTLP collector when one is configured. */
export type SpanSink = (namespace: string, spans: readonly SpanRecord[]) => number;

/** The handlers of the trace service: every request acts in the caller's namespace (admins of micro may name another). */
export function traceHandlers(store: TraceStore, sink: SpanSink): Handlers<TraceService> {
  return {
    Record: (req, ctx: Context) => ({ accepted: sink(namespaceFor(ctx, req.namespace), req.spans) }),
    Read: (req, ctx: Context) => {
      const spans = store.read(namespaceFor(ctx, req.namespace), req.traceId);
      // the same answer whether the trace is in another namespace or nowhere: nothing leaks
      if (!spans) throw errors.NotFound('trace', `no trace ${req.traceId} (unknown, or dropped as one of the oldest)`);
      return { traceId: req.traceId, spans };
    },
    List: (req, ctx: Context) => store.list(namespaceFor(ctx, req.namespace), req.limit ?? TRACE_LIMITS.defaultList),
  };
}

export interface TraceServiceOptions extends TraceStoreOptions {
  /**
   * trace the server's own calls (gateway, core services) into the store: true (every
   * new trace), a share of new traces from 0 to 1, or false (default: MICRO_TRACING)
   */
  tracing?: boolean | number;
  /** OTLP/HTTP traces URL base (default OTEL_EXPORTER_OTLP_ENDPOINT; unset: no export) */
  otlpEndpoint?: string;
  /** the other nodes of the platform (nats profile): what one records, every one keeps */
  share?: TraceShare;
}

/**
 * How the nodes of a platform keep the same traces: each hands on the spans recorded on it
 * (by its gateway, its core services and the services that export to it) and keeps what
 * the others hand on, so a trace that crossed nodes reads whole on any of them.
 */
export interface TraceShare {
  publish(namespace: string, spans: readonly SpanRecord[]): void;
  /** spans recorded on the other nodes (already exported over OTLP there); returns how to stop */
  subscribe(onSpans: (namespace: string, spans: SpanRecord[]) => void): () => Promise<void>;
}

/**
 * The trace core service: recent traces in memory per namespace (MICRO_TRACE_MAX_TRACES,
 * default 1,000, oldest dropped first), exported over OTLP/HTTP when
 * OTEL_EXPORTER_OTLP_ENDPOINT is set. It also turns on tracing in the server process,
 * so gateway requests and core service calls are spans of the same traces.
 */
export function traceCoreService(options: TraceServiceOptions = {}): CoreServiceFactory {
  return (core) => {
    const store = new TraceStore({ maxTraces: options.maxTraces ?? positiveFromEnv('MICRO_TRACE_MAX_TRACES'), maxSpans: options.maxSpans });
    const endpoint = options.otlpEndpoint ?? process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
    const otlp = endpoint ? new OTLPTraceExporter({ url: `${endpoint.replace(/\/+$/, '')}/v1/traces` }) : undefined;
    const sink: SpanSink = (namespace, spans) => {
      const kept = store.record(namespace, spans);
      if (spans.length === 0) return kept;
      options.share?.publish(namespace, spans);
      if (otlp) {
        otlp.export(
          spans.map((s) => toReadableSpan(s, namespace)),
          (result) => {
            if (result.error) core.logger.warn({ err: result.error }, 'OTLP trace export failed; these spans are kept here only');
          },
        );
      }
      return kept;
    };
    // opt-in: a recorded call costs the hot path a few µs (two spans per gateway request);
    // a ratio records that share of new traces, and traces that come sampled
    const ratio = options.tracing === undefined ? tracingRatioFromEnv() : options.tracing === false ? undefined : options.tracing === true ? 1 : options.tracing;
    const traced = ratio !== undefined;
    if (traced) {
      enableTracing({
        serviceName: 'micro-server',
        ratio,
        exporter: {
          export: (spans, done) => {
            const groups = new Map<string, SpanRecord[]>();
            for (const span of spans) {
              const ns = spanNamespace(span) ?? 'micro';
              let g = groups.get(ns);
              if (!g) groups.set(ns, (g = []));
              g.push(toSpanRecord(span));
            }
            for (const [ns, records] of groups) sink(ns, records);
            done({ code: 0 });
          },
          shutdown: () => Promise.resolve(),
        },
      });
    }
    const unsubscribe = options.share?.subscribe((namespace, spans) => store.record(namespace, spans));
    return {
      def: traceService,
      handlers: traceHandlers(store, sink),
      stop: async () => {
        if (traced) await disableTracing();
        await unsubscribe?.();
        await otlp?.shutdown();
      },
    };
  };
}

/** The factory micro server hosts (see CORE_SERVICES). */
export const traceFactory: CoreServiceFactory = traceCoreService();
