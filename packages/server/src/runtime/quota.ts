import { quotaExceeded, type Limits } from '../quota/limits.js';
import type { CgroupLimits } from './cgroup.js';

/**
 * The runtime's part of quotas (see ../quota/README.md):
 * - `services`: counted where services are kept, so a kill gives the service back by
 *   removing it and a crash can never leave a count behind. Local profile: the runtime's
 *   own services (one process; checked and added with no await between). nats profile:
 *   the rows of `runtime_desired`, counted and inserted in one transaction under a lock
 *   per namespace (placement.ts), so the limit holds across nodes.
 * - `instancesPerService`: what Create asks for.
 * - `memoryPerInstance`, `cpuPerInstance`: cap the sandbox limits each instance gets.
 */

/** What the runtime needs of the server's quotas. */
export interface RuntimeQuotas {
  limits(namespace: string): Promise<Limits>;
}

/** Refuses a service past the namespace's `services` (used: the services it has now). */
export function admitService(namespace: string, used: number, max: number | null): void {
  if (max !== null && used + 1 > max) throw quotaExceeded('services', used, max, namespace);
}

/** Refuses more instances than `instancesPerService` (the refusal names what was asked for). */
export function admitInstances(namespace: string, instances: number, limits: Limits | undefined): void {
  const max = limits?.instancesPerService ?? null;
  if (max !== null && instances > max) throw quotaExceeded('instancesPerService', instances, max, namespace);
}

/** The memory (bytes) and CPU (cores) an instance may have at most: its namespace's quota (null: uncapped). */
export type InstanceCap = Partial<Pick<CgroupLimits, 'memory' | 'cpu'>>;

export function instanceCap(limits: Limits | undefined): InstanceCap {
  const cap: InstanceCap = {};
  if (limits?.memoryPerInstance != null) cap.memory = limits.memoryPerInstance;
  if (limits?.cpuPerInstance != null) cap.cpu = limits.cpuPerInstance / 1000;
  return cap;
}

/** The sandbox limits lowered to a cap: a quota never raises what the environment allows. */
export function capLimits<T extends CgroupLimits>(limits: T, cap: InstanceCap | undefined): T {
  if (!cap) return limits;
  return {
    ...limits,
    ...(cap.memory !== undefined ? { memory: Math.min(limits.memory, cap.memory) } : {}),
    ...(cap.cpu !== undefined ? { cpu: Math.min(limits.cpu, cap.cpu) } : {}),
  };
}
