/**
 * How the platform sends email (verification codes, invites, the list of one's
 * namespaces): one interface, engines beside it. `MemoryMailer` keeps what it sends in
 * memory (embedding, tests that read a message back); the outbox (files under MICRO_HOME)
 * and SMTP engines live beside it.
 */

import { checkMessage } from './checks.js';

export interface MailMessage {
  /** one address */
  to: string;
  subject: string;
  /** the plain-text body; every message has one */
  text: string;
  html?: string;
  /** the sender's display name in place of the configured one (the address stays the platform's) */
  fromName?: string;
  /** one address answers go to (a Reply-To header), when not the sender's */
  replyTo?: string;
}

export interface Mailer {
  /** Sends one message; resolves once it is handed over (to the SMTP server, or written to the outbox). */
  send(message: MailMessage): Promise<void>;
  close?(): Promise<void>;
}

/** Keeps every message sent, in order (at most `max`, the oldest dropped first); checks messages as every engine does. */
export class MemoryMailer implements Mailer {
  readonly sent: MailMessage[] = [];

  constructor(private readonly max = 1000) {}

  async send(message: MailMessage): Promise<void> {
    this.sent.push(checkMessage(message));
    if (this.sent.length > this.max) this.sent.shift();
  }

  /** The last message to `to`, if any. */
  lastTo(to: string): MailMessage | undefined {
    for (let i = this.sent.length - 1; i >= 0; i--) if (this.sent[i]?.to === to) return this.sent[i];
    return undefined;
  }
}
