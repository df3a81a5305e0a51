import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Control groups for sandboxed processes: memory, process count and CPU bounded by the
 * kernel. cgroup v2 when /sys/fs/cgroup is a cgroup2 mount, else the v1 hierarchies
 * /sys/fs/cgroup/{memory,pids,cpu}. Each instance (and each build step) gets its own
 * group under micro/<server>/<namespace>/, removed when it ends.
 */

const ROOT = '/sys/fs/cgroup';
const CGROUP2_MAGIC = 0x63677270;
/** CFS period (µs): a quota of `cpu` cores is cpu × this per period */
const CPU_PERIOD = 100_000;

export interface CgroupLimits {
  /** bytes of memory (tmpfs /tmp included) */
  memory: number;
  /** processes and threads */
  pids: number;
  /** CPU cores (fractions allowed), as a CFS quota */
  cpu: number;
}

/** One group: the files a process joins it through, what the kernel did to it, its removal. */
export interface Cgroup {
  /** write a pid to each of these to put it in the group (before it runs tenant code) */
  readonly procs: string[];
  /** how many times the kernel's OOM killer killed a process of the group */
  oomKills(): number;
  /** the pids still in the group */
  pids(): number[];
  /** removes the group (its processes must be gone); errors are ignored */
  remove(): void;
}

export interface CgroupDriver {
  readonly version: 1 | 2;
  /** removes the empty groups under `path` (a server's own, when it stops) */
  sweep(path: string): void;
  /** creates the group `path` (a/b/c, relative to micro's own) with these limits */
  create(path: string, limits: CgroupLimits): Cgroup;
}

/** The driver for this machine, or why there is none (not root, controllers missing). */
export function cgroupDriver(): CgroupDriver | string {
  let v2: boolean;
  try {
    v2 = statfsSync(ROOT).type === CGROUP2_MAGIC;
  } catch {
    return `${ROOT} cannot be read`;
  }
  if (v2) {
    const controllers = readText(join(ROOT, 'cgroup.controllers')).split(/\s+/);
    const missing = ['memory', 'pids', 'cpu'].filter((c) => !controllers.includes(c));
    if (missing.length > 0) return `cgroup v2 lacks the ${missing.join(', ')} controller(s)`;
    return new V2();
  }
  const missing = ['memory', 'pids', 'cpu'].filter((c) => !existsSync(join(ROOT, c, 'cgroup.procs')));
  if (missing.length > 0) return `cgroup v1 lacks ${missing.map((c) => join(ROOT, c)).join(', ')}`;
  return new V1();
}

class V1 implements CgroupDriver {
  readonly version = 1;

  sweep(path: string): void {
    for (const ctrl of ['memory', 'pids', 'cpu']) rmdirTree(join(ROOT, ctrl, 'micro', path));
  }

  create(path: string, limits: CgroupLimits): Cgroup {
    const dir = (ctrl: string) => join(ROOT, ctrl, 'micro', path);
    for (const ctrl of ['memory', 'pids', 'cpu']) mkdirSync(dir(ctrl), { recursive: true });
    writeFileSync(join(dir('memory'), 'memory.limit_in_bytes'), String(limits.memory));
    // swap would let it go past its limit: when the kernel allows, it gets none
    tryWrite(join(dir('memory'), 'memory.memsw.limit_in_bytes'), String(limits.memory));
    tryWrite(join(dir('memory'), 'memory.swappiness'), '0');
    writeFileSync(join(dir('pids'), 'pids.max'), String(limits.pids));
    writeFileSync(join(dir('cpu'), 'cpu.cfs_period_us'), String(CPU_PERIOD));
    writeFileSync(join(dir('cpu'), 'cpu.cfs_quota_us'), String(Math.max(1000, Math.round(limits.cpu * CPU_PERIOD))));
    return {
      procs: ['memory', 'pids', 'cpu'].map((c) => join(dir(c), 'cgroup.procs')),
      // kernels since 4.13 count kills in oom_control; before, a failcnt says the limit was hit
      oomKills: () => {
        const m = /^oom_kill (\d+)/m.exec(readText(join(dir('memory'), 'memory.oom_control')));
        return m ? Number(m[1]) : Number(readText(join(dir('memory'), 'memory.failcnt')) || 0) > 0 ? 1 : 0;
      },
      pids: () => pidsIn(join(dir('pids'), 'cgroup.procs')),
      remove: () => removeSoon(['memory', 'pids', 'cpu'].map(dir)),
    };
  }
}

class V2 implements CgroupDriver {
  readonly version = 2;

  sweep(path: string): void {
    rmdirTree(join(ROOT, 'micro', path));
  }

  create(path: string, limits: CgroupLimits): Cgroup {
    // controllers must be enabled in every parent for the leaf to have them
    const parts = ['micro', ...path.split('/')];
    let at = ROOT;
    for (const part of parts) {
      tryWrite(join(at, 'cgroup.subtree_control'), '+memory +pids +cpu');
      at = join(at, part);
      mkdirSync(at, { recursive: true });
    }
    writeFileSync(join(at, 'memory.max'), String(limits.memory));
    tryWrite(join(at, 'memory.swap.max'), '0');
    writeFileSync(join(at, 'pids.max'), String(limits.pids));
    writeFileSync(join(at, 'cpu.max'), `${Math.max(1000, Math.round(limits.cpu * CPU_PERIOD))} ${CPU_PERIOD}`);
    const dir = at;
    return {
      procs: [join(dir, 'cgroup.procs')],
      oomKills: () => Number(/^oom_kill (\d+)/m.exec(readText(join(dir, 'memory.events')))?.[1] ?? 0),
      pids: () => pidsIn(join(dir, 'cgroup.procs')),
      remove: () => removeSoon([dir]),
    };
  }
}

/** rmdir of every group folder below and at dir, deepest first; busy ones stay. */
function rmdirTree(dir: string): void {
  let entries: string[];
  try {
    entries = readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch {
    return;
  }
  for (const e of entries) rmdirTree(join(dir, e));
  try {
    rmdirSync(dir);
  } catch {
    // a process still in it
  }
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function pidsIn(file: string): number[] {
  return readText(file)
    .split('\n')
    .filter(Boolean)
    .map(Number);
}

function tryWrite(file: string, value: string): void {
  try {
    writeFileSync(file, value);
  } catch {
    // optional knob (swap accounting off, controller already enabled)
  }
}

/**
 * Removes the groups' folders; a group whose last processes are still being reaped is
 * busy for a moment, so it is tried again every 100 ms for up to 10 s.
 */
function removeSoon(dirs: string[], tries = 100): void {
  const left = dirs.filter((d) => {
    try {
      rmdirSync(d);
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code !== 'ENOENT';
    }
  });
  if (left.length > 0 && tries > 1) setTimeout(() => removeSoon(left, tries - 1), 100).unref();
}
