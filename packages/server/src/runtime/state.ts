import { existsSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { privateDir, writeJsonDurable } from '@micro/sdk';

/**
 * What the runtime remembers across restarts, in <home>/runtime/state.json: the services
 * it was asked to run, and the processes it started (so that a server that died with
 * kill -9 can find and stop them when it comes back). Written whole, atomically (temp
 * file, fsync, rename, fsync of the folder) on every change, mode 0600: --env values are
 * kept here as given, secrets included.
 */

export interface BuildRecord {
  id: string;
  /** the build folder, absolute */
  dir: string;
  /** the entry file, relative to dir */
  entry: string;
  commit?: string;
  builtAt: string;
  /** the build kept in the blob store of the service's namespace (key, hex SHA-256 of the blob), when it was packed */
  artifact?: { key: string; sha256: string };
}

export interface InstanceRecord {
  id: string;
  /** the process while it runs; a pid here after a restart of the server is a stale process */
  pid?: number;
  restarts: number;
  lastError?: string;
}

export interface ServiceRecordState {
  name: string;
  namespace: string;
  source: string;
  /** whether an admin of micro gave the source (absent in older files: true only in namespace micro) */
  trusted?: boolean;
  env: Record<string, string>;
  /** set for a plain HTTP app: the port it listens on */
  app?: { port: number };
  /** instances asked for */
  instances: number;
  /** whether it should run: false after it failed to build or to start, until it is updated */
  running: boolean;
  /** the version the service registered, once it did */
  version?: string;
  /** the build that runs (the last good one) */
  build?: BuildRecord;
  /** why the last build (or the start of a new build) failed */
  buildError?: string;
  processes: InstanceRecord[];
  /** nats profile: the generation of the platform's desired state this node runs (absent: never shared) */
  generation?: number;
  createdAt: string;
  updatedAt: string;
}

interface StateFile {
  version: 1;
  services: ServiceRecordState[];
}

export class StateStore {
  readonly file: string;

  constructor(readonly dir: string) {
    privateDir(dir);
    this.file = join(dir, 'state.json');
  }

  /**
   * The services of the last run. A file that cannot be read is moved aside (never
   * deleted: it may be the only record of what ran) and the runtime starts empty.
   */
  load(onCorrupt: (err: Error, movedTo: string) => void): ServiceRecordState[] {
    if (!existsSync(this.file)) return [];
    try {
      const state = JSON.parse(readFileSync(this.file, 'utf8')) as StateFile;
      if (state?.version !== 1 || !Array.isArray(state.services)) throw new Error('not a runtime state file (version 1)');
      return state.services.filter(isService);
    } catch (err) {
      const aside = `${this.file}.corrupt-${Date.now()}`;
      renameSync(this.file, aside);
      onCorrupt(err as Error, aside);
      return [];
    }
  }

  save(services: ServiceRecordState[]): void {
    const state: StateFile = { version: 1, services };
    writeJsonDurable(this.file, state);
  }
}

function isService(s: unknown): s is ServiceRecordState {
  const r = s as ServiceRecordState;
  return !!r && typeof r.name === 'string' && typeof r.namespace === 'string' && typeof r.source === 'string' && Array.isArray(r.processes);
}
