import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

/**
 * Which hosts a tenant's git source may reach: public unicast addresses only. A host
 * name is resolved here, every address it resolves to must be public, and the fetch is
 * then pinned to the first of them (see source.ts), so that a name cannot resolve to a
 * public address for this check and to a loopback one for git (DNS rebinding).
 */

/** Resolves a host name to its addresses (injectable for tests). */
export type Resolver = (host: string) => Promise<string[]>;

export const systemResolver: Resolver = async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);

type V4Range = [base: number, bits: number, what: string];

const V4: V4Range[] = [
  [v4('0.0.0.0'), 8, 'unspecified'],
  [v4('10.0.0.0'), 8, 'private'],
  [v4('100.64.0.0'), 10, 'shared (CGNAT)'],
  [v4('127.0.0.0'), 8, 'loopback'],
  [v4('169.254.0.0'), 16, 'link-local'],
  [v4('172.16.0.0'), 12, 'private'],
  [v4('192.0.0.0'), 24, 'IETF protocol'],
  [v4('192.0.2.0'), 24, 'documentation'],
  [v4('192.168.0.0'), 16, 'private'],
  [v4('198.18.0.0'), 15, 'benchmarking'],
  [v4('198.51.100.0'), 24, 'documentation'],
  [v4('203.0.113.0'), 24, 'documentation'],
  [v4('224.0.0.0'), 4, 'multicast'],
  [v4('240.0.0.0'), 4, 'reserved'],
];

function v4(ip: string): number {
  return ip.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

function inV4(n: number, base: number, bits: number): boolean {
  const size = 2 ** (32 - bits);
  return n >= base && n < base + size;
}

/** Why `ip` is not a public unicast address ("loopback", "private", …), or undefined when it is. */
export function nonPublic(ip: string): string | undefined {
  const family = isIP(ip);
  if (family === 4) return v4Kind(v4(ip));
  if (family === 6) return v6Kind(ip);
  return 'not an IP address';
}

function v4Kind(n: number): string | undefined {
  for (const [base, bits, what] of V4) if (inV4(n, base, bits)) return what;
  return undefined;
}

function v6Kind(ip: string): string | undefined {
  const g = v6Groups(ip);
  const embedded = (hi: number, lo: number) => v4Kind(((g[hi] as number) * 65536 + (g[lo] as number)) >>> 0);
  const zeros = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  if (zeros(0, 8)) return 'unspecified';
  if (zeros(0, 7) && g[7] === 1) return 'loopback';
  // IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) reach the IPv4 address inside
  if (zeros(0, 5) && g[5] === 0xffff) return withV4('IPv4-mapped', embedded(6, 7));
  if (zeros(0, 6)) return withV4('IPv4-compatible', embedded(6, 7));
  if (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) return withV4('NAT64', embedded(6, 7));
  const first = g[0] as number;
  if (first === 0x2002) return withV4('6to4', embedded(1, 2));
  if (first === 0x2001 && g[1] === 0) return 'Teredo';
  if (first === 0x2001 && g[1] === 0xdb8) return 'documentation';
  if (first === 0x100 && zeros(1, 4)) return 'discard';
  if ((first & 0xfe00) === 0xfc00) return 'unique local (private)';
  if ((first & 0xffc0) === 0xfe80) return 'link-local';
  if ((first & 0xffc0) === 0xfec0) return 'site-local';
  if ((first & 0xff00) === 0xff00) return 'multicast';
  return undefined;
}

function withV4(form: string, inner: string | undefined): string | undefined {
  return inner === undefined ? undefined : `${form} ${inner}`;
}

/** The 8 groups of an IPv6 address (valid per isIP), with `::` expanded and a trailing dotted IPv4 part converted. */
function v6Groups(ip: string): number[] {
  let s = ip.replace(/%.*$/, '').toLowerCase();
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (dotted) {
    const n = v4(dotted[1] as string);
    s = `${s.slice(0, dotted.index)}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const [head, tail] = s.split('::') as [string, string | undefined];
  const parse = (part: string | undefined) => (part ? part.split(':').map((x) => parseInt(x, 16)) : []);
  const h = parse(head);
  if (tail === undefined) return h;
  const t = parse(tail);
  return [...h, ...Array<number>(8 - h.length - t.length).fill(0), ...t];
}

export class AddressRefused extends Error {
  constructor(
    readonly host: string,
    readonly address: string,
    readonly kind: string,
  ) {
    super(`${host} resolves to ${address}, a ${kind} address`);
  }
}

/**
 * The address to connect to for `host` (a name or a literal address): every address it
 * resolves to must be public, else AddressRefused; a name that does not resolve throws
 * what the resolver threw.
 */
export async function publicAddress(host: string, resolver: Resolver = systemResolver): Promise<string> {
  const literal = host.replace(/^\[(.*)\]$/, '$1');
  const addresses = isIP(literal) ? [literal] : await resolver(literal);
  if (addresses.length === 0) throw new Error(`${host} has no address`);
  for (const address of addresses) {
    const kind = nonPublic(address);
    if (kind) throw new AddressRefused(host, address, kind);
  }
  return addresses[0] as string;
}
