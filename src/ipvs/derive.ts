/**
 * derive(config, health?, overrides?) -> the IPVS table tandem wants in the kernel. Pure: no I/O, no clock.
 *
 * It maps the configuration's vocabulary onto the kernel's (include/uapi/linux/ip_vs.h):
 *
 * | configuration                         | kernel                                                      |
 * |---------------------------------------|-------------------------------------------------------------|
 * | `forwarding: nat` / `fullnat`         | IP_VS_CONN_F_MASQ (fullnat adds source NAT: see fullnat.ts)  |
 * | `forwarding: dr`                      | IP_VS_CONN_F_DROUTE                                         |
 * | `forwarding: tun` + `tunnel`          | IP_VS_CONN_F_TUNNEL + TUN_TYPE / TUN_PORT / TUN_FLAGS        |
 * | `scheduler_flags` sh-/mh-fallback, -port, flag-1..3 | IP_VS_SVC_F_SCHED1 / SCHED2 / SCHED3          |
 * | `one_packet: true`                    | IP_VS_SVC_F_ONEPACKET                                       |
 * | `persistence`                         | timeout (s) (the codec sets PERSISTENT), netmask, PE |
 *
 * Health (what the checkers found, keyed by `realServerId`, plus the quorum state of each virtual server) and
 * operator overrides are optional; derive(config) alone is the table with every server up. With health, per
 * virtual server (keepalived semantics, docs/configuration.md):
 *
 * - a checked real server without an entry is up, or down with `alpha` (it has not proven itself yet); an
 *   unchecked one is always up;
 * - a down server is left out, or kept with weight 0 with `inhibit_on_failure` (existing connections stay,
 *   no new ones);
 * - the weight is the override, else the dynamic weight the checks report (weights.ts), else the configured one;
 * - quorum: the weight of the up servers is compared with `quorum.min` with hysteresis (`stepQuorum`, pure;
 *   the caller keeps the state between calls); while the quorum is lost and a `sorry_server` is configured,
 *   the service holds the sorry server alone (keepalived removes the live servers when it adds it).
 */

import type { RealServerConfig, TandemConfig, VirtualServerConfig, VirtualServiceId, VsForwarding, VsQuorumConfig, VsSchedulerFlag } from '../config/types.ts';
import { normalizeDestAttrs, normalizeServiceAttrs } from './diff.ts';
import { SVC_FLAGS, TUNNEL_FLAGS, destKeyString, type Dest, type FwdMethod, type IpvsTable, type Service, type ServiceKey } from './model.ts';

/** Where a checked real server stands, with the dynamic weight its checks report (when they report one). */
export interface RealServerStatus {
  up: boolean;
  weight?: number;
}

/** Health of one real server as a checker sees it (see the module header for servers without an entry). */
export type RealServerHealth = 'up' | 'down' | RealServerStatus;

/** Health by `realServerId`. */
export type HealthMap = ReadonlyMap<string, RealServerHealth>;

/** Quorum state by virtual server name: true = held. Absent names are judged without hysteresis. */
export type QuorumMap = ReadonlyMap<string, boolean>;

/** Everything derive takes about health: the servers and, to honour hysteresis, the quorum states. */
export interface HealthSnapshot {
  servers: HealthMap;
  quorum?: QuorumMap;
}

/** What an operator may override on one real server at run time. */
export interface RealServerOverride {
  /** Replaces the configured weight (0 = drain). */
  weight?: number;
}

/** Overrides by `realServerId`. */
export type OverrideMap = ReadonlyMap<string, RealServerOverride>;

/** The service flag bit of each configured scheduler flag. */
const SCHEDULER_FLAG_BITS: Readonly<Record<VsSchedulerFlag, number>> = {
  'sh-fallback': SVC_FLAGS.SCHED1,
  'sh-port': SVC_FLAGS.SCHED2,
  'mh-fallback': SVC_FLAGS.SCHED1,
  'mh-port': SVC_FLAGS.SCHED2,
  'flag-1': SVC_FLAGS.SCHED1,
  'flag-2': SVC_FLAGS.SCHED2,
  'flag-3': SVC_FLAGS.SCHED3,
};

/** The kernel forwarding method of a configured one. */
export const FORWARDING_TO_FWD: Readonly<Record<VsForwarding, FwdMethod>> = {
  nat: 'masq',
  fullnat: 'masq',
  dr: 'droute',
  tun: 'tunnel',
};

/** The kernel identity of a configured virtual service. */
export function serviceKeyOf(id: VirtualServiceId): ServiceKey {
  return id.kind === 'fwmark'
    ? { kind: 'fwmark', family: id.family, fwmark: id.fwmark }
    : { kind: 'addr', family: id.family, protocol: id.protocol, address: id.address, port: id.port };
}

/** The key of one real server of one virtual server in HealthMap / OverrideMap: `web/10.99.0.21:80`. */
export function realServerId(virtualServer: string, rs: Pick<RealServerConfig, 'family' | 'address' | 'port'>): string {
  return `${virtualServer}/${destKeyString(rs)}`;
}

/** One real server of a virtual server as derive sees it. */
export interface Member {
  id: string;
  rs: RealServerConfig;
  up: boolean;
  /** The weight it would have in the kernel while up (override, dynamic or configured). */
  weight: number;
}

/** Where the real servers of a virtual server stand, and the weight of the up ones (keepalived's quorum sum). */
export function members(vs: VirtualServerConfig, health?: HealthMap, overrides?: OverrideMap): { members: Member[]; upWeight: number } {
  const out: Member[] = [];
  let upWeight = 0;
  for (const rs of vs.realServers) {
    const id = realServerId(vs.name, rs);
    const h = health?.get(id);
    let up: boolean;
    let dynamic: number | undefined;
    if (h === undefined) up = !(rs.healthCheck !== undefined && vs.health?.alpha === true);
    else if (typeof h === 'string') up = h === 'up';
    else {
      up = h.up;
      dynamic = h.weight;
    }
    const weight = overrides?.get(id)?.weight ?? dynamic ?? rs.weight;
    if (up) upWeight += weight;
    out.push({ id, rs, up, weight });
  }
  return { members: out, upWeight };
}

/**
 * The next quorum state of a virtual server (keepalived check/ipwrapper.c): held -> lost when the up weight is 0
 * or below `min - hysteresis`; lost -> held when it reaches `min + hysteresis`. `previous` undefined (start)
 * judges without hysteresis. `min` 0 never loses the quorum.
 */
export function stepQuorum(previous: boolean | undefined, upWeight: number, quorum: VsQuorumConfig): boolean {
  if (quorum.min <= 0) return true;
  if (previous === undefined) return upWeight > 0 && upWeight >= quorum.min;
  if (previous) return !(upWeight === 0 || upWeight < quorum.min - quorum.hysteresis);
  return upWeight > 0 && upWeight >= quorum.min + quorum.hysteresis;
}

function isSnapshot(h: HealthMap | HealthSnapshot | undefined): h is HealthSnapshot {
  return h !== undefined && 'servers' in h && !(h instanceof Map);
}

/** The kernel service (attributes and destinations) of one configured virtual server. */
export function deriveService(vs: VirtualServerConfig, health?: HealthMap | HealthSnapshot, overrides?: OverrideMap): Service {
  const servers = isSnapshot(health) ? health.servers : health;
  const key = serviceKeyOf(vs.service);
  let flags = 0;
  for (const f of vs.schedulerFlags) flags |= SCHEDULER_FLAG_BITS[f];
  if (vs.onePacket) flags |= SVC_FLAGS.ONEPACKET;
  const p = vs.persistence;
  const attrs = normalizeServiceAttrs({
    key,
    scheduler: vs.scheduler,
    flags,
    timeoutS: p === undefined ? 0 : p.timeoutMs / 1000,
    netmask: p === undefined ? 0 : p.netmaskValue,
    peName: p?.pe ?? '',
  });
  const fwd = FORWARDING_TO_FWD[vs.forwarding];
  const t = vs.tunnel;
  const tunnel = t === undefined ? { type: 'ipip' as const, port: 0, flags: 0 } : { type: t.type, port: t.port, flags: TUNNEL_FLAGS[t.checksum] };
  const dest = (rs: RealServerConfig, weight: number): Dest => ({
    family: rs.family,
    address: rs.address,
    port: rs.port,
    ...normalizeDestAttrs({ fwd, weight, upperThreshold: rs.upperThreshold, lowerThreshold: rs.lowerThreshold, tunnel }),
  });
  const m = members(vs, servers, overrides);
  const h = vs.health;
  if (h !== undefined && h.sorryServer !== undefined) {
    const held = (isSnapshot(health) ? health.quorum?.get(vs.name) : undefined) ?? stepQuorum(undefined, m.upWeight, h.quorum);
    if (!held) return { key, ...attrs, dests: [dest(h.sorryServer, h.sorryServer.weight)] };
  }
  const dests: Dest[] = [];
  for (const x of m.members) {
    if (x.up) dests.push(dest(x.rs, x.weight));
    else if (h?.inhibitOnFailure === true) dests.push(dest(x.rs, 0));
  }
  return { key, ...attrs, dests };
}

/**
 * The desired IPVS table: one service per configured virtual server (in configuration order) with its real
 * servers as `health` and `overrides` make them (module header). `health` is a HealthMap, or a HealthSnapshot
 * that also carries the quorum states. A configuration without `virtual_servers` yields an empty table.
 */
export function derive(config: Pick<TandemConfig, 'virtualServers'>, health?: HealthMap | HealthSnapshot, overrides?: OverrideMap): IpvsTable {
  return { services: (config.virtualServers ?? []).map((vs) => deriveService(vs, health, overrides)) };
}
