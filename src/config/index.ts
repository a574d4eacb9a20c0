/**
 * The configuration module's public surface: the TandemConfig types, the loader (parseConfig / loadConfig,
 * both throwing ConfigError with every issue) and the DEFAULT_* constants. Import from here, not from the
 * files behind it. `ipvsSettings` and `virtualServersOf` read the optional IPVS parts with their defaults.
 */

export type {
  AddressFamily,
  AuthConfig,
  AuthMode,
  GarpConfig,
  HealthCheckConfig,
  IpvsConfig,
  IpvsManageMode,
  IpvsTimeoutsConfig,
  MetricsConfig,
  NodeConfig,
  RealServerConfig,
  SyncConfig,
  SyncMasterThreadMode,
  TandemConfig,
  TransportConfig,
  VipConfig,
  VirtualServerConfig,
  VirtualServiceId,
  VrrpConfig,
  VrrpInstanceConfig,
  VsForwarding,
  VsPersistenceConfig,
  VsPersistenceEngine,
  VsProtocol,
  VsScheduler,
  VsSchedulerFlag,
  VsTunnelChecksum,
  VsTunnelConfig,
  VsTunnelType,
  VsHealthConfig,
  VsQuorumConfig,
} from './types.ts';
export {
  AUTH_MODES,
  SYNC_MASTER_THREAD_MODES,
  IPVS_MANAGE_MODES,
  VS_FORWARDING,
  VS_PERSISTENCE_ENGINES,
  VS_PROTOCOLS,
  VS_SCHEDULER_FLAGS,
  VS_SCHEDULERS,
  VS_TUNNEL_CHECKSUMS,
  VS_TUNNEL_TYPES,
} from './types.ts';
export { loadConfig, parseConfig } from './load.ts';
export {
  CONFIG_LIMITS,
  DEFAULT_ADVERT_INTERVAL_MS,
  DEFAULT_AUTH_MODE,
  DEFAULT_GARP,
  DEFAULT_IPVS,
  DEFAULT_MAX_PEER_PRIORITY,
  DEFAULT_MULTICAST_TTL,
  DEFAULT_PORT,
  DEFAULT_PREEMPT,
  DEFAULT_PREEMPT_DELAY_MS,
  DEFAULT_PRIORITY,
  DEFAULT_PERSISTENCE_TIMEOUT_MS,
  DEFAULT_STATE_DIR,
  DEFAULT_VS_PROTOCOL,
  DEFAULT_VS_SCHEDULER,
  DEFAULT_WEIGHT,
  DEFAULT_SYNC,
  SYNC_LIMITS,
  ipvsSettings,
  virtualServersOf,
} from './schema.ts';
export { DEFAULT_QUORUM, HEALTH_COMMON_KEYS, HEALTH_LIMITS, HEALTH_TYPE_KEYS } from './health-schema.ts';
export { ConfigError, formatConfigIssue } from '../lib/errors.ts';
export type { ConfigIssue } from '../lib/errors.ts';
