import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Client, TokenSource, bearer, platformClient } from '@micro/sdk';
// WIRING: from '@micro/sdk' once its index exports the events module
import { RemoteEvents } from '@micro/sdk';
import { micro, startServer, stopProcess, tempDir, type RunningServer } from '../testing.js';

/** `micro events` against a real `micro server` (helpers in testing.ts). */

describe('micro events against a running server', () => {
  let home: string;
  let server: RunningServer;
  let events: RemoteEvents;

  before(async () => {
    home = tempDir('micro-cli-events-');
    server = await startServer(home);
    const admin = JSON.parse(readFileSync(join(home, 'server', 'admin.json'), 'utf8')) as { id: string; secret: string };
    const tokens = new TokenSource(admin, new Client({ address: server.address, namespace: 'micro', preferLocal: false }));
    events = new RemoteEvents(platformClient(server.address, [bearer(tokens)]));
  });

  after(async () => {
    if (server) await stopProcess(server.proc);
    rmSync(home, { recursive: true, force: true });
  });

  const ok = async (args: string[], input?: string) => {
    const r = await micro(home, args, { input });
    assert.equal(r.code, 0, `micro ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  test('publish from an argument or stdin; topics; read', async () => {
    assert.match(await ok(['events', 'publish', 'orders', '{"id":1}', '--metadata', 'source=cli']), /^published orders #1 \(id [0-9a-f-]{36}\)\n$/);
    const second = JSON.parse(await ok(['events', 'publish', 'orders', '-o', 'json'], '{"id":2}\n')) as { offset: number; payload: unknown };
    assert.deepEqual([second.offset, second.payload], [2, { id: 2 }]);
    assert.match(await ok(['events', 'publish', 'orders', '"three"', '--id', 'fixed']), /#3 \(id fixed\)/);
    assert.match(await ok(['events', 'publish', 'orders', '"three"', '--id', 'fixed']), /#3 \(id fixed\)/, 'the same id is the same event');

    const table = await ok(['events', 'topics']);
    assert.match(table, /^TOPIC +EVENTS +SIZE +FIRST +LAST +LAST EVENT +RETENTION\n/);
    assert.match(table, /^orders +3 +\d+ B +1 +3 +\d+s ago +default$/m);
    const topics = JSON.parse(await ok(['events', 'topics', '-o', 'json'])) as Array<{ name: string; count: number }>;
    assert.deepEqual(topics.map((t) => [t.name, t.count]), [['orders', 3]]);

    const lines = (await ok(['events', 'read', 'orders'])).trimEnd().split('\n');
    assert.equal(lines.length, 3);
    assert.match(lines[0] as string, /^#1 {2}\d{4}-\d\d-\d\dT[\d:.]+Z {2}\{"id":1\} {2}\{"source":"cli"\}$/);
    assert.match(lines[2] as string, /^#3 .* {2}"three"$/);
    const paged = await ok(['events', 'read', 'orders', '--limit', '1', '--offset', '2']);
    assert.match(paged, /^#2 .*\nmore: micro events read orders --offset 3\n$/);
    const page = JSON.parse(await ok(['events', 'read', 'orders', '-o', 'json', '--from', '1h'])) as { events: unknown[]; first: number; last: number };
    assert.deepEqual([page.events.length, page.first, page.last], [3, 1, 3]);
  });

  test('consume prints and acknowledges; a group resumes where it stopped; --no-ack gives the events back', async () => {
    for (let i = 1; i <= 3; i++) await events.publish('jobs', { job: i });
    const firstTwo = (await ok(['events', 'consume', 'jobs', '-g', 'workers', '--offset', 'earliest', '-n', '2'])).trimEnd().split('\n');
    assert.deepEqual(firstTwo.map((l) => l.split('  ')[0]), ['#1', '#2']);
    assert.match(await ok(['events', 'consume', 'jobs', '-g', 'workers', '-n', '1']), /^#3 .*\{"job":3\}\n$/);

    assert.match(await ok(['events', 'consume', 'jobs', '-g', 'peek', '--offset', 'earliest', '-n', '1', '--no-ack']), /^#1 /);
    const again = JSON.parse(await ok(['events', 'consume', 'jobs', '-g', 'peek', '-n', '1', '--no-ack', '-o', 'json'])) as { offset: number; attempt: number };
    assert.deepEqual([again.offset, again.attempt], [1, 2]);

    const groups = await ok(['events', 'groups', 'jobs']);
    assert.match(groups, /^GROUP +COMMITTED +PENDING +IN FLIGHT +CONSUMERS\n/);
    assert.match(groups, /^peek +0 +3 +1 +0$/m);
    assert.match(groups, /^workers +3 +0 +0 +0$/m);
  });

  test('a consumer waits for what comes, and prints it when it does', async () => {
    const consuming = micro(home, ['events', 'consume', 'live', '-g', 'watchers', '-n', '1']);
    // it is in place once the group has a consumer
    for (let i = 0; ; i++) {
      const groups = await events.groups('live').catch(() => []);
      if (groups.some((g) => g.members === 1)) break;
      assert.ok(i < 500, 'the consumer never joined');
      await new Promise((r) => setTimeout(r, 20));
    }
    await ok(['events', 'publish', 'live', '{"hello":"world"}']);
    const r = await consuming;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^#1 .*\{"hello":"world"\}\n$/);
  });

  test('retention: show, set, reset', async () => {
    await events.publish('kept', 1);
    assert.equal(await ok(['events', 'retention', 'kept']), "kept: the server's defaults\n");
    assert.equal(await ok(['events', 'retention', 'kept', '--max-events', '2', '--max-age', '1d']), 'kept: max age 1d0h, max 2 events\n');
    assert.deepEqual(JSON.parse(await ok(['events', 'retention', 'kept', '-o', 'json'])), { topic: 'kept', retention: { maxAge: 86_400_000, maxEvents: 2 } });
    assert.equal(await ok(['events', 'retention', 'kept', '--reset']), "kept: the server's defaults\n");
  });

  test('errors say what went wrong and what to do', async () => {
    const cases: Array<[string[], RegExp, string?]> = [
      [['events', 'read', 'nope'], /^no topic nope in namespace micro — see `micro events topics`\n$/],
      [['events', 'groups', 'nope'], /no topic nope/],
      [['events', 'retention', 'nope'], /no topic nope in namespace micro/],
      [['events', 'publish', 'bad topic', '1'], /topic/],
      [['events', 'publish', 'orders.*', '1'], /wildcard/],
      [['events', 'publish', 'big', '-'], /payload is \d+ bytes as JSON, more than the limit .* store large data elsewhere/, JSON.stringify('x'.repeat(1_100_000))],
      [['events', 'consume', 'jobs', '-g', 'bad group'], /group "bad group" may hold only letters/],
      [['events', 'consume', 'jobs', '-g', 'g', '--offset', '999'], /offset 999 is past the end of topic jobs/],
      [['events', 'read', 'orders', '--namespace', 'other'], /no topic orders in namespace other/],
    ];
    for (const [args, message, input] of cases) {
      const r = await micro(home, args, { input });
      assert.equal(r.code, 1, `micro ${args.join(' ')}: ${r.stdout}`);
      assert.match(r.stderr, message, args.join(' '));
    }
  });
});
