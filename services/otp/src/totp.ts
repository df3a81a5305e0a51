import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * RFC 6238 time-based one-time passwords over RFC 4226 HOTP: HMAC-SHA1 of the step
 * counter (8 bytes, big-endian), dynamically truncated to 31 bits, the last `digits`
 * decimal digits.
 */
export function hotp(secret: Buffer, counter: number, digits: number, algorithm: 'sha1' | 'sha256' | 'sha512' = 'sha1'): string {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac(algorithm, secret).update(msg).digest();
  const offset = (mac[mac.length - 1] as number) & 0x0f;
  const bin = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(bin % 10 ** digits).padStart(digits, '0');
}

/** The step counter of a time: whole steps of `step` seconds since 1970. */
export function stepOf(timeSeconds: number, step: number): number {
  return Math.floor(timeSeconds / step);
}

/** The code at `timeSeconds` with steps of `step` seconds (RFC 6238: 30). */
export function totp(secret: Buffer, timeSeconds: number, step: number, digits: number, algorithm: 'sha1' | 'sha256' | 'sha512' = 'sha1'): string {
  return hotp(secret, stepOf(timeSeconds, step), digits, algorithm);
}

/** Constant-time equality of two codes. */
export function sameCode(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
