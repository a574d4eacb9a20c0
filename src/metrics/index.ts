/** Public surface of src/metrics. */
export { createMetrics, STATE_VALUE, type TandemMetrics } from './registry.ts';
export { serveMetrics, parseListen } from './http.ts';
export { createSyncMetrics } from './sync.ts';
export type { SyncMetrics } from './sync.ts';
