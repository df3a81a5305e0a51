import { MemoryRegistry, RpcServer, Service, createLogger, type Account, type HandlerMiddleware } from '@micro/sdk';
import { eventsHandlers } from './handlers.js';
import { eventsService } from '@micro/sdk';
import { SqliteEvents } from './sqlite.js';

/*
 * A test fixture, not a program: the SQLite events engine behind an RpcServer in a
 * process of its own, for the test that kills it with SIGKILL mid-way and starts it
 * again on the same data (crash.test.ts). Every call acts as an admin of `micro`.
 *
 *   node crash-host.js <database file> [address]     prints "listening <address>"
 */

const [path, address = 'tcp://127.0.0.1:0'] = process.argv.slice(2);
if (!path) {
  process.stderr.write('usage: crash-host.js <database file> [address]\n');
  process.exit(2);
}
const logger = createLogger({ level: 'silent' });
const admin: Account = { id: 'admin', type: 'user', issuer: 'micro', scopes: ['admin'] };
const asAdmin: HandlerMiddleware = (ctx, req, next) => {
  (ctx as { account: Account | undefined }).account = admin;
  return next(req);
};
const events = new SqliteEvents({ path, logger, sweepInterval: 0 });
const server = new RpcServer({ logger });
const bound = await server.listen(address);
await new Service(eventsService, eventsHandlers(events), { server, namespace: 'micro', registry: new MemoryRegistry(), registerTTL: 0, logger, middleware: [asAdmin] }).start();
process.stdout.write(`listening ${bound}\n`);
