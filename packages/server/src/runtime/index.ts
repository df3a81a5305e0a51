/** The runtime of `micro server`: builds services from source and runs them as local processes. */
export { LocalRuntime } from './local.js';
export { maskEnv, MAX_INSTANCES } from './checks.js';
export type { RuntimeOptions, CreateRequest, LogsRequest, ProgressFn } from './local.js';
export { runtimeHandlers } from './handlers.js';
export type { Runtime } from './runtime.js';
export { Sandbox, defaultLimits, installPathsFor, sandboxMode } from './sandbox.js';
export type { SandboxLimits, SandboxMode, SandboxOptions } from './sandbox.js';
export type { Timing } from './instance.js';
export type { LogLine } from './logs.js';
