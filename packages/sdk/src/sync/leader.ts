import { MicroError, ServiceUnavailable } from '../errors/errors.js';
import { BoundedQueue } from '../util/bounded-queue.js';
import type { Lease, LockEngine } from './engine.js';
import { SYNC_ERROR_ID, SYNC_LIMITS, type LeadershipChange, type Leader } from './sync.js';

/**
 * A candidate in an election: the leader is whoever holds the lock of the election's
 * name. The candidate campaigns by waiting for the lock (the engine wakes it when the
 * lock is released or its lease passes); once leader it renews every ttl/3.
 *
 * It never believes it leads longer than it may: its deadline is measured on its own
 * clock from when it *sent* the acquire or renew that granted the lease (the lease began
 * after that), less a tenth of the ttl (at most 1 s) for late timers and drifting
 * clocks, and it steps down when the deadline comes without a renewal, even if the
 * renewal is still on its way. The fencing token is what keeps a resource safe from a
 * leader that is late to notice: each leadership has a larger one.
 *
 * The first attempt is made by `start` without waiting, and any error of it but "held"
 * rejects elect(). Later, errors that are the caller's (a 400, a 403) end the election
 * (`error` says which); others (the server away, a timeout) are retried with backoff.
 */

export interface ElectionOptions {
  namespace?: string;
  id: string;
  ttl: number;
}

const BACKOFF_MIN = 200;
const BACKOFF_MAX = 5_000;
const LISTENER_BUFFER = 100;
/** how much earlier than its lease a leader steps down, at most (ms) */
const DEADLINE_MARGIN = 1_000;

function isConflict(err: unknown): boolean {
  return err instanceof MicroError && err.code === 409;
}

/** Errors worth retrying: anything not a refusal of the request itself. */
function isTransient(err: unknown): boolean {
  if (!(err instanceof MicroError)) return true;
  return err.code >= 500 || err.code === 408 || err.code === 429 || err.code === 499;
}

/** Resolves after `ms`, or at once when `signal` aborts; leaves no timer behind. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal.addEventListener('abort', done, { once: true });
  });
}

/** A signal that aborts after `ms` or with `parent`; `done()` clears its timer. */
function deadlineSignal(parent: AbortSignal, ms: number): { signal: AbortSignal; done(): void } {
  const controller = new AbortController();
  const abort = () => controller.abort(ServiceUnavailable(SYNC_ERROR_ID, 'the lease would pass before the renewal came back'));
  const timer = setTimeout(abort, Math.max(0, ms));
  parent.addEventListener('abort', abort, { once: true });
  return {
    signal: controller.signal,
    done: () => {
      clearTimeout(timer);
      parent.removeEventListener('abort', abort);
    },
  };
}

export class Election implements Leader {
  readonly name: string;
  readonly id: string;
  private leading = false;
  private lease: Lease | undefined;
  /** epoch ms on this clock: leader until then at most, unless renewed */
  private deadline = 0;
  private failure: unknown;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private readonly stopping = new AbortController();
  private readonly listeners = new Set<(change: LeadershipChange) => void>();
  private readonly queues = new Set<BoundedQueue<LeadershipChange>>();

  constructor(
    private readonly engine: LockEngine,
    name: string,
    private readonly options: ElectionOptions,
    private readonly onResign: (e: Election) => void,
  ) {
    this.name = name;
    this.id = options.id;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  get token(): number | undefined {
    return this.leading ? this.lease?.token : undefined;
  }

  get error(): unknown {
    return this.failure;
  }

  /** The first attempt, without waiting: an error other than "held" (bad input, another namespace, no server) rejects elect(). */
  async start(): Promise<void> {
    const sent = Date.now();
    try {
      this.take(await this.engine.acquire(this.name, { namespace: this.options.namespace, ttl: this.options.ttl, wait: 0, owner: this.id }), sent);
    } catch (err) {
      if (!isConflict(err)) throw err;
    }
    // run() handles its errors; anything unforeseen ends the election rather than the process
    this.loop = this.run().catch((err: unknown) => this.fail(err));
  }

  onChange(listener: (change: LeadershipChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  [Symbol.asyncIterator](): AsyncIterator<LeadershipChange> {
    const queue = new BoundedQueue<LeadershipChange>(
      LISTENER_BUFFER,
      () => ServiceUnavailable(SYNC_ERROR_ID, `leadership listener dropped: it fell more than ${LISTENER_BUFFER} changes behind`),
      () => this.queues.delete(queue),
    );
    if (this.failure !== undefined) queue.fail(this.failure);
    else if (this.stopped) queue.stop();
    else {
      this.queues.add(queue);
      queue.push(this.state());
    }
    return queue;
  }

  async resign(): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      this.stopping.abort();
    }
    await this.loop?.catch(() => undefined);
    const lease = this.lease;
    this.lease = undefined;
    if (lease) await this.engine.release(this.name, lease.holder, { namespace: this.options.namespace }).catch(() => undefined);
    this.setLeading(false);
    for (const q of [...this.queues]) q.stop();
    this.onResign(this);
  }

  private async run(): Promise<void> {
    let backoff = BACKOFF_MIN;
    const { namespace, ttl } = this.options;
    const signal = this.stopping.signal;
    while (!this.stopped) {
      if (this.lease) {
        await this.hold();
        continue;
      }
      try {
        const lease = await this.engine.acquire(this.name, { namespace, ttl, wait: SYNC_LIMITS.waitMax, owner: this.id, signal });
        if (this.stopped) {
          this.lease = lease; // resign releases it
          break;
        }
        // the wait hid when the lease began: a renewal at once gives a deadline this side can trust
        const sent = Date.now();
        try {
          this.take(await this.engine.renew(this.name, lease.holder, { namespace, ttl, signal }), sent);
        } catch (err) {
          await this.engine.release(this.name, lease.holder, { namespace }).catch(() => undefined);
          throw err;
        }
        backoff = BACKOFF_MIN;
      } catch (err) {
        if (this.stopped) break;
        if (isConflict(err)) continue;
        if (!isTransient(err)) {
          this.fail(err);
          break;
        }
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, BACKOFF_MAX);
      }
    }
  }

  /** Renews every ttl/3 until the lease is lost or the candidate resigns. */
  private async hold(): Promise<void> {
    const { namespace, ttl } = this.options;
    let pause = ttl / 3;
    while (!this.stopped && this.lease) {
      await sleep(Math.min(pause, this.deadline - Date.now()), this.stopping.signal);
      if (this.stopped) return;
      const lease = this.lease;
      const sent = Date.now();
      if (sent >= this.deadline) return this.lose();
      const bounded = deadlineSignal(this.stopping.signal, this.deadline - sent);
      try {
        this.take(await this.engine.renew(this.name, lease.holder, { namespace, ttl, signal: bounded.signal }), sent);
        pause = ttl / 3;
      } catch (err) {
        if (this.stopped) return;
        if (isConflict(err) || !isTransient(err) || Date.now() >= this.deadline) return this.lose();
        // the server is away for now: try again soon, while the lease lasts
        pause = Math.min(ttl / 10, 500);
      } finally {
        bounded.done();
      }
    }
  }

  private take(lease: Lease, sent: number): void {
    this.lease = lease;
    // a little before the lease can pass anywhere: timers fire late, clocks drift
    this.deadline = sent + this.options.ttl - Math.min(this.options.ttl / 10, DEADLINE_MARGIN);
    this.setLeading(true);
  }

  private lose(): void {
    const lease = this.lease;
    this.lease = undefined;
    this.setLeading(false);
    // let the others in at once rather than when the lease passes (best effort)
    if (lease) void this.engine.release(this.name, lease.holder, { namespace: this.options.namespace }).catch(() => undefined);
  }

  private fail(err: unknown): void {
    this.failure = err;
    this.stopped = true;
    this.lose();
    for (const q of [...this.queues]) q.fail(err);
  }

  private state(): LeadershipChange {
    return this.leading && this.lease ? { leader: true, token: this.lease.token } : { leader: false };
  }

  private setLeading(leading: boolean): void {
    if (this.leading === leading) return;
    this.leading = leading;
    const change = this.state();
    for (const listener of [...this.listeners]) {
      try {
        listener(change);
      } catch {
        // a listener's failure is its own; the others are still told
      }
    }
    for (const q of this.queues) q.push(change);
  }
}
