import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Account } from '../context/context.js';
import { conflictingRule, parseResource, RuleSet, type Rule } from './rules.js';

/**
 * The evaluator against a reference written as plainly as possible: glob matching by
 * recursion, "the highest priority among the rules that match and apply decides, and at
 * that priority a denial beats a grant".
 */
function globMatch(pattern: string, value: string): boolean {
  if (pattern === '') return value === '';
  if (pattern[0] === '*') {
    for (let i = 0; i <= value.length; i++) if (globMatch(pattern.slice(1), value.slice(i))) return true;
    return false;
  }
  return value.length > 0 && pattern[0] === value[0] && globMatch(pattern.slice(1), value.slice(1));
}

function reference(rules: Rule[], resource: string, account: Account | undefined): 'granted' | 'denied' {
  const [t, n, e] = resource.split(':') as [string, string, string];
  const applicable = rules.filter((r) => {
    const [rt, rn, re] = r.resource.split(':') as [string, string, string];
    const who = r.scope === '' || (account !== undefined && (r.scope === '*' || account.scopes.includes(r.scope)));
    return who && globMatch(rt, t) && globMatch(rn, n) && globMatch(re, e);
  });
  if (applicable.length === 0) return 'denied';
  const top = Math.max(...applicable.map((r) => r.priority));
  return applicable.some((r) => r.priority === top && r.access === 'denied') ? 'denied' : 'granted';
}

const names = ['a', 'ab', 'b', 'billing', 'Call', 'Call.Sub', 'x-y'];
const segmentPattern = fc.oneof(fc.constantFrom(...names), fc.constant('*'), fc.constantFrom('a*', '*b', 'C*l', 'b*g', '*.*'));
const ruleArb = fc.record({
  id: fc.string({ minLength: 1, maxLength: 6, unit: fc.constantFrom('r', 's', '1', '2') }),
  resource: fc.tuple(fc.constantFrom('service', '*', 's*'), segmentPattern, segmentPattern).map((p) => p.join(':')),
  scope: fc.constantFrom('', '*', 'admin', 'dev', 'ops'),
  access: fc.constantFrom('granted' as const, 'denied' as const),
  priority: fc.integer({ min: -3, max: 3 }),
});
const accountArb = fc.option(
  fc.record({ id: fc.constant('u'), type: fc.constant('user'), issuer: fc.constant('ns'), scopes: fc.subarray(['admin', 'dev', 'ops']) }),
  { nil: undefined },
);
const resourceArb = fc.tuple(fc.constantFrom('service', 'store'), fc.constantFrom(...names), fc.constantFrom(...names)).map((p) => p.join(':'));

test('rules are evaluated in priority order: the evaluator agrees with the reference on random rule sets', () => {
  fc.assert(
    fc.property(fc.array(ruleArb, { maxLength: 12 }), fc.array(fc.tuple(resourceArb, accountArb), { minLength: 1, maxLength: 8 }), (rules, calls) => {
      const set = new RuleSet(rules);
      for (const [resource, account] of calls) {
        assert.equal(set.evaluate(resource, account).access, reference(rules, resource, account), `${resource} as ${JSON.stringify(account?.scopes)}`);
      }
    }),
    { numRuns: 500 },
  );
});

test('the order rules are given in never matters', () => {
  fc.assert(
    fc.property(fc.array(ruleArb, { maxLength: 10 }), resourceArb, accountArb, (rules, resource, account) => {
      const forward = new RuleSet(rules).evaluate(resource, account).access;
      const backward = new RuleSet([...rules].reverse()).evaluate(resource, account).access;
      assert.equal(forward, backward);
    }),
    { numRuns: 300 },
  );
});

test('priority decides; denied wins a tie; nothing matching means denied', () => {
  const user: Account = { id: 'u', type: 'user', issuer: 'ns', scopes: ['dev'] };
  const rules: Rule[] = [
    { id: 'all', resource: 'service:*:*', scope: '*', access: 'granted', priority: 0 },
    { id: 'no-billing', resource: 'service:billing:*', scope: '*', access: 'denied', priority: 10 },
    { id: 'dev-billing-read', resource: 'service:billing:Read', scope: 'dev', access: 'granted', priority: 20 },
    { id: 'public-health', resource: 'service:*:Health', scope: '', access: 'granted', priority: 5 },
  ];
  const set = new RuleSet(rules);
  assert.deepEqual(set.rules.map((r) => r.id), ['dev-billing-read', 'no-billing', 'public-health', 'all']);
  assert.equal(set.evaluate('service:greeter:Call', user).access, 'granted');
  assert.equal(set.evaluate('service:billing:Write', user).rule?.id, 'no-billing');
  assert.equal(set.evaluate('service:billing:Read', user).access, 'granted');
  assert.equal(set.evaluate('service:billing:Read', { ...user, scopes: [] }).access, 'denied');
  // anonymous: only the public rule
  assert.equal(set.evaluate('service:greeter:Health', undefined).access, 'granted');
  assert.deepEqual(set.evaluate('service:greeter:Call', undefined), { access: 'denied', rule: undefined });
  // a tie at the same priority: denied wins, whatever the order
  const tie = new RuleSet([
    { id: 'b-grant', resource: 'service:x:*', scope: '*', access: 'granted', priority: 1 },
    { id: 'a-deny', resource: 'service:*:Call', scope: '*', access: 'denied', priority: 1 },
  ]);
  assert.equal(tie.evaluate('service:x:Call', user).access, 'denied');
  assert.equal(tie.evaluate('service:x:Other', user).access, 'granted');
  assert.equal(new RuleSet([]).evaluate('service:x:Call', user).access, 'denied');
});

test('resources are type:name:endpoint; anything else matches nothing', () => {
  assert.deepEqual(parseResource('service:helloworld:Call'), { type: 'service', name: 'helloworld', endpoint: 'Call' });
  for (const bad of ['', 'service', 'service:x', 'a:b:c:d', 'service:x y:Call', 'service::Call', `service:${'x'.repeat(300)}:Call`, 'service:(.*):x']) {
    assert.equal(parseResource(bad), undefined, bad);
  }
  // regex characters in a pattern are literal
  const set = new RuleSet([{ id: 'r', resource: 'service:a.b:*', scope: '', access: 'granted', priority: 0 }]);
  assert.equal(set.evaluate('service:aXb:Call', undefined).access, 'denied');
  assert.equal(set.evaluate('service:a.b:Call', undefined).access, 'granted');
});

test('a rule that contradicts another (same resource, scope, priority; other access) is found', () => {
  const existing: Rule[] = [{ id: 'r1', resource: 'service:x:*', scope: '*', access: 'granted', priority: 1 }];
  assert.equal(conflictingRule(existing, { id: 'r2', resource: 'service:x:*', scope: '*', access: 'denied', priority: 1 })?.id, 'r1');
  assert.equal(conflictingRule(existing, { id: 'r2', resource: 'service:x:*', scope: '*', access: 'denied', priority: 2 }), undefined);
  assert.equal(conflictingRule(existing, { id: 'r2', resource: 'service:x:*', scope: 'dev', access: 'denied', priority: 1 }), undefined);
  assert.equal(conflictingRule(existing, { id: 'r2', resource: 'service:x:*', scope: '*', access: 'granted', priority: 1 }), undefined);
});
