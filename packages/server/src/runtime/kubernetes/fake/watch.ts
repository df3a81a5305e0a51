import type { ServerResponse } from 'node:http';
import type { Clock } from './clock.js';
import type { Resource } from './resources.js';
import type { FieldMatcher, Matcher } from './selectors.js';
import { type Change, type Store } from './store.js';
import { StatusError } from './status.js';
import type { KObj } from './types.js';

/**
 * A watch: newline-delimited JSON events `{type, object}` on a chunked response, as the API
 * server streams them. From a resourceVersion it replays the changes after it (410 Expired,
 * as an ERROR event, when they are forgotten); without one it first sends the current state
 * as ADDED. An object moving into or out of the selectors is ADDED or DELETED, as the
 * watch cache reports it. Bookmarks when asked for, and the stream ends after
 * `timeoutSeconds`.
 */

export interface WatchRequest {
  resource: Resource;
  namespace?: string;
  labels: Matcher;
  fields: FieldMatcher;
  resourceVersion?: string;
  sendInitialEvents?: boolean;
  bookmarks: boolean;
  timeoutMs: number;
  /** how often bookmarks are sent (real milliseconds) */
  bookmarkMs: number;
}

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export class Watch {
  private closed = false;
  private readonly stops: (() => void)[] = [];

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly res: ServerResponse,
    private readonly w: WatchRequest,
  ) {}

  /** starts streaming; the response is already 200 with its headers */
  start(): void {
    const { resourceVersion: rv, sendInitialEvents } = this.w;
    const fromNow = rv === undefined || rv === '' || rv === '0' || sendInitialEvents === true;
    if (fromNow) {
      if (sendInitialEvents !== false) for (const o of this.store.list(this.w.resource, this.w.namespace)) if (this.matches(o)) this.send('ADDED', o);
      if (sendInitialEvents === true) this.bookmark(true);
    } else {
      let replay: Change[];
      try {
        replay = this.store.since(Number(rv));
      } catch (err) {
        if (err instanceof StatusError) this.send('ERROR', err.status());
        this.close();
        return;
      }
      for (const c of replay) this.onChange(c);
    }
    this.stops.push(this.store.subscribe((c) => this.onChange(c)));
    this.stops.push(this.clock.after(this.w.timeoutMs, () => this.close()));
    if (this.w.bookmarks) this.tick();
    this.res.on('close', () => this.close());
  }

  private tick(): void {
    this.stops.push(
      this.clock.after(this.w.bookmarkMs, () => {
        this.bookmark(false);
        if (!this.closed) this.tick();
      }),
    );
  }

  private matches(o: KObj): boolean {
    if (this.w.namespace && this.w.resource.namespaced && o.metadata.namespace !== this.w.namespace) return false;
    return this.w.labels(o.metadata.labels ?? {}) && this.w.fields(o);
  }

  private onChange(c: Change): void {
    if (this.closed || c.resource !== this.w.resource) return;
    const now = this.matches(c.object);
    const was = c.prev !== undefined && this.matches(c.prev);
    if (c.type === 'DELETED') {
      if (was) this.send('DELETED', c.object);
    } else if (c.type === 'ADDED') {
      if (now) this.send('ADDED', c.object);
    } else if (now) this.send(was ? 'MODIFIED' : 'ADDED', c.object);
    else if (was) this.send('DELETED', c.object);
  }

  private bookmark(initialEnd: boolean): void {
    const metadata: Record<string, unknown> = { resourceVersion: String(this.store.rv) };
    if (initialEnd) metadata.annotations = { 'k8s.io/initial-events-end': 'true' };
    this.send('BOOKMARK', { apiVersion: this.w.resource.apiVersion, kind: this.w.resource.kind, metadata });
  }

  private send(type: EventType, object: unknown): void {
    if (this.closed || this.res.destroyed) return;
    this.res.write(`${JSON.stringify({ type, object })}\n`);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const stop of this.stops) stop();
    if (!this.res.writableEnded) this.res.end();
  }
}
