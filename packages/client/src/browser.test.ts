import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');

test('the library type-checks with the DOM types and without Node\'s (tsconfig.browser.json)', async () => {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const out = await new Promise<{ code: number | null; text: string }>((resolve, reject) => {
    const p = spawn(process.execPath, [tsc, '-p', join(pkg, 'tsconfig.browser.json')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    p.stdout.on('data', (d: Buffer) => (text += d.toString()));
    p.stderr.on('data', (d: Buffer) => (text += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, text }));
  });
  assert.equal(out.code, 0, out.text);
});
