import { isIP } from 'node:net';
import { errors } from '@micro/sdk';

/**
 * Wrong secrets and passwords, counted per (account, source) and per source. A source is
 * the caller's network address as the server saw it (see `sourceOf`). Waits begin after
 * `free` wrong ones in a row for one account from one source, and after `sourceFree` wrong
 * ones from one source over any accounts (a spray); each further wrong one doubles the
 * wait, from 1 s up to `maxWaitMs`. While a wait lasts every attempt from that source (for
 * that account) is a 429 that says how long is left, answered before any hashing: a
 * guesser cannot keep the server busy with scrypt either.
 *
 * Decisions, written down:
 * - Keyed by source as well as account, so that a guesser makes only its own source wait:
 *   the owner logging in from another address (a source in good standing: no run of
 *   failures from it) still gets in while the guesser is throttled. A right secret ends
 *   the (account, source) run; it does not end the source's run (a sprayer who owns one
 *   account cannot wash its count with it), which is forgotten `maxWaitMs` after its
 *   last wrong attempt.
 * - The source is what the transport saw, never what the caller says: the TCP peer of
 *   the RPC connection (`ctx.peer`, set by the RPC server from its socket), or for a call
 *   the gateway makes in this process for an HTTP client, that client's socket address
 *   (X-Forwarded-For only with MICRO_GATEWAY_TRUST_PROXY), handed over in `CallOptions.peer`,
 *   which no remote caller can set (it is not on the wire). IPv6 addresses count per /64
 *   (what one host usually holds). Every caller of the unix socket, and of the NATS
 *   transport, is one source each: sandboxed tenant services reach the server through a
 *   unix socket too, so it is not a mark of trust.
 * - Secrets the server generated (admin.json's, the runtime's service secrets, generated
 *   account secrets: ≥ 192 random bits, checked with one keyed hash) are checked first,
 *   outside the throttle (`fast`): guessing at them is pointless, and their check costs no
 *   scrypt. So the local admin — the CLI on the server's machine with admin.json — and
 *   every service the runtime started are never locked out, whoever guesses at them from
 *   wherever (the same source included). Only chosen secrets (passwords) are throttled.
 * - Guessers spread over many sources get `free` tries per account per source: the
 *   gateway's rate limit per address, and IPv6 /64 grouping, bound what one host has.
 * - In memory, per server node: a guesser spread over N nodes gets N times the attempts
 *   (still a handful a minute each). Bounded to `maxEntries` runs per map; the oldest go
 *   first.
 */
export interface LoginThrottleOptions {
  /** wrong attempts in a row for one account from one source until waits begin (default 5, at least 1) */
  free?: number;
  /** wrong attempts from one source over all accounts until its waits begin (default 20, at least 1) */
  sourceFree?: number;
  /** the longest wait; also how long a source's run is remembered after its last wrong attempt (default 15 minutes) */
  maxWaitMs?: number;
  /** runs tracked at once, per map (default 10,000) */
  maxEntries?: number;
  now?: () => number;
}

interface Run {
  failures: number;
  until: number;
  last: number;
}

export class LoginThrottle {
  private readonly free: number;
  private readonly sourceFree: number;
  private readonly maxWaitMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  private readonly runs = new Map<string, Run>();
  private readonly sources = new Map<string, Run>();

  constructor(options: LoginThrottleOptions = {}) {
    this.free = Math.max(1, options.free ?? 5);
    this.sourceFree = Math.max(1, options.sourceFree ?? 20);
    this.maxWaitMs = options.maxWaitMs ?? 15 * 60_000;
    this.maxEntries = options.maxEntries ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /**
   * `fast` (a generated secret, see above) first; then, unless the source or the
   * (account, source) must wait (a 429), `check`. A wrong answer (false, undefined) counts
   * against both; a right one clears the (account, source) run.
   */
  async attempt<T>(
    namespace: string,
    id: string,
    source: string,
    what: string,
    check: () => Promise<T | undefined | false>,
    fast?: () => T | undefined | Promise<T | undefined>,
  ): Promise<T | undefined | false> {
    const quick = fast ? await fast() : undefined;
    if (quick) return quick;
    const key = `${namespace}\u0000${id}\u0000${source}`;
    const now = this.now();
    const src = this.live(this.sources, source, now);
    if (src && src.until > now) throw errors.TooManyRequests('auth', `too many wrong ${what}s from your address: try again in ${Math.ceil((src.until - now) / 1000)} s`);
    const run = this.runs.get(key);
    if (run && run.until > now) throw errors.TooManyRequests('auth', `too many wrong ${what}s for ${id} in namespace ${namespace}: try again in ${Math.ceil((run.until - now) / 1000)} s`);
    const result = await check();
    if (result) {
      this.runs.delete(key);
      return result;
    }
    const at = this.now();
    this.count(this.runs, key, run, this.free, at);
    this.count(this.sources, source, this.live(this.sources, source, at), this.sourceFree, at);
    return result;
  }

  /** A source's run, unless it was forgotten (maxWaitMs after its last wrong attempt). */
  private live(map: Map<string, Run>, key: string, now: number): Run | undefined {
    const run = map.get(key);
    if (run && now - run.last > this.maxWaitMs && run.until <= now) {
      map.delete(key);
      return undefined;
    }
    return run;
  }

  private count(map: Map<string, Run>, key: string, run: Run | undefined, free: number, now: number): void {
    const failures = (run?.failures ?? 0) + 1;
    // the free-th wrong one in a row starts the first wait (1 s), each further one doubles it
    const over = failures - free;
    const until = over >= 0 ? now + Math.min(this.maxWaitMs, 1000 * 2 ** Math.min(over, 30)) : 0;
    // re-inserted: the Map's order is the order of last failure, the oldest is first out
    map.delete(key);
    map.set(key, { failures, until, last: now });
    while (map.size > this.maxEntries) map.delete(map.keys().next().value as string);
  }

  /** (account, source) pairs with a run of wrong attempts (for tests and stats) */
  get size(): number {
    return this.runs.size;
  }

  /** sources with a run of wrong attempts */
  get sourceCount(): number {
    return this.sources.size;
  }
}

/**
 * The throttle's source of a caller from `ctx.peer` (as the transport or the gateway in
 * this process set it): `tcp:<address>` with IPv4-mapped IPv6 as IPv4 and IPv6 cut to its
 * /64; `unix` and anything else as it is; none (a call in this process without a peer, the
 * NATS transport) is `local`.
 */
export function sourceOf(peer: string | undefined): string {
  if (!peer) return 'local';
  if (!peer.startsWith('tcp:')) return peer;
  let ip = peer.slice(4);
  if (ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4) ip = ip.slice(7);
  if (isIP(ip) !== 6) return `tcp:${ip}`;
  return `tcp:${expand6(ip).slice(0, 4).join(':')}::/64`;
}

/** The eight groups of an IPv6 address (without a zone). */
function expand6(ip: string): string[] {
  const bare = ip.split('%')[0] as string;
  const [head, tail] = bare.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  // an embedded IPv4 tail counts as two groups
  const groups = (xs: string[]) => xs.flatMap((g) => (g.includes('.') ? ['0', '0'] : [g]));
  const hs = groups(h);
  const ts = groups(t);
  const fill = tail === undefined ? [] : Array<string>(8 - hs.length - ts.length).fill('0');
  return [...hs, ...fill, ...ts].map((g) => g.toLowerCase().replace(/^0+(?=.)/, ''));
}
