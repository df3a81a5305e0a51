import type { KubeObject } from './client.js';

/**
 * The objects the Kubernetes runtime makes for a service, as pure functions (each is
 * checked against the API's schemas in the tests):
 *
 * - a build Job `svc-<name>-b<build>` (the runner image's `build`: fetch the source from
 *   micro server, install, compile, upload the packed build), run once per build;
 * - a Secret `svc-<name>-<build>`: the service's credentials, the signed URL and SHA-256
 *   of its build, its `--env` (one Secret per build, so that a pod of the previous build
 *   restarted during an update, or after a failed one, still runs the previous build);
 * - a Deployment `svc-<name>` (the runner image's `run`), rolled by `micro update`.
 *
 * Every pod is as the `restricted` Pod Security Standard asks: non-root uid 10001, no
 * privilege escalation, every capability dropped, seccomp RuntimeDefault, a read-only
 * root file system with emptyDirs at /work and /tmp, no ServiceAccount token, no service
 * links.
 */

// the labels and the ServiceAccount the tenant namespaces (tenant.ts) select on too: one definition
export const MANAGED_BY = 'app.kubernetes.io/managed-by';
export const NAMESPACE_LABEL = 'micro.dev/namespace';
export const SERVICE_LABEL = 'micro.dev/service';
export const ROLE_LABEL = 'micro.dev/role';
/** the role of build pods (and their Secrets): the only pods the tenant namespace's NetworkPolicies let reach the internet */
export const BUILD_ROLE = 'build';
export const BUILD_LABEL = 'micro.dev/build';
/** The ServiceAccount of tenant pods (made by the tenant namespace; it has no API rights). */
export const SERVICE_ACCOUNT = 'micro-service';
export const RUNNER = '/micro/runner.js';

/** What the Deployment remembers of its service (its annotations), for status and update. */
export const ANNOTATIONS = {
  source: 'micro.dev/source',
  trusted: 'micro.dev/trusted',
  env: 'micro.dev/env',
  createdAt: 'micro.dev/created-at',
  updatedAt: 'micro.dev/updated-at',
  build: 'micro.dev/build',
  builtAt: 'micro.dev/built-at',
  commit: 'micro.dev/commit',
  artifact: 'micro.dev/artifact',
  sha256: 'micro.dev/sha256',
  secret: 'micro.dev/secret',
} as const;

export interface Resources {
  /** Kubernetes quantities: `512Mi`, `500m` */
  memory: string;
  cpu: string;
}

export interface ProbeTiming {
  periodSeconds: number;
  timeoutSeconds: number;
  failureThreshold: number;
}

export interface ServiceObjects {
  /** the platform namespace and its cluster namespace */
  namespace: string;
  clusterNamespace: string;
  name: string;
  image: string;
}

export function deploymentName(name: string): string {
  return `svc-${name}`;
}

export function secretName(name: string, build: string): string {
  return `svc-${name}-${build}`;
}

export function jobName(name: string, build: string): string {
  return `svc-${name}-b${build}`;
}

export function labels(s: Pick<ServiceObjects, 'namespace' | 'name'>): Record<string, string> {
  return { [MANAGED_BY]: 'micro', [NAMESPACE_LABEL]: s.namespace, [SERVICE_LABEL]: s.name };
}

/** The label selector of every object of a service. */
export function serviceSelector(s: Pick<ServiceObjects, 'namespace' | 'name'>): string {
  return `${MANAGED_BY}=micro,${NAMESPACE_LABEL}=${s.namespace},${SERVICE_LABEL}=${s.name}`;
}

const POD_SECURITY = { runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, fsGroup: 10001, seccompProfile: { type: 'RuntimeDefault' } };
const CONTAINER_SECURITY = { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, privileged: false, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } };
const VOLUMES = [
  { name: 'work', emptyDir: { sizeLimit: '2Gi' } },
  { name: 'tmp', emptyDir: { sizeLimit: '256Mi' } },
];
const MOUNTS = [
  { name: 'work', mountPath: '/work' },
  { name: 'tmp', mountPath: '/tmp' },
];

function podSpec(container: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  return {
    serviceAccountName: SERVICE_ACCOUNT,
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    securityContext: POD_SECURITY,
    containers: [{ ...container, securityContext: CONTAINER_SECURITY, volumeMounts: MOUNTS, workingDir: '/work' }],
    volumes: VOLUMES,
    ...extra,
  };
}

const plain = (name: string, value: string) => ({ name, value });
const fromSecret = (secret: string, key: string) => ({ name: key, valueFrom: { secretKeyRef: { name: secret, key } } });

/** The build Job of one build: fetches its source and uploads the packed build through signed URLs. */
export function buildJob(s: ServiceObjects, o: { build: string; sourceUrl: string; buildUrl: string; secret: string; envKeys: string[]; resources: Resources; deadlineSeconds: number }): KubeObject {
  const meta = { ...labels(s), [ROLE_LABEL]: BUILD_ROLE, [BUILD_LABEL]: o.build };
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: jobName(s.name, o.build), namespace: s.clusterNamespace, labels: meta },
    spec: {
      backoffLimit: 0,
      activeDeadlineSeconds: o.deadlineSeconds,
      ttlSecondsAfterFinished: 600,
      template: {
        metadata: { labels: meta },
        spec: podSpec(
          {
            name: 'build',
            image: s.image,
            command: ['node', RUNNER, 'build'],
            // the service's --env (npm settings, say) as local builds have it; never its credentials
            env: [plain('HOME', '/work'), plain('MICRO_RUNNER_SOURCE', o.sourceUrl), plain('MICRO_RUNNER_BUILD', o.buildUrl), ...o.envKeys.map((k) => fromSecret(o.secret, k))],
            resources: { requests: { ...o.resources }, limits: { ...o.resources } },
          },
          { restartPolicy: 'Never' },
        ),
      },
    },
  };
}

/** The Secret of one build of a service: credentials, where its build is, its --env. */
export function serviceSecret(s: ServiceObjects, o: { build: string; data: Record<string, string> }): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: secretName(s.name, o.build), namespace: s.clusterNamespace, labels: { ...labels(s), [BUILD_LABEL]: o.build } },
    type: 'Opaque',
    stringData: o.data,
  };
}

/** Keys of the Secret the runner reads (beside the service's --env). */
export const SECRET_KEYS = ['MICRO_AUTH_ID', 'MICRO_AUTH_SECRET', 'MICRO_RUNNER_ARTIFACT', 'MICRO_RUNNER_SHA256', 'MICRO_RUNNER_ENTRY'];

export function serviceDeployment(
  s: ServiceObjects,
  o: {
    build: string;
    secret: string;
    envKeys: string[];
    replicas: number;
    server: string;
    resources: Resources;
    probe: ProbeTiming;
    progressDeadlineSeconds: number;
    terminationGraceSeconds: number;
    annotations: Record<string, string>;
  },
): KubeObject {
  const selector = labels(s);
  const env = [
    { name: 'MICRO_POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    { name: 'MICRO_POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
    plain('HOME', '/work'),
    plain('MICRO_SERVER', o.server),
    plain('MICRO_NAMESPACE', s.namespace),
    plain('MICRO_AUTH_NAMESPACE', s.namespace),
    plain('MICRO_SERVICE_NAME', s.name),
    ...[...SECRET_KEYS, ...o.envKeys].map((k) => fromSecret(o.secret, k)),
  ];
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: deploymentName(s.name), namespace: s.clusterNamespace, labels: selector, annotations: o.annotations },
    spec: {
      replicas: o.replicas,
      selector: { matchLabels: selector },
      // a new pod is ready before an old one goes: `micro update` fails no call
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      progressDeadlineSeconds: o.progressDeadlineSeconds,
      revisionHistoryLimit: 2,
      template: {
        metadata: { labels: { ...selector, [ROLE_LABEL]: 'service' }, annotations: { [ANNOTATIONS.build]: o.build } },
        spec: podSpec(
          {
            name: 'service',
            image: s.image,
            command: ['node', RUNNER, 'run'],
            env,
            resources: { requests: { ...o.resources }, limits: { ...o.resources } },
            readinessProbe: { exec: { command: ['node', RUNNER, 'ready'] }, initialDelaySeconds: 0, ...o.probe, successThreshold: 1 },
            // a crash's last output in its status (lastState.terminated.message), for micro status
            terminationMessagePolicy: 'FallbackToLogsOnError',
          },
          // the runner leaves the registry first, waits for callers to move, then stops the service
          { restartPolicy: 'Always', terminationGracePeriodSeconds: o.terminationGraceSeconds },
        ),
      },
    },
  };
}

/** `512Mi` from bytes (rounded down to MiB, at least 16Mi); millicores as `500m`. */
export function memoryQuantity(bytes: number): string {
  return `${Math.max(16, Math.floor(bytes / (1024 * 1024)))}Mi`;
}

export function cpuQuantity(millicores: number): string {
  return `${Math.max(10, Math.floor(millicores))}m`;
}
