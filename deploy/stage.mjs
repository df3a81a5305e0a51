#!/usr/bin/env node
// Copies what runs of some workspaces of this monorepo into a folder that an image's final
// stage copies whole: each workspace's built files (no sources, no tests) and exactly the
// installed packages those workspaces reach through their production dependencies, found
// by following package-lock.json the way Node.js resolves a bare import. Nothing a build or
// a test uses (TypeScript's sources, eslint, vite, playwright …) reaches the image, and no
// second `npm ci` is needed to get there.
//
//   node deploy/stage.mjs --out /stage packages/cli packages/web
//
// Run after `npm ci` and the build. `--root` (default: this repository) is where
// package-lock.json and node_modules are. The layout is kept (out/node_modules/…,
// out/packages/…), so a workspace resolves its dependencies in the copy as in the tree.
import { cpSync, existsSync, lstatSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { basename, dirname, join, posix, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** What is left out of a workspace's folder: sources, compiler state, tests and their leftovers. */
const WORKSPACE_SKIP = [/^src$/, /^node_modules$/, /\.tsbuildinfo$/, /^tsconfig.*\.json$/, /\.test\.(?:js|d\.ts|js\.map|d\.ts\.map)$/, /^test-artifacts$/, /^\.micro-test/];

function fail(message) {
  console.error(`stage: ${message}`);
  process.exit(2);
}

function parseArgs(argv) {
  const args = { root: join(dirname(fileURLToPath(import.meta.url)), '..'), out: undefined, workspaces: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--out' || a === '--root') {
      const v = argv[++i];
      if (!v) fail(`${a} needs a folder`);
      args[a.slice(2)] = v;
    } else if (a.startsWith('-')) fail(`unknown option ${a} (usage: stage.mjs --out <folder> [--root <repo>] <workspace>...)`);
    else args.workspaces.push(a.replace(/\/+$/, ''));
  }
  if (!args.out) fail('--out <folder> is required (usage: stage.mjs --out <folder> [--root <repo>] <workspace>...)');
  if (args.workspaces.length === 0) fail('name at least one workspace, e.g. packages/cli');
  return args;
}

function readLock(root) {
  const file = join(root, 'package-lock.json');
  if (!existsSync(file)) fail(`${file} is missing: the images install from the lock file`);
  let lock;
  try {
    lock = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    fail(`${file} is not JSON: ${err.message}`);
  }
  if (!lock || typeof lock.packages !== 'object' || (lock.lockfileVersion ?? 1) < 2) fail(`${file} has no "packages" map (lockfileVersion 2 or 3, npm 7 or newer, is needed)`);
  return lock.packages;
}

/** The lock path that `name` resolves to from the package at lock path `from` (Node's lookup: own node_modules, then each parent's). */
function resolveDep(packages, from, name) {
  let dir = from;
  for (;;) {
    if (basename(dir) !== 'node_modules') {
      const candidate = dir === '' ? `node_modules/${name}` : `${dir}/node_modules/${name}`;
      if (packages[candidate]) return candidate;
    }
    if (dir === '') return undefined;
    const up = posix.dirname(dir);
    dir = up === '.' ? '' : up;
  }
}

/** Lock paths of every package (and workspace) the workspaces reach, and the links between them. */
function closure(packages, root, workspaces) {
  const reached = new Set();
  const links = new Map();
  const queue = [];
  for (const ws of workspaces) {
    const entry = packages[ws];
    if (!entry || ws === '' || ws.startsWith('node_modules/') || ws.includes('/node_modules/')) fail(`${ws} is not a workspace of package-lock.json`);
    queue.push(ws);
  }
  while (queue.length > 0) {
    const at = queue.pop();
    if (reached.has(at)) continue;
    reached.add(at);
    const entry = packages[at];
    const optionalPeers = new Set(Object.entries(entry.peerDependenciesMeta ?? {}).filter(([, m]) => m?.optional).map(([n]) => n));
    const deps = [
      ...Object.keys(entry.dependencies ?? {}).map((n) => [n, false]),
      ...Object.keys(entry.optionalDependencies ?? {}).map((n) => [n, true]),
      ...Object.keys(entry.peerDependencies ?? {}).map((n) => [n, optionalPeers.has(n)]),
    ];
    for (const [name, optional] of deps) {
      let target = resolveDep(packages, at, name);
      // an optional package of another platform is in the lock but not on disk
      if (target && !existsSync(join(root, target)) && (optional || packages[target].optional)) continue;
      if (!target) {
        if (optional) continue;
        fail(`${at} needs ${name}, which package-lock.json does not have: run npm install and commit the lock file`);
      }
      const dep = packages[target];
      if (dep.link) {
        links.set(target, dep.resolved);
        target = dep.resolved;
        if (!packages[target]) fail(`${name} links to ${target}, which package-lock.json does not list`);
      }
      if (!existsSync(join(root, target))) fail(`${target} is not installed: run npm ci first`);
      queue.push(target);
    }
  }
  // every workspace staged is also reachable by its name from anywhere in the copy, as in
  // the tree (the runtime resolves @micro/services-kit that way, say)
  for (const [path, entry] of Object.entries(packages)) {
    if (entry.link && reached.has(entry.resolved) && /^node_modules\/(?:@[^/]+\/)?[^/]+$/.test(path)) links.set(path, entry.resolved);
  }
  return { reached, links };
}

function copyWorkspace(root, out, ws) {
  const from = join(root, ws);
  cpSync(from, join(out, ws), {
    recursive: true,
    verbatimSymlinks: true,
    filter: (src) => src === from || !WORKSPACE_SKIP.some((re) => re.test(basename(src))),
  });
}

function copyPackage(root, out, path) {
  const from = join(root, path);
  const own = join(from, 'node_modules');
  // its nested node_modules are packages of their own, copied only when reached
  cpSync(from, join(out, path), { recursive: true, verbatimSymlinks: true, filter: (src) => src !== own });
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const packages = readLock(args.root);
  const { reached, links } = closure(packages, args.root, args.workspaces);
  if (existsSync(args.out) && lstatSync(args.out).isDirectory() === false) fail(`${args.out} exists and is not a folder`);
  mkdirSync(args.out, { recursive: true });
  let workspaces = 0;
  for (const path of [...reached].sort()) {
    const isPackage = path.startsWith('node_modules/') || path.includes('/node_modules/');
    if (isPackage) copyPackage(args.root, args.out, path);
    else {
      copyWorkspace(args.root, args.out, path);
      workspaces++;
    }
  }
  for (const [link, target] of links) {
    const at = join(args.out, link);
    mkdirSync(dirname(at), { recursive: true });
    if (!existsSync(at)) symlinkSync(relative(dirname(at), join(args.out, target)), at, 'dir');
  }
  console.log(`stage: ${workspaces} workspaces and ${reached.size - workspaces} packages into ${args.out}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
