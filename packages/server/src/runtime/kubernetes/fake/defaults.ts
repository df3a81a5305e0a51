import type { Resource } from './resources.js';
import type { Container, KObj, PodSpec, Probe } from './types.js';
import { isObject } from './types.js';

/**
 * The defaults the API server fills in on every write (its `SetDefaults_*` functions), so
 * what a client reads back is what a real cluster would answer: a Deployment's replicas and
 * strategy, a container's pull policy, a probe's period, a Service's protocol...
 */

function probeDefaults(p: Probe | undefined): void {
  if (!p) return;
  p.timeoutSeconds ??= 1;
  p.periodSeconds ??= 10;
  p.successThreshold ??= 1;
  p.failureThreshold ??= 3;
  if (p.httpGet) p.httpGet.scheme ??= 'HTTP';
}

/** `Always` for `:latest` or no tag, `IfNotPresent` otherwise */
function pullPolicy(image: string | undefined): 'Always' | 'IfNotPresent' {
  if (!image) return 'IfNotPresent';
  if (image.includes('@')) return 'IfNotPresent';
  const last = image.split('/').pop() ?? '';
  const tag = last.includes(':') ? last.split(':').pop() : undefined;
  return !tag || tag === 'latest' ? 'Always' : 'IfNotPresent';
}

function containerDefaults(c: Container): void {
  c.terminationMessagePath ??= '/dev/termination-log';
  c.terminationMessagePolicy ??= 'File';
  c.imagePullPolicy ??= pullPolicy(c.image);
  c.resources ??= {};
  const limits = c.resources.limits;
  if (limits) {
    // a limit without a request: the request is the limit
    c.resources.requests ??= {};
    for (const [k, v] of Object.entries(limits)) c.resources.requests[k] ??= v;
  }
  for (const p of c.ports ?? []) p.protocol ??= 'TCP';
  for (const e of c.env ?? []) if (e.valueFrom?.fieldRef) e.valueFrom.fieldRef.apiVersion ??= 'v1';
  probeDefaults(c.readinessProbe);
  probeDefaults(c.livenessProbe);
  probeDefaults(c.startupProbe);
}

export function podSpecDefaults(spec: PodSpec): void {
  spec.restartPolicy ??= 'Always';
  spec.terminationGracePeriodSeconds ??= 30;
  spec.dnsPolicy ??= 'ClusterFirst';
  spec.schedulerName ??= 'default-scheduler';
  spec.securityContext ??= {};
  spec.enableServiceLinks ??= true;
  for (const c of [...(spec.containers ?? []), ...(spec.initContainers ?? [])]) containerDefaults(c);
  for (const v of spec.volumes ?? []) {
    if (v.secret) v.secret.defaultMode ??= 420;
    if (v.configMap) v.configMap.defaultMode ??= 420;
  }
}

function templateDefaults(obj: KObj): void {
  const template = (obj.spec as { template?: { spec?: PodSpec } } | undefined)?.template;
  if (template?.spec) podSpecDefaults(template.spec);
}

type Defaulter = (obj: KObj) => void;

const DEFAULTERS: Record<string, Defaulter> = {
  Namespace(obj) {
    obj.metadata.labels = { ...obj.metadata.labels, 'kubernetes.io/metadata.name': obj.metadata.name };
    const spec = (obj.spec ??= {}) as { finalizers?: string[] };
    spec.finalizers ??= ['kubernetes'];
  },
  Pod(obj) {
    if (isObject(obj.spec)) podSpecDefaults(obj.spec as unknown as PodSpec);
  },
  Deployment(obj) {
    const spec = (obj.spec ??= {}) as Record<string, unknown> & { strategy?: { type?: string; rollingUpdate?: { maxSurge?: unknown; maxUnavailable?: unknown } } };
    spec.replicas ??= 1;
    spec.strategy ??= {};
    spec.strategy.type ??= 'RollingUpdate';
    if (spec.strategy.type === 'RollingUpdate') {
      spec.strategy.rollingUpdate ??= {};
      spec.strategy.rollingUpdate.maxSurge ??= '25%';
      spec.strategy.rollingUpdate.maxUnavailable ??= '25%';
    }
    spec.revisionHistoryLimit ??= 10;
    spec.progressDeadlineSeconds ??= 600;
    templateDefaults(obj);
  },
  ReplicaSet(obj) {
    const spec = (obj.spec ??= {}) as Record<string, unknown>;
    spec.replicas ??= 1;
    templateDefaults(obj);
  },
  Job(obj) {
    const spec = (obj.spec ??= {}) as Record<string, unknown>;
    if (spec.completions === undefined && spec.parallelism === undefined) {
      spec.completions = 1;
      spec.parallelism = 1;
    }
    spec.parallelism ??= 1;
    spec.backoffLimit ??= 6;
    spec.completionMode ??= 'NonIndexed';
    spec.suspend ??= false;
    spec.podReplacementPolicy ??= 'TerminatingOrFailed';
    templateDefaults(obj);
  },
  Service(obj) {
    const spec = (obj.spec ??= {}) as Record<string, unknown> & { ports?: { port?: number; targetPort?: unknown; protocol?: string }[] };
    spec.type ??= 'ClusterIP';
    spec.sessionAffinity ??= 'None';
    spec.internalTrafficPolicy ??= 'Cluster';
    spec.ipFamilies ??= ['IPv4'];
    spec.ipFamilyPolicy ??= 'SingleStack';
    for (const p of spec.ports ?? []) {
      p.protocol ??= 'TCP';
      p.targetPort ??= p.port;
    }
  },
  Secret(obj) {
    obj.type ??= 'Opaque';
    if (isObject(obj.stringData)) {
      const data = (obj.data ??= {}) as Record<string, string>;
      for (const [k, v] of Object.entries(obj.stringData)) data[k] = Buffer.from(String(v)).toString('base64');
      delete obj.stringData;
    }
  },
  LimitRange(obj) {
    const limits = (obj.spec as { limits?: ({ type?: string } & Partial<Record<'max' | 'min' | 'default' | 'defaultRequest', Record<string, unknown>>>)[] } | undefined)?.limits ?? [];
    for (const item of limits) {
      if (item.type !== 'Container') continue;
      const def = (item.default ??= {});
      const req = (item.defaultRequest ??= {});
      // an unset default limit is the max; an unset default request the default limit, else the min
      for (const [k, v] of Object.entries(item.max ?? {})) def[k] ??= v;
      for (const [k, v] of Object.entries(def)) req[k] ??= v;
      for (const [k, v] of Object.entries(item.min ?? {})) req[k] ??= v;
    }
  },
  NetworkPolicy(obj) {
    const spec = (obj.spec ??= {}) as { policyTypes?: string[]; egress?: unknown[] };
    spec.policyTypes ??= spec.egress ? ['Ingress', 'Egress'] : ['Ingress'];
  },
};

export function applyDefaults(r: Resource, obj: KObj): void {
  DEFAULTERS[r.kind]?.(obj);
}
