import { SchemaError, validateObject } from '../schema.js';
import { checkAnnotations, checkLabels, checkName, checkPortName, type NameRule } from './names.js';
import { compareQuantity, formatQuantity, parseQuantity, QUANTITY_RULE } from './quantity.js';
import type { Resource } from './resources.js';
import { selectorText, selects } from './selectors.js';
import type { FieldError } from './status.js';
import { badRequest } from './status.js';
import type { Container, Deployment, Job, KObj, LabelSelector, PodSpec, PodTemplate, Probe } from './types.js';
import { deepEqual } from './types.js';

/**
 * What the API server refuses as 422 Invalid, beyond the schemas (`validateObject`): names,
 * labels, the rules of each kind (a Deployment's selector must select its template, a Job's
 * pods may not restart Always, requests may not exceed limits...) and, on update, the fields
 * that may not change.
 */

const NAME_RULE: Record<string, NameRule> = { Namespace: 'label', Service: 'dns1035' };

/** the schemas' problems as field errors (`spec.containers.0.name` → `spec.containers[0].name`) */
export function schemaErrors(obj: KObj): FieldError[] {
  try {
    validateObject(obj);
    return [];
  } catch (err) {
    if (!(err instanceof SchemaError)) throw err;
    // a quantity that is not one cannot even be decoded: the API server answers 400
    if (err.problems.some((p) => p.endsWith('must match format "quantity"'))) throw badRequest(`${obj.kind} in version "${obj.apiVersion.split('/').pop()}" cannot be handled as a ${obj.kind}: ${QUANTITY_RULE}`);
    return err.problems.map((p) => {
      const at = p.indexOf(': ');
      const field = (at < 0 ? '(root)' : p.slice(0, at)).replace(/\.(\d+)(?=\.|$)/g, '[$1]');
      return { type: 'Invalid' as const, field, detail: at < 0 ? p : p.slice(at + 2) };
    });
  }
}

function metaErrors(r: Resource, obj: KObj): FieldError[] {
  const m = obj.metadata;
  const errors = checkName(NAME_RULE[r.kind] ?? 'subdomain', m.name, 'metadata.name');
  if (r.namespaced && !m.namespace) errors.push({ type: 'Required', field: 'metadata.namespace' });
  errors.push(...checkLabels(m.labels, 'metadata.labels'), ...checkAnnotations(m.annotations, 'metadata.annotations'));
  for (const [i, ref] of (m.ownerReferences ?? []).entries()) {
    if (!ref.uid) errors.push({ type: 'Invalid', field: `metadata.ownerReferences[${i}].uid`, value: ref.uid, detail: 'uid must not be empty' });
  }
  if ((m.ownerReferences ?? []).filter((ref) => ref.controller).length > 1) errors.push({ type: 'Invalid', field: 'metadata.ownerReferences', detail: 'Only one reference can have Controller set to true' });
  return errors;
}

// ---- pods ----------------------------------------------------------------------------------

function resourceErrors(c: Container, at: string): FieldError[] {
  const errors: FieldError[] = [];
  const requests = c.resources?.requests ?? {};
  const limits = c.resources?.limits ?? {};
  for (const [kind, list] of [['requests', requests], ['limits', limits]] as const) {
    for (const [k, v] of Object.entries(list)) {
      const q = parseQuantity(v);
      if (!q) throw badRequest(`${at}.resources.${kind}[${k}]: ${QUANTITY_RULE}`);
      if (q.nanos < 0n) errors.push({ type: 'Invalid', field: `${at}.resources.${kind}[${k}]`, value: v, detail: 'must be greater than or equal to 0' });
    }
  }
  for (const [k, v] of Object.entries(requests)) {
    const limit = limits[k] === undefined ? undefined : parseQuantity(limits[k]);
    const req = parseQuantity(v);
    if (limit && req && compareQuantity(req, limit) > 0) {
      errors.push({ type: 'Invalid', field: `${at}.resources.requests`, value: formatQuantity(req), detail: `must be less than or equal to ${k} limit of ${formatQuantity(limit)}` });
    }
  }
  return errors;
}

function probeErrors(p: Probe | undefined, at: string): FieldError[] {
  if (!p) return [];
  const handlers = [p.exec, p.httpGet, p.tcpSocket, p.grpc].filter((h) => h !== undefined).length;
  if (handlers === 0) return [{ type: 'Required', field: at, detail: 'must specify a handler type' }];
  if (handlers > 1) return [{ type: 'Forbidden', field: at, detail: 'may not specify more than 1 handler type' }];
  const errors: FieldError[] = [];
  for (const f of ['periodSeconds', 'timeoutSeconds', 'successThreshold', 'failureThreshold'] as const) {
    const v = p[f];
    if (v !== undefined && v < 1) errors.push({ type: 'Invalid', field: `${at}.${f}`, value: v, detail: 'must be greater than or equal to 1' });
  }
  return errors;
}

function containerErrors(c: Container, at: string, volumes: Set<string>): FieldError[] {
  const errors: FieldError[] = [];
  if (!c.name) errors.push({ type: 'Required', field: `${at}.name` });
  else errors.push(...checkName('label', c.name, `${at}.name`));
  if (!c.image) errors.push({ type: 'Required', field: `${at}.image` });
  for (const [i, p] of (c.ports ?? []).entries()) {
    if (!(p.containerPort >= 1 && p.containerPort <= 65535)) errors.push({ type: 'Invalid', field: `${at}.ports[${i}].containerPort`, value: p.containerPort, detail: 'must be between 1 and 65535, inclusive' });
    if (p.name) errors.push(...checkPortName(p.name, `${at}.ports[${i}].name`));
    if (p.protocol && !['TCP', 'UDP', 'SCTP'].includes(p.protocol)) errors.push({ type: 'NotSupported', field: `${at}.ports[${i}].protocol`, value: p.protocol, detail: 'supported values: "SCTP", "TCP", "UDP"' });
  }
  for (const [i, e] of (c.env ?? []).entries()) {
    if (!e.name || e.name.includes('=')) errors.push({ type: 'Invalid', field: `${at}.env[${i}].name`, value: e.name, detail: "a valid environment variable name must consist only of printable ASCII characters other than '='" });
    if (e.value !== undefined && e.valueFrom) errors.push({ type: 'Invalid', field: `${at}.env[${i}].valueFrom`, detail: 'may not be specified when `value` is not empty' });
  }
  for (const [i, m] of (c.volumeMounts ?? []).entries()) {
    if (!volumes.has(m.name)) errors.push({ type: 'NotFound', field: `${at}.volumeMounts[${i}].name`, value: m.name });
    if (!m.mountPath) errors.push({ type: 'Required', field: `${at}.volumeMounts[${i}].mountPath` });
  }
  errors.push(...resourceErrors(c, at));
  errors.push(...probeErrors(c.readinessProbe, `${at}.readinessProbe`), ...probeErrors(c.livenessProbe, `${at}.livenessProbe`), ...probeErrors(c.startupProbe, `${at}.startupProbe`));
  return errors;
}

function containerListErrors(list: Container[] | undefined, at: string, volumes: Set<string>, seen: Set<string>): FieldError[] {
  const errors: FieldError[] = [];
  for (const [i, c] of (list ?? []).entries()) {
    errors.push(...containerErrors(c, `${at}[${i}]`, volumes));
    if (c.name && seen.has(c.name)) errors.push({ type: 'Duplicate', field: `${at}[${i}].name`, value: c.name });
    seen.add(c.name);
  }
  return errors;
}

export function podSpecErrors(spec: PodSpec | undefined, at: string): FieldError[] {
  if (!spec) return [{ type: 'Required', field: at }];
  const errors: FieldError[] = [];
  const volumes = new Set<string>();
  for (const [i, v] of (spec.volumes ?? []).entries()) {
    if (volumes.has(v.name)) errors.push({ type: 'Duplicate', field: `${at}.volumes[${i}].name`, value: v.name });
    errors.push(...checkName('label', v.name ?? '', `${at}.volumes[${i}].name`));
    volumes.add(v.name);
  }
  if (!spec.containers || spec.containers.length === 0) errors.push({ type: 'Required', field: `${at}.containers` });
  const seen = new Set<string>();
  errors.push(...containerListErrors(spec.containers, `${at}.containers`, volumes, seen), ...containerListErrors(spec.initContainers, `${at}.initContainers`, volumes, seen));
  if (spec.restartPolicy && !['Always', 'OnFailure', 'Never'].includes(spec.restartPolicy)) {
    errors.push({ type: 'NotSupported', field: `${at}.restartPolicy`, value: spec.restartPolicy, detail: 'supported values: "Always", "OnFailure", "Never"' });
  }
  if (spec.terminationGracePeriodSeconds !== undefined && spec.terminationGracePeriodSeconds < 0) {
    errors.push({ type: 'Invalid', field: `${at}.terminationGracePeriodSeconds`, value: spec.terminationGracePeriodSeconds, detail: 'must be greater than or equal to 0' });
  }
  if (spec.serviceAccountName) errors.push(...checkName('subdomain', spec.serviceAccountName, `${at}.serviceAccountName`));
  return errors;
}

function templateErrors(template: PodTemplate | undefined, selector: LabelSelector | undefined, at: string, restart: string[]): FieldError[] {
  if (!template) return [{ type: 'Required', field: at }];
  const errors = [...checkLabels(template.metadata?.labels, `${at}.metadata.labels`), ...podSpecErrors(template.spec, `${at}.spec`)];
  if (selector && !selects(selector, template.metadata?.labels)) {
    errors.push({ type: 'Invalid', field: `${at}.metadata.labels`, value: template.metadata?.labels ?? {}, detail: '`selector` does not match template `labels`' });
  }
  const policy = template.spec?.restartPolicy;
  if (policy && !restart.includes(policy)) {
    errors.push(restart.length === 1 ? { type: 'NotSupported', field: `${at}.spec.restartPolicy`, value: policy, detail: `supported values: "${restart[0]}"` } : { type: 'Required', field: `${at}.spec.restartPolicy`, detail: `valid values: ${restart.map((x) => `"${x}"`).join(', ')}` });
  }
  return errors;
}

function selectorErrors(sel: LabelSelector | undefined, at: string): FieldError[] {
  if (!sel) return [{ type: 'Required', field: at }];
  if (Object.keys(sel.matchLabels ?? {}).length === 0 && (sel.matchExpressions ?? []).length === 0) return [{ type: 'Invalid', field: at, value: selectorText(sel), detail: 'empty selector is invalid for deployment' }];
  const errors = checkLabels(sel.matchLabels, `${at}.matchLabels`);
  for (const [i, e] of (sel.matchExpressions ?? []).entries()) {
    if (!['In', 'NotIn', 'Exists', 'DoesNotExist'].includes(e.operator)) errors.push({ type: 'NotSupported', field: `${at}.matchExpressions[${i}].operator`, value: e.operator, detail: 'supported values: "In", "NotIn", "Exists", "DoesNotExist"' });
  }
  return errors;
}

function nonNegative(s: object, fields: string[], at: string): FieldError[] {
  const spec = s as Record<string, unknown>;
  return fields.filter((f) => typeof spec[f] === 'number' && (spec[f] as number) < 0).map((f) => ({ type: 'Invalid' as const, field: `${at}.${f}`, value: spec[f], detail: 'must be greater than or equal to 0' }));
}

/** 25% or 1: what maxSurge and maxUnavailable may be */
function intOrPercent(v: unknown, field: string): FieldError[] {
  if (v === undefined || typeof v === 'number') return typeof v === 'number' && v < 0 ? [{ type: 'Invalid', field, value: v, detail: 'must be greater than or equal to 0' }] : [];
  if (typeof v === 'string' && /^\d+%$/.test(v)) return [];
  return [{ type: 'Invalid', field, value: v, detail: "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')" }];
}

function deploymentErrors(d: Deployment): FieldError[] {
  const spec = d.spec ?? ({} as Deployment['spec']);
  const errors = [...selectorErrors(spec.selector, 'spec.selector'), ...templateErrors(spec.template, spec.selector, 'spec.template', ['Always'])];
  errors.push(...nonNegative(spec, ['replicas', 'minReadySeconds', 'revisionHistoryLimit'], 'spec'));
  const ru = spec.strategy?.rollingUpdate;
  if (spec.strategy?.type === 'Recreate' && ru) errors.push({ type: 'Forbidden', field: 'spec.strategy.rollingUpdate', detail: 'may not be specified when strategy `type` is \'Recreate\'' });
  if (spec.strategy?.type && !['Recreate', 'RollingUpdate'].includes(spec.strategy.type)) errors.push({ type: 'NotSupported', field: 'spec.strategy.type', value: spec.strategy.type, detail: 'supported values: "Recreate", "RollingUpdate"' });
  if (ru) {
    errors.push(...intOrPercent(ru.maxSurge, 'spec.strategy.rollingUpdate.maxSurge'), ...intOrPercent(ru.maxUnavailable, 'spec.strategy.rollingUpdate.maxUnavailable'));
    const zero = (v: unknown) => v === 0 || v === '0%';
    if (zero(ru.maxSurge) && zero(ru.maxUnavailable)) errors.push({ type: 'Invalid', field: 'spec.strategy.rollingUpdate.maxUnavailable', value: ru.maxUnavailable, detail: 'may not be 0 when `maxSurge` is 0' });
    if (typeof ru.maxUnavailable === 'string' && parseInt(ru.maxUnavailable, 10) > 100) errors.push({ type: 'Invalid', field: 'spec.strategy.rollingUpdate.maxUnavailable', value: ru.maxUnavailable, detail: 'must not be greater than 100%' });
  }
  const deadline = spec.progressDeadlineSeconds;
  if (deadline !== undefined && deadline <= (spec.minReadySeconds ?? 0)) errors.push({ type: 'Invalid', field: 'spec.progressDeadlineSeconds', value: deadline, detail: 'must be greater than minReadySeconds' });
  return errors;
}

function jobErrors(j: Job): FieldError[] {
  const spec = j.spec ?? ({} as Job['spec']);
  const errors = templateErrors(spec.template, spec.selector, 'spec.template', ['OnFailure', 'Never']);
  if (spec.template && !spec.template.spec?.restartPolicy) errors.push({ type: 'Required', field: 'spec.template.spec.restartPolicy', detail: 'valid values: "OnFailure", "Never"' });
  errors.push(...nonNegative(spec, ['parallelism', 'completions', 'backoffLimit', 'ttlSecondsAfterFinished'], 'spec'));
  if (spec.activeDeadlineSeconds !== undefined && spec.activeDeadlineSeconds <= 0) errors.push({ type: 'Invalid', field: 'spec.activeDeadlineSeconds', value: spec.activeDeadlineSeconds, detail: 'must be greater than 0' });
  return errors;
}

interface ServicePort {
  name?: string;
  port?: number;
  targetPort?: number | string;
}

function serviceErrors(obj: KObj): FieldError[] {
  const spec = (obj.spec ?? {}) as { type?: string; ports?: ServicePort[]; clusterIP?: string };
  const errors: FieldError[] = [];
  const ports = spec.ports ?? [];
  if (ports.length === 0 && spec.type !== 'ExternalName' && spec.clusterIP !== 'None') errors.push({ type: 'Required', field: 'spec.ports' });
  const names = new Set<string>();
  for (const [i, p] of ports.entries()) {
    if (!(typeof p.port === 'number' && p.port >= 1 && p.port <= 65535)) errors.push({ type: 'Invalid', field: `spec.ports[${i}].port`, value: p.port, detail: 'must be between 1 and 65535, inclusive' });
    if (ports.length > 1 && !p.name) errors.push({ type: 'Required', field: `spec.ports[${i}].name` });
    if (p.name) {
      if (names.has(p.name)) errors.push({ type: 'Duplicate', field: `spec.ports[${i}].name`, value: p.name });
      names.add(p.name);
      errors.push(...checkName('dns1035', p.name, `spec.ports[${i}].name`));
    }
  }
  if (spec.type && !['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'].includes(spec.type)) errors.push({ type: 'NotSupported', field: 'spec.type', value: spec.type, detail: 'supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"' });
  return errors;
}

const DATA_KEY = /^[-._a-zA-Z0-9]+$/;
const DATA_MAX = 1024 * 1024;

function dataErrors(obj: KObj, base64: boolean): FieldError[] {
  const errors: FieldError[] = [];
  let size = 0;
  for (const field of ['data', 'binaryData'] as const) {
    for (const [k, v] of Object.entries((obj[field] ?? {}) as Record<string, unknown>)) {
      if (!DATA_KEY.test(k) || k.length > 253) errors.push({ type: 'Invalid', field: `${field}[${k}]`, value: k, detail: "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')" });
      if (typeof v !== 'string') continue;
      if ((base64 || field === 'binaryData') && !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) throw badRequest(`${obj.kind} in version "v1" cannot be handled as a ${obj.kind}: illegal base64 data at input byte 0`);
      size += base64 || field === 'binaryData' ? Buffer.from(v, 'base64').length : Buffer.byteLength(v);
    }
  }
  if (size > DATA_MAX) errors.push({ type: 'TooLong', field: 'data', detail: `must have at most ${DATA_MAX} bytes` });
  return errors;
}

function quotaErrors(obj: KObj): FieldError[] {
  const hard = ((obj.spec as { hard?: Record<string, unknown> } | undefined)?.hard ?? {}) as Record<string, unknown>;
  const errors: FieldError[] = [];
  for (const [k, v] of Object.entries(hard)) {
    const q = parseQuantity(v);
    if (!q) throw badRequest(`ResourceQuota in version "v1" cannot be handled as a ResourceQuota: ${QUANTITY_RULE}`);
    if (q.nanos < 0n) errors.push({ type: 'Invalid', field: `spec.hard[${k}]`, value: v, detail: 'must be greater than or equal to 0' });
    if (!/^([a-z0-9.-]+\/)?[a-z0-9.-]+$/.test(k)) errors.push({ type: 'Invalid', field: `spec.hard[${k}]`, value: k, detail: 'must be a standard resource for quota' });
  }
  return errors;
}

type Bounds = Record<string, unknown> | undefined;

function limitRangeErrors(obj: KObj): FieldError[] {
  const items = ((obj.spec as { limits?: Record<string, Bounds | string>[] } | undefined)?.limits ?? []) as Record<string, Bounds>[];
  const errors: FieldError[] = [];
  for (const [i, item] of items.entries()) {
    for (const field of ['max', 'min', 'default', 'defaultRequest', 'maxLimitRequestRatio']) {
      for (const v of Object.values(item[field] ?? {})) if (!parseQuantity(v)) throw badRequest(`LimitRange in version "v1" cannot be handled as a LimitRange: ${QUANTITY_RULE}`);
    }
    const q = (field: string, k: string) => parseQuantity(item[field]?.[k]);
    const order: [string, string, string][] = [['min', 'defaultRequest', 'default request value must be greater than or equal to min value'], ['defaultRequest', 'default', 'default request value must be less than or equal to default limit value'], ['default', 'max', 'default value must be less than or equal to max value'], ['min', 'max', 'min value must be less than or equal to max value']];
    for (const [lo, hi, detail] of order) {
      for (const k of Object.keys(item[hi] ?? {})) {
        const a = q(lo, k);
        const b = q(hi, k);
        if (a && b && compareQuantity(a, b) > 0) errors.push({ type: 'Invalid', field: `spec.limits[${i}].${lo === 'min' && hi !== 'max' ? hi : lo}[${k}]`, value: item[lo === 'min' && hi !== 'max' ? hi : lo]?.[k], detail });
      }
    }
  }
  return errors;
}

const KIND_RULES: Record<string, (obj: KObj) => FieldError[]> = {
  Pod: (obj) => podSpecErrors(obj.spec as PodSpec, 'spec'),
  Deployment: (obj) => deploymentErrors(obj as Deployment),
  ReplicaSet: (obj) => {
    const spec = (obj.spec ?? {}) as Deployment['spec'];
    return [...selectorErrors(spec.selector, 'spec.selector'), ...templateErrors(spec.template, spec.selector, 'spec.template', ['Always']), ...nonNegative(spec, ['replicas', 'minReadySeconds'], 'spec')];
  },
  Job: (obj) => jobErrors(obj as Job),
  Service: serviceErrors,
  Secret: (obj) => dataErrors(obj, true),
  ConfigMap: (obj) => dataErrors(obj, false),
  ResourceQuota: quotaErrors,
  LimitRange: limitRangeErrors,
};

/** everything wrong with an object about to be written (none: it may be stored) */
export function validate(r: Resource, obj: KObj): FieldError[] {
  const errors = schemaErrors(obj);
  if (errors.length > 0) return errors;
  return semanticErrors(r, obj);
}

/** the rules beyond the schemas (for an object that passed them) */
export function semanticErrors(r: Resource, obj: KObj): FieldError[] {
  return [...metaErrors(r, obj), ...(KIND_RULES[r.kind]?.(obj) ?? [])];
}

// ---- updates -------------------------------------------------------------------------------

function immutable(field: string, value: unknown): FieldError {
  return { type: 'Invalid', field, value, detail: 'field is immutable' };
}

/** a pod's spec may change only its containers' images and a few more fields */
function podUpdateErrors(next: PodSpec, old: PodSpec): FieldError[] {
  const strip = (s: PodSpec) => ({
    ...s,
    containers: s.containers?.map((c) => ({ ...c, image: '' })),
    initContainers: s.initContainers?.map((c) => ({ ...c, image: '' })),
    activeDeadlineSeconds: undefined,
    tolerations: undefined,
  });
  if (deepEqual(strip(next), strip(old))) return [];
  return [
    {
      type: 'Forbidden',
      field: 'spec',
      detail: 'pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)',
    },
  ];
}

const UPDATE_RULES: Record<string, (next: KObj, old: KObj) => FieldError[]> = {
  Pod: (next, old) => podUpdateErrors(next.spec as PodSpec, old.spec as PodSpec),
  Deployment: (next, old) => selectorChange(next, old),
  ReplicaSet: (next, old) => selectorChange(next, old),
  Job: (next, old) => {
    const errors = selectorChange(next, old);
    const n = next.spec as Job['spec'];
    const o = old.spec as Job['spec'];
    if (!deepEqual(n.template, o.template)) errors.push(immutable('spec.template', n.template));
    if (n.completions !== o.completions) errors.push(immutable('spec.completions', n.completions));
    if (n.completionMode !== o.completionMode) errors.push(immutable('spec.completionMode', n.completionMode));
    return errors;
  },
  Service: (next, old) => {
    const n = next.spec as { clusterIP?: string; type?: string };
    const o = old.spec as { clusterIP?: string; type?: string };
    return n.clusterIP !== o.clusterIP && n.type !== 'ExternalName' ? [{ type: 'Invalid', field: 'spec.clusterIPs[0]', value: n.clusterIP, detail: 'may not change once set' }] : [];
  },
  Secret: dataImmutable,
  ConfigMap: dataImmutable,
};

function selectorChange(next: KObj, old: KObj): FieldError[] {
  const n = (next.spec as { selector?: unknown }).selector;
  return deepEqual(n, (old.spec as { selector?: unknown }).selector) ? [] : [immutable('spec.selector', n)];
}

function dataImmutable(next: KObj, old: KObj): FieldError[] {
  if (old.immutable !== true) return [];
  const errors: FieldError[] = [];
  if (next.immutable !== true) errors.push({ type: 'Forbidden', field: 'immutable', detail: 'field is immutable when `immutable` is set' });
  if (!deepEqual(next.data, old.data) || !deepEqual(next.binaryData, old.binaryData)) errors.push({ type: 'Forbidden', field: 'data', detail: 'field is immutable when `immutable` is set' });
  return errors;
}

/** what an update may not change, on top of `validate` of the new object */
export function validateUpdate(r: Resource, next: KObj, old: KObj): FieldError[] {
  const errors: FieldError[] = [];
  if (r.kind === 'Secret' && next.type !== old.type) errors.push(immutable('type', next.type));
  return [...errors, ...(UPDATE_RULES[r.kind]?.(next, old) ?? [])];
}
