/**
 * IPVS tables as text, byte for byte what ipvsadm 1.31 prints: `ipvsadm -Ln` and its variants (`--stats`,
 * `--rate`, `--thresholds`, `--persistent-conn`, `--tun-info`, `--exact`, `--nosort`, one service with
 * `-t|-u|--sctp-service|-f`), `ipvsadm -Sn`, `ipvsadm -Ln --timeout` and `ipvsadm -Ln --daemon`. Pure code: the
 * caller dumps the kernel (IpvsClient) and prints the string.
 *
 * Things ipvsadm does that this module reproduces on purpose, because the output must be identical:
 * - Sorting (unless `sort: false`) is glibc 2.36's qsort, i.e. a top-down merge sort, with ipvsadm's comparators
 *   (libipvs ipvs_cmp_services / ipvs_cmp_dests): services by fwmark, family, protocol, address, port; dests by
 *   address, port. Integers are subtracted in C's 32-bit arithmetic, which wraps: 1.0.0.0 sorts after
 *   200.0.0.0, and fwmark 1 after fwmark 0x80000002. The comparator is not transitive, so the result depends on
 *   the input order: pass tables in the kernel's dump order, as IpvsClient.dump() returns them.
 * - A dest's address is compared with the *first* dest's family: an IPv6 dest of an IPv4 service (tunnel
 *   forwarding) is compared by its first 32 bits only, and an IPv4 one against an IPv6 one as IPv4 + 3 zero words.
 * - Destination counters and rates come from STATS64 parsed as 32-bit values: every field but the byte counters
 *   is shown modulo 2^32 (ipvsadm's libipvs bug, kept here only for output parity; the model holds the true
 *   values). Service counters are 64-bit.
 * - printf's signed conversions: fwmarks, weights, syncids and timeouts print as signed 32-bit integers
 *   (`FWM  -1` for fwmark 0xffffffff); a forwarding method ipvsadm has no name for prints `(null)`.
 * - The ` pe NAME` of a list line appears only for a persistent service; `--pe NAME` of a save line always.
 * - sh / mh services show only their own two flags: an sh service with flag-3 alone lists as `sh ()` and saves
 *   as `-b ` with nothing after it.
 * Host and port names are never resolved: the output is always that of `-n`.
 */

import { addressBytes, formatAddress } from '../lib/address.ts';
import {
  FWD_METHODS,
  IP_PROTOCOLS,
  SVC_FLAGS,
  TUNNEL_TYPES,
  type Dest,
  type IpvsInfo,
  type IpvsStats,
  type IpvsTable,
  type IpvsTimeouts,
  type Service,
  type ServiceKey,
  type SyncDaemon,
} from './model.ts';

/** Which columns a list shows (ipvsadm's FMT_* precedence: stats, rate, thresholds, persistent-conn, tun-info). */
export const LIST_VIEWS = ['plain', 'stats', 'rate', 'thresholds', 'persistent-conn', 'tun-info'] as const;
export type ListView = (typeof LIST_VIEWS)[number];

/** Options of `formatList` (defaults: plain view, sorted, rounded large numbers). */
export interface ListOptions {
  view?: ListView;
  /** `--exact`: counters and rates in full instead of K/M/G/T units. */
  exact?: boolean;
  /** false = `--nosort`: kernel order. */
  sort?: boolean;
}

const AF_INET = 2;
const AF_INET6 = 10;

/** C's `(int)` of an integer that fits in 64 bits: two's complement wrap to 32 bits. */
function int32(n: number): number {
  return n | 0;
}

/** printf `%d` of a C `int` that holds a u32. */
function signed(n: number): string {
  return String(int32(n));
}

/** printf `%u` of a C `unsigned int`. */
function unsigned(n: number): string {
  return String(n >>> 0);
}

/** printf `%-Ns`. */
function left(s: string, width: number): string {
  return s.padEnd(width, ' ');
}

/** printf `%Ns`. */
function right(s: string, width: number): string {
  return s.padStart(width, ' ');
}

/** An address as inet_ntop writes it (glibc's and node's canonical forms agree), or the text as given. */
function ntop(text: string, family: 4 | 6): string {
  const bytes = addressBytes(text, family);
  return bytes === undefined ? text : formatAddress(bytes, 0, family);
}

/** `addr:port` or `[addr]:port`, ipvsadm's addrport_to_anyname with FMT_NUMERIC. */
function addrPort(text: string, family: 4 | 6, port: number): string {
  const a = ntop(text, family);
  return family === 6 ? `[${a}]:${port}` : `${a}:${port}`;
}

/**
 * The 16 bytes of libipvs's `union nf_inet_addr` as four big-endian words (ntohl of s6_addr32[i]); IPv4 fills
 * the first word and leaves three zero words, as the kernel's 16-byte ADDR attribute does.
 */
function addrWords(text: string, family: 4 | 6): [number, number, number, number] {
  const b = addressBytes(text, family);
  if (b === undefined) return [0, 0, 0, 0];
  const w = (i: number): number => (i + 4 <= b.length ? b.readUInt32BE(i) : 0);
  return [w(0), w(4), w(8), w(12)];
}

/** ntohl(a) - ntohl(b) compared as libipvs does: word by word for AF_INET6, the first word for AF_INET. */
function cmpAddrWords(a: readonly number[], b: readonly number[], v6: boolean): number {
  if (!v6) return int32((a[0] ?? 0) - (b[0] ?? 0));
  let r = 0;
  for (let i = 0; r === 0 && i < 4; i++) r = int32((a[i] ?? 0) - (b[i] ?? 0));
  return r;
}

/** The fields ipvs_cmp_services reads; libipvs zeroes protocol, address and port of a fwmark service. */
interface SvcSortKey {
  fwmark: number;
  af: number;
  protocol: number;
  words: [number, number, number, number];
  port: number;
}

function svcSortKey(k: ServiceKey): SvcSortKey {
  const af = k.family === 6 ? AF_INET6 : AF_INET;
  if (k.kind === 'fwmark') return { fwmark: k.fwmark >>> 0, af, protocol: 0, words: [0, 0, 0, 0], port: 0 };
  return { fwmark: 0, af, protocol: IP_PROTOCOLS[k.protocol], words: addrWords(k.address, k.family), port: k.port };
}

/** libipvs ipvs_cmp_services, 32-bit wrap included. */
export function compareServicesIpvsadm(a: ServiceKey, b: ServiceKey): number {
  const x = svcSortKey(a);
  const y = svcSortKey(b);
  let r = int32(x.fwmark - y.fwmark);
  if (r !== 0) return r;
  r = x.af - y.af;
  if (r !== 0) return r;
  r = x.protocol - y.protocol;
  if (r !== 0) return r;
  r = cmpAddrWords(x.words, y.words, x.af === AF_INET6);
  if (r !== 0) return r;
  return x.port - y.port;
}

/** libipvs ipvs_cmp_dests: the first dest's family decides how addresses compare; 32-bit wrap included. */
export function compareDestsIpvsadm(a: Pick<Dest, 'family' | 'address' | 'port'>, b: Pick<Dest, 'family' | 'address' | 'port'>): number {
  const r = cmpAddrWords(addrWords(a.address, a.family), addrWords(b.address, b.family), a.family === 6);
  if (r !== 0) return r;
  return a.port - b.port;
}

/**
 * glibc's qsort as Debian 12's glibc 2.36 runs it (msort.c: top-down merge sort, left half n/2, taking from the
 * left run while cmp <= 0). Stable, and with a non-transitive comparator the same permutation glibc produces.
 * Returns a new array.
 */
export function glibcQsort<T>(items: readonly T[], cmp: (a: T, b: T) => number): T[] {
  const a = items.slice();
  const tmp: T[] = new Array<T>(a.length);
  const sort = (lo: number, n: number): void => {
    if (n <= 1) return;
    const n1 = Math.floor(n / 2);
    const n2 = n - n1;
    sort(lo, n1);
    sort(lo + n1, n2);
    let i = lo;
    let j = lo + n1;
    const iEnd = lo + n1;
    const jEnd = lo + n;
    let k = 0;
    while (i < iEnd && j < jEnd) {
      if (cmp(a[i] as T, a[j] as T) <= 0) tmp[k++] = a[i++] as T;
      else tmp[k++] = a[j++] as T;
    }
    while (i < iEnd) tmp[k++] = a[i++] as T;
    // What is left of the right run is already in place.
    for (let m = 0; m < k; m++) a[lo + m] = tmp[m] as T;
  };
  sort(0, a.length);
  return a;
}

/** Services in ipvsadm's order (sorted unless `sort` is false). */
export function sortServicesIpvsadm(services: readonly Service[], sort = true): Service[] {
  return sort ? glibcQsort(services, (a, b) => compareServicesIpvsadm(a.key, b.key)) : services.slice();
}

/** Dests in ipvsadm's order (sorted unless `sort` is false). */
export function sortDestsIpvsadm(dests: readonly Dest[], sort = true): Dest[] {
  return sort ? glibcQsort(dests, compareDestsIpvsadm) : dests.slice();
}

/**
 * ipvsadm's print_largenum: `%9llu` below 10^8, then `%8llu` + K (thousands, below 10^9), M (millions, below
 * 10^11), G (billions, below 10^14), T (trillions). `exact`: the full number, at least 9 wide and always with a
 * leading space.
 */
export function formatLargeNum(n: bigint, exact = false): string {
  const s = n.toString();
  if (exact) return right(s, s.length <= 8 ? 9 : s.length + 1);
  if (n < 100_000_000n) return right(s, 9);
  if (n < 1_000_000_000n) return `${right((n / 1000n).toString(), 8)}K`;
  if (n < 100_000_000_000n) return `${right((n / 1_000_000n).toString(), 8)}M`;
  if (n < 100_000_000_000_000n) return `${right((n / 1_000_000_000n).toString(), 8)}G`;
  return `${right((n / 1_000_000_000_000n).toString(), 8)}T`;
}

const ZERO_STATS: IpvsStats = {
  conns: 0n, inPkts: 0n, outPkts: 0n, inBytes: 0n, outBytes: 0n, cps: 0n, inPps: 0n, outPps: 0n, inBps: 0n, outBps: 0n,
};

const U32 = 0xffff_ffffn;
const U64 = 0xffff_ffff_ffff_ffffn;

/** A dest's counters as ipvsadm 1.31 shows them: STATS64 read with the 32-bit parser (bytes stay 64-bit). */
function destStatsAsIpvsadm(s: IpvsStats): IpvsStats {
  return {
    conns: s.conns & U32,
    inPkts: s.inPkts & U32,
    outPkts: s.outPkts & U32,
    inBytes: s.inBytes & U64,
    outBytes: s.outBytes & U64,
    cps: s.cps & U32,
    inPps: s.inPps & U32,
    outPps: s.outPps & U32,
    inBps: s.inBps & U32,
    outBps: s.outBps & U32,
  };
}

/** ipvsadm's print_sched_flags: the comma-separated names, '' when none it knows for this scheduler. */
function schedFlagNames(s: Service): string {
  const f = s.flags;
  const names: string[] = [];
  if (s.scheduler === 'sh' || s.scheduler === 'mh') {
    if ((f & SVC_FLAGS.SCHED1) !== 0) names.push(`${s.scheduler}-fallback`);
    if ((f & SVC_FLAGS.SCHED2) !== 0) names.push(`${s.scheduler}-port`);
  } else {
    if ((f & SVC_FLAGS.SCHED1) !== 0) names.push('flag-1');
    if ((f & SVC_FLAGS.SCHED2) !== 0) names.push('flag-2');
    if ((f & SVC_FLAGS.SCHED3) !== 0) names.push('flag-3');
  }
  return names.join(',');
}

const SCHED_FLAG_MASK = SVC_FLAGS.SCHED1 | SVC_FLAGS.SCHED2 | SVC_FLAGS.SCHED3;

/**
 * ipvsadm tests the kernel's PERSISTENT bit. The model carries persistence as `timeoutS > 0` (the netlink client
 * folds the bit away and reports 0 for a service without it); a PERSISTENT bit left in `flags` counts too.
 */
function isPersistent(s: Service): boolean {
  return s.timeoutS > 0 || (s.flags & SVC_FLAGS.PERSISTENT) !== 0;
}

/** The dotted form of an IPv4 netmask held as a host-order u32 (inet_ntoa of the kernel's bytes). */
function dottedMask(mask: number): string {
  const m = mask >>> 0;
  return `${m >>> 24}.${(m >>> 16) & 0xff}.${(m >>> 8) & 0xff}.${m & 0xff}`;
}

/** ` -M mask` / ` mask mask` text when the netmask is not the full-length default; '' otherwise. */
function maskText(s: Service): string | undefined {
  if (s.key.family === 4) return s.netmask >>> 0 !== 0xffffffff ? dottedMask(s.netmask) : undefined;
  return s.netmask !== 128 ? signed(s.netmask) : undefined;
}

const PROTOCOL_NAMES: Record<string, string> = { tcp: 'TCP', udp: 'UDP', sctp: 'SCTP' };
const PROTOCOL_OPTIONS: Record<string, string> = { tcp: '-t', udp: '-u', sctp: '--sctp-service' };

/** The service column of a list line: `TCP  10.0.0.1:80`, `FWM  7`, `FWM  7 IPv6`. */
function listServiceName(k: ServiceKey): string {
  if (k.kind === 'fwmark') return `FWM  ${signed(k.fwmark)}${k.family === 6 ? ' IPv6' : ''}`;
  const name = `${left(PROTOCOL_NAMES[k.protocol] ?? '?', 4)} ${addrPort(k.address, k.family, k.port)}`;
  // ipvsadm cuts an IPv4 name at 33 characters (only a resolved host name can be that long).
  return k.family === 6 ? name : name.slice(0, 33);
}

/** The service part of a save line: `-t 10.0.0.1:80`, `-f 7`, `-f 7 -6`. */
export function saveServiceName(k: ServiceKey): string {
  if (k.kind === 'fwmark') return `-f ${signed(k.fwmark)}${k.family === 6 ? ' -6' : ''}`;
  return `${PROTOCOL_OPTIONS[k.protocol] ?? '--xxx-service'} ${addrPort(k.address, k.family, k.port)}`;
}

const FWD_NAMES: Record<number, string> = { [FWD_METHODS.masq]: 'Masq', [FWD_METHODS.local]: 'Local', [FWD_METHODS.tunnel]: 'Tunnel', [FWD_METHODS.droute]: 'Route' };
const FWD_SWITCHES: Record<number, string> = { [FWD_METHODS.masq]: '-m', [FWD_METHODS.tunnel]: '-i', [FWD_METHODS.local]: '-g', [FWD_METHODS.droute]: '-g' };
/** glibc printf's text for a NULL `%s`, which ipvsadm prints for a forwarding method it has no name for. */
const C_NULL = '(null)';

const TUN_FLAG_SHORT = ['-c', '+c', 'r+c'] as const;
const TUN_FLAG_OPTS = ['--tun-nocsum', '--tun-csum', '--tun-remcsum'] as const;

/** ipvsadm's fwd_tun_info for `--tun-info`: `ipip`, `gue:6080:+c`, `gre:-c`; undefined = `n/a`. */
function tunInfo(d: Dest): string | undefined {
  if (d.fwd !== 'tunnel') return undefined;
  const flag = TUN_FLAG_SHORT[d.tunnel.flags] ?? C_NULL;
  switch (d.tunnel.type) {
    case 'ipip':
      return 'ipip';
    case 'gue':
      return `gue:${d.tunnel.port}:${flag}`.slice(0, 15);
    case 'gre':
      return `gre:${flag}`.slice(0, 15);
    default:
      return undefined;
  }
}

/** The dest column: `addr:port`, cut at 28 characters for IPv4 as ipvsadm does (IPv6 never). */
function destName(d: Dest, rule: boolean): string {
  const n = addrPort(d.address, d.family, d.port);
  return rule || d.family === 6 ? n : n.slice(0, 28);
}

/** One `-a` line of a save (print_tunnel_rule for tunnel dests). */
function saveDestLine(svcName: string, d: Dest): string {
  const base = `-a ${svcName} -r ${destName(d, true)} ${FWD_SWITCHES[FWD_METHODS[d.fwd]] ?? C_NULL} -w ${signed(d.weight)}`;
  if (d.fwd !== 'tunnel') return base;
  const flagOpt = TUN_FLAG_OPTS[d.tunnel.flags] ?? C_NULL;
  switch (TUNNEL_TYPES[d.tunnel.type]) {
    case TUNNEL_TYPES.gre:
      return `${base} --tun-type gre ${flagOpt}`;
    case TUNNEL_TYPES.gue:
      return `${base} --tun-type gue --tun-port ${d.tunnel.port} ${flagOpt}`;
    case TUNNEL_TYPES.ipip:
      return `${base} --tun-type ipip`;
    default:
      return base;
  }
}

/** The service line of a list (plain, thresholds, persistent-conn and tun-info views share it). */
function listServiceLine(s: Service): string {
  let line = `${listServiceName(s.key)} ${s.scheduler}`;
  if ((s.flags & SCHED_FLAG_MASK) !== 0) line += ` (${schedFlagNames(s)})`;
  if (isPersistent(s)) {
    line += ` persistent ${unsigned(s.timeoutS)}`;
    const m = maskText(s);
    if (m !== undefined) line += ` mask ${m}`;
    if (s.peName !== '') line += ` pe ${s.peName}`;
  }
  if ((s.flags & SVC_FLAGS.ONEPACKET) !== 0) line += ' ops';
  return line;
}

/** The five counters of a `--stats` line. */
function statsCols(st: IpvsStats, exact: boolean): string {
  return [st.conns, st.inPkts, st.outPkts, st.inBytes, st.outBytes].map((n) => formatLargeNum(n, exact)).join('');
}

/** The five rates of a service's `--rate` line. */
function rateCols(st: IpvsStats, exact: boolean): string {
  return [st.cps, st.inPps, st.outPps, st.inBps, st.outBps].map((n) => formatLargeNum(n, exact)).join('');
}

/** One service with its dests, in the given view (ipvsadm's print_service_entry). */
function serviceBlock(s: Service, view: ListView, exact: boolean, sort: boolean): string {
  let out: string;
  const svcName = listServiceName(s.key);
  if (view === 'stats') out = `${left(svcName, 33)}${statsCols(s.stats ?? ZERO_STATS, exact)}\n`;
  else if (view === 'rate') out = `${left(svcName, 33)}${rateCols(s.stats ?? ZERO_STATS, exact)}\n`;
  else out = `${listServiceLine(s)}\n`;
  for (const d of sortDestsIpvsadm(s.dests, sort)) {
    const name = destName(d, false);
    const active = unsigned(d.activeConns ?? 0);
    const inactive = unsigned(d.inactiveConns ?? 0);
    const st = destStatsAsIpvsadm(d.stats ?? ZERO_STATS);
    switch (view) {
      case 'stats':
        out += `  -> ${left(name, 28)}${statsCols(st, exact)}\n`;
        break;
      case 'rate':
        out += `  -> ${left(name, 28)} ${right(st.cps.toString(), 8)} ${right(st.inPps.toString(), 8)} ${right(st.outPps.toString(), 8)}`;
        out += `${formatLargeNum(st.inBps, exact)}${formatLargeNum(st.outBps, exact)}\n`;
        break;
      case 'thresholds':
        out += `  -> ${left(name, 28)} ${left(unsigned(d.upperThreshold), 10)} ${left(unsigned(d.lowerThreshold), 10)} ${left(active, 10)} ${left(inactive, 10)}\n`;
        break;
      case 'persistent-conn':
        out += `  -> ${left(name, 28)} ${left(unsigned(d.weight), 9)} ${left(unsigned(d.persistConns ?? 0), 11)} ${left(active, 10)} ${left(inactive, 10)}\n`;
        break;
      case 'tun-info':
        out += `  -> ${left(name, 28)} ${left(FWD_NAMES[FWD_METHODS[d.fwd]] ?? C_NULL, 7)} ${left(tunInfo(d) ?? 'n/a', 13)} ${left(signed(d.weight), 6)} ${left(active, 10)} ${left(inactive, 10)}\n`;
        break;
      case 'plain':
        out += `  -> ${left(name, 28)} ${left(FWD_NAMES[FWD_METHODS[d.fwd]] ?? C_NULL, 7)} ${left(signed(d.weight), 6)} ${left(active, 10)} ${left(inactive, 10)}\n`;
        break;
    }
  }
  return out;
}

/** The two column-title lines of a view (ipvsadm's print_title). */
export function listTitle(view: ListView): string {
  switch (view) {
    case 'stats':
      return `${left('Prot LocalAddress:Port', 33)} ${['Conns', 'InPkts', 'OutPkts', 'InBytes', 'OutBytes'].map((h) => right(h, 8)).join(' ')}\n  -> RemoteAddress:Port\n`;
    case 'rate':
      return `${left('Prot LocalAddress:Port', 33)} ${['CPS', 'InPPS', 'OutPPS', 'InBPS', 'OutBPS'].map((h) => right(h, 8)).join(' ')}\n  -> RemoteAddress:Port\n`;
    case 'thresholds':
      return `${left('Prot LocalAddress:Port', 33)} ${['Uthreshold', 'Lthreshold', 'ActiveConn', 'InActConn'].map((h) => left(h, 10)).join(' ')}\n  -> RemoteAddress:Port\n`;
    case 'persistent-conn':
      return `${left('Prot LocalAddress:Port', 33)} ${left('Weight', 9)} ${left('PersistConn', 11)} ${left('ActiveConn', 10)} ${left('InActConn', 10)}\n  -> RemoteAddress:Port\n`;
    case 'tun-info':
      return 'Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n';
    case 'plain':
      return 'Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n';
  }
}

/** `ipvsadm -Ln [--stats|--rate|--thresholds|--persistent-conn|--tun-info] [--exact] [--nosort]`. */
export function formatList(table: IpvsTable, info: IpvsInfo, opts: ListOptions = {}): string {
  const view = opts.view ?? 'plain';
  const exact = opts.exact ?? false;
  const sort = opts.sort ?? true;
  let out = `IP Virtual Server version ${info.version} (size=${signed(info.connTabSize)})\n`;
  out += listTitle(view);
  for (const s of sortServicesIpvsadm(table.services, sort)) out += serviceBlock(s, view, exact, sort);
  return out;
}

/** `ipvsadm -Ln -t ADDR:PORT` (or `-f MARK`): one service, no version line, its dests sorted unless `sort` is false. */
export function formatListService(service: Service, opts: ListOptions = {}): string {
  const view = opts.view ?? 'plain';
  return listTitle(view) + serviceBlock(service, view, opts.exact ?? false, opts.sort ?? true);
}

/** `ipvsadm -Sn`: `-A` lines with their `-a` lines; thresholds are not saved (ipvsadm never saves them). */
export function formatSave(table: IpvsTable, opts: { sort?: boolean } = {}): string {
  const sort = opts.sort ?? true;
  let out = '';
  for (const s of sortServicesIpvsadm(table.services, sort)) {
    const svcName = saveServiceName(s.key);
    let line = `-A ${svcName} -s ${s.scheduler}`;
    if (isPersistent(s)) {
      line += ` -p ${unsigned(s.timeoutS)}`;
      const m = maskText(s);
      if (m !== undefined) line += ` -M ${m}`;
    }
    if (s.peName !== '') line += ` --pe ${s.peName}`;
    if ((s.flags & SVC_FLAGS.ONEPACKET) !== 0) line += ' -o';
    if ((s.flags & SCHED_FLAG_MASK) !== 0) line += ` -b ${schedFlagNames(s)}`;
    out += `${line}\n`;
    for (const d of sortDestsIpvsadm(s.dests, sort)) out += `${saveDestLine(svcName, d)}\n`;
  }
  return out;
}

/** `ipvsadm -Ln --timeout`: `Timeout (tcp tcpfin udp): 900 120 300`. */
export function formatTimeouts(t: IpvsTimeouts): string {
  return `Timeout (tcp tcpfin udp): ${signed(t.tcp)} ${signed(t.tcpFin)} ${signed(t.udp)}\n`;
}

/**
 * `ipvsadm -Ln --daemon`: one line per running daemon in the order given (the kernel dumps the master first):
 * `master sync daemon (mcast=eth0, syncid=1, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)`. maxlen, port
 * and ttl are left out when 0, group when empty; a daemon list without entries prints nothing.
 */
export function formatDaemons(daemons: readonly SyncDaemon[]): string {
  let out = '';
  for (const d of daemons.slice(0, 2)) {
    let line = `${d.state} sync daemon (mcast=${d.ifname}, syncid=${signed(d.syncId)}`;
    if (d.maxLen !== 0) line += `, maxlen=${unsigned(d.maxLen)}`;
    if (d.group !== '') line += `, group=${d.group.includes(':') ? ntop(d.group, 6) : ntop(d.group, 4)}`;
    if (d.port !== 0) line += `, port=${unsigned(d.port)}`;
    if (d.ttl !== 0) line += `, ttl=${unsigned(d.ttl)}`;
    out += `${line})\n`;
  }
  return out;
}
