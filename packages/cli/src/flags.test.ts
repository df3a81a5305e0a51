import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { jsonSchemaOf, z } from '@micro/sdk';
import { describeFields, parseFlags, resolveFlag, suggest, type JSONSchema } from './flags.js';
import { UsageError } from './output.js';

// Schemas as the registry publishes them: zod → JSON Schema (input side), as services do.
const schema = (s: z.ZodType) => jsonSchemaOf(s, 'input') as JSONSchema;

const user = schema(
  z.object({
    name: z.string(),
    age: z.number().int().optional(),
    score: z.number().optional(),
    admin: z.boolean().optional(),
    tags: z.array(z.string()).optional(),
    counts: z.array(z.number().int()).optional(),
    meta: z.record(z.string(), z.string()).optional(),
    settings: z.object({ theme: z.enum(['dark', 'light']), size: z.number() }).optional(),
    profile: z.object({ address: z.object({ city: z.string(), zip: z.string() }) }).optional(),
    first_name: z.string().optional(),
    first: z.object({ name: z.string() }).optional(),
    nickname: z.string().nullable().optional(),
    either: z.union([z.string(), z.number()]).optional(),
    payload: z.unknown().optional(),
  }),
);

const parse = (args: string[], s: JSONSchema = user) => parseFlags(args, s, { helpCommand: 'micro users create --help' }).request;

test('strings, numbers and integers follow the schema', () => {
  assert.deepEqual(parse(['--name=Alice', '--age=42', '--score', '-1.5']), { name: 'Alice', age: 42, score: -1.5 });
  // a string field keeps digits as text
  assert.deepEqual(parse(['--name=007']), { name: '007' });
  assert.deepEqual(parse(['--name', 'Bob Smith']), { name: 'Bob Smith' });
  assert.deepEqual(parse(['--name=a=b']), { name: 'a=b' });
  assert.deepEqual(parse(['--name=']), { name: '' });
});

test('wrong types are refused, naming the flag', () => {
  const cases: [string[], RegExp][] = [
    [['--age=abc'], /--age must be an integer, not "abc"/],
    [['--age=4.5'], /--age must be an integer/],
    [['--age=NaN'], /--age must be an integer/],
    [['--score=1e999'], /--score must be a number/],
    [['--score='], /--score must be a number/],
    [['--admin=yes'], /--admin must be true or false/],
    [['--settings={oops'], /--settings must be/],
    [['--settings=[1]'], /--settings must be/],
    [['--settings_theme=blue'], /--settings_theme must be one of "dark", "light"/],
    [['--counts=x'], /--counts must be an integer/],
    [['--counts=["a"]'], /--counts takes items of type integer/],
    [['--tags=[oops'], /--tags must be a JSON array/],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => parse(args), (err: unknown) => err instanceof UsageError && message.test(err.message), `${args.join(' ')} should fail with ${message}`);
  }
});

test('booleans: bare, =true/=false, or followed by true/false', () => {
  assert.deepEqual(parse(['--admin']), { admin: true });
  assert.deepEqual(parse(['--admin=false']), { admin: false });
  assert.deepEqual(parse(['--admin', 'false']), { admin: false });
  assert.deepEqual(parse(['--admin=TRUE']), { admin: true });
  // a bare boolean does not swallow the next flag
  assert.deepEqual(parse(['--admin', '--name=x']), { admin: true, name: 'x' });
});

test('arrays: repeated flags, JSON arrays, or both', () => {
  assert.deepEqual(parse(['--tags=a', '--tags=b']), { tags: ['a', 'b'] });
  assert.deepEqual(parse(['--tags=["a","b"]', '--tags=c']), { tags: ['a', 'b', 'c'] });
  assert.deepEqual(parse(['--counts=1', '--counts', '2']), { counts: [1, 2] });
  assert.deepEqual(parse(['--tags=a,b']), { tags: ['a,b'] }, 'commas are data, not separators');
});

test('objects as JSON, records by key, nesting with "_"', () => {
  assert.deepEqual(parse(['--settings={"theme":"dark","size":2}']), { settings: { theme: 'dark', size: 2 } });
  assert.deepEqual(parse(['--settings_theme=light', '--settings_size=3']), { settings: { theme: 'light', size: 3 } });
  assert.deepEqual(parse(['--profile_address_city=Paris', '--profile_address_zip=75001']), { profile: { address: { city: 'Paris', zip: '75001' } } });
  assert.deepEqual(parse(['--meta_env=prod', '--meta_team_name=core']), { meta: { env: 'prod', team_name: 'core' } });
  assert.deepEqual(parse(['--meta={"a":"b"}']), { meta: { a: 'b' } });
});

test('a property whose name holds "_" wins over nesting', () => {
  assert.deepEqual(parse(['--first_name=Ada']), { first_name: 'Ada' });
  const onlyNested = schema(z.object({ first: z.object({ name: z.string() }) }));
  assert.deepEqual(parse(['--first_name=Ada'], onlyNested), { first: { name: 'Ada' } });
});

test('null, unions and fields of any type', () => {
  assert.deepEqual(parse(['--nickname=null']), { nickname: null });
  assert.deepEqual(parse(['--either=12']), { either: 12 });
  assert.deepEqual(parse(['--either=twelve']), { either: 'twelve' });
  assert.deepEqual(parse(['--payload={"x":[1,2]}']), { payload: { x: [1, 2] } });
  assert.deepEqual(parse(['--payload=hello']), { payload: 'hello' });
});

test('a JSON body as the base, with flags on top', () => {
  assert.deepEqual(parse(['{"name":"a","age":1}', '--age=2']), { name: 'a', age: 2 });
  assert.throws(() => parse(['{nope']), /not valid JSON/);
  assert.throws(() => parse(['[1]']), /unexpected argument/);
});

test('unknown flags, stray words and options are refused with what to do', () => {
  assert.throws(() => parse(['--nmae=x']), /unknown flag --nmae \(did you mean --name\?\) — see `micro users create --help`/);
  assert.throws(() => parse(['--zzz=1']), /unknown flag --zzz \(fields: --name/);
  assert.throws(() => parse(['--settings_colour=red']), /unknown flag --settings_colour/);
  assert.throws(() => parse(['Alice']), /unexpected argument "Alice"/);
  assert.throws(() => parse(['-x']), /unknown option -x/);
  assert.throws(() => parse(['--name=a', '--name=b']), /--name is given more than once/);
  assert.throws(() => parse(['--name']), /--name needs a value \(string\)/);
  assert.throws(() => parse(['--x=1'], schema(z.object({}))), /this endpoint takes no fields/);
});

test('--help and --output are the CLI\'s unless the request has such a field', () => {
  assert.deepEqual(parseFlags(['--name=a', '--help'], user), { request: { name: 'a' }, help: true, output: undefined });
  assert.deepEqual(parseFlags(['--output', 'json', '--name=a'], user), { request: { name: 'a' }, help: false, output: 'json' });
  assert.equal(parseFlags(['-o=json'], user).output, 'json');
  assert.throws(() => parseFlags(['--output=xml'], user), /--output must be json or text/);
  const withOutput = schema(z.object({ output: z.string() }));
  assert.deepEqual(parseFlags(['--output=file.txt'], withOutput), { request: { output: 'file.txt' }, help: false, output: undefined });
});

test('hostile flag names never reach Object.prototype', () => {
  const loose = schema(z.object({ meta: z.record(z.string(), z.string()), any: z.unknown() }));
  const hostile = ['--__proto___x=1', '--__proto__=1', '--constructor_prototype_x=1', '--meta___proto__=1', '--meta_constructor=1', '--prototype=1'];
  for (const arg of hostile) {
    try {
      parse([arg], loose);
    } catch (err) {
      assert.ok(err instanceof UsageError, `${arg}: ${String(err)}`);
    }
    try {
      parse([arg]);
    } catch (err) {
      assert.ok(err instanceof UsageError, `${arg}: ${String(err)}`);
    }
  }
  assert.throws(() => parse(['--any={"__proto__":{"x":1}}'], loose), /__proto__/);
  assert.throws(() => parse(['{"__proto__":{"x":1}}'], loose), /__proto__/);
  assert.equal(({} as Record<string, unknown>).x, undefined);
  // a record's key that is "constructor" is data: an own property, not the prototype's
  const req = parse(['--meta_constructor=c'], loose) as { meta: Record<string, string> };
  assert.ok(Object.hasOwn(req.meta, 'constructor'));
});

test('property: any flag name and value either parses or is a UsageError, and nothing is polluted', () => {
  const loose = schema(z.object({ meta: z.record(z.string(), z.unknown()), n: z.number(), s: z.object({ a: z.string() }) }));
  const part = fc.constantFrom('__proto__', 'constructor', 'prototype', 'meta', 'n', 's', 'a', '_', '', 'x');
  fc.assert(
    fc.property(fc.array(part, { minLength: 1, maxLength: 5 }), fc.string(), (parts, value) => {
      try {
        parse([`--${parts.join('_')}=${value}`], loose);
      } catch (err) {
        if (!(err instanceof UsageError)) throw err;
      }
      return Object.keys(Object.prototype).length === 0 && ({} as Record<string, unknown>).a === undefined;
    }),
    { numRuns: 2000 },
  );
});

test('$ref and recursive schemas resolve through $defs', () => {
  interface Node {
    value: number;
    children?: Node[];
  }
  const node: z.ZodType<Node> = z.lazy(() => z.object({ value: z.number(), children: z.array(node).optional() }));
  const s = schema(z.object({ root: node }));
  assert.deepEqual(parse(['--root_value=3', '--root_children=[{"value":1}]'], s), { root: { value: 3, children: [{ value: 1 }] } });
  assert.ok(resolveFlag('root_value', s));
});

test('describeFields flattens nested objects for help', () => {
  const fields = describeFields(user);
  const byFlag = Object.fromEntries(fields.map((f) => [f.flag, f]));
  assert.equal(byFlag['--name']?.type, 'string');
  assert.equal(byFlag['--name']?.required, true);
  assert.equal(byFlag['--age']?.type, 'integer');
  assert.equal(byFlag['--admin']?.type, 'bool');
  assert.equal(byFlag['--tags']?.type, 'string[]');
  assert.equal(byFlag['--meta']?.type, 'json');
  assert.equal(byFlag['--settings_theme']?.type, '"dark"|"light"');
  assert.equal(byFlag['--settings_theme']?.required, false, 'required only when every parent is');
  assert.equal(byFlag['--profile_address_city']?.type, 'string');
  assert.equal(byFlag['--nickname']?.type, 'string|null');
});

test('suggest finds close words only', () => {
  assert.equal(suggest('servics', ['services', 'status', 'server']), 'services');
  assert.equal(suggest('stauts', ['services', 'status']), 'status');
  assert.equal(suggest('helloworld', ['services', 'status']), undefined);
});
