import { spawn } from 'node:child_process';
import { BoundedOutput, LineSplitter } from './lines.js';

export interface CommandOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** ms before the command (and every process it started) is killed */
  timeout: number;
  /** each line of its stdout and stderr, as it comes */
  onLine?: (line: string) => void;
  /** kills the command, e.g. when the runtime stops */
  signal?: AbortSignal;
  /** written to its stdin, then closed (a sandboxed command's bwrap arguments); default: no stdin */
  input?: Buffer;
}

export interface CommandResult {
  ok: boolean;
  /** stdout and stderr interleaved, bounded (start and end kept) */
  output: string;
  /** how it ended, for messages: "exited with code 2", "timed out after 300 s" */
  reason: string;
}

/**
 * Runs a build step (git, npm, tsc) to completion. The command gets its own process group
 * so that a timeout or a stopping runtime kills what it started too (npm runs scripts in
 * shells that run compilers). It never rejects: the caller turns a failure into the
 * error the user sees, with the output.
 */
export function runCommand(command: string, args: string[], options: CommandOptions): Promise<CommandResult> {
  return new Promise((resolve) => {
    const output = new BoundedOutput();
    const onLine = (line: string) => {
      output.add(line);
      options.onLine?.(line);
    };
    const out = new LineSplitter(onLine);
    const err = new LineSplitter(onLine);
    let reason: string | undefined;
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: [options.input ? 'pipe' : 'ignore', 'pipe', 'pipe'], detached: true });
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(options.input);
    const killGroup = (why: string) => {
      reason ??= why;
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => killGroup(`timed out after ${Math.round(options.timeout / 1000)} s`), options.timeout);
    const onAbort = () => killGroup('cancelled: the runtime is stopping');
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.signal?.aborted) onAbort();
    child.stdout?.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => err.push(chunk));
    child.once('error', (e: NodeJS.ErrnoException) => {
      reason ??= e.code === 'ENOENT' ? `${command} was not found on PATH` : e.message;
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      out.end();
      err.end();
      const ok = code === 0 && reason === undefined;
      resolve({ ok, output: output.toString(), reason: reason ?? (signal ? `killed by ${signal}` : `exited with code ${code}`) });
    });
  });
}
