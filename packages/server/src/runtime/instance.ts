import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger, Registry, RuntimeInstance, RuntimeState, ServiceRecord } from '@micro/sdk';
import { LineSplitter, Tail } from './lines.js';
import type { LogFile } from './logs.js';
import type { BuildRecord, InstanceRecord } from './state.js';

/** How long things may take; tests shorten them. All in ms. */
export interface Timing {
  /** for a new process to register (default 30 s) */
  startTimeout: number;
  /** between SIGTERM and SIGKILL (default 15 s) */
  stopTimeout: number;
  /** between taking an instance out of the registry and SIGTERM, so callers move away (default 1 s) */
  drainDelay: number;
  /** how often the registry is asked whether a new process registered (default 100) */
  readyPoll: number;
  /** first delay before restarting a crashed instance; doubles per crash (default 1 s) */
  backoffInitial: number;
  /** longest delay between restarts (default 30 s) */
  backoffMax: number;
  /** running this long resets the backoff (default 60 s) */
  stableAfter: number;
}

/** What an instance needs from the runtime that owns it. */
export interface InstanceHost {
  readonly name: string;
  readonly namespace: string;
  readonly registry: Registry;
  readonly log: LogFile;
  readonly timing: Timing;
  readonly logger: Logger;
  /** the process's environment, asked for once per instance (it asks for credentials, so it is async) */
  env(instanceId: string): Promise<NodeJS.ProcessEnv>;
  /** something worth persisting changed (a pid came or went) */
  changed(): void;
  /** the instance registered this version */
  registered(version: string): void;
  /** the runtime is stopping: start nothing new */
  closing(): boolean;
  /** what a start that timed out did not do (default: register with the registry, as a micro service does) */
  readonly waitingFor?: string;
  /** how to start a process (the sandbox of tenant namespaces); default: node <entry> as the server */
  launch?(instanceId: string, build: BuildRecord, env: NodeJS.ProcessEnv): Launch;
}

/** How a process is started, and what the runtime learns from how it ended. */
export interface Launch {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** written to its stdin, then closed (bwrap's arguments) */
  input?: Buffer;
  /**
   * it has a pid namespace of its own: the pid in its registry metadata is not the
   * host's, so readiness takes a node of its instance id that was not listed before it started
   */
  isolated: boolean;
  /** why it was stopped beyond its exit status (over its memory limit), once it exited */
  verdict?(): string | undefined;
  /** watches a limit the kernel does not enforce (disk); `stop` kills it with the reason */
  watch?(stop: (reason: string) => void): () => void;
  /** after it ended: what it leaves behind (its cgroup) is removed */
  dispose?(): void;
}

/** Why an instance did not become ready; `kind` picks the error the caller sees. */
export class StartError extends Error {
  constructor(
    readonly kind: 'crashed' | 'timeout' | 'stopped',
    message: string,
  ) {
    super(message);
  }
}

interface Proc {
  child: ChildProcess;
  pid: number | undefined;
  launch: Launch;
  /** isolated: the registry nodes of this instance listed before it started */
  known?: Set<string>;
  /** why the runtime killed it (a limit), kept over its exit status */
  verdict?: string;
  /** how it ended ("exited with code 1"), once it has */
  exit?: string;
  exited: Promise<string>;
  ready: boolean;
  stderr: Tail;
  stdout: Tail;
}

/**
 * One instance of a service: a node process started from a build, its output piped into
 * the service's log. It is `running` once a registry node carries its instance id and
 * pid (the SDK puts MICRO_RUNTIME_INSTANCE and the pid in the node's metadata). From
 * then on it is supervised: when it exits without being asked to, it is `crashed` and
 * restarted after a backoff that doubles per crash and resets once it has run for a while.
 */
export class Instance {
  state: RuntimeState = 'pending';
  /** which of its service's instances this is (nats profile: the slot the placement gave this node) */
  slot = 0;
  restarts = 0;
  lastError: string | undefined;
  private startedAt: Date | undefined;
  private proc: Proc | undefined;
  /** the registry record of this node, once registered (to take it out before stopping) */
  private node: ServiceRecord | undefined;
  private supervised = false;
  private stopping = false;
  /** crashes since it last ran stably, for the backoff */
  private crashes = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  /** its environment with its credentials: in memory only */
  private env: NodeJS.ProcessEnv | undefined;
  private stableTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly id: string,
    readonly build: BuildRecord,
    private readonly host: InstanceHost,
  ) {}

  get pid(): number | undefined {
    return this.proc && this.proc.exit === undefined ? this.proc.pid : undefined;
  }

  /**
   * Starts the process; resolves once it registered. Rejects with a StartError, its
   * process gone, when it exits first (with the tail of its output), does not register
   * within the start timeout, or is stopped meanwhile.
   */
  async start(): Promise<void> {
    if (this.stopping || this.host.closing()) throw new StartError('stopped', `instance ${this.id} is stopped`);
    this.state = 'starting';
    try {
      // made once: restarts reuse it, so a crash loop does not mint a secret per restart
      this.env ??= await this.host.env(this.id);
    } catch (err) {
      throw new StartError('crashed', `could not prepare its environment: ${(err as Error).message}`);
    }
    // stop() may have come while the environment was made: it found no process to stop
    if (this.stopping || this.host.closing()) throw new StartError('stopped', `instance ${this.id} is stopped`);
    const launch = this.host.launch?.(this.id, this.build, this.env) ?? { command: process.execPath, args: [join(this.build.dir, this.build.entry)], env: this.env, isolated: false };
    const known = launch.isolated ? await this.listedNodes() : undefined;
    if (this.stopping || this.host.closing()) {
      launch.dispose?.();
      throw new StartError('stopped', `instance ${this.id} is stopped`);
    }
    const proc = this.spawn(launch, known);
    await this.waitReady(proc);
  }

  /** Starts it supervised: a failed start is retried with backoff, like a crash. */
  launch(): void {
    this.supervised = true;
    this.start().catch((err: unknown) => this.crashed((err as Error).message));
  }

  private spawn(launch: Launch, known: Set<string> | undefined): Proc {
    const { log } = this.host;
    // its own process group: Ctrl-C on the server's terminal reaches the server, which
    // stops its services in order, and SIGKILL can take the service's children too
    const child = spawn(launch.command, launch.args, {
      cwd: this.build.dir,
      env: launch.env,
      stdio: [launch.input ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      detached: true,
    });
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(launch.input);
    let resolveExited!: (how: string) => void;
    const proc: Proc = {
      child,
      pid: child.pid,
      launch,
      ...(known ? { known } : {}),
      exited: new Promise((resolve) => (resolveExited = resolve)),
      ready: false,
      stderr: new Tail(),
      stdout: new Tail(),
    };
    this.proc = proc;
    this.startedAt = new Date();
    const out = new LineSplitter((line) => {
      proc.stdout.add(line);
      log.append(this.id, 'stdout', line);
    });
    const err = new LineSplitter((line) => {
      proc.stderr.add(line);
      log.append(this.id, 'stderr', line);
    });
    child.stdout?.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => err.push(chunk));
    let how: string | undefined;
    let graceTimer: NodeJS.Timeout | undefined;
    const unwatch = launch.watch?.((reason) => {
      proc.verdict ??= reason;
      log.append(this.id, 'runtime', reason);
      signal(proc.pid ? -proc.pid : undefined, 'SIGKILL');
    });
    const finish = () => {
      if (proc.exit !== undefined) return;
      clearTimeout(graceTimer);
      unwatch?.();
      out.end();
      err.end();
      launch.dispose?.();
      proc.exit = how ?? 'exited';
      resolveExited(proc.exit);
      this.exited(proc);
    };
    child.once('error', (e) => {
      how ??= `could not start: ${e.message}`;
      finish();
    });
    child.once('exit', (code, signal) => {
      how ??= proc.verdict ?? launch.verdict?.() ?? (signal ? `killed by ${signal}` : `exited with code ${code}`);
      // 'close' comes once its output is read; a child holding the pipes must not delay this
      graceTimer = setTimeout(finish, 500);
    });
    child.once('close', finish);
    log.append(this.id, 'runtime', `started process ${proc.pid ?? '?'} from build ${this.build.id}`);
    this.host.changed();
    return proc;
  }

  private async waitReady(proc: Proc): Promise<void> {
    const { timing } = this.host;
    const deadline = Date.now() + timing.startTimeout;
    for (;;) {
      if (proc.exit !== undefined) throw new StartError('crashed', `crashed at start: ${proc.exit}${tailOf(proc)}`);
      if (this.stopping || this.host.closing()) {
        await this.terminate(proc, timing.stopTimeout);
        throw new StartError('stopped', `instance ${this.id} was stopped before it registered`);
      }
      if (Date.now() > deadline) {
        const what = this.host.waitingFor ?? 'did not register with the registry';
        this.host.log.append(this.id, 'runtime', `${what} within ${timing.startTimeout / 1000} s; killing it`);
        await this.terminate(proc, 0);
        const hint = this.host.waitingFor ? '' : ' (does it call run() or Service.start() of the SDK?)';
        throw new StartError('timeout', `${what} within ${timing.startTimeout / 1000} s${hint}${tailOf(proc)}`);
      }
      const node = await this.findNode(proc);
      if (node && proc.exit === undefined) {
        proc.ready = true;
        this.node = node;
        this.state = 'running';
        this.supervised = true;
        this.host.registered(node.version);
        // published at once: the other nodes' status must not show it starting while it runs
        this.host.changed();
        this.host.log.append(this.id, 'runtime', `process ${proc.pid} is ready (registered ${node.name} ${node.version})`);
        if (node.name !== this.host.name) this.host.log.append(this.id, 'runtime', `note: it registers as ${node.name}, not ${this.host.name}: callers find it as ${node.name}`);
        this.stableTimer = setTimeout(() => (this.crashes = 0), timing.stableAfter);
        this.stableTimer.unref();
        return;
      }
      await Promise.race([proc.exited, new Promise((r) => setTimeout(r, timing.readyPoll))]);
    }
  }

  /**
   * The registry node of this process. Looked for by instance id in the whole namespace,
   * not by name: a service run with --name registers under the name in its code.
   */
  private async findNode(proc: Proc): Promise<ServiceRecord | undefined> {
    let records: ServiceRecord[];
    try {
      records = await this.host.registry.listServices({ namespace: this.host.namespace });
    } catch {
      return undefined; // asked again at the next poll
    }
    const pid = String(proc.pid);
    // the pid tells this process from an earlier one of the same instance still listed;
    // in a pid namespace of its own, a node not listed before it started does
    const ours = proc.known ? (n: { id: string }) => !proc.known?.has(n.id) : (n: { metadata?: Record<string, string> }) => n.metadata?.pid === pid;
    for (const record of records) {
      const node = record.nodes.find((n) => n.metadata?.instance === this.id && ours(n));
      if (node) return { ...record, nodes: [node] };
    }
    return undefined;
  }

  /** The ids of the registry nodes of this instance listed now. */
  private async listedNodes(): Promise<Set<string>> {
    const records = await this.host.registry.listServices({ namespace: this.host.namespace }).catch(() => []);
    return new Set(records.flatMap((r) => r.nodes.filter((n) => n.metadata?.instance === this.id).map((n) => n.id)));
  }

  /** The process ended. Unless asked to stop, a ready instance has crashed. */
  private exited(proc: Proc): void {
    if (proc !== this.proc) return;
    clearTimeout(this.stableTimer);
    this.node = undefined;
    this.host.changed();
    if (this.stopping) return;
    this.host.log.append(this.id, 'runtime', `process ${proc.pid} ${proc.exit}`);
    // before it was ready, start() reports it
    if (proc.ready) this.crashed(`${proc.exit}${tailOf(proc)}`);
  }

  private crashed(reason: string): void {
    if (this.stopping) return;
    this.lastError = reason;
    this.state = 'crashed';
    if (!this.supervised || this.host.closing()) {
      this.host.changed();
      return;
    }
    const { backoffInitial, backoffMax } = this.host.timing;
    const delay = Math.min(backoffMax, backoffInitial * 2 ** Math.min(this.crashes, 30));
    this.crashes++;
    this.host.log.append(this.id, 'runtime', `restarting in ${delay} ms`);
    this.host.logger.warn({ service: this.host.name, namespace: this.host.namespace, instance: this.id, delay }, `instance crashed: ${reason.split('\n')[0]}`);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopping || this.host.closing()) return;
      this.restarts++;
      this.start().catch((err: unknown) => this.crashed((err as Error).message));
    }, delay);
    this.host.changed();
  }

  /**
   * Stops it for good: with `drain`, its node first leaves the registry and callers get
   * `drainDelay` to move elsewhere; then SIGTERM (the SDK deregisters, lets calls in flight
   * finish and exits) and SIGKILL after the stop timeout.
   */
  async stop(options: { drain: boolean }): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    clearTimeout(this.stableTimer);
    const proc = this.proc;
    if (proc && proc.exit === undefined) {
      if (options.drain && this.node) {
        await this.host.registry.deregister(this.node, { namespace: this.host.namespace }).catch(() => undefined);
        await new Promise((r) => setTimeout(r, this.host.timing.drainDelay));
      }
      await this.terminate(proc, this.host.timing.stopTimeout);
      this.host.log.append(this.id, 'runtime', `process ${proc.pid} stopped (${proc.exit})`);
    }
    this.node = undefined;
    this.state = 'stopped';
    this.host.changed();
  }

  /** SIGTERM, then after `grace` ms SIGKILL to its whole process group; resolves once it is gone. */
  private async terminate(proc: Proc, grace: number): Promise<void> {
    if (proc.exit !== undefined) return;
    if (grace > 0) {
      // a sandboxed service is two processes below the wrapper (bwrap, its pid 1): SIGTERM
      // to bwrap would kill it at once, so the service itself is told
      signal(proc.launch.isolated ? innerPid(proc.pid) : proc.pid, 'SIGTERM');
      const timer = new Promise<undefined>((r) => setTimeout(() => r(undefined), grace).unref());
      if ((await Promise.race([proc.exited, timer])) !== undefined) return;
    }
    if (proc.pid) signal(-proc.pid, 'SIGKILL');
    await proc.exited;
  }

  view(): RuntimeInstance {
    const v: RuntimeInstance = { id: this.id, state: this.state, restarts: this.restarts };
    if (this.pid !== undefined) v.pid = this.pid;
    if (this.startedAt && this.pid !== undefined) v.startedAt = this.startedAt.toISOString();
    if (this.lastError) v.lastError = this.lastError;
    return v;
  }

  record(): InstanceRecord {
    const r: InstanceRecord = { id: this.id, restarts: this.restarts };
    if (this.pid !== undefined) r.pid = this.pid;
    if (this.lastError) r.lastError = this.lastError;
    return r;
  }
}

function signal(pid: number | undefined, sig: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** The host pid of the process bwrap started (its pid 2): the child of bwrap's child. */
export function innerPid(outer: number | undefined): number | undefined {
  let pid = outer;
  for (let depth = 0; depth < 2 && pid; depth++) {
    const child = childrenOf(pid)[0];
    if (child === undefined) return pid;
    pid = child;
  }
  return pid;
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function tailOf(proc: Proc): string {
  const tail = proc.stderr.empty ? proc.stdout : proc.stderr;
  return tail.empty ? '' : `\n${tail.toString()}`;
}
