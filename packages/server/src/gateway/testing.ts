import { request } from 'node:http';
import { connect } from 'node:net';

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json: unknown;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** One HTTP request with node:http (the path is sent as given: no normalisation). */
export function http(url: string, method: string, path: string, options: { headers?: Record<string, string | number>; body?: string | Buffer } = {}): Promise<HttpAnswer> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, method, path, headers: options.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: parseJson(body) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Raw bytes on a socket; the answer as the server wrote it (the connection closes after it). */
export function raw(url: string, bytes: string | Buffer, timeoutMs = 5_000): Promise<HttpAnswer & { text: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer in ${timeoutMs} ms to ${JSON.stringify(bytes.toString().slice(0, 200))}`));
    }, timeoutMs);
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      const head = split < 0 ? text : text.slice(0, split);
      const lines = head.split('\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
      const headers: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const i = line.indexOf(':');
        if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      const length = Number(headers['content-length'] ?? -1);
      const rest = split < 0 ? '' : text.slice(split + 4);
      const body = length >= 0 ? Buffer.from(rest, 'latin1').subarray(0, length).toString('utf8') : rest;
      resolve({ status, headers, body, json: parseJson(body), text });
    };
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      // one answer is enough: stop when its body is complete
      const text = Buffer.concat(chunks).toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      const m = /\r\ncontent-length: (\d+)/i.exec(text.slice(0, split < 0 ? text.length : split));
      if (split >= 0 && m && Buffer.byteLength(text.slice(split + 4), 'latin1') >= Number(m[1])) {
        finish();
        socket.destroy();
      }
    });
    socket.on('close', finish);
    socket.on('error', () => finish());
    socket.write(bytes);
  });
}
