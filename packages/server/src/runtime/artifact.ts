import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { create as createTar } from 'tar';
import type { BlobStore } from '@micro/sdk';
import { PROVIDED_PACKAGES } from './build.js';
import { extractUpload, type UploadLimits } from './upload.js';

/**
 * Shared builds: a build folder (its output, installed node_modules, package.json) packed
 * as a gzipped tar into the blob store of the service's namespace, so that a node can
 * bring the service back without its source or a rebuild.
 *
 * Key: `runtime/builds/<name>/<build id>.tar.gz`. The runtime records the blob's SHA-256
 * with the build (state.json) and checks it when it unpacks, so a blob rewritten through
 * the store API is refused (and the service rebuilt from source) rather than run. Even
 * without that check a tenant could only run code of its own, in its own sandbox, as it
 * can already with `micro update`; the store of `micro` only its admins reach.
 *
 * Packed by the server right after the build's last step, before any instance runs from
 * the folder: no tenant process can change it meanwhile (build steps end with their
 * sandbox), and links are archived as links, never followed. The links the runtime makes
 * to the server's installation (the provided packages: the SDK, the services' kit) and to
 * @types/node are left out: they are made again at restore.
 */

/** 256 MiB: the bound on a packed build; a bigger one is not kept (the service rebuilds from source where its folder is gone). */
export const ARTIFACT_MAX_BYTES = 256 * 1024 * 1024;
/** Bounds of an unpacked build: node_modules has many files. */
export const ARTIFACT_LIMITS: Readonly<UploadLimits> = { files: 200_000, bytes: 1024 * 1024 * 1024, fileBytes: 256 * 1024 * 1024 };

const PROVIDED_LINKS = new Set([...PROVIDED_PACKAGES, '@types/node'].map((name) => `node_modules/${name}`));

export function artifactPrefix(name: string): string {
  return `runtime/builds/${name}/`;
}

export function artifactKey(name: string, buildId: string): string {
  return `${artifactPrefix(name)}${buildId}.tar.gz`;
}

export class ArtifactTooLarge extends Error {}

/** Packs `dir` into the blob store at `key`; throws ArtifactTooLarge past `max` bytes (nothing is kept then). */
export async function packBuild(dir: string, blobs: BlobStore, key: string, namespace: string, max = ARTIFACT_MAX_BYTES): Promise<{ key: string; sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  const stream = createTar(
    {
      gzip: true,
      cwd: dir,
      portable: true,
      follow: false,
      filter: (path, stat) => !('isSymbolicLink' in stat && stat.isSymbolicLink() && PROVIDED_LINKS.has(path.replace(/^\.\//, ''))),
    },
    ['.'],
  ) as unknown as AsyncIterable<Uint8Array>;
  async function* counted(): AsyncGenerator<Uint8Array> {
    for await (const chunk of stream) {
      size += chunk.length;
      if (size > max) throw new ArtifactTooLarge(`the packed build is larger than ${max / 1024 / 1024} MiB`);
      hash.update(chunk);
      yield chunk;
    }
  }
  try {
    await blobs.put(key, counted(), { namespace });
  } catch (err) {
    await blobs.delete(key, { namespace }).catch(() => undefined);
    throw err;
  }
  return { key, sha256: hash.digest('hex'), size };
}

/**
 * Unpacks an artifact into `dir` (which must not exist) under the rules of uploads, links
 * allowed only inside the folder, and checks its SHA-256; on any failure `dir` is gone.
 */
export async function unpackBuild(blobs: BlobStore, artifact: { key: string; sha256: string }, namespace: string, dir: string, limits: UploadLimits = ARTIFACT_LIMITS): Promise<void> {
  const hash = createHash('sha256');
  async function* hashed(): AsyncGenerator<Uint8Array> {
    for await (const chunk of blobs.get(artifact.key, { namespace })) {
      hash.update(chunk);
      yield chunk;
    }
  }
  await extractUpload(hashed(), dir, artifact.key, limits, { links: true });
  const sha256 = hash.digest('hex');
  if (sha256 !== artifact.sha256) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`artifact ${artifact.key} is not the one this build packed (SHA-256 ${sha256.slice(0, 12)}…, expected ${artifact.sha256.slice(0, 12)}…)`);
  }
}
