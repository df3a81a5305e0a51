import type { MaybePromise } from './storage.js';

/** the most keys remembered between two writes; past it they are written at once */
const MAX_PENDING = 10_000;

/**
 * When each API key was last used, kept off the hot path: a use is remembered in memory
 * (a map set, no write), and what was remembered is written every `every` ms (default a
 * minute) in one batch, and when the storage closes. So a key is written at most once a
 * minute by each node, whatever its traffic; what a node saw shows in its own listings at
 * once (`seen`), in the others' within a minute; a node that dies without closing loses
 * at most its last minute of them. A batch that fails (the database away) is kept and
 * tried again at the next tick, never with an older time over a newer one.
 */
export class KeyUsage {
  private pending = new Map<string, number>();
  /** the batch being written (async storages): still what listings should see */
  private writing = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly write: (uses: Array<[keyId: string, at: number]>) => MaybePromise<void>,
    /** ms between two writes (default 60,000) */
    private readonly every = 60_000,
  ) {}

  /** A use of a key, now. */
  touch(keyId: string, at = Date.now()): void {
    if (this.closed) return;
    this.pending.set(keyId, at);
    if (this.pending.size >= MAX_PENDING) this.schedule(0);
    else this.schedule(this.every);
  }

  /** The last use of a key this node saw and has not written yet. */
  seen(keyId: string): number | undefined {
    const a = this.pending.get(keyId);
    const b = this.writing.get(keyId);
    return a === undefined ? b : b === undefined ? a : Math.max(a, b);
  }

  /** Writes what was remembered (a no-op when nothing was). */
  flush(): MaybePromise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    this.writing = batch;
    let result: MaybePromise<void>;
    try {
      result = this.write([...batch]);
    } catch {
      return this.keep(batch);
    }
    if (!(result instanceof Promise)) {
      this.writing = new Map();
      return;
    }
    return result.then(
      () => {
        if (this.writing === batch) this.writing = new Map();
      },
      () => this.keep(batch),
    );
  }

  /** The last write, and no more remembering. */
  close(): MaybePromise<void> {
    const last = this.flush();
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    return last;
  }

  /** A batch that could not be written goes back, under any newer use since. */
  private keep(batch: Map<string, number>): void {
    if (this.writing === batch) this.writing = new Map();
    for (const [id, at] of batch) if (!((this.pending.get(id) ?? -1) >= at)) this.pending.set(id, at);
    if (!this.closed) this.schedule(this.every);
  }

  private schedule(ms: number): void {
    if (this.timer && ms > 0) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void Promise.resolve(this.flush()).catch(() => undefined), ms);
    this.timer.unref();
  }
}
