import { type ChildProcess, spawn } from 'node:child_process';

/**
 * Local processes as the fake kubelet runs them: each in its own process group (so a
 * container's children stop with it, as a container's processes do when its PID 1 ends),
 * with only the environment it is given (a container does not inherit the host's).
 */

export interface Spawned {
  proc: ChildProcess;
  /** resolves once the process and its output are done: exit code (128 + signal when killed), signal, spawn error */
  done: Promise<{ code: number; signal?: string; error?: Error }>;
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 };

/** the processes of one fake kubelet, so closing it stops every one */
export type Processes = Set<ChildProcess>;

/**
 * Every fake kubelet's processes, killed when this process exits without closing its fakes
 * (a failing test): each runs in its own process group, which would otherwise outlive it.
 */
const everyone = new Set<Processes>();
let hooked = false;

export function track(procs: Processes): () => void {
  everyone.add(procs);
  if (!hooked) {
    hooked = true;
    process.once('exit', () => {
      for (const set of everyone) for (const p of set) killGroup(p, 'SIGKILL');
    });
  }
  return () => everyone.delete(procs);
}

export function start(procs: Processes, command: string, args: string[], env: Record<string, string>, cwd: string | undefined, output: (chunk: Buffer) => void): Spawned {
  const proc = spawn(command, args, { env, ...(cwd ? { cwd } : {}), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  procs.add(proc);
  proc.stdout?.on('data', output);
  proc.stderr?.on('data', output);
  const done = new Promise<{ code: number; signal?: string; error?: Error }>((resolve) => {
    let exit: { code: number; signal?: string } | undefined;
    proc.once('error', (error) => {
      procs.delete(proc);
      resolve({ code: 128, error });
    });
    proc.once('exit', (code, signal) => {
      procs.delete(proc);
      exit = { code: code ?? 128 + (SIGNALS[signal ?? ''] ?? 9), ...(signal ? { signal } : {}) };
      // the container's other processes end with its first one
      killGroup(proc, 'SIGKILL');
      // output held open by a stray descendant must not keep the container alive
      setTimeout(() => resolve(exit as { code: number; signal?: string }), 1000).unref();
    });
    proc.once('close', () => {
      if (exit) resolve(exit);
    });
  });
  return { proc, done };
}

/** signals the process's whole group; quiet when it is gone */
export function killGroup(proc: ChildProcess, signal: NodeJS.Signals): void {
  if (proc.pid === undefined) return;
  try {
    process.kill(-proc.pid, signal);
  } catch {
    try {
      proc.kill(signal);
    } catch {
      // already gone
    }
  }
}

/** runs a command to its end within `timeoutMs` (an exec probe, a preStop hook): exit code and output (bounded) */
export async function runOnce(procs: Processes, command: string, args: string[], env: Record<string, string>, cwd: string | undefined, timeoutMs: number): Promise<{ code: number; output: string; timedOut: boolean }> {
  let output = '';
  const s = start(procs, command, args, env, cwd, (chunk) => {
    if (output.length < 10_240) output += chunk.toString();
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(s.proc, 'SIGKILL');
  }, timeoutMs);
  const r = await s.done;
  clearTimeout(timer);
  return { code: r.error ? 128 : r.code, output: r.error ? r.error.message : output.slice(0, 10_240), timedOut };
}
