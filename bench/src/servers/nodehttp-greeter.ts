/**
 * Child process of the gateway-nodehttp benchmark: the floor of any Node.js HTTP/1.1
 * server — bare `node:http` answering `POST /v1/greeter/Hello` with the greeter's JSON:
 * the body read and parsed, `name` checked to be a string (400 otherwise), the answer
 * written with one writeHead and a content-length. No router, no schema library, no
 * framework. Prints `{"url":"http://127.0.0.1:PORT"}` when ready and exits when its parent
 * goes away.
 */
import { createServer } from 'node:http';
import { exitWithParent } from '../harness.js';

const server = createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/v1/greeter/Hello') {
    res.writeHead(404).end();
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    let name: unknown;
    try {
      name = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { name?: unknown }).name;
    } catch {
      name = undefined;
    }
    if (typeof name !== 'string') {
      const body = '{"detail":"name must be a string"}';
      res.writeHead(400, ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(body))]).end(body);
      return;
    }
    const body = JSON.stringify({ message: `Hello ${name}` });
    res.writeHead(200, ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(body))]).end(body);
  });
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address() as { port: number };
exitWithParent(() => new Promise<void>((resolve) => server.close(() => resolve())));
process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}`, pid: process.pid })}\n`);
