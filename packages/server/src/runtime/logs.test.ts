import { after, before, describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bearer, Client, createClient, type Credentials, MemoryRegistry, MicroError, RpcServer, runtime, Service, TokenSource, type TypedClient } from '@micro/sdk';
import { authenticate } from '../auth/guard.js';
import { silent, startAuthHarness, type AuthHarness } from '../auth/testing.js';
import { runtimeHandlers } from './handlers.js';
import { LocalRuntime } from './local.js';
import { LogFile, LogFiles, logsOptions, type LogLine } from './logs.js';

function temp(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'micro-logs-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function collect(it: AsyncIterable<LogLine>): Promise<LogLine[]> {
  const out: LogLine[] = [];
  for await (const l of it) out.push(l);
  return out;
}

const TRACE = 'ab'.repeat(16);
const OTHER = 'cd'.repeat(16);
/** a line as the SDK's pino logger prints it */
const pino = (level: number, msg: string, traceId?: string) =>
  JSON.stringify({ level, time: Date.now(), pid: 1, service: 'svc', namespace: 'a', instance: 'i1', ...(traceId ? { traceId } : {}), msg });

describe('log filters', () => {
  it('keeps lines at or above a level; plain stderr counts as error, runtime notes as warn', async (t) => {
    const log = new LogFile(join(temp(t), 'svc.log'));
    log.append('i1', 'stdout', pino(20, 'debugging'));
    log.append('i1', 'stdout', pino(30, 'hello'));
    log.append('i1', 'stdout', pino(40, 'careful'));
    log.append('i1', 'stdout', pino(50, 'broken'));
    log.append('i1', 'stdout', 'plain console.log');
    log.append('i1', 'stderr', 'plain stderr');
    log.append('', 'runtime', 'process 1 exited with code 1');
    const warn = await collect(log.read({ lines: 100, level: 'warn' }));
    assert.deepEqual(
      warn.map((l) => [l.level, l.stream]),
      [
        ['warn', 'stdout'],
        ['error', 'stdout'],
        [undefined, 'stderr'],
        [undefined, 'runtime'],
      ],
    );
    assert.equal(warn[0]?.service, 'svc');
    const all = await collect(log.read({ lines: 100 }));
    assert.equal(all.length, 7);
    assert.equal(all[0]?.level, 'debug');
    // the last n lines are the last n that pass the filter, not a filter of the last n
    assert.deepEqual((await collect(log.read({ lines: 1, level: 'error' }))).map((l) => l.line), ['plain stderr']);
  });

  it('keeps the lines of one trace, also from a line cut at the size bound', async (t) => {
    const log = new LogFile(join(temp(t), 'svc.log'));
    log.append('i1', 'stdout', pino(30, 'in trace', TRACE));
    log.append('i1', 'stdout', pino(30, 'other trace', OTHER));
    log.append('i1', 'stdout', pino(30, 'no trace'));
    // what LineSplitter leaves of a huge line: the start, cut, with the marker
    log.append('i1', 'stdout', pino(50, 'x'.repeat(100), TRACE).slice(0, 170) + ' …[truncated]');
    // a msg that mentions the trace id is not a line of the trace
    log.append('i1', 'stdout', pino(30, `"traceId":"${TRACE}"`));
    const lines = await collect(log.read({ lines: 100, traceId: TRACE }));
    assert.equal(lines.length, 2);
    assert.ok(lines[0]?.line.includes('in trace'));
    assert.equal(lines[1]?.level, 'error');
    assert.equal(lines[1]?.traceId, TRACE);
    assert.ok(lines[1]?.line.endsWith('[truncated]'));
  });

  it('filters the lines it follows too', async (t) => {
    const log = new LogFile(join(temp(t), 'svc.log'));
    const ac = new AbortController();
    const seen: string[] = [];
    const following = (async () => {
      for await (const l of log.read({ lines: 10, follow: true, signal: ac.signal, level: 'error', traceId: TRACE })) {
        seen.push(JSON.parse(l.line).msg as string);
        if (seen.length === 2) ac.abort();
      }
    })();
    log.append('i1', 'stdout', pino(50, 'wrong trace', OTHER));
    log.append('i1', 'stdout', pino(30, 'too low', TRACE));
    log.append('i1', 'stdout', pino(50, 'one', TRACE));
    log.append('i1', 'stdout', pino(60, 'two', TRACE));
    await following;
    assert.deepEqual(seen, ['one', 'two']);
  });

  it('refuses a bad level, trace id, since or count with a 400 naming the field', () => {
    const code = (req: Parameters<typeof logsOptions>[0]) => {
      try {
        logsOptions(req);
      } catch (err) {
        assert.ok(err instanceof MicroError);
        return `${err.code} ${err.detail}`;
      }
      return 'accepted';
    };
    assert.match(code({ level: 'loud' }), /^400 level/);
    assert.match(code({ level: 'WARN' }), /^400 level/);
    assert.match(code({ level: '<script>'.repeat(1000) }), /^400 level.{0,120}$/);
    assert.match(code({ traceId: 'xyz' }), /^400 traceId/);
    assert.match(code({ traceId: TRACE.toUpperCase() }), /^400 traceId/);
    assert.match(code({ traceId: '0'.repeat(32) }), /^400 traceId/);
    assert.match(code({ traceId: TRACE + '00' }), /^400 traceId/);
    assert.match(code({ since: '99999999999999d' }), /^400 since .*100 years/);
    assert.match(code({ since: '1e400m' }), /^400 since/);
    assert.match(code({ since: 'yesterday' }), /^400 since/);
    assert.match(code({ since: '9'.repeat(10_000) }), /^400 since.{0,200}$/);
    assert.match(code({ since: '' }), /^400 since/);
    assert.match(code({ lines: -1 }), /^400 lines/);
    assert.match(code({ lines: 1.5 }), /^400 lines/);
    assert.equal(code({ since: '10m', level: 'warn', traceId: TRACE, lines: 0 }), 'accepted');
    assert.equal(code({ since: '2024-05-01T10:00:00Z' }), 'accepted');
  });

  it('takes a far-future since as a time no line is at', async (t) => {
    const log = new LogFile(join(temp(t), 'svc.log'));
    log.append('i1', 'stdout', 'now');
    assert.deepEqual(await collect(log.read(logsOptions({ since: '9999-12-31T00:00:00Z' }))), []);
  });
});

describe('floods', () => {
  it('drops the oldest lines waiting for the disk, counts them and says so in the log', async (t) => {
    const files = new LogFiles(temp(t), 10 * 1024 * 1024, 64 * 1024);
    const log = files.get('a', 'svc');
    // appended in one tick: the disk gets none of them before the bound is reached
    for (let i = 0; i < 5000; i++) log.append('i1', 'stdout', `line ${i} ${'p'.repeat(100)}`);
    await log.flushed();
    assert.ok(log.dropped > 0, 'some lines were dropped');
    const kept = await collect(log.read({ lines: 100_000 }));
    const numbers = kept.filter((l) => l.stream === 'stdout').map((l) => Number(l.line.split(' ')[1]));
    // the newest are kept, in order, and the oldest are the ones gone (the first batch
    // was already on its way to the disk when the flood began)
    assert.equal(numbers.at(-1), 4999);
    assert.ok(numbers.length < 5000);
    assert.deepEqual(numbers.slice(1), numbers.slice(1).map((_, i) => (numbers[1] as number) + i), 'the newest, contiguous');
    const notes = kept.filter((l) => l.stream === 'runtime');
    assert.ok(notes.length > 0, 'a note says lines were dropped');
    for (const note of notes) assert.match(note.line, /^\d+ lines dropped: the disk did not keep up$/);
    // every line is either kept or counted (the count includes notes that were dropped in turn)
    assert.ok(numbers.length + log.dropped >= 5000, `${numbers.length} kept, ${log.dropped} dropped`);
    assert.ok(numbers.length < 1500, `memory stayed bounded: ${numbers.length} lines kept`);
    assert.equal(files.dropped, log.dropped);
    assert.equal(files.get('a', 'quiet').dropped, 0);
  });

  it('bounds what a slow follower holds: the oldest lines are skipped and counted', async (t) => {
    const log = new LogFile(join(temp(t), 'svc.log'));
    const ac = new AbortController();
    const reader = log.read({ lines: 0, follow: true, signal: ac.signal })[Symbol.asyncIterator]();
    const first = reader.next();
    log.append('i1', 'stdout', 'start');
    assert.equal((await first).value?.line, 'start');
    // 12 000 lines while the follower reads none: it holds at most 10 000
    for (let i = 0; i < 12_000; i++) log.append('i1', 'stdout', `n${i}`);
    const note = await reader.next();
    assert.equal(note.value?.stream, 'runtime');
    assert.match(note.value?.line ?? '', /^2000 lines skipped/);
    assert.equal((await reader.next()).value?.line, 'n2000');
    ac.abort();
    await reader.return?.(undefined);
    await log.flushed();
  });
});

describe('every service of a namespace', () => {
  it('merges the services by time and follows a service started after the read began', async (t) => {
    const files = new LogFiles(temp(t));
    // lines of distinct milliseconds, so that their order by time is the order written
    const tick = () => new Promise((r) => setTimeout(r, 3));
    files.get('a', 'one').append('i1', 'stdout', 'one-1');
    await tick();
    files.get('a', 'two').append('i2', 'stdout', 'two-1');
    await tick();
    files.get('a', 'one').append('i1', 'stdout', 'one-2');
    files.get('b', 'secret').append('i3', 'stdout', 'of namespace b');
    await files.flushed();
    // a fresh object (a restarted server): the names come from the disk
    const again = new LogFiles(files.dir);
    assert.deepEqual(again.names('a'), ['one', 'two']);
    const history = await collect(again.readNamespace('a', { lines: 2 }));
    assert.deepEqual(
      history.map((l) => [l.service, l.line]),
      [
        ['two', 'two-1'],
        ['one', 'one-2'],
      ],
    );

    const ac = new AbortController();
    const seen: string[] = [];
    const following = (async () => {
      for await (const l of again.readNamespace('a', { lines: 0, follow: true, signal: ac.signal })) {
        seen.push(`${l.service}:${l.line}`);
        if (seen.length === 2) ac.abort();
      }
    })();
    again.get('b', 'secret').append('i3', 'stdout', 'still b');
    again.get('a', 'three').append('i4', 'stdout', 'new service');
    again.get('a', 'one').append('i1', 'stdout', 'one-3');
    await following;
    assert.deepEqual(seen, ['three:new service', 'one:one-3']);
    await again.flushed();
  });
});

/*
 * Through the RPC, as the CLI and the dashboard call it: an account of namespace a reads
 * a's logs, never b's, whether it names b or leaves the namespace out; an admin of micro
 * reads both.
 */
describe('runtime.Logs through the RPC', () => {
  let h: AuthHarness;
  let rpc: RpcServer;
  let svc: Service;
  let rt: LocalRuntime;
  const as: Record<string, TypedClient<typeof runtime>> = {};

  before(async () => {
    h = await startAuthHarness();
    rt = new LocalRuntime({ home: h.home, serverAddress: h.address, registry: new MemoryRegistry(), credentials: () => Promise.reject(new Error('no services here')), logger: silent });
    const files = new LogFiles(join(h.home, 'logs'));
    files.get('a', 'shop').append('i1', 'stdout', pino(40, 'a warning of a', TRACE));
    files.get('b', 'bank').append('i2', 'stdout', pino(40, 'a secret of b', TRACE));
    files.get('b', 'shop').append('i3', 'stdout', pino(40, 'another secret of b', TRACE));
    await files.flushed();
    rpc = new RpcServer({ logger: silent });
    const address = await rpc.listen('tcp://127.0.0.1:0');
    svc = new Service(runtime, runtimeHandlers(rt), { server: rpc, namespace: 'micro', registry: new MemoryRegistry(), logger: silent, registerTTL: 0, auth: false, middleware: [authenticate(h.tokens, new Set(['Debug.Health']))] });
    await svc.start();
    const admin = h.authAs(h.admin);
    const client = (creds: Credentials) => {
      const source = new TokenSource(creds, new Client({ address: h.address, namespace: 'micro', preferLocal: false, middleware: [] }));
      return createClient(runtime, new Client({ address, namespace: 'micro', preferLocal: false, timeout: 10_000, middleware: [bearer(source)] }));
    };
    for (const [id, namespace, scopes] of [
      ['a-admin', 'a', ['admin']],
      ['b-user', 'b', ['dev']],
    ] as const) {
      const { secret } = await admin.CreateAccount({ id, namespace, scopes: [...scopes] });
      as[id] = client({ id, namespace, secret: secret as string });
    }
    as.root = client(h.admin);
  });

  after(async () => {
    await svc?.stop();
    await rpc?.close();
    await rt?.stop();
    await h?.close();
  });

  const read = async (c: TypedClient<typeof runtime> | undefined, req: Parameters<TypedClient<typeof runtime>['Logs']>[0]) => {
    const out: string[] = [];
    for await (const l of (c as TypedClient<typeof runtime>).Logs(req)) out.push(`${l.service}:${JSON.parse(l.line).msg as string}`);
    return out;
  };

  it("a tenant reads its namespace's logs, filtered, and none of another's", async () => {
    assert.deepEqual(await read(as['a-admin'], { name: 'shop', level: 'warn', traceId: TRACE }), ['shop:a warning of a']);
    // without a name: every service of its own namespace only
    assert.deepEqual(await read(as['a-admin'], {}), ['shop:a warning of a']);
    assert.deepEqual(await read(as['b-user'], { level: 'warn' }), ['bank:a secret of b', 'shop:another secret of b']);
    // naming the other namespace: refused, with or without a service name
    for (const req of [{ namespace: 'b' }, { name: 'bank', namespace: 'b' }, { name: 'shop', namespace: 'b', traceId: TRACE }]) {
      await assert.rejects(read(as['a-admin'], req), (err: MicroError) => err.code === 403, JSON.stringify(req));
    }
    // the same service name in its own namespace is its own service
    assert.deepEqual(await read(as['b-user'], { name: 'shop' }), ['shop:another secret of b']);
    // an admin of micro reads any namespace
    assert.deepEqual(await read(as.root, { name: 'bank', namespace: 'b' }), ['bank:a secret of b']);
  });

  it('refuses bad filters with a 400', async () => {
    for (const req of [{ level: 'loud' }, { traceId: 'not-a-trace' }, { since: '99999999999d' }, { since: 'x'.repeat(65) }, { name: '../b/bank' }, { namespace: '../b' }]) {
      await assert.rejects(read(as['a-admin'], req as never), (err: MicroError) => err.code === 400 || err.code === 403, JSON.stringify(req));
    }
    await assert.rejects(read(as['a-admin'], { level: 'loud' as never }), (err: MicroError) => err.code === 400);
    await assert.rejects(read(as['a-admin'], { since: '99999999999d' }), (err: MicroError) => err.code === 400 && /100 years/.test(err.detail));
  });
});
