import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * A private, bounded folder of files, one per message that was not sent for real: the
 * offline default of the platform's providers (email's `.eml` files, sms's `.json`). The
 * folder is 0700 and the files 0600 because messages hold one-time codes; a file is written
 * under a temporary name with `wx` (never follows or overwrites) and renamed whole; at most
 * `max` files are kept, the oldest removed after each write, so a flood cannot fill the disk.
 */
export interface OutboxOptions {
  dir: string;
  /** the files' extension, with its dot (`.eml`) */
  extension: string;
  /** the most files kept, the oldest removed first; default 1000 */
  max?: number;
  /** called once, when the folder is first made ready (to tell where it is) */
  onReady?: () => void;
  /** default Date.now */
  now?: () => number;
}

export const DEFAULT_OUTBOX_MAX = 1000;

export class Outbox {
  readonly max: number;
  private readonly now: () => number;
  private readonly names: RegExp;
  private counter = 0;
  private ready: Promise<void> | undefined;

  constructor(private readonly options: OutboxOptions) {
    this.max = options.max ?? DEFAULT_OUTBOX_MAX;
    if (!Number.isInteger(this.max) || this.max < 1) throw new Error(`outbox: max must be a whole number ≥ 1, got ${this.max}`);
    if (!/^\.[a-z0-9]+$/.test(options.extension)) throw new Error(`outbox: the extension must be like ".eml", got ${JSON.stringify(options.extension)}`);
    this.now = options.now ?? Date.now;
    // `20250102T030405678Z-000001-1a2b3c4d.eml`: time first so names sort by time, then a counter and random bytes so they never collide
    this.names = new RegExp(`^\\d{8}T\\d{9}Z-\\d{6}-[0-9a-f]{8}\\${options.extension}$`);
  }

  get dir(): string {
    return this.options.dir;
  }

  /** Writes one file whole; resolves with its name once it is there. */
  async write(bytes: Buffer | string): Promise<string> {
    await this.prepare();
    const name = this.nextName();
    const temporary = join(this.dir, `.${name}.tmp`);
    await writeFile(temporary, bytes, { mode: 0o600, flag: 'wx' });
    await rename(temporary, join(this.dir, name));
    await this.prune();
    return name;
  }

  /** The outbox's files, oldest first. */
  async files(): Promise<string[]> {
    const names = await readdir(this.dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [];
      throw err;
    });
    return names.filter((n) => this.names.test(n)).sort();
  }

  private prepare(): Promise<void> {
    this.ready ??= this.makeDir().catch((err: unknown) => {
      this.ready = undefined;
      throw err;
    });
    return this.ready;
  }

  private async makeDir(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    // An existing folder keeps its mode under mkdir; tighten it, it holds one-time codes.
    await chmod(this.dir, 0o700);
    this.options.onReady?.();
  }

  private nextName(): string {
    const stamp = new Date(this.now()).toISOString().replace(/[-:.]/g, '');
    this.counter = (this.counter + 1) % 1_000_000;
    return `${stamp}-${String(this.counter).padStart(6, '0')}-${randomBytes(4).toString('hex')}${this.options.extension}`;
  }

  private async prune(): Promise<void> {
    const files = await this.files();
    for (const name of files.slice(0, Math.max(0, files.length - this.max))) {
      // Another writer may have removed it first; that is the outcome wanted.
      await unlink(join(this.dir, name)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    }
  }
}
