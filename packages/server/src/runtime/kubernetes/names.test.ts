import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MicroError } from '@micro/sdk';
import {
  clusterNamespace,
  DEFAULT_NAMESPACE_PREFIX,
  isDns1035Label,
  isDnsLabel,
  labelValue,
  MAX_SERVICE_NAME,
  namespacePrefix,
  platformNamespace,
  SERVICE_SUFFIX_ROOM,
  workloadName,
} from './names.js';

function refused(fn: () => unknown, pattern: RegExp) {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof MicroError, `a MicroError, not ${String(err)}`);
    assert.equal(err.code, 400);
    assert.equal(err.id, 'runtime');
    assert.match(err.detail, pattern);
    return true;
  });
}

test('a platform namespace maps to prefix + name, and back', () => {
  assert.equal(clusterNamespace('acme'), 'micro-acme');
  assert.equal(clusterNamespace('acme--x'), 'micro-acme--x');
  assert.equal(clusterNamespace('0day'), 'micro-0day');
  assert.equal(clusterNamespace('micro'), 'micro-micro');
  assert.equal(clusterNamespace('acme', 'tenant-'), 'tenant-acme');
  assert.equal(platformNamespace('micro-acme'), 'acme');
  assert.equal(platformNamespace('micro-micro-acme'), 'micro-acme');
  assert.equal(platformNamespace('kube-system'), undefined);
  assert.equal(platformNamespace('micro-'), undefined);
  assert.equal(platformNamespace('micro-system'), undefined);
  assert.equal(platformNamespace('micro-Acme'), undefined);
});

test('names that are not DNS-1123 labels are refused naming the field, the fault and the rule', () => {
  const rule = /DNS-1123 label: lower-case a-z, 0-9 and "-", starting and ending with a letter or digit, at most 57 characters \(63 with the prefix "micro-"\)/;
  refused(() => clusterNamespace('Acme'), /^namespace: "Acme" has upper-case letters; /);
  refused(() => clusterNamespace('Acme'), rule);
  refused(() => clusterNamespace(''), /^namespace: "" is empty/);
  refused(() => clusterNamespace('a.b'), /^namespace: "a.b" has "\."/);
  refused(() => clusterNamespace('..'), /^namespace: "\.\." has "\."/);
  refused(() => clusterNamespace('a_b'), /has "_"/);
  refused(() => clusterNamespace('a b'), /has " "/);
  refused(() => clusterNamespace('a/b'), /has "\/"/);
  refused(() => clusterNamespace('-acme'), /starts with "-"/);
  refused(() => clusterNamespace('acme-'), /ends with "-"/);
  refused(() => clusterNamespace('äcme'), /has "ä", a character outside ASCII/);
  refused(() => clusterNamespace('аcme'), /outside ASCII/); // a Cyrillic а
  refused(() => clusterNamespace('acme\n'), /outside ASCII/);
  refused(() => clusterNamespace('a\u0000'), /outside ASCII/);
  refused(() => clusterNamespace('😀'), /has "😀"/);
  refused(() => clusterNamespace(undefined), /^namespace: undefined is undefined, not a string/);
  refused(() => clusterNamespace(null), /is null, not a string/);
  refused(() => clusterNamespace(42), /is number/);
});

test('the length counts the prefix: 63 in all', () => {
  assert.equal(clusterNamespace('a'.repeat(57)), `micro-${'a'.repeat(57)}`);
  refused(() => clusterNamespace('a'.repeat(58)), /is 58 characters long, more than 57/);
  refused(() => clusterNamespace('a'.repeat(100_000)), /^namespace: "a{64}…" is 100000 characters long/);
  assert.equal(clusterNamespace('a'.repeat(63), ''), 'a'.repeat(63));
  refused(() => clusterNamespace('a'.repeat(34), 'p'.repeat(30)), /more than 33; .*\(63 with the prefix "p{30}"\)/);
});

test('no platform namespace maps onto the cluster\'s or the platform\'s own namespaces', () => {
  refused(() => clusterNamespace('system'), /would run in the cluster namespace micro-system, which is the cluster's or the platform's own/);
  for (const own of ['default', 'kube-system', 'kube-public', 'kube-node-lease', 'kube-anything']) {
    refused(() => clusterNamespace(own, ''), /the cluster's or the platform's own/);
  }
  assert.equal(clusterNamespace('default'), 'micro-default');
});

test('distinct platform namespaces never share a cluster namespace', () => {
  const names = ['acme', 'micro-acme', 'acme--x', 'acme-x', 'acme-2', 'micro', 'a', 'a-cme', 'ac-me', 'x'.repeat(57)];
  const mapped = names.map((n) => clusterNamespace(n));
  assert.equal(new Set(mapped).size, names.length);
  // the refused ones are exactly those a mangling would have made collide
  for (const lookalike of ['Acme', 'ACME', 'acme.', 'ac.me', 'ac_me', 'acme ', ' acme']) refused(() => clusterNamespace(lookalike), /namespace: /);
  for (const n of names) assert.equal(platformNamespace(clusterNamespace(n)), n);
});

test('MICRO_KUBERNETES_PREFIX is checked', () => {
  assert.equal(namespacePrefix(undefined), DEFAULT_NAMESPACE_PREFIX);
  assert.equal(namespacePrefix(''), '');
  assert.equal(namespacePrefix('tenant-'), 'tenant-');
  for (const bad of ['Micro-', '-x', 'a.b-', 'a'.repeat(31), 'mi cro', 'é-']) {
    assert.throws(() => namespacePrefix(bad), /MICRO_KUBERNETES_PREFIX must be at most 30 of lower-case a-z, 0-9 and "-"/);
  }
});

test('service names are DNS-1035 labels with room for the driver\'s suffixes', () => {
  assert.equal(MAX_SERVICE_NAME + SERVICE_SUFFIX_ROOM, 63);
  assert.equal(workloadName('helloworld'), 'helloworld');
  assert.equal(workloadName('my-svc-2'), 'my-svc-2');
  assert.equal(workloadName('a'.repeat(MAX_SERVICE_NAME)), 'a'.repeat(MAX_SERVICE_NAME));
  refused(() => workloadName('a'.repeat(MAX_SERVICE_NAME + 1)), /^name: "a+" is 48 characters long, more than 47; a service run on Kubernetes must be named/);
  refused(() => workloadName('go.micro.greeter'), /^name: "go.micro.greeter" has "\."/);
  refused(() => workloadName('my_svc'), /has "_"/);
  refused(() => workloadName('Hello'), /upper-case/);
  refused(() => workloadName('2fast'), /starts with a digit/);
  refused(() => workloadName('svc-'), /ends with "-"/);
  refused(() => workloadName(''), /is empty/);
  refused(() => workloadName('ßvc'), /outside ASCII/);
});

test('label values: safe values as they are, anything else a stable hash', () => {
  assert.equal(labelValue('cus_0lq3x1f2a3b4c5d6e7'), 'cus_0lq3x1f2a3b4c5d6e7');
  assert.equal(labelValue('developer'), 'developer');
  assert.equal(labelValue('ns.acme'), 'ns.acme');
  assert.equal(labelValue(''), '');
  const email = labelValue('alice@example.com');
  assert.match(email, /^sha256\.[0-9a-f]{48}$/);
  assert.equal(labelValue('alice@example.com'), email, 'stable');
  assert.notEqual(labelValue('bob@example.com'), email);
  // a raw value cannot pass for the hash of another
  assert.notEqual(labelValue(email), email);
  assert.match(labelValue(email), /^sha256\.[0-9a-f]{48}$/);
  for (const v of ['x'.repeat(64), '-x', 'x-', 'a b', 'ü', 'a/b']) assert.match(labelValue(v), /^sha256\.[0-9a-f]{48}$/, v);
  assert.equal(labelValue('x'.repeat(63)), 'x'.repeat(63));
});

test('the label predicates', () => {
  assert.ok(isDnsLabel('micro-acme'));
  assert.ok(isDnsLabel('0a'));
  assert.ok(!isDnsLabel('a'.repeat(64)));
  assert.ok(!isDns1035Label('0a'));
  assert.ok(isDns1035Label('a0'));
});
