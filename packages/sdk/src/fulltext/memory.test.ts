import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MicroError } from '../errors/errors.js';
import { fulltextContract } from './contract.js';
import { MemoryFulltext } from './memory.js';
import { parseQuery, words } from './query.js';

fulltextContract('memory', async () => {
  const impl = new MemoryFulltext();
  return { impl, close: () => impl.close() };
});

test('the parser: precedence, grouping, prefixes and escapes make the expected tree', () => {
  assert.deepEqual(parseQuery("a == 'x y*' or b >= -1.5 and (c < 2 OR 'z')"), {
    kind: 'or',
    nodes: [
      { kind: 'text', field: 'a', terms: [{ word: 'x', prefix: false }, { word: 'y', prefix: true }] },
      {
        kind: 'and',
        nodes: [
          { kind: 'number', field: 'b', op: '>=', value: -1.5 },
          { kind: 'or', nodes: [{ kind: 'number', field: 'c', op: '<', value: 2 }, { kind: 'text', terms: [{ word: 'z', prefix: false }] }] },
        ],
      },
    ],
  });
  assert.deepEqual(parseQuery('user.first_name == "O\\"Brien"'), { kind: 'text', field: 'user.first_name', terms: [{ word: 'o', prefix: false }, { word: 'brien', prefix: false }] });
  assert.deepEqual(parseQuery("t == '*'"), { kind: 'text', field: 't', terms: [] });
  assert.deepEqual(words('Ünïcode-TEXT, 42ab; ＦＵＬＬ'), ['unicode', 'text', '42ab', 'full']);
});

test('the parser answers any string with a tree or a 400, never anything else', () => {
  const alphabet = fc.constantFrom(...'ab1 ()\'"\\*=<>!&|:^-.;$'.split(''), ' and ', ' or ', 'x == ', "'w*'", ' >= 2');
  fc.assert(
    fc.property(fc.array(alphabet, { maxLength: 40 }).map((parts) => parts.join('')), fc.string({ maxLength: 60 }), (built, random) => {
      for (const query of [built, random]) {
        try {
          parseQuery(query);
        } catch (err) {
          assert.ok(err instanceof MicroError && err.code === 400, `${JSON.stringify(query)}: ${String(err)}`);
        }
      }
    }),
    { numRuns: 2000 },
  );
});

test('terms hold letters and digits only, whatever the value: nothing else can reach an engine', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 40 }), (value) => {
      const quoted = `t == '${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
      let tree;
      try {
        tree = parseQuery(quoted);
      } catch (err) {
        assert.ok(err instanceof MicroError && err.code === 400);
        return;
      }
      if (tree.kind !== 'text') throw new Error(`not a text leaf: ${JSON.stringify(tree)}`);
      for (const t of tree.terms) assert.match(t.word, /^[\p{L}\p{N}]+$/u);
    }),
    { numRuns: 2000 },
  );
});
