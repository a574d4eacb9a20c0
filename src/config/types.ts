/**
 * The validated configuration as the rest of tandem sees it: camelCase, durations in milliseconds, addresses
 * parsed. The YAML keys (snake_case) and their mapping live in schema.ts; docs/configuration.md documents them.
 */

import type { HealthCheckSpec, WeightPolicy } from '../healthcheck/index.ts';

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
  /**
   * The `ipvs` section with its defaults filled in; absent when the file has no `ipvs` key (use
   * `ipvsSettings(config)` from src/config/index.ts for the defaults then). Optional so that configurations built
   * in code before IPVS existed stay valid.
   */
  ipvs?: IpvsConfig;
  /** The virtual servers; absent when the file has no `virtual_servers` key (then there are none). */
  virtualServers?: VirtualServerConfig[];
  /** Connection sync; absent when the file has no `sync` key (then the kernel sync threads are not managed). */
  sync?: SyncConfig;
}

// ---------------------------------------------------------------------------------------------------------
// IPVS: the `ipvs` section and `virtual_servers`. The vocabulary here is the configuration's (nat, dr, tun,
// fullnat; sh-port); src/ipvs/derive.ts maps it onto the kernel's (masq, droute, tunnel; SCHED2).

/** Which kernel services the reconciler may delete: `owned` = only those tandem owns (created or adopted), `all` = any not configured. */
export const IPVS_MANAGE_MODES = ['owned', 'all'] as const;
export type IpvsManageMode = (typeof IPVS_MANAGE_MODES)[number];

/** Transport protocols of an address-based virtual service. */
export const VS_PROTOCOLS = ['tcp', 'udp', 'sctp'] as const;
export type VsProtocol = (typeof VS_PROTOCOLS)[number];

/** IPVS schedulers a virtual server may name (`twos` needs Linux >= 6.2; the kernel decides). */
export const VS_SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh', 'twos'] as const;
export type VsScheduler = (typeof VS_SCHEDULERS)[number];

/**
 * Scheduler flags as ipvsadm names them. `sh-*` only with `sh`, `mh-*` only with `mh`; `flag-1..3` are the raw
 * IP_VS_SVC_F_SCHED1..3 bits for any scheduler (sh-fallback = mh-fallback = flag-1, sh-port = mh-port = flag-2).
 */
export const VS_SCHEDULER_FLAGS = ['sh-fallback', 'sh-port', 'mh-fallback', 'mh-port', 'flag-1', 'flag-2', 'flag-3'] as const;
export type VsSchedulerFlag = (typeof VS_SCHEDULER_FLAGS)[number];

/** How packets reach the real servers. `fullnat` = IPVS masquerading plus source NAT to `fullnat.source`. */
export const VS_FORWARDING = ['nat', 'dr', 'tun', 'fullnat'] as const;
export type VsForwarding = (typeof VS_FORWARDING)[number];

/** Encapsulations of `forwarding: tun`. */
export const VS_TUNNEL_TYPES = ['ipip', 'gue', 'gre'] as const;
export type VsTunnelType = (typeof VS_TUNNEL_TYPES)[number];

/** Tunnel checksum modes (IP_VS_TUNNEL_ENCAP_FLAG_*): none, checksum, remote checksum offload (GUE only). */
export const VS_TUNNEL_CHECKSUMS = ['nocsum', 'csum', 'remcsum'] as const;
export type VsTunnelChecksum = (typeof VS_TUNNEL_CHECKSUMS)[number];

/** Persistence engines the kernel ships (ip_vs_pe_sip). */
export const VS_PERSISTENCE_ENGINES = ['sip'] as const;
export type VsPersistenceEngine = (typeof VS_PERSISTENCE_ENGINES)[number];

/** IPVS connection timeouts (SET_CONFIG), milliseconds (whole seconds); undefined = leave the kernel's value. */
export interface IpvsTimeoutsConfig {
  tcpMs: number | undefined;
  tcpFinMs: number | undefined;
  udpMs: number | undefined;
}

/** The `ipvs` section (all optional). */
export interface IpvsConfig {
  /** Period of the re-dump + diff that heals drift. */
  reconcileIntervalMs: number;
  manage: IpvsManageMode;
  /** undefined = tandem does not touch the kernel's timeouts. */
  timeouts: IpvsTimeoutsConfig | undefined;
}

/** The identity of a virtual service: address + protocol + port, or a firewall mark (with a family). */
export type VirtualServiceId =
  | { kind: 'addr'; family: AddressFamily; protocol: VsProtocol; address: string; port: number }
  | { kind: 'fwmark'; family: AddressFamily; fwmark: number };

export interface VsTunnelConfig {
  type: VsTunnelType;
  /** GUE UDP port; 0 for ipip and gre. */
  port: number;
  checksum: VsTunnelChecksum;
}

export interface VsPersistenceConfig {
  /** Persistence timeout (whole seconds, in ms). */
  timeoutMs: number;
  /** IPv4: the dotted netmask (`255.255.255.0`); IPv6: the prefix length as text (`64`). Full-length by default. */
  netmask: string;
  /** IPv4: netmask as a u32; IPv6: prefix length. */
  netmaskValue: number;
  pe: VsPersistenceEngine | undefined;
}

export interface RealServerConfig {
  address: string;
  family: AddressFamily;
  port: number;
  weight: number;
  upperThreshold: number;
  lowerThreshold: number;
  /**
   * The health check of this real server: its own `health_check` merged over the virtual server's (absent when
   * neither has one: the server is always up).
   */
  healthCheck?: HealthCheckConfig;
}

/** A configured health check: the checker's spec with every default applied, plus what the daemon resolves. */
export interface HealthCheckConfig {
  /** What one check does and when (`alpha` comes from the virtual server). */
  spec: HealthCheckSpec;
  /** https: a PEM file of trusted CA certificates, read when the daemon starts (instead of the system store). */
  caFile: string | undefined;
  /** How reported weights are smoothed and bounded (`dynamic_weight`); unset keys take weights.ts defaults. */
  dynamicWeight: Partial<WeightPolicy> | undefined;
}

/** Quorum of a virtual server (keepalived `quorum` / `hysteresis`), in units of real server weight. */
export interface VsQuorumConfig {
  /** Lost when the weight of the up real servers falls below `min - hysteresis` (or to 0). */
  min: number;
  /** Regained when that weight reaches `min + hysteresis`. */
  hysteresis: number;
}

/** The health-related settings of a virtual server. */
export interface VsHealthConfig {
  /** A failed real server stays in the table with weight 0 instead of being removed (keepalived `inhibit_on_failure`). */
  inhibitOnFailure: boolean;
  quorum: VsQuorumConfig;
  /** Put in (alone) while the quorum is lost; absent = the up servers stay. */
  sorryServer: RealServerConfig | undefined;
  /** Checked real servers start down until `rise` checks pass (keepalived `alpha`). */
  alpha: boolean;
}

export interface VirtualServerConfig {
  name: string;
  service: VirtualServiceId;
  scheduler: VsScheduler;
  schedulerFlags: VsSchedulerFlag[];
  forwarding: VsForwarding;
  /** Set exactly when forwarding is `tun` (default ipip). */
  tunnel: VsTunnelConfig | undefined;
  persistence: VsPersistenceConfig | undefined;
  onePacket: boolean;
  /** Set exactly when forwarding is `fullnat`: the director address the real servers see as the client. */
  fullnat: { source: string } | undefined;
  realServers: RealServerConfig[];
  /**
   * Present when the virtual server has any of `health_check`, `inhibit_on_failure`, `quorum`, `sorry_server`,
   * `alpha` (or a real server has its own `health_check`); absent = no health checking, every server always up.
   */
  health?: VsHealthConfig;
}

// ---------------------------------------------------------------------------------------------------------
// Connection sync: the `sync` section.

/**
 * When the kernel's MASTER sync thread runs. `always` (the default): on both directors from start to stop, so
 * a director that takes over is already sending when the first packet of a new connection arrives (a thread
 * started at the transition would miss the connections created while it starts); the thread sends only for
 * connections that carry traffic through this director, so on the backup it sends nothing. `while_master`:
 * started on becoming master and stopped on leaving it, as keepalived's lvs_sync_daemon does.
 */
export const SYNC_MASTER_THREAD_MODES = ['always', 'while_master'] as const;
export type SyncMasterThreadMode = (typeof SYNC_MASTER_THREAD_MODES)[number];

/** The `sync` section: kernel sync threads, injection, and the CURVE-secured resync channel to the peer. */
export interface SyncConfig {
  /** Interface of the kernel sync threads (and of injected datagrams); default node.interface. */
  interface: string;
  /** 0..255; both directors use the same. 0 makes a backup thread accept any syncid. */
  syncId: number;
  /** ZeroMQ endpoint this director serves resyncs on, e.g. `tcp://10.99.0.2:5113`. */
  listen: string;
  /** ZeroMQ endpoint of the peer director's `listen`. */
  peer: string;
  curve: { secretKeyFile: string; peerPublicKeyFile: string };
  /** How long a (re)joining director holds back preemption while waiting for its resync. */
  resyncTimeoutMs: number;
  /** Period of the digest/delta repair; 0 = off. */
  repairIntervalMs: number;
  /** Sync multicast group (IPv4 or IPv6), port and TTL, as the kernel threads use them. */
  group: string;
  port: number;
  ttl: number;
  /** sync_maxlen for the kernel threads; 0 = the kernel's default (from the interface MTU). */
  maxLen: number;
  masterThread: SyncMasterThreadMode;
}
