/*
 * A bounded queue read with for-await: what watchers hand out (registry watches, config
 * watches, leadership changes in sync). The writer pushes as things happen and never
 * waits for the reader, so a reader that stops reading must not make the writer grow
 * without bound: a reader that falls more than `limit` items behind is dropped, and its
 * next read throws `overflow()` so that it knows it missed changes (it should read again
 * and watch again).
 */

interface Waiter<T> {
  resolve(result: IteratorResult<T>): void;
  reject(err: unknown): void;
}

export class BoundedQueue<T> implements AsyncIterableIterator<T> {
  private queue: T[] = [];
  private head = 0;
  private waiters: Waiter<T>[] = [];
  private done = false;
  private error: unknown;

  /** `onEnd` runs once, when the queue ends for any reason (its writer forgets it). */
  constructor(
    private readonly limit: number,
    private readonly overflow: () => Error,
    private readonly onEnd: () => void = () => undefined,
  ) {}

  get ended(): boolean {
    return this.done;
  }

  push(item: T): void {
    if (this.done) return;
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter.resolve({ value: item, done: false });
      return;
    }
    if (this.queue.length - this.head >= this.limit) {
      this.fail(this.overflow());
      return;
    }
    this.queue.push(item);
  }

  /** Ends with an error that the reader's next read throws (once). */
  fail(err: unknown): void {
    if (this.done) return;
    this.finish();
    const waiters = this.waiters;
    this.waiters = [];
    if (waiters.length === 0) this.error = err;
    for (const w of waiters) w.reject(err);
  }

  /** Ends: the reader's loop finishes; what is queued is dropped. */
  stop(): void {
    if (this.done) return;
    this.finish();
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.resolve({ value: undefined, done: true });
  }

  next(): Promise<IteratorResult<T>> {
    if (this.head < this.queue.length) {
      const value = this.queue[this.head] as T;
      this.queue[this.head++] = undefined as T;
      if (this.head >= 256 && this.head * 2 >= this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.error !== undefined) {
      const err = this.error;
      this.error = undefined;
      return Promise.reject(err);
    }
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  return(): Promise<IteratorResult<T>> {
    this.stop();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }

  private finish(): void {
    this.done = true;
    this.queue = [];
    this.head = 0;
    this.onEnd();
  }
}
