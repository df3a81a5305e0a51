import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';

/**
 * tsconfig files whose folder is built away from its monorepo: copied by the server
 * (relocateTsconfig) or uploaded by `micro run ./dir` (selfContainedTsconfig).
 */

type Tsconfig = Record<string, unknown> & { extends?: unknown; references?: unknown; compilerOptions?: Record<string, unknown> };

/**
 * A copied folder loses what its tsconfig.json points to outside of it (a monorepo's
 * `"extends": "../../tsconfig.base.json"`, project `references`). Such paths, when they
 * exist next to the original folder, are made absolute in the copy.
 */
export async function relocateTsconfig(dir: string, origin: string): Promise<void> {
  const file = join(dir, 'tsconfig.json');
  if (!existsSync(file)) return;
  const text = readFileSync(file, 'utf8');
  if (!/"(extends|references)"/.test(text)) return;
  let config: { extends?: unknown; references?: unknown };
  try {
    config = JSON.parse(stripJsonComments(text)) as typeof config;
  } catch {
    return; // tsc will report it
  }
  let changed = false;
  const fix = (p: unknown): unknown => {
    if (typeof p !== 'string' || !(p.startsWith('./') || p.startsWith('../')) || isAbsolute(p)) return p;
    if (!relative(origin, resolve(origin, p)).startsWith('..')) return p; // inside: copied along
    const abs = resolve(origin, p);
    if (!existsSync(abs)) return p;
    changed = true;
    return abs;
  };
  if (Array.isArray(config.extends)) config.extends = config.extends.map(fix);
  else config.extends = fix(config.extends);
  if (Array.isArray(config.references)) {
    config.references = config.references.map((r: unknown) => (r && typeof r === 'object' && 'path' in r ? { ...r, path: fix((r as { path: unknown }).path) } : r));
  }
  if (changed) writeFileSync(file, JSON.stringify(config, null, 2));
}

/** JSON with comments and trailing commas (tsconfig's dialect) to JSON. */
export function stripJsonComments(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j;
    } else if (c === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') i++;
      out += '\n';
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      i = end === -1 ? text.length : end + 1;
    } else {
      out += c;
    }
  }
  return out.replace(/,(\s*[}\]])/g, '$1');
}

/** compilerOptions holding a path relative to their config file (`paths` is relative to baseUrl when set, and left as it is). */
const PATH_OPTIONS = ['outDir', 'rootDir', 'baseUrl', 'declarationDir', 'tsBuildInfoFile', 'outFile'];
const PATH_LIST_OPTIONS = ['rootDirs', 'typeRoots'];
const FILE_LISTS = ['files', 'include', 'exclude'];

/**
 * The text of the tsconfig file `file` for an upload of `folder`, when it extends a file
 * outside the folder or references a project there (a monorepo's shared
 * `tsconfig.base.json`, its build order), which the server never sees: what it extends
 * from outside is merged in as TypeScript would (compilerOptions, the file's own winning;
 * files/include/exclude when the file has none), paths in it made relative to the file,
 * and references outside the folder are left out (the packages they name are installed by
 * npm or provided by the runtime). undefined when nothing points outside. Throws when an
 * outside file extends a package (`"extends": "@tsconfig/node20"`), which is not merged.
 */
export function selfContainedTsconfig(file: string, folder: string): string | undefined {
  let config: Tsconfig;
  try {
    config = readTsconfig(file);
  } catch {
    return undefined; // uploaded as it is: tsc reports it
  }
  const here = dirname(file);
  const outside = (p: unknown): p is string => isRelativePath(p) && relative(folder, resolve(here, p)).startsWith('..');
  const extended = extendsList(config);
  const references = Array.isArray(config.references) ? (config.references as unknown[]) : [];
  const outsideRef = (r: unknown) => !!r && typeof r === 'object' && outside((r as { path?: unknown }).path);
  if (!extended.some(outside) && !references.some(outsideRef)) return undefined;

  let base: Tsconfig = {};
  for (const e of extended.filter(outside)) base = merge(base, flatten(resolve(here, e), here));
  const own: Tsconfig = { ...config };
  const inside = extended.filter((e) => !outside(e));
  if (inside.length) own.extends = inside.length === 1 ? inside[0] : inside;
  else delete own.extends;
  if (Array.isArray(config.references)) own.references = references.filter((r) => !outsideRef(r));
  return `${JSON.stringify(merge(base, own), null, 2)}\n`;
}

/** A config file with everything it extends merged in, its paths relative to `to`. */
function flatten(file: string, to: string): Tsconfig {
  if (!existsSync(file)) throw new Error(`${file} (extended by a tsconfig of the folder) does not exist`);
  const config = readTsconfig(file);
  let base: Tsconfig = {};
  for (const e of extendsList(config)) {
    if (!isRelativePath(e) && !isAbsolute(String(e))) throw new Error(`${file} extends ${JSON.stringify(e)}: a package outside the folder is not uploaded; extend it from the folder's own tsconfig`);
    base = merge(base, flatten(resolve(dirname(file), String(e)), to));
  }
  const own = rebase(config, dirname(file), to);
  delete own.extends;
  delete own.references; // not inherited by TypeScript either
  return merge(base, own);
}

/** TypeScript's rule for extends: compilerOptions merged (the derived file's win), everything else replaced. */
function merge(base: Tsconfig, derived: Tsconfig): Tsconfig {
  const out: Tsconfig = { ...base, ...derived };
  if (base.compilerOptions || derived.compilerOptions) out.compilerOptions = { ...base.compilerOptions, ...derived.compilerOptions };
  return out;
}

function rebase(config: Tsconfig, from: string, to: string): Tsconfig {
  const move = (p: unknown) => (typeof p === 'string' && !isAbsolute(p) && !p.startsWith('${configDir}') ? relative(to, resolve(from, p)).split('\\').join('/') || '.' : p);
  const out: Tsconfig = { ...config };
  for (const k of FILE_LISTS) if (Array.isArray(out[k])) out[k] = (out[k] as unknown[]).map(move);
  if (out.compilerOptions) {
    const options = { ...out.compilerOptions };
    for (const k of PATH_OPTIONS) if (k in options) options[k] = move(options[k]);
    for (const k of PATH_LIST_OPTIONS) if (Array.isArray(options[k])) options[k] = (options[k] as unknown[]).map(move);
    out.compilerOptions = options;
  }
  return out;
}

function readTsconfig(file: string): Tsconfig {
  const config: unknown = JSON.parse(stripJsonComments(readFileSync(file, 'utf8')));
  if (!config || typeof config !== 'object' || Array.isArray(config)) throw new Error(`${file} is not a JSON object`);
  return config as Tsconfig;
}

function extendsList(config: Tsconfig): unknown[] {
  if (Array.isArray(config.extends)) return config.extends as unknown[];
  return config.extends === undefined ? [] : [config.extends];
}

function isRelativePath(p: unknown): p is string {
  return typeof p === 'string' && (p.startsWith('./') || p.startsWith('../') || p === '.' || p === '..');
}
