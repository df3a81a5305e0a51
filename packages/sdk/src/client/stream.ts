import { Cancelled, MicroError, toMicroError } from '../errors/errors.js';

/**
 * The responses of a streaming call: an async iterator (use for-await) that can be
 * cancelled. Breaking out of the loop cancels the call on the server too.
 */
export interface ResponseStream<T> extends AsyncIterableIterator<T> {
  /** Stops the stream on both sides; a pending `next()` rejects with a 499. */
  cancel(reason?: string): void;
}

type Source = AsyncIterator<unknown> | Iterator<unknown>;

/**
 * A ResponseStream over a source that is opened on first read (opening may need a
 * registry lookup, which is async, while the call returns the stream at once).
 * A failure (deadline, cancel, lost connection) rejects the read in progress at once,
 * without waiting for the source.
 */
export class LazyResponseStream<T> implements ResponseStream<T> {
  private source: Source | undefined;
  private opening: Promise<Source> | undefined;
  private failure: MicroError | undefined;
  private failed: Promise<never> | undefined;
  private rejectFailed: ((err: MicroError) => void) | undefined;
  private finished = false;

  constructor(
    private readonly open: () => Promise<Source> | Source,
    /** told once when the stream ends early, to cancel the remote side */
    private readonly onCancel: (err: MicroError) => void,
    /** told once when the stream is over, however it ended */
    private readonly onFinish: () => void,
    private readonly service: string,
  ) {}

  async next(): Promise<IteratorResult<T>> {
    if (this.finished) {
      if (this.failure) throw this.failure;
      return { value: undefined, done: true };
    }
    try {
      if (!this.source) {
        this.opening ??= Promise.resolve(this.open());
        this.source = await this.race(this.opening);
      }
      const result = await this.race(Promise.resolve(this.source.next()));
      if (result.done) this.finish();
      return result as IteratorResult<T>;
    } catch (err) {
      const e = this.failure ?? toMicroError(err, this.service);
      this.fail(e);
      throw e;
    }
  }

  async return(): Promise<IteratorResult<T>> {
    if (!this.finished) this.fail(Cancelled(this.service, 'stream closed by the caller'));
    return { value: undefined, done: true };
  }

  cancel(reason = 'cancelled by the caller'): void {
    if (!this.finished) this.fail(Cancelled(this.service, reason));
  }

  /** Ends the stream with an error (deadline, cancel): the read in progress rejects. */
  fail(err: MicroError): void {
    if (this.finished) return;
    this.failure = err;
    this.finish();
    this.rejectFailed?.(err);
    this.onCancel(err);
    // end the source too, also when it is still being opened
    const closeSource = (source: Source) => {
      if (source.return) Promise.resolve(source.return()).catch(() => undefined);
    };
    if (this.source) closeSource(this.source);
    else this.opening?.then(closeSource, () => undefined);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.onFinish();
  }

  private race<V>(p: Promise<V>): Promise<V> {
    if (this.failure) return Promise.reject(this.failure);
    this.failed ??= new Promise<never>((_, reject) => (this.rejectFailed = reject));
    this.failed.catch(() => undefined);
    return Promise.race([p, this.failed]);
  }
}
