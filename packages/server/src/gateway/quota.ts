import { MicroError } from '@micro/sdk';
import { quotaExceeded, QUOTA_ERROR_ID, UNLIMITED_NAMESPACE } from '../quota/limits.js';
import { RateLimiter, type Limiter } from './ratelimit.js';

/**
 * A namespace's `requestsPerSecond` at the gateway: a token bucket per namespace of that
 * rate, holding one second of calls (burst = the rate), in the gateway's limiter: in
 * memory on one node, in Redis on the nats profile, so the limit holds across nodes.
 *
 * Counted: the calls of the namespace's own accounts. Not counted: anonymous calls (to
 * its public endpoints) and calls of admins of micro acting in it — a stranger must not
 * be able to spend a tenant's rate; they are bounded by the per-caller limits instead.
 */
export interface NamespaceRateOptions {
  /** the namespace's requestsPerSecond (null: unlimited); e.g. `(ns) => quotas.limits(ns).then((l) => l.requestsPerSecond)` */
  lookup(namespace: string): Promise<number | null>;
  /** ms a namespace's limit is kept before it is read again (default 5,000) */
  ttl?: number;
  /** the most namespaces whose limits are kept (default 10,000) */
  maxNamespaces?: number;
}

/** A rate refusal: 429, with the seconds to wait for Retry-After. */
export class RateLimited extends MicroError {
  constructor(
    readonly retryAfter: number,
    id: string,
    detail = `rate limit exceeded; retry in ${retryAfter} s`,
  ) {
    super(id, 429, detail);
  }
}

interface Known {
  max: Promise<number | null>;
  at: number;
}

/**
 * A namespace's limit as the gateway knows it: read from the quotas at most every `ttl`
 * ms (a Set applies within it); quotas out of reach let calls go (null), and the next call
 * asks again.
 */
export class KnownLimits {
  private readonly ttl: number;
  private readonly maxNamespaces: number;
  private readonly known = new Map<string, Known>();

  constructor(private readonly options: NamespaceRateOptions) {
    this.ttl = options.ttl ?? 5_000;
    this.maxNamespaces = options.maxNamespaces ?? 10_000;
  }

  of(namespace: string): Promise<number | null> {
    const now = Date.now();
    const known = this.known.get(namespace);
    if (known && now - known.at < this.ttl) return known.max;
    if (this.known.size >= this.maxNamespaces) this.known.clear();
    const max = this.options.lookup(namespace).catch(() => {
      this.known.delete(namespace);
      return null;
    });
    this.known.set(namespace, { max, at: now });
    return max;
  }
}

export class NamespaceRates {
  private readonly limits: KnownLimits;
  private readonly limiter: Limiter & Required<Pick<Limiter, 'takeAt'>>;

  constructor(
    options: NamespaceRateOptions,
    /** the gateway's limiter when it takes rates of its own (both of ours do), else one in memory */
    limiter?: Limiter,
  ) {
    this.limits = new KnownLimits(options);
    this.limiter = limiter?.takeAt ? (limiter as Limiter & Required<Pick<Limiter, 'takeAt'>>) : new RateLimiter();
  }

  /**
   * Lets a call of `namespace` go, or throws: 429 with Retry-After when its rate is used up
   * (waiting helps), 403 when its limit is 0 (waiting does not).
   */
  async admit(namespace: string): Promise<void> {
    if (namespace === UNLIMITED_NAMESPACE) return;
    const max = await this.limits.of(namespace);
    if (max === null) return;
    if (max === 0) throw quotaExceeded('requestsPerSecond', 0, 0, namespace);
    let wait = this.limiter.takeAt(`ns:${namespace}`, max, max);
    if (typeof wait !== 'number') wait = await wait;
    if (wait > 0) throw new RateLimited(wait, QUOTA_ERROR_ID, `${quotaExceeded('requestsPerSecond', max, max, namespace).detail}; retry in ${wait} s`);
  }
}
