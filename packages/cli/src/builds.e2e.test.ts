import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Header } from 'tar';
import { micro, startServer, stopProcess, tempDir, type Result, type RunningServer } from './testing.js';

/*
 * Shared builds: a build is kept in the blob store, so a server whose build folder AND
 * source folder are gone brings the service back from it, without npm or tsc (the source
 * is gone: a rebuild could only fail). The service needs a dependency from node_modules
 * (a local file: package, with a .bin link), so the links must come back too.
 */

async function call(home: string, name: string, tries = 300): Promise<Result | undefined> {
  let res: Result | undefined;
  for (let i = 0; i < tries && res?.code !== 0; i++) {
    res = await micro(home, ['shared', 'call', `--name=${name}`, '-o', 'json']);
    if (res.code !== 0) await new Promise((r) => setTimeout(r, 200));
  }
  return res;
}

interface Status {
  state: string;
  build?: { id: string; error?: string };
}

describe('a build kept in the blob store', () => {
  let home: string;
  let work: string;
  let server: RunningServer;
  const blobs = () => join(home, 'data', 'blobs');
  const status = async () => (JSON.parse((await micro(home, ['status', 'shared', '-o', 'json'])).stdout) as Status[])[0];
  const logs = async () => (await micro(home, ['logs', 'shared', '--lines', '200'])).stdout;

  before(async () => {
    home = tempDir('micro-builds-e2e-');
    work = tempDir('micro-builds-e2e-src-');
    server = await startServer(home);
    assert.equal((await micro(home, ['new', 'shared'], { cwd: work })).code, 0);
    const dir = join(work, 'shared');
    mkdirSync(join(dir, 'vendor', 'greet'), { recursive: true });
    writeFileSync(join(dir, 'vendor', 'greet', 'package.json'), JSON.stringify({ name: 'greet', version: '1.0.0', main: 'index.js', bin: { greet: 'bin.js' } }));
    writeFileSync(join(dir, 'vendor', 'greet', 'index.js'), "module.exports = 'greet';\n");
    writeFileSync(join(dir, 'vendor', 'greet', 'bin.js'), "#!/usr/bin/env node\nconsole.log('greet');\n");
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    pkg.dependencies.greet = 'file:./vendor/greet';
    writeFileSync(join(dir, 'package.json'), JSON.stringify(pkg, null, 2));
    // the service does not start without its dependency in node_modules
    const main = join(dir, 'src', 'main.ts');
    writeFileSync(main, `import { createRequire } from 'node:module';\nif (createRequire(import.meta.url)('greet') !== 'greet') throw new Error('no greet');\n${readFileSync(main, 'utf8')}`);
  });

  after(async () => {
    if (server) await stopProcess(server.proc);
    rmSync(home, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });

  test('comes back without its build or source folder, from the artifact; updates keep two; kill deletes them', { timeout: 600_000 }, async () => {
    const run = await micro(home, ['run', './shared'], { cwd: work, timeout: 180_000 });
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
    assert.equal((await call(home, 'Alice'))?.stdout, '{"message":"Hello Alice"}\n');
    const first = (await status())?.build?.id ?? '';
    assert.match(await logs(), new RegExp(`kept build ${first} in the blob store as runtime/builds/shared/${first}\\.tar\\.gz`));
    assert.equal(readdirSync(blobs()).length, 1);

    // two updates: the current build and the one before are kept, the first one's artifact goes
    for (let i = 0; i < 2; i++) {
      const update = await micro(home, ['update', 'shared'], { timeout: 180_000 });
      assert.equal(update.code, 0, `${update.stdout}\n${update.stderr}`);
    }
    const current = (await status())?.build?.id ?? '';
    assert.notEqual(current, first);
    assert.equal(readdirSync(blobs()).length, 2);

    // gone: the build folders and the source folder; nothing could rebuild it
    await stopProcess(server.proc);
    rmSync(join(home, 'runtime', 'builds', 'micro', 'shared'), { recursive: true, force: true });
    rmSync(join(work, 'shared'), { recursive: true, force: true });
    server = await startServer(home);
    assert.equal((await call(home, 'Bob'))?.stdout, '{"message":"Hello Bob"}\n');
    const log = await logs();
    assert.match(log, new RegExp(`restored build ${current} from runtime/builds/shared/${current}\\.tar\\.gz \\(no fetch, install or compile\\)`));
    assert.doesNotMatch(log.slice(log.lastIndexOf('restored build')), /building it again|fetching|npm install/);
    assert.equal((await status())?.build?.id, current);
    const restored = join(home, 'runtime', 'builds', 'micro', 'shared', current);
    assert.equal(readlinkSync(join(restored, 'node_modules', '.bin', 'greet')), '../greet/bin.js');
    assert.equal(readlinkSync(join(restored, 'node_modules', 'greet')), '../vendor/greet');
    assert.ok(lstatSync(join(restored, 'node_modules', '@micro', 'sdk')).isSymbolicLink(), 'the runtime made its SDK link again');

    // an artifact rewritten behind the runtime's back (a link out of the folder) is refused:
    // the runtime falls back to a rebuild, which fails without a source, and says so
    await stopProcess(server.proc);
    rmSync(restored, { recursive: true, force: true });
    const hostile = Buffer.concat([
      (() => {
        const h = new Header({ path: 'node_modules/x', type: 'SymbolicLink', linkpath: '/etc', mode: 0o777, size: 0, mtime: new Date(0) });
        h.encode();
        return h.block as Buffer;
      })(),
      Buffer.alloc(1024),
    ]);
    for (const file of readdirSync(blobs())) writeFileSync(join(blobs(), file), gzipSync(hostile));
    server = await startServer(home);
    let svc: Status | undefined;
    for (let i = 0; i < 100 && !svc?.build?.error; i++) {
      svc = await status();
      if (!svc?.build?.error) await new Promise((r) => setTimeout(r, 200));
    }
    assert.match(svc?.build?.error ?? '', /^source .*shared does not exist$/, JSON.stringify(svc));
    const log2 = await logs();
    assert.match(log2, new RegExp(`could not restore build ${current} from runtime/builds/shared/${current}\\.tar\\.gz: `));
    assert.match(log2, /its build is gone: building it again from source/);
    assert.ok(!existsSync(join(restored, 'node_modules', 'x')));

    const kill = await micro(home, ['kill', 'shared']);
    assert.equal(kill.code, 0, kill.stderr);
    assert.deepEqual(readdirSync(blobs()), [], 'micro kill deletes the artifacts');
  });
});
