import { homedir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_NAMESPACE } from '../registry/registry.js';

/**
 * The environment variables the SDK reads, in one place:
 *
 * - MICRO_HOME        where config, tokens, data and logs live (default ~/.micro)
 * - MICRO_NAMESPACE   the namespace of services and calls (default micro)
 * - MICRO_REGISTRY    file (default: shared by the processes of this machine through
 *                     MICRO_HOME/registry) or memory (this process only)
 * - MICRO_SERVICE_ADDRESS  where a service listens (default tcp://127.0.0.1:0, a free port)
 * - MICRO_LOG_LEVEL   trace … fatal, silent (default info)
 */
export function microHome(): string {
  return process.env.MICRO_HOME || join(homedir(), '.micro');
}

export function defaultNamespace(): string {
  return process.env.MICRO_NAMESPACE || DEFAULT_NAMESPACE;
}

export function defaultServiceAddress(): string {
  return process.env.MICRO_SERVICE_ADDRESS || 'tcp://127.0.0.1:0';
}
