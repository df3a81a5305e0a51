import type { ServiceSpec } from './placement.js';

/** A service of the desired state for the placement's tests: an upload's build, an env with a secret. */
export const PLACEMENT_SPEC: ServiceSpec = {
  source: 'upload:runtime/uploads/00/demo.tar.gz',
  trusted: false,
  env: { GREETING: 'hi', API_TOKEN: 's3cr3t-value' },
  build: { id: 'b1', entry: 'dist/index.js', builtAt: '2026-01-01T00:00:00.000Z', artifact: { key: 'runtime/builds/demo/b1.tar.gz', sha256: 'a'.repeat(64) } },
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
};
