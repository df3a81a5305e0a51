import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import fc from 'fast-check';
import { MicroError } from '../errors/errors.js';
import { FileRegistry, encodeSegment } from './file.js';
import type { ServiceRecord, WatchEvent, Watcher } from './registry.js';

function svc(name: string, version: string, nodeIds: string[], extra: Partial<ServiceRecord> = {}): ServiceRecord {
  return {
    name,
    version,
    endpoints: [{ name: 'Call', kind: 'unary', request: { type: 'object' }, response: { type: 'object' } }],
    nodes: nodeIds.map((id) => ({ id, address: `tcp://127.0.0.1:${1000 + id.length}` })),
    ...extra,
  };
}

const ids = (records: ServiceRecord[]): string[] => records.flatMap((r) => r.nodes.map((n) => n.id)).sort();

/** A fresh temp root for one test, removed when the test ends; the registry lives in `<root>/registry`. */
function tempRoot(t: TestContext): { root: string; dir: string } {
  const root = mkdtempSync(join(tmpdir(), 'micro-file-registry-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  return { root, dir: join(root, 'registry') };
}

/** Every file under `dir`, relative to it. */
function walk(dir: string, out: string[] = [], base = dir): string[] {
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out, base);
    else out.push(relative(base, p));
  }
  return out;
}

/** Polls `check` until it holds; fails after `ms`. A deadline, not a timing assumption. */
async function eventually(check: () => Promise<boolean> | boolean, what: string, ms = 4000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function nextEvent(watcher: Watcher, ms = 4000): Promise<WatchEvent> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no watch event within ${ms} ms`)), ms);
  });
  try {
    const r = await Promise.race([watcher[Symbol.asyncIterator]().next(), timeout]);
    assert.equal(r.done, false, 'watcher ended instead of yielding an event');
    return r.value as WatchEvent;
  } finally {
    clearTimeout(timer);
  }
}

function isBadRequest(field: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof MicroError, `expected a MicroError, got ${String(err)}`);
    assert.equal(err.code, 400);
    assert.match(err.detail, field);
    return true;
  };
}

describe('encodeSegment', () => {
  it('keeps plain names readable and escapes everything else', () => {
    assert.equal(encodeSegment('greeter.v1-x_y'), 'greeter.v1-x_y');
    assert.equal(encodeSegment('..'), '%2E.');
    assert.equal(encodeSegment('.'), '%2E');
    assert.equal(encodeSegment('a/b'), 'a%2Fb');
    assert.equal(encodeSegment('Greeter'), '%47reeter');
    assert.notEqual(encodeSegment('Greeter'), encodeSegment('greeter'));
  });

  it('always yields one safe, distinct path segment (property)', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.string({ unit: 'binary', minLength: 1, maxLength: 300 }), { minLength: 1, maxLength: 20 }), (names) => {
        const encoded = names.map(encodeSegment);
        for (const e of encoded) {
          assert.match(e, /^[a-z0-9_%~A-F-][a-z0-9_.%~A-F-]*$/);
          assert.ok(e.length <= 150, `too long: ${e.length}`);
        }
        assert.equal(new Set(encoded).size, names.length, 'two names share a segment');
      }),
    );
  });
});

describe('FileRegistry', () => {
  it('is named file and needs a directory', () => {
    assert.equal(new FileRegistry({ dir: '/tmp/x' }).name, 'file');
    assert.throws(() => new FileRegistry({ dir: '' }), /needs a directory/);
  });

  it('stores one private file per node, written atomically, and reads it back', async (t) => {
    const { dir } = tempRoot(t);
    const r = new FileRegistry({ dir });
    await r.register(svc('greeter', '1.0.0', ['a', 'b'], { metadata: { team: 'x' } }), { ttl: 60 });
    const files = walk(dir).sort();
    assert.deepEqual(files, ['.changed', join('micro', 'greeter', '1.0.0', 'a.json'), join('micro', 'greeter', '1.0.0', 'b.json')]);
    for (const d of [dir, join(dir, 'micro'), join(dir, 'micro', 'greeter'), join(dir, 'micro', 'greeter', '1.0.0')]) {
      assert.equal(statSync(d).mode & 0o777, 0o700, `${d} is 0700`);
    }
    const path = join(dir, 'micro', 'greeter', '1.0.0', 'a.json');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const stored = JSON.parse(readFileSync(path, 'utf8'));
    assert.equal(stored.pid, process.pid);
    assert.ok(stored.expires > Date.now() + 50_000);
    assert.deepEqual(stored.service.nodes, [{ id: 'a', address: 'tcp://127.0.0.1:1001' }]);

    const [record, ...rest] = await r.getService('greeter');
    assert.equal(rest.length, 0);
    assert.equal(record?.namespace, 'micro');
    assert.deepEqual(record?.metadata, { team: 'x' });
    assert.deepEqual(ids(await r.getService('greeter')), ['a', 'b']);
    assert.deepEqual((await r.listServices()).map((s) => s.name), ['greeter']);
    await r.close();
  });

  it('deregisters nodes, removes their files and the empty directories', async (t) => {
    const { dir } = tempRoot(t);
    const r = new FileRegistry({ dir });
    await r.register(svc('greeter', '1', ['a', 'b']));
    await r.register(svc('greeter', '2', ['c']));
    await r.deregister(svc('greeter', '1', ['a']));
    assert.deepEqual(ids(await r.getService('greeter')), ['b', 'c']);
    await r.deregister(svc('greeter', '1', ['b']));
    assert.equal(existsSync(join(dir, 'micro', 'greeter', '1')), false);
    assert.deepEqual(ids(await r.getService('greeter')), ['c']);
    await r.deregister(svc('greeter', '2', ['c']));
    assert.equal(existsSync(join(dir, 'micro', 'greeter')), false);
    assert.deepEqual(await r.listServices(), []);
    await r.deregister(svc('greeter', '2', ['c'])); // not there: no error
    await r.close();
  });

  it('keeps namespaces apart', async (t) => {
    const { dir } = tempRoot(t);
    const r = new FileRegistry({ dir });
    await r.register(svc('greeter', '1', ['a']), { namespace: 'team-a' });
    await r.register(svc('greeter', '1', ['b']), { namespace: 'team-b' });
    assert.deepEqual(ids(await r.getService('greeter', { namespace: 'team-a' })), ['a']);
    assert.deepEqual(ids(await r.getService('greeter', { namespace: 'team-b' })), ['b']);
    assert.deepEqual(await r.getService('greeter'), []);
    assert.equal((await r.listServices({ namespace: 'team-b' }))[0]?.namespace, 'team-b');
    await r.close();
  });

  it('hands out deep copies', async (t) => {
    const { dir } = tempRoot(t);
    const r = new FileRegistry({ dir });
    await r.register(svc('greeter', '1', ['a'], { metadata: { k: 'v' } }));
    const [first] = await r.getService('greeter');
    first!.nodes[0]!.address = 'tcp://changed:1';
    first!.metadata!.k = 'changed';
    (first!.endpoints[0]!.request as Record<string, unknown>).type = 'number';
    const [again] = await r.getService('greeter'); // served from the same cached snapshot
    assert.equal(again?.nodes[0]?.address, 'tcp://127.0.0.1:1001');
    assert.deepEqual(again?.metadata, { k: 'v' });
    assert.deepEqual(again?.endpoints[0]?.request, { type: 'object' });
    await r.close();
  });

  it('lets two instances on one directory see each other (two processes)', async (t) => {
    const { dir } = tempRoot(t);
    const a = new FileRegistry({ dir });
    const b = new FileRegistry({ dir });
    assert.deepEqual(await b.getService('greeter'), [], 'b caches an empty namespace first');
    await a.register(svc('greeter', '1', ['from-a']), { ttl: 30 });
    await eventually(async () => ids(await b.getService('greeter')).includes('from-a'), 'b sees a node registered by a');
    await b.register(svc('greeter', '1', ['from-b']), { ttl: 30 });
    await eventually(async () => ids(await a.getService('greeter')).join() === 'from-a,from-b', 'a sees the node of b');
    await b.deregister(svc('greeter', '1', ['from-a']));
    await eventually(async () => ids(await a.getService('greeter')).join() === 'from-b', 'a sees its node deregistered by b');
    await a.close();
    await b.close();
  });

  it('stays correct without fs.watch: the max-age alone refreshes reads', async (t) => {
    const { dir } = tempRoot(t);
    const writer = new FileRegistry({ dir });
    await writer.register(svc('greeter', '1', ['a']));
    const reader = new FileRegistry({ dir, maxAge: 30 });
    assert.deepEqual(ids(await reader.getService('greeter')), ['a']);
    // Change the directory behind everyone's back: no marker, so only the max-age can tell.
    rmSync(join(dir, 'micro', 'greeter', '1', 'a.json'));
    await eventually(async () => (await reader.getService('greeter')).length === 0, 'the reader notices the removed file');
    await writer.close();
    await reader.close();
  });

  it('ignores expired nodes, keeps heart-beating ones, and deletes expired files after a grace period (injected clock)', async (t) => {
    const { dir } = tempRoot(t);
    let now = 1_000_000_000_000;
    const r = new FileRegistry({ dir, now: () => now, maxAge: 0 });
    await r.register(svc('greeter', '1', ['a', 'b']), { ttl: 1 });
    await r.register(svc('greeter', '1', ['c']));
    now += 900;
    await r.register(svc('greeter', '1', ['a']), { ttl: 1 }); // heart-beat: a expires at +1900
    now += 500;
    assert.deepEqual(ids(await r.getService('greeter')), ['a', 'c']);
    assert.ok(existsSync(join(dir, 'micro', 'greeter', '1', 'b.json')), 'just expired: not deleted yet');
    now += 600;
    assert.deepEqual(ids(await r.getService('greeter')), ['c']);
    now += 60_000;
    assert.deepEqual(ids(await r.listServices()), ['c']);
    assert.deepEqual(walk(join(dir, 'micro')).sort(), [join('greeter', '1', 'c.json')], 'expired files were removed');
    await r.close();
  });

  it('drops a node once its real, fractional TTL passes and tells watchers', async (t) => {
    const { dir } = tempRoot(t);
    const r = new FileRegistry({ dir, pollInterval: 25 });
    const w = r.watch();
    await r.register(svc('greeter', '1', ['a']), { ttl: 0.2 });
    assert.ok(existsSync(join(dir, 'micro', 'greeter', '1', 'a.json')));
    const first = await nextEvent(w);
    assert.equal(first.type, 'create');
    const gone = await nextEvent(w);
    assert.equal(gone.type, 'delete');
    assert.deepEqual(ids([gone.service]), ['a']);
    assert.deepEqual(await r.getService('greeter'), []);
    w.stop();
    await r.close();
  });

  it('watches another instance: create, update, delete, and nothing for heart-beats', async (t) => {
    const { dir } = tempRoot(t);
    const writer = new FileRegistry({ dir });
    const r = new FileRegistry({ dir, pollInterval: 25 });
    await writer.register(svc('existing', '1', ['x']));
    const w = r.watch();
    const only = r.watch({ service: 'greeter' });
    const events: WatchEvent[] = [];
    assert.deepEqual(ids(await r.getService('existing')), ['x'], 'what existed before watch() is read, not announced');

    await writer.register(svc('greeter', '1', ['a']), { ttl: 30 });
    events.push(await nextEvent(w));
    await writer.register(svc('greeter', '1', ['a']), { ttl: 30 }); // heart-beat
    await writer.register(svc('greeter', '1', ['b']), { ttl: 30 });
    events.push(await nextEvent(w));
    await writer.deregister(svc('greeter', '1', ['a', 'b']));
    events.push(await nextEvent(w));
    await writer.register(svc('other', '1', ['o']));
    events.push(await nextEvent(w));

    assert.deepEqual(
      events.map((e) => `${e.type} ${e.service.name} ${ids([e.service]).join('+')}`),
      ['create greeter a', 'update greeter a+b', 'delete greeter a+b', 'create other o'],
    );
    const filtered = [await nextEvent(only), await nextEvent(only), await nextEvent(only)];
    assert.deepEqual(filtered.map((e) => e.type), ['create', 'update', 'delete']);

    // stop() ends the watcher; breaking out of for-await stops it too
    w.stop();
    assert.equal((await w[Symbol.asyncIterator]().next()).done, true);
    await writer.register(svc('greeter', '2', ['z']));
    // (the registry's timers are unref'd: this one keeps the test process up meanwhile)
    const deadline = setTimeout(() => only.stop(), 4000);
    let seen = 0;
    for await (const e of only) {
      assert.equal(e.service.version, '2');
      seen++;
      break;
    }
    clearTimeout(deadline);
    assert.equal(seen, 1);
    assert.equal((await only[Symbol.asyncIterator]().next()).done, true);
    await writer.close();
    await r.close();
  });

  it('sees a node of a real child process, and drops it once the child is killed with SIGKILL', async (t) => {
    const { dir } = tempRoot(t);
    const moduleUrl = new URL('./file.js', import.meta.url).href;
    const code = `
      import { FileRegistry } from ${JSON.stringify(moduleUrl)};
      const r = new FileRegistry({ dir: process.argv[1] });
      await r.register({ name: 'child', version: '1', endpoints: [], nodes: [{ id: 'child-' + process.pid, address: 'tcp://127.0.0.1:1' }] });
      process.stdout.write('ready\\n');
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', code, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.after(() => child.kill('SIGKILL'));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('ready')) resolve();
      });
      child.on('exit', (c) => reject(new Error(`child exited early with ${c}`)));
    });
    const r = new FileRegistry({ dir, pollInterval: 25 });
    const w = r.watch({ service: 'child' });
    assert.deepEqual(ids(await r.getService('child')), [`child-${child.pid}`]);

    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    // No TTL was set: only the dead pid can make the node go.
    const gone = await nextEvent(w);
    assert.equal(gone.type, 'delete');
    assert.deepEqual(ids([gone.service]), [`child-${child.pid}`]);
    assert.deepEqual(await r.getService('child'), []);
    const fresh = new FileRegistry({ dir });
    assert.deepEqual(await fresh.getService('child'), [], 'a new reader agrees at once');
    assert.deepEqual(walk(join(dir, 'micro')), [], 'the dead node file was removed');
    await fresh.close();
    await r.close();
  });

  it('cannot be led outside its directory by names, versions, node ids or namespaces', async (t) => {
    const { root, dir } = tempRoot(t);
    const r = new FileRegistry({ dir });
    const evil = ['..', '.', '../..', '../../escape', '/etc/passwd', 'a/b', 'a\\b', '..\\..\\x', 'C:\\x', '%2E%2E', 'Greeter', 'greeter', 'ü'];
    for (const [i, name] of evil.entries()) {
      await r.register(svc(name, name, [name], { nodes: [{ id: name, address: `tcp://h:${i + 1}` }] }), { namespace: name });
    }
    assert.deepEqual(readdirSync(root), ['registry'], 'nothing was written next to the registry directory');
    for (const file of walk(dir)) {
      assert.ok(!file.split(sep).includes('..'), `${file} stays inside`);
      assert.equal(file.split(sep).length, file === '.changed' ? 1 : 4, `${file} is namespace/service/version/node`);
    }
    // every name reads back as itself, in its own namespace only
    for (const [i, name] of evil.entries()) {
      const records = await r.getService(name, { namespace: name });
      assert.equal(records.length, 1, `one record for ${JSON.stringify(name)}`);
      assert.equal(records[0]?.name, name);
      assert.equal(records[0]?.version, name);
      assert.deepEqual(records[0]?.nodes, [{ id: name, address: `tcp://h:${i + 1}` }]);
    }
    await assert.rejects(r.register(svc('nul\u0000name', '1', ['a'])), isBadRequest(/service\.name must not contain control characters/));
    await assert.rejects(r.register(svc('a', '1', ['x\u0000y'])), isBadRequest(/service\.nodes\[0\]\.id/));
    await assert.rejects(r.register(svc('a', '1\n', ['x'])), isBadRequest(/service\.version/));
    await assert.rejects(r.register(svc('x'.repeat(256), '1', ['a'])), isBadRequest(/service\.name must be at most 255/));
    // names as long as allowed still fit in a file name
    const long = 'Ü'.repeat(255);
    await r.register(svc(long, long, [long]), { namespace: long });
    assert.equal((await r.getService(long, { namespace: long }))[0]?.name, long);
    await r.close();
  });

  it('ignores files that are not valid node files or are not where their record says', async (t) => {
    const { dir } = tempRoot(t);
    const r = new FileRegistry({ dir, maxAge: 0 });
    await r.register(svc('greeter', '1', ['a']));
    const versionDir = join(dir, 'micro', 'greeter', '1');
    const good = readFileSync(join(versionDir, 'a.json'), 'utf8');
    writeFileSync(join(versionDir, 'broken.json'), '{not json');
    writeFileSync(join(versionDir, 'moved.json'), good); // says node a, lives at moved.json
    writeFileSync(join(versionDir, 'notes.txt'), 'hello');
    mkdirSync(join(dir, 'micro', 'other', '1'), { recursive: true });
    writeFileSync(join(dir, 'micro', 'other', '1', 'a.json'), good); // a greeter record in the other folder
    writeFileSync(join(versionDir, 'b.json'), JSON.stringify({ ...JSON.parse(good), service: { name: 'greeter', version: '1', nodes: [] } }));
    assert.deepEqual(ids(await r.listServices()), ['a']);
    // a temp file left by a writer that died long ago is cleaned up; a recent one is left alone
    const stale = join(versionDir, '.dead.1.tmp');
    const recent = join(versionDir, '.live.2.tmp');
    writeFileSync(stale, good);
    writeFileSync(recent, good);
    utimesSync(stale, new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));
    assert.deepEqual(ids(await r.listServices()), ['a']);
    assert.equal(existsSync(stale), false);
    assert.equal(existsSync(recent), true);
    await r.close();
  });

  it('rejects bad input with a 400 naming the field', async (t) => {
    const { dir } = tempRoot(t);
    const r = new FileRegistry({ dir });
    await assert.rejects(r.register(svc('', '1', ['a'])), isBadRequest(/service\.name/));
    await assert.rejects(r.register(svc('g', '1', ['a'], { nodes: [{ id: 'a', address: '' }] })), isBadRequest(/service\.nodes\[0\]\.address/));
    await assert.rejects(r.register(svc('g', '1', ['a']), { ttl: -5 }), isBadRequest(/ttl/));
    await assert.rejects(r.register(svc('g', '1', ['a']), { namespace: '' }), isBadRequest(/namespace/));
    await assert.rejects(r.getService(''), isBadRequest(/name/));
    await assert.rejects(r.deregister(svc('g', '1', [''])), isBadRequest(/service\.nodes\[0\]\.id/));
    assert.throws(() => r.watch({ service: '' }), isBadRequest(/service/));
    assert.deepEqual(walk(dir).filter((f) => f !== '.changed'), [], 'nothing was written');
    await r.close();
  });

  it('ends watchers and refuses calls after close()', async (t) => {
    const { dir } = tempRoot(t);
    const r = new FileRegistry({ dir });
    const w = r.watch();
    await r.close();
    assert.equal((await w[Symbol.asyncIterator]().next()).done, true);
    await assert.rejects(r.register(svc('g', '1', ['a'])), (err: unknown) => err instanceof MicroError && err.code === 503);
    assert.throws(() => r.watch(), (err: unknown) => err instanceof MicroError && err.code === 503);
  });
});
