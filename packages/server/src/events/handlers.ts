import { errors, MicroError, type Context, type Handlers } from '@micro/sdk';
import { namespaceFor } from '../auth/guard.js';
import { EVENTS_ERROR_ID, type ConsumeRequest, type ConsumeResponse, type EngineConsumer, type Events, type eventsService } from '@micro/sdk';

/**
 * The events service over an engine, with the namespace rule: each request acts in the
 * caller's namespace unless an admin of `micro` names another.
 */

/** An engine whose consumers can settle by id and give deliveries back (EventsEngine). */
export type ServedEvents = Omit<Events, 'consume'> & { consume: (...args: Parameters<Events['consume']>) => Promise<EngineConsumer> };

export interface EventsHandlerOptions {
  /** ms a Consume stream may take to send its subscribe message (default 30,000) */
  subscribeTimeout?: number;
}

export function eventsHandlers(events: ServedEvents, options: EventsHandlerOptions = {}): Handlers<typeof eventsService> {
  const subscribeTimeout = options.subscribeTimeout ?? 30_000;
  return {
    Publish: async (req, ctx) => ({
      event: await events.publish(req.topic, req.payload, { namespace: namespaceFor(ctx, req.namespace), metadata: req.metadata, id: req.id }),
    }),
    Read: (req, ctx) => events.read(req.topic, { namespace: namespaceFor(ctx, req.namespace), offset: req.offset, from: req.from, limit: req.limit }),
    Topics: async (req, ctx) => ({ topics: await events.topics({ namespace: namespaceFor(ctx, req.namespace) }) }),
    Groups: async (req, ctx) => ({ groups: await events.groups(req.topic, { namespace: namespaceFor(ctx, req.namespace) }) }),
    DeleteGroup: async (req, ctx) => {
      await events.deleteGroup(req.topic, req.group, { namespace: namespaceFor(ctx, req.namespace) });
      return {};
    },
    SetRetention: async (req, ctx) => ({ topic: await events.setRetention(req.topic, req.retention, { namespace: namespaceFor(ctx, req.namespace) }) }),
    Consume: (requests, ctx) => consumeStream(events, requests, ctx, subscribeTimeout),
  };
}

type Message = ConsumeRequest;

/** The first message of a stream, within `ms`. */
async function first(it: AsyncIterator<Message>, ctx: Context, ms: number): Promise<Message> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const r = await Promise.race([
      it.next(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(errors.BadRequest(EVENTS_ERROR_ID, `send {subscribe: {...}} within ${ms} ms of opening Consume`)), ms);
      }),
      new Promise<never>((_, reject) => ctx.signal.addEventListener('abort', () => reject(errors.Cancelled(EVENTS_ERROR_ID, 'stream closed')), { once: true })),
    ]);
    if (r.done) throw errors.BadRequest(EVENTS_ERROR_ID, 'the Consume stream ended before its subscribe message');
    return r.value;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * One consumer over a bidirectional stream: deliveries go out as the client's credit
 * allows, settles are answered (by seq) once durable, and when the stream ends for any
 * reason the consumer closes, its unsettled deliveries going back to the group at once.
 */
async function* consumeStream(events: ServedEvents, requests: AsyncIterable<Message>, ctx: Context, subscribeTimeout: number): AsyncGenerator<ConsumeResponse> {
  const it = requests[Symbol.asyncIterator]();
  const opening = await first(it, ctx, subscribeTimeout);
  const sub = opening.subscribe;
  if (!sub) throw errors.BadRequest(EVENTS_ERROR_ID, 'the first message of Consume must be {subscribe: {...}}');
  if (opening.ack !== undefined || opening.nack !== undefined || opening.release !== undefined) {
    throw errors.BadRequest(EVENTS_ERROR_ID, 'the subscribe message cannot also ack, nack or release');
  }
  const namespace = namespaceFor(ctx, sub.namespace);
  const consumer = await events.consume(sub.topic, { ...sub, namespace });

  /** answers and deliveries, in the order they are sent */
  const out: ConsumeResponse[] = [{ subscribed: { topic: consumer.topic, group: consumer.group, consumer: consumer.id } }];
  // without credit in the subscribe message, deliveries flow as maxInFlight allows
  let credit = opening.credit ?? Infinity;
  let pulling = false;
  let requestsEnded = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const settling = new Set<Promise<void>>();
  const onAbort = () => notify();
  ctx.signal.addEventListener('abort', onAbort, { once: true });

  const stopped = () => requestsEnded || failure !== undefined || ctx.signal.aborted;

  const pull = () => {
    if (pulling || credit <= 0 || stopped()) return;
    pulling = true;
    consumer.next().then(
      (r) => {
        pulling = false;
        if (r.done) {
          failure ??= errors.ServiceUnavailable(EVENTS_ERROR_ID, 'the events engine closed');
        } else if (stopped()) {
          // the client is going: what it never saw goes back uncounted
          void consumer.release(r.value.id).catch(() => undefined);
        } else {
          credit--;
          const d = r.value;
          out.push({ delivery: { id: d.id, attempt: d.attempt, deadline: d.deadline, event: d.event } });
        }
        notify();
      },
      (err: unknown) => {
        pulling = false;
        failure ??= err;
        notify();
      },
    );
  };

  /** Applies one settle; its answer is queued once the engine made it durable. */
  const settle = (seq: number | undefined, run: () => Promise<void>) => {
    let p: Promise<void>;
    try {
      p = run();
    } catch (err) {
      p = Promise.reject(err as Error);
    }
    const answered = p.then(
      () => {
        if (seq !== undefined) out.push({ seq });
      },
      (err: unknown) => {
        const e = err instanceof MicroError ? err : errors.InternalServerError(EVENTS_ERROR_ID, 'settle failed');
        out.push(seq === undefined ? { error: e.toJSON() } : { seq, error: e.toJSON() });
      },
    );
    const tracked = answered.finally(() => {
      settling.delete(tracked);
      notify();
    });
    settling.add(tracked);
  };

  const handle = (m: Message) => {
    if (m.subscribe !== undefined) throw errors.BadRequest(EVENTS_ERROR_ID, 'subscribe may only be the first message of Consume');
    const actions = [m.ack, m.nack, m.release].filter((x) => x !== undefined).length;
    if (actions > 1) throw errors.BadRequest(EVENTS_ERROR_ID, 'a message carries one of ack, nack or release');
    if ((m.delay !== undefined || m.reason !== undefined) && m.nack === undefined) throw errors.BadRequest(EVENTS_ERROR_ID, 'delay and reason go with nack');
    if (actions === 0 && m.credit === undefined) throw errors.BadRequest(EVENTS_ERROR_ID, 'a Consume message carries credit, ack, nack or release');
    if (m.credit !== undefined) credit = Math.min(credit + m.credit, Number.MAX_SAFE_INTEGER);
    const ack = m.ack;
    const nack = m.nack;
    const release = m.release;
    if (ack !== undefined) settle(m.seq, () => consumer.ack(ack));
    else if (nack !== undefined) settle(m.seq, () => consumer.nack(nack, m.delay, m.reason));
    else if (release !== undefined) settle(m.seq, async () => void (await Promise.all(release.map((id) => consumer.release(id)))));
  };

  // the client's messages, read beside the deliveries going out
  const reading = (async () => {
    try {
      for (;;) {
        const r = await it.next();
        if (r.done) break;
        handle(r.value);
        notify();
      }
    } catch (err) {
      // a bad message ends the stream with its error (a lost connection aborts ctx)
      failure ??= err;
    }
    requestsEnded = true;
    notify();
  })();

  try {
    for (;;) {
      if (ctx.signal.aborted) return;
      if (requestsEnded) {
        // the client closed its side: what it never saw goes back uncounted
        for (let i = out.length - 1; i >= 0; i--) {
          const d = out[i]?.delivery;
          if (d) {
            out.splice(i, 1);
            void consumer.release(d.id).catch(() => undefined);
          }
        }
      }
      pull();
      const next = out.shift();
      if (next) {
        yield next;
        continue;
      }
      if (failure !== undefined) throw failure;
      // answer what the client settled, then end
      if (requestsEnded && settling.size === 0) return;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
    await consumer.close(ctx.signal.aborted ? 'the consumer went away (its stream was cut)' : 'the consumer closed before acknowledging');
    void reading;
  }
}
