import { runtimeContract } from '../contract.js';
import { startCluster } from './testing.js';

/* The runtime contract (../contract.ts) against KubernetesRuntime on the fake cluster, in a real micro server. */
runtimeContract('kubernetes (fake cluster)', () => startCluster());
