import { StringDecoder } from 'node:string_decoder';

/** The longest line kept from a process's output; longer ones are cut (16 KiB). */
export const MAX_LINE = 16 * 1024;
const TRUNCATED = ' …[truncated]';

/**
 * Splits a byte stream (a child's stdout or stderr) into lines. A line longer than
 * `maxLine` is cut and the rest of it, up to its newline, dropped: a process printing a
 * megabyte without a newline must not make the runtime hold a megabyte per instance.
 */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private partial = '';
  private skipping = false;

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxLine = MAX_LINE,
  ) {}

  push(chunk: Buffer | string): void {
    let text = typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n')) {
      const piece = text.slice(0, nl);
      text = text.slice(nl + 1);
      if (this.skipping) {
        this.skipping = false;
        this.partial = '';
        continue;
      }
      this.emit(this.partial + piece);
      this.partial = '';
    }
    if (this.skipping) return;
    this.partial += text;
    if (this.partial.length > this.maxLine) {
      this.emit(this.partial);
      this.partial = '';
      this.skipping = true;
    }
  }

  /** Emits what is left after the stream ended without a final newline. */
  end(): void {
    const rest = this.partial + this.decoder.end();
    this.partial = '';
    if (rest.length > 0 && !this.skipping) this.emit(rest);
    this.skipping = false;
  }

  private emit(line: string): void {
    if (line.endsWith('\r')) line = line.slice(0, -1);
    this.onLine(line.length > this.maxLine ? line.slice(0, this.maxLine) + TRUNCATED : line);
  }
}

/**
 * Keeps the output of a command within `max` characters: its beginning and its end, which
 * is where compilers (first errors) and npm (final error) say what went wrong.
 */
export class BoundedOutput {
  private head = '';
  private tail = '';
  private dropped = 0;

  constructor(private readonly max = 64 * 1024) {}

  add(line: string): void {
    const text = line + '\n';
    const half = this.max / 2;
    if (this.head.length < half) {
      this.head += text;
      return;
    }
    this.tail += text;
    if (this.tail.length > half) {
      const cut = this.tail.length - half;
      this.dropped += cut;
      this.tail = this.tail.slice(cut);
    }
  }

  toString(): string {
    const middle = this.dropped > 0 ? `\n… ${this.dropped} characters left out …\n` : '';
    return (this.head + middle + this.tail).trim();
  }
}

/** The last `size` lines seen, e.g. of an instance's stderr, to say why it crashed. */
export class Tail {
  private readonly lines: string[] = [];

  constructor(private readonly size = 20) {}

  add(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.size) this.lines.shift();
  }

  get empty(): boolean {
    return this.lines.length === 0;
  }

  toString(): string {
    return this.lines.join('\n');
  }
}
