import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { MicroError } from '@micro/sdk';
import { BoundedOutput, LineSplitter, Tail } from './lines.js';
import { LogFile, type LogLine } from './logs.js';
import { copyTree, parseSource } from './source.js';
import { findEntry, serviceName } from './build.js';
import { relocateTsconfig, selfContainedTsconfig, stripJsonComments } from './tsconfig.js';
import { maskEnv } from './checks.js';
import { runCommand } from './exec.js';
import { StateStore } from './state.js';

function temp(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'micro-runtime-unit-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function code(fn: () => unknown): number {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof MicroError, `expected a MicroError, got ${String(err)}`);
    return err.code;
  }
  assert.fail('expected an error');
}

describe('lines', () => {
  it('splits chunks into lines, across chunk boundaries and multi-byte characters', () => {
    const lines: string[] = [];
    const s = new LineSplitter((l) => lines.push(l));
    const euro = Buffer.from('€');
    s.push(Buffer.from('one\ntw'));
    s.push(Buffer.concat([Buffer.from('o '), euro.subarray(0, 1)]));
    s.push(Buffer.concat([euro.subarray(1), Buffer.from('\r\nthree')]));
    s.end();
    assert.deepEqual(lines, ['one', 'two €', 'three']);
  });

  it('cuts a line longer than the bound and drops the rest of it', () => {
    const lines: string[] = [];
    const s = new LineSplitter((l) => lines.push(l), 10);
    s.push('x'.repeat(25));
    s.push('y'.repeat(5) + '\nnext\n');
    assert.equal(lines.length, 2);
    assert.ok(lines[0]?.startsWith('x'.repeat(10)) && lines[0].endsWith('[truncated]'));
    assert.equal(lines[1], 'next');
  });

  it('bounds command output, keeping its beginning and its end', () => {
    const out = new BoundedOutput(100);
    for (let i = 0; i < 100; i++) out.add(`line ${i}`);
    const text = out.toString();
    assert.ok(text.length < 200);
    assert.ok(text.startsWith('line 0'));
    assert.ok(text.endsWith('line 99'));
    assert.match(text, /characters left out/);
  });

  it('keeps the last lines', () => {
    const tail = new Tail(2);
    assert.equal(tail.empty, true);
    for (const l of ['a', 'b', 'c']) tail.add(l);
    assert.equal(tail.toString(), 'b\nc');
  });
});

describe('log files', () => {
  async function collect(it: AsyncIterable<LogLine>): Promise<LogLine[]> {
    const out: LogLine[] = [];
    for await (const l of it) out.push(l);
    return out;
  }

  it('returns the last n lines, oldest first, across chunks and the rotated file', async (t) => {
    const dir = temp(t);
    const log = new LogFile(join(dir, 'svc.log'), 64 * 1024);
    for (let i = 0; i < 3000; i++) log.append('i1', i % 2 ? 'stderr' : 'stdout', `line ${i} ${'p'.repeat(40)}`);
    await log.flushed();
    assert.ok(existsSync(join(dir, 'svc.log.1')), 'rotated');
    const last = await collect(log.read({ lines: 5 }));
    assert.deepEqual(
      last.map((l) => l.line.split(' ')[1]),
      ['2995', '2996', '2997', '2998', '2999'],
    );
    assert.equal(last[4]?.stream, 'stderr');
    assert.equal(last[4]?.instance, 'i1');
    // more than the current file holds: the rest comes from the rotated one, in order
    const many = await collect(log.read({ lines: 1500 }));
    const numbers = many.map((l) => Number(l.line.split(' ')[1]));
    const inCurrent = readFileSync(join(dir, 'svc.log'), 'utf8').split('\n').length - 1;
    assert.ok(numbers.length > inCurrent, `${numbers.length} lines, ${inCurrent} in the current file`);
    assert.deepEqual(numbers, numbers.map((_, i) => 3000 - numbers.length + i), 'the last lines, in order, none missing');
    // files stay private
    assert.equal(statMode(join(dir, 'svc.log')), 0o600);
  });

  it('filters by time, and follows new lines without losing or repeating any', async (t) => {
    const dir = temp(t);
    const log = new LogFile(join(dir, 'svc.log'));
    log.append('a', 'stdout', 'old');
    await log.flushed();
    await new Promise((r) => setTimeout(r, 20));
    const since = Date.now();
    log.append('a', 'stdout', 'recent');
    assert.deepEqual((await collect(log.read({ lines: 100, since }))).map((l) => l.line), ['recent']);

    const ac = new AbortController();
    const seen: string[] = [];
    const following = (async () => {
      for await (const l of log.read({ lines: 1, follow: true, signal: ac.signal })) {
        seen.push(l.line);
        if (seen.length === 4) ac.abort();
      }
    })();
    for (const l of ['n1', 'n2', 'n3']) log.append('a', 'stdout', l);
    await following;
    assert.deepEqual(seen, ['recent', 'n1', 'n2', 'n3']);
  });
});

const statMode = (path: string): number => statSync(path).mode & 0o777;

describe('sources', () => {
  it('reads folders, file URLs and git URLs with refs', (t) => {
    const dir = temp(t);
    const repo = join(dir, 'repo');
    mkdirSync(join(repo, '.git'), { recursive: true });
    assert.deepEqual(parseSource(repo), { kind: 'folder', path: repo });
    assert.deepEqual(parseSource(pathToFileURL(repo).href), { kind: 'folder', path: repo });
    assert.deepEqual(parseSource(`${repo}@v1.2`), { kind: 'git', url: pathToFileURL(repo).href, ref: 'v1.2' });
    assert.deepEqual(parseSource(`${pathToFileURL(repo).href}@main`), { kind: 'git', url: pathToFileURL(repo).href, ref: 'main' });
    assert.deepEqual(parseSource('https://user@example.com/org/svc.git@feature/x'), { kind: 'git', url: 'https://user@example.com/org/svc.git', ref: 'feature/x' });
    assert.deepEqual(parseSource('https://example.com/org/svc'), { kind: 'git', url: 'https://example.com/org/svc', ref: undefined });
    assert.deepEqual(parseSource('git@github.com:org/svc.git@0a1b2c3'), { kind: 'git', url: 'git@github.com:org/svc.git', ref: '0a1b2c3' });
    // a folder whose name has an @ is a folder
    const at = join(dir, 'svc@2');
    mkdirSync(at);
    assert.deepEqual(parseSource(at), { kind: 'folder', path: at });
  });

  it('refuses what is not a source with a clear error', (t) => {
    const dir = temp(t);
    assert.equal(code(() => parseSource(join(dir, 'missing'))), 404);
    assert.equal(code(() => parseSource('relative/path')), 400);
    assert.equal(code(() => parseSource('--upload-pack=evil')), 400);
    assert.equal(code(() => parseSource('https://example.com/repo@--evil')), 400);
    mkdirSync(join(dir, 'plain'));
    assert.equal(code(() => parseSource(`${join(dir, 'plain')}@v1`)), 400, 'a ref needs a git repository');
    writeFileSync(join(dir, 'file.txt'), 'x');
    assert.equal(code(() => parseSource(join(dir, 'file.txt'))), 400);
  });

  it('copies a folder without node_modules, dist and .git', async (t) => {
    const dir = temp(t);
    const src = join(dir, 'src');
    for (const d of ['node_modules/x', 'dist', '.git', 'lib/dist', 'src']) mkdirSync(join(src, d), { recursive: true });
    writeFileSync(join(src, 'package.json'), '{}');
    writeFileSync(join(src, 'src/main.ts'), 'x');
    writeFileSync(join(src, 'lib/dist/keep.js'), 'x');
    writeFileSync(join(src, 'dist/main.js'), 'stale');
    symlinkSync('src/main.ts', join(src, 'link.ts'));
    await copyTree(src, join(dir, 'out'));
    assert.ok(existsSync(join(dir, 'out/package.json')));
    assert.ok(existsSync(join(dir, 'out/src/main.ts')));
    assert.ok(existsSync(join(dir, 'out/lib/dist/keep.js')), 'only the top-level dist is left out');
    assert.ok(existsSync(join(dir, 'out/link.ts')));
    for (const gone of ['node_modules', 'dist', '.git']) assert.ok(!existsSync(join(dir, 'out', gone)), gone);
  });
});

describe('builds', () => {
  it('names a service from the request, package.json or the folder', () => {
    assert.equal(serviceName('given', { name: '@acme/other' }, 'folder'), 'given');
    assert.equal(serviceName(undefined, { name: '@acme/billing' }, 'folder'), 'billing');
    assert.equal(serviceName(undefined, { name: '@micro/service-id', micro: { name: 'id' } }, 'folder'), 'id');
    assert.equal(serviceName('given', { micro: { name: 'id' } }, 'folder'), 'given');
    assert.equal(code(() => serviceName(undefined, { name: 'ok', micro: { name: '../etc' } }, 'folder')), 400);
    assert.equal(serviceName(undefined, undefined, 'my-svc'), 'my-svc');
    assert.equal(code(() => serviceName(undefined, undefined, 'My Service')), 400);
  });

  it('finds the entry file and says what it looked for', (t) => {
    const dir = temp(t);
    assert.throws(() => findEntry(dir, {}), /dist\/main\.js, dist\/index\.js, main\.js, index\.js/);
    writeFileSync(join(dir, 'index.js'), '');
    assert.equal(findEntry(dir, {}), 'index.js');
    mkdirSync(join(dir, 'dist'));
    writeFileSync(join(dir, 'dist/main.js'), '');
    assert.equal(findEntry(dir, {}), 'dist/main.js');
    assert.equal(findEntry(dir, { main: './index.js' }), 'index.js');
    assert.equal(code(() => findEntry(dir, { main: '../../etc/passwd' })), 400);
  });

  it('reads tsconfig comments and trailing commas, keeping strings intact', () => {
    const text = '{\n  // a comment\n  "a": "http://x/*y*/", /* block */\n  "b": [1, 2,],\n}';
    assert.deepEqual(JSON.parse(stripJsonComments(text)), { a: 'http://x/*y*/', b: [1, 2] });
  });

  it('makes tsconfig paths outside the copied folder absolute', (t) => {
    const dir = temp(t);
    const origin = join(dir, 'repo/services/svc');
    const copy = join(dir, 'copy');
    mkdirSync(origin, { recursive: true });
    mkdirSync(copy);
    writeFileSync(join(dir, 'repo/tsconfig.base.json'), '{}');
    mkdirSync(join(dir, 'repo/lib'));
    const config = '{ // monorepo\n "extends": "../../tsconfig.base.json", "references": [{ "path": "../../lib" }, { "path": "./inside" }, { "path": "../../missing" }] }';
    writeFileSync(join(copy, 'tsconfig.json'), config);
    return relocateTsconfig(copy, origin).then(() => {
      const fixed = JSON.parse(readFileSync(join(copy, 'tsconfig.json'), 'utf8')) as { extends: string; references: { path: string }[] };
      assert.equal(fixed.extends, join(dir, 'repo/tsconfig.base.json'));
      assert.deepEqual(
        fixed.references.map((r) => r.path),
        [join(dir, 'repo/lib'), './inside', '../../missing'],
      );
    });
  });

  it('makes an uploaded tsconfig self-contained: what it extends outside merged in, references outside left out', (t) => {
    const dir = temp(t);
    const svc = join(dir, 'repo/services/svc');
    mkdirSync(svc, { recursive: true });
    writeFileSync(join(dir, 'repo/root.json'), '{ "compilerOptions": { "strict": false, "target": "ES2020" } }');
    writeFileSync(join(dir, 'repo/tsconfig.base.json'), '{ // shared\n "extends": "./root.json", "compilerOptions": { "strict": true, "outDir": "out", "typeRoots": ["./types"] }, "include": ["src"], "references": [{ "path": "./x" }] }');
    const file = join(svc, 'tsconfig.json');
    writeFileSync(file, '{ "extends": "../../tsconfig.base.json", "compilerOptions": { "target": "ES2022" }, "references": [{ "path": "../../lib" }, { "path": "./inside" }] }');
    assert.deepEqual(JSON.parse(selfContainedTsconfig(file, svc) ?? 'null'), {
      compilerOptions: { strict: true, target: 'ES2022', outDir: '../../out', typeRoots: ['../../types'] },
      include: ['../../src'],
      references: [{ path: './inside' }],
    });
    writeFileSync(join(svc, 'tsconfig.build.json'), '{ "extends": "./tsconfig.json", "exclude": ["src/**/*.test.ts"] }');
    assert.equal(selfContainedTsconfig(join(svc, 'tsconfig.build.json'), svc), undefined, 'nothing outside: uploaded as it is');
    writeFileSync(join(svc, 'broken.json'), '{ nope');
    assert.equal(selfContainedTsconfig(join(svc, 'broken.json'), svc), undefined, 'left to tsc');
    writeFileSync(join(dir, 'repo/root.json'), '{ "extends": "@tsconfig/node20" }');
    assert.throws(() => selfContainedTsconfig(file, svc), /extends "@tsconfig\/node20": a package outside the folder is not uploaded/);
  });

  it('masks env values whose names look secret', () => {
    assert.deepEqual(maskEnv({ GREETING: 'hi', API_KEY: 'k', DB_PASSWORD: 'p', authToken: 't' }), { GREETING: 'hi', API_KEY: '••••', DB_PASSWORD: '••••', authToken: '••••' });
  });
});

describe('state and commands', () => {
  it('keeps state private and moves a file it cannot read aside instead of losing it', (t) => {
    const dir = join(temp(t), 'runtime');
    const store = new StateStore(dir);
    assert.deepEqual(store.load(() => assert.fail('no file is not corrupt')), []);
    const svc = { name: 'a', namespace: 'micro', source: '/x', env: { K: 'v' }, instances: 1, running: true, processes: [], createdAt: 'c', updatedAt: 'u' };
    store.save([svc]);
    assert.equal(statSync(store.file).mode & 0o777, 0o600);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.deepEqual(store.load(() => assert.fail('readable')), [svc]);
    writeFileSync(store.file, '{"version": 1, "services": [');
    let moved = '';
    assert.deepEqual(store.load((_err, to) => (moved = to)), []);
    assert.equal(readFileSync(moved, 'utf8'), '{"version": 1, "services": [');
    assert.equal(existsSync(store.file), false);
  });

  it('kills a command that runs too long, with what it started', async (t) => {
    const dir = temp(t);
    const started = Date.now();
    const res = await runCommand('sh', ['-c', 'echo before; sleep 30 & sleep 30'], { cwd: dir, env: { PATH: process.env.PATH }, timeout: 300 });
    assert.equal(res.ok, false);
    assert.match(res.reason, /timed out/);
    assert.equal(res.output, 'before');
    assert.ok(Date.now() - started < 5_000, 'the background sleep did not keep it waiting');
    const missing = await runCommand('no-such-tool-xyz', [], { cwd: dir, env: { PATH: process.env.PATH }, timeout: 1_000 });
    assert.equal(missing.ok, false);
    assert.match(missing.reason, /not found on PATH/);
  });
});
