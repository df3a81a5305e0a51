import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { micro, post, startServer, stopProcess, tempDir, type RunningServer } from './testing.js';

/*
 * The value-add services as a tenant meets them from the micro command and curl: `micro
 * services` names them, dynamic commands call them with typed flags (`micro db read
 * --query "age > 18"`), an API key reaches them at the gateway, and what one tenant
 * keeps the other does not see.
 */

let home: string;
let server: RunningServer;

before(async () => {
  home = tempDir('micro-services-e2e-');
  server = await startServer(home, { env: { MICRO_SERVICES: 'all' } });
});

after(async () => {
  if (server) await stopProcess(server.proc);
  rmSync(home, { recursive: true, force: true });
});

const run = (args: string[], input?: string) => micro(home, args, input === undefined ? {} : { input });
const succeeds = async (args: string[], input?: string) => {
  const r = await run(args, input);
  assert.equal(r.code, 0, `micro ${args.join(' ')}: ${r.stderr}`);
  return r;
};

async function tenant(id: string, namespace: string): Promise<string> {
  await succeeds(['logout']).catch(() => undefined);
  const made = JSON.parse((await succeeds(['auth', 'create', 'account', id, '--namespace', namespace, '--scopes', 'admin', '-o', 'json'])).stdout) as { secret: string };
  return made.secret;
}

test('a tenant calls the value-add services with dynamic commands and an API key', { timeout: 180_000 }, async () => {
  const shop = await tenant('ada', 'shop');
  const rival = await tenant('eve', 'rival');
  await succeeds(['login', '--id', 'ada', '--secret', '-', '--namespace', 'shop'], `${shop}\n`);

  // micro services names the public services beside the namespace's own (none yet)
  const listed = await succeeds(['services']);
  assert.match(listed.stdout + listed.stderr, /public services .*\bdb\b.*\bwallet\b/);

  // dynamic commands: flags typed from the endpoint's schema
  for (const [name, age] of [['Ada', 37], ['Tim', 12], ['Sue', 19]] as const) {
    await succeeds(['db', 'create', '--table', 'people', '--record', JSON.stringify({ name, age })]);
  }
  const adults = JSON.parse((await succeeds(['db', 'read', '--table', 'people', '--query', 'age > 18', '--orderBy', 'age', '-o', 'json'])).stdout) as { records: { name: string }[] };
  assert.deepEqual(adults.records.map((r) => r.name), ['Sue', 'Ada']);
  const help = await succeeds(['db', 'read', '--help']);
  assert.match(help.stdout, /--query/);

  // an API key of the tenant at the gateway, as M3O's clients call
  const key = (await succeeds(['auth', 'create', 'key', 'app'])).stdout.trim();
  const counted = await post(server.gateway, '/v1/db/Count', { table: 'people' }, key);
  assert.deepEqual([counted.status, counted.body], [200, { count: 3 }]);

  // the rival sees none of it, by command or by key
  await succeeds(['login', '--id', 'eve', '--secret', '-', '--namespace', 'rival'], `${rival}\n`);
  const theirs = JSON.parse((await succeeds(['db', 'read', '--table', 'people', '-o', 'json'])).stdout) as { records: unknown[] };
  assert.deepEqual(theirs.records, []);
  const rivalKey = (await succeeds(['auth', 'create', 'key', 'app'])).stdout.trim();
  assert.deepEqual((await post(server.gateway, '/v1/db/Count', { table: 'people' }, rivalKey)).body, { count: 0 });
  assert.deepEqual((await post(server.gateway, '/v1/db/ListTables', {}, rivalKey)).body, { tables: [] });
});
