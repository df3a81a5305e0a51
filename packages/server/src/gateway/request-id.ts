import { randomUUID } from 'node:crypto';

/**
 * The gateway's request ids (X-Request-Id): UUIDs of version 7 (RFC 9562), the first 48
 * bits the time in ms, then 74 random bits. Why not version 4: a request id is the key of
 * what metering writes for a call (the usage record's primary key, its posting's key in
 * the ledger, the outbox row), and random keys land on a random page of each of those
 * B-trees — every group commit then wrote a page per call and index (profiled: about
 * two thirds of the meter's CPU per recorded call on SQLite). Ids made later sort
 * after (to the millisecond), so their rows are appended. Unguessable as before: the
 * random part is as long as a random UUID's but for its 48 bits of time.
 *
 * The random bits are those of `randomUUID()` (Node's pool of random bytes: no system
 * call per id), the time overwrites its first 12 hexadecimal digits and its version.
 */
export function requestId(now = Date.now()): string {
  const random = randomUUID();
  const time = now.toString(16).padStart(12, '0');
  // random: xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx: keep from the 3 digits after the version on (the variant is RFC's)
  return `${time.slice(0, 8)}-${time.slice(8, 12)}-7${random.slice(15)}`;
}
