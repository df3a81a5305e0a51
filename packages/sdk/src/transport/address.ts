import { BadRequest } from '../errors/errors.js';

/** Where a node listens: `tcp://host:port` (or plain `host:port`) or `unix:///path`. */
export type ParsedAddress = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

export function parseAddress(address: string): ParsedAddress {
  if (typeof address !== 'string' || address.length === 0 || address.length > 1024) {
    throw BadRequest('micro.transport', `invalid address "${String(address)}": use tcp://host:port or unix:///path`);
  }
  if (address.startsWith('unix://')) {
    const path = address.slice('unix://'.length);
    if (!path.startsWith('/')) throw BadRequest('micro.transport', `invalid address "${address}": a unix socket path must be absolute (unix:///path)`);
    return { kind: 'unix', path };
  }
  const rest = address.startsWith('tcp://') ? address.slice('tcp://'.length) : address;
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(rest);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw BadRequest('micro.transport', `invalid address "${address}": use tcp://host:port or unix:///path`);
  return { kind: 'tcp', host: (m[1] as string).replace(/^\[|\]$/g, ''), port };
}

export function formatAddress(a: ParsedAddress): string {
  if (a.kind === 'unix') return `unix://${a.path}`;
  return `tcp://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
}
