#!/usr/bin/env node
// Runs every test of the project with node's test runner: the compiled `*.test.js` files
// of every workspace. Files are passed explicitly so the same command works on Node 20
// (directories) and Node 22+ (globs). Extra arguments go to `node --test`, e.g.
// `npm test -- --test-name-pattern=registry`.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

function collect(dir, out) {
  if (!existsSync(dir)) return out;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) collect(p, out);
    else if (entry.name.endsWith('.test.js')) out.push(relative(root, p));
  }
  return out;
}

/** The folders of the workspaces: `services/*` is every folder of services/ with a package.json. */
function workspaceDirs() {
  return (pkg.workspaces ?? []).flatMap((w) => {
    if (!w.endsWith('/*')) return [w];
    const parent = w.slice(0, -2);
    if (!existsSync(join(root, parent))) return [];
    return readdirSync(join(root, parent), { withFileTypes: true })
      .filter((e) => e.isDirectory() && existsSync(join(root, parent, e.name, 'package.json')))
      .map((e) => `${parent}/${e.name}`);
  });
}

const files = [];
for (const ws of workspaceDirs()) collect(join(root, ws, 'dist'), files);
files.sort();
if (files.length === 0) {
  console.error('no test files found: did the build run? (npm test builds first)');
  process.exit(1);
}
const extra = process.argv.slice(2);
const res = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...extra, ...files], {
  cwd: root,
  stdio: 'inherit',
  // services log at info by default; tests that look at logs set their own level
  env: { ...process.env, NODE_ENV: process.env.NODE_ENV ?? 'test', MICRO_LOG_LEVEL: process.env.MICRO_LOG_LEVEL ?? 'silent' },
});
process.exit(res.status ?? 1);
