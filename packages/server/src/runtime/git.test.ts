import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MicroError } from '@micro/sdk';
import { fetchSource, parseSource, type UntrustedFetch } from './source.js';

/*
 * A stranger's ssh git source, fetched for real by git through the rules of
 * cloneUntrusted. The "network" is a stand-in ssh on PATH that serves a local repository
 * with git-upload-pack (or says something and fails, or hangs), so the test needs no
 * network and shows what git is given: the pinned address, and what comes back.
 */

let dir: string;
let repo: string;
let savedPath: string | undefined;
const logged: { message: string; detail: Record<string, unknown> }[] = [];

function options(extra: Partial<UntrustedFetch> = {}) {
  return {
    onLine: () => undefined,
    timeout: 30_000,
    untrusted: {
      resolver: async (host: string) => (host === 'git.example.test' ? ['93.184.215.14'] : []),
      knownHosts: join(dir, 'known_hosts'),
      log: (message: string, detail: Record<string, unknown>) => logged.push({ message, detail }),
      ...extra,
    },
  };
}

function mode(m: 'serve' | 'say' | 'hang'): void {
  writeFileSync(join(dir, 'bin', 'mode'), m);
}

async function fetchError(source: string, extra: Partial<UntrustedFetch> = {}): Promise<MicroError> {
  const dest = join(dir, `out-${randomBytes(4).toString('hex')}`);
  try {
    await fetchSource(parseSource(source, { trusted: false }), dest, options(extra));
  } catch (err) {
    assert.ok(!existsSync(dest), 'nothing is left of a failed fetch');
    return err as MicroError;
  }
  assert.fail(`${source} was fetched`);
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'micro-git-'));
  repo = join(dir, 'svc.git');
  mkdirSync(repo);
  const git = (...args: string[]) => execFileSync('git', ['-C', repo, '-c', 'user.email=a@b', '-c', 'user.name=a', ...args]);
  git('init', '-q', '-b', 'main');
  writeFileSync(join(repo, 'package.json'), '{"name":"svc"}');
  writeFileSync(join(repo, 'big.bin'), randomBytes(3 * 1024 * 1024));
  symlinkSync('/etc/passwd', join(repo, 'passwd'));
  git('add', '-A');
  git('commit', '-q', '-m', 'x');
  // the stand-in for ssh: logs its arguments, then does what the mode file says
  mkdirSync(join(dir, 'bin'));
  const ssh = join(dir, 'bin', 'ssh');
  writeFileSync(
    ssh,
    `#!/bin/sh
here=$(dirname "$0")
echo "$@" >> "$here/args"
case "$(cat "$here/mode")" in
  serve) exec git-upload-pack '${repo}' ;;
  say) echo "remote: internal build server 10.9.8.7 says: secret words" >&2; exit 128 ;;
  hang) exec sleep 60 ;;
esac
`,
  );
  chmodSync(ssh, 0o755);
  savedPath = process.env.PATH;
  process.env.PATH = `${join(dir, 'bin')}:${process.env.PATH}`;
});

after(() => {
  process.env.PATH = savedPath;
  rmSync(dir, { recursive: true, force: true });
});

test('a public ssh source is fetched pinned to the address checked, without the server\'s keys, links as plain files', async () => {
  mode('serve');
  const dest = join(dir, 'ok');
  const { commit } = await fetchSource(parseSource('ssh://git@git.example.test/svc.git', { trusted: false }), dest, options());
  assert.match(commit ?? '', /^[0-9a-f]{40}$/);
  assert.equal(readFileSync(join(dest, 'package.json'), 'utf8'), '{"name":"svc"}');
  assert.ok(!existsSync(join(dest, '.git')));
  assert.ok(!lstatSync(join(dest, 'passwd')).isSymbolicLink(), 'a link in the repository is a plain file');
  const args = readFileSync(join(dir, 'bin', 'args'), 'utf8');
  assert.match(args, /-o HostName=93\.184\.215\.14 -o HostKeyAlias=git\.example\.test/);
  assert.match(args, /-F \/dev\/null/);
  assert.match(args, /-o IdentityAgent=none/);
  assert.match(args, /-o PubkeyAuthentication=no/);
  assert.match(args, /-o ProxyCommand=none/);
});

test('a failure says a fixed message; what the remote said goes only to the log', async () => {
  mode('say');
  logged.length = 0;
  const err = await fetchError('git@git.example.test:svc.git');
  assert.equal(err.code, 400);
  assert.equal(err.detail, 'could not fetch git@git.example.test:svc.git: the repository was not found or is not reachable');
  assert.doesNotMatch(err.detail, /secret|10\.9\.8\.7/);
  assert.ok(logged.some((l) => String(l.detail.output).includes('secret words')), 'the server log has the remote\'s words');
});

test('the clone is bounded in size and in time', async () => {
  mode('serve');
  const big = await fetchError('ssh://git@git.example.test/svc.git', { maxBytes: 1024 * 1024 });
  assert.equal(big.code, 400);
  assert.equal(big.detail, 'could not fetch ssh://git@git.example.test/svc.git: the repository is larger than 1 MiB');

  mode('hang');
  const started = Date.now();
  const slow = await fetchError('ssh://git@git.example.test/svc.git', { timeout: 2_000 });
  assert.equal(slow.detail, 'could not fetch ssh://git@git.example.test/svc.git: it took longer than 2 s');
  assert.ok(Date.now() - started < 20_000, 'git was killed, not waited for');
});

test('a name that does not resolve, or resolves to a private address, never reaches ssh', async () => {
  mode('serve');
  writeFileSync(join(dir, 'bin', 'args'), '');
  const missing = await fetchError('ssh://git@nowhere.example.test/svc.git');
  assert.equal(missing.detail, 'could not fetch ssh://git@nowhere.example.test/svc.git: the repository was not found or is not reachable');
  const inside = await fetchError('ssh://git@inside.example.test/svc.git', { resolver: async () => ['93.184.215.14', '10.0.0.5'] });
  assert.equal(inside.code, 403);
  assert.equal(readFileSync(join(dir, 'bin', 'args'), 'utf8'), '', 'ssh was never run');
});
