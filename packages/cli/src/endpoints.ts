import type { EndpointRecord, ServiceRecord } from '@micro/sdk';
import { describeFields, type JSONSchema } from './flags.js';
import { formatTable } from './output.js';

/**
 * Finding an endpoint from what was typed, and describing a service's endpoints: what
 * dynamic commands (`micro helloworld call`) and `micro call` share.
 */

/** How an endpoint is typed on the command line: `Call` → `call`, `Greeter.Hello` → `greeter hello`. */
export function commandName(endpoint: string): string {
  return endpoint
    .split('.')
    .map((s) => s.charAt(0).toLowerCase() + s.slice(1))
    .join(' ');
}

/** Every endpoint of every version of a service, newest registration first, by name. */
export function endpointsOf(records: readonly ServiceRecord[]): EndpointRecord[] {
  const seen = new Map<string, EndpointRecord>();
  for (const r of records) for (const ep of r.endpoints) if (!seen.has(ep.name)) seen.set(ep.name, ep);
  return [...seen.values()];
}

/**
 * The endpoint named by `words`: `call`, `Call`, `greeter hello`, `greeter.hello` or
 * `Greeter.Hello`. An exact name wins; then one whose segments differ only in the case
 * of their first letter (as Go micro title-cased); then a unique case-insensitive match.
 */
export function matchEndpoint(endpoints: readonly EndpointRecord[], name: string): EndpointRecord | undefined {
  const exact = endpoints.find((e) => e.name === name);
  if (exact) return exact;
  const title = (s: string) =>
    s
      .split('.')
      .map((p) => p.charAt(0).toUpperCase() + p.slice(1))
      .join('.');
  const byTitle = endpoints.filter((e) => title(e.name) === title(name));
  if (byTitle.length === 1) return byTitle[0];
  const folded = endpoints.filter((e) => e.name.toLowerCase() === name.toLowerCase());
  return folded.length === 1 ? folded[0] : undefined;
}

/**
 * Takes the endpoint off the front of the words of a dynamic command: two words
 * (`handler method`) when they name one, else one. Returns what is left.
 */
export function takeEndpoint(endpoints: readonly EndpointRecord[], words: readonly string[]): { endpoint: EndpointRecord | undefined; rest: string[] } {
  for (let n = Math.min(2, words.length); n >= 1; n--) {
    const ep = matchEndpoint(endpoints, words.slice(0, n).join('.'));
    if (ep) return { endpoint: ep, rest: words.slice(n) };
  }
  return { endpoint: undefined, rest: [...words] };
}

const KIND: Record<string, string> = { unary: '', server: 'server stream', client: 'client stream', bidi: 'bidirectional stream' };

/** `micro helloworld --help`: the service's endpoints, each with its flags. */
export function serviceHelp(records: readonly ServiceRecord[]): string {
  const first = records[0];
  if (!first) return '';
  const versions = [...new Set(records.map((r) => r.version))].join(', ');
  const lines = [`Usage: micro ${first.name} <endpoint> [--field=value ...]`, ''];
  const about = first.description ? `${first.description} ` : '';
  lines.push(`${about}(${first.name} ${versions}${first.namespace ? `, namespace ${first.namespace}` : ''})`, '', 'Endpoints:');
  // user endpoints first, the built-in Debug.* last
  const endpoints = endpointsOf(records).sort((a, b) => Number(a.name.startsWith('Debug.')) - Number(b.name.startsWith('Debug.')));
  for (const ep of endpoints) {
    const kind = KIND[ep.kind] ?? ep.kind;
    const head = [ep.description, kind ? `(${kind})` : ''].filter(Boolean).join(' ');
    lines.push(`  ${commandName(ep.name)}${head ? `  ${head}` : ''}`);
    for (const row of fieldRows(ep.request)) lines.push(`      ${row}`);
  }
  lines.push('', ...FOOTER(first.name, '<endpoint>'));
  return lines.join('\n') + '\n';
}

/** `micro helloworld call --help`: one endpoint and its flags. */
export function endpointHelp(service: ServiceRecord, ep: EndpointRecord): string {
  const kind = KIND[ep.kind] ?? ep.kind;
  const lines = [`Usage: micro ${service.name} ${commandName(ep.name)} [--field=value ...]`, ''];
  const about = [ep.description, kind ? `(${kind})` : ''].filter(Boolean).join(' ');
  if (about) lines.push(about, '');
  const rows = fieldRows(ep.request);
  if (rows.length) lines.push('Fields:', ...rows.map((r) => `  ${r}`));
  else lines.push('This endpoint takes no fields.');
  const response = describeFields(ep.response as JSONSchema);
  if (response.length) lines.push('', `Returns: ${response.map((f) => `${f.flag.slice(2)} (${f.type})`).join(', ')}`);
  lines.push('', ...FOOTER(service.name, commandName(ep.name)));
  return lines.join('\n') + '\n';
}

function fieldRows(schema: unknown): string[] {
  const fields = describeFields((schema ?? {}) as JSONSchema);
  if (fields.length === 0) return [];
  const table = formatTable(
    ['', '', ''],
    fields.map((f) => [f.flag, f.type, [f.description, f.required ? '(required)' : ''].filter(Boolean).join(' ')]),
    200,
  );
  // the header row of empty titles is dropped
  return table.split('\n').slice(1).filter(Boolean);
}

const FOOTER = (service: string, endpoint: string) => [
  'Nested fields join names with "_" (--outer_inner=value). Arrays repeat the flag or take',
  'a JSON array; objects take JSON; a whole request may be given as one JSON argument.',
  `Add --output json for one JSON line per message. Example:`,
  `  micro ${service} ${endpoint} --field=value`,
];
