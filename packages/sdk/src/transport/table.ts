/**
 * The calls in flight on one connection, by id.
 *
 * A plain object rather than a Map: with a hundred calls in flight and ids that only
 * grow, a Map kept about a third of each young generation alive through its rehashed
 * tables, and the garbage collector took half of the caller's busy time; a dictionary
 * object with integer keys keeps almost nothing (measured with --trace-gc-nvp: survival
 * from ~35 % to ~1 %, remote throughput +30 %). See BENCHMARKS.md.
 */
export class CallTable<T> {
  private table: Record<number, T> = Object.create(null) as Record<number, T>;
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(id: number): T | undefined {
    return this.table[id];
  }

  has(id: number): boolean {
    return this.table[id] !== undefined;
  }

  set(id: number, value: T): void {
    if (this.table[id] === undefined) this.count++;
    this.table[id] = value;
  }

  delete(id: number): boolean {
    if (this.table[id] === undefined) return false;
    delete this.table[id];
    this.count--;
    return true;
  }

  /** Every entry, left in the table (a copy: the table may change while it is read). */
  entries(): Array<[number, T]> {
    const entries: Array<[number, T]> = [];
    for (const key of Object.keys(this.table)) entries.push([Number(key), this.table[Number(key)] as T]);
    return entries;
  }

  /** Every entry, taken out of the table at once (when a connection is lost). */
  drain(): Array<[number, T]> {
    const entries: Array<[number, T]> = [];
    for (const key of Object.keys(this.table)) entries.push([Number(key), this.table[Number(key)] as T]);
    this.table = Object.create(null) as Record<number, T>;
    this.count = 0;
    return entries;
  }
}
