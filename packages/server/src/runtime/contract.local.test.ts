import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '@micro/sdk';
import { MicroServer } from '../server.js';
import { runtimeContract, serverClients, writeSource } from './contract.js';

/* The runtime contract (contract.ts) against LocalRuntime, in a real micro server (sandbox off: the contract, not the sandbox, is tested here). */
runtimeContract('local', async () => {
  delete process.env.MICRO_RUNTIME;
  const root = mkdtempSync(join(tmpdir(), 'micro-contract-local-'));
  const server = new MicroServer({
    home: join(root, 'home'),
    address: 'tcp://127.0.0.1:0',
    gatewayRate: false,
    logger: createLogger({ level: 'silent' }),
    sandbox: { mode: 'off' },
    runtime: { backoff: { initial: 100, max: 400 }, timing: { startTimeout: 20_000, stopTimeout: 5_000, drainDelay: 200 } },
  });
  await server.start();
  const { rt, call } = await serverClients(server);
  return {
    rt,
    call,
    source: (name, files) => writeSource(join(root, 'src', name), files),
    async close() {
      await server.stop();
      rmSync(root, { recursive: true, force: true });
    },
  };
});
