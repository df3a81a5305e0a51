import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Clock } from '../clock.js';
import type { Container, ContainerStatus, Pod } from '../types.js';
import { timestamp } from '../types.js';
import { ConfigError, containerEnv, expand } from './env.js';
import { LogBuffer } from './logs.js';
import { Prober, type ProbeHost, type ProbeKind } from './probe.js';
import { killGroup, type Processes, runOnce, type Spawned, start } from './process.js';
import type { Store } from '../store.js';

/**
 * One container of a pod on the fake node: its state machine (waiting → running →
 * terminated, restarts with the kubelet's back-off: at once, then 10 s doubling to 5 min,
 * reset after 10 min of running), its process, its probes and its output.
 */

/** how the fake kubelet runs a container (or an exec probe's command) as a local process */
export interface KubeletRun {
  command: string;
  args: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** where the container's ports really listen (containerPort → local port), for httpGet and tcpSocket probes; default the same port */
  ports?: Record<number, number>;
  /** the local file standing for the container's `terminationMessagePath`: read (at most 4096 bytes) when it ends */
  terminationMessageFile?: string;
}

/** the fake kubelet's container runtime: how a container (or an exec probe's command) runs locally */
export type KubeletFunction = (container: { name: string; image: string; command?: string[]; args?: string[] }, pod: object, env: Record<string, string>) => KubeletRun | undefined;

/** what the kubelet keeps of a container's file or output as its termination message */
const MESSAGE_BYTES = 4096;
const FALLBACK_LINES = 80;
const FALLBACK_BYTES = 2048;

export interface ContainerHost {
  clock: Clock;
  store: Store;
  procs: Processes;
  run?: KubeletFunction;
  logBytes: number;
  pod(): Pod;
  /** the pod's containers will not be started again (it is being deleted or was evicted) */
  stopping(): boolean;
  changed(): void;
  event(type: 'Normal' | 'Warning', reason: string, message: string): void;
  /** the container ended for good (no restart coming) */
  finished(c: ContainerRuntime): void;
}

type State = NonNullable<ContainerStatus['state']>;

const RESTART_BASE_S = 10;
const RESTART_MAX_S = 300;
const RESET_AFTER_S = 600;

export class ContainerRuntime {
  restartCount = 0;
  state: State = { waiting: { reason: 'ContainerCreating' } };
  lastState: State = {};
  logs: LogBuffer;
  previous?: LogBuffer;
  /** started at least once */
  everStarted = false;
  private containerID?: string;
  private spawned?: Spawned;
  private noProcess = false;
  private probers: Prober[] = [];
  private restarts = 0;
  private pullFailures = 0;
  private startedAt = 0;
  private cancel: () => void = () => {};
  private ports: Record<number, number> = {};
  private messageFile?: string;
  private stopped = false;

  constructor(
    readonly spec: Container,
    readonly init: boolean,
    private readonly host: ContainerHost,
  ) {
    this.logs = new LogBuffer(host.logBytes);
  }

  get name(): string {
    return this.spec.name;
  }

  get running(): boolean {
    return 'running' in this.state && this.state.running !== undefined;
  }

  /** exited and will not run again */
  get done(): boolean {
    return this.state.terminated !== undefined;
  }

  get exitCode(): number | undefined {
    return this.state.terminated?.exitCode;
  }

  get ready(): boolean {
    return this.running && this.probers.every((p) => p.kind === 'Liveness' || p.passing);
  }

  private get started(): boolean {
    return this.running && this.probers.every((p) => p.kind !== 'Startup' || p.passing);
  }

  start(): void {
    if (this.stopped || this.host.stopping()) return;
    const pod = this.host.pod();
    let env: Record<string, string>;
    try {
      env = containerEnv(this.host.store, pod, this.spec);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      this.wait('CreateContainerConfigError', err.message);
      this.host.event('Warning', 'Failed', `Error: ${err.message}`);
      this.retry(this.host.clock.seconds(2));
      return;
    }
    const command = this.spec.command?.map((x) => expand(x, env));
    const args = this.spec.args?.map((x) => expand(x, env));
    let run: ReturnType<KubeletFunction>;
    try {
      run = this.host.run?.({ name: this.name, image: this.spec.image ?? '', ...(command ? { command } : {}), ...(args ? { args } : {}) }, pod, { ...env });
    } catch (err) {
      return this.pullFailed(String((err as Error)?.message ?? err));
    }
    this.pullFailures = 0;
    this.host.event('Normal', 'Pulled', `Container image "${this.spec.image}" already present on machine`);
    this.host.event('Normal', 'Created', `Created container ${this.name}`);
    if (!run) return this.runWithoutProcess();
    this.ports = run.ports ?? {};
    this.messageFile = run.terminationMessageFile;
    const spawned = start(this.host.procs, run.command, run.args, { ...env, ...run.env }, run.cwd, (chunk) => this.logs.write(chunk));
    this.spawned = spawned;
    this.began();
    void spawned.done.then((r) => {
      if (this.spawned === spawned) this.exited(r.code, r.error);
    });
  }

  private wait(reason: string, message?: string): void {
    this.state = { waiting: { reason, ...(message ? { message } : {}) } };
    this.host.changed();
  }

  private retry(ms: number): void {
    this.cancel = this.host.clock.after(ms, () => this.start());
  }

  private pullFailed(message: string): void {
    const image = this.spec.image ?? '';
    this.pullFailures += 1;
    this.wait('ErrImagePull', `Failed to pull image "${image}": ${message}`);
    this.host.event('Warning', 'Failed', `Failed to pull image "${image}": ${message}`);
    const backoff = Math.min(RESTART_BASE_S * 2 ** (this.pullFailures - 1), RESTART_MAX_S);
    this.cancel = this.host.clock.after(this.host.clock.seconds(0.5), () => {
      this.wait('ImagePullBackOff', `Back-off pulling image "${image}"`);
      this.host.event('Normal', 'BackOff', `Back-off pulling image "${image}"`);
      this.retry(this.host.clock.seconds(backoff));
    });
  }

  private runWithoutProcess(): void {
    this.noProcess = true;
    this.began();
  }

  private began(): void {
    this.startedAt = this.host.clock.now();
    this.everStarted = true;
    this.containerID = `containerd://${randomBytes(32).toString('hex')}`;
    this.state = { running: { startedAt: timestamp(this.startedAt) } };
    this.host.event('Normal', 'Started', `Started container ${this.name}`);
    if (!this.noProcess && !this.init) this.startProbes();
    this.host.changed();
  }

  private startProbes(): void {
    const host: ProbeHost = {
      clock: this.host.clock,
      exec: (command, timeoutMs) => this.execProbe(command, timeoutMs),
      port: (p) => this.port(p),
      failed: (kind, output) => this.host.event('Warning', 'Unhealthy', `${kind} probe failed: ${output}`),
      changed: (kind, ok) => this.probeChanged(kind, ok),
    };
    const startup = this.spec.startupProbe ? new Prober('Startup', this.spec.startupProbe, host) : undefined;
    const others = [this.spec.readinessProbe && new Prober('Readiness', this.spec.readinessProbe, host), this.spec.livenessProbe && new Prober('Liveness', this.spec.livenessProbe, host)].filter((p): p is Prober => !!p);
    this.probers = startup ? [startup, ...others] : others;
    if (startup) startup.start();
    else for (const p of others) p.start();
  }

  private probeChanged(kind: ProbeKind, ok: boolean): void {
    if (kind === 'Startup' && ok) for (const p of this.probers) if (p.kind !== 'Startup') p.start();
    if ((kind === 'Liveness' || kind === 'Startup') && !ok) {
      this.host.event('Normal', 'Killing', `Container ${this.name} failed ${kind.toLowerCase()} probe, will be restarted`);
      this.signal('SIGTERM');
      const grace = this.spec[kind === 'Liveness' ? 'livenessProbe' : 'startupProbe']?.terminationGracePeriodSeconds ?? this.host.pod().spec.terminationGracePeriodSeconds ?? 30;
      this.cancel = this.host.clock.after(this.host.clock.seconds(grace), () => this.signal('SIGKILL'));
    }
    this.host.changed();
  }

  private async execProbe(command: string[], timeoutMs: number): Promise<{ ok: boolean; output: string }> {
    const pod = this.host.pod();
    const env = containerEnv(this.host.store, pod, this.spec);
    const run = this.host.run?.({ name: this.name, image: this.spec.image ?? '', command, args: [] }, pod, { ...env });
    if (!run) return { ok: true, output: '' };
    const r = await runOnce(this.host.procs, run.command, run.args, { ...env, ...run.env }, run.cwd, timeoutMs);
    if (r.timedOut) return { ok: false, output: `command ${JSON.stringify(command.join(' '))} timed out` };
    return { ok: r.code === 0, output: r.output.trim() || `command exited with code ${r.code}` };
  }

  /** a probe's port: a number, or the name of one of the container's ports; mapped to where it really listens */
  private port(p: number | string): number | undefined {
    const n = typeof p === 'number' ? p : /^\d+$/.test(p) ? Number(p) : this.spec.ports?.find((x) => x.name === p)?.containerPort;
    return n === undefined ? undefined : (this.ports[n] ?? n);
  }

  private signal(sig: NodeJS.Signals): void {
    if (this.spawned) killGroup(this.spawned.proc, sig);
  }

  private exited(code: number, error: Error | undefined): void {
    for (const p of this.probers) p.stop();
    this.probers = [];
    this.cancel();
    this.logs.end();
    this.spawned = undefined;
    const ranMs = this.host.clock.now() - this.startedAt;
    const message = error ? `failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: ${JSON.stringify(this.spec.command?.[0] ?? '')}: ${error.message}: unknown` : this.terminationMessage(code);
    const terminated: NonNullable<State['terminated']> = {
      exitCode: code,
      reason: error ? 'StartError' : code === 0 ? 'Completed' : 'Error',
      startedAt: timestamp(this.startedAt),
      finishedAt: timestamp(this.host.clock.now()),
      containerID: this.containerID,
      ...(message ? { message } : {}),
    };
    this.state = { terminated };
    if (this.shouldRestart(code)) this.restartAfter(ranMs, terminated);
    else this.host.finished(this);
    this.host.changed();
  }

  /** the file at terminationMessagePath, else (FallbackToLogsOnError, and it failed) the end of its output */
  private terminationMessage(code: number): string {
    let text = '';
    if (this.messageFile) {
      try {
        text = readFileSync(this.messageFile).subarray(0, MESSAGE_BYTES).toString();
      } catch {
        // no file written: no message
      }
    }
    if (!text && code !== 0 && this.spec.terminationMessagePolicy === 'FallbackToLogsOnError') text = this.logs.tail(FALLBACK_LINES, FALLBACK_BYTES);
    return text;
  }

  private shouldRestart(code: number): boolean {
    if (this.stopped || this.host.stopping()) return false;
    const policy = this.host.pod().spec.restartPolicy ?? 'Always';
    if (this.init) return code !== 0 && policy !== 'Never';
    return policy === 'Always' || (policy === 'OnFailure' && code !== 0);
  }

  private restartAfter(ranMs: number, terminated: NonNullable<State['terminated']>): void {
    if (ranMs >= this.host.clock.seconds(RESET_AFTER_S)) this.restarts = 0;
    const delayS = this.restarts === 0 ? 0 : Math.min(RESTART_BASE_S * 2 ** (this.restarts - 1), RESTART_MAX_S);
    this.restarts += 1;
    this.lastState = { terminated };
    const pod = this.host.pod();
    const again = () => {
      this.restartCount += 1;
      this.previous = this.logs;
      this.logs = new LogBuffer(this.host.logBytes);
      this.start();
    };
    if (delayS === 0) return again();
    const message = `back-off ${delayS}s restarting failed container=${this.name} pod=${pod.metadata.name}_${pod.metadata.namespace}(${pod.metadata.uid})`;
    this.state = { waiting: { reason: 'CrashLoopBackOff', message } };
    this.host.event('Warning', 'BackOff', 'Back-off restarting failed container');
    this.cancel = this.host.clock.after(this.host.clock.seconds(delayS), again);
  }

  /** stops the container for good: preStop, SIGTERM, SIGKILL after `graceMs` */
  async stop(graceMs: number): Promise<void> {
    if (this.stopped) return this.whenExited();
    this.stopped = true;
    this.cancel();
    for (const p of this.probers) p.stop();
    if (!this.running) return this.finishWaiting();
    if (this.noProcess) return this.finishNoProcess(0);
    this.host.event('Normal', 'Killing', `Stopping container ${this.name}`);
    const deadline = this.host.clock.now() + graceMs;
    await this.preStop(graceMs);
    this.signal('SIGTERM');
    const cancel = this.host.clock.after(Math.max(0, deadline - this.host.clock.now()), () => this.signal('SIGKILL'));
    await this.whenExited();
    cancel();
  }

  /** kills the container now (an eviction, the fake closing) */
  kill(exitCode = 137): void {
    this.stopped = true;
    this.cancel();
    for (const p of this.probers) p.stop();
    if (this.noProcess && this.running) this.finishNoProcess(exitCode);
    else if (this.spawned) this.signal('SIGKILL');
    else if (!this.running) this.finishWaiting();
  }

  private finishNoProcess(code: number): void {
    this.state = { terminated: { exitCode: code, reason: code === 0 ? 'Completed' : 'Error', startedAt: timestamp(this.startedAt), finishedAt: timestamp(this.host.clock.now()), containerID: this.containerID } };
    this.logs.end();
    this.host.changed();
  }

  private finishWaiting(): void {
    this.logs.end();
    this.host.changed();
  }

  whenExited(): Promise<void> {
    const s = this.spawned;
    return s ? s.done.then(() => undefined) : Promise.resolve();
  }

  private async preStop(graceMs: number): Promise<void> {
    const exec = this.spec.lifecycle?.preStop?.exec;
    if (!exec?.command) return;
    const pod = this.host.pod();
    const env = containerEnv(this.host.store, pod, this.spec);
    const run = this.host.run?.({ name: this.name, image: this.spec.image ?? '', command: exec.command, args: [] }, pod, { ...env });
    if (run) await runOnce(this.host.procs, run.command, run.args, { ...env, ...run.env }, run.cwd, Math.max(1, graceMs));
  }

  status(): ContainerStatus {
    const imageID = this.everStarted ? `fake.local/${this.spec.image}@sha256:${createHash('sha256').update(this.spec.image ?? '').digest('hex')}` : '';
    return {
      name: this.name,
      image: this.spec.image ?? '',
      imageID,
      ...(this.containerID ? { containerID: this.containerID } : {}),
      ready: this.ready,
      restartCount: this.restartCount,
      started: this.started,
      state: this.state,
      lastState: this.lastState,
    };
  }
}
