import type { Named } from './status.js';

/**
 * The resources the fake serves, as discovery describes them. Only these exist: any other
 * path is a 404, as on a cluster without that API.
 */
export interface Resource extends Named {
  version: string;
  /** `v1`, `apps/v1` */
  apiVersion: string;
  namespaced: boolean;
  singular: string;
  shortNames: string[];
  /** `status`, `scale`, `log`, `eviction`, `finalize` */
  subresources: string[];
  /** `metadata.generation` counts changes of `spec` */
  generation: boolean;
  /** a DELETE without propagationPolicy orphans the dependents (batch/v1 Jobs, kept so for compatibility) */
  orphanByDefault: boolean;
  /** fields a fieldSelector may name besides metadata.name and metadata.namespace */
  fields: string[];
  /** DELETE answers the object rather than a Success Status */
  returnsDeleted: boolean;
}

const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

function r(
  group: string,
  kind: string,
  plural: string,
  opts: { namespaced?: boolean; short?: string[]; sub?: string[]; generation?: boolean; orphan?: boolean; fields?: string[]; returnsDeleted?: boolean } = {},
): Resource {
  return {
    group,
    version: 'v1',
    apiVersion: group ? `${group}/v1` : 'v1',
    kind,
    plural,
    singular: kind.toLowerCase(),
    namespaced: opts.namespaced ?? true,
    shortNames: opts.short ?? [],
    subresources: opts.sub ?? [],
    generation: opts.generation ?? false,
    orphanByDefault: opts.orphan ?? false,
    fields: opts.fields ?? [],
    returnsDeleted: opts.returnsDeleted ?? false,
  };
}

export const RESOURCES: Resource[] = [
  r('', 'Namespace', 'namespaces', { namespaced: false, short: ['ns'], sub: ['status', 'finalize'], fields: ['status.phase'], returnsDeleted: true }),
  r('', 'Node', 'nodes', { namespaced: false, short: ['no'], sub: ['status'], returnsDeleted: true }),
  r('', 'ServiceAccount', 'serviceaccounts', { short: ['sa'] }),
  r('', 'Secret', 'secrets', { fields: ['type'] }),
  r('', 'ConfigMap', 'configmaps', { short: ['cm'] }),
  r('', 'ResourceQuota', 'resourcequotas', { short: ['quota'], sub: ['status'] }),
  r('', 'LimitRange', 'limitranges', { short: ['limits'] }),
  r('', 'Pod', 'pods', { short: ['po'], sub: ['status', 'log', 'eviction'], fields: ['spec.nodeName', 'spec.restartPolicy', 'spec.schedulerName', 'spec.serviceAccountName', 'status.phase', 'status.podIP', 'status.nominatedNodeName'], returnsDeleted: true }),
  r('', 'Service', 'services', { short: ['svc'], sub: ['status'], returnsDeleted: true }),
  r('', 'Event', 'events', {
    short: ['ev'],
    fields: ['involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name', 'involvedObject.uid', 'involvedObject.apiVersion', 'involvedObject.resourceVersion', 'involvedObject.fieldPath', 'reason', 'reportingComponent', 'source', 'type'],
  }),
  r('apps', 'Deployment', 'deployments', { short: ['deploy'], sub: ['status', 'scale'], generation: true }),
  r('apps', 'ReplicaSet', 'replicasets', { short: ['rs'], sub: ['status', 'scale'], generation: true, fields: ['status.replicas'] }),
  r('batch', 'Job', 'jobs', { sub: ['status'], generation: true, orphan: true, fields: ['status.successful'] }),
  r('networking.k8s.io', 'NetworkPolicy', 'networkpolicies', { short: ['netpol'], generation: true }),
];

/** the subresources' entries in discovery: the kind each answers with */
const SUBRESOURCE_KIND: Record<string, { kind: string; group?: string; version?: string; verbs: string[] }> = {
  status: { kind: '', verbs: ['get', 'patch', 'update'] },
  scale: { kind: 'Scale', group: 'autoscaling', version: 'v1', verbs: ['get', 'patch', 'update'] },
  log: { kind: 'Pod', verbs: ['get'] },
  eviction: { kind: 'Eviction', group: 'policy', version: 'v1', verbs: ['create'] },
  finalize: { kind: 'Namespace', verbs: ['update'] },
};

export function findResource(group: string, version: string, plural: string): Resource | undefined {
  return RESOURCES.find((x) => x.group === group && x.version === version && x.plural === plural);
}

export function resourceOf(apiVersion: string, kind: string): Resource | undefined {
  return RESOURCES.find((x) => x.apiVersion === apiVersion && x.kind === kind);
}

export function groupVersions(): { group: string; version: string }[] {
  const seen = new Map<string, { group: string; version: string }>();
  for (const x of RESOURCES) if (x.group) seen.set(x.apiVersion, { group: x.group, version: x.version });
  return [...seen.values()];
}

/** `GET /api/v1`, `GET /apis/apps/v1`: an APIResourceList */
export function resourceList(group: string, version: string): object | undefined {
  const mine = RESOURCES.filter((x) => x.group === group && x.version === version);
  if (mine.length === 0) return undefined;
  const resources: object[] = [];
  for (const x of mine) {
    resources.push({ name: x.plural, singularName: x.singular, namespaced: x.namespaced, kind: x.kind, verbs: VERBS, ...(x.shortNames.length ? { shortNames: x.shortNames } : {}) });
    for (const sub of x.subresources) {
      const s = SUBRESOURCE_KIND[sub];
      if (!s) continue;
      resources.push({ name: `${x.plural}/${sub}`, singularName: '', namespaced: x.namespaced, kind: s.kind || x.kind, verbs: s.verbs, ...(s.group ? { group: s.group, version: s.version } : {}) });
    }
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources };
}

/** `GET /apis`: an APIGroupList */
export function groupList(): object {
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: groupVersions().map(({ group, version }) => apiGroup(group, version)) };
}

export function apiGroup(group: string, version: string): object {
  const gv = { groupVersion: `${group}/${version}`, version };
  return { kind: 'APIGroup', apiVersion: 'v1', name: group, versions: [gv], preferredVersion: gv };
}
