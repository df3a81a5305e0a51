import { Home } from './config.js';
import { Printer, parseOutputFormat, type Writer } from './output.js';

/** What every command is given: the home, and where to read and write. */
export interface Io {
  stdout: Writer;
  stderr: Writer;
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
}

export class CliContext {
  constructor(
    readonly home: Home = new Home(),
    readonly io: Io = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin },
  ) {}

  /** A printer for the value of `--output` (text when absent). */
  printer(output?: string): Printer {
    return new Printer(parseOutputFormat(output), this.io.stdout, this.io.stderr);
  }
}
