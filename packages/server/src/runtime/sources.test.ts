import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGzip, gzipSync } from 'node:zlib';
import { Header, type HeaderData } from 'tar';
import { bearer, Client, createClient, createLogger, MicroError, RemoteBlobStore, runtime, TokenSource } from '@micro/sdk';
import { MicroServer } from '../server.js';
import { nonPublic, publicAddress, type Resolver } from './address.js';
import { parseSource } from './source.js';

/*
 * Sources of strangers, attacked for real against a running micro server: server-side
 * paths, git URLs to internal addresses, and hostile uploads.
 */

const silent = createLogger({ level: 'silent' });

// ---- tar archives written by hand: node-tar itself would refuse to make these ----

function entry(data: Partial<HeaderData> & { path: string }, body?: Buffer): Buffer {
  const size = body?.length ?? data.size ?? 0;
  const header = Buffer.alloc(512);
  new Header({ mode: 0o644, uid: 0, gid: 0, mtime: new Date(0), type: 'File', ...data, size }).encode(header, 0);
  if (!body) return header;
  const padded = Buffer.alloc(Math.ceil(body.length / 512) * 512);
  body.copy(padded);
  return Buffer.concat([header, padded]);
}

const END = Buffer.alloc(1024);

function tgz(...entries: Buffer[]): Buffer {
  return gzipSync(Buffer.concat([...entries, END]));
}

/** Gzip of `bytes` zero bytes (a bomb: a few MiB that unpack to it all), after `head`. */
async function zeros(bytes: number, head: Uint8Array = Buffer.alloc(0)): Promise<Buffer> {
  const gz = createGzip({ level: 9 });
  const chunks: Buffer[] = [];
  gz.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise((resolve) => gz.on('end', resolve));
  gz.write(head);
  const block = Buffer.alloc(1024 * 1024);
  for (let left = bytes; left > 0; left -= block.length) {
    if (!gz.write(left >= block.length ? block : block.subarray(0, left))) await new Promise((r) => gz.once('drain', r));
  }
  gz.end();
  await done;
  return Buffer.concat(chunks);
}

// ---- a running server with two tenants ----

let home: string;
let outside: string;
let server: MicroServer;
let listener: Server;
let port: number;
let connections = 0;
let acme: { runtime: ReturnType<typeof createClient<typeof runtime>>; blobs: RemoteBlobStore };
let other: { runtime: ReturnType<typeof createClient<typeof runtime>>; blobs: RemoteBlobStore };

function clientAs(creds: { id: string; secret: string; namespace: string }): Client {
  const tokens = new Client({ address: server.address, namespace: 'micro', preferLocal: false });
  return new Client({ address: server.address, namespace: 'micro', preferLocal: false, middleware: [bearer(new TokenSource(creds, tokens))] });
}

async function tenant(namespace: string) {
  const client = clientAs({ ...(await server.serviceCredentials('deployer', namespace)), namespace });
  return { runtime: createClient(runtime, client), blobs: new RemoteBlobStore(client) };
}

async function refused(as: typeof acme, source: string): Promise<MicroError> {
  try {
    for await (const progress of as.runtime.Create({ source })) void progress;
  } catch (err) {
    assert.ok(err instanceof MicroError, String(err));
    return err;
  }
  assert.fail(`Create ${source} was accepted`);
}

let uploads = 0;
async function upload(as: typeof acme, data: Buffer, folder = 'svc'): Promise<string> {
  const key = `runtime/uploads/${(++uploads).toString(16).padStart(32, '0')}/${folder}.tar.gz`;
  await as.blobs.put(key, data);
  return `upload:${key}`;
}

/** Nothing of a refused upload is left: no build folder, no incoming folder, no blob. */
async function nothingLeft(as: typeof acme): Promise<void> {
  const builds = join(home, 'runtime', 'builds');
  assert.ok(!existsSync(join(builds, 'acme')), 'no build folder of namespace acme');
  const incoming = join(builds, '.incoming');
  assert.deepEqual(existsSync(incoming) ? readdirSync(incoming) : [], [], 'no incoming folder left');
  assert.deepEqual(await as.blobs.list({ prefix: 'runtime/uploads/' }), [], 'the upload is deleted');
}

before(async () => {
  home = mkdtempSync(join(tmpdir(), 'micro-sources-'));
  outside = mkdtempSync(join(tmpdir(), 'micro-sources-outside-'));
  listener = createServer((socket) => {
    connections++;
    socket.end('SSH-2.0-secret-banner-of-an-internal-service\r\n');
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  port = (listener.address() as { port: number }).port;
  // small totals keep the oversized upload cheap; the entry count bound is the default
  server = new MicroServer({ home, address: 'tcp://127.0.0.1:0', gateway: false, logger: silent, runtime: { uploadLimits: { bytes: 8 * 1024 * 1024, fileBytes: 4 * 1024 * 1024 } } });
  await server.start();
  acme = await tenant('acme');
  other = await tenant('other');
});

after(async () => {
  await server?.stop();
  await new Promise((resolve) => listener?.close(resolve));
  rmSync(home, { recursive: true, force: true });
  rmSync(outside, { recursive: true, force: true });
});

describe('a tenant may not run paths of the server', () => {
  test('absolute paths, file:// URLs, another namespace\'s build folder and local repositories are refused with a 403', async () => {
    const repo = join(outside, 'repo');
    mkdirSync(repo);
    execFileSync('git', ['init', '-q', '-b', 'main', repo]);
    writeFileSync(join(repo, 'package.json'), '{"name":"svc"}');
    execFileSync('git', ['-C', repo, '-c', 'user.email=a@b', '-c', 'user.name=a', 'commit', '-q', '--allow-empty', '-m', 'x']);
    const otherBuilds = join(home, 'runtime', 'builds', 'other', 'svc');
    mkdirSync(otherBuilds, { recursive: true });
    for (const source of ['/etc', `file:///etc`, otherBuilds, `${otherBuilds}/../../..`, `${repo}@main`, `file://${repo}@main`, repo, '/no/such/folder']) {
      const err = await refused(acme, source);
      assert.equal(err.code, 403, `${source}: ${err.detail}`);
      assert.match(err.detail, /which only admins of namespace micro may run: run a folder of your own machine with `micro run \.\/dir`/);
    }
    // the same answer whether the path exists or not: the disk is not looked at
    assert.equal((await refused(acme, '/no/such/folder')).detail.replace('/no/such/folder', 'X'), (await refused(acme, '/etc')).detail.replace('/etc', 'X'));
    rmSync(join(home, 'runtime', 'builds', 'other'), { recursive: true, force: true });
    await nothingLeft(acme);
  });

  test('Update checks a new source as Create does; an upload it cannot use is deleted', async () => {
    const update = async (source: string) => {
      try {
        for await (const p of acme.runtime.Update({ name: 'nosuch', source })) void p;
      } catch (err) {
        return err as MicroError;
      }
      assert.fail('Update was accepted');
    };
    assert.equal((await update('/etc')).code, 403);
    assert.equal((await update(`http://127.0.0.1:${port}/x.git`)).code, 400);
    assert.equal((await update(await upload(acme, tgz(entry({ path: 'package.json' }, Buffer.from('{}')))))).code, 404);
    await nothingLeft(acme);
  });
});

describe('git sources of a tenant reach only public hosts', () => {
  test('loopback, private, link-local and mapped addresses are refused before any connection, without the remote\'s words', async () => {
    const sources = [
      `https://127.0.0.1:${port}/repo.git`,
      `https://localhost:${port}/repo.git`,
      `https://[::1]:${port}/repo.git`,
      `https://[::ffff:127.0.0.1]:${port}/repo.git`,
      `https://2130706433:${port}/repo.git`,
      `https://127.1:${port}/repo.git`,
      `ssh://git@127.0.0.1:${port}/repo.git`,
      `ssh://git@localhost:${port}/repo.git`,
      'git@127.0.0.1:repo.git',
      'https://10.0.0.1/repo.git',
      'https://169.254.169.254/latest/meta-data',
      'https://[fd00::1]/repo.git',
      'https://0.0.0.0/repo.git',
    ];
    for (const source of sources) {
      const err = await refused(acme, source);
      assert.equal(err.code, 403, `${source}: ${err.detail}`);
      assert.match(err.detail, /is not a public address \(.+\); git sources must be on public hosts/, source);
      assert.doesNotMatch(err.detail, /secret-banner/);
    }
    for (const source of [`http://localhost:${port}/repo.git`, `http://127.0.0.1:${port}/repo.git`, `git://127.0.0.1:${port}/repo.git`]) {
      const err = await refused(acme, source);
      assert.equal(err.code, 400, `${source}: ${err.detail}`);
      assert.match(err.detail, /http:\/\/ and git:\/\/ are neither encrypted nor authenticated .*use https:\/\/ or ssh:\/\//);
    }
    assert.equal(connections, 0, 'no connection reached the listening server');
    await nothingLeft(acme);
  });

  test('a name that resolves to a private address among public ones is refused (injected resolver)', async () => {
    const resolver: Resolver = async (host) => ({ 'mixed.example': ['93.184.215.14', '127.0.0.1'], 'public.example': ['93.184.215.14'], 'rebind.example': ['::ffff:10.1.2.3'] })[host] ?? [];
    await assert.rejects(publicAddress('mixed.example', resolver), /resolves to 127\.0\.0\.1, a loopback address/);
    await assert.rejects(publicAddress('rebind.example', resolver), /IPv4-mapped private/);
    await assert.rejects(publicAddress('nothing.example', resolver), /has no address/);
    assert.equal(await publicAddress('public.example', resolver), '93.184.215.14');
    assert.equal(await publicAddress('localhost'.replace('localhost', '[2606:4700::1111]'), resolver), '2606:4700::1111');
  });

  test('address classes', () => {
    const refusedAddresses = ['127.0.0.1', '127.255.0.1', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '100.64.0.1', '100.127.255.255', '169.254.169.254', '0.0.0.0', '224.0.0.1', '255.255.255.255', '::', '::1', 'fc00::1', 'fdff::1', 'fe80::1', 'fe80::1%eth0', 'ff02::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:10.0.0.1', '::ffff:169.254.169.254', '64:ff9b::10.0.0.1', '::127.0.0.1', '2002:7f00:1::'];
    for (const ip of refusedAddresses) assert.ok(nonPublic(ip), `${ip} is not public`);
    for (const ip of ['8.8.8.8', '93.184.215.14', '172.32.0.1', '100.128.0.1', '2606:4700::1111', '::ffff:8.8.8.8', '64:ff9b::8.8.8.8']) assert.equal(nonPublic(ip), undefined, `${ip} is public`);
  });

  test('an admin of micro keeps every source; the trust is the caller\'s', () => {
    assert.equal(parseSource('/etc', { trusted: true }).kind, 'folder');
    assert.equal(parseSource(`http://127.0.0.1:${port}/x.git`, { trusted: true }).kind, 'git');
    assert.throws(() => parseSource('/etc', { trusted: false }), (err: MicroError) => err.code === 403);
  });
});

describe('hostile uploads are refused with a 400 and leave nothing behind', () => {
  test('a symbolic link (then a file through it), a hard link, ../ and absolute entries, a device, a fifo', async () => {
    const cases: [string, Buffer, RegExp][] = [
      ['symlink', tgz(entry({ path: 'package.json' }, Buffer.from('{}')), entry({ path: 'etc', type: 'SymbolicLink', linkpath: outside }), entry({ path: 'etc/pwned' }, Buffer.from('x'))), /entry "etc" is a SymbolicLink: an upload may hold only files and folders/],
      ['symlink to /etc/passwd', tgz(entry({ path: 'passwd', type: 'SymbolicLink', linkpath: '/etc/passwd' })), /entry "passwd" is a SymbolicLink/],
      ['hard link', tgz(entry({ path: 'passwd', type: 'Link', linkpath: '/etc/passwd' })), /entry "passwd" is a Link/],
      ['dot-dot', tgz(entry({ path: `../../${'escape'}` }, Buffer.from('x'))), /entry "\.\.\/\.\.\/escape" has a "\.\." component/],
      ['nested dot-dot', tgz(entry({ path: 'src/../../../escape' }, Buffer.from('x'))), /has a "\.\." component/],
      ['absolute', tgz(entry({ path: join(outside, 'absolute') }, Buffer.from('x'))), /has an absolute path/],
      ['device', tgz(entry({ path: 'null', type: 'CharacterDevice', devmaj: 1, devmin: 3 })), /entry "null" is a CharacterDevice/],
      ['fifo', tgz(entry({ path: 'pipe', type: 'FIFO' })), /entry "pipe" is a FIFO/],
      ['not gzip', Buffer.from('plain text, not an archive'), /is not a gzipped tar archive/],
    ];
    for (const [what, data, expected] of cases) {
      const err = await refused(acme, await upload(acme, data));
      assert.equal(err.code, 400, `${what}: ${err.detail}`);
      assert.match(err.detail, expected, what);
      await nothingLeft(acme);
    }
    assert.deepEqual(readdirSync(outside).filter((f) => f !== 'repo'), [], 'nothing was written outside');
    for (const escaped of [join(home, 'runtime', 'escape'), join(home, 'runtime', 'builds', 'escape'), join(home, 'escape')]) assert.ok(!existsSync(escaped), escaped);
  });

  test('100,001 tiny files', async () => {
    const parts: Buffer[] = [];
    for (let i = 0; i <= 100_000; i++) parts.push(entry({ path: `f/${i}` }, Buffer.from('x')));
    const err = await refused(acme, await upload(acme, tgz(...parts)));
    assert.equal(err.code, 400, err.detail);
    assert.match(err.detail, /it has more than 50000 entries/);
    await nothingLeft(acme);
  });

  test('a 2 GiB gzip bomb: raw zeros, and one entry that says it holds 2 GiB', async () => {
    const raw = await zeros(2 * 1024 ** 3);
    assert.ok(raw.length < 8 * 1024 * 1024, `the bomb is small (${raw.length} bytes)`);
    let err = await refused(acme, await upload(acme, raw));
    assert.equal(err.code, 400, err.detail);
    // zeros are two end-of-archive blocks and then more than may follow them
    assert.match(err.detail, /it goes on for more than 1 MiB after the end of the archive/);
    await nothingLeft(acme);

    const big = await zeros(64 * 1024 ** 2, entry({ path: 'big', size: 2 * 1024 ** 3 }));
    err = await refused(acme, await upload(acme, big));
    assert.equal(err.code, 400, err.detail);
    assert.match(err.detail, /entry "big" is 2147483648 bytes; a file may have at most 4194304/);
    await nothingLeft(acme);
  });

  test('an oversized total of files each within the bound', async () => {
    const mib = Buffer.alloc(1024 * 1024, 'a');
    const parts = Array.from({ length: 3 }, (_, i) => entry({ path: `part${i}` }, Buffer.concat([mib, mib, mib])));
    const err = await refused(acme, await upload(acme, tgz(...parts)));
    assert.equal(err.code, 400, err.detail);
    assert.match(err.detail, /it unpacks to more than 8 MiB \(at entry "part2"\)/);
    await nothingLeft(acme);
  });

  test('a tenant cannot name the upload of another namespace', async () => {
    const theirs = await upload(other, tgz(entry({ path: 'package.json' }, Buffer.from('{"name":"theirs"}'))));
    const err = await refused(acme, theirs);
    assert.equal(err.code, 404, err.detail);
    assert.match(err.detail, /not found in namespace acme/);
    // still there for its owner, untouched
    assert.equal((await other.blobs.list({ prefix: 'runtime/uploads/' })).length, 1);
    // another namespace named outright is the namespace rule's 403
    let forbidden: unknown;
    try {
      for await (const p of acme.runtime.Create({ source: theirs, namespace: 'other' })) void p;
    } catch (e) {
      forbidden = e;
    }
    assert.equal((forbidden as MicroError).code, 403);
    // keys outside runtime/uploads/ are not sources
    await acme.blobs.put('notes/x.tar.gz', tgz());
    assert.equal((await refused(acme, 'upload:notes/x.tar.gz')).code, 400);
    assert.equal((await acme.blobs.list({ prefix: 'notes/' })).length, 1, 'a blob that is not an upload is never deleted');
  });
});
