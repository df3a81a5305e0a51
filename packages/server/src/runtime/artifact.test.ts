import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Header } from 'tar';
import { MemoryBlobStore, MicroError } from '@micro/sdk';
import { ArtifactTooLarge, packBuild, unpackBuild } from './artifact.js';
import { extractUpload, linkInside } from './upload.js';

/* Shared builds: packing a build folder into the blob store and unpacking it, links and all, safely. */

const root = mkdtempSync(join(tmpdir(), 'micro-artifact-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, `out-${n++}`);

/** A gzipped tar of hand-made entries (what a hostile blob could hold). */
function archive(entries: { path: string; type?: 'File' | 'Directory' | 'SymbolicLink'; linkpath?: string; body?: string; size?: number }[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.from(e.body ?? '');
    const type = e.type ?? 'File';
    const h = new Header({ path: e.path, type, mode: type === 'Directory' ? 0o755 : 0o644, size: type === 'File' ? (e.size ?? body.length) : 0, mtime: new Date(0), ...(e.linkpath ? { linkpath: e.linkpath } : {}) });
    h.encode();
    blocks.push(h.block as Buffer);
    if (type === 'File' && body.length > 0) blocks.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

async function* chunks(data: Buffer): AsyncIterable<Uint8Array> {
  yield data;
}

const links = { links: true };
const limits = { files: 100, bytes: 1024 * 1024, fileBytes: 1024 };

describe('unpacking a build with links', () => {
  it('makes links that stay inside the folder (.bin and package links)', async () => {
    const dest = fresh();
    await extractUpload(
      chunks(archive([
        { path: 'vendor/greet/bin.js', body: 'x' },
        { path: 'node_modules/greet', type: 'SymbolicLink', linkpath: '../vendor/greet' },
        { path: 'node_modules/.bin/greet', type: 'SymbolicLink', linkpath: '../greet/bin.js' },
      ])),
      dest,
      'build',
      limits,
      links,
    );
    assert.equal(readlinkSync(join(dest, 'node_modules/.bin/greet')), '../greet/bin.js');
    assert.equal(readFileSync(join(dest, 'node_modules/.bin/greet'), 'utf8'), 'x');
  });

  const refused: [string, Parameters<typeof archive>[0], RegExp][] = [
    ['an absolute link', [{ path: 'node_modules/x', type: 'SymbolicLink', linkpath: '/etc' }], /symbolic link to "\/etc", outside the folder/],
    ['a link climbing out', [{ path: 'node_modules/x', type: 'SymbolicLink', linkpath: '../../etc' }], /outside the folder/],
    ['a link with .. after a component', [{ path: 'a', type: 'SymbolicLink', linkpath: 'b/../../x' }], /outside the folder/],
    ['a file written through a link', [{ path: 'd', type: 'Directory' }, { path: 'l', type: 'SymbolicLink', linkpath: 'd' }, { path: 'l/f', body: 'x' }], /under a symbolic link of the archive/],
    ['a link under a link', [{ path: 'l', type: 'SymbolicLink', linkpath: 'd' }, { path: 'l/m', type: 'SymbolicLink', linkpath: '../x' }], /under a symbolic link/],
    ['a .. entry', [{ path: '../evil.js', body: 'x' }], /has a "\.\." component/],
    ['an oversized entry', [{ path: 'big.bin', size: 4096 }], /is 4096 bytes; a file may have at most 1024/],
  ];
  for (const [what, entries, message] of refused) {
    it(`refuses ${what} and leaves nothing`, async () => {
      const dest = fresh();
      await assert.rejects(extractUpload(chunks(archive(entries)), dest, 'build', limits, links), (err: unknown) => err instanceof MicroError && err.code === 400 && message.test(err.detail));
      assert.ok(!existsSync(dest));
      assert.ok(!existsSync(join(root, 'evil.js')));
    });
  }

  it('refuses every link without the option (uploads)', async () => {
    await assert.rejects(extractUpload(chunks(archive([{ path: 'node_modules/.bin/x', type: 'SymbolicLink', linkpath: '../x/i.js' }])), fresh(), 'up', limits), /is a SymbolicLink/);
  });

  it('linkInside: depth of the link bounds the leading ..', () => {
    assert.equal(linkInside('node_modules/.bin/tsc', '../typescript/bin/tsc'), true);
    assert.equal(linkInside('node_modules/x', '../vendor/x'), true);
    assert.equal(linkInside('x', '../x'), false);
    assert.equal(linkInside('a/b', './c'), false);
    assert.equal(linkInside('a/b', '..'), false);
  });
});

describe('packing a build into the blob store', () => {
  it('keeps files and inside links, leaves out the runtime links, and comes back with its SHA-256 checked', async () => {
    const dir = fresh();
    mkdirSync(join(dir, 'node_modules/.bin'), { recursive: true });
    mkdirSync(join(dir, 'node_modules/@micro'), { recursive: true });
    mkdirSync(join(dir, 'node_modules/pkg'), { recursive: true });
    mkdirSync(join(dir, 'dist'));
    writeFileSync(join(dir, 'dist/main.js'), 'console.log(1)');
    writeFileSync(join(dir, 'node_modules/pkg/cli.js'), '#!/usr/bin/env node\n');
    symlinkSync('../pkg/cli.js', join(dir, 'node_modules/.bin/pkg'));
    symlinkSync('/usr', join(dir, 'node_modules/@micro/sdk'));
    const blobs = new MemoryBlobStore();
    const packed = await packBuild(dir, blobs, 'runtime/builds/svc/b1.tar.gz', 'acme');
    const back = fresh();
    await unpackBuild(blobs, packed, 'acme', back);
    assert.equal(readFileSync(join(back, 'dist/main.js'), 'utf8'), 'console.log(1)');
    assert.equal(readlinkSync(join(back, 'node_modules/.bin/pkg')), '../pkg/cli.js');
    assert.ok(lstatSync(join(back, 'node_modules/pkg/cli.js')).isFile());
    assert.ok(!existsSync(join(back, 'node_modules/@micro/sdk')), 'the runtime link is made again at restore, not packed');

    // a blob rewritten through the store API is not the build this runtime packed
    await blobs.put('runtime/builds/svc/b1.tar.gz', archive([{ path: 'dist/main.js', body: 'evil' }]), { namespace: 'acme' });
    const other = fresh();
    await assert.rejects(unpackBuild(blobs, packed, 'acme', other), /is not the one this build packed/);
    assert.ok(!existsSync(other));
  });

  it('past its bound keeps nothing', async () => {
    const dir = fresh();
    mkdirSync(dir);
    writeFileSync(join(dir, 'noise.bin'), Buffer.from(Array.from({ length: 64 * 1024 }, () => Math.floor(Math.random() * 256))));
    const blobs = new MemoryBlobStore();
    await assert.rejects(packBuild(dir, blobs, 'runtime/builds/svc/b2.tar.gz', 'acme', 16 * 1024), ArtifactTooLarge);
    assert.deepEqual(await blobs.list({ namespace: 'acme' }), []);
  });
});
