import { redactUrl } from './profile.js';

export interface BackoffOptions {
  /** give up after this many ms in all (default 30,000; 0 = one attempt) */
  maxWait?: number;
  /** first pause (default 250 ms), doubled each time up to `maxDelay` */
  initialDelay?: number;
  maxDelay?: number;
  /** told about each failed attempt (e.g. a logger's warn) */
  onRetry?: (message: string, attempt: number, delay: number) => void;
  signal?: AbortSignal;
}

/**
 * Connects to an engine, retrying with exponential backoff while it is not there yet
 * (an engine that starts after micro server, or restarts). The error at the end names
 * the engine, the URL (password hidden), the last cause and what to do.
 */
export async function connectWithBackoff<T>(engine: string, url: string, connect: () => Promise<T>, options: BackoffOptions = {}): Promise<T> {
  const maxWait = options.maxWait ?? 30_000;
  const maxDelay = options.maxDelay ?? 5_000;
  let delay = options.initialDelay ?? 250;
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await connect();
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      const waited = Date.now() - started;
      if (options.signal?.aborted || waited + delay > maxWait) {
        throw new Error(
          `cannot reach ${engine} at ${redactUrl(url)} (${reason}) after ${attempt} attempt${attempt === 1 ? '' : 's'} in ${Math.round(waited / 100) / 10}s: ` +
            `start ${engine} or point the URL elsewhere (see MICRO_PROFILE in the README)`,
          { cause: err },
        );
      }
      options.onRetry?.(`cannot reach ${engine} at ${redactUrl(url)} (${reason}); retrying in ${delay} ms`, attempt, delay);
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, maxDelay);
    }
  }
}
