export { ServiceMetrics, METRICS_ENDPOINT, metricFamilySchema, metricsResponseSchema } from './metrics.js';
export { CallStats, Series } from './calls.js';
export type { MetricFamily, MetricSample } from './metrics.js';
export { formatPrometheus, mergeFamilies, sanitizeFamilies, SANITIZE_LIMITS } from './text.js';
export type { Sanitized } from './text.js';
export { statsService, StatsReadResponse, StatsEndpoint, StatsInstance, StatsGroup } from './definition.js';
export type { StatsService } from './definition.js';
