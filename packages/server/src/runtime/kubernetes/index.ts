/** The Kubernetes runtime driver of `micro server` (MICRO_RUNTIME=kubernetes). See README.md in this folder. */
import { kubeClient, type KubeClientOptions } from './client.js';
import { namespacePrefix } from './names.js';
import { KubernetesRuntime, transferKeyFile, type KubernetesRuntimeOptions } from './runtime.js';
import { Transfers, transferSecret } from './transfer.js';

export { KubernetesRuntime, type KubernetesRuntimeOptions, type TenantSeam } from './runtime.js';
export { kubeClient, KubeError, type KubeClient, type KubeObject } from './client.js';
export { Transfers } from './transfer.js';
export { runtimeKind } from './kind.js';
export { TenantReconciler, type ReconcileOptions, type ReconcileReport } from './reconcile.js';


/** `host:port`, as MICRO_KUBERNETES_SERVER and MICRO_KUBERNETES_GATEWAY give it. */
function hostPort(name: string, env: NodeJS.ProcessEnv): string {
  const value = (env[name] ?? '').trim();
  if (!/^[A-Za-z0-9.-]+:\d{1,5}$|^\[[0-9A-Fa-f:]+\]:\d{1,5}$/.test(value)) {
    throw new Error(`MICRO_RUNTIME=kubernetes needs ${name}: host:port of micro server's ${name.endsWith('GATEWAY') ? 'gateway' : 'RPC'} as pods reach it (in deploy/: micro-server.micro-system.svc.cluster.local:${name.endsWith('GATEWAY') ? 8080 : 8081}), not "${value}"`);
  }
  return value;
}

/** MICRO_KUBERNETES_RECONCILE: seconds between two passes of the reconcile (reconcile.ts); unset: 600. */
export function reconcileFromEnv(env: NodeJS.ProcessEnv): { intervalMs?: number } {
  const raw = (env.MICRO_KUBERNETES_RECONCILE ?? '').trim();
  if (raw === '') return {};
  const seconds = Number(raw);
  if (!Number.isSafeInteger(seconds) || seconds < 1 || seconds > 86_400) {
    throw new Error(`MICRO_KUBERNETES_RECONCILE must be the seconds between two reconciles of the cluster namespaces, a whole number from 1 to 86400 (default 600), not "${raw.slice(0, 32)}"`);
  }
  return { intervalMs: seconds * 1000 };
}

/**
 * The Kubernetes runtime as the environment sets it up: MICRO_KUBECONFIG (unset: in-cluster),
 * MICRO_KUBERNETES_SERVER, MICRO_KUBERNETES_GATEWAY, MICRO_KUBERNETES_PREFIX, MICRO_KUBERNETES_RECONCILE, MICRO_RUNNER_IMAGE;
 * transfer URLs signed under MICRO_AUTH_KEY (else a key file in MICRO_HOME).
 */
export function kubernetesRuntimeFromEnv(
  options: Omit<KubernetesRuntimeOptions, 'client' | 'transfers' | 'gatewayUrl' | 'serverAddress' | 'prefix' | 'image'> & { clientOptions?: KubeClientOptions },
  env: NodeJS.ProcessEnv = process.env,
): KubernetesRuntime {
  const server = hostPort('MICRO_KUBERNETES_SERVER', env);
  const gateway = hostPort('MICRO_KUBERNETES_GATEWAY', env);
  const prefix = namespacePrefix(env.MICRO_KUBERNETES_PREFIX);
  const reconcile = { ...reconcileFromEnv(env), ...options.reconcile };
  let client;
  try {
    client = kubeClient(env.MICRO_KUBECONFIG || undefined, options.clientOptions);
  } catch (err) {
    throw new Error(`MICRO_RUNTIME=kubernetes: ${env.MICRO_KUBECONFIG ? `the kubeconfig ${env.MICRO_KUBECONFIG} could not be read` : 'not in a pod (no ServiceAccount) and MICRO_KUBECONFIG is not set'}: ${(err as Error).message}`, { cause: err });
  }
  return new KubernetesRuntime({
    ...options,
    client,
    transfers: new Transfers({ secret: transferSecret(env, () => transferKeyFile(options.home)) }),
    serverAddress: `tcp://${server}`,
    gatewayUrl: `http://${gateway}`,
    prefix,
    reconcile,
    image: env.MICRO_RUNNER_IMAGE || 'micro/runner:latest',
  });
}
