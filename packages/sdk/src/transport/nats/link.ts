import { randomBytes } from 'node:crypto';
import type { NatsConnection, NodeConnectionOptions } from '@nats-io/transport-node';
import { connectWithBackoff } from '../../engines/connect.js';
import { DEFAULT_NATS_URL, redactUrl } from '../../engines/profile.js';

/**
 * One NATS connection per process per URL, shared by the RPC transport (clients and
 * services) and the broker. Opened at first use with connectWithBackoff; nats.js
 * reconnects on its own after that. Users hold a reference while they need it (a service
 * for its life, a client while calls are in flight); when the last one lets go the
 * connection closes after `LINGER` ms, so that a script that made a few calls exits.
 */

export type LinkEvent = 'disconnect' | 'reconnect' | 'close';

export interface LinkOptions {
  /** give up connecting after this many ms of retries (default 30,000; 0 = one attempt) */
  maxWait?: number;
  /** this caller waits at most this long for a connection someone else is opening (ms) */
  wait?: number;
  /** told about each failed attempt */
  onRetry?: (message: string) => void;
}

/** Default ms a connection nobody uses stays open (a caller soon after reuses it). */
export const LINGER = 2_000;
/** NATS's default max_payload, used until the server says otherwise. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

/** nats.js, loaded on first use: a process that never talks to NATS does not pay for it */
export type NatsLib = typeof import('@nats-io/transport-node');

/** A fresh inbox prefix: `_INBOX.` and 22 random hex digits, as unguessable as NATS's own. */
export function newInbox(): string {
  return `_INBOX.${randomBytes(11).toString('hex')}`;
}

export class NatsLink {
  private refs = 0;
  private lingerTimer: NodeJS.Timeout | undefined;
  private readonly listeners = new Set<(event: LinkEvent) => void>();
  /** lost the server; nats.js is reconnecting */
  disconnected = false;
  closed = false;

  constructor(
    readonly url: string,
    readonly nc: NatsConnection,
    readonly lib: NatsLib,
  ) {
    void this.watch();
    void nc.closed().then(() => this.onClosed());
  }

  /** The largest message the server accepts (max_payload, 1 MiB by default). */
  get maxPayload(): number {
    return this.nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD;
  }

  retain(): void {
    this.refs++;
    if (this.lingerTimer) {
      clearTimeout(this.lingerTimer);
      this.lingerTimer = undefined;
    }
  }

  release(): void {
    if (--this.refs > 0 || this.closed) return;
    this.refs = 0;
    this.lingerTimer ??= setTimeout(() => {
      this.lingerTimer = undefined;
      if (this.refs === 0) void this.close();
    }, LINGER);
  }

  on(listener: (event: LinkEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    if (links.get(this.url)?.link === this) links.delete(this.url);
    if (!this.nc.isClosed()) await this.nc.close().catch(() => undefined);
    this.onClosed();
  }

  private emit(event: LinkEvent): void {
    for (const l of [...this.listeners]) {
      try {
        l(event);
      } catch {
        // a listener's failure is its own
      }
    }
  }

  private async watch(): Promise<void> {
    for await (const s of this.nc.status()) {
      if (s.type === 'disconnect') {
        this.disconnected = true;
        this.emit('disconnect');
      } else if (s.type === 'reconnect') {
        this.disconnected = false;
        this.emit('reconnect');
      }
    }
  }

  private onClosed(): void {
    if (this.closed) return;
    this.closed = true;
    if (links.get(this.url)?.link === this) links.delete(this.url);
    this.emit('close');
    this.listeners.clear();
  }
}

interface Entry {
  promise: Promise<NatsLink>;
  link: NatsLink | undefined;
}
const links = new Map<string, Entry>();

/** The URL of NATS when none is given: MICRO_NATS_URL, else nats://127.0.0.1:4222. */
export function natsUrlFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return env.MICRO_NATS_URL || DEFAULT_NATS_URL;
}

/**
 * The process's connection to `url`, opened if need be, with one reference taken for the
 * caller (give it back with `release()`).
 */
export async function acquireLink(url: string, options: LinkOptions = {}): Promise<NatsLink> {
  let entry = links.get(url);
  if (!entry) {
    const e: Entry = { promise: open(url, options), link: undefined };
    entry = e;
    links.set(url, e);
    e.promise.then(
      (link) => (e.link = link),
      () => {
        if (links.get(url) === e) links.delete(url);
      },
    );
  }
  const link = entry.link ?? (options.wait === undefined ? await entry.promise : await within(entry.promise, options.wait, url));
  link.retain();
  return link;
}

/** Closes every shared connection (tests, and a process that shuts down). */
export async function closeLinks(): Promise<void> {
  const all = [...links.values()];
  links.clear();
  await Promise.all(all.map((e) => e.promise.then((l) => l.close(), () => undefined)));
}

async function open(url: string, options: LinkOptions): Promise<NatsLink> {
  const opts = connectOptions(url);
  const lib = await import('@nats-io/transport-node');
  const nc = await connectWithBackoff('NATS', url, () => lib.connect(opts), {
    maxWait: options.maxWait ?? 30_000,
    onRetry: options.onRetry,
  });
  return new NatsLink(url, nc, lib);
}

/** nats.js options from a URL: host and port, and user:password or a token from its user part. */
function connectOptions(url: string): NodeConnectionOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`invalid NATS URL ${redactUrl(url)}: use nats://host:port`);
  }
  if (u.protocol !== 'nats:' && u.protocol !== 'tls:') throw new Error(`invalid NATS URL ${redactUrl(url)}: use nats://host:port`);
  const opts: NodeConnectionOptions = {
    servers: `${u.hostname}:${u.port || 4222}`,
    name: `micro-${process.pid}`,
    // reconnect for ever: calls fail fast meanwhile (see `disconnected`) and work again after
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    timeout: 5_000,
  };
  if (u.username && u.password) {
    opts.user = decodeURIComponent(u.username);
    opts.pass = decodeURIComponent(u.password);
  } else if (u.username) {
    opts.token = decodeURIComponent(u.username);
  }
  return opts;
}

function within<T>(promise: Promise<T>, ms: number, url: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`cannot reach NATS at ${redactUrl(url)}: not connected after ${ms} ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
