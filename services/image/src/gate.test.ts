import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isMicroError } from '@micro/sdk';
import { Gate } from './gate.js';

/** A job that runs until `finish` is called. */
function job() {
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  let started = false;
  return { run: async () => { started = true; await done; return 'ok'; }, finish: () => finish(), started: () => started };
}

test('gate: at most `slots` run at once, in arrival order; a tenant past its share is told 429 and others still get in', async () => {
  const gate = new Gate(1, 2);
  const [a1, a2, a3, b1] = [job(), job(), job(), job()];
  const first = gate.run('a', a1.run);
  const second = gate.run('a', a2.run);
  await Promise.resolve();
  assert.equal(a1.started(), true);
  assert.equal(a2.started(), false, 'one slot: the second waits');
  await assert.rejects(gate.run('a', a3.run), (err: unknown) => isMicroError(err) && err.code === 429 && /at most 2 images/.test(err.detail));
  assert.equal(a3.started(), false);
  const other = gate.run('b', b1.run);
  a1.finish();
  assert.equal(await first, 'ok');
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(a2.started(), true, 'the slot goes to the next in line');
  assert.equal(b1.started(), false);
  a2.finish();
  await second;
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(b1.started(), true);
  b1.finish();
  await other;
  // a failed job frees its slot and its tenant's share
  await assert.rejects(gate.run('a', async () => { throw new Error('boom'); }), /boom/);
  assert.equal(await gate.run('a', async () => 'again'), 'again');
});
