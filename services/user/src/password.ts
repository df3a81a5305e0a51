import { createHash, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * Passwords as micro's auth service keeps the secrets people choose (SecretHasher in
 * packages/server/src/auth/crypto.ts): scrypt with N = 16384, r = 8, p = 1, a 32-byte key
 * and a random 16-byte salt per password, compared in constant time. The SDK exports no
 * hasher, so the same parameters are kept here.
 */
export interface PasswordHash {
  kind: 'scrypt';
  /** hex */
  salt: string;
  /** hex */
  hash: string;
}

const KEYLEN = 32;
const OPTIONS: ScryptOptions = { N: 16384, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

function derive(password: string, salt: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(password.normalize('NFC'), salt, KEYLEN, OPTIONS, (err, key) => (err ? reject(err) : resolve(key))));
}

export async function hashPassword(password: string): Promise<PasswordHash> {
  const salt = randomBytes(16);
  return { kind: 'scrypt', salt: salt.toString('hex'), hash: (await derive(password, salt)).toString('hex') };
}

/**
 * Whether `password` is the one of `stored`. Without a stored hash (no such user) it
 * still runs scrypt once, so the time taken does not tell which usernames exist.
 */
export async function checkPassword(password: string, stored: PasswordHash | undefined): Promise<boolean> {
  if (!stored) {
    await derive(password, randomBytes(16));
    return false;
  }
  const candidate = await derive(password, Buffer.from(stored.salt, 'hex'));
  const expected = Buffer.from(stored.hash, 'hex');
  return candidate.length === expected.length && timingSafeEqual(candidate, expected);
}

/** A secret to hand out (session ids, link tokens): 32 random bytes, base64url. */
export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * What is stored of a secret handed out: its SHA-256 (the secret has 256 random bits, so a
 * fast hash is enough), so that reading the store does not give a working session or link.
 */
export function digest(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** Constant-time equality of two hex digests. */
export function sameDigest(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && timingSafeEqual(x, y);
}
