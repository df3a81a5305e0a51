import { randomFillSync } from 'node:crypto';

/**
 * Random hex ids (trace ids, span ids, node ids) drawn from a pre-filled pool, so the hot
 * path does not pay for a crypto call per id.
 */
const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let offset = POOL_SIZE;

export function randomHex(bytes: number): string {
  if (offset + bytes > POOL_SIZE) {
    randomFillSync(pool);
    offset = 0;
  }
  const hex = pool.toString('hex', offset, offset + bytes);
  offset += bytes;
  return hex;
}

/** 16 random bytes as 32 hex characters (W3C trace id). */
export const newTraceId = (): string => randomHex(16);
/** 8 random bytes as 16 hex characters (W3C span id). */
export const newSpanId = (): string => randomHex(8);
