import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Bytes a folder uses on disk (allocated blocks), stopping early past `limit`; a missing
 * folder is 0. The disk limit of a sandboxed service and the size bound of a tenant's git
 * fetch (source.ts) both measure with it.
 */
export async function treeSize(dir: string, limit: number): Promise<number> {
  let total = 0;
  const stack = [dir];
  while (stack.length > 0 && total <= limit) {
    const d = stack.pop() as string;
    let entries;
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      const p = join(d, e.name);
      const st = await lstat(p).catch(() => undefined);
      if (!st) continue;
      total += st.blocks * 512;
      if (e.isDirectory()) stack.push(p);
    }
  }
  return total;
}
