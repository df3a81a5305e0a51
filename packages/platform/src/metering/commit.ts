/**
 * Group commit: what is added in one tick of the event loop is written in one batch (one
 * transaction, one fsync), and whoever added an entry waits for its batch. What is added
 * while a batch is being written (`write`'s promise: PostgreSQL's commit, SQLite's flush)
 * goes out as one batch when that one is done, so the batches grow with the load and the
 * cost of a commit is shared by all its entries.
 */
export class GroupCommit<E> {
  private pending: E[] = [];
  private scheduled = false;
  private running: Promise<void> | undefined;

  /** `write` settles each entry itself (resolves or rejects what waits on it) and never throws */
  constructor(private readonly write: (batch: E[]) => void | Promise<void>) {}

  add(entry: E): void {
    this.pending.push(entry);
    this.schedule();
  }

  /** Resolves once everything added so far has been written. */
  async drain(): Promise<void> {
    while (this.pending.length > 0 || this.running || this.scheduled) {
      await (this.running ?? new Promise<void>((resolve) => setImmediate(resolve)));
    }
  }

  private schedule(): void {
    if (this.scheduled || this.running) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    const written = this.write(batch);
    if (!(written instanceof Promise)) return;
    this.running = written.finally(() => {
      this.running = undefined;
      if (this.pending.length > 0) this.schedule();
    });
  }
}
