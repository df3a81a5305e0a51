import { SpanKind, SpanStatusCode, TraceFlags, type HrTime } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { Client } from '../client/client.js';
import { platformClient, serverAddress } from '../client/platform.js';
import { TRACE_LIMITS, type SpanRecord } from './definition.js';
import { enableTracing, setTracingFromEnv, spanNamespace, toSpanRecord, tracingRatioFromEnv } from './tracing.js';

/**
 * Sends finished spans to micro server's trace service (trace.Record), grouped by the
 * namespace of their call. A failed export is dropped (the batch processor does not
 * retry): traces are best effort and must never slow or break a call.
 */
export class RemoteSpanExporter implements SpanExporter {
  private stopped = false;

  constructor(private readonly client: Client) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    if (this.stopped) return done({ code: ExportResultCode.FAILED, error: new Error('exporter stopped') });
    const groups = new Map<string | undefined, SpanRecord[]>();
    for (const span of spans) {
      const ns = spanNamespace(span);
      let g = groups.get(ns);
      if (!g) groups.set(ns, (g = []));
      g.push(toSpanRecord(span));
    }
    const calls: Promise<unknown>[] = [];
    for (const [namespace, records] of groups) {
      for (let i = 0; i < records.length; i += TRACE_LIMITS.spansPerRecord) {
        calls.push(this.client.call('trace', 'Record', { spans: records.slice(i, i + TRACE_LIMITS.spansPerRecord), namespace }));
      }
    }
    Promise.all(calls).then(
      () => done({ code: ExportResultCode.SUCCESS }),
      (error: unknown) => done({ code: ExportResultCode.FAILED, error: error instanceof Error ? error : new Error(String(error)) }),
    );
  }

  shutdown(): Promise<void> {
    this.stopped = true;
    return Promise.resolve();
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * A service run against a micro server (MICRO_SERVER set) traces its calls and exports
 * to the server, with MICRO_TRACING set to on or a ratio (micro server hands its own on
 * to the services it runs). Installed when the SDK loads; it takes effect the first time
 * a service or client asks for the process's tracing.
 */
setTracingFromEnv((current) => {
  if (current) return current;
  const address = serverAddress();
  const ratio = address ? tracingRatioFromEnv() : undefined;
  if (ratio === undefined) return undefined;
  return enableTracing({ exporter: new RemoteSpanExporter(platformClient(address as string)), serviceName: process.env.MICRO_SERVICE_NAME || 'service', ratio });
});

const KINDS: Record<SpanRecord['kind'], SpanKind> = {
  server: SpanKind.SERVER,
  client: SpanKind.CLIENT,
  producer: SpanKind.PRODUCER,
  consumer: SpanKind.CONSUMER,
  internal: SpanKind.INTERNAL,
};

function hr(ms: number): HrTime {
  const s = Math.floor(ms / 1_000);
  return [s, Math.round((ms - s * 1_000) * 1e6)];
}

/** A stored span as OpenTelemetry's exporters take it (for OTLP export by the server). */
export function toReadableSpan(record: SpanRecord, namespace: string): ReadableSpan {
  const ctx = { traceId: record.traceId, spanId: record.spanId, traceFlags: TraceFlags.SAMPLED };
  const span: ReadableSpan = {
    name: record.name,
    kind: KINDS[record.kind],
    spanContext: () => ctx,
    startTime: hr(record.start),
    endTime: hr(record.start + record.duration),
    duration: hr(record.duration),
    status:
      record.status === 'error'
        ? { code: SpanStatusCode.ERROR, message: record.error ?? '' }
        : { code: record.status === 'ok' ? SpanStatusCode.OK : SpanStatusCode.UNSET },
    attributes: { ...record.attributes },
    links: [],
    events: [],
    ended: true,
    resource: resourceFromAttributes({ 'service.name': record.service, 'service.namespace': namespace }),
    instrumentationScope: { name: '@micro/sdk' },
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0,
  };
  if (record.parentSpanId) (span as { parentSpanContext?: object }).parentSpanContext = { traceId: record.traceId, spanId: record.parentSpanId, traceFlags: TraceFlags.SAMPLED, isRemote: true };
  return span;
}
