export { traceService, spanRecord, spanKinds, TRACE_LIMITS, TRACE_ID as TRACE_ID_PATTERN, SPAN_ID as SPAN_ID_PATTERN } from './definition.js';
export type { SpanRecord, TraceService, TraceSummary } from './definition.js';
export { Tracing, ATTR as TRACE_ATTRIBUTES, activeTracing, disableTracing, enableTracing, parseTraceparent, remoteParent, spanNamespace, toSpanRecord, tracingRatioFromEnv } from './tracing.js';
export type { ActiveSpan, TracingOptions } from './tracing.js';
export { RemoteSpanExporter, toReadableSpan } from './exporter.js';
export { currentCall, runInCall } from './tracing.js';
export { deliveryParent, tracedBroker, tracedEvents } from './messages.js';
