#!/usr/bin/env node
// micro-gen-python <openapi-url-or-file> [--token T] [--namespace NS] > micro_client.py
// Fetches (or reads) the gateway's OpenAPI document and prints a Python client module.
// The token may come from MICRO_TOKEN too (GET /openapi.json lists what the caller may call).
import { readFile } from 'node:fs/promises';
import { pythonClient, type OpenApiDocument } from './python.js';

const USAGE = 'usage: micro-gen-python <openapi-url-or-file> [--token TOKEN] [--namespace NS] > micro_client.py\n' +
  '  e.g. micro-gen-python http://127.0.0.1:8080/openapi.json --token "$TOKEN" > micro_client.py\n';

async function main(argv: string[]): Promise<number> {
  let source: string | undefined;
  let token = process.env.MICRO_TOKEN;
  let namespace: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '-h' || a === '--help') {
      process.stdout.write(USAGE);
      return 0;
    } else if (a === '--token' || a === '--namespace') {
      const v = argv[++i];
      if (v === undefined) {
        process.stderr.write(`${a} needs a value\n${USAGE}`);
        return 2;
      }
      if (a === '--token') token = v;
      else namespace = v;
    } else if (a.startsWith('--token=')) token = a.slice(8);
    else if (a.startsWith('--namespace=')) namespace = a.slice(12);
    else if (source === undefined && !a.startsWith('-')) source = a;
    else {
      process.stderr.write(`unexpected argument ${JSON.stringify(a)}\n${USAGE}`);
      return 2;
    }
  }
  if (!source) {
    process.stderr.write(USAGE);
    return 2;
  }
  let text: string;
  if (/^https?:\/\//i.test(source)) {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    if (namespace) headers['micro-namespace'] = namespace;
    let res: Response;
    try {
      res = await fetch(source, { headers, signal: AbortSignal.timeout(30_000) });
    } catch (err) {
      process.stderr.write(`cannot fetch ${source}: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}\n`);
      return 1;
    }
    text = await res.text();
    if (!res.ok) {
      process.stderr.write(`GET ${source}: ${res.status} ${res.statusText}: ${text.slice(0, 500)}\n`);
      return 1;
    }
  } else {
    try {
      text = await readFile(source, 'utf8');
    } catch (err) {
      process.stderr.write(`cannot read ${source}: ${(err as Error).message}\n`);
      return 1;
    }
  }
  let doc: OpenApiDocument;
  try {
    doc = JSON.parse(text) as OpenApiDocument;
  } catch {
    process.stderr.write(`${source} is not JSON\n`);
    return 1;
  }
  if (typeof doc !== 'object' || doc === null || typeof doc.paths !== 'object') {
    process.stderr.write(`${source} is not an OpenAPI document (no "paths")\n`);
    return 1;
  }
  process.stdout.write(pythonClient(doc));
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
