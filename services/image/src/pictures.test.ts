import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cropRegion, formatOf, resized } from './pictures.js';

test('pictures: the size a resize gives and the region a crop takes', () => {
  const size = { width: 400, height: 200 };
  assert.deepEqual(resized(size, 100, 0), { width: 100, height: 50 });
  assert.deepEqual(resized(size, 0, 50), { width: 100, height: 50 });
  assert.deepEqual(resized(size, 30, 90), { width: 30, height: 90 });
  assert.deepEqual(resized({ width: 3000, height: 1 }, 0, 1), { width: 3000, height: 1 });
  assert.deepEqual(resized({ width: 1, height: 3000 }, 1, 0), { width: 1, height: 3000 });
  assert.throws(() => resized({ width: 1, height: 3000 }, 2, 0), /6000/);
  assert.deepEqual(cropRegion(size, {}), { left: 0, top: 0, width: 400, height: 200 });
  assert.deepEqual(cropRegion(size, { width: 100, height: 100 }), { left: 150, top: 50, width: 100, height: 100 });
  assert.deepEqual(cropRegion(size, { anchor: 'Bottom-Right', width: 100, height: 100 }), { left: 300, top: 100, width: 100, height: 100 });
  assert.deepEqual(cropRegion(size, { anchor: 'top left', width: 100 }), { left: 0, top: 0, width: 100, height: 200 });
  assert.deepEqual(cropRegion(size, { anchor: 'bottom', width: 1000, height: 1000 }), { left: 0, top: 0, width: 400, height: 200 }, 'a crop larger than the image is the image');
  assert.equal(formatOf('a/b.JPG'), 'jpeg');
  assert.equal(formatOf('x.tif'), 'tiff');
  for (const bad of ['x', 'x.', 'dir.png/x', 'x.svg', 'x.png.exe']) assert.throws(() => formatOf(bad), /extension/, bad);
});
