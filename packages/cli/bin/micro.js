#!/usr/bin/env node
// The `micro` command. A plain file (not built) so that npm can link it on install,
// before the TypeScript build has run; the command itself lives in dist/.
await import('../dist/bin.js');
