/**
 * The HTTP load generator of the gateway benchmarks, the same for every side: N
 * keep-alive HTTP/1.1 connections, each with exactly one request in flight (a closed
 * loop, no pipelining), the request bytes encoded once. Responses are parsed only as far
 * as needed (status line, Content-Length, body), so the load generator spends little CPU
 * per request and the server under test, on its own CPU, is what limits the rate.
 */
import { connect, type Socket } from 'node:net';

export interface HttpResponse {
  status: number;
  body: string;
}

const HEADER_END = Buffer.from('\r\n\r\n');
/** connections opened at once */
const OPEN_BATCH = 200;

/** One keep-alive connection; one request at a time. */
class Connection {
  private readonly socket: Socket;
  private buf: Buffer = Buffer.alloc(0);
  private waiting: { resolve: (r: HttpResponse) => void; reject: (e: Error) => void } | undefined;
  /** set once the connection is unusable (closed by the server, an error) */
  failed: Error | undefined;

  constructor(host: string, port: number) {
    this.socket = connect({ host, port, noDelay: true });
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (err) => this.fail(err));
    this.socket.on('close', () => this.fail(new Error('connection closed by the server')));
  }

  ready(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('error', reject);
    });
  }

  send(request: Buffer): Promise<HttpResponse> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.socket.write(request);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private fail(err: Error): void {
    this.failed ??= err;
    const w = this.waiting;
    this.waiting = undefined;
    w?.reject(err);
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const end = this.buf.indexOf(HEADER_END);
    if (end < 0) return;
    const head = this.buf.toString('latin1', 0, end);
    const status = Number(head.slice(9, 12));
    let body: string;
    let total: number;
    const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (m) {
      total = end + 4 + Number(m[1]);
      if (this.buf.length < total) return;
      body = this.buf.toString('utf8', end + 4, total);
    } else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
      // (error answers of some servers) chunk-size CRLF data CRLF ... 0 CRLF CRLF
      const parts: Buffer[] = [];
      let at = end + 4;
      for (;;) {
        const eol = this.buf.indexOf('\r\n', at);
        if (eol < 0) return;
        const size = parseInt(this.buf.toString('latin1', at, eol), 16);
        if (this.buf.length < eol + 2 + size + 2) return;
        if (size === 0) {
          total = eol + 4;
          break;
        }
        parts.push(this.buf.subarray(eol + 2, eol + 2 + size));
        at = eol + 2 + size + 2;
      }
      body = Buffer.concat(parts).toString('utf8');
    } else {
      return this.fail(new Error(`response without Content-Length: ${head.slice(0, 300)}`));
    }
    this.buf = this.buf.length === total ? Buffer.alloc(0) : this.buf.subarray(total);
    const w = this.waiting;
    this.waiting = undefined;
    w?.resolve({ status, body });
  }
}

/** A POST of a JSON body to one path, as bytes ready to write. */
export function jsonPost(host: string, port: number, path: string, body: unknown, headers: Record<string, string> = {}): Buffer {
  const json = JSON.stringify(body);
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  return Buffer.from(`POST ${path} HTTP/1.1\r\nhost: ${host}:${port}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(json)}\r\n${extra}\r\n${json}`);
}

export interface LoadResult {
  /** requests answered (every one a 200 with the expected body) */
  count: number;
  /** requests/s */
  rate: number;
  /** latency of the requests of the round, µs */
  p50: number;
  p99: number;
}

/**
 * A pool of keep-alive connections to one server. A connection the server has closed
 * (servers close idle keep-alive connections after a few seconds, e.g. between rounds) is
 * opened again before its next request, as an HTTP client's agent would.
 */
export class HttpLoad {
  private constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly conns: Connection[],
  ) {}

  static async open(url: string, connections: number): Promise<HttpLoad> {
    const { hostname, port } = new URL(url);
    const conns: Connection[] = [];
    try {
      // at most OPEN_BATCH connects at a time: a burst larger than the server's accept
      // backlog (511 in Node.js) would leave SYNs to be retried a second later
      for (let i = 0; i < connections; i += OPEN_BATCH) {
        const batch = Array.from({ length: Math.min(OPEN_BATCH, connections - i) }, () => new Connection(hostname, Number(port)));
        conns.push(...batch);
        await Promise.all(batch.map((c) => c.ready()));
      }
    } catch (err) {
      for (const c of conns) c.close();
      throw err;
    }
    return new HttpLoad(hostname, Number(port), conns);
  }

  /** Opens again every connection the server has closed. */
  private async refresh(): Promise<void> {
    await Promise.all(
      this.conns.map(async (c, i) => {
        if (!c.failed) return;
        c.close();
        const fresh = new Connection(this.host, this.port);
        this.conns[i] = fresh;
        await fresh.ready();
      }),
    );
  }

  /** One request on the first connection (for the checks before measuring). */
  async once(request: Buffer): Promise<HttpResponse> {
    await this.refresh();
    return (this.conns[0] as Connection).send(request);
  }

  /**
   * Every connection sends `request` again as soon as its last answer is in, for `ms`
   * milliseconds; every answer must be a 200 with `expect` as its body.
   */
  async run(request: Buffer, expect: string, ms: number): Promise<LoadResult> {
    await this.refresh();
    const latencies: number[] = [];
    const start = performance.now();
    const end = start + ms;
    const worker = async (c: Connection) => {
      while (performance.now() < end) {
        const t0 = process.hrtime.bigint();
        const res = await c.send(request);
        latencies.push(Number(process.hrtime.bigint() - t0) / 1000);
        if (res.status !== 200 || res.body !== expect) throw new Error(`unexpected answer under load: ${res.status} ${res.body.slice(0, 200)}`);
      }
    };
    await Promise.all(this.conns.map(worker));
    const elapsed = performance.now() - start;
    const sorted = Float64Array.from(latencies).sort();
    const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
    return { count: latencies.length, rate: (latencies.length / elapsed) * 1000, p50: at(50), p99: at(99) };
  }

  /** Runs `work` once per connection at once, each with its own `send`; resolves when all are done. */
  async each(work: (send: (request: Buffer) => Promise<HttpResponse>) => Promise<void>): Promise<void> {
    await this.refresh();
    await Promise.all(this.conns.map((c) => work((request) => c.send(request))));
  }

  close(): void {
    for (const c of this.conns) c.close();
  }
}
