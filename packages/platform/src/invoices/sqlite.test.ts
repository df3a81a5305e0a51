import { invoicesContract } from './contract.js';
import { sqliteEngines } from './testing.js';

invoicesContract('sqlite', sqliteEngines);
