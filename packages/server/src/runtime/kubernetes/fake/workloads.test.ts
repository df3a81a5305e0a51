import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PatchStrategy, setHeaderOptions, type V1Deployment, type V1Job, type V1Pod } from '@kubernetes/client-node';
import { type FakeKubernetes, type KubeletFunction, startFakeKubernetes } from './index.js';
import { type Clients, clients, refused, scripts, until } from './testkit.js';

const files = scripts({
  'serve.js': `console.log('serving ' + process.env.VERSION); process.on('SIGTERM', () => process.exit(0)); setInterval(() => {}, 1000);`,
  // ready when the flag file of its version exists
  'ready.js': `process.exit(require('node:fs').existsSync(process.env.FLAGS + '/' + process.env.VERSION) ? 0 : 1);`,
  'ok.js': `console.log('built'); process.exit(0);`,
  'fail.js': `console.error('build failed'); process.exit(1);`,
  'hang.js': `setInterval(() => {}, 1000);`,
});

/** image `app:<version>` serves; exec probe `ready` checks its version's flag; image `job/<script>` runs a script once */
const kubelet: KubeletFunction = (container, _pod, env) => {
  if (container.command?.[0] === 'ready') return { command: process.execPath, args: [files.path('ready.js')], env: { ...env, FLAGS: files.dir } as Record<string, string> };
  const app = /^app:(.+)$/.exec(container.image);
  if (app) return { command: process.execPath, args: [files.path('serve.js')], env: { VERSION: app[1] as string } as Record<string, string> };
  const job = /^job\/(.+)$/.exec(container.image);
  if (job) return { command: process.execPath, args: [files.path(job[1] as string)] };
  return undefined;
};

function deployment(name: string, replicas: number, image: string, probe = false): V1Deployment {
  const version = image.split(':')[1] ?? '';
  return {
    metadata: { name },
    spec: {
      replicas,
      progressDeadlineSeconds: 20,
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          terminationGracePeriodSeconds: 1,
          // three failures in a row before a pod is unready: a probe's process starting slowly on a loaded machine is not one
          containers: [{ name: 'app', image, env: [{ name: 'VERSION', value: version }], ...(probe ? { readinessProbe: { exec: { command: ['ready'] }, periodSeconds: 2, failureThreshold: 3 } } : {}) }],
        },
      },
    },
  };
}

function job(name: string, script: string, spec: Partial<NonNullable<V1Job['spec']>> = {}, restartPolicy = 'Never'): V1Job {
  return { metadata: { name }, spec: { template: { spec: { restartPolicy, containers: [{ name: 'build', image: `job/${script}` }] } }, ...spec } };
}

describe('controllers: Deployments, ReplicaSets and Jobs', () => {
  let fake: FakeKubernetes;
  let c: Clients;
  const ns = 'apps';
  before(async () => {
    fake = await startFakeKubernetes({ kubelet, secondMs: 50 });
    c = clients(fake);
    await c.core.createNamespace({ body: { metadata: { name: ns } } });
  });
  after(async () => {
    await fake.close();
    files.remove();
  });

  const readDeployment = (name: string) => c.apps.readNamespacedDeployment({ name, namespace: ns });
  const podsOf = async (app: string) => (await c.core.listNamespacedPod({ namespace: ns, labelSelector: `app=${app}` })).items;

  test('a Deployment makes a ReplicaSet named by its template hash, and pods owned by it; its status says when it is available', async () => {
    await c.apps.createNamespacedDeployment({ namespace: ns, body: deployment('web', 3, 'app:v1') });
    const d = await until('available', async () => {
      const x = await readDeployment('web');
      return x.status?.availableReplicas === 3 && x.status.conditions?.find((cd) => cd.type === 'Progressing')?.reason === 'NewReplicaSetAvailable' && x;
    });
    assert.equal(d.status?.observedGeneration, 1);
    assert.equal(d.status?.updatedReplicas, 3);
    assert.equal(d.status?.unavailableReplicas ?? 0, 0);
    assert.equal(d.status?.conditions?.find((cd) => cd.type === 'Available')?.status, 'True');
    assert.equal(d.metadata?.annotations?.['deployment.kubernetes.io/revision'], '1');
    const rss = (await c.apps.listNamespacedReplicaSet({ namespace: ns, labelSelector: 'app=web' })).items;
    assert.equal(rss.length, 1);
    const hash = rss[0]?.metadata?.labels?.['pod-template-hash'] ?? '';
    assert.match(hash, /^[bcdfghjklmnpqrstvwxz2456789]+$/);
    assert.equal(rss[0]?.metadata?.name, `web-${hash}`);
    assert.equal(rss[0]?.metadata?.ownerReferences?.[0]?.kind, 'Deployment');
    const pods = await podsOf('web');
    assert.equal(pods.length, 3);
    for (const p of pods) {
      assert.equal(p.metadata?.labels?.['pod-template-hash'], hash);
      assert.equal(p.metadata?.ownerReferences?.[0]?.name, `web-${hash}`);
      assert.equal(p.metadata?.ownerReferences?.[0]?.controller, true);
      assert.match(p.metadata?.name ?? '', new RegExp(`^web-${hash}-[bcdfghjklmnpqrstvwxz2456789]{5}$`));
    }
    const scaling = await c.core.listNamespacedEvent({ namespace: ns, fieldSelector: 'involvedObject.name=web,reason=ScalingReplicaSet' });
    assert.match(scaling.items[0]?.message ?? '', /^Scaled up replica set web-\w+ from 0 to 3$/);
  });

  test('a rolling update replaces pods one at a time, an old pod going only when a new one is Ready', async () => {
    writeFileSync(join(files.dir, 'v1'), '');
    await c.apps.createNamespacedDeployment({ namespace: ns, body: deployment('roll', 2, 'app:v1', true) });
    await until('v1 available', async () => (await readDeployment('roll')).status?.availableReplicas === 2);
    // watch every pod change through the rollout
    const timeline: { ready: number; active: number }[] = [];
    const pods = new Map<string, V1Pod>();
    const w = await c.watch.watch(`/api/v1/namespaces/${ns}/pods`, { labelSelector: 'app=roll' }, (type, p: V1Pod) => {
      if (type === 'DELETED') pods.delete(p.metadata?.name ?? '');
      else pods.set(p.metadata?.name ?? '', p);
      const active = [...pods.values()].filter((x) => !x.metadata?.deletionTimestamp && !['Succeeded', 'Failed'].includes(x.status?.phase ?? ''));
      const ready = active.filter((x) => x.status?.conditions?.some((cd) => cd.type === 'Ready' && cd.status === 'True'));
      timeline.push({ ready: ready.length, active: active.length });
    }, () => {});
    await until('the watch has the pods', () => pods.size === 2);
    // from here on: the rollout
    timeline.length = 0;
    await c.apps.patchNamespacedDeployment({ name: 'roll', namespace: ns, body: { spec: { template: { spec: { containers: [{ name: 'app', image: 'app:v2', env: [{ name: 'VERSION', value: 'v2' }] }] } } } } }, setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch));
    // v2 is not ready yet: one surge pod, no old pod goes
    await until('a surge pod', async () => (await podsOf('roll')).length === 3);
    await new Promise((r) => setTimeout(r, 300));
    let d = await readDeployment('roll');
    assert.equal(d.status?.updatedReplicas, 1);
    assert.equal(d.status?.availableReplicas, 2);
    assert.equal((await podsOf('roll')).filter((p) => !p.metadata?.deletionTimestamp).length, 3);
    writeFileSync(join(files.dir, 'v2'), '');
    d = await until('v2 rolled out', async () => {
      const x = await readDeployment('roll');
      return x.status?.updatedReplicas === 2 && x.status.availableReplicas === 2 && x.status.replicas === 2 && x;
    });
    w.abort();
    assert.equal(d.metadata?.annotations?.['deployment.kubernetes.io/revision'], '2');
    assert.ok(timeline.length > 4);
    for (const t of timeline) {
      assert.ok(t.active <= 3, `maxSurge 1: never more than 3 pods: ${JSON.stringify(timeline)}`);
      assert.ok(t.ready >= 2, `maxUnavailable 0: never fewer than 2 ready pods: ${JSON.stringify(timeline)}`);
    }
    const logs = await Promise.all((await podsOf('roll')).map((p) => c.core.readNamespacedPodLog({ name: p.metadata?.name ?? '', namespace: ns })));
    assert.deepEqual(logs, ['serving v2\n', 'serving v2\n']);
    const rss = (await c.apps.listNamespacedReplicaSet({ namespace: ns, labelSelector: 'app=roll' })).items;
    assert.deepEqual(rss.map((rs) => rs.spec?.replicas).sort(), [0, 2]);
  });

  test('a rollout whose pods never become ready keeps the old pods and reports ProgressDeadlineExceeded', async () => {
    writeFileSync(join(files.dir, 'v1'), '');
    await c.apps.createNamespacedDeployment({ namespace: ns, body: deployment('stuck', 1, 'app:v1', true) });
    await until('v1 available', async () => (await readDeployment('stuck')).status?.availableReplicas === 1);
    const body = deployment('stuck', 1, 'app:never', true);
    await c.apps.patchNamespacedDeployment({ name: 'stuck', namespace: ns, body: { spec: body.spec } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    const d = await until(
      'the deadline',
      async () => {
        const x = await readDeployment('stuck');
        return x.status?.conditions?.find((cd) => cd.type === 'Progressing')?.reason === 'ProgressDeadlineExceeded' && x;
      },
      10_000,
    );
    const progressing = d.status?.conditions?.find((cd) => cd.type === 'Progressing');
    assert.equal(progressing?.status, 'False');
    assert.match(progressing?.message ?? '', /^ReplicaSet "stuck-\w+" has timed out progressing\.$/);
    assert.equal(d.status?.availableReplicas, 1);
    assert.equal(d.status?.conditions?.find((cd) => cd.type === 'Available')?.status, 'True');
    assert.equal(d.status?.unavailableReplicas, 1);
  });

  test('going back to an older template reuses its ReplicaSet as the newest revision', async () => {
    const set = (image: string) => c.apps.patchNamespacedDeployment({ name: 'back', namespace: ns, body: { spec: { template: { spec: { containers: [{ name: 'app', image }] } } } } }, setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch));
    await c.apps.createNamespacedDeployment({ namespace: ns, body: deployment('back', 1, 'app:a') });
    await until('a', async () => (await readDeployment('back')).status?.updatedReplicas === 1);
    const first = (await c.apps.listNamespacedReplicaSet({ namespace: ns, labelSelector: 'app=back' })).items[0]?.metadata?.name;
    await set('app:b');
    await until('b rolled out', async () => {
      const x = await readDeployment('back');
      return x.metadata?.annotations?.['deployment.kubernetes.io/revision'] === '2' && x.status?.updatedReplicas === 1 && x.status.replicas === 1;
    });
    await set('app:a');
    await until('back on a', async () => {
      const x = await readDeployment('back');
      return x.metadata?.annotations?.['deployment.kubernetes.io/revision'] === '3' && x.status?.updatedReplicas === 1 && x.status.replicas === 1;
    });
    const rss = (await c.apps.listNamespacedReplicaSet({ namespace: ns, labelSelector: 'app=back' })).items;
    assert.equal(rss.length, 2);
    const a = rss.find((rs) => rs.metadata?.name === first);
    assert.equal(a?.metadata?.annotations?.['deployment.kubernetes.io/revision'], '3');
    assert.equal(a?.spec?.replicas, 1);
  });

  test('Recreate: every old pod is gone before a new one starts', async () => {
    const body = deployment('recreated', 2, 'app:v1');
    body.spec!.strategy = { type: 'Recreate' };
    await c.apps.createNamespacedDeployment({ namespace: ns, body });
    await until('v1 up', async () => (await readDeployment('recreated')).status?.availableReplicas === 2);
    const seen: { v1: number; v2: number }[] = [];
    const w = await c.watch.watch(`/api/v1/namespaces/${ns}/pods`, { labelSelector: 'app=recreated' }, () => {}, () => {});
    const poll = setInterval(() => {
      void podsOf('recreated').then((pods) => {
        const live = pods.filter((p) => p.status?.phase === 'Running' || p.status?.phase === 'Pending');
        seen.push({ v1: live.filter((p) => p.spec?.containers[0]?.image === 'app:v1').length, v2: live.filter((p) => p.spec?.containers[0]?.image === 'app:v2').length });
      });
    }, 10);
    await c.apps.patchNamespacedDeployment({ name: 'recreated', namespace: ns, body: { spec: { template: { spec: { containers: [{ name: 'app', image: 'app:v2' }] } } } } }, setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch));
    await until('v2 up', async () => (await readDeployment('recreated')).status?.updatedReplicas === 2 && (await readDeployment('recreated')).status?.availableReplicas === 2);
    clearInterval(poll);
    w.abort();
    assert.ok(seen.every((s) => s.v1 === 0 || s.v2 === 0), JSON.stringify(seen));
  });

  test('scale through the /scale subresource, and scale down', async () => {
    await c.apps.createNamespacedDeployment({ namespace: ns, body: deployment('scaled', 1, 'idle') });
    const scale = await c.apps.readNamespacedDeploymentScale({ name: 'scaled', namespace: ns });
    assert.equal(scale.spec?.replicas, 1);
    assert.equal(scale.status?.selector, 'app=scaled');
    await c.apps.replaceNamespacedDeploymentScale({ name: 'scaled', namespace: ns, body: { metadata: { name: 'scaled', namespace: ns }, spec: { replicas: 4 } } });
    await until('4 pods', async () => (await readDeployment('scaled')).status?.readyReplicas === 4);
    await c.apps.patchNamespacedDeployment({ name: 'scaled', namespace: ns, body: { spec: { replicas: 1 } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    await until('1 pod', async () => (await podsOf('scaled')).length === 1);
  });

  test('deleting a Deployment deletes its ReplicaSets and pods (Background); Foreground keeps it until they are gone', async () => {
    await c.apps.createNamespacedDeployment({ namespace: ns, body: deployment('gone', 2, 'app:v1') });
    await until('2 pods', async () => (await podsOf('gone')).length === 2);
    await c.apps.deleteNamespacedDeployment({ name: 'gone', namespace: ns });
    await until('no pods', async () => (await podsOf('gone')).length === 0);
    assert.equal((await c.apps.listNamespacedReplicaSet({ namespace: ns, labelSelector: 'app=gone' })).items.length, 0);

    await c.apps.createNamespacedDeployment({ namespace: ns, body: deployment('fg', 1, 'app:v1') });
    await until('1 pod', async () => (await podsOf('fg')).length === 1);
    await c.apps.deleteNamespacedDeployment({ name: 'fg', namespace: ns, propagationPolicy: 'Foreground' });
    const during = await readDeployment('fg');
    assert.ok(during.metadata?.deletionTimestamp);
    assert.deepEqual(during.metadata?.finalizers, ['foregroundDeletion']);
    await until('the deployment goes last', async () => (await refused(readDeployment('fg'))).code === 404);
    assert.equal((await podsOf('fg')).length, 0);
  });

  test('a Job runs its pod to completion: SuccessCriteriaMet, Complete, succeeded, completionTime', async () => {
    await c.batch.createNamespacedJob({ namespace: ns, body: job('build-ok', 'ok.js') });
    const j = await until('complete', async () => {
      const x = await c.batch.readNamespacedJob({ name: 'build-ok', namespace: ns });
      return x.status?.conditions?.some((cd) => cd.type === 'Complete' && cd.status === 'True') && x;
    });
    assert.equal(j.status?.succeeded, 1);
    assert.equal(j.status?.failed ?? 0, 0);
    assert.ok(j.status?.completionTime);
    assert.deepEqual(j.status?.conditions?.map((cd) => cd.type), ['SuccessCriteriaMet', 'Complete']);
    assert.equal(j.spec?.selector?.matchLabels?.['batch.kubernetes.io/controller-uid'], j.metadata?.uid);
    const pods = (await c.core.listNamespacedPod({ namespace: ns, labelSelector: 'job-name=build-ok' })).items;
    assert.equal(pods.length, 1);
    assert.equal(pods[0]?.status?.phase, 'Succeeded');
    assert.equal(await c.core.readNamespacedPodLog({ name: pods[0]?.metadata?.name ?? '', namespace: ns }), 'built\n');
  });

  test('a failing Job is retried until backoffLimit, then Failed with BackoffLimitExceeded', async () => {
    await c.batch.createNamespacedJob({ namespace: ns, body: job('build-bad', 'fail.js', { backoffLimit: 1 }) });
    const j = await until('failed', async () => {
      const x = await c.batch.readNamespacedJob({ name: 'build-bad', namespace: ns });
      return x.status?.conditions?.some((cd) => cd.type === 'Failed' && cd.status === 'True') && x;
    });
    assert.equal(j.status?.failed, 2);
    const failedCond = j.status?.conditions?.find((cd) => cd.type === 'Failed');
    assert.equal(failedCond?.reason, 'BackoffLimitExceeded');
    assert.equal(failedCond?.message, 'Job has reached the specified backoff limit');
    assert.ok(j.status?.conditions?.some((cd) => cd.type === 'FailureTarget'));
    const pods = (await c.core.listNamespacedPod({ namespace: ns, labelSelector: 'job-name=build-bad' })).items;
    assert.equal(pods.length, 2);
    assert.ok(pods.every((p) => p.status?.phase === 'Failed'));
  });

  test('activeDeadlineSeconds fails a Job that runs too long, and kills its pod', async () => {
    await c.batch.createNamespacedJob({ namespace: ns, body: job('build-slow', 'hang.js', { activeDeadlineSeconds: 2 }) });
    const j = await until('failed', async () => {
      const x = await c.batch.readNamespacedJob({ name: 'build-slow', namespace: ns });
      return x.status?.conditions?.some((cd) => cd.type === 'Failed' && cd.status === 'True') && x;
    });
    assert.equal(j.status?.conditions?.find((cd) => cd.type === 'Failed')?.reason, 'DeadlineExceeded');
    await until('its pod stopped', async () => (await c.core.listNamespacedPod({ namespace: ns, labelSelector: 'job-name=build-slow' })).items.every((p) => p.status?.phase === 'Failed' || p.metadata?.deletionTimestamp));
  });

  test('OnFailure: container restarts count against backoffLimit', async () => {
    await c.batch.createNamespacedJob({ namespace: ns, body: job('build-restarts', 'fail.js', { backoffLimit: 2 }, 'OnFailure') });
    const j = await until('failed', async () => {
      const x = await c.batch.readNamespacedJob({ name: 'build-restarts', namespace: ns });
      return x.status?.conditions?.some((cd) => cd.type === 'Failed' && cd.status === 'True') && x;
    }, 15_000);
    assert.equal(j.status?.conditions?.find((cd) => cd.type === 'Failed')?.reason, 'BackoffLimitExceeded');
  });

  test('ttlSecondsAfterFinished deletes a finished Job and its pods', async () => {
    await c.batch.createNamespacedJob({ namespace: ns, body: job('build-ttl', 'ok.js', { ttlSecondsAfterFinished: 2 }) });
    await until('gone', async () => (await refused(c.batch.readNamespacedJob({ name: 'build-ttl', namespace: ns }))).code === 404);
    await until('its pods gone', async () => (await c.core.listNamespacedPod({ namespace: ns, labelSelector: 'job-name=build-ttl' })).items.length === 0);
  });

  test('deleting a Job without a propagationPolicy orphans its pods, with the API server\'s warning', async () => {
    await c.batch.createNamespacedJob({ namespace: ns, body: job('build-orphan', 'ok.js') });
    await until('complete', async () => (await c.batch.readNamespacedJob({ name: 'build-orphan', namespace: ns })).status?.succeeded === 1);
    const res = await fetch(`${fake.url}/apis/batch/v1/namespaces/${ns}/jobs/build-orphan`, { method: 'DELETE', headers: { Authorization: `Bearer ${fake.token}` } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('warning') ?? '', /child pods are preserved by default when jobs are deleted/);
    await until('gone', async () => (await refused(c.batch.readNamespacedJob({ name: 'build-orphan', namespace: ns }))).code === 404);
    const pods = await until('orphaned', async () => {
      const list = (await c.core.listNamespacedPod({ namespace: ns, labelSelector: 'job-name=build-orphan' })).items;
      return list.length === 1 && !list[0]?.metadata?.ownerReferences && list;
    });
    assert.equal(pods[0]?.status?.phase, 'Succeeded');
  });
});
