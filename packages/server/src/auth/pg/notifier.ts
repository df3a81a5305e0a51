import pg from 'pg';
import { redactUrl, type Logger } from '@micro/sdk';

/**
 * One connection of its own (not from the pool) that LISTENs on the auth channel of the
 * platform, so that a change committed by any node reaches the caches of every node.
 *
 * Postgres delivers a NOTIFY only when its transaction commits, and to every session that
 * listens then. What was sent while this connection was down is lost: so `down` is told
 * at once (caches flush and stop caching), and `up` again after the LISTEN is back
 * (caches flush once more, to drop what was read in the gap). Reconnects back off from
 * 250 ms to 5 s.
 */
export class Notifier {
  private client: pg.Client | undefined;
  private up = false;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private delay = 250;
  /** how many times the LISTEN connection was lost */
  losses = 0;

  constructor(
    private readonly url: string,
    readonly channel: string,
    private readonly handlers: { message(payload: string): void; up(): void; down(): void },
    private readonly logger?: Logger,
  ) {}

  /** Whether the LISTEN is in force: only then may a cache be trusted. */
  get listening(): boolean {
    return this.up;
  }

  /** First connection; a failure here is retried in the background like any later one. */
  async start(): Promise<void> {
    await this.connect();
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    // named after the channel, so that an operator (or a test) can find it in pg_stat_activity
    const client = new pg.Client({ connectionString: this.url, keepAlive: true, connectionTimeoutMillis: 5_000, application_name: `${this.channel} listen`.slice(0, 63) });
    this.client = client;
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client));
    client.on('notification', (m) => {
      if (m.channel === this.channel && m.payload !== undefined) this.handlers.message(m.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN "${this.channel}"`);
    } catch (err) {
      this.lost(client, err);
      return;
    }
    if (this.client !== client || this.closed) return;
    this.up = true;
    this.delay = 250;
    this.handlers.up();
  }

  private lost(client: pg.Client, err?: unknown): void {
    if (this.client !== client) return;
    this.client = undefined;
    client.removeAllListeners('end');
    client.on('error', () => undefined);
    client.end().catch(() => undefined);
    const was = this.up;
    this.up = false;
    if (was) {
      this.losses++;
      this.handlers.down();
    }
    if (this.closed) return;
    if (was) this.logger?.warn({ err: err instanceof Error ? err.message : undefined, url: redactUrl(this.url) }, 'auth: lost the LISTEN connection to postgres; caches are off until it is back');
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.connect();
    }, this.delay);
    this.timer.unref();
    this.delay = Math.min(this.delay * 2, 5_000);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    const client = this.client;
    this.client = undefined;
    this.up = false;
    if (client) {
      client.removeAllListeners('end');
      client.on('error', () => undefined);
      await client.end().catch(() => undefined);
    }
  }
}
