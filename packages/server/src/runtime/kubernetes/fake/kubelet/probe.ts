import { request } from 'node:http';
import { connect } from 'node:net';
import type { Clock } from '../clock.js';
import type { Probe } from '../types.js';

/**
 * A container's probe, run as the kubelet runs it: after `initialDelaySeconds`, every
 * `periodSeconds`, each try bounded by `timeoutSeconds`; the result flips after
 * `successThreshold` successes or `failureThreshold` failures in a row. exec runs through
 * the kubelet function; httpGet (200–399) and tcpSocket go to 127.0.0.1 (every pod's IP).
 */

/** the least time a probe's try gets, whatever `secondMs` */
const MIN_TIMEOUT_MS = 1000;

export type ProbeKind = 'Readiness' | 'Liveness' | 'Startup';

export interface ProbeHost {
  clock: Clock;
  /** runs an exec probe's command; ok when it exits 0 */
  exec(command: string[], timeoutMs: number): Promise<{ ok: boolean; output: string }>;
  /** the local port a container port (number or name) really listens on */
  port(port: number | string): number | undefined;
  /** each failed try, for the Unhealthy event */
  failed(kind: ProbeKind, output: string): void;
  /** the result changed */
  changed(kind: ProbeKind, ok: boolean): void;
}

export class Prober {
  private ok: boolean;
  private run = 0;
  private successes = 0;
  private failures = 0;
  private stopped = false;
  private cancel: () => void = () => {};

  constructor(
    readonly kind: ProbeKind,
    private readonly probe: Probe,
    private readonly host: ProbeHost,
  ) {
    this.ok = kind !== 'Readiness' && kind !== 'Startup';
  }

  get passing(): boolean {
    return this.ok;
  }

  start(): void {
    this.schedule(this.host.clock.seconds(this.probe.initialDelaySeconds ?? 0));
  }

  stop(): void {
    this.stopped = true;
    this.cancel();
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.cancel = this.host.clock.after(ms, () => void this.tick());
  }

  private async tick(): Promise<void> {
    const run = ++this.run;
    const { ok, output } = await this.check().catch((err: unknown) => ({ ok: false, output: String((err as Error)?.message ?? err) }));
    if (this.stopped || run !== this.run) return;
    if (ok) {
      this.successes += 1;
      this.failures = 0;
    } else {
      this.failures += 1;
      this.successes = 0;
      this.host.failed(this.kind, output);
    }
    const flip = ok ? !this.ok && this.successes >= (this.probe.successThreshold ?? 1) : this.ok && this.failures >= (this.probe.failureThreshold ?? 3);
    const stillStarting = this.kind === 'Startup' && !ok && this.failures >= (this.probe.failureThreshold ?? 3);
    if (flip || stillStarting) {
      this.ok = ok;
      this.host.changed(this.kind, ok);
    }
    // a startup probe stops once it has passed
    if (this.kind === 'Startup' && this.ok) return;
    this.schedule(this.host.clock.seconds(this.probe.periodSeconds ?? 10));
  }

  private check(): Promise<{ ok: boolean; output: string }> {
    // starting a local process takes longer than a scaled-down second: a try gets at least a real one
    const timeoutMs = Math.max(MIN_TIMEOUT_MS, this.host.clock.seconds(this.probe.timeoutSeconds ?? 1));
    const p = this.probe;
    if (p.exec) return this.host.exec(p.exec.command ?? [], timeoutMs);
    if (p.httpGet) return this.http(p.httpGet, timeoutMs);
    if (p.tcpSocket) return this.tcp(p.tcpSocket.port, timeoutMs);
    return Promise.resolve({ ok: false, output: 'grpc probes are not run by the test API server' });
  }

  private http(h: NonNullable<Probe['httpGet']>, timeoutMs: number): Promise<{ ok: boolean; output: string }> {
    const port = this.host.port(h.port);
    if (port === undefined) return Promise.resolve({ ok: false, output: `unknown port ${String(h.port)}` });
    const headers = Object.fromEntries((h.httpHeaders ?? []).map((x) => [x.name, x.value]));
    return new Promise((resolve) => {
      const req = request({ host: '127.0.0.1', port, path: h.path ?? '/', method: 'GET', headers: { 'User-Agent': 'kube-probe/1.32', ...headers }, timeout: timeoutMs }, (res) => {
        res.resume();
        const code = res.statusCode ?? 0;
        resolve({ ok: code >= 200 && code < 400, output: `HTTP probe failed with statuscode: ${code}` });
      });
      req.on('timeout', () => {
        req.destroy();
        resolve({ ok: false, output: `Get "http://127.0.0.1:${port}${h.path ?? '/'}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)` });
      });
      req.on('error', (err) => resolve({ ok: false, output: `Get "http://127.0.0.1:${port}${h.path ?? '/'}": ${err.message}` }));
      req.end();
    });
  }

  private tcp(p: number | string, timeoutMs: number): Promise<{ ok: boolean; output: string }> {
    const port = this.host.port(p);
    if (port === undefined) return Promise.resolve({ ok: false, output: `unknown port ${String(p)}` });
    return new Promise((resolve) => {
      const s = connect({ host: '127.0.0.1', port, timeout: timeoutMs });
      s.on('connect', () => {
        s.destroy();
        resolve({ ok: true, output: '' });
      });
      s.on('timeout', () => {
        s.destroy();
        resolve({ ok: false, output: `dial tcp 127.0.0.1:${port}: i/o timeout` });
      });
      s.on('error', (err) => resolve({ ok: false, output: `dial tcp 127.0.0.1:${port}: ${err.message}` }));
    });
  }
}
