import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const helloworldMain = join(here, 'main.js');
const clientMain = join(here, '..', '..', 'greeter-client', 'dist', 'main.js');

/**
 * The examples as a new user runs them: helloworld in one process (what `npm start`
 * runs), the greeter client in another, finding it through the registry in MICRO_HOME.
 */
test('greeter-client calls helloworld in another process', async () => {
  const home = mkdtempSync(join(tmpdir(), 'micro-examples-'));
  const env = { ...process.env, MICRO_HOME: home, MICRO_LOG_LEVEL: 'info' };
  const server = spawn(process.execPath, [helloworldMain], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`helloworld did not start:\n${out}`)), 15_000);
      server.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('Stop it with Ctrl-C')) {
          clearTimeout(timer);
          resolve();
        }
      });
      server.once('exit', (code) => reject(new Error(`helloworld exited with ${code}:\n${out}`)));
    });
    assert.match(out, /Call {3}\{"name":"World"\} +-> \{"message":"Hello World"\}/);
    assert.match(out, /3 messages/);
    // its log lines are structured JSON
    const logLine = out.split('\n').find((l) => l.startsWith('{'));
    assert.equal(JSON.parse(logLine!).service, 'helloworld');

    const client = spawnSync(process.execPath, [clientMain, 'Alice'], { env, encoding: 'utf8', timeout: 15_000 });
    assert.equal(client.status, 0, client.stderr);
    assert.equal(client.stdout, 'Hello Alice\nstream: Hello Alice\nstream: Hello Alice\n');

    // SIGTERM stops helloworld gracefully; then the client says what to do
    server.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => server.once('exit', (c) => r(c)));
    assert.equal(code, 0);
    const after = spawnSync(process.execPath, [clientMain, 'Bob'], { env, encoding: 'utf8', timeout: 15_000 });
    assert.equal(after.status, 1);
    assert.match(after.stderr, /service helloworld not found/);
    assert.match(after.stderr, /npm start/);
  } finally {
    server.kill('SIGKILL');
    rmSync(home, { recursive: true, force: true });
  }
});
