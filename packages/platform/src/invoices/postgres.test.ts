import { invoicesContract } from './contract.js';
import { pgEngines } from './testing.js';

invoicesContract('postgres', pgEngines);
