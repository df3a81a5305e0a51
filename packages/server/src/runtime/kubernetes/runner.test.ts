import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { create as createTar } from 'tar';
import { Transfers, type TransferStore } from './transfer.js';

/**
 * The runner as the pods run it (`node runner.js build|run`), against signed transfer
 * URLs of a gateway-like server: the build fetches the source, builds, uploads the packed
 * build; run downloads it, checks its SHA-256, starts the service and, on SIGTERM, stops it.
 */

const RUNNER = join(dirname(fileURLToPath(import.meta.url)), 'runner.js');

function runner(args: string[], env: NodeJS.ProcessEnv): { done: Promise<{ code: number | null; out: string }>; child: ReturnType<typeof spawn>; out: () => string } {
  const child = spawn(process.execPath, [RUNNER, ...args], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const done = new Promise<{ code: number | null; out: string }>((resolve) => child.on('close', (code) => resolve({ code, out })));
  return { done, child, out: () => out };
}

test('build: source in, packed build out through the signed URLs; run: the build checked, unpacked and started, stopped on SIGTERM', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'runner-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const src = join(root, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'package.json'), JSON.stringify({ name: 'tiny', main: 'main.js' }));
  writeFileSync(join(src, 'main.js'), "console.log('tiny up', process.env.MICRO_RUNTIME_INSTANCE, process.env.GREETING); process.on('SIGTERM', () => { console.log('tiny stopping'); process.exit(0); }); setInterval(() => {}, 1000);\n");
  const sourceTar = join(root, 'source.tar.gz');
  await createTar({ gzip: true, cwd: src, portable: true, file: sourceTar }, ['.']);
  const { readFileSync } = await import('node:fs');
  let built: Buffer | undefined;
  let entry = '';
  const store: TransferStore = {
    async *source() {
      yield readFileSync(sourceTar);
    },
    async build(_c, data, e) {
      const chunks: Buffer[] = [];
      for await (const c of data) chunks.push(Buffer.from(c));
      built = Buffer.concat(chunks);
      entry = e;
    },
    async *artifact() {
      if (!built) throw new Error('no build');
      yield built;
    },
  };
  const transfers = new Transfers({ secret: 'a key of at least sixteen characters' });
  const server = createServer((req, res) => {
    transfers.serve(req, res, (req.url ?? '').replace(/^\/runtime\//, ''), store).catch((err: { code?: number; message: string }) => {
      res.writeHead(err.code ?? 500);
      res.end(err.message);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => server.close(r)));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/runtime`;
  const claim = { namespace: 'acme', service: 'tiny', build: 'ab12cd34' };

  const buildWork = join(root, 'build-work');
  mkdirSync(buildWork);
  const b = runner(['build'], { MICRO_RUNNER_WORK: buildWork, HOME: buildWork, MICRO_RUNNER_SOURCE: `${url}/sources/${transfers.sign({ ...claim, kind: 'source' }, 60_000)}`, MICRO_RUNNER_BUILD: `${url}/builds/${transfers.sign({ ...claim, kind: 'build' }, 60_000)}` });
  const result = await b.done;
  assert.equal(result.code, 0, result.out);
  assert.match(result.out, /\{"step":"fetch","message":"unpacked \d+ files/);
  assert.match(result.out, /\{"step":"build","message":"uploaded the build/);
  assert.equal(entry, 'main.js');
  assert.ok(built && built.length > 0);
  const sha256 = createHash('sha256').update(built).digest('hex');

  // a build whose SHA-256 is not the recorded one is refused
  const badWork = join(root, 'bad-work');
  mkdirSync(badWork);
  const artifactUrl = `${url}/artifacts/${transfers.sign({ ...claim, kind: 'artifact' }, 60_000)}`;
  const bad = await runner(['run'], { MICRO_RUNNER_WORK: badWork, MICRO_RUNNER_ARTIFACT: artifactUrl, MICRO_RUNNER_SHA256: '0'.repeat(64), MICRO_RUNNER_ENTRY: 'main.js' }).done;
  assert.equal(bad.code, 1);
  assert.match(bad.out, /is not the one this build packed/);

  const runWork = join(root, 'run-work');
  mkdirSync(runWork);
  const r = runner(['run'], { MICRO_RUNNER_WORK: runWork, MICRO_HOME: join(root, 'home'), MICRO_RUNNER_DRAIN: '0', MICRO_POD_NAME: 'svc-tiny-abc-xyz', MICRO_RUNNER_ARTIFACT: artifactUrl, MICRO_RUNNER_SHA256: sha256, MICRO_RUNNER_ENTRY: entry, GREETING: 'hi' });
  const deadline = Date.now() + 20_000;
  while (!r.out().includes('tiny up') && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
  assert.match(r.out(), /tiny up svc-tiny-abc-xyz hi/);
  r.child.kill('SIGTERM');
  const ended = await r.done;
  assert.equal(ended.code, 0, ended.out);
  assert.match(ended.out, /tiny stopping/);
  // the runner's own settings do not reach the service
  assert.doesNotMatch(ended.out, /MICRO_RUNNER/);

  const usage = await runner(['nonsense'], {}).done;
  assert.equal(usage.code, 2);
  assert.match(usage.out, /usage: runner.js build\|run\|ready/);
  const missing = await runner(['build'], { MICRO_RUNNER_WORK: root }).done;
  assert.match(missing.out, /MICRO_RUNNER_SOURCE is not set/);
});
