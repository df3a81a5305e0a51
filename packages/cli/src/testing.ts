import assert from 'node:assert/strict';
import { after } from 'node:test';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseMail, type TestSmtp } from '@micro/platform/testing';

/**
 * Helpers for the end-to-end tests: the `micro` command as people use it
 * (`node packages/cli/bin/micro.js …` in its own process) against a real `micro server`
 * on a free port, each test file with its own MICRO_HOME. Every process started here is
 * killed in an after hook of the test file that imports this module.
 */

export const bin = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'micro.js');
export const started = new Set<ChildProcessWithoutNullStreams>();

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function micro(home: string, args: string[], options: { input?: string; env?: Record<string, string>; cwd?: string; timeout?: number } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: options.cwd,
      env: { ...process.env, MICRO_HOME: home, MICRO_LOG_LEVEL: 'silent', MICRO_ENV: '', ...options.env },
    });
    started.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`micro ${args.join(' ')} timed out\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, options.timeout ?? 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      started.delete(child);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

export interface RunningServer {
  proc: ChildProcessWithoutNullStreams;
  address: string;
  /** the API gateway's http:// URL */
  gateway: string;
  output: () => string;
}

/**
 * `micro server --address tcp://127.0.0.1:0` (its gateway on a free port too), once it
 * says where it listens. `env` adds to the environment (a profile, its engines). The
 * value-add services are off unless `env` turns them on (MICRO_SERVICES): a test of
 * something else does not pay for them, on three nodes of a cluster least of all.
 */
export function startServer(home: string, options: { env?: Record<string, string>; timeout?: number } = {}): Promise<RunningServer> {
  const proc = spawn(process.execPath, [bin, 'server', '--address', 'tcp://127.0.0.1:0'], { env: { ...process.env, MICRO_HOME: home, MICRO_LOG_LEVEL: 'silent', MICRO_SERVICES: 'none', ...options.env } });
  started.add(proc);
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`micro server did not start:\n${out}`)), options.timeout ?? 20_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /listening on (tcp:\/\/\S+)/.exec(out);
      const g = /API gateway on (http:\/\/\S+)/.exec(out);
      if (m && g) {
        clearTimeout(timer);
        resolve({ proc, address: m[1] as string, gateway: g[1] as string, output: () => out });
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      started.delete(proc);
      reject(new Error(`micro server exited with ${code}:\n${out}`));
    });
  });
}

/**
 * A service written with the SDK, in a process of its own (`source`: an ES module body run
 * from the repository's root, which prints `ADDRESS <address>` once it serves): as `micro
 * run` would start one, with `env` for MICRO_SERVER and its credentials. Killed after the test.
 */
export function startServiceProcess(t: { after(fn: () => unknown): void }, source: string, env: Record<string, string>): Promise<string> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', source], {
    cwd: join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..'),
    env: { ...process.env, MICRO_LOG_LEVEL: 'silent', MICRO_SERVICE_ADDRESS: 'tcp://127.0.0.1:0', ...env },
  });
  started.add(child);
  t.after(() => stopProcess(child, 'SIGKILL'));
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the service did not start:\n${out}`)), 30_000);
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /ADDRESS (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1] as string);
      }
    });
    child.once('exit', (code) => reject(new Error(`the service exited (${code}):\n${out}`)));
  });
}

export function stopProcess(proc: ChildProcessWithoutNullStreams, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(proc.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      started.delete(proc);
      resolve(code);
    });
    proc.kill(signal);
  });
}

after(async () => {
  await Promise.all([...started].map((p) => stopProcess(p, 'SIGKILL')));
});

/**
 * Polls `probe` every 250 ms until it answers something other than undefined; past `ms`
 * fails saying what was awaited and the last error the probe threw.
 */
export async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms${last ? ` (${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A command that failed as it should: exit code 1 and `why` on stderr. */
export function refused(r: Result, why: RegExp, what: string): void {
  assert.equal(r.code, 1, `${what}: ${r.stdout}`);
  assert.match(r.stderr, why, what);
}

/** A JSON answer of the API gateway. */
export interface Http {
  status: number;
  body: { detail?: string } & Record<string, unknown>;
}

/** POSTs JSON to the gateway, with a bearer token when given. */
export async function post(gateway: string, path: string, body: unknown, token?: string): Promise<Http> {
  const res = await fetch(new URL(path, gateway), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Http['body'] };
}

/** The body of a 200; fails with the body otherwise. */
export function ok(r: Http): Http['body'] {
  if (r.status !== 200) throw new Error(`expected 200, got ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export { natsPlatform, dropPrefix } from '@micro/server/testing';

/** The code of the latest verification mail to `to` among what the SMTP server received. */
export async function codeFromSmtp(smtp: TestSmtp, to: string, after = 0): Promise<string> {
  return until(`a code mailed to ${to}`, 15_000, async () => {
    for (const m of smtp.received.slice(after).reverse()) {
      if (!m.to.includes(to)) continue;
      const code = codeOf(await parseMail(m.raw));
      if (code) return code;
    }
    return undefined;
  });
}

export function codeOf(mail: { subject?: string; text?: string }): string | undefined {
  if (!/verification code/.test(mail.subject ?? '')) return undefined;
  return /code is:\s+(\d{6})/.exec(mail.text ?? '')?.[1];
}
