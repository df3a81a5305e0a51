/**
 * What a deployed function's project says about it (`function.json`, written by Deploy
 * beside the wrapper): read by the wrapper, which runs in the tenant's sandbox.
 */
export interface FunctionSettings {
  /** the service the wrapper registers: `fn-<name>` */
  service: string;
  /** the user's module, relative to the project: `fn.js`, or `out/fn.js` compiled from `fn.ts` */
  module: string;
  /** the exported function to call; empty: the default export */
  entrypoint: string;
  /** ms a call may run before its worker is stopped */
  timeoutMs: number;
  /** MiB of heap a call's worker may use before it is stopped */
  memoryMb: number;
  /** calls served at once (one worker thread each) */
  workers: number;
}

/** What a worker answers: once when it has loaded the module, then once per call. */
export type WorkerMessage =
  | { kind: 'ready' }
  | { kind: 'failed'; message: string }
  | { kind: 'answer'; id: number; value: unknown }
  | { kind: 'threw'; id: number; message: string };
