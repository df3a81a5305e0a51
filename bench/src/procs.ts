/**
 * Helpers of the benchmarks that run `micro server` itself (the CLI, as a user starts it)
 * and read what processes cost: start a server in a new MICRO_HOME and log in as its
 * admin, poll until something answers, read a process's resident memory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { authService, bearer, Client, createClient, TokenSource, type ClientMiddleware } from '@micro/sdk';
import { adopt } from './harness.js';

export const cli = fileURLToPath(new URL('../../packages/cli/bin/micro.js', import.meta.url));

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Calls `fn` until it resolves (every `every` ms), for at most `ms`. */
export async function until<T>(what: string, fn: () => Promise<T>, ms = 60_000, every = 5): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > end) throw new Error(`${what}: ${(err as Error).message}`, { cause: err });
      await sleep(every);
    }
  }
}

/**
 * Resident memory of a process in MB (MiB: VmRSS of /proc/<pid>/status, which counts the
 * pages it shares with other processes too, as `ps` and `top` do). Linux only.
 */
export function rssMB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) / 1024;
}

/** Whether /proc can be read (resident memory is read from there). */
export function procReadable(): boolean {
  try {
    rssMB(process.pid);
    return true;
  } catch {
    return false;
  }
}

/** The first match of `pattern` in what the child prints (stdout and stderr), or an error with what it printed. */
function waitForLine(child: ChildProcess, pattern: RegExp, ms: number): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no line matching ${pattern} within ${ms} ms:\n${out}`)), ms);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = pattern.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.stderr?.off('data', onData);
        resolve(m);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code}:\n${out}`));
    });
  });
}

export interface MicroServerProcess {
  readonly pid: number;
  /** RPC address, `tcp://127.0.0.1:PORT` */
  readonly address: string;
  readonly gatewayUrl: string;
  readonly home: string;
  /** middleware that makes calls as the server's admin */
  readonly asAdmin: ClientMiddleware;
  /** stops the server (SIGTERM: it stops the services it runs), then removes its home */
  stop(): Promise<void>;
}

/**
 * `micro server` (the CLI) in a new MICRO_HOME, RPC and gateway on free ports of
 * 127.0.0.1, logging off; resolves once it has handed the admin a token.
 */
export async function startMicroServer(options: { cpus?: string | undefined } = {}): Promise<MicroServerProcess> {
  const home = mkdtempSync(join(tmpdir(), 'micro-bench-home-'));
  const env = { ...process.env, MICRO_HOME: home, MICRO_LOG_LEVEL: 'silent', NODE_NO_WARNINGS: '1' };
  const argv = [cli, 'server', '--address', 'tcp://127.0.0.1:0', '--gateway', '127.0.0.1:0'];
  const [cmd, args] = options.cpus ? ['taskset', ['-c', options.cpus, process.execPath, ...argv]] : [process.execPath, argv];
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  adopt(child);
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill('SIGTERM');
      });
    }
    rmSync(home, { recursive: true, force: true });
  };
  try {
    const lines = waitForLine(child, /listening on (tcp:\/\/\S+)[\s\S]*API gateway on (http:\/\/\S+)/, 30_000);
    const m = await lines;
    const address = m[1] as string;
    const gatewayUrl = m[2] as string;
    // keep reading its output, so that a full pipe never blocks it
    child.stdout?.resume();
    child.stderr?.resume();
    const admin = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
    const auth = createClient(authService, new Client({ address, namespace: 'micro', preferLocal: false }));
    await until('micro server answers', () => auth.Token(admin), 30_000);
    const asAdmin = bearer(new TokenSource(admin, new Client({ address, namespace: 'micro', preferLocal: false })));
    return { pid: child.pid ?? 0, address, gatewayUrl, home, asAdmin, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
