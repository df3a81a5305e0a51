/**
 * A coarse timer wheel for call deadlines. Setting a Node timer per call costs more than
 * an in-process call itself, so deadlines are grouped into 10 ms buckets with one timer
 * per occupied bucket. A deadline fires between 0 and 10 ms late, which is fine for
 * timeouts.
 */
const GRANULARITY = 10;

export interface DeadlineEntry {
  /** absolute epoch ms */
  readonly at: number;
  onExpire(): void;
}

const buckets = new Map<number, Set<DeadlineEntry>>();

function fire(slot: number): void {
  const bucket = buckets.get(slot);
  buckets.delete(slot);
  if (!bucket) return;
  for (const entry of bucket) {
    try {
      entry.onExpire();
    } catch {
      // an expiry handler must not stop the others
    }
  }
}

/** Schedules `entry.onExpire` at `entry.at`; returns a function that cancels it. */
export function scheduleDeadline(entry: DeadlineEntry): void {
  const slot = Math.ceil(entry.at / GRANULARITY);
  let bucket = buckets.get(slot);
  if (!bucket) {
    bucket = new Set();
    buckets.set(slot, bucket);
    const delay = Math.max(0, slot * GRANULARITY - Date.now());
    setTimeout(fire, delay, slot).unref();
  }
  bucket.add(entry);
}

export function cancelDeadline(entry: DeadlineEntry): void {
  const bucket = buckets.get(Math.ceil(entry.at / GRANULARITY));
  if (bucket) bucket.delete(entry);
}
