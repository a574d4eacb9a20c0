/**
 * The configuration module's public surface: the TandemConfig types, the loader (parseConfig / loadConfig,
 * both throwing ConfigError with every issue) and the DEFAULT_* constants. Import from here, not from the
 * files behind it.
 */

export type {
  AddressFamily,
  AuthConfig,
  AuthMode,
  GarpConfig,
  MetricsConfig,
  NodeConfig,
  TandemConfig,
  TransportConfig,
  VipConfig,
  VrrpConfig,
  VrrpInstanceConfig,
} from './types.ts';
export { AUTH_MODES } from './types.ts';
export { loadConfig, parseConfig } from './load.ts';
export {
  CONFIG_LIMITS,
  DEFAULT_ADVERT_INTERVAL_MS,
  DEFAULT_AUTH_MODE,
  DEFAULT_GARP,
  DEFAULT_MAX_PEER_PRIORITY,
  DEFAULT_MULTICAST_TTL,
  DEFAULT_PORT,
  DEFAULT_PREEMPT,
  DEFAULT_PREEMPT_DELAY_MS,
  DEFAULT_PRIORITY,
  DEFAULT_STATE_DIR,
} from './schema.ts';
export { ConfigError, formatConfigIssue } from '../lib/errors.ts';
export type { ConfigIssue } from '../lib/errors.ts';
