#!/usr/bin/env node
// Makes a fresh clone ready: installs what is missing, then builds (incrementally).
// `npm start`, `npm test` and `npm run bench` all run this first, so a fresh clone needs
// nothing else. It is quick when everything is already in place.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, utimesSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const major = Number(process.versions.node.split('.')[0]);
if (major < 20) {
  console.error(`Micro needs Node.js 20 or newer; this is ${process.version}. Install a newer Node.js and try again.`);
  process.exit(1);
}

function run(cmd, args, what) {
  const started = Date.now();
  process.stderr.write(`micro setup: ${what} ...\n`);
  const res = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
  if (res.status !== 0) {
    console.error(`micro setup: ${what} failed (exit ${res.status}). Fix the error above and run the command again.`);
    process.exit(res.status ?? 1);
  }
  process.stderr.write(`micro setup: ${what} done in ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
}

// Install when node_modules is missing or older than the lock file / manifests.
const marker = join(root, 'node_modules', '.package-lock.json');
const manifests = ['package.json', 'package-lock.json', ...workspaceManifests()];
const stale = !existsSync(marker) || manifests.some((m) => existsSync(join(root, m)) && statSync(join(root, m)).mtimeMs > statSync(marker).mtimeMs);
if (stale) {
  const ci = existsSync(join(root, 'package-lock.json')) && !existsSync(join(root, 'node_modules'));
  run('npm', [ci ? 'ci' : 'install', '--no-audit', '--no-fund'], 'installing dependencies');
  // npm leaves the marker alone when nothing changed; touch it so the next run skips this
  if (existsSync(marker)) utimesSync(marker, new Date(), new Date());
}

run(join(root, 'node_modules', '.bin', 'tsc'), ['-b', 'tsconfig.build.json'], 'building TypeScript');

// micro server runs tenant services (namespaces other than micro) in bubblewrap sandboxes;
// without it they are refused. Installing system packages is left to the user.
if (process.platform === 'linux' && !(process.env.PATH ?? '').split(':').some((d) => d && existsSync(join(d, 'bwrap')))) {
  process.stderr.write('micro setup: note: bubblewrap is not installed, so micro server will refuse services of namespaces other than micro (apt-get install bubblewrap; see README "Tenants run sandboxed")\n');
}

// deploy/kubernetes is rendered by `kubectl kustomize` in the server's deploy tests, which
// skip without it (CI fetches one: .ci/run).
if (!(process.env.PATH ?? '').split(':').some((d) => d && existsSync(join(d, 'kubectl')))) {
  process.stderr.write('micro setup: note: kubectl is not installed, so the tests of deploy/kubernetes skip (kubectl 1.27 or newer, with kustomize v5; see deploy/README.md)\n');
}

// The dashboard (packages/web): type-checked and bundled by vite into packages/web/dist,
// which the gateway serves at /dashboard/. Skipped when that is newer than every source.
const web = join(root, 'packages', 'web');
const built = join(web, 'dist', 'index.html');
if (!existsSync(built) || newest(['src', 'index.html', 'vite.config.ts', 'tsconfig.json', 'package.json'].map((f) => join(web, f))) > statSync(built).mtimeMs) {
  run(join(root, 'node_modules', '.bin', 'tsc'), ['-p', join(web, 'tsconfig.json')], 'type-checking the dashboard');
  run(join(root, 'node_modules', '.bin', 'vite'), ['build', web, '--logLevel', 'warn'], 'building the dashboard');
}

/** The latest mtime of the files (folders: of every file under them). */
function newest(paths) {
  let max = 0;
  for (const p of paths) {
    if (!existsSync(p)) continue;
    const s = statSync(p);
    if (s.isDirectory()) max = Math.max(max, newest(readdirSync(p).map((n) => join(p, n))));
    else max = Math.max(max, s.mtimeMs);
  }
  return max;
}

function workspaceManifests() {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  return (pkg.workspaces ?? []).flatMap((w) => {
    if (!w.endsWith('/*')) return [join(w, 'package.json')];
    // `services/*`: every folder of services/ with a package.json
    const parent = join(root, w.slice(0, -2));
    if (!existsSync(parent)) return [];
    return readdirSync(parent, { withFileTypes: true })
      .filter((e) => e.isDirectory() && existsSync(join(parent, e.name, 'package.json')))
      .map((e) => join(w.slice(0, -2), e.name, 'package.json'));
  });
}
