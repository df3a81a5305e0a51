import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { list } from 'tar';
import { listFiles, packFolder, uploadKey } from './pack.js';
import { UsageError } from './output.js';
import { micro, natsPlatform, startServer, stopProcess, tempDir, type Result, type RunningServer } from './testing.js';

/* micro run ./dir as a stranger: the folder is packed, uploaded, unpacked and run by the server. */

describe('packing a folder', () => {
  let dir: string;
  before(() => {
    dir = tempDir('micro-pack-');
    for (const d of ['src/deep', 'node_modules/x', 'src/node_modules/y', '.git', 'dist', 'src/dist', 'logs', 'secrets']) mkdirSync(join(dir, d), { recursive: true });
    for (const f of ['package.json', 'src/main.ts', 'src/deep/a.ts', 'node_modules/x/i.js', 'src/node_modules/y/i.js', '.git/HEAD', 'dist/main.js', 'src/dist/kept.ts', 'logs/today.log', 'secrets/key.pem', 'src/deep/local.env', '.env']) {
      writeFileSync(join(dir, f), f);
    }
    writeFileSync(join(dir, '.gitignore'), 'logs/\n.env\n');
    writeFileSync(join(dir, 'src', 'deep', '.gitignore'), '*.env\n');
    writeFileSync(join(dir, '.microignore'), 'secrets/\n');
    symlinkSync('/etc/passwd', join(dir, 'passwd'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('leaves out node_modules, .git, the top dist, what .gitignore files and .microignore list, and links', async () => {
    const { files, skipped } = await listFiles(dir);
    assert.deepEqual(files, ['.gitignore', '.microignore', 'package.json', 'src/deep/.gitignore', 'src/deep/a.ts', 'src/dist/kept.ts', 'src/main.ts']);
    assert.deepEqual(skipped, ['passwd']);
    const packed = await packFolder(dir);
    assert.match(packed.key, /^runtime\/uploads\/[0-9a-f]{32}\/micro-pack-[A-Za-z0-9]+\.tar\.gz$/);
    const entries: string[] = [];
    const parser = list({ onReadEntry: (e) => entries.push(`${e.type} ${e.path}`) });
    const ended = new Promise((r) => parser.on('end', r));
    parser.end(packed.data);
    await ended;
    assert.deepEqual(entries.sort(), files.map((f) => `File ${f}`).sort());
  });

  test('is bounded before anything is sent', async () => {
    await assert.rejects(listFiles(dir, 3), (err: unknown) => err instanceof UsageError && /has more than 3 files to upload/.test(err.message));
    await assert.rejects(packFolder(dir, { files: 100, bytes: 20 }), (err: unknown) => err instanceof UsageError && /packs to more than .* MiB/.test(err.message));
  });

  test('names the upload after the folder, in the form the runtime accepts', () => {
    assert.match(uploadKey('/x/My Service!'), /^runtime\/uploads\/[0-9a-f]{32}\/My-Service-\.tar\.gz$/);
    assert.match(uploadKey('/x/...'), /\/source\.tar\.gz$/);
  });
});

/*
 * The upload is unpacked by the server and built and run in the tenant's sandbox where
 * the machine can sandbox (root and bwrap, as in CI); elsewhere the server is told to run
 * tenants unsandboxed, so the upload path is still tested end to end.
 */
const canSandbox = process.getuid?.() === 0 && spawnSync('bwrap', ['--version']).status === 0;
if (!canSandbox && (process.env.CI === 'true' || process.env.MICRO_REQUIRE_ENGINES === '1')) throw new Error('the upload test runs sandboxed in CI: it needs root and bwrap');
const SANDBOX_ENV: Record<string, string> = canSandbox ? { MICRO_RUNTIME_SANDBOX: 'on' } : { MICRO_RUNTIME_SANDBOX: 'off' };

/** `micro demo call --name=<name>`, tried every 200 ms up to `attempts` times until it succeeds; the last result. */
async function callDemo(home: string, name: string, attempts: number): Promise<Result> {
  let call = await micro(home, ['demo', 'call', `--name=${name}`, '-o', 'json']);
  for (let i = 1; i < attempts && call.code !== 0; i++) {
    await new Promise((r) => setTimeout(r, 200));
    call = await micro(home, ['demo', 'call', `--name=${name}`, '-o', 'json']);
  }
  return call;
}

describe('micro run ./dir as a user of another namespace', () => {
  let home: string;
  let work: string;
  let server: RunningServer;

  before(async () => {
    home = tempDir('micro-upload-e2e-');
    work = tempDir('micro-upload-e2e-src-');
    server = await startServer(home, { env: SANDBOX_ENV });
    assert.equal((await micro(home, ['new', 'demo'], { cwd: work })).code, 0);
    mkdirSync(join(work, 'demo', 'node_modules', 'junk'), { recursive: true });
    writeFileSync(join(work, 'demo', 'node_modules', 'junk', 'big.bin'), Buffer.alloc(1024 * 1024));
    const made = await micro(home, ['auth', 'create', 'account', 'carol', '--namespace', 'acme', '--scopes', 'dev', '-o', 'json']);
    assert.equal(made.code, 0, made.stderr);
    const { secret } = JSON.parse(made.stdout) as { secret: string };
    const login = await micro(home, ['login', '--id', 'carol', '--secret', '-', '--namespace', 'acme'], { input: `${secret}\n` });
    assert.equal(login.code, 0, login.stderr);
  });

  after(async () => {
    if (server) await stopProcess(server.proc);
    rmSync(home, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });

  test('uploads the folder, runs it, answers a call; update uploads again; kill deletes the upload', async () => {
    const run = await micro(home, ['run', './demo'], { cwd: work, timeout: 120_000 });
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, new RegExp(`^• uploading ${join(work, 'demo')} \\(\\d+ files, \\d+ KiB packed\\)$`, 'm'));
    assert.match(run.stdout, /^demo is running \(namespace acme\): 1\/1 instance running$/m);

    const status = await micro(home, ['status', 'demo', '-o', 'json']);
    const [svc] = JSON.parse(status.stdout) as { source: string; namespace: string }[];
    assert.match(svc?.source ?? '', /^upload:runtime\/uploads\/[0-9a-f]{32}\/demo\.tar\.gz$/);
    assert.equal(svc?.namespace, 'acme');

    let call = await callDemo(home, 'Alice', 50);
    assert.equal(call.code, 0, call.stderr);
    assert.equal(call.stdout, '{"message":"Hello Alice"}\n');

    // a restarted server whose build folder is gone restores it from the build kept in the blob store (sandboxed: chowned to the tenant)
    await stopProcess(server.proc);
    rmSync(join(home, 'runtime', 'builds', 'acme'), { recursive: true, force: true });
    server = await startServer(home, { env: SANDBOX_ENV });
    call = await callDemo(home, 'Bob', 300);
    assert.equal(call.stdout, '{"message":"Hello Bob"}\n', call.stderr);
    assert.match((await micro(home, ['logs', 'demo', '--lines', '200'])).stdout, /restored build \S+ from runtime\/builds\/demo\/\S+\.tar\.gz \(no fetch, install or compile\)/);

    // a path of the server's machine is for admins of micro; an upload of nobody is not found
    const path = await micro(home, ['run', 'file:///etc']);
    assert.equal(path.code, 1);
    assert.match(path.stderr, /forbidden: .*only admins of namespace micro may run: run a folder of your own machine with `micro run \.\/dir`/);
    const nothing = await micro(home, ['run', 'upload:runtime/uploads/00000000000000000000000000000000/x.tar.gz']);
    assert.equal(nothing.code, 1);
    assert.match(nothing.stderr, /not found in namespace acme/);

    const update = await micro(home, ['update', 'demo', './demo'], { cwd: work, timeout: 120_000 });
    assert.equal(update.code, 0, `${update.stdout}\n${update.stderr}`);
    assert.match(update.stdout, /^• uploading /m);
    assert.match(update.stdout, /^demo is updated \(namespace acme\): 1\/1 instance running$/m);
    const after = JSON.parse((await micro(home, ['status', 'demo', '-o', 'json'])).stdout) as { source: string }[];
    assert.notEqual(after[0]?.source, svc?.source, 'the service runs the new upload');
    // the old upload was deleted, the new one is kept for rebuilds; beside it the artifacts of the current build and the one before
    assert.equal(readdirSync(join(home, 'data', 'blobs')).length, 3);

    const kill = await micro(home, ['kill', 'demo']);
    assert.equal(kill.code, 0, kill.stderr);
    assert.deepEqual(readdirSync(join(home, 'data', 'blobs')), [], 'micro kill deletes the upload');
    assert.ok(!existsSync(join(home, 'runtime', 'builds', 'acme', 'demo')));
  });
});

test('nats profile: the upload is kept in PostgreSQL, built and run for the tenant, and deleted by micro kill', { timeout: 240_000 }, async (t) => {
  const platform = await natsPlatform(t, 'upload');
  if (!platform) return;
  const home = tempDir('micro-upload-nats-');
  const work = tempDir('micro-upload-nats-src-');
  const env = { ...SANDBOX_ENV, ...platform.env };
  let server = await startServer(home, { env, timeout: 60_000 });
  t.after(async () => {
    await stopProcess(server.proc);
    await platform.drop();
    rmSync(home, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });
  assert.equal((await micro(home, ['new', 'demo'], { cwd: work })).code, 0);
  const made = await micro(home, ['auth', 'create', 'account', 'carol', '--namespace', 'acme', '--scopes', 'dev', '-o', 'json']);
  assert.equal(made.code, 0, made.stderr);
  const { secret } = JSON.parse(made.stdout) as { secret: string };
  assert.equal((await micro(home, ['login', '--id', 'carol', '--secret', '-', '--namespace', 'acme'], { input: `${secret}\n` })).code, 0);

  const run = await micro(home, ['run', './demo'], { cwd: work, timeout: 120_000 });
  assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
  assert.match(run.stdout, /^demo is running \(namespace acme\): 1\/1 instance running$/m);
  const [svc] = JSON.parse((await micro(home, ['status', 'demo', '-o', 'json'])).stdout) as { source: string }[];
  const source = svc?.source ?? '';
  assert.match(source, /^upload:runtime\/uploads\/[0-9a-f]{32}\/demo\.tar\.gz$/);
  // the upload is in the shared blob store, not on this node's disk
  assert.ok(!existsSync(join(home, 'data', 'blobs')) || readdirSync(join(home, 'data', 'blobs')).length === 0);

  let call = await callDemo(home, 'Alice', 50);
  assert.equal(call.stdout, '{"message":"Hello Alice"}\n', call.stderr);

  // the build is kept in PostgreSQL too: a node without the build folder restores it from there
  await stopProcess(server.proc);
  rmSync(join(home, 'runtime', 'builds', 'acme'), { recursive: true, force: true });
  server = await startServer(home, { env, timeout: 60_000 });
  call = await callDemo(home, 'Bob', 300);
  assert.equal(call.stdout, '{"message":"Hello Bob"}\n', call.stderr);
  assert.match((await micro(home, ['logs', 'demo', '--lines', '200'])).stdout, /restored build \S+ from runtime\/builds\/demo\/\S+\.tar\.gz \(no fetch, install or compile\)/);
  assert.ok(!existsSync(join(home, 'data', 'blobs')) || readdirSync(join(home, 'data', 'blobs')).length === 0);

  assert.equal((await micro(home, ['kill', 'demo'])).code, 0);
  // the same upload again: micro kill deleted it from PostgreSQL
  const again = await micro(home, ['run', source]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /not found in namespace acme/);
});
