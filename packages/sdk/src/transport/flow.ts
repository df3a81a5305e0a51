import { BadRequest } from '../errors/errors.js';
import { Pipe } from '../util/pipe.js';
import { INITIAL_WINDOW } from './frame.js';

/**
 * Flow control of one direction of a network stream, counted in bytes as in HTTP/2.
 * The receiver starts with INITIAL_WINDOW bytes of credit for the sender and grants
 * more as its consumer reads; the sender waits when its credit runs out. A sender may
 * overdraw by one message, so a message larger than the window still goes through.
 */

/** The receiving side: buffers decoded messages until the consumer reads them. */
export class Inbox implements AsyncIterableIterator<unknown> {
  private readonly pipe: Pipe<{ value: unknown; size: number }>;
  private buffered = 0;
  private ungranted = 0;

  constructor(
    private readonly maxFrame: number,
    private readonly grant: (bytes: number) => void,
    onReturn: () => void,
  ) {
    this.pipe = new Pipe(Number.MAX_SAFE_INTEGER, (item) => this.consumed(item.size), onReturn);
  }

  /** Queues a message; false when the sender ignored flow control (a protocol error). */
  deliver(value: unknown, size: number): boolean {
    this.buffered += size;
    if (this.buffered > INITIAL_WINDOW + this.maxFrame) return false;
    this.pipe.offer({ value, size });
    return true;
  }

  end(): void {
    this.pipe.end();
  }

  fail(err: unknown): void {
    this.pipe.fail(err);
  }

  get closed(): boolean {
    return this.pipe.closed;
  }

  async next(): Promise<IteratorResult<unknown>> {
    const r = await this.pipe.next();
    return r.done ? { value: undefined, done: true } : { value: r.value.value, done: false };
  }

  async return(): Promise<IteratorResult<unknown>> {
    await this.pipe.return();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private consumed(size: number): void {
    this.buffered -= size;
    this.ungranted += size;
    if (this.ungranted >= INITIAL_WINDOW / 2) {
      const bytes = this.ungranted;
      this.ungranted = 0;
      this.grant(bytes);
    }
  }
}

/** The sending side: waits for credit before each message. */
export class Outbox {
  private credit = INITIAL_WINDOW;
  private waiter: { resolve: () => void; reject: (err: unknown) => void } | null = null;
  private failure: unknown = null;

  /** Resolves when a message may be sent; the caller then sends `size` bytes. */
  reserve(size: number): Promise<void> | undefined {
    if (this.failure) return Promise.reject(this.failure);
    if (this.credit > 0) {
      this.credit -= size;
      return undefined;
    }
    return new Promise<void>((resolve, reject) => {
      this.waiter = {
        resolve: () => {
          this.credit -= size;
          resolve();
        },
        reject,
      };
    });
  }

  addCredit(bytes: number): void {
    this.credit += bytes;
    if (this.credit > 0 && this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve();
    }
  }

  /** No more sending: whoever waits for credit gets the error. */
  close(err: unknown = BadRequest('micro.transport', 'stream closed')): void {
    if (this.failure) return;
    this.failure = err;
    const w = this.waiter;
    this.waiter = null;
    w?.reject(err);
  }
}
