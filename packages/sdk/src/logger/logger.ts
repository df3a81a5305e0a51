import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/**
 * The root logger: structured JSON on stdout (pino). The level comes from
 * MICRO_LOG_LEVEL (trace, debug, info, warn, error, fatal, silent; default info).
 */
let root: Logger | undefined;

export function createLogger(options: LoggerOptions = {}): Logger {
  return pino({
    level: process.env.MICRO_LOG_LEVEL ?? 'info',
    base: { pid: process.pid },
    ...options,
  });
}

export function rootLogger(): Logger {
  root ??= createLogger();
  return root;
}

/** Replaces the root logger (e.g. a silent one in tests). */
export function setRootLogger(logger: Logger): void {
  root = logger;
}
