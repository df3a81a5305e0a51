import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * The hashing of secrets (shared by both storages of auth) and the sealing of what auth
 * must keep but not show (private signing keys, the HMAC key) in a shared database.
 */

export interface StoredSecret {
  kind: 'scrypt' | 'hmac';
  salt: string | null;
  hash: string;
}

const KEYLEN = 32;

/**
 * scrypt (salted, slow) for what people chose; HMAC-SHA256 under a server key for what the
 * server generated (≥ 192 random bits, so a fast keyed hash is enough).
 */
export class SecretHasher {
  private readonly scryptOptions: ScryptOptions;

  constructor(
    private readonly hmacKey: Buffer,
    scryptN = 16384,
  ) {
    this.scryptOptions = { N: scryptN, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
  }

  keyed(secret: string): string {
    return createHmac('sha256', this.hmacKey).update(secret).digest('hex');
  }

  async slow(secret: string): Promise<{ kind: 'scrypt'; salt: string; hash: string }> {
    const salt = randomBytes(16);
    const hash = await this.scrypt(secret, salt);
    return { kind: 'scrypt', salt: salt.toString('hex'), hash: hash.toString('hex') };
  }

  /**
   * Whether `secret` is one of `stored`. As slow for an unknown id (no stored secrets) or
   * an account without a chosen secret as for one with: timing does not tell which exist.
   */
  async matches(secret: string, stored: readonly StoredSecret[]): Promise<boolean> {
    let slowChecked = false;
    const keyed = Buffer.from(this.keyed(secret), 'hex');
    for (const s of stored) {
      const expected = Buffer.from(s.hash, 'hex');
      let candidate: Buffer = keyed;
      if (s.kind === 'scrypt') {
        candidate = await this.scrypt(secret, Buffer.from(s.salt ?? '', 'hex'));
        slowChecked = true;
      }
      if (candidate.length === expected.length && timingSafeEqual(candidate, expected)) return true;
    }
    if (!slowChecked) await this.scrypt(secret, randomBytes(16));
    return false;
  }

  /** Whether `secret` has the keyed hash `hash` (constant time). */
  keyedMatches(secret: string, hash: string): boolean {
    const candidate = Buffer.from(this.keyed(secret), 'hex');
    const expected = Buffer.from(hash, 'hex');
    return candidate.length === expected.length && timingSafeEqual(candidate, expected);
  }

  private scrypt(secret: string, salt: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => scrypt(secret, salt, KEYLEN, this.scryptOptions, (err, key) => (err ? reject(err) : resolve(key))));
  }
}

/** The least length of MICRO_AUTH_KEY: 32 characters (`openssl rand -base64 32` gives 44). */
export const MIN_AUTH_KEY_LENGTH = 32;

/**
 * AES-256-GCM under a key derived (HKDF-SHA256) from the platform's master key,
 * MICRO_AUTH_KEY, which every node of a platform is given and the database never sees.
 * Each sealed value is bound to what it is (`aad`, e.g. the kid of a signing key): a
 * value copied to another row does not open.
 */
export class Sealer {
  private readonly key: Buffer;

  constructor(masterKey: string) {
    if (typeof masterKey !== 'string' || masterKey.length < MIN_AUTH_KEY_LENGTH) {
      throw new Error(`MICRO_AUTH_KEY must be at least ${MIN_AUTH_KEY_LENGTH} random characters (e.g. \`openssl rand -base64 32\`), the same on every node`);
    }
    this.key = Buffer.from(hkdfSync('sha256', Buffer.from(masterKey, 'utf8'), Buffer.from('micro-auth'), Buffer.from('seal v1'), 32));
  }

  seal(plain: Buffer | string, aad: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const body = Buffer.concat([cipher.update(typeof plain === 'string' ? Buffer.from(plain, 'utf8') : plain), cipher.final()]);
    return `v1.${iv.toString('base64url')}.${body.toString('base64url')}.${cipher.getAuthTag().toString('base64url')}`;
  }

  /** The plain value; throws when it was sealed under another key, for another aad, or tampered with. */
  open(sealed: string, aad: string): Buffer {
    const [v, iv, body, tag] = sealed.split('.');
    if (v !== 'v1' || iv === undefined || body === undefined || tag === undefined) throw new Error('not a sealed value');
    const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]);
  }
}
