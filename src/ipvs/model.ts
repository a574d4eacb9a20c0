/**
 * The domain model of IPVS tables: what a virtual service and a real server (destination) are, independent of
 * netlink wire layouts (src/ipvs/netlink converts with toWire/fromWire) and of YAML (src/config). Desired
 * state (derived from configuration) and actual state (dumped from the kernel) are both `IpvsTable`s, so the
 * diff compares like with like.
 *
 * Constants follow include/uapi/linux/ip_vs.h.
 */

import type { AddressFamily } from '../config/types.ts';
import type { NetlinkError } from '../lib/errors.ts';

/** IP protocols a virtual service can carry (IPPROTO_*). */
export const IP_PROTOCOLS = { tcp: 6, udp: 17, sctp: 132 } as const;
export type Protocol = keyof typeof IP_PROTOCOLS;

/** IPVS schedulers. `twos` needs Linux >= 6.2. */
export const SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh', 'twos'] as const;
export type Scheduler = (typeof SCHEDULERS)[number];

/** IP_VS_SVC_F_* service flags. For sh and mh, SCHED1 = fallback and SCHED2 = port. */
export const SVC_FLAGS = {
  PERSISTENT: 0x1,
  HASHED: 0x2,
  ONEPACKET: 0x4,
  SCHED1: 0x8,
  SCHED2: 0x10,
  SCHED3: 0x20,
} as const;

/** IP_VS_CONN_F_FWD_MASK values: how a destination is reached. */
export const FWD_METHODS = { masq: 0, local: 1, tunnel: 2, droute: 3, bypass: 4 } as const;
export type FwdMethod = keyof typeof FWD_METHODS;

/** IP_VS_CONN_F_TUNNEL_TYPE_*. */
export const TUNNEL_TYPES = { ipip: 0, gue: 1, gre: 2 } as const;
export type TunnelType = keyof typeof TUNNEL_TYPES;

/** IP_VS_TUNNEL_ENCAP_FLAG_*. */
export const TUNNEL_FLAGS = { nocsum: 0, csum: 1, remcsum: 2 } as const;

/** Identity of a virtual service: address+protocol+port, or a firewall mark. */
export type ServiceKey =
  | { kind: 'addr'; family: AddressFamily; protocol: Protocol; address: string; port: number }
  | { kind: 'fwmark'; family: AddressFamily; fwmark: number };

/** A virtual service's attributes (what SET_SERVICE can change). */
export interface ServiceAttrs {
  scheduler: string;
  /** IP_VS_SVC_F_* bits other than HASHED (PERSISTENT is implied by `persistence`). */
  flags: number;
  /** Persistence timeout in seconds; 0 = not persistent. */
  timeoutS: number;
  /** IPv4: dotted netmask as a u32 in host order; IPv6: prefix length. 0xffffffff / 128 when not persistent. */
  netmask: number;
  /** Persistence engine name (e.g. `sip`), or empty. */
  peName: string;
}

/** Identity of a destination within its service. */
export interface DestKey {
  family: AddressFamily;
  address: string;
  port: number;
}

export interface TunnelAttrs {
  type: TunnelType;
  /** GUE port; 0 for ipip and gre. */
  port: number;
  /** TUNNEL_FLAGS bits. */
  flags: number;
}

/** A destination's attributes (what SET_DEST can change). */
export interface DestAttrs {
  fwd: FwdMethod;
  weight: number;
  upperThreshold: number;
  lowerThreshold: number;
  tunnel: TunnelAttrs;
}

/** Counters as the kernel keeps them (since the last ZERO); rates are 2 s estimates, *bps in bytes/s. */
export interface IpvsStats {
  conns: bigint;
  inPkts: bigint;
  outPkts: bigint;
  inBytes: bigint;
  outBytes: bigint;
  cps: bigint;
  inPps: bigint;
  outPps: bigint;
  inBps: bigint;
  outBps: bigint;
}

export interface Dest extends DestKey, DestAttrs {
  /** Only in dumps. */
  activeConns?: number;
  inactiveConns?: number;
  persistConns?: number;
  stats?: IpvsStats;
}

export interface Service extends ServiceAttrs {
  key: ServiceKey;
  dests: Dest[];
  /** Only in dumps. */
  stats?: IpvsStats;
}

/** A whole table: services with their destinations. */
export interface IpvsTable {
  services: Service[];
}

/** TCP / TCP_FIN / UDP connection timeouts in seconds (0 = leave unchanged on SET). */
export interface IpvsTimeouts {
  tcp: number;
  tcpFin: number;
  udp: number;
}

/** Sync daemon state (IP_VS_STATE_*). */
export const DAEMON_STATES = { none: 0, master: 1, backup: 2 } as const;
export type DaemonState = keyof typeof DAEMON_STATES;

export interface SyncDaemon {
  state: 'master' | 'backup';
  ifname: string;
  syncId: number;
  /** 0 = kernel default. */
  maxLen: number;
  /** Multicast group (IPv4 or IPv6 text); default 224.0.0.81. */
  group: string;
  /** Default 8848. */
  port: number;
  /** Default 1. */
  ttl: number;
}

/** A stable text key of a service identity (for maps and messages), e.g. `TCP 10.0.0.1:80` or `FWM 7 v6`. */
export function serviceKeyString(k: ServiceKey): string {
  if (k.kind === 'fwmark') return `FWM ${k.fwmark}${k.family === 6 ? ' IPv6' : ''}`;
  const host = k.family === 6 ? `[${k.address}]` : k.address;
  return `${k.protocol.toUpperCase()} ${host}:${k.port}`;
}

/** A stable text key of a destination within its service, e.g. `10.0.0.21:80`. */
export function destKeyString(d: DestKey): string {
  return `${d.family === 6 ? `[${d.address}]` : d.address}:${d.port}`;
}

/** One change to the kernel's tables; the diff emits these and the client applies them (pipelined). */
export type IpvsOp =
  | { op: 'addService'; service: ServiceAttrs & { key: ServiceKey } }
  | { op: 'editService'; service: ServiceAttrs & { key: ServiceKey } }
  | { op: 'delService'; key: ServiceKey }
  | { op: 'addDest'; service: ServiceKey; dest: DestKey & DestAttrs }
  | { op: 'editDest'; service: ServiceKey; dest: DestKey & DestAttrs }
  | { op: 'delDest'; service: ServiceKey; dest: DestKey };

/** Outcome of one op in a batch: the kernel's answer, never an exception. */
export type OpResult = { ok: true } | { ok: false; error: NetlinkError };

/** `IPVS version 1.2.1` and the connection table size. */
export interface IpvsInfo {
  version: string;
  connTabSize: number;
}

/**
 * Kernel IPVS access (generic netlink family "IPVS"). One real adapter (src/ipvs/netlink/client.ts); every
 * method rejects with NetlinkError (errno, operation, object) except `apply`, which reports per op.
 */
export interface IpvsClient {
  info(): Promise<IpvsInfo>;
  /** Every service with its destinations (one service dump, then the dest dumps pipelined). */
  dump(): Promise<IpvsTable>;
  listDests(service: ServiceKey): Promise<Dest[]>;
  /** Sends every op at once (many messages in flight, matched by sequence number); results in op order. */
  apply(ops: readonly IpvsOp[]): Promise<OpResult[]>;
  getTimeouts(): Promise<IpvsTimeouts>;
  setTimeouts(t: IpvsTimeouts): Promise<void>;
  /** Zero the counters of one service (and its dests), or of everything. */
  zero(service?: ServiceKey): Promise<void>;
  /** Delete every service. */
  flush(): Promise<void>;
  startDaemon(d: SyncDaemon): Promise<void>;
  stopDaemon(state: 'master' | 'backup'): Promise<void>;
  listDaemons(): Promise<SyncDaemon[]>;
  close(): void;
}
