import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { type FakeKubernetes, type KubeletFunction, startFakeKubernetes } from './index.js';
import { type Clients, clients, refused, scripts, until } from './testkit.js';

const files = scripts({
  // prints its environment's GREETING and a line every 20 ms; exits 0 on SIGTERM after saying so
  'talker.js': `
    console.log('hello ' + process.env.GREETING + ' from ' + process.env.POD + ' in ' + process.env.NS + ' at ' + process.env.IP);
    let i = 0;
    const t = setInterval(() => console.log('tick ' + i++), 20);
    process.on('SIGTERM', () => { console.log('bye'); clearInterval(t); process.exit(0); });
  `,
  'crash.js': `console.error('boom'); process.exit(3);`,
  'stubborn.js': `process.on('SIGTERM', () => console.log('ignoring SIGTERM')); console.log('up'); setInterval(() => {}, 1000);`,
  'server.js': `
    const http = require('node:http');
    let ready = false;
    setTimeout(() => { ready = true; }, Number(process.env.READY_AFTER_MS || 0));
    http.createServer((q, s) => { s.writeHead(ready ? 200 : 503); s.end(); }).listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening'));
  `,
  'flag.js': `process.exit(require('node:fs').existsSync(process.env.FLAG) ? 0 : 1);`,
  'done.js': `console.log('work done'); process.exit(0);`,
  'mark.js': `require('node:fs').writeFileSync(process.env.MARK, 'stopping'); process.exit(0);`,
  'last-words.js': `require('node:fs').writeFileSync(process.env.MESSAGE_FILE, 'database unreachable'); console.log('noise'); process.exit(2);`,
  'env.js': `console.log(JSON.stringify({ env: process.env, argv: process.argv.slice(2) })); setInterval(() => {}, 1000);`,
});

/** image `node/<script>` runs that script; exec probes `check <script>` run a script; image `missing/...` cannot be pulled */
const kubelet: KubeletFunction = (container, _pod, env) => {
  if (container.image.startsWith('missing/')) throw new Error(`rpc error: code = NotFound desc = ${container.image}: not found`);
  if (container.command?.[0] === 'check') return { command: process.execPath, args: [files.path(container.command[1] as string)], env: { ...env } };
  if (container.image === 'pause') return undefined;
  if (container.image === 'env') return { command: process.execPath, args: [files.path('env.js'), ...(container.args ?? [])] };
  const m = /^node\/(.+)$/.exec(container.image);
  if (!m) return undefined;
  return { command: process.execPath, args: [files.path(m[1] as string)], env: { PATH: process.env.PATH ?? '' }, ...(env.MESSAGE_FILE ? { terminationMessageFile: env.MESSAGE_FILE } : {}) };
};

function pod(name: string, image: string, extra: Partial<NonNullable<V1Pod['spec']>> = {}, env: NonNullable<NonNullable<V1Pod['spec']>['containers'][number]['env']> = []): V1Pod {
  return { metadata: { name }, spec: { terminationGracePeriodSeconds: 2, containers: [{ name: 'main', image, env }], ...extra } };
}

test('bad options are refused with what is wrong', async () => {
  await assert.rejects(startFakeKubernetes({ secondMs: 0 }), /secondMs must be a number of at least 1, not 0/);
  await assert.rejects(startFakeKubernetes({ history: -1 }), /history must be/);
  await assert.rejects(startFakeKubernetes({ kubelet: 'node' as never }), /kubelet must be a function/);
});

describe('the fake kubelet runs pods as local processes', () => {
  let fake: FakeKubernetes;
  let c: Clients;
  before(async () => {
    fake = await startFakeKubernetes({ kubelet, secondMs: 50 });
    c = clients(fake);
    await c.core.createNamespace({ body: { metadata: { name: 'k' } } });
    await c.core.createNamespacedSecret({ namespace: 'k', body: { metadata: { name: 'creds' }, stringData: { greeting: 'world' } } });
  });
  after(async () => {
    await fake.close();
    files.remove();
  });

  const read = (name: string) => c.core.readNamespacedPod({ name, namespace: 'k' });

  test('a pod is scheduled, runs, becomes Ready, and its env comes from Secrets and the downward API', async () => {
    const env = [
      { name: 'GREETING', valueFrom: { secretKeyRef: { name: 'creds', key: 'greeting' } } },
      { name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'NS', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      { name: 'IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
    ];
    await c.core.createNamespacedPod({ namespace: 'k', body: pod('talker', 'node/talker.js', {}, env) });
    const p = await until('Ready', async () => {
      const x = await read('talker');
      return x.status?.conditions?.find((cd) => cd.type === 'Ready')?.status === 'True' && x;
    });
    assert.equal(p.spec?.nodeName, 'fake-node');
    assert.equal(p.status?.phase, 'Running');
    assert.equal(p.status?.podIP, '127.0.0.1');
    assert.equal(p.status?.qosClass, 'BestEffort');
    const cs = p.status?.containerStatuses?.[0];
    assert.equal(cs?.ready, true);
    assert.equal(cs?.restartCount, 0);
    assert.ok(cs?.state?.running?.startedAt);
    assert.match(cs?.containerID ?? '', /^containerd:\/\//);
    // the ServiceAccount admission mounted the token
    assert.ok(p.spec?.volumes?.some((v) => v.name.startsWith('kube-api-access-')));
    const logs = await until('the greeting', async () => {
      const text = await c.core.readNamespacedPodLog({ name: 'talker', namespace: 'k' });
      return text.includes('hello') && text;
    });
    assert.match(logs, /^hello world from talker in k at 127\.0\.0\.1$/m);
    const events = await c.core.listNamespacedEvent({ namespace: 'k', fieldSelector: 'involvedObject.name=talker' });
    assert.deepEqual(new Set(events.items.map((e) => e.reason)), new Set(['Scheduled', 'Pulled', 'Created', 'Started']));
  });

  test('the environment: $(VAR) references, envFrom with a prefix, ConfigMap keys, resource fields; args expanded', async () => {
    await c.core.createNamespacedConfigMap({ namespace: 'k', body: { metadata: { name: 'settings' }, data: { level: 'debug', mode: 'fast' } } });
    const body = pod('env', 'env', {}, [
      { name: 'NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'HELLO', value: 'hi $(NAME), $(UNKNOWN) and $$(NAME)' },
      { name: 'LEVEL', valueFrom: { configMapKeyRef: { name: 'settings', key: 'level' } } },
      { name: 'MEM', valueFrom: { resourceFieldRef: { resource: 'limits.memory', divisor: '1Mi' } } },
      { name: 'MAYBE', valueFrom: { secretKeyRef: { name: 'absent', key: 'x', optional: true } } },
    ]);
    body.spec!.containers[0]!.envFrom = [{ prefix: 'CFG_', configMapRef: { name: 'settings' } }];
    body.spec!.containers[0]!.args = ['--name=$(NAME)'];
    body.spec!.containers[0]!.resources = { limits: { memory: '256Mi' } };
    await c.core.createNamespacedPod({ namespace: 'k', body });
    const out = await until('its output', async () => (await c.core.readNamespacedPodLog({ name: 'env', namespace: 'k' }).catch(() => '')).trim());
    const { env, argv } = JSON.parse(out) as { env: Record<string, string>; argv: string[] };
    assert.equal(env.HELLO, 'hi env, $(UNKNOWN) and $(NAME)');
    assert.equal(env.LEVEL, 'debug');
    assert.equal(env.CFG_mode, 'fast');
    assert.equal(env.MEM, '256');
    assert.equal(env.MAYBE, undefined);
    assert.equal(env.PATH, undefined, 'a container does not inherit the host environment');
    assert.deepEqual(argv, ['--name=env']);
    await c.core.deleteNamespacedPod({ name: 'env', namespace: 'k', gracePeriodSeconds: 0 });
  });

  test('logs: tailLines, timestamps, and follow streams new lines until the container ends', async () => {
    await until('some ticks', async () => (await c.core.readNamespacedPodLog({ name: 'talker', namespace: 'k' })).includes('tick 3'));
    const tail = await c.core.readNamespacedPodLog({ name: 'talker', namespace: 'k', tailLines: 2 });
    assert.equal(tail.trim().split('\n').length, 2);
    const stamped = await c.core.readNamespacedPodLog({ name: 'talker', namespace: 'k', tailLines: 1, timestamps: true });
    assert.match(stamped, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z tick \d+\n$/);
    const out = new PassThrough();
    let followed = '';
    out.on('data', (d: Buffer) => (followed += d.toString()));
    const req = await c.log.log('k', 'talker', 'main', out, { follow: true, tailLines: 1 });
    const before = followed.length;
    await until('new lines while following', () => followed.split('\n').length > 4);
    assert.ok(followed.length > before);
    // the container ends: the follow ends with it
    const ended = new Promise((r) => out.on('end', r));
    await c.core.deleteNamespacedPod({ name: 'talker', namespace: 'k' });
    await ended;
    assert.match(followed, /bye\n$/);
    req.abort();
  });

  test('a graceful delete: the pod stays Terminating until its process exits on SIGTERM, then is gone', async () => {
    await c.core.createNamespacedPod({ namespace: 'k', body: pod('graceful', 'node/talker.js') });
    await until('running', async () => (await read('graceful')).status?.phase === 'Running');
    const deleting = await c.core.deleteNamespacedPod({ name: 'graceful', namespace: 'k' });
    assert.ok(deleting.metadata?.deletionTimestamp);
    assert.equal(deleting.metadata?.deletionGracePeriodSeconds, 2);
    await until('gone', async () => (await refused(read('graceful'))).code === 404);
  });

  test('a process ignoring SIGTERM is killed when the grace period ends', async () => {
    await c.core.createNamespacedPod({ namespace: 'k', body: pod('stubborn', 'node/stubborn.js') });
    // its SIGTERM handler is in place once it said so
    await until('up', async () => (await c.core.readNamespacedPodLog({ name: 'stubborn', namespace: 'k' }).catch(() => '')).includes('up'));
    const t0 = Date.now();
    await c.core.deleteNamespacedPod({ name: 'stubborn', namespace: 'k' });
    await until('gone', async () => (await refused(read('stubborn'))).code === 404);
    // 2 s of grace at 50 ms a second
    assert.ok(Date.now() - t0 >= 90, `killed after ${Date.now() - t0} ms`);
    const killing = await c.core.listNamespacedEvent({ namespace: 'k', fieldSelector: 'involvedObject.name=stubborn,reason=Killing' });
    assert.equal(killing.items[0]?.message, 'Stopping container main');
  });

  test('a crashing container restarts with back-off: CrashLoopBackOff, restartCount, lastState, previous logs', async () => {
    const crash = pod('crash', 'node/crash.js');
    crash.spec!.containers[0]!.terminationMessagePolicy = 'FallbackToLogsOnError';
    await c.core.createNamespacedPod({ namespace: 'k', body: crash });
    const p = await until('crash looping', async () => {
      const x = await read('crash');
      const cs = x.status?.containerStatuses?.[0];
      return cs?.state?.waiting?.reason === 'CrashLoopBackOff' && (cs.restartCount ?? 0) >= 1 && x;
    });
    const cs = p.status?.containerStatuses?.[0];
    assert.equal(p.status?.phase, 'Running');
    assert.equal(cs?.ready, false);
    assert.equal(cs?.lastState?.terminated?.exitCode, 3);
    assert.equal(cs?.lastState?.terminated?.reason, 'Error');
    // FallbackToLogsOnError: the end of its output is the termination message
    assert.equal(cs?.lastState?.terminated?.message, 'boom\n');
    assert.match(cs?.state?.waiting?.message ?? '', /^back-off \d+s restarting failed container=main pod=crash_k\(/);
    assert.equal(p.status?.conditions?.find((x) => x.type === 'Ready')?.reason, 'ContainersNotReady');
    const previous = await c.core.readNamespacedPodLog({ name: 'crash', namespace: 'k', previous: true });
    assert.equal(previous, 'boom\n');
    const events = await c.core.listNamespacedEvent({ namespace: 'k', fieldSelector: 'involvedObject.name=crash,reason=BackOff' });
    assert.equal(events.items[0]?.type, 'Warning');
    await c.core.deleteNamespacedPod({ name: 'crash', namespace: 'k', gracePeriodSeconds: 0 });
  });

  test('restartPolicy Never: the pod ends Succeeded or Failed, with the exit code', async () => {
    await c.core.createNamespacedPod({ namespace: 'k', body: pod('once-ok', 'node/done.js', { restartPolicy: 'Never' }) });
    await c.core.createNamespacedPod({ namespace: 'k', body: pod('once-bad', 'node/crash.js', { restartPolicy: 'Never' }) });
    const ok = await until('succeeded', async () => ((await read('once-ok')).status?.phase === 'Succeeded' ? read('once-ok') : undefined));
    assert.equal(ok.status?.containerStatuses?.[0]?.state?.terminated?.reason, 'Completed');
    assert.equal(ok.status?.conditions?.find((x) => x.type === 'Ready')?.reason, 'PodCompleted');
    const bad = await until('failed', async () => ((await read('once-bad')).status?.phase === 'Failed' ? read('once-bad') : undefined));
    assert.equal(bad.status?.containerStatuses?.[0]?.state?.terminated?.exitCode, 3);
    // a finished pod is deleted at once
    await c.core.deleteNamespacedPod({ name: 'once-ok', namespace: 'k' });
    assert.equal((await refused(read('once-ok'))).code, 404);
  });

  test('the termination message is the file at terminationMessagePath', async () => {
    const file = join(files.dir, 'last-words.txt');
    await c.core.createNamespacedPod({ namespace: 'k', body: pod('words', 'node/last-words.js', { restartPolicy: 'Never' }, [{ name: 'MESSAGE_FILE', value: file }]) });
    const p = await until('failed', async () => {
      const x = await read('words');
      return x.status?.phase === 'Failed' && x;
    });
    assert.equal(p.status?.containerStatuses?.[0]?.state?.terminated?.message, 'database unreachable');
    assert.equal(p.status?.containerStatuses?.[0]?.state?.terminated?.exitCode, 2);
  });

  test('an exec readiness probe gates Ready, with its period and failure threshold honoured', async () => {
    const flag = join(files.dir, 'ready.flag');
    const body = pod('gated', 'node/talker.js', {}, [{ name: 'FLAG', value: flag }]);
    body.spec!.containers[0]!.readinessProbe = { exec: { command: ['check', 'flag.js'] }, periodSeconds: 1, failureThreshold: 1 };
    await c.core.createNamespacedPod({ namespace: 'k', body });
    await until('running', async () => (await read('gated')).status?.containerStatuses?.[0]?.state?.running);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await read('gated')).status?.containerStatuses?.[0]?.ready, false);
    writeFileSync(flag, 'x');
    await until('ready', async () => (await read('gated')).status?.containerStatuses?.[0]?.ready === true);
    const unhealthy = await c.core.listNamespacedEvent({ namespace: 'k', fieldSelector: 'involvedObject.name=gated,reason=Unhealthy' });
    assert.match(unhealthy.items[0]?.message ?? '', /^Readiness probe failed/);
    await c.core.deleteNamespacedPod({ name: 'gated', namespace: 'k', gracePeriodSeconds: 0 });
    assert.ok(existsSync(flag));
  });

  test('an httpGet readiness probe reaches the container\'s port on 127.0.0.1', async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const body = pod('web', 'node/server.js', {}, [{ name: 'PORT', value: String(port) }, { name: 'READY_AFTER_MS', value: '150' }]);
    body.spec!.containers[0]!.ports = [{ name: 'http', containerPort: port }];
    body.spec!.containers[0]!.readinessProbe = { httpGet: { path: '/ready', port: 'http' as never }, periodSeconds: 1 };
    await c.core.createNamespacedPod({ namespace: 'k', body });
    await until('ready', async () => (await read('web')).status?.containerStatuses?.[0]?.ready === true);
    await c.core.deleteNamespacedPod({ name: 'web', namespace: 'k', gracePeriodSeconds: 0 });
  });

  test('a container the kubelet function gives no process is Running and Ready', async () => {
    await c.core.createNamespacedPod({ namespace: 'k', body: pod('idle', 'pause') });
    await until('ready', async () => (await read('idle')).status?.conditions?.find((x) => x.type === 'Ready')?.status === 'True');
    await c.core.deleteNamespacedPod({ name: 'idle', namespace: 'k' });
    await until('gone', async () => (await refused(read('idle'))).code === 404);
  });

  test('an image that cannot be pulled: ErrImagePull, then ImagePullBackOff, with the message', async () => {
    await c.core.createNamespacedPod({ namespace: 'k', body: pod('nopull', 'missing/app:1') });
    const p = await until('back-off', async () => {
      const x = await read('nopull');
      return x.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'ImagePullBackOff' && x;
    });
    assert.equal(p.status?.phase, 'Pending');
    const failed = await c.core.listNamespacedEvent({ namespace: 'k', fieldSelector: 'involvedObject.name=nopull,reason=Failed' });
    assert.match(failed.items[0]?.message ?? '', /^Failed to pull image "missing\/app:1": rpc error: code = NotFound/);
    const waiting = await refused(c.core.readNamespacedPodLog({ name: 'nopull', namespace: 'k' }));
    assert.equal(waiting.code, 400);
    assert.match(waiting.message ?? '', /container "main" in pod "nopull" is waiting to start: (ErrImagePull|ImagePullBackOff)/);
    await c.core.deleteNamespacedPod({ name: 'nopull', namespace: 'k' });
  });

  test('a Secret that does not exist: CreateContainerConfigError, and the pod starts once it does', async () => {
    const env = [{ name: 'GREETING', valueFrom: { secretKeyRef: { name: 'later', key: 'greeting' } } }];
    await c.core.createNamespacedPod({ namespace: 'k', body: pod('later', 'node/talker.js', {}, env) });
    const p = await until('config error', async () => {
      const x = await read('later');
      return x.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'CreateContainerConfigError' && x;
    });
    assert.equal(p.status?.containerStatuses?.[0]?.state?.waiting?.message, 'secret "later" not found');
    await c.core.createNamespacedSecret({ namespace: 'k', body: { metadata: { name: 'later' }, stringData: { greeting: 'at last' } } });
    await until('hello', async () => (await c.core.readNamespacedPodLog({ name: 'later', namespace: 'k' }).catch(() => '')).includes('hello at last'));
    await c.core.deleteNamespacedPod({ name: 'later', namespace: 'k', gracePeriodSeconds: 0 });
  });

  test('evict(): the process is killed, the pod is Failed with reason Evicted and stays', async () => {
    await c.core.createNamespacedPod({ namespace: 'k', body: pod('hungry', 'node/talker.js') });
    await until('running', async () => (await read('hungry')).status?.phase === 'Running');
    fake.evict('k', 'hungry', 'The node was low on resource: memory. Container main was using 900Mi, request is 0.');
    const p = await until('evicted', async () => {
      const x = await read('hungry');
      return x.status?.phase === 'Failed' && x;
    });
    assert.equal(p.status?.reason, 'Evicted');
    assert.match(p.status?.message ?? '', /low on resource: memory/);
    assert.equal(p.status?.containerStatuses?.[0]?.state?.terminated?.exitCode, 137);
    assert.equal(p.status?.conditions?.find((x) => x.type === 'DisruptionTarget')?.reason, 'TerminationByKubelet');
    const ev = await c.core.listNamespacedEvent({ namespace: 'k', fieldSelector: 'involvedObject.name=hungry,reason=Evicted' });
    assert.equal(ev.items.length, 1);
    assert.throws(() => fake.evict('k', 'nobody'), /not found/);
  });

  test('several containers: logs need the container named, and an unknown one is refused', async () => {
    const body = pod('duo', 'pause');
    body.spec!.containers.push({ name: 'side', image: 'pause' });
    await c.core.createNamespacedPod({ namespace: 'k', body });
    await until('ready', async () => (await read('duo')).status?.containerStatuses?.every((x) => x.ready));
    const which = await refused(c.core.readNamespacedPodLog({ name: 'duo', namespace: 'k' }));
    assert.equal(which.message, 'a container name must be specified for pod duo, choose one of: [main side]');
    const unknown = await refused(c.core.readNamespacedPodLog({ name: 'duo', namespace: 'k', container: 'nope' }));
    assert.equal(unknown.message, 'container nope is not valid for pod duo');
    assert.equal(await c.core.readNamespacedPodLog({ name: 'duo', namespace: 'k', container: 'side' }), '');
  });

  test('a preStop exec hook runs before SIGTERM, with the container\'s env', async () => {
    const mark = join(files.dir, 'prestop.mark');
    const body = pod('hooked', 'node/talker.js', {}, [{ name: 'MARK', value: mark }]);
    body.spec!.containers[0]!.lifecycle = { preStop: { exec: { command: ['check', 'mark.js'] } } };
    await c.core.createNamespacedPod({ namespace: 'k', body });
    await until('running', async () => (await read('hooked')).status?.phase === 'Running');
    await c.core.deleteNamespacedPod({ name: 'hooked', namespace: 'k' });
    await until('gone', async () => (await refused(read('hooked'))).code === 404);
    assert.ok(existsSync(mark));
  });

  test('a failing liveness probe restarts the container', async () => {
    const body = pod('unlively', 'node/talker.js', {}, [{ name: 'FLAG', value: join(files.dir, 'never-there') }]);
    body.spec!.containers[0]!.livenessProbe = { exec: { command: ['check', 'flag.js'] }, periodSeconds: 2, failureThreshold: 1 };
    await c.core.createNamespacedPod({ namespace: 'k', body });
    const p = await until('restarted', async () => {
      const x = await read('unlively');
      return (x.status?.containerStatuses?.[0]?.restartCount ?? 0) >= 1 && x;
    });
    assert.ok(p.status?.containerStatuses?.[0]?.lastState?.terminated);
    const killing = await c.core.listNamespacedEvent({ namespace: 'k', fieldSelector: 'involvedObject.name=unlively,reason=Killing' });
    assert.equal(killing.items[0]?.message, 'Container main failed liveness probe, will be restarted');
    await c.core.deleteNamespacedPod({ name: 'unlively', namespace: 'k', gracePeriodSeconds: 0 });
  });

  test('the eviction subresource deletes a pod gracefully', async () => {
    await c.core.createNamespacedPod({ namespace: 'k', body: pod('evictee', 'pause') });
    await until('ready', async () => (await read('evictee')).status?.phase === 'Running');
    await c.core.createNamespacedPodEviction({ name: 'evictee', namespace: 'k', body: { metadata: { name: 'evictee', namespace: 'k' } } });
    await until('gone', async () => (await refused(read('evictee'))).code === 404);
  });

  test('init containers run first, one after the other', async () => {
    const body = pod('inits', 'node/talker.js');
    body.spec!.initContainers = [{ name: 'setup', image: 'node/done.js' }];
    await c.core.createNamespacedPod({ namespace: 'k', body });
    const p = await until('running', async () => {
      const x = await read('inits');
      return x.status?.phase === 'Running' && x.status.containerStatuses?.[0]?.ready && x;
    });
    assert.equal(p.status?.initContainerStatuses?.[0]?.state?.terminated?.reason, 'Completed');
    assert.equal(await c.core.readNamespacedPodLog({ name: 'inits', namespace: 'k', container: 'setup' }), 'work done\n');
    await c.core.deleteNamespacedPod({ name: 'inits', namespace: 'k', gracePeriodSeconds: 0 });
  });
});
