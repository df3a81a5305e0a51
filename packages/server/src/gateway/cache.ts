/**
 * A map of maps (e.g. namespace → service → value) that holds at most `max` values: past
 * that it starts again empty, which costs a few misses and never grows memory. The
 * gateway keeps its endpoints and its scoped tokens in these; a hit is two map lookups.
 */
export class TwoKeyCache<V> {
  private readonly outer = new Map<string, Map<string, V>>();
  private count = 0;

  constructor(private readonly max: number) {}

  get(a: string, b: string): V | undefined {
    return this.outer.get(a)?.get(b);
  }

  set(a: string, b: string, value: V): void {
    if (this.count >= this.max) this.clear();
    let inner = this.outer.get(a);
    if (!inner) this.outer.set(a, (inner = new Map()));
    if (!inner.has(b)) this.count++;
    inner.set(b, value);
  }

  delete(a: string, b: string): void {
    if (this.outer.get(a)?.delete(b)) this.count--;
  }

  clear(): void {
    this.outer.clear();
    this.count = 0;
  }
}
