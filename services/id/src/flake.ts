/*
 * Flake ids: time, worker, sequence, packed into one integer that sorts by time.
 *
 * - snowflake (Twitter's layout, as bwmarrin/snowflake): 64 bits = 41 bits of ms since
 *   2010-11-04T01:42:54.657Z, 10 bits of worker (1,024 workers), 12 bits of sequence.
 * - bigflake (Boundary's flake layout): 128 bits = 64 bits of ms since 1970, 48 bits of
 *   worker, 16 bits of sequence.
 *
 * Both are sent as decimal strings. Unique as long as no two generators share a worker
 * id at the same time (worker.ts leases the id) and a worker's clock does not run back
 * behind ids it already made: time here never goes backwards (the last ms is kept and a
 * clock that steps back is ignored), and a sequence that runs out within a ms borrows
 * the next ms.
 */

export interface FlakeLayout {
  name: string;
  /** ms since 1970 that time 0 stands for */
  epoch: number;
  timeBits: number;
  workerBits: number;
  sequenceBits: number;
}

export const SNOWFLAKE: FlakeLayout = { name: 'snowflake', epoch: 1_288_834_974_657, timeBits: 41, workerBits: 10, sequenceBits: 12 };
export const BIGFLAKE: FlakeLayout = { name: 'bigflake', epoch: 0, timeBits: 64, workerBits: 48, sequenceBits: 16 };

export interface FlakeParts {
  /** ms since 1970 */
  time: number;
  worker: number;
  sequence: number;
}

/** A generator of one layout; the worker id is given per call (it may change when the lease does). */
export class Flake {
  private lastMs = -1;
  private sequence = 0;
  private lastWorker = -1;

  constructor(
    readonly layout: FlakeLayout,
    private readonly now: () => number = Date.now,
  ) {}

  next(worker: number): string {
    const { layout } = this;
    if (!Number.isSafeInteger(worker) || worker < 0 || worker >= 2 ** layout.workerBits) throw new RangeError(`${layout.name}: worker ${worker} out of range`);
    const ms = Math.max(this.now(), this.lastMs);
    if (ms === this.lastMs && worker === this.lastWorker) {
      this.sequence++;
      if (this.sequence >= 2 ** layout.sequenceBits) {
        this.sequence = 0;
        this.lastMs = ms + 1;
      }
    } else {
      this.sequence = 0;
      this.lastMs = ms;
    }
    this.lastWorker = worker;
    return pack(layout, { time: this.lastMs, worker, sequence: this.sequence }).toString();
  }
}

export function pack(layout: FlakeLayout, parts: FlakeParts): bigint {
  const time = BigInt(parts.time - layout.epoch);
  if (time < 0n || time >= 1n << BigInt(layout.timeBits)) throw new RangeError(`${layout.name}: time ${parts.time} out of range`);
  return (time << BigInt(layout.workerBits + layout.sequenceBits)) | (BigInt(parts.worker) << BigInt(layout.sequenceBits)) | BigInt(parts.sequence);
}

export function unpack(layout: FlakeLayout, id: string | bigint): FlakeParts {
  const n = BigInt(id);
  const mask = (bits: number) => (1n << BigInt(bits)) - 1n;
  return {
    time: Number(n >> BigInt(layout.workerBits + layout.sequenceBits)) + layout.epoch,
    worker: Number((n >> BigInt(layout.sequenceBits)) & mask(layout.workerBits)),
    sequence: Number(n & mask(layout.sequenceBits)),
  };
}
