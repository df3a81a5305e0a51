import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { errors } from '@micro/sdk';

/**
 * What a short link may point to: an absolute http(s) URL on the public internet. A short
 * link on our domain lends it our name, so it must not lead a visitor's browser to
 * `javascript:` or `data:` (script on whatever page follows the link), `file:`, or an
 * address inside the visitor's or our network (a router's admin page, the cloud metadata
 * service at 169.254.169.254, localhost). The WHATWG parser (`URL`) normalizes the tricks
 * first — decimal (`http://2130706433`), hex (`0x7f.1`), octal and short IPv4 forms,
 * IPv4-mapped IPv6 — so the checks see the address a browser would connect to.
 *
 * Host names are not resolved (a public name may point to a private address): the
 * gateway never fetches a destination, the visitor's browser does.
 */

/** the longest destination, characters (browsers and proxies cut URLs past a few KiB) */
export const MAX_URL = 2048;

const internal = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24], ['203.0.113.0', 24],
  ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) internal.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8], ['2001:db8::', 32], ['100::', 64]] as const) internal.addSubnet(net, bits, 'ipv6');

/** names that are the visitor's own machine or network, or a cloud's internal services */
const INTERNAL_NAME = /(^|\.)(localhost|local|internal|localdomain|home\.arpa|intranet|lan|corp)$/i;

/** The destination as a normalized URL, or a 400 naming `field` and why. */
export function checkDestination(value: string, field = 'destinationURL', service = 'url'): string {
  const bad = (why: string) => errors.BadRequest(service, `${field}: ${why}`);
  if (value.length === 0) throw bad('is required');
  if (value.length > MAX_URL) throw bad(`must be at most ${MAX_URL} characters`);
  // control characters and spaces: the parser would drop or encode them silently
  // eslint-disable-next-line no-control-regex -- control characters are what it looks for
  if (/[\u0000-\u0020\u007f-\u009f\u2028\u2029]/.test(value)) throw bad('must not contain spaces or control characters');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw bad('must be an absolute URL (https://example.com/…)');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw bad(`must be an http or https URL, not ${url.protocol.slice(0, 32)}`);
  if (url.username !== '' || url.password !== '') throw bad('must not carry a user name or password (user@host hides the real host)');
  const host = url.hostname.replace(/\.$/, '');
  if (host === '') throw bad('must name a host');
  if (internalHost(host)) throw bad(`points to an internal address (${host.slice(0, 64)}): only public hosts are allowed`);
  return url.href;
}

/** Whether `host` (as URL.hostname gives it: IPv6 in brackets) is loopback, private, link-local or otherwise not public. */
export function internalHost(host: string): boolean {
  const bare = host.startsWith('[') ? host.slice(1, -1) : host;
  if (isIPv4(bare)) return internal.check(bare, 'ipv4');
  if (isIPv6(bare)) {
    const v4 = embeddedIPv4(bare);
    return internal.check(bare, 'ipv6') || (v4 !== undefined && internal.check(v4, 'ipv4'));
  }
  // a name without a dot (`intranet`, `router`) is resolved by the visitor's local search domains
  return !bare.includes('.') || INTERNAL_NAME.test(bare);
}

/** The IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d), -compatible (::a.b.c.d) or NAT64 (64:ff9b::) address. */
function embeddedIPv4(v6: string): string | undefined {
  const m = /^(?:::ffff:|::|64:ff9b::)(?:(\d+\.\d+\.\d+\.\d+)|([0-9a-f]{1,4}):([0-9a-f]{1,4}))$/i.exec(v6);
  if (!m) return undefined;
  if (m[1]) return m[1];
  const hi = parseInt(m[2] as string, 16);
  const lo = parseInt(m[3] as string, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}
