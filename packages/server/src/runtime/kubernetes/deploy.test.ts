import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { SchemaError, validateObject } from './schema.js';

/*
 * deploy/: the manifests as `kubectl kustomize` renders each overlay, every object checked
 * against the Kubernetes schemas and read back for what matters (least privilege, the
 * restricted Pod Security Standard, secrets only by reference, the nats profile, pinned
 * images); the Dockerfiles read for what their final stages hold; deploy/stage.mjs run on a
 * small monorepo of its own.
 */

// packages/server/dist/runtime/kubernetes → the repository
const ROOT = fileURLToPath(new URL('../../../../../', import.meta.url));
const DEPLOY = join(ROOT, 'deploy');
const OVERLAYS = ['small', 'production'] as const;
const SYSTEM = 'micro-system';
const MANAGED = 'app.kubernetes.io/managed-by';

const work = mkdtempSync(join(tmpdir(), 'micro-deploy-'));
after(() => rmSync(work, { recursive: true, force: true }));

/* eslint-disable @typescript-eslint/no-explicit-any -- rendered objects are read field by field, as the API server would */
type Obj = Record<string, any>;

/** Why kubectl cannot be used here, or undefined when it can (MICRO_REQUIRE_ENGINES=1 makes its absence a failure). */
const kubectlMissing = (() => {
  const run = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8', timeout: 30_000 });
  // Debian's kubectl 1.20 carries kustomize v2, which lacks `patches:` and folders in `resources:`
  const kustomize = Number(/Kustomize Version: v(\d+)/.exec(run.stdout ?? '')?.[1] ?? 0);
  let why: string | undefined;
  if (run.error || run.status !== 0) why = `kubectl is not on the PATH (${run.error?.message ?? run.stderr.trim()})`;
  else if (kustomize < 5) why = `kubectl on the PATH (${/GitVersion:"([^"]+)"/.exec(run.stdout)?.[1] ?? /Client Version: (\S+)/.exec(run.stdout)?.[1] ?? 'unknown version'}) has kustomize ${kustomize ? `v${kustomize}` : 'older than v5'}`;
  if (!why) return undefined;
  why += '; deploy/kubernetes needs kubectl 1.27 or newer (kustomize v5): see deploy/README.md';
  if (process.env.MICRO_REQUIRE_ENGINES === '1') throw new Error(`${why} — required with MICRO_REQUIRE_ENGINES=1`);
  return why;
})();

/** The objects `kubectl kustomize <dir>` renders; kubectl's own error when it cannot. */
function render(dir: string): Obj[] {
  const run = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8', timeout: 60_000, maxBuffer: 16 * 1024 * 1024 });
  if (run.error) throw run.error;
  if (run.status !== 0) throw new Error(`kubectl kustomize ${dir} failed: ${run.stderr.trim()}`);
  const docs = parseAllDocuments(run.stdout);
  if (!Array.isArray(docs)) throw new Error(`kubectl kustomize ${dir}: no documents`);
  return docs.map((d) => {
    if (d.errors.length > 0) throw new Error(`kubectl kustomize ${dir}: ${d.errors.map((e) => e.message).join('; ')}`);
    return d.toJS() as Obj;
  });
}

const rendered = new Map<string, Obj[]>();
function overlay(t: TestContext, name: string): Obj[] | undefined {
  if (kubectlMissing) {
    t.skip(kubectlMissing);
    return undefined;
  }
  let objs = rendered.get(name);
  if (!objs) {
    objs = render(join(DEPLOY, 'kubernetes', 'overlays', name));
    rendered.set(name, objs);
  }
  return objs;
}

const find = (objs: Obj[], kind: string, name: string): Obj => {
  const o = objs.find((x) => x.kind === kind && x.metadata?.name === name);
  assert.ok(o, `${kind} ${name} is rendered`);
  return o;
};
const ofKind = (objs: Obj[], kind: string): Obj[] => objs.filter((o) => o.kind === kind);
const serverDeployment = (objs: Obj[]) => find(objs, 'Deployment', 'micro-server');
const serverContainer = (objs: Obj[]) => serverDeployment(objs).spec.template.spec.containers.find((c: Obj) => c.name === 'server') as Obj;
const envOf = (c: Obj): Obj[] => c.env ?? [];
const envNamed = (c: Obj, name: string): Obj => {
  const e = envOf(c).find((x) => x.name === name);
  assert.ok(e, `env ${name} is set`);
  return e;
};

/** Pod templates of every workload of the render, with where each comes from. */
function podTemplates(objs: Obj[]): { where: string; spec: Obj }[] {
  const out: { where: string; spec: Obj }[] = [];
  for (const o of objs) {
    const where = `${o.kind} ${o.metadata.name}`;
    if (['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job'].includes(o.kind)) out.push({ where, spec: o.spec.template.spec });
    if (o.kind === 'CronJob') out.push({ where, spec: o.spec.jobTemplate.spec.template.spec });
    if (o.kind === 'Pod') out.push({ where, spec: o.spec });
  }
  return out;
}

/** The violations of the `restricted` Pod Security Standard (and of this project's own additions) in a pod spec. */
function restrictedViolations(where: string, spec: Obj): string[] {
  const bad: string[] = [];
  const pod = spec.securityContext ?? {};
  for (const f of ['hostNetwork', 'hostPID', 'hostIPC']) if (spec[f]) bad.push(`${where}: ${f}`);
  const allowedVolumes = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];
  for (const v of spec.volumes ?? []) {
    const types = Object.keys(v).filter((k) => k !== 'name');
    if (types.some((k) => !allowedVolumes.includes(k))) bad.push(`${where}: volume ${v.name} is ${types.join(',')}`);
  }
  const seccompOk = (sc: Obj | undefined) => ['RuntimeDefault', 'Localhost'].includes(sc?.seccompProfile?.type);
  for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
    const sc = c.securityContext ?? {};
    const at = `${where} container ${c.name}`;
    if (sc.privileged) bad.push(`${at}: privileged`);
    if (sc.allowPrivilegeEscalation !== false) bad.push(`${at}: allowPrivilegeEscalation is not false`);
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) bad.push(`${at}: capabilities do not drop ALL`);
    for (const cap of sc.capabilities?.add ?? []) if (cap !== 'NET_BIND_SERVICE') bad.push(`${at}: adds capability ${cap}`);
    if (!(sc.runAsNonRoot ?? pod.runAsNonRoot)) bad.push(`${at}: runAsNonRoot is not true`);
    if ((sc.runAsUser ?? pod.runAsUser) === 0) bad.push(`${at}: runs as uid 0`);
    if (!seccompOk(sc) && !seccompOk(pod)) bad.push(`${at}: no RuntimeDefault seccomp profile`);
    for (const p of c.ports ?? []) if (p.hostPort) bad.push(`${at}: hostPort ${p.hostPort}`);
    // beyond the standard: a read-only root and bounded memory everywhere
    if (sc.readOnlyRootFilesystem !== true) bad.push(`${at}: root file system is writable`);
    if (!c.resources?.requests?.memory || !c.resources?.limits?.memory) bad.push(`${at}: no memory request and limit`);
  }
  return bad;
}

/** image is `name:tag` (or a digest) with a tag that names a version. */
function pinned(image: string): boolean {
  if (image.includes('@sha256:')) return true;
  const tag = /:([^/:]+)$/.exec(image)?.[1];
  return tag !== undefined && tag !== 'latest';
}

describe('deploy/kubernetes: each overlay as kubectl kustomize renders it', () => {
  for (const name of OVERLAYS) {
    test(`${name}: every object is valid against the Kubernetes schemas and lands where it belongs`, (t) => {
      const objs = overlay(t, name);
      if (!objs) return;
      assert.ok(objs.length > 10, `${objs.length} objects`);
      const clusterScoped = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']);
      const seen = new Set<string>();
      for (const o of objs) {
        validateObject(o);
        const id = `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
        assert.ok(!seen.has(id), `${id} is rendered once`);
        seen.add(id);
        if (clusterScoped.has(o.kind)) assert.equal(o.metadata.namespace, undefined, `${o.kind} ${o.metadata.name} is cluster-scoped: no namespace`);
        else assert.equal(o.metadata.namespace, SYSTEM, `${o.kind} ${o.metadata.name} is in ${SYSTEM}`);
        assert.equal(o.metadata.labels?.['app.kubernetes.io/part-of'], 'micro', `${id} is labelled part-of micro`);
      }
      const ns = find(objs, 'Namespace', SYSTEM);
      assert.equal(ns.metadata.labels['pod-security.kubernetes.io/enforce'], 'restricted');
      // the label of customers' namespaces, which the admission policy lets the server write in
      assert.equal(ns.metadata.labels[MANAGED], undefined, `${SYSTEM} must not look like a customer's namespace`);
      for (const o of objs) assert.notEqual(o.metadata.labels?.[MANAGED], 'micro', `${o.kind} ${o.metadata.name} is not labelled as made by the runtime`);
    });

    test(`${name}: the ClusterRole grants only what the runtime uses, with no way to more`, (t) => {
      const objs = overlay(t, name);
      if (!objs) return;
      // [apiGroup, resource] → the verbs it may have at most
      const rw = ['get', 'list', 'watch', 'create', 'update', 'delete'];
      const allowed = new Map<string, string[]>([
        ['/namespaces', [...rw, 'patch']],
        ['/serviceaccounts', rw],
        ['/resourcequotas', rw],
        ['/limitranges', rw],
        ['/secrets', ['get', 'create', 'update', 'delete']],
        ['/pods', ['get', 'list', 'watch', 'delete']],
        ['/pods/log', ['get']],
        ['/events', ['list', 'watch']],
        ['networking.k8s.io/networkpolicies', rw],
        ['apps/deployments', rw],
        ['batch/jobs', rw],
      ]);
      const roles = [...ofKind(objs, 'ClusterRole'), ...ofKind(objs, 'Role')];
      assert.deepEqual(
        roles.map((r) => r.metadata.name),
        ['micro-runtime'],
        'one role, the runtime driver’s',
      );
      const granted = new Set<string>();
      for (const rule of roles[0]!.rules as Obj[]) {
        const all = [...(rule.apiGroups ?? []), ...(rule.resources ?? []), ...(rule.verbs ?? []), ...(rule.resourceNames ?? [])];
        assert.ok(!all.some((x: string) => x.includes('*')), `no wildcard: ${JSON.stringify(rule)}`);
        assert.equal(rule.nonResourceURLs, undefined, 'no non-resource URLs');
        for (const verb of rule.verbs) assert.ok(!['escalate', 'bind', 'impersonate', 'approve', 'sign'].includes(verb), `no ${verb}`);
        for (const group of rule.apiGroups) {
          for (const resource of rule.resources) {
            const key = `${group}/${resource}`;
            const max = allowed.get(key);
            assert.ok(max, `${key} is not a resource the runtime uses`);
            for (const verb of rule.verbs) assert.ok(max.includes(verb), `${verb} on ${key} is more than the runtime needs`);
            granted.add(key);
          }
        }
      }
      assert.deepEqual([...granted].sort(), [...allowed.keys()].sort(), 'every resource the runtime uses is granted');
      const secrets = (roles[0]!.rules as Obj[]).filter((r) => r.resources.includes('secrets'));
      assert.ok(secrets.every((r) => !r.verbs.includes('list') && !r.verbs.includes('watch')), 'secrets are never listed nor watched');

      const bindings = [...ofKind(objs, 'ClusterRoleBinding'), ...ofKind(objs, 'RoleBinding')];
      assert.equal(bindings.length, 1);
      assert.deepEqual(bindings[0]!.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'micro-runtime' });
      assert.deepEqual(bindings[0]!.subjects, [{ kind: 'ServiceAccount', name: 'micro-server', namespace: SYSTEM }]);
      find(objs, 'ServiceAccount', 'micro-server');
      assert.equal(serverDeployment(objs).spec.template.spec.serviceAccountName, 'micro-server');
    });

    test(`${name}: an admission policy keeps the server's writes to namespaces labelled as the runtime's`, (t) => {
      const objs = overlay(t, name);
      if (!objs) return;
      const policy = find(objs, 'ValidatingAdmissionPolicy', 'micro-runtime-namespaces');
      const binding = find(objs, 'ValidatingAdmissionPolicyBinding', 'micro-runtime-namespaces');
      assert.equal(binding.spec.policyName, policy.metadata.name);
      assert.deepEqual(binding.spec.validationActions, ['Deny']);
      assert.equal(policy.spec.failurePolicy, 'Fail');
      assert.deepEqual(
        policy.spec.matchConditions.map((c: Obj) => c.expression),
        ["request.userInfo.username == 'system:serviceaccount:micro-system:micro-server'"],
      );
      // every resource the ClusterRole may write is covered by the policy
      const covered = new Set<string>();
      for (const r of policy.spec.matchConstraints.resourceRules) {
        assert.deepEqual([...r.operations].sort(), ['CREATE', 'DELETE', 'UPDATE']);
        for (const g of r.apiGroups) for (const res of r.resources) covered.add(`${g}/${res}`);
      }
      for (const rule of find(objs, 'ClusterRole', 'micro-runtime').rules as Obj[]) {
        if (!rule.verbs.some((v: string) => ['create', 'update', 'patch', 'delete'].includes(v))) continue;
        for (const g of rule.apiGroups) for (const res of rule.resources) assert.ok(covered.has(`${g}/${res}`), `writes to ${g}/${res} are checked by the policy`);
      }
      assert.equal(policy.spec.validations.length, 3);
      for (const v of policy.spec.validations) {
        assert.match(v.expression, /'app\.kubernetes\.io\/managed-by'\] == 'micro'/);
        assert.ok(v.message, 'each refusal says why');
      }
    });

    test(`${name}: every pod meets the restricted Pod Security Standard, with a read-only root and bounded memory`, (t) => {
      const objs = overlay(t, name);
      if (!objs) return;
      const templates = podTemplates(objs);
      assert.ok(templates.length >= 1);
      const bad = templates.flatMap(({ where, spec }) => restrictedViolations(where, spec));
      assert.deepEqual(bad, []);
      // the engines get no API credentials; the server needs its own
      for (const { where, spec } of templates) {
        if (where === 'Deployment micro-server') assert.notEqual(spec.automountServiceAccountToken, false);
        else assert.equal(spec.automountServiceAccountToken, false, `${where} mounts no ServiceAccount token`);
      }
    });

    test(`${name}: micro server runs several replicas on the nats profile, bound inside its pod, reachable through its Services`, (t) => {
      const objs = overlay(t, name);
      if (!objs) return;
      const dep = serverDeployment(objs);
      assert.ok(dep.spec.replicas >= 2, `${dep.spec.replicas} replicas`);
      assert.equal(dep.spec.strategy.rollingUpdate.maxUnavailable, 0, 'a rollout never has fewer ready nodes');
      assert.equal(dep.spec.template.metadata.labels['app.kubernetes.io/name'], 'micro-server', 'the label tenant NetworkPolicies let egress reach');
      assert.equal(dep.spec.template.spec.enableServiceLinks, false, 'no MICRO_SERVER_* variables injected from the Service micro-server');
      const c = serverContainer(objs);
      assert.deepEqual(c.args, ['server']);
      const value = (n: string) => envNamed(c, n).value as string;
      assert.equal(value('MICRO_PROFILE'), 'nats');
      assert.equal(value('MICRO_RUNTIME'), 'kubernetes');
      assert.equal(value('MICRO_SERVER_ADDRESS'), 'tcp://0.0.0.0:8081');
      assert.equal(value('MICRO_GATEWAY_ADDRESS'), '0.0.0.0:8080');
      assert.ok(pinned(value('MICRO_RUNNER_IMAGE')), `runner image ${value('MICRO_RUNNER_IMAGE')} is pinned`);
      assert.equal(value('MICRO_KUBERNETES_PREFIX'), 'micro-');
      for (const n of ['MICRO_NATS_URL', 'MICRO_POSTGRES_URL', 'MICRO_REDIS_URL']) envNamed(c, n);
      assert.deepEqual(envNamed(c, 'MICRO_AUTH_KEY').valueFrom, { secretKeyRef: { name: 'micro-secrets', key: 'auth-key' } });
      // names in env are unique, and $(NAME) refers to a variable defined above it (Kubernetes expands no other)
      const names = envOf(c).map((e) => e.name as string);
      assert.equal(new Set(names).size, names.length, `env names are unique: ${names.join(' ')}`);
      envOf(c).forEach((e, i) => {
        for (const m of String(e.value ?? '').matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) assert.ok(names.slice(0, i).includes(m[1]!), `${e.name} uses $(${m[1]}), which must be defined above it`);
      });

      // the addresses pods reach it by are its Services, on the ports it listens on
      const ports = new Map((c.ports as Obj[]).map((p) => [p.name as string, p.containerPort as number]));
      assert.equal(ports.get('gateway'), 8080);
      assert.equal(ports.get('rpc'), 8081);
      for (const [env, service, port] of [
        ['MICRO_KUBERNETES_SERVER', 'micro-server', 8081],
        ['MICRO_KUBERNETES_GATEWAY', 'micro-gateway', 8080],
      ] as const) {
        const svc = find(objs, 'Service', service);
        assert.equal(svc.spec.type ?? 'ClusterIP', 'ClusterIP', `${service} is not exposed outside the cluster`);
        assert.deepEqual(svc.spec.selector, { 'app.kubernetes.io/name': 'micro-server' });
        const sp = (svc.spec.ports as Obj[]).find((p) => p.port === port);
        assert.ok(sp, `${service} serves ${port}`);
        assert.equal(ports.get(sp.targetPort), port, `${service}'s targetPort ${sp.targetPort} is the container's port ${port}`);
        assert.equal(value(env), `${service}.${SYSTEM}.svc.cluster.local:${port}`);
      }
      // probes on ports the container has; ready means the gateway reaches a core service
      for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) assert.ok(ports.has(c[probe].httpGet.port), `${probe} on a named port`);
      assert.equal(c.readinessProbe.httpGet.path, '/v1/registry/Debug/Health');
      // writable MICRO_HOME and /tmp on a read-only root
      const mounts = new Map((c.volumeMounts as Obj[]).map((m) => [m.mountPath as string, m.name as string]));
      const volumes = new Map((dep.spec.template.spec.volumes as Obj[]).map((v) => [v.name as string, v]));
      for (const path of [value('MICRO_HOME'), '/tmp']) {
        const vol = volumes.get(mounts.get(path) ?? '');
        assert.ok(vol?.emptyDir, `${path} is an emptyDir`);
        assert.ok(vol.emptyDir.sizeLimit, `${path} is bounded`);
      }
      const pdb = find(objs, 'PodDisruptionBudget', 'micro-server');
      assert.deepEqual(pdb.spec.selector.matchLabels, { 'app.kubernetes.io/name': 'micro-server' });
      assert.ok(pdb.spec.minAvailable >= 1 && pdb.spec.minAvailable < dep.spec.replicas, 'a drain can proceed and never takes every node');
      assert.ok(dep.spec.template.spec.affinity.podAntiAffinity, 'replicas spread over nodes');
    });

    test(`${name}: secrets are referenced, never written in the manifests`, (t) => {
      const objs = overlay(t, name);
      if (!objs) return;
      assert.deepEqual(ofKind(objs, 'Secret').map((s) => s.metadata.name), [], 'no Secret object: the operator creates them');
      assert.deepEqual(ofKind(objs, 'ConfigMap').filter((m) => JSON.stringify(m.data ?? {}).match(/password|secret|key/i)), []);
      const sensitive = /KEY|PASSWORD|SECRET|TOKEN|_URL$/;
      for (const { where, spec } of podTemplates(objs)) {
        for (const c of spec.containers as Obj[]) {
          for (const e of envOf(c)) {
            if (typeof e.value !== 'string') continue;
            // a URL in plain text carries no credentials except through $(VAR) from a Secret
            assert.ok(!/:\/\/[^/@]*:[^/@$]+@/.test(e.value), `${where} ${e.name} holds a password in clear`);
            if (sensitive.test(e.name) && !e.name.endsWith('_URL')) assert.fail(`${where} ${e.name} is written in the manifest: take it from a Secret`);
          }
          for (const a of [...(c.args ?? []), ...(c.command ?? [])]) assert.ok(!/pass|secret/i.test(a) || /^--requirepass$/.test(a) || /^\$\(/.test(a), `${where}: ${a} on the command line`);
        }
      }
    });

    test(`${name}: every image is pinned to a version, the gateway's Ingress host and public URL agree`, (t) => {
      const objs = overlay(t, name);
      if (!objs) return;
      for (const { where, spec } of podTemplates(objs)) {
        for (const c of [...(spec.initContainers ?? []), ...spec.containers] as Obj[]) assert.ok(pinned(c.image), `${where} ${c.name}: ${c.image} is not pinned to a version`);
      }
      const ingress = find(objs, 'Ingress', 'micro-gateway');
      const rule = ingress.spec.rules[0];
      assert.deepEqual(rule.http.paths[0].backend, { service: { name: 'micro-gateway', port: { name: 'http' } } });
      const url = new URL(envNamed(serverContainer(objs), 'MICRO_PUBLIC_URL').value);
      assert.equal(url.hostname, rule.host, 'MICRO_PUBLIC_URL (links in the platform’s email) is the Ingress host');
      assert.equal(url.protocol, ingress.spec.tls ? 'https:' : 'http:');
    });

    test(`${name}: NetworkPolicies let in only the gateway from anywhere, RPC from micro and its customers, engines from the server`, (t) => {
      const objs = overlay(t, name);
      if (!objs) return;
      const policies = ofKind(objs, 'NetworkPolicy');
      const deny = find(objs, 'NetworkPolicy', 'default-deny-ingress');
      assert.deepEqual(deny.spec, { podSelector: {}, policyTypes: ['Ingress'] });
      const server = find(objs, 'NetworkPolicy', 'micro-server');
      const byPort = new Map<number, Obj[] | undefined>();
      for (const rule of server.spec.ingress as Obj[]) for (const p of rule.ports) byPort.set(p.port, rule.from);
      assert.deepEqual([...byPort.keys()].sort(), [8080, 8081]);
      assert.equal(byPort.get(8080), undefined, 'the gateway is public');
      assert.deepEqual(byPort.get(8081), [{ podSelector: {} }, { namespaceSelector: { matchLabels: { [MANAGED]: 'micro' } } }]);
      for (const p of policies) if (p !== deny && p !== server) for (const rule of p.spec.ingress as Obj[]) assert.deepEqual(rule.from, [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'micro-server' } } }], `${p.metadata.name} admits the server only`);
    });
  }

  test('small: NATS, PostgreSQL and Redis run as StatefulSets in micro-system, and the server finds them there', (t) => {
    const objs = overlay(t, 'small');
    if (!objs) return;
    const sets = ofKind(objs, 'StatefulSet');
    assert.deepEqual(sets.map((s) => s.metadata.name).sort(), ['nats', 'postgres', 'redis']);
    for (const s of sets) {
      const svc = find(objs, 'Service', s.spec.serviceName);
      assert.equal(svc.spec.clusterIP, 'None', `${s.metadata.name}'s Service is headless`);
      assert.deepEqual(svc.spec.selector, s.spec.selector.matchLabels);
    }
    // JetStream and PostgreSQL keep their data on volumes; Redis (a cache) keeps none
    for (const n of ['nats', 'postgres']) assert.equal(find(objs, 'StatefulSet', n).spec.volumeClaimTemplates?.[0]?.metadata.name, 'data');
    const nats = find(objs, 'StatefulSet', 'nats').spec.template.spec.containers[0];
    assert.ok(nats.args.includes('--jetstream'), 'JetStream is on');
    const c = serverContainer(objs);
    for (const [env, service, scheme] of [
      ['MICRO_NATS_URL', 'nats', 'nats:'],
      ['MICRO_POSTGRES_URL', 'postgres', 'postgres:'],
      ['MICRO_REDIS_URL', 'redis', 'redis:'],
    ] as const) {
      const url = new URL(envNamed(c, env).value.replace(/\$\([A-Z_]+\)/g, 'x'));
      assert.equal(url.protocol, scheme);
      assert.equal(url.hostname, `${service}.${SYSTEM}.svc.cluster.local`);
      assert.ok((find(objs, 'Service', service).spec.ports as Obj[]).some((p) => p.port === Number(url.port)), `${env} uses a port of Service ${service}`);
    }
    // the engines and the server read the same passwords
    const secretKeys = (spec: Obj) => (spec.containers as Obj[]).flatMap((x) => envOf(x).filter((e) => e.valueFrom?.secretKeyRef).map((e) => `${e.valueFrom.secretKeyRef.name}/${e.valueFrom.secretKeyRef.key}`));
    const serverKeys = secretKeys(serverDeployment(objs).spec.template.spec);
    for (const n of ['postgres', 'redis']) for (const k of secretKeys(find(objs, 'StatefulSet', n).spec.template.spec)) assert.ok(serverKeys.includes(k), `${n}'s ${k} is the server's too`);
  });

  test('production: engines from the Secret micro-engines, none run in the cluster, 3 to 10 replicas, TLS', (t) => {
    const objs = overlay(t, 'production');
    if (!objs) return;
    assert.deepEqual(ofKind(objs, 'StatefulSet'), [], 'no engine runs in the cluster');
    for (const n of ['nats', 'postgres', 'redis']) assert.ok(!objs.some((o) => o.metadata.name === n), `nothing named ${n}`);
    const c = serverContainer(objs);
    for (const [env, key] of [
      ['MICRO_NATS_URL', 'nats-url'],
      ['MICRO_POSTGRES_URL', 'postgres-url'],
      ['MICRO_REDIS_URL', 'redis-url'],
    ]) assert.deepEqual(envNamed(c, env!), { name: env, valueFrom: { secretKeyRef: { name: 'micro-engines', key } } });
    const dep = serverDeployment(objs);
    assert.ok(dep.spec.replicas >= 3);
    const hpa = find(objs, 'HorizontalPodAutoscaler', 'micro-server');
    assert.equal(hpa.apiVersion, 'autoscaling/v2');
    assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'micro-server' });
    assert.ok(hpa.spec.minReplicas >= 3 && hpa.spec.maxReplicas > hpa.spec.minReplicas);
    assert.ok(c.resources.requests.cpu, 'the HPA measures CPU against a request');
    const ingress = find(objs, 'Ingress', 'micro-gateway');
    assert.deepEqual(ingress.spec.tls, [{ hosts: [ingress.spec.rules[0].host], secretName: 'micro-gateway-tls' }]);
    assert.ok(ingress.metadata.annotations['cert-manager.io/cluster-issuer']);
    assert.ok(!JSON.stringify(objs).includes(':latest'), 'no latest tag anywhere');
    assert.match(c.image, /^registry\.example\.com\/micro\/server:/);
    assert.match(envNamed(c, 'MICRO_RUNNER_IMAGE').value, /^registry\.example\.com\/micro\/runner:/, 'the runner image comes from the server’s registry');
  });
});

describe('deploy/kubernetes: bad manifests are reported with what is wrong', () => {
  const kustomization = (dir: string, files: Record<string, string>) => {
    mkdirSync(dir, { recursive: true });
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    return dir;
  };

  test('a kustomization naming a missing file fails with kubectl’s error', (t) => {
    if (kubectlMissing) return t.skip(kubectlMissing);
    const dir = kustomization(join(work, 'missing'), { 'kustomization.yaml': 'resources:\n  - not-there.yaml\n' });
    assert.throws(() => render(dir), (err: Error) => /kubectl kustomize .* failed: .*not-there\.yaml/s.test(err.message));
  });

  test('YAML that does not parse fails with kubectl’s error', (t) => {
    if (kubectlMissing) return t.skip(kubectlMissing);
    const dir = kustomization(join(work, 'broken'), { 'kustomization.yaml': 'resources:\n  - a.yaml\n', 'a.yaml': 'apiVersion: v1\nkind: Namespace\nmetadata: {name: [x\n' });
    assert.throws(() => render(dir), (err: Error) => /failed: .*(yaml|YAML|json|unmarshal|did not find)/s.test(err.message));
  });

  test('an object kubectl renders but the API would refuse fails the schema check, naming the field', (t) => {
    if (kubectlMissing) return t.skip(kubectlMissing);
    const dir = kustomization(join(work, 'invalid'), {
      'kustomization.yaml': 'resources:\n  - d.yaml\n',
      'd.yaml': 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: two\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: c, image: "i:1"}]}\n',
    });
    const [obj] = render(dir);
    assert.throws(() => validateObject(obj), (err: unknown) => err instanceof SchemaError && /spec\.replicas/.test(err.message));
  });

  test('an overlay that asks for a patch of an object the base does not have fails', (t) => {
    if (kubectlMissing) return t.skip(kubectlMissing);
    const dir = kustomization(join(work, 'overlays', 'stray'), {
      'kustomization.yaml': 'resources:\n  - ../../base\npatches:\n  - path: p.yaml\n',
      'p.yaml': 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: not-micro-server, namespace: micro-system}\nspec: {replicas: 9}\n',
    });
    // the real Deployment, in a base of its own (kustomize loads no file outside a kustomization's folder)
    kustomization(join(work, 'base'), { 'kustomization.yaml': 'resources:\n  - server.yaml\n', 'server.yaml': readFileSync(join(DEPLOY, 'kubernetes', 'base', 'server.yaml'), 'utf8') });
    assert.throws(() => render(dir), (err: Error) => /failed: .*not-micro-server/s.test(err.message));
  });
});

/** The instructions of each stage of a Dockerfile (continuation lines joined), the last stage last. */
function stages(file: string): { from: string; lines: string[] }[] {
  const text = readFileSync(join(DEPLOY, file), 'utf8')
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
    .replace(/\\\n/g, ' ');
  const out: { from: string; lines: string[] }[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim().replace(/\s+/g, ' ');
    if (!line) continue;
    if (/^FROM /i.test(line)) out.push({ from: line, lines: [] });
    else if (out.length > 0) out[out.length - 1]!.lines.push(line);
    else assert.match(line, /^ARG /, `${file}: only ARG comes before the first FROM`);
  }
  return out;
}

describe('deploy/*.Dockerfile: what the images hold, read from the files', () => {
  const BUILD_TOOLS = /(?:^|\s)(?:python3?|make|g\+\+|gcc|clang|build-essential|node-gyp)(?=\s|$)/;

  for (const file of ['server.Dockerfile', 'runner.Dockerfile']) {
    test(`${file}: built from the lock file in a build stage; the final stage runs as uid 10001 with no build tools`, () => {
      const all = stages(file);
      assert.ok(all.length >= 2, 'multi-stage');
      const text = readFileSync(join(DEPLOY, file), 'utf8');
      assert.match(text, /^ARG NODE_IMAGE=node:20-bookworm-slim$/m);
      for (const s of all) assert.match(s.from, /^FROM \$\{NODE_IMAGE\}( AS \w+)?$/, 'every stage is the pinned Node.js 20 image');
      const build = all.slice(0, -1).flatMap((s) => s.lines);
      const final = all[all.length - 1]!.lines;
      assert.ok(build.some((l) => /^RUN npm ci\b/.test(l)), 'npm ci: exactly the lock file');
      assert.ok(build.some((l) => l.includes('tsc -b tsconfig.build.json')), 'compiled as the project builds');
      assert.ok(build.some((l) => /^RUN node deploy\/stage\.mjs --out \/stage\/app /.test(l)), 'only what runs is staged');
      const users = final.filter((l) => /^USER /.test(l));
      assert.deepEqual(users, ['USER 10001:10001'], 'the last USER is a numeric non-root uid (runAsNonRoot can check it)');
      const lastCopy = final.map((l) => l.startsWith('COPY ')).lastIndexOf(true);
      assert.ok(final.findIndex((l) => l.startsWith('USER ')) > lastCopy, 'USER after the last COPY');
      for (const l of final) {
        if (/^RUN /.test(l)) assert.ok(!BUILD_TOOLS.test(l), `final stage installs no build tools: ${l}`);
        if (/^RUN /.test(l)) assert.ok(!/\bnpm (?:ci|install)\b/.test(l), `final stage installs no packages: ${l}`);
        if (/^COPY --from=/.test(l)) assert.match(l, /^COPY --from=build \/stage\/app \/app$/, `final stage takes only the staged files: ${l}`);
        if (/^COPY (?!--from)/.test(l)) assert.match(l, /^COPY deploy\/runner\//, `nothing else of the source tree: ${l}`);
        assert.ok(!/\bADD\b/.test(l.split(' ')[0]!), 'no ADD');
      }
      assert.ok(!text.includes(':latest'), 'no latest tag');
    });
  }

  test('server.Dockerfile: runs `micro server` through the CLI’s real entry, listening inside the pod', () => {
    const final = stages('server.Dockerfile').at(-1)!.lines;
    const cli = JSON.parse(readFileSync(join(ROOT, 'packages', 'cli', 'package.json'), 'utf8')) as { bin: Record<string, string> };
    const entry = join('packages', 'cli', cli.bin.micro!.replace(/^\.\//, ''));
    assert.ok(existsSync(join(ROOT, entry)), `${entry} exists`);
    assert.ok(final.includes(`ENTRYPOINT ["node", "/app/${entry}"]`), `ENTRYPOINT runs ${entry}`);
    assert.ok(final.includes('CMD ["server"]'));
    assert.ok(final.includes('EXPOSE 8080 8081'));
    const env = final.filter((l) => l.startsWith('ENV ')).join(' ');
    assert.match(env, /MICRO_SERVER_ADDRESS=tcp:\/\/0\.0\.0\.0:8081/);
    assert.match(env, /MICRO_GATEWAY_ADDRESS=0\.0\.0\.0:8080/);
    assert.match(env, /MICRO_HOME=\/var\/lib\/micro/);
    // the dashboard the gateway serves is built and staged
    const build = stages('server.Dockerfile').slice(0, -1).flatMap((s) => s.lines);
    assert.ok(build.some((l) => l.includes('vite build packages/web')));
    assert.ok(build.some((l) => /stage\.mjs .* packages\/cli packages\/web$/.test(l)));
  });

  test('runner.Dockerfile: /micro/runner.js is copied in and imports the runner of the staged server package', (t) => {
    const final = stages('runner.Dockerfile').at(-1)!.lines;
    assert.ok(final.includes('COPY deploy/runner/runner.js deploy/runner/package.json /micro/'), 'the runner entry is in the image');
    assert.ok(final.includes('CMD ["node", "/micro/runner.js"]'));
    const entry = readFileSync(join(DEPLOY, 'runner', 'runner.js'), 'utf8');
    assert.equal(entry, "import '/app/packages/server/dist/runtime/kubernetes/runner.js';\n");
    assert.equal((JSON.parse(readFileSync(join(DEPLOY, 'runner', 'package.json'), 'utf8')) as { type: string }).type, 'module', 'runner.js is an ES module');
    const build = stages('runner.Dockerfile').slice(0, -1).flatMap((s) => s.lines);
    assert.ok(build.some((l) => /stage\.mjs --out \/stage\/app packages\/server services\/kit$/.test(l)), 'the server package is staged at /app/packages/server');
    const env = final.filter((l) => l.startsWith('ENV ')).join(' ');
    assert.match(env, /HOME=\/work/);
    assert.ok(final.includes('WORKDIR /work'));
    // the driver's runner module is compiled to the path the entry imports
    const source = join(ROOT, 'packages', 'server', 'src', 'runtime', 'kubernetes', 'runner.ts');
    if (existsSync(source)) assert.ok(existsSync(join(ROOT, 'packages', 'server', 'dist', 'runtime', 'kubernetes', 'runner.js')), 'runner.ts is built where runner.js imports it');
    else t.diagnostic('packages/server/src/runtime/kubernetes/runner.ts is not in this tree yet: only the path is checked');
  });

  test('.dockerignore keeps installed packages, build output and history out of the build context', () => {
    const lines = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    for (const p of ['.git', '**/node_modules', '**/dist', '**/*.tsbuildinfo', 'test-artifacts']) assert.ok(lines.includes(p), `${p} is ignored`);
    // what the build needs is not ignored
    for (const p of ['package-lock.json', 'deploy', 'deploy/stage.mjs', 'packages', 'tsconfig.build.json']) assert.ok(!lines.includes(p), `${p} is in the context`);
  });
});

describe('deploy/stage.mjs: what runs of some workspaces, with the packages they reach', () => {
  /** A small monorepo: workspace a (→ b, x@2 nested), b (→ y), y (→ x@1), a dev-only z, an optional missing one. */
  function monorepo(): string {
    const root = mkdtempSync(join(work, 'mono-'));
    const file = (path: string, text: string) => {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), text);
    };
    const pkg = (path: string, name: string, extra: Obj = {}) => file(`${path}/package.json`, JSON.stringify({ name, version: '1.0.0', type: 'module', ...extra }));
    pkg('packages/a', '@t/a', { main: 'dist/index.js' });
    file('packages/a/dist/index.js', "import { b } from '@t/b';\nimport x from 'x';\nconsole.log(`${b()} ${x}`);\n");
    file('packages/a/dist/index.test.js', 'throw new Error("a test");\n');
    file('packages/a/dist/.tsbuildinfo', '{}');
    file('packages/a/src/index.ts', 'source');
    file('packages/a/tsconfig.json', '{}');
    file('packages/a/templates/t.txt', 'kept');
    pkg('packages/b', '@t/b', { main: 'dist/index.js' });
    file('packages/b/dist/index.js', "import y from 'y';\nexport const b = () => `b+${y}`;\n");
    pkg('packages/a/node_modules/x', 'x', { version: '2.0.0', main: 'index.js' });
    file('packages/a/node_modules/x/index.js', 'export default "x2";\n');
    pkg('node_modules/x', 'x', { main: 'index.js' });
    file('node_modules/x/index.js', 'export default "x1";\n');
    pkg('node_modules/y', 'y', { main: 'index.js' });
    file('node_modules/y/index.js', "import x from 'x';\nexport default `y(${x})`;\n");
    pkg('node_modules/z', 'z');
    file('node_modules/z/index.js', '');
    mkdirSync(join(root, 'node_modules', '@t'), { recursive: true });
    const lock = {
      name: 't',
      lockfileVersion: 3,
      packages: {
        '': { name: 't', workspaces: ['packages/*'], devDependencies: { z: '1' } },
        'packages/a': { name: '@t/a', version: '1.0.0', dependencies: { '@t/b': '1.0.0', x: '^2' }, optionalDependencies: { gone: '1' }, devDependencies: { z: '1' } },
        'packages/a/node_modules/x': { version: '2.0.0' },
        'packages/b': { name: '@t/b', version: '1.0.0', dependencies: { y: '1' } },
        'node_modules/@t/a': { resolved: 'packages/a', link: true },
        'node_modules/@t/b': { resolved: 'packages/b', link: true },
        'node_modules/x': { version: '1.0.0' },
        'node_modules/y': { version: '1.0.0', dependencies: { x: '1' } },
        'node_modules/z': { version: '1.0.0', dev: true },
        'node_modules/gone': { version: '1.0.0', optional: true, os: ['aix'] },
      },
    };
    file('package-lock.json', JSON.stringify(lock));
    return root;
  }
  const stage = (root: string, args: string[]) => spawnSync(process.execPath, [join(DEPLOY, 'stage.mjs'), '--root', root, ...args], { encoding: 'utf8', timeout: 30_000 });

  test('copies built files and the packages reached, as Node resolves them, and nothing else', () => {
    const root = monorepo();
    const out = join(root, 'out');
    const run = stage(root, ['--out', out, 'packages/a']);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /2 workspaces and 3 packages/);
    for (const p of ['packages/a/dist/index.js', 'packages/a/package.json', 'packages/a/templates/t.txt', 'packages/b/dist/index.js', 'packages/a/node_modules/x/index.js', 'node_modules/x/index.js', 'node_modules/y/index.js']) assert.ok(existsSync(join(out, p)), `${p} is staged`);
    for (const p of ['packages/a/src', 'packages/a/tsconfig.json', 'packages/a/dist/index.test.js', 'packages/a/dist/.tsbuildinfo', 'node_modules/z', 'node_modules/gone', 'package-lock.json']) assert.ok(!existsSync(join(out, p)), `${p} is left out`);
    assert.ok(lstatSync(join(out, 'node_modules/@t/b')).isSymbolicLink());
    assert.equal(readlinkSync(join(out, 'node_modules/@t/b')), join('..', '..', 'packages', 'b'));
    // the copy runs, each package finding its own version of x
    const ran = spawnSync(process.execPath, [join(out, 'packages/a/dist/index.js')], { encoding: 'utf8' });
    assert.equal(ran.stderr, '');
    assert.equal(ran.stdout, 'b+y(x1) x2\n');
  });

  test('wrong arguments, an unknown workspace and a lock file that is missing, old or short are refused with what to do', () => {
    const root = monorepo();
    const out = join(root, 'out2');
    const refused = (args: string[], pattern: RegExp, at = root) => {
      const run = stage(at, args);
      assert.equal(run.status, 2, `${args.join(' ')}: ${run.stdout}`);
      assert.match(run.stderr, pattern);
    };
    refused(['packages/a'], /--out <folder> is required/);
    refused(['--out', out], /name at least one workspace/);
    refused(['--out', out, '--force', 'packages/a'], /unknown option --force/);
    refused(['--out', out, 'packages/nope'], /packages\/nope is not a workspace of package-lock\.json/);
    refused(['--out', out, 'node_modules/x'], /node_modules\/x is not a workspace/);
    refused(['--out', out, '../../etc'], /is not a workspace/);
    const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as Obj;
    lock.packages['packages/b'].dependencies.w = '1';
    writeFileSync(join(root, 'package-lock.json'), JSON.stringify(lock));
    refused(['--out', out, 'packages/a'], /packages\/b needs w, which package-lock\.json does not have/);
    rmSync(join(root, 'node_modules', 'y'), { recursive: true });
    delete lock.packages['packages/b'].dependencies.w;
    writeFileSync(join(root, 'package-lock.json'), JSON.stringify(lock));
    refused(['--out', out, 'packages/a'], /node_modules\/y is not installed: run npm ci first/);
    writeFileSync(join(root, 'package-lock.json'), JSON.stringify({ lockfileVersion: 1, dependencies: {} }));
    refused(['--out', out, 'packages/a'], /lockfileVersion 2 or 3/);
    writeFileSync(join(root, 'package-lock.json'), '{not json');
    refused(['--out', out, 'packages/a'], /is not JSON/);
    rmSync(join(root, 'package-lock.json'));
    refused(['--out', out, 'packages/a'], /package-lock\.json is missing/);
  });
});
