/*
 * The watcher every registry hands out: a bounded queue of events read with for-await
 * (see util/bounded-queue.ts). Past `limit` queued events the watcher is dropped and its
 * iterator throws, so the reader knows it missed changes (it should re-read the registry
 * and watch again).
 */

import { ServiceUnavailable } from '../errors/errors.js';
import { BoundedQueue } from '../util/bounded-queue.js';
import type { WatchEvent, Watcher } from './registry.js';
import { REGISTRY_ERROR_ID } from './util.js';

export const DEFAULT_WATCH_BUFFER = 10_000;

export class QueueWatcher extends BoundedQueue<WatchEvent> implements Watcher {
  /** `onStop` runs once, when the watcher ends for any reason (the registry unsubscribes it). */
  constructor(onStop: () => void, limit: number = DEFAULT_WATCH_BUFFER) {
    super(limit, () => ServiceUnavailable(REGISTRY_ERROR_ID, `registry watcher dropped: its reader fell more than ${limit} events behind`), onStop);
  }

  get stopped(): boolean {
    return this.ended;
  }
}
