import type { ServerResponse } from 'node:http';

/**
 * A container's output: stdout and stderr interleaved by line, each with the time it was
 * written, bounded (the oldest lines go first), followed by readers until the container
 * instance ends.
 */

interface Line {
  at: number;
  text: string;
}

export class LogBuffer {
  private readonly lines: Line[] = [];
  private bytes = 0;
  private partial = '';
  private ended = false;
  private readonly followers = new Set<(line: Line | null) => void>();

  constructor(private readonly max: number) {}

  write(chunk: Buffer | string): void {
    if (this.ended) return;
    const text = this.partial + chunk.toString();
    const parts = text.split('\n');
    this.partial = parts.pop() ?? '';
    if (this.partial.length > this.max) {
      parts.push(this.partial);
      this.partial = '';
    }
    for (const p of parts) this.push(p);
  }

  private push(text: string): void {
    const line = { at: Date.now(), text };
    this.lines.push(line);
    this.bytes += text.length + 1;
    while (this.bytes > this.max && this.lines.length > 1) this.bytes -= (this.lines.shift() as Line).text.length + 1;
    for (const f of this.followers) f(line);
  }

  /** the last `lines` lines, at most their last `bytes` bytes */
  tail(lines: number, bytes: number): string {
    const text = this.lines
      .slice(-lines)
      .map((l) => `${l.text}\n`)
      .join('');
    const buf = Buffer.from(text);
    return buf.length <= bytes ? text : buf.subarray(buf.length - bytes).toString();
  }

  /** the container instance ended: no more lines, followers are done */
  end(): void {
    if (this.ended) return;
    if (this.partial) this.push(this.partial);
    this.partial = '';
    this.ended = true;
    for (const f of this.followers) f(null);
    this.followers.clear();
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** writes the lines asked for to `res`, then (follow) every new one until the end */
  serve(res: ServerResponse, o: { follow: boolean; tailLines?: number; limitBytes?: number; sinceMs?: number; timestamps: boolean }): void {
    let budget = o.limitBytes ?? Infinity;
    const format = (l: Line) => `${o.timestamps ? `${new Date(l.at).toISOString().replace(/Z$/, '000000Z')} ` : ''}${l.text}\n`;
    const emit = (l: Line): boolean => {
      if (budget <= 0) return false;
      const s = format(l);
      const out = Buffer.byteLength(s) > budget ? Buffer.from(s).subarray(0, budget).toString() : s;
      budget -= Buffer.byteLength(out);
      res.write(out);
      return budget > 0;
    };
    let past = this.lines.filter((l) => o.sinceMs === undefined || l.at >= o.sinceMs);
    if (o.tailLines !== undefined) past = o.tailLines === 0 ? [] : past.slice(-o.tailLines);
    for (const l of past) if (!emit(l)) return void res.end();
    if (!o.follow || this.ended) return void res.end();
    const follower = (l: Line | null) => {
      if (l === null || !emit(l)) {
        this.followers.delete(follower);
        if (!res.writableEnded) res.end();
      }
    };
    this.followers.add(follower);
    res.on('close', () => this.followers.delete(follower));
  }
}
