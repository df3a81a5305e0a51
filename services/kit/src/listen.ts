import { errors, type Broker, type Context, type Subscription } from '@micro/sdk';

/**
 * A server stream's view of a broker topic in the caller's namespace: what is published
 * there from the moment the subscription is in place (`ready`) until the call ends
 * (`ctx.signal`) or `close()`. Fire and forget, as the broker is: a listener that cannot
 * keep up loses the oldest messages beyond `MAX_QUEUED` rather than holding memory
 * without bound, and open listeners are bounded per tenant (a 429 beyond).
 */
export interface Listening<T> extends AsyncIterable<T> {
  /** resolves once messages published from now on reach this listener */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

/** Messages a slow listener may have waiting before it loses the oldest. */
export const MAX_QUEUED = 1_000;
/** Listeners one tenant may have open at once in this process (its Events and Join streams). */
export const MAX_LISTENERS = 100;

const open = new Map<string, number>();

function admit(tenant: string): () => void {
  const n = open.get(tenant) ?? 0;
  if (n >= MAX_LISTENERS) throw errors.TooManyRequests('micro.services', `${MAX_LISTENERS} streams of this account are open already: close some first`);
  open.set(tenant, n + 1);
  let done = false;
  return () => {
    if (done) return;
    done = true;
    const left = (open.get(tenant) ?? 1) - 1;
    if (left === 0) open.delete(tenant);
    else open.set(tenant, left);
  };
}

export function listen<T>(broker: Broker, topic: string, ctx: Pick<Context, 'tenant' | 'signal'>): Listening<T> {
  const release = admit(ctx.tenant);
  const queued: T[] = [];
  let wake: (() => void) | undefined;
  let closed = false;
  const stop = () => {
    closed = true;
    wake?.();
  };
  ctx.signal.addEventListener('abort', stop, { once: true });
  const subscribing: Promise<Subscription> = broker.subscribe(
    topic,
    (message) => {
      if (queued.length >= MAX_QUEUED) queued.shift();
      queued.push(message.body as T);
      wake?.();
    },
    { namespace: ctx.tenant },
  );
  const close = async () => {
    stop();
    release();
    ctx.signal.removeEventListener('abort', stop);
    await subscribing.then((s) => s.unsubscribe()).catch(() => undefined);
  };
  async function* messages(): AsyncGenerator<T> {
    try {
      await subscribing;
      while (!closed) {
        if (queued.length > 0) {
          yield queued.shift() as T;
          continue;
        }
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      await close();
    }
  }
  const ready = subscribing.then(() => undefined);
  // a listener given up before it was ready must not crash the process with its rejection
  ready.catch(() => release());
  return { ready, close, [Symbol.asyncIterator]: messages };
}
