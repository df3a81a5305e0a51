import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { peerOf } from './gateway.js';

const req = (remoteAddress: string | undefined, forwarded?: string) => ({ socket: { remoteAddress }, headers: forwarded === undefined ? {} : { 'x-forwarded-for': forwarded } }) as unknown as IncomingMessage;

test('peerOf: the socket address; X-Forwarded-For only when the proxy is trusted, and then its last entry', () => {
  assert.equal(peerOf(req('203.0.113.9'), false), 'tcp:203.0.113.9');
  // a client that makes up a header gets nothing from it
  assert.equal(peerOf(req('203.0.113.9', '198.51.100.1'), false), 'tcp:203.0.113.9');
  // behind a trusted proxy: the entry the proxy appended, not what the client sent before it
  assert.equal(peerOf(req('10.0.0.2', '198.51.100.1, 203.0.113.9'), true), 'tcp:203.0.113.9');
  assert.equal(peerOf(req('10.0.0.2'), true), 'tcp:10.0.0.2');
});
