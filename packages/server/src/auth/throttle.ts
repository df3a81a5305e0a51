import { errors } from '@micro/sdk';

/**
 * Wrong secrets and passwords, per account (namespace and id): after `free` wrong ones in a
 * row, the account's secret is not checked again until a wait has passed, 1 s doubling
 * with each further wrong one up to `maxWaitMs`. A right one ends the run. While the wait
 * lasts every attempt is a 429 that says how long is left, before any hashing (a guesser
 * cannot keep the server busy with scrypt either).
 *
 * Decisions, written down:
 * - Keyed by account, not by caller address: the auth service is reached over RPC too,
 *   where an address could be made up. The price is that somebody who knows an id can keep
 *   its password logins waiting; refresh tokens, API keys and tokens already issued keep
 *   working, and the wait is at most `maxWaitMs` after the last wrong attempt.
 * - In memory, per server node: a guesser spread over N nodes gets N times the attempts
 *   (still a handful a minute each). Bounded to `maxAccounts` entries; the oldest go first.
 */
export interface LoginThrottleOptions {
  /** wrong attempts in a row until waits begin: the free-th starts the first (default 5, at least 1) */
  free?: number;
  /** the longest wait (default 15 minutes) */
  maxWaitMs?: number;
  /** accounts tracked at once (default 10,000) */
  maxAccounts?: number;
  now?: () => number;
}

interface Run {
  failures: number;
  until: number;
}

export class LoginThrottle {
  private readonly free: number;
  private readonly maxWaitMs: number;
  private readonly maxAccounts: number;
  private readonly now: () => number;
  private readonly runs = new Map<string, Run>();

  constructor(options: LoginThrottleOptions = {}) {
    this.free = Math.max(1, options.free ?? 5);
    this.maxWaitMs = options.maxWaitMs ?? 15 * 60_000;
    this.maxAccounts = options.maxAccounts ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /**
   * Checks `check` (the secret) unless the account must wait: a 429 then. A wrong answer
   * (false, undefined) counts; a right one clears the account's run.
   */
  async attempt<T>(namespace: string, id: string, what: string, check: () => Promise<T | undefined | false>): Promise<T | undefined | false> {
    const key = `${namespace}\u0000${id}`;
    const run = this.runs.get(key);
    const wait = run ? run.until - this.now() : 0;
    if (wait > 0) {
      const seconds = Math.ceil(wait / 1000);
      throw errors.TooManyRequests('auth', `too many wrong ${what}s for ${id} in namespace ${namespace}: try again in ${seconds} s`);
    }
    const result = await check();
    if (result) {
      this.runs.delete(key);
      return result;
    }
    const failures = (run?.failures ?? 0) + 1;
    // the free-th wrong one in a row starts the first wait (1 s), each further one doubles it
    const over = failures - this.free;
    const until = over >= 0 ? this.now() + Math.min(this.maxWaitMs, 1000 * 2 ** Math.min(over, 30)) : 0;
    // re-inserted: the Map's order is the order of last failure, the oldest is first out
    this.runs.delete(key);
    this.runs.set(key, { failures, until });
    while (this.runs.size > this.maxAccounts) this.runs.delete(this.runs.keys().next().value as string);
    return result;
  }

  /** accounts with a run of wrong attempts (for tests and stats) */
  get size(): number {
    return this.runs.size;
  }
}
