import type { Logger } from '../logger/logger.js';
import { newSpanId, newTraceId } from '../util/ids.js';

/** Call metadata: lower-case keys, string values (like HTTP headers). */
export type Metadata = Record<string, string>;

/** Who is calling. Filled in by auth (see the auth package); absent for anonymous calls. */
export interface Account {
  id: string;
  type: 'user' | 'service' | 'apikey' | string;
  /** the namespace the account belongs to */
  issuer: string;
  scopes: string[];
  metadata?: Record<string, string>;
}

/** What a handler knows about the call it serves. */
export interface Context {
  readonly service: string;
  readonly endpoint: string;
  readonly namespace: string;
  /**
   * The namespace whose data the call acts on: the service's own namespace, except for a
   * public service of `micro` (ServiceDefOptions.public), where it is the caller's — set
   * by the service's auth from the verified token, never from what the caller says.
   */
  readonly tenant: string;
  readonly account: Account | undefined;
  readonly metadata: Metadata;
  /** absolute deadline, epoch ms; undefined when the call has none */
  readonly deadline: number | undefined;
  /** aborted when the caller cancels, the deadline passes or the connection is lost */
  readonly signal: AbortSignal;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | undefined;
  /** a child of the service's logger tagged with endpoint and trace id */
  readonly logger: Logger;
  /** milliseconds left until the deadline (Infinity without one) */
  remaining(): number;
  /**
   * Whether the trace is recorded (the W3C sampled flag): what the caller's traceparent
   * said, or for a new trace the process's sampler. Undefined (a context made by hand)
   * counts as sampled.
   */
  readonly sampled?: boolean;
  /** `00-<trace>-<span>-<01 sampled | 00>`, to hand on to nested calls and messages */
  traceparent(): string;
  /**
   * The caller's network address as this process saw it, never what the caller says:
   * `tcp:<ip>` (the TCP peer), `unix` (the unix socket), or what an in-process caller
   * (the gateway, for its HTTP client) gave in `CallOptions.peer`; undefined otherwise
   * (the NATS transport, in-process calls without one).
   */
  readonly peer?: string;
}

export interface CallContextInit {
  service: string;
  endpoint: string;
  namespace: string;
  /** default: namespace */
  tenant?: string | undefined;
  account?: Account | undefined;
  metadata?: Metadata | undefined;
  deadline?: number | undefined;
  traceparent?: string | undefined;
  logger: Logger;
  peer?: string | undefined;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * Whether a new trace (a call that came without traceparent) is recorded: every one until
 * tracing sets its sampler (setRootSampler), which is only consulted while tracing is on.
 */
let rootSampler: () => boolean = () => true;

/** @internal tracing sets how new traces are sampled (MICRO_TRACING's ratio) */
export function setRootSampler(sampler: () => boolean): void {
  rootSampler = sampler;
}

/** Whether a new trace is recorded, by the process's sampler. */
export function sampleRoot(): boolean {
  return rootSampler();
}

/** The sampled bit of a traceparent's flags (two hex digits). */
export function sampledFlag(flags: string): boolean {
  return (parseInt(flags, 16) & 1) === 1;
}

/** The W3C traceparent of a span: version 00, its ids, flags 01 when sampled, else 00. */
export function formatTraceparent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}
const EMPTY: Metadata = Object.freeze({}) as Metadata;

/**
 * The Context implementation. Everything that costs something (the abort controller,
 * ids, the child logger) is made on first use, so a call whose handler never looks at
 * them pays nothing for them.
 */
export class CallContext implements Context {
  readonly service: string;
  readonly endpoint: string;
  readonly namespace: string;
  tenant: string;
  account: Account | undefined;
  readonly metadata: Metadata;
  readonly deadline: number | undefined;
  readonly peer: string | undefined;
  private readonly incomingTraceparent: string | undefined;
  private readonly baseLogger: Logger;
  private controller: AbortController | undefined;
  private abortReason: unknown = undefined;
  private aborted = false;
  private ids: { traceId: string; spanId: string; parentSpanId: string | undefined; sampled: boolean } | undefined;
  private childLogger: Logger | undefined;

  constructor(init: CallContextInit) {
    this.service = init.service;
    this.endpoint = init.endpoint;
    this.namespace = init.namespace;
    this.tenant = init.tenant ?? init.namespace;
    this.account = init.account;
    this.metadata = init.metadata ?? EMPTY;
    this.deadline = init.deadline;
    this.peer = init.peer;
    this.incomingTraceparent = init.traceparent;
    this.baseLogger = init.logger;
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.abortReason);
    }
    return this.controller.signal;
  }

  /** Cancels the call: the signal fires. Called by the transport, not by handlers. */
  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.abortReason = reason;
    this.controller?.abort(reason);
  }

  get isAborted(): boolean {
    return this.aborted;
  }

  private get traceIds(): { traceId: string; spanId: string; parentSpanId: string | undefined; sampled: boolean } {
    if (!this.ids) {
      const m = this.incomingTraceparent ? TRACEPARENT.exec(this.incomingTraceparent) : null;
      this.ids = m
        ? { traceId: m[1] as string, spanId: newSpanId(), parentSpanId: m[2] as string, sampled: sampledFlag(m[3] as string) }
        : { traceId: newTraceId(), spanId: newSpanId(), parentSpanId: undefined, sampled: rootSampler() };
    }
    return this.ids;
  }

  get sampled(): boolean {
    return this.traceIds.sampled;
  }

  get traceId(): string {
    return this.traceIds.traceId;
  }

  get spanId(): string {
    return this.traceIds.spanId;
  }

  get parentSpanId(): string | undefined {
    return this.traceIds.parentSpanId;
  }

  get logger(): Logger {
    this.childLogger ??= this.baseLogger.child({ endpoint: this.endpoint, namespace: this.namespace, traceId: this.traceId });
    return this.childLogger;
  }

  remaining(): number {
    return this.deadline === undefined ? Infinity : this.deadline - Date.now();
  }

  traceparent(): string {
    const ids = this.traceIds;
    return formatTraceparent(ids.traceId, ids.spanId, ids.sampled);
  }
}

/** Accepts a W3C traceparent only if it is well formed. */
export function validTraceparent(value: unknown): string | undefined {
  return typeof value === 'string' && TRACEPARENT.test(value) ? value : undefined;
}
