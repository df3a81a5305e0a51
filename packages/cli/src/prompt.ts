import { createInterface } from 'node:readline';
import type { Io } from './context.js';
import { CliError, UsageError } from './output.js';

/**
 * Reading from the terminal and from stdin: prompts (the secret one never echoes),
 * a whole piped input (`--secret -`), and JSON lines for client and bidi streams.
 */

const MAX_INPUT = 1 << 20;

/** Asks a question on a terminal and returns the answer (one line, visible). */
export async function ask(io: Io, question: string): Promise<string> {
  const rl = createInterface({ input: io.stdin, output: io.stderr as NodeJS.WritableStream, terminal: true });
  try {
    return await new Promise<string>((resolve, reject) => {
      rl.question(question, (answer) => resolve(answer.trim()));
      rl.once('close', () => reject(new CliError('cancelled', 130)));
    });
  } finally {
    rl.close();
  }
}

/**
 * Reads a secret from a terminal with echo off: raw mode, one key at a time, so that
 * nothing of it reaches the screen or the scroll-back. Ctrl-C cancels.
 */
export function askSecret(io: Io, question: string): Promise<string> {
  const stdin = io.stdin;
  if (!stdin.isTTY || !stdin.setRawMode) return Promise.reject(new UsageError('cannot prompt for the secret: stdin is not a terminal — give --secret, or --secret - to read it from stdin'));
  io.stderr.write(question);
  stdin.setRawMode(true);
  stdin.resume();
  let secret = '';
  return new Promise<string>((resolve, reject) => {
    const done = (err?: Error) => {
      stdin.removeListener('data', onData);
      stdin.setRawMode?.(false);
      stdin.pause();
      io.stderr.write('\n');
      if (err) reject(err);
      else resolve(secret);
    };
    const onData = (chunk: Buffer | string) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return done();
        if (ch === '\u0003') return done(new CliError('cancelled', 130));
        if (ch === '\u007f' || ch === '\b') secret = [...secret].slice(0, -1).join('');
        else if (ch >= ' ') secret += ch;
        if (secret.length > MAX_INPUT) return done(new UsageError('the secret is too long'));
      }
    };
    stdin.on('data', onData);
  });
}

/** All of stdin as text (bounded), e.g. for `--secret -`. */
export async function readAll(io: Io, what: string): Promise<string> {
  let text = '';
  for await (const chunk of io.stdin) {
    text += typeof chunk === 'string' ? chunk : (chunk as Buffer).toString('utf8');
    if (text.length > MAX_INPUT) throw new UsageError(`${what} on stdin is larger than 1 MiB`);
  }
  return text;
}

/**
 * The requests of a client or bidi stream: one JSON value per line of stdin; blank
 * lines are skipped and a line that is not JSON ends the stream with an error naming it.
 */
export async function* jsonLines(io: Io): AsyncGenerator<unknown> {
  const rl = createInterface({ input: io.stdin, crlfDelay: Infinity, terminal: false });
  let n = 0;
  try {
    for await (const line of rl) {
      n++;
      if (!line.trim()) continue;
      if (line.length > MAX_INPUT) throw new UsageError(`line ${n} of stdin is larger than 1 MiB`);
      try {
        yield JSON.parse(line) as unknown;
      } catch (err) {
        throw new UsageError(`line ${n} of stdin is not JSON (${(err as Error).message}): give one JSON request per line`);
      }
    }
  } finally {
    rl.close();
  }
}

/** The server's rule for passwords, said before asking it. */
export function checkPassword(password: string): void {
  if (password.length < 8) throw new UsageError('the password must have at least 8 characters');
  if (password.length > 1024) throw new UsageError('the password must have at most 1024 characters');
  if (/[\r\n]/.test(password)) throw new UsageError('the password must be one line');
}

/**
 * A new password asked twice without echo; a mismatch or a password the rule refuses is
 * asked again, up to `tries` times, then `failed` (what was not done) ends the command.
 */
export async function askNewPassword(io: Io, failed: string, tries = 3): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    const password = await askSecret(io, 'New password (8 characters or more): ');
    const again = await askSecret(io, 'Again: ');
    const problem = again === password ? ruleProblem(password) : 'the two passwords differ';
    if (!problem) return password;
    if (attempt >= tries) throw new UsageError(`${problem} — ${failed}`);
    io.stderr.write(`${problem} — try again\n`);
  }
}

function ruleProblem(password: string): string | undefined {
  try {
    checkPassword(password);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** A password piped on stdin (one line; its newline dropped), checked by the rule. */
export async function readPassword(io: Io): Promise<string> {
  const password = (await readAll(io, 'the password')).replace(/\r?\n$/, '');
  checkPassword(password);
  return password;
}
