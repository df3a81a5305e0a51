import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { defineService, endpoint, errors, run, z } from '@micro/sdk';
import type { FunctionSettings, WorkerMessage } from './settings.js';

/**
 * The service a deployed function runs as (`fn-<name>` in the tenant's namespace, in the
 * runtime's sandbox): one endpoint, `Call {request} -> {response}`, that hands the request
 * to the user's exported function in a worker thread. Deploy copies this file, worker.js
 * and settings.js into the function's project beside the user's module and function.json.
 *
 * A call that runs past `timeoutMs` has its worker terminated (an endless loop stops
 * there) and fails with a 504; a worker that needs more than `memoryMb` of heap dies and
 * its call fails with a 500 saying so; a throw fails the call with a 500 carrying the
 * message. The service itself stays up, and a fresh worker takes the next call.
 */
const settings = JSON.parse(readFileSync(new URL('./function.json', import.meta.url), 'utf8')) as FunctionSettings;
const modulePath = new URL(`./${settings.module}`, import.meta.url).pathname;
const workerUrl = new URL('./worker.js', import.meta.url);
const ID = settings.service;

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

/** A worker thread and the call it serves (one at a time). */
class Slot {
  readonly worker: Worker;
  readonly ready: Promise<void>;
  private pending: { id: number; call: Pending; timer: NodeJS.Timeout } | undefined;
  private ended = false;
  private nextId = 0;
  /** why the worker is gone, set before it is terminated */
  private reason: Error | undefined;

  constructor(private readonly onEnd: (slot: Slot) => void) {
    this.worker = new Worker(workerUrl, {
      workerData: { module: modulePath, entrypoint: settings.entrypoint },
      resourceLimits: { maxOldGenerationSizeMb: settings.memoryMb, maxYoungGenerationSizeMb: Math.max(4, Math.floor(settings.memoryMb / 8)) },
      stdout: false,
      stderr: false,
    });
    this.ready = new Promise<void>((resolve, reject) => {
      const first = (m: WorkerMessage) => {
        if (m.kind === 'ready') resolve();
        else if (m.kind === 'failed') reject(new Error(m.message));
      };
      this.worker.once('message', first);
      this.worker.once('exit', () => reject(this.reason ?? new Error('the function exited while it was loading')));
      this.worker.once('error', (err) => reject(err));
    });
    this.ready.catch(() => undefined);
    this.worker.on('message', (m: WorkerMessage) => this.answer(m));
    this.worker.on('error', (err: Error & { code?: string }) => {
      this.reason ??= err.code === 'ERR_WORKER_OUT_OF_MEMORY' ? errors.InternalServerError(ID, `the function used more than its memory limit of ${settings.memoryMb} MiB and was stopped`) : errors.InternalServerError(ID, `the function failed: ${err.message}`);
    });
    this.worker.on('exit', (code) => this.end(this.reason ?? errors.InternalServerError(ID, `the function exited (code ${code}) before it answered`)));
  }

  /** taken for a call (from when the pool picks it, before it is ready, until it answers) */
  busy = false;

  call(request: unknown): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const id = ++this.nextId;
      const timer = setTimeout(() => {
        this.reason = errors.Timeout(ID, `the function ran longer than its limit of ${settings.timeoutMs / 1000} s and was stopped`);
        void this.worker.terminate();
      }, settings.timeoutMs);
      this.pending = { id, call: { resolve, reject }, timer };
      this.worker.postMessage({ id, request });
    });
  }

  private answer(m: WorkerMessage): void {
    const p = this.pending;
    if (!p || (m.kind !== 'answer' && m.kind !== 'threw') || m.id !== p.id) return;
    this.pending = undefined;
    this.busy = false;
    clearTimeout(p.timer);
    if (m.kind === 'answer') p.call.resolve(m.value);
    else p.call.reject(errors.InternalServerError(ID, `the function threw ${m.message}`));
    this.onEnd(this);
  }

  private end(err: Error): void {
    if (this.ended) return;
    this.ended = true;
    const p = this.pending;
    this.pending = undefined;
    if (p) {
      clearTimeout(p.timer);
      p.call.reject(err);
    }
    this.onEnd(this);
  }

  get gone(): boolean {
    return this.ended;
  }
}

/** Up to `settings.workers` workers; calls beyond wait their turn in order. */
class Pool {
  private readonly slots = new Set<Slot>();
  private readonly waiting: { request: unknown; call: Pending }[] = [];

  /** A first worker, so that a module that does not load fails the start with its reason. */
  async start(): Promise<void> {
    const slot = this.add();
    await slot.ready;
  }

  call(request: unknown): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ request, call: { resolve, reject } });
      this.dispatch();
    });
  }

  private add(): Slot {
    const slot = new Slot((s) => this.released(s));
    this.slots.add(slot);
    return slot;
  }

  private released(slot: Slot): void {
    if (slot.gone) this.slots.delete(slot);
    this.dispatch();
  }

  private dispatch(): void {
    while (this.waiting.length > 0) {
      let free = [...this.slots].find((s) => !s.busy && !s.gone);
      if (!free && this.slots.size < settings.workers) free = this.add();
      if (!free) return;
      const next = this.waiting.shift() as { request: unknown; call: Pending };
      const slot = free;
      slot.busy = true;
      slot.ready.then(
        () => slot.call(next.request).then(next.call.resolve, next.call.reject),
        (err: Error) => next.call.reject(errors.InternalServerError(ID, `the function could not be loaded: ${err.message}`)),
      );
    }
  }
}

const def = defineService({
  name: settings.service,
  version: '1.0.0',
  endpoints: {
    Call: endpoint({
      description: "Calls the function with the request; answers what it returns",
      request: z.object({ request: z.record(z.string(), z.unknown()).optional() }),
      response: z.object({ response: z.unknown() }),
    }),
  },
});

const pool = new Pool();
try {
  await pool.start();
} catch (err) {
  // the runtime shows this as the reason the start failed ("crashed at start")
  process.stderr.write(`function ${settings.service.slice(3)} could not be loaded: ${(err as Error).message}\n`);
  process.exit(1);
}
await run(def, { Call: async ({ request }) => ({ response: await pool.call(request ?? {}) }) });
