/**
 * Child process of the gateway-fastify benchmark: bare Fastify 5 answering
 * `POST /v1/greeter/Hello` with the greeter's JSON, the body checked by a JSON schema on
 * the route (`name` a string, required; type coercion off, so `{"name":42}` is refused
 * as the other sides refuse it), no response schema, logger off. Prints
 * `{"url":"http://127.0.0.1:PORT"}` when ready and exits when its parent goes away.
 */
import Fastify from 'fastify';
import { exitWithParent } from '../harness.js';

const app = Fastify({ logger: false, ajv: { customOptions: { coerceTypes: false } } });
app.post<{ Body: { name: string } }>(
  '/v1/greeter/Hello',
  { schema: { body: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] } } },
  async (req) => ({ message: `Hello ${req.body.name}` }),
);
const url = await app.listen({ host: '127.0.0.1', port: 0 });
exitWithParent(() => app.close());
process.stdout.write(`${JSON.stringify({ url, pid: process.pid })}\n`);
