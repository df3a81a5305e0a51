import type { Router } from './router.js';
import type { Logger } from '../logger/logger.js';

/**
 * Services running in this process, by namespace and name. A client finds a service
 * here first and calls its router directly: no serialisation, no socket.
 */
export interface LocalInstance {
  readonly router: Router;
  readonly logger: Logger;
  readonly namespace: string;
  readonly nodeId: string;
  /** false while the instance drains: new calls go elsewhere */
  accepting: boolean;
  inflight: number;
  callEnded(): void;
}

const table = new Map<string, LocalInstance[]>();
const cursor = new Map<string, number>();

export function localKey(namespace: string, service: string): string {
  return `${namespace}\n${service}`;
}

export function addLocal(instance: LocalInstance): void {
  const key = localKey(instance.namespace, instance.router.service);
  const list = table.get(key) ?? [];
  list.push(instance);
  table.set(key, list);
}

export function removeLocal(instance: LocalInstance): void {
  const key = localKey(instance.namespace, instance.router.service);
  const list = table.get(key);
  if (!list) return;
  const i = list.indexOf(instance);
  if (i >= 0) list.splice(i, 1);
  if (list.length === 0) table.delete(key);
}

/** An accepting local instance of the service (round robin), or undefined. */
export function findLocal(key: string): LocalInstance | undefined {
  const list = table.get(key);
  if (!list) return undefined;
  if (list.length === 1) {
    const only = list[0] as LocalInstance;
    return only.accepting ? only : undefined;
  }
  const start = (cursor.get(key) ?? 0) + 1;
  cursor.set(key, start);
  for (let i = 0; i < list.length; i++) {
    const inst = list[(start + i) % list.length] as LocalInstance;
    if (inst.accepting) return inst;
  }
  return undefined;
}
