import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Engines } from '@micro/sdk';

/**
 * Signed URLs of space (Download, Upload): the gateway's `/space/<namespace>/<name>` with
 * `expires` (unix seconds) and `signature` (HMAC-SHA256, base64url) over the method, the
 * namespace, the name, the visibility asked for and the expiry. Whoever has the URL may do
 * that one thing until it expires; nothing else can be derived from it. The key is made
 * once and kept in the store of the service's own namespace (shared by the nodes); it is
 * never handed out.
 */
export class Signer {
  private key: Promise<Buffer> | undefined;

  constructor(private readonly engines: Pick<Engines, 'store' | 'sync'>) {}

  async sign(home: string, parts: SignedParts): Promise<string> {
    return createHmac('sha256', await this.keyOf(home)).update(text(parts)).digest('base64url');
  }

  /** Whether `signature` is the one of `parts` and has not expired. */
  async verify(home: string, parts: SignedParts, signature: string, now = Date.now()): Promise<boolean> {
    if (!(parts.expires * 1000 > now)) return false;
    const want = Buffer.from(await this.sign(home, parts));
    const got = Buffer.from(signature);
    return got.length === want.length && timingSafeEqual(got, want);
  }

  private keyOf(home: string): Promise<Buffer> {
    this.key ??= this.load(home).catch((err: unknown) => {
      this.key = undefined;
      throw err;
    });
    return this.key;
  }

  /** The key of the store, made under a lock the first time (two nodes starting at once make one). */
  private async load(home: string): Promise<Buffer> {
    const scope = { namespace: home, database: 'space', table: 'keys' };
    const lock = await this.engines.sync.lock('space-signing-key', { namespace: home, ttl: 10_000, wait: 10_000 });
    try {
      const [rec] = await this.engines.store.read('signing', scope);
      if (rec) return Buffer.from(rec.value as string, 'base64');
      const key = randomBytes(32);
      await this.engines.store.write({ key: 'signing', value: key.toString('base64') }, scope);
      return key;
    } finally {
      await lock.release().catch(() => undefined);
    }
  }
}

export interface SignedParts {
  method: 'GET' | 'PUT';
  namespace: string;
  name: string;
  /** PUT: the visibility the object gets */
  visibility: string;
  /** unix seconds */
  expires: number;
}

function text(p: SignedParts): string {
  return [p.method, p.namespace, p.name, p.visibility, String(p.expires)].join('\n');
}
