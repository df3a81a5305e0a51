import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryConfig } from './memory.js';
import { configContract } from './contract.js';
import { SECRET_MASK } from './config.js';

configContract('memory', async () => {
  const impl = new MemoryConfig();
  return { impl, close: () => impl.close() };
});

test('the default namespace is micro, or the one given', async () => {
  const c = new MemoryConfig();
  await c.set('a', 1);
  assert.equal(await c.get('a', { namespace: 'micro' }), 1);
  const d = new MemoryConfig({ defaultNamespace: 'team' });
  await d.set('a', 2);
  assert.equal(await d.get('a', { namespace: 'team' }), 2);
  assert.equal(await d.get('a', { namespace: 'micro' }), undefined);
  await c.close();
  await d.close();
});

test('values that are not JSON are refused in process too (the wire could not carry them)', async () => {
  const c = new MemoryConfig();
  for (const [value, what] of [
    [NaN, /finite number/],
    [Infinity, /finite number/],
    [{ a: undefined }, /value\.a must be JSON.*not undefined/],
    [{ d: new Date(0) }, /value\.d must be JSON.*not Date/],
    [[() => 1], /value\.0 must be JSON.*not function/],
    [{ m: new Map() }, /not Map/],
    [10n, /not bigint/],
  ] as const) {
    await assert.rejects(c.set('x', value as never), (err: { code: number; detail: string }) => err.code === 400 && what.test(err.detail));
  }
  assert.deepEqual(await c.get(''), {});
  await c.close();
});

test('a closed config refuses calls and ends its watchers with an error', async () => {
  const c = new MemoryConfig();
  const w = c.watch('a');
  const it = w[Symbol.asyncIterator]();
  assert.equal((await it.next()).value?.op, 'current');
  const pending = it.next();
  await c.close();
  await assert.rejects(pending, (err: { code: number; detail: string }) => err.code === 503 && /is closing/.test(err.detail));
  assert.deepEqual(await it.next(), { value: undefined, done: true });
  await assert.rejects(c.get('a'), (err: { code: number }) => err.code === 503);
});

test('a watcher that falls too far behind is dropped with an error that says so', async () => {
  const c = new MemoryConfig();
  const w = c.watch('n');
  for (let i = 0; i < 1001; i++) await c.set('n', i);
  const seen: number[] = [];
  await assert.rejects(
    (async () => {
      for await (const change of w) seen.push(change.value as number);
    })(),
    (err: { code: number; detail: string }) => err.code === 503 && /fell more than 1000 changes behind/.test(err.detail),
  );
  assert.deepEqual(seen, [], 'what was queued is dropped with the watcher');
  await c.set('n', 'after'); // writers are not disturbed
  await c.close();
});

test('a secret set in one memory config cannot be read with another key', async () => {
  const a = new MemoryConfig();
  await a.set('s', 'v', { secret: true });
  assert.equal(await a.get('s'), SECRET_MASK);
  assert.equal(await a.get('s', { secrets: true }), 'v');
  await a.close();
});

test('a namespace may have at most 1000 watchers open at once; others are not affected', async () => {
  const c = new MemoryConfig();
  const open = Array.from({ length: 1000 }, () => c.watch('a', { namespace: 'busy' }));
  assert.throws(() => c.watch('a', { namespace: 'busy' }), (err: { code: number; detail: string }) => err.code === 429 && /namespace busy has 1000 config watchers open/.test(err.detail));
  c.watch('a', { namespace: 'calm' }).stop();
  open[0]?.stop();
  c.watch('a', { namespace: 'busy' }).stop(); // a stopped watcher frees its place
  for (const w of open) w.stop();
  await c.close();
});
