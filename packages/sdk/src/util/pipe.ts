/**
 * A bounded async queue: the producer awaits `push` while the queue is full, the
 * consumer iterates with for-await. It carries stream messages inside a process and is
 * the receiving buffer of network streams, which is where backpressure comes from: a
 * consumer that stops reading stops the producer (locally by the awaited push, remotely
 * by withholding credit, see the `onConsume` hook).
 */
export class Pipe<T> implements AsyncIterableIterator<T> {
  private readonly items: T[] = [];
  private head = 0;
  private ended = false;
  private failure: unknown = undefined;
  private failed = false;
  private waitingConsumer: ((r: IteratorResult<T>) => void) | null = null;
  private waitingConsumerReject: ((err: unknown) => void) | null = null;
  private waitingProducers: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];

  /**
   * @param capacity how many items may wait before `push` blocks
   * @param onConsume called each time the consumer takes an item (credit for the peer)
   * @param onReturn called once when the consumer stops early (break / return)
   */
  constructor(
    private readonly capacity: number,
    private readonly onConsume?: (item: T) => void,
    private readonly onReturn?: () => void,
  ) {}

  get size(): number {
    return this.items.length - this.head;
  }

  get closed(): boolean {
    return this.ended || this.failed;
  }

  /** Adds an item, waiting while the queue is full. Rejects if the pipe was closed. */
  push(item: T): Promise<void> {
    if (this.failed) return Promise.reject(this.failure);
    if (this.ended) return Promise.reject(new Error('pipe is closed'));
    if (this.waitingConsumer) {
      const resolve = this.waitingConsumer;
      this.waitingConsumer = this.waitingConsumerReject = null;
      this.onConsume?.(item);
      resolve({ value: item, done: false });
      return Promise.resolve();
    }
    this.items.push(item);
    if (this.size <= this.capacity) return Promise.resolve();
    return new Promise((resolve, reject) => this.waitingProducers.push({ resolve, reject }));
  }

  /** Adds an item without waiting (the sender already respects a window); false when closed. */
  offer(item: T): boolean {
    if (this.closed) return false;
    if (this.waitingConsumer) {
      const resolve = this.waitingConsumer;
      this.waitingConsumer = this.waitingConsumerReject = null;
      this.onConsume?.(item);
      resolve({ value: item, done: false });
      return true;
    }
    this.items.push(item);
    return true;
  }

  /** No more items: the consumer sees the end after the queued ones. */
  end(): void {
    if (this.closed) return;
    this.ended = true;
    if (this.waitingConsumer && this.size === 0) {
      const resolve = this.waitingConsumer;
      this.waitingConsumer = this.waitingConsumerReject = null;
      resolve({ value: undefined, done: true });
    }
    this.releaseProducers(new Error('pipe is closed'));
  }

  /** Ends the pipe with an error: the consumer throws it once the queued items are read. */
  fail(err: unknown): void {
    if (this.closed) return;
    this.failed = true;
    this.failure = err;
    if (this.waitingConsumerReject && this.size === 0) {
      const reject = this.waitingConsumerReject;
      this.waitingConsumer = this.waitingConsumerReject = null;
      reject(err);
    }
    this.releaseProducers(err);
  }

  next(): Promise<IteratorResult<T>> {
    if (this.size > 0) {
      const value = this.items[this.head] as T;
      this.items[this.head] = undefined as T;
      this.head++;
      if (this.head > 1024 && this.head * 2 > this.items.length) {
        this.items.splice(0, this.head);
        this.head = 0;
      }
      const producer = this.waitingProducers.shift();
      producer?.resolve();
      this.onConsume?.(value);
      return Promise.resolve({ value, done: false });
    }
    if (this.failed) return Promise.reject(this.failure);
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waitingConsumer = resolve;
      this.waitingConsumerReject = reject;
    });
  }

  /** The consumer stops early: drop what is queued and tell the producer side. */
  return(): Promise<IteratorResult<T>> {
    const wasOpen = !this.closed;
    this.items.length = 0;
    this.head = 0;
    this.ended = true;
    this.releaseProducers(new Error('pipe is closed'));
    if (wasOpen) this.onReturn?.();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private releaseProducers(err: unknown): void {
    const producers = this.waitingProducers;
    this.waitingProducers = [];
    for (const p of producers) p.reject(err);
  }
}
