import { Outbox } from '@micro/sdk';

/** One text message as a provider sends it: already checked (E.164 `to`, bounded body). */
export interface Sms {
  to: string;
  body: string;
}

/** What a provider says of a message it took: its id there and its state (`queued`, `outbox`). */
export interface Sent {
  id: string;
  status: string;
}

/**
 * How text messages leave the platform: one account (Twilio's REST API) or, offline, the
 * outbox. A provider either takes the message or throws a MicroError that says what
 * happened; it never throws for input the handler checked.
 */
export interface SmsProvider {
  readonly name: string;
  send(sms: Sms, tenant: string): Promise<Sent>;
}

/**
 * The offline default: each message is a JSON file in a private, bounded folder
 * (`<MICRO_HOME>/sms-outbox`, the SDK's Outbox as the email outbox uses), where a developer
 * reads the code a message carried.
 */
export class OutboxProvider implements SmsProvider {
  readonly name = 'outbox';
  private readonly outbox: Outbox;

  constructor(dir: string, onReady?: () => void) {
    this.outbox = new Outbox({ dir, extension: '.json', ...(onReady ? { onReady } : {}) });
  }

  get dir(): string {
    return this.outbox.dir;
  }

  async send(sms: Sms, tenant: string): Promise<Sent> {
    const name = await this.outbox.write(`${JSON.stringify({ to: sms.to, body: sms.body, tenant, at: new Date().toISOString() }, null, 2)}\n`);
    return { id: name, status: 'outbox' };
  }

  files(): Promise<string[]> {
    return this.outbox.files();
  }
}
