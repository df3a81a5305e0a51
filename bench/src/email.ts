/**
 * The email service's Send: one message (subject, a text and an HTML body) through the
 * gateway of a `micro server` in this process (local profile), as M3O's client sends it
 * (`POST /v1/email/Send` with an API key): the email service, then the platform's mail
 * core service by RPC (its checks, the tenant's hourly count, raised here), then its
 * SmtpMailer — nodemailer, one connection a message — to an SMTP server in this process
 * (the smtp-server package, as in the tests).
 *
 * The peer is nodemailer alone sending the same message to the same server with the same
 * transport settings (one connection a message): the ratio is what the gateway, the two
 * RPC hops, the checks and the composing of the platform's message cost. Both sides keep
 * INFLIGHT messages outstanding for messages/s; latencies p50/p99 are of messages sent one
 * at a time. Every message sent is counted by the server before the round's figures stand.
 */
import { createTransport } from 'nodemailer';
import { mailCoreService, parseSmtpUrl, SmtpMailer } from '@micro/platform';
import { startSmtpServer, type TestSmtp } from '@micro/platform/testing';
import { service } from '@micro/service-email';
import { unthrottledPlatform } from './platform.js';
import { bothSides, closedLoopThroughput, percentile, sequentialLatencies, type Benchmark, type Contestant } from './harness.js';

const INFLIGHT = 8;
const ROUND_MS = 3_000;
const LATENCIES = 100;
const FROM = 'no-reply@m3o.test';
const TO = 'bench@example.com';
const SUBJECT = 'Your weekly report';
const TEXT = 'Hello,\n\nyour report for the week is ready: 42 calls, 0 errors.\n\nThe team\n';
const HTML = '<p>Hello,</p><p>your report for the week is ready: <b>42 calls</b>, 0 errors.</p><p>The team</p>';

/** A contestant whose every message must reach the server: `sent` counts what it sent, the server what it got. */
function contestant(send: () => Promise<unknown>, smtp: TestSmtp, close: () => Promise<void>): Contestant {
  let sent = 0;
  const counted = async () => {
    await send();
    sent++;
  };
  const check = () => {
    if (smtp.received.length !== sent) throw new Error(`the SMTP server got ${smtp.received.length} messages of the ${sent} sent`);
    // the messages are not needed once counted
    smtp.received.length = 0;
    sent = 0;
  };
  return {
    async warmUp() {
      await closedLoopThroughput(counted, INFLIGHT, 1_000);
      check();
    },
    async round() {
      const values: Record<string, number> = {};
      values['email.send'] = await closedLoopThroughput(counted, INFLIGHT, ROUND_MS);
      const lat = await sequentialLatencies(counted, LATENCIES);
      values['email.send.p50'] = percentile(lat, 50) / 1000;
      values['email.send.p99'] = percentile(lat, 99) / 1000;
      check();
      return values;
    },
    close,
  };
}

/** The `after` of a test context, for the SMTP server of one side: run by that side's close. */
function cleanups(): { after(fn: () => unknown): void; run(): Promise<void> } {
  const fns: (() => unknown)[] = [];
  return { after: (fn) => void fns.push(fn), run: async () => void (await Promise.all(fns.map((fn) => fn()))) };
}

async function micro(): Promise<Contestant> {
  const done = cleanups();
  const smtp = await startSmtpServer(done);
  const mailer = new SmtpMailer({ target: parseSmtpUrl(smtp.url()), from: `Platform <${FROM}>` });
  const p = await unthrottledPlatform([service], [mailCoreService({ mailer, perTenant: 1_000_000_000 })]);
  const body = { from: 'Acme', to: TO, subject: SUBJECT, text_body: TEXT, html_body: HTML };
  const send = async () => {
    const res = await p.call(p.a.key, 'email', 'Send', body);
    if (res.status !== 200) throw new Error(`email.Send: ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
  };
  // before measuring: the message arrives, from the platform's address under the tenant's name
  await send();
  const first = smtp.received.at(-1);
  if (!first || first.from !== FROM || first.to.join() !== TO || !first.raw.toString().includes('Acme')) throw new Error(`the first message arrived as ${JSON.stringify(first && { from: first.from, to: first.to })}`);
  smtp.received.length = 0;
  return contestant(send, smtp, async () => {
    await p.close();
    await mailer.close();
    await done.run();
  });
}

async function peer(): Promise<Contestant> {
  const done = cleanups();
  const smtp = await startSmtpServer(done);
  const target = parseSmtpUrl(smtp.url());
  // the settings SmtpMailer gives nodemailer, without micro in between
  const transport = createTransport({ host: target.host, port: target.port, secure: target.secure, disableFileAccess: true, disableUrlAccess: true, logger: false });
  const message = { from: `Acme <${FROM}>`, to: TO, subject: SUBJECT, text: TEXT, html: HTML };
  const send = () => transport.sendMail(message);
  return contestant(send, smtp, async () => {
    transport.close();
    await done.run();
  });
}

export const email: Benchmark = {
  name: 'email',
  title: 'email: a message sent through the gateway (Send with an API key) to an SMTP server in the bench process',
  peerName: 'nodemailer alone, the same message to the same kind of server, one connection a message',
  rounds: 3,
  figures: [
    { id: 'email.send', label: `email.Send through the gateway to SMTP, ${INFLIGHT} in flight`, unit: 'calls/s', better: 'higher' },
    { id: 'email.send.p50', label: 'email.Send latency p50, one at a time', unit: 'ms', better: 'lower' },
    { id: 'email.send.p99', label: 'email.Send latency p99, one at a time', unit: 'ms', better: 'lower' },
  ],
  async setup() {
    return bothSides(() => micro(), () => peer());
  },
};
