/**
 * What a real server needs before an LVS director can send it VIP traffic by direct routing (DR) or IP
 * tunnelling (TUN): the plan, as data, with no I/O. check.ts compares a plan with the running system, apply.ts
 * carries it out and undoes it, system.ts is the adapter that touches the kernel.
 *
 * DR: the director forwards frames with the VIP as destination IP to the real server's MAC, so the real server
 * must hold the VIP (on lo: /32, /128 for IPv6) without answering ARP for it on the wire, or clients' ARP
 * caches would flap between the director and the real servers. The kernel uses max(all, interface) for
 * arp_ignore and arp_announce; set on `all` (which decides), `lo` and the ARP-facing interface as the LVS and
 * keepalived documents show:
 *   arp_ignore = 1     answer ARP only for addresses configured on the interface the request came in on
 *   arp_announce = 2   never use the VIP as the source of our own ARP requests
 * IPv6 VIPs need nothing more: neighbour solicitations are answered only for addresses on the receiving
 * interface, and lo has no neighbours.
 *
 * TUN: the director wraps the client's packet in another IP (ipip), GRE, or UDP+GUE header. The real server
 * decapsulates it on a tunnel device that must exist and be up, holds the VIP on that device, and relaxes
 * reverse-path filtering: the inner packet arrives on the tunnel from the client's address, which is routed
 * out of another interface, so strict rp_filter (1) drops it. The kernel uses max(all, device) for rp_filter:
 * both must be 0 or 2. ARP settings as for DR (the VIP is local, so without them the real server answers ARP
 * for it on its LAN).
 *   ipip  module ipip, fallback device tunl0
 *   gre   module ip_gre, fallback device gre0; it accepts GRE without checksums only (the kernel drops a packet
 *         whose checksum flag differs from the device's as a CRC error), so the director must use
 *         --tun-nocsum (ipvsadm's default)
 *   gue   module fou + a GUE receive port (`ip fou add port N gue`), whose inner IPIP packets reach tunl0
 * TUN VIPs are IPv4 (the kernel's IPv6 tunnels ip6tnl0 / ip6gre0 are not handled yet).
 */

import type { AddressFamily } from '../config/types.ts';
import { addressBytes, formatAddress } from '../lib/address.ts';
import { UsageError } from '../lib/errors.ts';

/** How the director reaches the real server. */
export const REALSERVER_MODES = ['dr', 'tun'] as const;
export type RealserverMode = (typeof REALSERVER_MODES)[number];

/** Encapsulations IPVS can use for TUN (ipvsadm --tun-type). */
export const TUNNEL_KINDS = ['ipip', 'gue', 'gre'] as const;
export type TunnelKind = (typeof TUNNEL_KINDS)[number];

/** A VIP the real server must accept. */
export interface RealserverVip {
  address: string;
  family: AddressFamily;
}

/** What `tandem realserver up|down|check` was asked for. */
export interface RealserverSpec {
  vips: RealserverVip[];
  mode: RealserverMode;
  /** TUN only; default ipip. */
  tunnel?: TunnelKind;
  /** GUE only: the UDP port the director sends to (ipvsadm --tun-port). */
  guePort?: number;
  /** The interface ARP requests arrive on (usually the default route's); undefined = only `all` and `lo`. */
  interface?: string;
}

/** One thing that must hold on the real server. `owners` are the VIPs that need it (for `down`). */
export type Requirement =
  | {
      kind: 'sysctl';
      /** Dotted name, e.g. net.ipv4.conf.all.arp_ignore (/proc/sys/net/ipv4/conf/all/arp_ignore). */
      key: string;
      /** Values that satisfy it. */
      accept: readonly number[];
      /** The value `up` writes. */
      value: number;
      why: string;
      owners: string[];
    }
  | { kind: 'address'; ifname: string; address: string; prefixLength: number; family: AddressFamily; why: string; owners: string[] }
  | { kind: 'link'; ifname: string; module: string; why: string; owners: string[] }
  | { kind: 'fou'; port: number; why: string; owners: string[] };

/** The tunnel device a TUN encapsulation is received on, and the module that creates it. */
export const TUNNEL_DEVICES: Record<TunnelKind, { ifname: string; module: string }> = {
  ipip: { ifname: 'tunl0', module: 'ipip' },
  gue: { ifname: 'tunl0', module: 'ipip' },
  gre: { ifname: 'gre0', module: 'ip_gre' },
};

/** The canonical text and family of a VIP, or a UsageError. */
export function parseVip(text: string): RealserverVip {
  const bytes = addressBytes(text);
  if (bytes === undefined) throw new UsageError(`--vip ${text}: not an IPv4 or IPv6 address (give the address alone, without /prefix)`);
  const family = bytes.length === 4 ? 4 : 6;
  return { address: formatAddress(bytes, 0, family), family };
}

/** An interface name as the kernel accepts it (IFNAMSIZ 16 with the NUL; no '/', whitespace or ':'). */
function validIfname(name: string): boolean {
  return /^[^\s/:]{1,15}$/.test(name) && name !== '.' && name !== '..';
}

/**
 * The sysctl(8) name of an IPv4 per-interface setting. As sysctl(8) does, a '.' inside the interface name
 * (a VLAN such as eth0.100) is written '/' so the dots keep separating path components.
 */
export function confKey(ifname: string, name: string): string {
  return `net.ipv4.conf.${ifname.replaceAll('.', '/')}.${name}`;
}

/** The /proc/sys path of a sysctl(8) name: dots separate components, '/' stands for a '.' inside one. */
export function sysctlPath(key: string): string {
  return `/proc/sys/${key.split('.').map((seg) => seg.replaceAll('/', '.')).join('/')}`;
}

/**
 * The requirements for `spec`, in the order `up` applies them (modules and devices, then sysctls, then
 * addresses) and `check` reports them. Throws UsageError for a spec that cannot be prepared.
 */
export function planRealserver(spec: RealserverSpec): Requirement[] {
  if (spec.vips.length === 0) throw new UsageError('at least one --vip is needed');
  if (spec.interface !== undefined && !validIfname(spec.interface)) throw new UsageError(`--interface ${spec.interface}: not an interface name`);
  const tunnel = spec.tunnel ?? 'ipip';
  if (spec.mode === 'dr' && (spec.tunnel !== undefined || spec.guePort !== undefined)) {
    throw new UsageError('--tunnel and --gue-port are for --mode tun');
  }
  if (spec.mode === 'tun') {
    const v6 = spec.vips.find((v) => v.family === 6);
    if (v6 !== undefined) throw new UsageError(`--vip ${v6.address}: TUN mode handles IPv4 VIPs only (IPv6 tunnels are not supported yet); use --mode dr`);
    if (tunnel === 'gue' && spec.guePort === undefined) throw new UsageError('--tunnel gue needs --gue-port N (the director\'s --tun-port)');
    if (tunnel !== 'gue' && spec.guePort !== undefined) throw new UsageError('--gue-port is for --tunnel gue');
    if (spec.guePort !== undefined && !(Number.isInteger(spec.guePort) && spec.guePort >= 1 && spec.guePort <= 65535)) {
      throw new UsageError(`--gue-port ${spec.guePort}: must be 1-65535`);
    }
  }
  const seen = new Set<string>();
  const vips = spec.vips.filter((v) => (seen.has(v.address) ? false : (seen.add(v.address), true)));
  const all = vips.map((v) => v.address);
  const v4 = vips.filter((v) => v.family === 4).map((v) => v.address);
  const reqs: Requirement[] = [];

  const dev = spec.mode === 'tun' ? TUNNEL_DEVICES[tunnel] : undefined;
  if (dev !== undefined) {
    const why = tunnel === 'gre' ? 'GRE packets are decapsulated on gre0 (without checksums: director --tun-nocsum)' : `${tunnel} packets are decapsulated on ${dev.ifname}`;
    reqs.push({ kind: 'link', ifname: dev.ifname, module: dev.module, why, owners: all });
    if (tunnel === 'gue' && spec.guePort !== undefined) {
      reqs.push({ kind: 'fou', port: spec.guePort, why: `GUE on UDP port ${spec.guePort} is unwrapped into IPIP for ${dev.ifname}`, owners: all });
    }
  }

  if (v4.length > 0) {
    const arpIfs = ['all', 'lo', ...(spec.interface !== undefined && spec.interface !== 'lo' ? [spec.interface] : [])];
    for (const ifn of arpIfs) {
      reqs.push({
        kind: 'sysctl',
        key: confKey(ifn, 'arp_ignore'),
        accept: [1, 2],
        value: 1,
        why: ifn === 'all' ? 'answer ARP only for addresses of the receiving interface, not for the VIP' : `as on all (the kernel uses the larger of all and ${ifn})`,
        owners: v4,
      });
      reqs.push({
        kind: 'sysctl',
        key: confKey(ifn, 'arp_announce'),
        accept: [2],
        value: 2,
        why: ifn === 'all' ? 'never use the VIP as the source of our own ARP requests' : `as on all (the kernel uses the larger of all and ${ifn})`,
        owners: v4,
      });
    }
  }
  if (dev !== undefined) {
    for (const ifn of ['all', dev.ifname]) {
      reqs.push({
        kind: 'sysctl',
        key: confKey(ifn, 'rp_filter'),
        accept: [0, 2],
        value: 0,
        why: `strict reverse-path filtering drops decapsulated packets from clients (the kernel uses the larger of all and ${dev.ifname})`,
        owners: all,
      });
    }
  }

  const holder = dev?.ifname ?? 'lo';
  for (const v of vips) {
    reqs.push({
      kind: 'address',
      ifname: holder,
      address: v.address,
      prefixLength: v.family === 4 ? 32 : 128,
      family: v.family,
      why: spec.mode === 'dr' ? 'the real server accepts packets the director routes to it for the VIP' : `decapsulated packets for the VIP are delivered locally`,
      owners: [v.address],
    });
  }
  return reqs;
}

/** A stable identity of a requirement (state file, messages). */
export function requirementId(r: Requirement): string {
  switch (r.kind) {
    case 'sysctl':
      return `sysctl ${r.key}`;
    case 'address':
      return `address ${r.address}/${r.prefixLength} dev ${r.ifname}`;
    case 'link':
      return `link ${r.ifname}`;
    case 'fou':
      return `fou port ${r.port} gue`;
  }
}

/** What must hold, in words: `net.ipv4.conf.all.arp_ignore = 1`, `10.0.0.1/32 on lo`, `tunl0 exists and is up`. */
export function describeRequirement(r: Requirement): string {
  switch (r.kind) {
    case 'sysctl':
      return `sysctl ${r.key} = ${r.accept.join(' or ')}`;
    case 'address':
      return `address ${r.address}/${r.prefixLength} on ${r.ifname}`;
    case 'link':
      return `link ${r.ifname} exists and is up`;
    case 'fou':
      return `GUE receive port ${r.port} (fou)`;
  }
}

/** The exact shell command that makes a requirement hold (what `check` prints and `up` does). */
export function fixCommand(r: Requirement): string {
  switch (r.kind) {
    case 'sysctl':
      return `sysctl -w ${r.key}=${r.value}`;
    case 'address':
      return `ip ${r.family === 6 ? '-6 ' : ''}addr add ${r.address}/${r.prefixLength} dev ${r.ifname}`;
    case 'link':
      return `modprobe ${r.module} && ip link set dev ${r.ifname} up`;
    case 'fou':
      return `modprobe fou && ip fou add port ${r.port} gue`;
  }
}
