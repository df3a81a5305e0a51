/**
 * @micro/cli: the `micro` command. Its bin is bin/micro.js; this module is for running
 * it from code (tests, other tools) and for reusing its parts.
 */
export { main, buildProgram } from './main.js';
export { CliContext } from './context.js';
export type { Io } from './context.js';
export { Home, LOCAL_ENV } from './config.js';
export { parseFlags, resolveFlag, describeFields } from './flags.js';
export { scaffold } from './commands/new.js';
