import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Header, Pack, ReadEntry } from 'tar';
import type { FunctionSettings } from './wrapper/settings.js';

/**
 * A deployed function as the runtime sees it: a small service project, packed as the
 * gzipped tar `micro run` uploads (runtime/uploads/<id>/<folder>.tar.gz in the tenant's
 * blob store). It holds the user's source, the wrapper (wrapper/*.ts compiled with this
 * package) and function.json; it depends on nothing but the provided `@micro/sdk`, so the
 * runtime installs nothing. JavaScript is run as it is (no build step: a syntax error
 * fails the start with node's message); TypeScript is compiled by the runtime with the
 * server's tsc (its errors fail the build with the compiler's message).
 */

/** What a function can be written in (Runtimes). */
export const RUNTIMES = ['nodejs20', 'typescript'] as const;
export type Runtime = (typeof RUNTIMES)[number];

export interface ProjectInput {
  service: string;
  runtime: Runtime;
  source: string;
  entrypoint: string;
  timeoutMs: number;
  memoryMb: number;
  workers: number;
}

const WRAPPER = ['main.js', 'worker.js', 'settings.js'];
let wrapper: Map<string, string> | undefined;

/** The compiled wrapper, read once (it sits beside this file in dist/wrapper). */
function wrapperFiles(): Map<string, string> {
  wrapper ??= new Map(WRAPPER.map((f) => [f, readFileSync(new URL(`./wrapper/${f}`, import.meta.url), 'utf8')]));
  return wrapper;
}

/** TypeScript as forgiving as JavaScript: type errors still fail, `any` is allowed where nothing is said. */
const TSCONFIG = {
  compilerOptions: { target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', strict: false, skipLibCheck: true, outDir: 'out', rootDir: '.', types: ['node'] },
  include: ['fn.ts'],
};

/** The project's files, by path. */
export function projectFiles(p: ProjectInput): Map<string, string> {
  const ts = p.runtime === 'typescript';
  const settings: FunctionSettings = { service: p.service, module: ts ? 'out/fn.js' : 'fn.js', entrypoint: p.entrypoint, timeoutMs: p.timeoutMs, memoryMb: p.memoryMb, workers: p.workers };
  const pkg = { name: p.service, private: true, version: '1.0.0', type: 'module', main: 'main.js', micro: { name: p.service }, dependencies: { '@micro/sdk': '0.1.0' } };
  const files = new Map<string, string>([
    ['package.json', JSON.stringify(pkg, null, 2)],
    ['function.json', JSON.stringify(settings, null, 2)],
    [ts ? 'fn.ts' : 'fn.js', p.source],
    ...wrapperFiles(),
  ]);
  if (ts) files.set('tsconfig.json', JSON.stringify(TSCONFIG, null, 2));
  return files;
}

/** The project as an upload: its blob key and the gzipped tar. */
export async function packProject(p: ProjectInput): Promise<{ key: string; data: Buffer }> {
  const stream = new Pack({ gzip: true, portable: true, noDirRecurse: true });
  const mtime = new Date();
  for (const [path, text] of projectFiles(p)) {
    const data = Buffer.from(text);
    const entry = new ReadEntry(new Header({ path, type: 'File', size: data.length, mode: 0o644, mtime }));
    stream.add(entry);
    entry.end(data);
  }
  stream.end();
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return { key: `runtime/uploads/${randomBytes(16).toString('hex')}/${p.service}.tar.gz`, data: Buffer.concat(chunks) };
}
