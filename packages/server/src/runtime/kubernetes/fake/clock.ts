/**
 * The fake's time: real wall-clock timestamps, and durations of objects' specs (probe
 * periods, grace periods, deadlines, back-offs) scaled by `secondMs` so tests run quickly.
 * Every timer is kept so `close()` leaves none behind.
 */
export class Clock {
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  constructor(
    /** how many milliseconds a second of a spec lasts */
    readonly secondMs: number,
  ) {}

  /** a duration of `seconds` of a spec, in real milliseconds */
  seconds(seconds: number): number {
    return Math.max(0, seconds * this.secondMs);
  }

  now(): number {
    return Date.now();
  }

  /** runs `fn` after `ms`; returns a function cancelling it */
  after(ms: number, fn: () => void): () => void {
    if (this.closed) return () => {};
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, Math.max(0, ms));
    this.timers.add(t);
    return () => {
      clearTimeout(t);
      this.timers.delete(t);
    };
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

/**
 * A controller's work queue: keys to reconcile, each at most once at a time, coalesced
 * (adding a key already waiting does nothing, unless it asks for it sooner).
 */
export class Queue {
  private readonly due = new Map<string, { at: number; cancel: () => void }>();
  private readonly running = new Set<string>();
  private readonly again = new Set<string>();

  constructor(
    private readonly clock: Clock,
    private readonly work: (key: string) => void,
    private readonly onError: (key: string, err: unknown) => void,
  ) {}

  add(key: string, delayMs = 0): void {
    const at = this.clock.now() + delayMs;
    const existing = this.due.get(key);
    if (existing && existing.at <= at) return;
    existing?.cancel();
    const cancel = this.clock.after(delayMs, () => this.run(key));
    this.due.set(key, { at, cancel });
  }

  private run(key: string): void {
    this.due.delete(key);
    if (this.running.has(key)) {
      this.again.add(key);
      return;
    }
    this.running.add(key);
    try {
      this.work(key);
    } catch (err) {
      this.onError(key, err);
    } finally {
      this.running.delete(key);
      if (this.again.delete(key)) this.add(key);
    }
  }
}
