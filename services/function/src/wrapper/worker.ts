import { parentPort, workerData } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import type { WorkerMessage } from './settings.js';

/**
 * One worker thread of a deployed function: loads the user's module once, then answers
 * each request with what the exported function returns. Running the user's code here and
 * not on the service's own thread is what lets the wrapper stop a call that loops forever
 * (Worker.terminate) or allocates without end (resourceLimits) and stay up itself.
 */
const port = parentPort;
if (!port) throw new Error('worker.js runs as a worker thread of main.js');
const { module, entrypoint } = workerData as { module: string; entrypoint: string };

const post = (m: WorkerMessage) => port.postMessage(m);

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

type Handler = (request: unknown) => unknown;

/** The function to call: the export named `entrypoint`, else the default export. */
function pick(mod: Record<string, unknown>): Handler {
  const fromDefault = mod.default as Record<string, unknown> | undefined;
  const found = entrypoint ? (mod[entrypoint] ?? (fromDefault && typeof fromDefault === 'object' ? fromDefault[entrypoint] : undefined)) : mod.default;
  if (typeof found === 'function') return found as Handler;
  const exported = Object.keys(mod).filter((k) => typeof mod[k] === 'function');
  const wanted = entrypoint ? `function named ${entrypoint}` : 'default export that is a function';
  throw new Error(`the module has no ${wanted} (its exported functions: ${exported.join(', ') || 'none'})`);
}

let handler: Handler;
try {
  handler = pick((await import(pathToFileURL(module).href)) as Record<string, unknown>);
  post({ kind: 'ready' });
} catch (err) {
  post({ kind: 'failed', message: describe(err) });
  process.exit(1);
}

port.on('message', (m: { id: number; request: unknown }) => {
  void (async () => {
    try {
      const value = await handler(m.request);
      // what goes back is JSON: a Map, a Date or a class instance arrive as JSON would make them
      const text = JSON.stringify(value === undefined ? null : value);
      post({ kind: 'answer', id: m.id, value: JSON.parse(text ?? 'null') as unknown });
    } catch (err) {
      post({ kind: 'threw', id: m.id, message: describe(err) });
    }
  })();
});
