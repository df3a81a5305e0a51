import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeFrame, encodeRequest, encodeRoute, FrameType } from '../frame.js';
import { Batch, forEachFrame, isBatch } from './batch.js';

/* The batch format of batch.ts: pure functions, no engine needed. */

function frames(buf: Buffer): { ok: boolean; got: Buffer[] } {
  const got: Buffer[] = [];
  const ok = forEachFrame(buf, (f) => got.push(Buffer.from(f)));
  return { ok, got };
}

test('a batch is told from a single frame by its first byte, and splits back into its frames', () => {
  const a = encodeRequest(FrameType.Request, 1, 0, 'unary', 0, encodeRoute('ns', 'svc', 'Call'), undefined, '{"a":1}');
  const b = encodeFrame(FrameType.Cancel, 7, 0, undefined);
  const batch = new Batch('subject');
  batch.push(a, 1);
  batch.push(b, 7);
  batch.push(encodeFrame(FrameType.End, 7, 0, undefined), 7);
  // one id per call, in order, even when a call has several frames in the batch
  assert.deepEqual(batch.ids, [1, 7]);
  const taken = batch.take();
  assert.equal(batch.frames.length, 0);
  assert.equal(batch.bytes, 0);
  const payload = Buffer.concat(taken.frames, taken.bytes);
  assert.ok(isBatch(payload));
  // a single frame starts with its type, never 0; an empty payload is no batch
  assert.ok(!isBatch(a.subarray(4)));
  assert.ok(!isBatch(Buffer.alloc(0)));
  const { ok, got } = frames(payload);
  assert.ok(ok);
  assert.deepEqual(got, [a.subarray(4), b.subarray(4), encodeFrame(FrameType.End, 7, 0, undefined).subarray(4)]);
});

test('malformed batches: framing stops at the first length that does not fit, the frames before it are kept', () => {
  const good = encodeFrame(FrameType.End, 3, 0, undefined);
  const cases: Array<[string, Buffer, number]> = [
    ['a length running past the end', Buffer.from([0, 0, 0, 200, 1, 0, 0, 0, 0, 1]), 0],
    ['a length shorter than a frame header', Buffer.from([0, 0, 0, 2, 1, 2]), 0],
    ['a zero length', Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]), 0],
    ['trailing bytes too few for a length', Buffer.concat([good, Buffer.from([0, 0])]), 1],
    ['a good frame then an overrun', Buffer.concat([good, Buffer.from([0, 0, 0, 50, 5])]), 1],
    ['a huge length', Buffer.concat([Buffer.from([0, 0xff, 0xff, 0xff]), Buffer.alloc(16)]), 0],
    ['only a length', Buffer.from([0, 0, 0, 6]), 0],
  ];
  for (const [what, buf, kept] of cases) {
    const { ok, got } = frames(buf);
    assert.equal(ok, false, what);
    assert.equal(got.length, kept, what);
  }
  // an empty batch has nothing wrong in it, and nothing in it
  assert.deepEqual(frames(Buffer.alloc(0)), { ok: true, got: [] });
});
