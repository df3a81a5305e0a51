// A local server speaking the part of Twilio's REST API the sms service uses (tests only):
// POST /2010-04-01/Accounts/{sid}/Messages.json, form-encoded To, From, Body, HTTP Basic
// auth, and Twilio's error body {code, message, more_info, status}.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeMessage {
  sid: string;
  to: string;
  from: string;
  body: string;
}

export interface FakeTwilio {
  url: string;
  sid: string;
  token: string;
  /** messages taken, in order */
  messages: FakeMessage[];
  /** requests answered, failures included */
  requests(): number;
  /** answer the next requests with these statuses (429, 503, 500…) before taking messages again */
  failNext(...statuses: number[]): void;
  close(): Promise<void>;
}

/** Numbers Twilio's API refuses as it does (error 21211: invalid 'To'). */
export const UNREACHABLE = '+15005550001';

function error(res: ServerResponse, status: number, code: number, message: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status }));
}

async function form(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

export async function startFakeTwilio(t: { after(fn: () => unknown): void }): Promise<FakeTwilio> {
  const sid = 'AC0123456789abcdef0123456789abcdef';
  const token = 'fake-auth-token-0123456789';
  const messages: FakeMessage[] = [];
  const failures: number[] = [];
  let requests = 0;
  const server = createServer(async (req, res) => {
    requests++;
    const failure = failures.shift();
    if (failure !== undefined) {
      error(res, failure, failure === 429 ? 20429 : 20500, failure === 429 ? 'Too Many Requests' : 'Internal Server Error', failure === 429 ? { 'retry-after': '0' } : {});
      return;
    }
    if (req.method !== 'POST' || req.url !== `/2010-04-01/Accounts/${sid}/Messages.json`) return error(res, 404, 20404, 'The requested resource was not found');
    if (req.headers.authorization !== `Basic ${Buffer.from(`${sid}:${token}`).toString('base64')}`) return error(res, 401, 20003, 'Authenticate');
    if (req.headers['content-type'] !== 'application/x-www-form-urlencoded') return error(res, 400, 20001, 'Unsupported content type');
    const f = await form(req);
    const to = f.get('To') ?? '';
    const body = f.get('Body') ?? '';
    if (!to) return error(res, 400, 21604, "A 'To' phone number is required.");
    if (to === UNREACHABLE) return error(res, 400, 21211, `The 'To' number ${to} is not a valid phone number.`);
    if (!body) return error(res, 400, 21602, 'Message body is required.');
    if (body.length > 1600) return error(res, 400, 21617, 'The concatenated message body exceeds the 1600 character limit.');
    const message = { sid: `SM${String(messages.length).padStart(32, '0')}`, to, from: f.get('From') ?? '', body };
    messages.push(message);
    res.writeHead(201, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ...message, status: 'queued', account_sid: sid, num_segments: String(Math.ceil(body.length / 153)) }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  t.after(close);
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    sid,
    token,
    messages,
    requests: () => requests,
    failNext: (...statuses) => failures.push(...statuses),
    close,
  };
}
