import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionError, errors } from '@micro/sdk';
import { explainError, type ErrorContext } from './connect.js';

const local: ErrorContext = { env: { name: 'local', credentialSource: 'admin', credentials: { id: 'admin' } }, address: 'tcp://127.0.0.1:1', namespace: 'micro' };
const prod: ErrorContext = { env: { name: 'prod', credentialSource: 'none' }, address: 'tcp://10.0.0.5:8081', namespace: 'micro' };
const message = (err: unknown, ctx: ErrorContext) => explainError(err, ctx).message;

test('connection errors: the server, or a service node', () => {
  assert.equal(message(new ConnectionError('registry', 'cannot reach tcp://127.0.0.1:1 (ECONNREFUSED)', false), local), 'no server at 127.0.0.1:1 — start one with `micro server`');
  assert.match(message(new ConnectionError('registry', 'cannot reach tcp://10.0.0.5:8081 (ETIMEDOUT)', false), prod), /^no server at 10\.0\.0\.5:8081 — check the address of environment prod with `micro env`/);
  // a node whose port merely starts like the server's is not the server
  assert.match(message(new ConnectionError('greeter', 'cannot reach tcp://127.0.0.1:12345 (ECONNREFUSED)', true), { ...local, service: 'greeter' }), /^cannot reach greeter: .* — is it running\? See `micro status`$/);
});

test('auth errors say whether to log in, or log in again', () => {
  assert.equal(message(errors.Unauthorized('registry', 'credentials required'), prod), 'not logged in to prod — run `micro login`');
  assert.match(message(errors.Unauthorized('micro.auth', 'credentials for admin were refused: x'), local), /local admin account was refused .* restart `micro server`/);
  const loggedIn: ErrorContext = { ...prod, env: { name: 'prod', credentialSource: 'login', credentials: { id: 'ops' } } };
  assert.match(message(errors.Unauthorized('micro.auth', 'credentials for ops were refused: expired'), loggedIn), /refused: expired — run `micro login` to log in to prod again/);
  assert.match(message(errors.Forbidden('runtime', 'needs an admin'), loggedIn), /^forbidden: needs an admin — account ops may not do this/);
});

test('other errors keep the detail of the service', () => {
  assert.equal(message(errors.BadRequest('greeter', 'invalid request: name: too short'), local), 'invalid request: name: too short');
  assert.equal(message(errors.NotFound('x', 'service x not found'), { ...local, service: 'x' }), 'service x not found — see `micro services`');
  assert.match(message(errors.Timeout('greeter', 'call to greeter timed out'), local), /--timeout/);
  assert.equal(message(errors.InternalServerError('greeter', 'internal server error'), local), 'greeter: internal server error (500 Internal Server Error)');
  assert.equal(message(new Error('boom'), local), 'error: boom');
});
