/**
 * The validated configuration as the rest of tandem sees it: camelCase, durations in milliseconds, addresses
 * parsed. The YAML keys (snake_case) and their mapping live in schema.ts; docs/configuration.md documents them.
 */

export const AUTH_MODES = ['receive-only', 'permissive', 'enforce'] as const;
export type AuthMode = (typeof AUTH_MODES)[number];

export type AddressFamily = 4 | 6;

/** A VIP: an address with its prefix length, e.g. 10.99.0.100/32. */
export interface VipConfig {
  address: string;
  prefixLength: number;
  family: AddressFamily;
  /** Interface to hold the VIP; defaults to the instance's interface. */
  interface: string;
}

export interface GarpConfig {
  /** Announcements after the first one (the first is sent at once). */
  repeat: number;
  intervalMs: number;
  /** Periodic re-announcement while master; 0 = off. */
  refreshMs: number;
}

export interface VrrpInstanceConfig {
  name: string;
  vrid: number;
  priority: number;
  advertIntervalMs: number;
  preempt: boolean;
  preemptDelayMs: number;
  interface: string;
  vips: VipConfig[];
  garp: GarpConfig;
}

export type TransportConfig =
  | { mode: 'unicast'; port: number; source: string; peers: string[] }
  | { mode: 'multicast'; port: number; group: string; source: string | undefined; ttl: number };

export interface AuthConfig {
  keyFile: string;
  mode: AuthMode;
  /** Key id used to sign; undefined = the first key in the file. */
  sendKeyId: number | undefined;
}

export interface VrrpConfig {
  transport: TransportConfig;
  auth: AuthConfig | undefined;
  /** Highest priority accepted from a peer; 255 (address owner) is refused unless this is 255. */
  maxPeerPriority: number;
  instances: VrrpInstanceConfig[];
}

export interface NodeConfig {
  name: string;
  interface: string;
  /** Where tandem keeps state across restarts (the authentication boot epoch). */
  stateDir: string;
}

export interface MetricsConfig {
  /** host:port for the Prometheus endpoint; undefined = no endpoint. */
  listen: string | undefined;
}

export interface TandemConfig {
  /** The file this came from (for messages). */
  file: string;
  node: NodeConfig;
  vrrp: VrrpConfig;
  metrics: MetricsConfig;
}
