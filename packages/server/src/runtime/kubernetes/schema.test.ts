import assert from 'node:assert/strict';
import { test } from 'node:test';
import { knownKind, SchemaError, validateObject } from './schema.js';

test('a valid object of each kind the runtime and the manifests use passes', () => {
  validateObject({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'micro-acme', labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } });
  validateObject({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'svc', namespace: 'n' }, spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'i' }] } } } });
  validateObject({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'deny' }, spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress'] } });
  validateObject({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'r' }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }] });
});

test('a wrong type, a missing required field, an unknown kind and hostile versions are refused with what is wrong', () => {
  const bad = (obj: unknown, pattern: RegExp) =>
    assert.throws(
      () => validateObject(obj),
      (err: unknown) => err instanceof SchemaError && pattern.test(err.message) && err.problems.length > 0,
    );
  bad({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' }, spec: { selector: {}, template: { spec: { containers: [{ name: 1 }] } } } }, /spec\.template\.spec\.containers\.0\.name: must be string/);
  bad({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' }, spec: { template: {} } }, /selector/);
  bad({ apiVersion: 'v1', kind: 'Namespace', metadata: {} }, /metadata\.name is required/);
  bad({ apiVersion: 'v1', kind: 'Gadget', metadata: { name: 'x' } }, /not a kind of the Kubernetes API/);
  bad({ apiVersion: '../../../etc/passwd', kind: 'Namespace', metadata: { name: 'x' } }, /not a kind/);
  bad({ kind: 'Namespace', metadata: { name: 'x' } }, /apiVersion and kind are required/);
  bad([], /must be a JSON object/);
  bad(null, /must be a JSON object/);
  assert.equal(knownKind('batch/v1', 'Job'), true);
  assert.equal(knownKind('batch/v1', 'constructor'), false);
});
