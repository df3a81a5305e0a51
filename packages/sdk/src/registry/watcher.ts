/*
 * The watcher every registry hands out: a bounded queue of events read with for-await.
 *
 * Registries push events as they happen and never wait for a reader, so a reader that
 * stops reading must not make the registry grow without bound: past `limit` queued events
 * the watcher is dropped, and its iterator throws so the reader knows it missed changes
 * (it should re-read the registry and watch again).
 */

import { ServiceUnavailable } from '../errors/errors.js';
import type { WatchEvent, Watcher } from './registry.js';
import { REGISTRY_ERROR_ID } from './util.js';

export const DEFAULT_WATCH_BUFFER = 10_000;

interface Waiter {
  resolve(result: IteratorResult<WatchEvent>): void;
  reject(err: unknown): void;
}

export class QueueWatcher implements Watcher, AsyncIterator<WatchEvent> {
  private queue: WatchEvent[] = [];
  private head = 0;
  private waiters: Waiter[] = [];
  private done = false;
  private error: unknown;
  private readonly onStop: () => void;
  private readonly limit: number;

  /** `onStop` runs once, when the watcher ends for any reason (the registry unsubscribes it). */
  constructor(onStop: () => void, limit: number = DEFAULT_WATCH_BUFFER) {
    this.onStop = onStop;
    this.limit = limit;
  }

  get stopped(): boolean {
    return this.done;
  }

  /** Queues an event for the reader; drops the watcher when the reader is too far behind. */
  push(event: WatchEvent): void {
    if (this.done) return;
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter.resolve({ value: event, done: false });
      return;
    }
    if (this.queue.length - this.head >= this.limit) {
      this.fail(
        ServiceUnavailable(REGISTRY_ERROR_ID, `registry watcher dropped: its reader fell more than ${this.limit} events behind`),
      );
      return;
    }
    this.queue.push(event);
  }

  /** Ends the watcher with an error that the reader's next `next()` throws. */
  fail(err: unknown): void {
    if (this.done) return;
    this.error = err;
    this.finish();
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(err);
    if (waiters.length > 0) this.error = undefined;
  }

  /** Ends the watcher: the reader's loop finishes; queued events are discarded. */
  stop(): void {
    if (this.done) return;
    this.finish();
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.resolve({ value: undefined, done: true });
  }

  next(): Promise<IteratorResult<WatchEvent>> {
    if (this.head < this.queue.length) {
      const value = this.queue[this.head] as WatchEvent;
      this.queue[this.head++] = undefined as unknown as WatchEvent;
      // Compact now and then so a long-lived watcher does not keep a growing array.
      if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.error !== undefined) {
      const err = this.error;
      this.error = undefined; // thrown once; afterwards the iterator is simply done
      return Promise.reject(err);
    }
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Called by for-await when the loop is left early (break, return, throw). */
  return(): Promise<IteratorResult<WatchEvent>> {
    this.stop();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
    return this;
  }

  private finish(): void {
    this.done = true;
    this.queue = [];
    this.head = 0;
    this.onStop();
  }
}
