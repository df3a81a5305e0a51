import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseQuery, QueryError } from './query.js';

test('M3O queries parse into conditions', () => {
  assert.deepEqual(parseQuery('age > 18'), [{ path: ['age'], op: '>', value: 18 }]);
  assert.deepEqual(parseQuery(`user.age>=18 AND name == 'Ada' and ok != true and x<-2.5 and y <= "say \\"hi\\"" and z == 'it\\'s'`), [
    { path: ['user', 'age'], op: '>=', value: 18 },
    { path: ['name'], op: '==', value: 'Ada' },
    { path: ['ok'], op: '!=', value: true },
    { path: ['x'], op: '<', value: -2.5 },
    { path: ['y'], op: '<=', value: 'say "hi"' },
    { path: ['z'], op: '==', value: "it's" },
  ]);
  assert.deepEqual(parseQuery('2fa_on == false'), [{ path: ['2fa_on'], op: '==', value: false }]);
  // an injection attempt is a string value like any other
  assert.deepEqual(parseQuery(`name == "'; DROP TABLE records; --"`), [{ path: ['name'], op: '==', value: "'; DROP TABLE records; --" }]);
});

test('queries that do not parse say what was expected, what was found, and where', () => {
  const fails = (q: string, detail: RegExp, position: number) =>
    assert.throws(
      () => parseQuery(q),
      (err: unknown) => {
        assert.ok(err instanceof QueryError, String(err));
        assert.match(err.message, detail);
        assert.equal(err.position, position, err.message);
        return true;
      },
    );
  fails('', /empty/, 0);
  fails('age', /expected an operator .* found the end of the query/, 3);
  fails('age >', /expected a value .* found the end/, 5);
  fails('age = 18', /"=" is not an operator \(use "=="\)/, 4);
  fails('age > 18 or x == 1', /expected "and" or the end of the query, found "or"/, 9);
  fails("name == 'ada", /no closing '/, 8);
  fails('name == ada', /expected a value .* found "ada"/, 8);
  fails("a == 'x'; DROP TABLE records", /unexpected character ";"/, 8);
  fails('a.b. == 1', /expected a field name after "\.", found "=="/, 5);
  fails('a > true', /true and false compare only with == and !=/, 4);
  fails('a == 99999999999999999999', /too large/, 5);
  fails('a == 1x', /expected a value .* found "1x"/, 5);
  fails('a == -1x', /must not run into letters/, 5);
  fails("a == 'x\\q'", /unknown escape/, 7);
  fails('a.b.c.d.e.f.g.h == 1', /at most 7 names deep/, 14);
  fails('$where == 1', /unexpected character "\$"/, 0);
  fails(Array.from({ length: 33 }, (_, i) => `f${i} == 1`).join(' and '), /at most 32 conditions/, 402);
  fails('a == 1 and', /expected a field name, found the end/, 10);
});
