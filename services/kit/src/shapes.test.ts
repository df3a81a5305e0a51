import { test } from 'node:test';
import assert from 'node:assert/strict';
import { endpointsOf, shapeOf, shapeProblems } from './shapes.js';

test('M3O-API.md is read whole: every service the value-add services keep', () => {
  for (const [service, n] of [['db', 9], ['user', 16], ['url', 6], ['chat', 9], ['wallet', 9], ['space', 8], ['event', 3]] as const) {
    assert.equal(endpointsOf(service).length, n, service);
  }
  assert.equal(shapeOf('event', 'Consume').stream, true);
  assert.deepEqual(shapeOf('user', 'Login').request.map((f) => f.name), ['email', 'password', 'username']);
});

test('a response with M3O\'s shape has no problems; each difference is named', () => {
  assert.deepEqual(shapeProblems('wallet', 'Balance', { balance: '10' }), []);
  assert.deepEqual(shapeProblems('url', 'List', { urlPairs: [{ created: '1', destinationURL: 'https://a', hitCount: '0', id: 'x', shortURL: 'http://s/u/x' }] }), []);
  assert.deepEqual(shapeProblems('user', 'Read', { account: null }), []);
  assert.deepEqual(shapeProblems('user', 'Read', { account: { created: '1', email: 'a@b', id: 'i', profile: { a: 'b' }, updated: '1', username: 'u', verification_date: '0', verified: false } }), []);
  assert.match(shapeProblems('wallet', 'Balance', { balance: 10 }).join(), /balance: expected an i64/);
  assert.match(shapeProblems('wallet', 'Balance', {}).join(), /balance: missing/);
  assert.match(shapeProblems('wallet', 'Balance', { balance: '1', extra: 1 }).join(), /extra: not a field/);
  assert.match(shapeProblems('url', 'List', { urlPairs: {} }).join(), /expected an array/);
  assert.match(shapeProblems('user', 'Read', { account: { id: 1 } }).join(), /account.id: expected string/);
  assert.match(shapeProblems('stream', 'ListMessages', { channel: 'c', messages: [{ channel: 'c', id: 'i', metadata: { a: 1 }, text: 't', timestamp: 't' }] }).join(), /metadata.a: expected string/);
  assert.match(shapeProblems('space', 'Read', { object: { created: '', data: 'not base64!', modified: '', name: '', url: '', visibility: '' } }).join(), /data: expected string@bytes/);
});
