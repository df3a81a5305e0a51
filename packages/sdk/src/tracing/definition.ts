import { z } from 'zod';
import { defineService, endpoint } from '../service/definition.js';

/**
 * The trace service of `micro server`: services send it the spans they finished
 * (Record), and users read recent traces of their namespace (Read, List). Ids are the
 * W3C ones: 32 and 16 lower-case hex digits; anything else is refused by the schema.
 */
export const TRACE_LIMITS = {
  /** spans in one Record call */
  spansPerRecord: 1_000,
  nameChars: 200,
  attributes: 32,
  attributeChars: 1_000,
  maxList: 1_000,
  defaultList: 50,
} as const;

export const TRACE_ID = /^[0-9a-f]{32}$/;
export const SPAN_ID = /^[0-9a-f]{16}$/;
const TraceId = z.string().regex(TRACE_ID, 'a trace id is 32 lower-case hex digits');
const SpanId = z.string().regex(SPAN_ID, 'a span id is 16 lower-case hex digits');
const Namespace = z.string().max(200).optional().describe('default: the namespace of the caller; others need an admin of micro');

export const spanKinds = ['server', 'client', 'producer', 'consumer', 'internal'] as const;

export const spanRecord = z.object({
  traceId: TraceId,
  spanId: SpanId,
  parentSpanId: SpanId.optional(),
  name: z.string().min(1).max(TRACE_LIMITS.nameChars),
  kind: z.enum(spanKinds),
  service: z.string().max(TRACE_LIMITS.nameChars).describe('the service that made the span'),
  start: z.number().min(0).describe('epoch milliseconds (fractional)'),
  duration: z.number().min(0).max(86_400_000).describe('milliseconds'),
  status: z.enum(['ok', 'error', 'unset']),
  error: z.string().max(TRACE_LIMITS.attributeChars).optional(),
  attributes: z
    .record(z.string().max(100), z.union([z.string().max(TRACE_LIMITS.attributeChars), z.number(), z.boolean()]))
    .refine((a) => Object.keys(a).length <= TRACE_LIMITS.attributes, `at most ${TRACE_LIMITS.attributes} attributes`)
    .optional(),
});
export type SpanRecord = z.infer<typeof spanRecord>;

const traceSummary = z.object({
  traceId: z.string(),
  name: z.string().describe('the root span (or the earliest one when the root is not here)'),
  service: z.string(),
  start: z.number(),
  duration: z.number().describe('ms from the first span start to the last span end'),
  spans: z.number().int(),
  errors: z.number().int(),
});
export type TraceSummary = z.infer<typeof traceSummary>;

export const traceService = defineService({
  name: 'trace',
  version: '1.0.0',
  description: 'Recent distributed traces per namespace (OpenTelemetry spans)',
  endpoints: {
    Record: endpoint({
      description: 'Stores finished spans (what services export)',
      request: z.object({ spans: z.array(spanRecord).max(TRACE_LIMITS.spansPerRecord), namespace: Namespace }),
      response: z.object({ accepted: z.number().int() }),
    }),
    Read: endpoint({
      description: 'The spans of one trace, by start time; 404 when it is unknown (or dropped)',
      request: z.object({ traceId: TraceId, namespace: Namespace }),
      response: z.object({ traceId: z.string(), spans: z.array(spanRecord) }),
      idempotent: true,
      readonly: true,
    }),
    List: endpoint({
      description: 'The most recent traces, newest first',
      request: z.object({
        limit: z.number().int().min(1).max(TRACE_LIMITS.maxList).optional().describe(`default ${TRACE_LIMITS.defaultList}`),
        namespace: Namespace,
      }),
      response: z.object({
        traces: z.array(traceSummary),
        dropped: z.number().int().describe('traces dropped from this namespace (oldest first) since the server started'),
      }),
      idempotent: true,
      readonly: true,
    }),
  },
});
export type TraceService = typeof traceService;
