import type { SpanRecord, TraceSummary } from '@micro/sdk';

export interface TraceStoreOptions {
  /** traces kept per namespace; past it the oldest are dropped (default 1,000) */
  maxTraces?: number;
  /** spans kept per trace; later ones are dropped (default 1,000) */
  maxSpans?: number;
}

interface Trace {
  spans: SpanRecord[];
  /** span ids already kept: a span exported twice is kept once */
  ids: Set<string>;
}

interface Space {
  /** insertion order is age: the first entry is the oldest trace */
  traces: Map<string, Trace>;
  dropped: number;
  droppedSpans: number;
}

/**
 * Recent traces in memory, per namespace, bounded: at most maxTraces traces of at most
 * maxSpans spans each per namespace. The oldest trace (first seen) goes first, counted
 * in `dropped`. A restart empties it; OTLP export is for keeping traces.
 */
export class TraceStore {
  readonly maxTraces: number;
  readonly maxSpans: number;
  private readonly spaces = new Map<string, Space>();

  constructor(options: TraceStoreOptions = {}) {
    this.maxTraces = options.maxTraces ?? 1_000;
    this.maxSpans = options.maxSpans ?? 1_000;
  }

  /** Keeps the spans; returns how many were kept. */
  record(namespace: string, spans: readonly SpanRecord[]): number {
    let space = this.spaces.get(namespace);
    if (!space) this.spaces.set(namespace, (space = { traces: new Map(), dropped: 0, droppedSpans: 0 }));
    let kept = 0;
    for (const span of spans) {
      let t = space.traces.get(span.traceId);
      if (!t) {
        while (space.traces.size >= this.maxTraces) {
          const oldest = space.traces.keys().next().value as string;
          space.traces.delete(oldest);
          space.dropped++;
        }
        space.traces.set(span.traceId, (t = { spans: [], ids: new Set() }));
      }
      if (t.ids.has(span.spanId)) continue;
      if (t.spans.length >= this.maxSpans) {
        space.droppedSpans++;
        continue;
      }
      t.ids.add(span.spanId);
      t.spans.push(span);
      kept++;
    }
    return kept;
  }

  /** The spans of a trace by start time, or undefined. */
  read(namespace: string, traceId: string): SpanRecord[] | undefined {
    const t = this.spaces.get(namespace)?.traces.get(traceId);
    return t ? [...t.spans].sort((a, b) => a.start - b.start) : undefined;
  }

  /** The newest traces first. */
  list(namespace: string, limit: number): { traces: TraceSummary[]; dropped: number } {
    const space = this.spaces.get(namespace);
    if (!space) return { traces: [], dropped: 0 };
    const all = [...space.traces.entries()];
    const traces: TraceSummary[] = [];
    for (let i = all.length - 1; i >= 0 && traces.length < limit; i--) {
      const [traceId, t] = all[i] as [string, Trace];
      traces.push(summary(traceId, t.spans));
    }
    return { traces, dropped: space.dropped };
  }

  /** Spans dropped because their trace was full, per namespace. */
  droppedSpans(namespace: string): number {
    return this.spaces.get(namespace)?.droppedSpans ?? 0;
  }
}

function summary(traceId: string, spans: SpanRecord[]): TraceSummary {
  const ids = new Set(spans.map((s) => s.spanId));
  // the root: no parent, or a parent that is not here (the caller did not trace)
  const roots = spans.filter((s) => !s.parentSpanId || !ids.has(s.parentSpanId)).sort((a, b) => a.start - b.start);
  const root = roots[0] ?? (spans[0] as SpanRecord);
  let start = Infinity;
  let end = 0;
  let errors = 0;
  for (const s of spans) {
    start = Math.min(start, s.start);
    end = Math.max(end, s.start + s.duration);
    if (s.status === 'error') errors++;
  }
  return { traceId, name: root.name, service: root.service, start, duration: end - start, spans: spans.length, errors };
}
