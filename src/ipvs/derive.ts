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
 * Health and overrides are the inputs later issues feed (health checking, operator overrides); they are keyed
 * by `realServerId` and are optional, so today derive(config) is the whole of it.
 */

import type { RealServerConfig, TandemConfig, VirtualServerConfig, VirtualServiceId, VsForwarding, VsSchedulerFlag } from '../config/types.ts';
import { normalizeDestAttrs, normalizeServiceAttrs } from './diff.ts';
import { SVC_FLAGS, TUNNEL_FLAGS, destKeyString, type Dest, type FwdMethod, type IpvsTable, type Service, type ServiceKey } from './model.ts';

/** Health of one real server as a checker sees it; a server without an entry is up. */
export type RealServerHealth = 'up' | 'down';

/** Health by `realServerId`. A `down` server is left out of the table (`inhibit_on_failure` comes later). */
export type HealthMap = ReadonlyMap<string, RealServerHealth>;

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

/** The kernel service (attributes and destinations) of one configured virtual server. */
export function deriveService(vs: VirtualServerConfig, health?: HealthMap, overrides?: OverrideMap): Service {
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
  const dests: Dest[] = [];
  for (const rs of vs.realServers) {
    const id = realServerId(vs.name, rs);
    if (health?.get(id) === 'down') continue;
    const weight = overrides?.get(id)?.weight ?? rs.weight;
    dests.push({
      family: rs.family,
      address: rs.address,
      port: rs.port,
      ...normalizeDestAttrs({ fwd, weight, upperThreshold: rs.upperThreshold, lowerThreshold: rs.lowerThreshold, tunnel }),
    });
  }
  return { key, ...attrs, dests };
}

/**
 * The desired IPVS table: one service per configured virtual server (in configuration order) with its real
 * servers, minus those `health` marks down, with `overrides` applied. A configuration without
 * `virtual_servers` yields an empty table.
 */
export function derive(config: Pick<TandemConfig, 'virtualServers'>, health?: HealthMap, overrides?: OverrideMap): IpvsTable {
  return { services: (config.virtualServers ?? []).map((vs) => deriveService(vs, health, overrides)) };
}
