import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/**
 * The root logger: structured JSON on stdout (pino). The level comes from
 * MICRO_LOG_LEVEL (trace, debug, info, warn, error, fatal, silent; default info).
 */
let root: Logger | undefined;

/** A logger with the defaults above; `destination` is stdout unless given (tests capture lines with it). */
export function createLogger(options: LoggerOptions = {}, destination?: DestinationStream): Logger {
  const opts = { level: process.env.MICRO_LOG_LEVEL ?? 'info', base: { pid: process.pid }, ...options };
  return destination ? pino(opts, destination) : pino(opts);
}

export function rootLogger(): Logger {
  root ??= createLogger();
  return root;
}

/** Replaces the root logger (e.g. a silent one in tests). */
export function setRootLogger(logger: Logger): void {
  root = logger;
}

export interface ServiceLogFields {
  service: string;
  namespace: string;
  /** the service's registry node id, the instance when the runtime did not start it */
  node: string;
}

/**
 * The logger of a service: every line carries `service`, `namespace` and `instance` (the
 * runtime's instance id, MICRO_RUNTIME_INSTANCE, when `micro run` started it, so that a
 * line matches `micro status`; else the registry node id). A call's logger (ctx.logger)
 * is a child of it that adds `traceId`.
 */
export function serviceLogger(parent: Logger, fields: ServiceLogFields): Logger {
  const instance = process.env.MICRO_RUNTIME_INSTANCE || fields.node;
  return parent.child({ service: fields.service, namespace: fields.namespace, instance, node: fields.node });
}
