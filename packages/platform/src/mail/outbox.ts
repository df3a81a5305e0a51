import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '@micro/sdk';
import { checkMessage, checkSender } from './checks.js';
import { composeMessage, DEFAULT_FROM } from './compose.js';
import type { Mailer, MailMessage } from './mailer.js';

export interface OutboxMailerOptions {
  /** the folder the messages go to; `<MICRO_HOME>/outbox` when made by mailerFromEnv */
  dir: string;
  /** told once, on the first message, where the outbox is */
  logger: Logger;
  /** the most files kept, the oldest removed first; default 1000 */
  max?: number;
  /** the From header; default `M3O <no-reply@localhost>` */
  from?: string;
  /** default Date.now */
  now?: () => number;
}

export const DEFAULT_OUTBOX_MAX = 1000;
/** `20250102T030405678Z-000001-1a2b3c4d.eml`: time first so names sort by time, then a counter and random bytes so they never collide. */
const OUTBOX_NAME = /^\d{8}T\d{9}Z-\d{6}-[0-9a-f]{8}\.eml$/;

/**
 * Mail without an SMTP server: each message is written as an RFC 5322 `.eml` file that a
 * mail client opens (and a developer reads the verification code from). The folder is
 * 0700 and the files 0600 because they hold one-time codes; the folder is bounded so a
 * signup flood cannot fill the disk.
 */
export class OutboxMailer implements Mailer {
  private readonly max: number;
  private readonly from: string;
  private readonly now: () => number;
  private counter = 0;
  private ready: Promise<void> | undefined;

  constructor(private readonly options: OutboxMailerOptions) {
    this.max = options.max ?? DEFAULT_OUTBOX_MAX;
    if (!Number.isInteger(this.max) || this.max < 1) throw new Error(`outbox: max must be a whole number ≥ 1, got ${this.max}`);
    this.from = checkSender(options.from ?? DEFAULT_FROM);
    this.now = options.now ?? Date.now;
  }

  get dir(): string {
    return this.options.dir;
  }

  async send(message: MailMessage): Promise<void> {
    const checked = checkMessage(message);
    const bytes = await composeMessage(this.from, checked);
    await this.prepare();
    const name = this.nextName();
    const temporary = join(this.dir, `.${name}.tmp`);
    // 'wx' never follows or overwrites something already there; the rename makes the file appear whole.
    await writeFile(temporary, bytes, { mode: 0o600, flag: 'wx' });
    await rename(temporary, join(this.dir, name));
    await this.prune();
  }

  /** The .eml files of the outbox, oldest first. */
  async files(): Promise<string[]> {
    const names = await readdir(this.dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [];
      throw err;
    });
    return names.filter((n) => OUTBOX_NAME.test(n)).sort();
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
    this.options.logger.info(
      { outbox: this.dir, max: this.max },
      `mail: no SMTP server configured (set MICRO_SMTP_URL to send); messages are written as .eml files to ${this.dir}`,
    );
  }

  private nextName(): string {
    const stamp = new Date(this.now()).toISOString().replace(/[-:.]/g, '');
    this.counter = (this.counter + 1) % 1_000_000;
    return `${stamp}-${String(this.counter).padStart(6, '0')}-${randomBytes(4).toString('hex')}.eml`;
  }

  private async prune(): Promise<void> {
    const files = await this.files();
    for (const name of files.slice(0, Math.max(0, files.length - this.max))) {
      // Another sender may have removed it first; that is the outcome wanted.
      await unlink(join(this.dir, name)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    }
  }
}
