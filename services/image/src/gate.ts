import { errors } from '@micro/sdk';

/**
 * How many images this process works on at once. sharp runs each operation on libuv's
 * thread pool (4 threads unless UV_THREADPOOL_SIZE says otherwise), which the rest of
 * micro server shares for files, DNS and password hashing: left unbounded, one tenant's
 * burst of large images would hold every thread and stall everyone's logins and reads.
 * So at most `slots` run at once (the others wait in arrival order), and one tenant has
 * at most `perTenant` running or waiting: past that it is told 429 at once, and the
 * queue stays short for the others.
 */
export class Gate {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly held = new Map<string, number>();

  constructor(
    /** operations at once; default 2, half of libuv's default pool */
    private readonly slots = 2,
    /** one tenant's operations running or waiting; default 8 */
    private readonly perTenant = 8,
  ) {}

  async run<T>(tenant: string, fn: () => Promise<T>): Promise<T> {
    const mine = this.held.get(tenant) ?? 0;
    if (mine >= this.perTenant) throw errors.TooManyRequests('image', `at most ${this.perTenant} images of a namespace are worked on at once: wait for one to finish`);
    this.held.set(tenant, mine + 1);
    try {
      await this.enter();
      try {
        return await fn();
      } finally {
        this.leave();
      }
    } finally {
      const left = (this.held.get(tenant) ?? 1) - 1;
      if (left === 0) this.held.delete(tenant);
      else this.held.set(tenant, left);
    }
  }

  private enter(): Promise<void> | void {
    if (this.running < this.slots) {
      this.running++;
      return;
    }
    return new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  /** Hands the slot to the next waiting, or frees it. */
  private leave(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }
}
