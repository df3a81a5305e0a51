import { toSpanRecord, type SpanRecord, type TracingOptions } from '@micro/sdk';

/** An exporter for tests: every finished span is kept in `records`, as the trace service would store it. */
export function recordingExporter(): TracingOptions['exporter'] & { records: SpanRecord[] } {
  const records: SpanRecord[] = [];
  return {
    records,
    export: (spans, done) => {
      records.push(...spans.map(toSpanRecord));
      done({ code: 0 });
    },
    shutdown: () => Promise.resolve(),
  };
}
