/**
 * The IPVS generic netlink family ("IPVS", version 1) as pure code: the attribute layouts of
 * include/uapi/linux/ip_vs.h declared once as constant tables, converters between the domain model
 * (src/ipvs/model.ts) and those attributes (`*ToWire` / `*FromWire`), a request builder for every command, and
 * reply decoders. No I/O: client.ts sends what this builds and hands back what the kernel answered.
 *
 * Wire facts (net/netfilter/ipvs/ip_vs_ctl.c): ports are big-endian; an IPv4 netmask is a big-endian mask and an
 * IPv6 "netmask" is the prefix length 1..128 as a host-order u32 in the same 4 bytes; daemon MCAST_PORT is host
 * order; addresses are sent and received as 16 bytes (union nf_inet_addr, IPv4 in the first 4); replies nest
 * without NLA_F_NESTED; FLAGS in replies carry mask 0xffffffff and the internal HASHED bit; dests carry both
 * STATS (mixed u32/u64) and STATS64 (all u64), and STATS64 is preferred.
 *
 * Encoders throw CodecError for values the kernel cannot take (a negative weight, a port above 65535, a
 * scheduler name over 15 characters); decoders return results and never throw.
 */

import type { AddressFamily } from '../../config/types.ts';
import { addressBytes, formatAddress, writeAddressBytes } from '../../lib/address.ts';
import { CodecError } from '../../lib/errors.ts';
import { fail, ok } from '../../lib/result.ts';
import {
  DAEMON_STATES,
  FWD_METHODS,
  IP_PROTOCOLS,
  SVC_FLAGS,
  TUNNEL_TYPES,
  destKeyString,
  serviceKeyString,
} from '../model.ts';
import type {
  Dest,
  DestAttrs,
  DestKey,
  FwdMethod,
  IpvsInfo,
  IpvsOp,
  IpvsStats,
  IpvsTimeouts,
  Protocol,
  Service,
  ServiceAttrs,
  ServiceKey,
  SyncDaemon,
  TunnelType,
} from '../model.ts';
import { GENL_HDRLEN, NLMSG_HDRLEN, NLM_F, align4, attrsLength, decodeAttrs, decodeGenlPayload, hostU32Bytes, readHostU32, writeGenlMsg } from './genl.ts';
import type { AttrTable, AttrValues, Decoded } from './genl.ts';

/** The family name to resolve through the ctrl family, and the version requests carry. */
export const IPVS_GENL_NAME = 'IPVS';
export const IPVS_GENL_VERSION = 1;

/** IPVS_CMD_* (ip_vs.h). GET_SERVICE replies use NEW_SERVICE, GET_DEST NEW_DEST, GET_DAEMON NEW_DAEMON,
 * GET_CONFIG SET_CONFIG and GET_INFO SET_INFO. */
export const IPVS_CMD = {
  NEW_SERVICE: 1,
  SET_SERVICE: 2,
  DEL_SERVICE: 3,
  GET_SERVICE: 4,
  NEW_DEST: 5,
  SET_DEST: 6,
  DEL_DEST: 7,
  GET_DEST: 8,
  NEW_DAEMON: 9,
  DEL_DAEMON: 10,
  GET_DAEMON: 11,
  SET_CONFIG: 12,
  GET_CONFIG: 13,
  SET_INFO: 14,
  GET_INFO: 15,
  ZERO: 16,
  FLUSH: 17,
} as const;
/** A command name, e.g. `NEW_DEST` (used as the `operation` of NetlinkError). */
export type IpvsCmdName = keyof typeof IPVS_CMD;

/** Address families as the kernel numbers them (linux/socket.h). */
export const AF = { INET: 2, INET6: 10 } as const;

/** IP_VS_SCHEDNAME_MAXLEN, IP_VS_PENAME_MAXLEN, IP_VS_IFNAME_MAXLEN (ip_vs.h), each including the NUL. */
export const IP_VS_SCHEDNAME_MAXLEN = 16;
export const IP_VS_PENAME_MAXLEN = 16;
export const IP_VS_IFNAME_MAXLEN = 16;
/** sizeof(union nf_inet_addr). */
const NF_INET_ADDR_LEN = 16;
/** IP_VS_CONN_F_FWD_MASK: the forwarding method bits of a dest's conn_flags. */
export const IP_VS_CONN_F_FWD_MASK = 0x7;

/** IPVS_STATS_ATTR_* as IPVS_SVC_ATTR_STATS / IPVS_DEST_ATTR_STATS carry them (ip_vs_genl_fill_stats). */
export const IPVS_STATS_ATTR = {
  CONNS: { type: 1, kind: 'u32' },
  INPKTS: { type: 2, kind: 'u32' },
  OUTPKTS: { type: 3, kind: 'u32' },
  INBYTES: { type: 4, kind: 'u64' },
  OUTBYTES: { type: 5, kind: 'u64' },
  CPS: { type: 6, kind: 'u32' },
  INPPS: { type: 7, kind: 'u32' },
  OUTPPS: { type: 8, kind: 'u32' },
  INBPS: { type: 9, kind: 'u32' },
  OUTBPS: { type: 10, kind: 'u32' },
  PAD: { type: 11, kind: 'pad' },
} as const;

type Widened<T extends AttrTable> = {
  readonly [K in keyof T]: T[K] extends { readonly kind: 'pad' } ? T[K] : { readonly type: T[K]['type']; readonly kind: 'u64' };
};

/** IPVS_STATS_ATTR_* as the *_STATS64 attributes carry them: the same numbers, every counter u64. */
export const IPVS_STATS64_ATTR: Widened<typeof IPVS_STATS_ATTR> = Object.freeze(
  Object.fromEntries(Object.entries(IPVS_STATS_ATTR).map(([k, s]) => [k, s.kind === 'pad' ? s : { type: s.type, kind: 'u64' }])),
) as Widened<typeof IPVS_STATS_ATTR>;

/** IPVS_SVC_ATTR_* (ip_vs.h; sizes from ip_vs_svc_policy and ip_vs_genl_fill_service). */
export const IPVS_SVC_ATTR = {
  AF: { type: 1, kind: 'u16' },
  PROTOCOL: { type: 2, kind: 'u16' },
  ADDR: { type: 3, kind: 'binary', maxLen: NF_INET_ADDR_LEN },
  PORT: { type: 4, kind: 'be16' },
  FWMARK: { type: 5, kind: 'u32' },
  SCHED_NAME: { type: 6, kind: 'string', maxLen: IP_VS_SCHEDNAME_MAXLEN - 1 },
  FLAGS: { type: 7, kind: 'flags' },
  TIMEOUT: { type: 8, kind: 'u32' },
  /** IPv4: big-endian mask; IPv6: prefix length as a host-order u32 (see netmaskToWire). */
  NETMASK: { type: 9, kind: 'binary', maxLen: 4 },
  STATS: { type: 10, kind: 'nested', name: 'IPVS_STATS_ATTR', table: IPVS_STATS_ATTR },
  PE_NAME: { type: 11, kind: 'string', maxLen: IP_VS_PENAME_MAXLEN },
  STATS64: { type: 12, kind: 'nested', name: 'IPVS_STATS_ATTR', table: IPVS_STATS64_ATTR },
} as const;

/** IPVS_DEST_ATTR_* (ip_vs.h; sizes from ip_vs_dest_policy and ip_vs_genl_fill_dest). */
export const IPVS_DEST_ATTR = {
  ADDR: { type: 1, kind: 'binary', maxLen: NF_INET_ADDR_LEN },
  PORT: { type: 2, kind: 'be16' },
  FWD_METHOD: { type: 3, kind: 'u32' },
  WEIGHT: { type: 4, kind: 'u32' },
  U_THRESH: { type: 5, kind: 'u32' },
  L_THRESH: { type: 6, kind: 'u32' },
  ACTIVE_CONNS: { type: 7, kind: 'u32' },
  INACT_CONNS: { type: 8, kind: 'u32' },
  PERSIST_CONNS: { type: 9, kind: 'u32' },
  STATS: { type: 10, kind: 'nested', name: 'IPVS_STATS_ATTR', table: IPVS_STATS_ATTR },
  ADDR_FAMILY: { type: 11, kind: 'u16' },
  STATS64: { type: 12, kind: 'nested', name: 'IPVS_STATS_ATTR', table: IPVS_STATS64_ATTR },
  TUN_TYPE: { type: 13, kind: 'u8' },
  TUN_PORT: { type: 14, kind: 'be16' },
  TUN_FLAGS: { type: 15, kind: 'u16' },
} as const;

/** IPVS_DAEMON_ATTR_* (ip_vs.h; ip_vs_daemon_policy). MCAST_PORT is host order, unlike every other port. */
export const IPVS_DAEMON_ATTR = {
  STATE: { type: 1, kind: 'u32' },
  MCAST_IFN: { type: 2, kind: 'string', maxLen: IP_VS_IFNAME_MAXLEN - 1 },
  SYNC_ID: { type: 3, kind: 'u32' },
  SYNC_MAXLEN: { type: 4, kind: 'u16' },
  MCAST_GROUP: { type: 5, kind: 'binary', maxLen: 4 },
  MCAST_GROUP6: { type: 6, kind: 'binary', maxLen: 16 },
  MCAST_PORT: { type: 7, kind: 'u16' },
  MCAST_TTL: { type: 8, kind: 'u8' },
} as const;

/** IPVS_CMD_ATTR_* (ip_vs.h): the top level of every IPVS message except the GET_INFO reply. */
export const IPVS_CMD_ATTR = {
  SERVICE: { type: 1, kind: 'nested', name: 'IPVS_SVC_ATTR', table: IPVS_SVC_ATTR },
  DEST: { type: 2, kind: 'nested', name: 'IPVS_DEST_ATTR', table: IPVS_DEST_ATTR },
  DAEMON: { type: 3, kind: 'nested', name: 'IPVS_DAEMON_ATTR', table: IPVS_DAEMON_ATTR },
  TIMEOUT_TCP: { type: 4, kind: 'u32' },
  TIMEOUT_TCP_FIN: { type: 5, kind: 'u32' },
  TIMEOUT_UDP: { type: 6, kind: 'u32' },
} as const;

/** IPVS_INFO_ATTR_* (ip_vs.h): the top level of the GET_INFO reply (cmd SET_INFO). */
export const IPVS_INFO_ATTR = {
  VERSION: { type: 1, kind: 'u32' },
  CONN_TAB_SIZE: { type: 2, kind: 'u32' },
} as const;

/** Wire values of each layout. */
export type SvcWire = AttrValues<typeof IPVS_SVC_ATTR>;
export type DestWire = AttrValues<typeof IPVS_DEST_ATTR>;
export type DaemonWire = AttrValues<typeof IPVS_DAEMON_ATTR>;
export type CmdWire = AttrValues<typeof IPVS_CMD_ATTR>;
export type InfoWire = AttrValues<typeof IPVS_INFO_ATTR>;
export type StatsWire = AttrValues<typeof IPVS_STATS_ATTR> | AttrValues<typeof IPVS_STATS64_ATTR>;

/** Sync daemon defaults the kernel applies to zero values (ip_vs_sync.c: IP_VS_SYNC_GROUP/PORT, TTL 1). */
export const DEFAULT_SYNC_GROUP = '224.0.0.81';
export const DEFAULT_SYNC_PORT = 8848;
export const DEFAULT_SYNC_TTL = 1;

/** Largest weight: the kernel keeps it in an int (a negative one is ERANGE). */
export const IP_VS_MAX_WEIGHT = 0x7fffffff;

// ---------------------------------------------------------------------------------------------------------
// Converters: domain model <-> attribute values

function familyToAf(family: AddressFamily): number {
  return family === 6 ? AF.INET6 : AF.INET;
}

function afToFamily(af: number): AddressFamily | undefined {
  return af === AF.INET ? 4 : af === AF.INET6 ? 6 : undefined;
}

function checkFamily(family: unknown, what: string): AddressFamily {
  if (family !== 4 && family !== 6) throw new CodecError(`${what}: address family ${String(family)} is neither 4 nor 6`);
  return family;
}

/**
 * `v` when it is an integer in min..max, else CodecError naming `what` and `field`. The message is only built on
 * failure: this runs several times for each of thousands of requests.
 */
function checkInt(v: unknown, min: number, max: number, what: string, field?: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new CodecError(`${field === undefined ? what : `${what}: ${field}`}: ${String(v)} is out of range (an integer ${min}..${max})`);
  }
  return v;
}

/** An address as the 16 bytes of a union nf_inet_addr (IPv4 in the first 4). */
function addrToWire(address: string, family: AddressFamily, what: string): Buffer {
  // From Node's shared pool (Buffer.alloc would create an ArrayBuffer per address), zeroed for the IPv4 tail.
  const out = Buffer.allocUnsafe(NF_INET_ADDR_LEN).fill(0);
  if (!writeAddressBytes(address, family, out)) throw new CodecError(`${what}: address: ${JSON.stringify(address)} is not an IPv${family} address`);
  return out;
}

function addrFromWire(bytes: Buffer, family: AddressFamily, what: string): Decoded<string> {
  const need = family === 4 ? 4 : 16;
  if (bytes.length < need) return fail('bad_attr', `${what}: ${bytes.length} address bytes, IPv${family} needs ${need}`);
  return ok(formatAddress(bytes, 0, family));
}

/** The identifying attributes of a service: AF + FWMARK, or AF + PROTOCOL + ADDR + PORT. Throws CodecError. */
export function serviceKeyToWire(key: ServiceKey, what = `service ${describeKey(key)}`): SvcWire {
  const family = checkFamily(key.family, what);
  if (key.kind === 'fwmark') return { AF: familyToAf(family), FWMARK: checkInt(key.fwmark, 1, 0xffffffff, what, 'fwmark') };
  const proto: number | undefined = Object.hasOwn(IP_PROTOCOLS, key.protocol) ? IP_PROTOCOLS[key.protocol] : undefined;
  if (proto === undefined) throw new CodecError(`${what}: protocol ${JSON.stringify(key.protocol)} is not one of ${Object.keys(IP_PROTOCOLS).join(', ')}`);
  return { AF: familyToAf(family), PROTOCOL: proto, ADDR: addrToWire(key.address, family, what), PORT: checkInt(key.port, 0, 0xffff, what, 'port') };
}

/** serviceKeyString, safe for keys that are not valid (error messages). */
function describeKey(key: ServiceKey): string {
  try {
    return serviceKeyString(key);
  } catch {
    return JSON.stringify(key);
  }
}

/** IPv4: the mask (host-order number, e.g. 0xffffff00) as big-endian bytes; IPv6: prefix 1..128 as host u32. */
export function netmaskToWire(netmask: number, family: AddressFamily, what: string): Buffer {
  if (family === 6) return hostU32Bytes(checkInt(netmask, 1, 128, what, 'IPv6 netmask (prefix length)'));
  const out = Buffer.alloc(4);
  out.writeUInt32BE(checkInt(netmask, 0, 0xffffffff, what, 'IPv4 netmask'));
  return out;
}

/** The inverse of netmaskToWire. */
export function netmaskFromWire(bytes: Buffer, family: AddressFamily): Decoded<number> {
  if (bytes.length !== 4) return fail('bad_attr', `IPVS_SVC_ATTR_NETMASK: ${bytes.length} bytes, expected 4`);
  return ok(family === 6 ? readHostU32(bytes) : bytes.readUInt32BE(0));
}

/** Service flag bits the model never carries: HASHED is kernel-internal, PERSISTENT follows timeoutS. */
const IMPLIED_SVC_FLAGS = SVC_FLAGS.HASHED | SVC_FLAGS.PERSISTENT;

/**
 * A whole service as NEW_SERVICE / SET_SERVICE want it: identity, SCHED_NAME, FLAGS (PERSISTENT set iff
 * timeoutS > 0, mask 0xffffffff so every bit is set as given), TIMEOUT, NETMASK (mandatory even when not
 * persistent) and PE_NAME when not empty. Throws CodecError.
 */
export function serviceToWire(svc: ServiceAttrs & { key: ServiceKey }): SvcWire {
  const what = `service ${describeKey(svc.key)}`;
  const out = serviceKeyToWire(svc.key);
  if (typeof svc.scheduler !== 'string' || svc.scheduler === '') throw new CodecError(`${what}: the scheduler name is empty`);
  const flags = checkInt(svc.flags, 0, 0xffffffff, what, 'flags');
  if ((flags & IMPLIED_SVC_FLAGS) !== 0) {
    throw new CodecError(`${what}: flags 0x${flags.toString(16)} include HASHED (0x2, kernel-internal) or PERSISTENT (0x1, set through timeoutS)`);
  }
  const timeoutS = checkInt(svc.timeoutS, 0, 0xffffffff, what, 'persistence timeout');
  out.SCHED_NAME = checkName(svc.scheduler, IP_VS_SCHEDNAME_MAXLEN - 1, `${what}: scheduler`);
  out.FLAGS = { flags: (flags | (timeoutS > 0 ? SVC_FLAGS.PERSISTENT : 0)) >>> 0, mask: 0xffffffff };
  out.TIMEOUT = timeoutS;
  out.NETMASK = netmaskToWire(svc.netmask, svc.key.family, what);
  if (svc.peName !== '') out.PE_NAME = checkName(svc.peName, IP_VS_PENAME_MAXLEN, `${what}: persistence engine`);
  return out;
}

function checkName(name: unknown, maxLen: number, what: string): string {
  if (typeof name !== 'string') throw new CodecError(`${what}: not a string`);
  const len = Buffer.byteLength(name);
  if (len > maxLen) throw new CodecError(`${what} name ${JSON.stringify(name)} is ${len} characters long; the kernel takes at most ${maxLen}`);
  if (name.includes('\0')) throw new CodecError(`${what} name ${JSON.stringify(name)} contains a NUL character`);
  return name;
}

const PROTOCOL_BY_NUMBER = new Map<number, Protocol>(Object.entries(IP_PROTOCOLS).map(([k, v]) => [v, k as Protocol]));
const FWD_BY_NUMBER = new Map<number, FwdMethod>(Object.entries(FWD_METHODS).map(([k, v]) => [v, k as FwdMethod]));
const TUNNEL_BY_NUMBER = new Map<number, TunnelType>(Object.entries(TUNNEL_TYPES).map(([k, v]) => [v, k as TunnelType]));

/** A service identity from its attributes. */
export function serviceKeyFromWire(a: SvcWire): Decoded<ServiceKey> {
  if (a.AF === undefined) return fail('missing_attr', 'service: no IPVS_SVC_ATTR_AF');
  const family = afToFamily(a.AF);
  if (family === undefined) return fail('bad_value', `service: IPVS_SVC_ATTR_AF ${a.AF} is neither AF_INET (2) nor AF_INET6 (10)`);
  if (a.FWMARK !== undefined && a.FWMARK !== 0) return ok({ kind: 'fwmark', family, fwmark: a.FWMARK });
  if (a.PROTOCOL === undefined || a.ADDR === undefined || a.PORT === undefined) {
    return fail('missing_attr', 'service: neither IPVS_SVC_ATTR_FWMARK nor all of PROTOCOL, ADDR, PORT');
  }
  const protocol = PROTOCOL_BY_NUMBER.get(a.PROTOCOL);
  if (protocol === undefined) return fail('bad_value', `service: IPVS_SVC_ATTR_PROTOCOL ${a.PROTOCOL} is not TCP (6), UDP (17) or SCTP (132)`);
  const address = addrFromWire(a.ADDR, family, 'service: IPVS_SVC_ATTR_ADDR');
  if (!address.ok) return address;
  return ok({ kind: 'addr', family, protocol, address: address.value, port: a.PORT });
}

/** A service from a reply (GET_SERVICE dump): HASHED and PERSISTENT are folded away, STATS64 preferred. */
export function serviceFromWire(a: SvcWire): Decoded<Service> {
  const key = serviceKeyFromWire(a);
  if (!key.ok) return key;
  const where = `service ${serviceKeyString(key.value)}`;
  if (a.SCHED_NAME === undefined) return fail('missing_attr', `${where}: no IPVS_SVC_ATTR_SCHED_NAME`);
  if (a.FLAGS === undefined) return fail('missing_attr', `${where}: no IPVS_SVC_ATTR_FLAGS`);
  if (a.TIMEOUT === undefined) return fail('missing_attr', `${where}: no IPVS_SVC_ATTR_TIMEOUT`);
  if (a.NETMASK === undefined) return fail('missing_attr', `${where}: no IPVS_SVC_ATTR_NETMASK`);
  const netmask = netmaskFromWire(a.NETMASK, key.value.family);
  if (!netmask.ok) return fail(netmask.reason, `${where}: ${netmask.detail}`);
  const persistent = (a.FLAGS.flags & SVC_FLAGS.PERSISTENT) !== 0;
  const svc: Service = {
    key: key.value,
    scheduler: a.SCHED_NAME,
    flags: (a.FLAGS.flags & ~IMPLIED_SVC_FLAGS) >>> 0,
    timeoutS: persistent ? a.TIMEOUT : 0,
    netmask: netmask.value,
    peName: a.PE_NAME ?? '',
    dests: [],
  };
  const stats = statsFromWire(a.STATS64 ?? a.STATS);
  if (stats !== undefined) svc.stats = stats;
  return ok(svc);
}

/** Counters from STATS64 (preferred) or STATS; undefined when neither was sent. Absent counters read 0. */
export function statsFromWire(s: StatsWire | undefined): IpvsStats | undefined {
  if (s === undefined) return undefined;
  const n = (v: number | bigint | undefined): bigint => (v === undefined ? 0n : BigInt(v));
  return {
    conns: n(s.CONNS),
    inPkts: n(s.INPKTS),
    outPkts: n(s.OUTPKTS),
    inBytes: n(s.INBYTES),
    outBytes: n(s.OUTBYTES),
    cps: n(s.CPS),
    inPps: n(s.INPPS),
    outPps: n(s.OUTPPS),
    inBps: n(s.INBPS),
    outBps: n(s.OUTBPS),
  };
}

/** Counters as STATS64 carries them (for fakes and tests: the kernel is the only real sender). */
export function statsToWire(s: IpvsStats): AttrValues<typeof IPVS_STATS64_ATTR> {
  return {
    CONNS: s.conns,
    INPKTS: s.inPkts,
    OUTPKTS: s.outPkts,
    INBYTES: s.inBytes,
    OUTBYTES: s.outBytes,
    CPS: s.cps,
    INPPS: s.inPps,
    OUTPPS: s.outPps,
    INBPS: s.inBps,
    OUTBPS: s.outBps,
  };
}

/** A dest's identity (what DEL_DEST needs): ADDR, PORT and ADDR_FAMILY. Throws CodecError. */
export function destKeyToWire(d: DestKey, what = `dest ${safeDestKey(d)}`): DestWire {
  const family = checkFamily(d.family, what);
  return { ADDR: addrToWire(d.address, family, what), PORT: checkInt(d.port, 0, 0xffff, what, 'port'), ADDR_FAMILY: familyToAf(family) };
}

function safeDestKey(d: DestKey): string {
  try {
    return destKeyString(d);
  } catch {
    return JSON.stringify(d);
  }
}

/**
 * A whole dest as NEW_DEST / SET_DEST want it: identity, FWD_METHOD, WEIGHT, U_THRESH, L_THRESH and the tunnel
 * attributes. A lower threshold above the upper one is left for the kernel to refuse (ERANGE). Throws CodecError.
 */
export function destToWire(d: DestKey & DestAttrs, what = `dest ${safeDestKey(d)}`): DestWire {
  const out = destKeyToWire(d, what);
  const fwd: number | undefined = Object.hasOwn(FWD_METHODS, d.fwd) ? FWD_METHODS[d.fwd] : undefined;
  if (fwd === undefined) throw new CodecError(`${what}: forwarding method ${JSON.stringify(d.fwd)} is not one of ${Object.keys(FWD_METHODS).join(', ')}`);
  const tunnel = d.tunnel as Partial<DestAttrs['tunnel']> | undefined;
  const tunType: number | undefined = tunnel?.type !== undefined && Object.hasOwn(TUNNEL_TYPES, tunnel.type) ? TUNNEL_TYPES[tunnel.type] : undefined;
  if (tunType === undefined) throw new CodecError(`${what}: tunnel type ${JSON.stringify(tunnel?.type)} is not one of ${Object.keys(TUNNEL_TYPES).join(', ')}`);
  out.FWD_METHOD = fwd;
  out.WEIGHT = checkInt(d.weight, 0, IP_VS_MAX_WEIGHT, what, 'weight');
  out.U_THRESH = checkInt(d.upperThreshold, 0, 0xffffffff, what, 'upper threshold');
  out.L_THRESH = checkInt(d.lowerThreshold, 0, 0xffffffff, what, 'lower threshold');
  out.TUN_TYPE = tunType;
  out.TUN_PORT = checkInt(tunnel?.port, 0, 0xffff, what, 'tunnel port');
  out.TUN_FLAGS = checkInt(tunnel?.flags, 0, 0xffff, what, 'tunnel flags');
  return out;
}

/**
 * A dest from a reply (GET_DEST dump). ADDR_FAMILY is absent before Linux 3.18: the service's family is used
 * then. TUN_* are absent before Linux 5.2: ipip, port 0, flags 0.
 */
export function destFromWire(a: DestWire, serviceFamily: AddressFamily): Decoded<Dest> {
  let family: AddressFamily = serviceFamily;
  if (a.ADDR_FAMILY !== undefined) {
    const f = afToFamily(a.ADDR_FAMILY);
    if (f === undefined) return fail('bad_value', `dest: IPVS_DEST_ATTR_ADDR_FAMILY ${a.ADDR_FAMILY} is neither AF_INET (2) nor AF_INET6 (10)`);
    family = f;
  }
  for (const k of ['ADDR', 'PORT', 'FWD_METHOD', 'WEIGHT', 'U_THRESH', 'L_THRESH'] as const) {
    if (a[k] === undefined) return fail('missing_attr', `dest: no IPVS_DEST_ATTR_${k}`);
  }
  const address = addrFromWire(a.ADDR ?? Buffer.alloc(0), family, 'dest: IPVS_DEST_ATTR_ADDR');
  if (!address.ok) return address;
  const port = a.PORT ?? 0;
  const where = `dest ${destKeyString({ family, address: address.value, port })}`;
  const fwd = FWD_BY_NUMBER.get((a.FWD_METHOD ?? 0) & IP_VS_CONN_F_FWD_MASK);
  if (fwd === undefined) return fail('bad_value', `${where}: IPVS_DEST_ATTR_FWD_METHOD ${a.FWD_METHOD} is no known forwarding method`);
  const weight = a.WEIGHT ?? 0;
  if (weight > IP_VS_MAX_WEIGHT) return fail('bad_value', `${where}: IPVS_DEST_ATTR_WEIGHT ${weight} is negative as the kernel's int`);
  const tunType = TUNNEL_BY_NUMBER.get(a.TUN_TYPE ?? 0);
  if (tunType === undefined) return fail('bad_value', `${where}: IPVS_DEST_ATTR_TUN_TYPE ${a.TUN_TYPE} is no known tunnel type`);
  const dest: Dest = {
    family,
    address: address.value,
    port,
    fwd,
    weight,
    upperThreshold: a.U_THRESH ?? 0,
    lowerThreshold: a.L_THRESH ?? 0,
    tunnel: { type: tunType, port: a.TUN_PORT ?? 0, flags: a.TUN_FLAGS ?? 0 },
  };
  if (a.ACTIVE_CONNS !== undefined) dest.activeConns = a.ACTIVE_CONNS;
  if (a.INACT_CONNS !== undefined) dest.inactiveConns = a.INACT_CONNS;
  if (a.PERSIST_CONNS !== undefined) dest.persistConns = a.PERSIST_CONNS;
  const stats = statsFromWire(a.STATS64 ?? a.STATS);
  if (stats !== undefined) dest.stats = stats;
  return ok(dest);
}

/** A sync daemon as NEW_DAEMON wants it. Group IPv4 -> MCAST_GROUP, IPv6 -> MCAST_GROUP6. Throws CodecError. */
export function daemonToWire(d: SyncDaemon): DaemonWire {
  const what = `${String(d.state)} sync daemon`;
  if (d.state !== 'master' && d.state !== 'backup') throw new CodecError(`${what}: state must be master or backup`);
  const out: DaemonWire = {
    STATE: DAEMON_STATES[d.state],
    MCAST_IFN: checkName(d.ifname, IP_VS_IFNAME_MAXLEN - 1, `${what}: interface`),
    // The sync message header carries the id in one byte (ip_vs_sync.c), so the kernel's u32 is truncated.
    SYNC_ID: checkInt(d.syncId, 0, 255, what, 'syncid'),
    SYNC_MAXLEN: checkInt(d.maxLen, 0, 0xffff, what, 'maxlen'),
    MCAST_PORT: checkInt(d.port, 0, 0xffff, what, 'port'),
    MCAST_TTL: checkInt(d.ttl, 0, 255, what, 'ttl'),
  };
  if (d.ifname === '') throw new CodecError(`${what}: the interface name is empty`);
  const v4 = addressBytes(d.group, 4);
  const v6 = v4 === undefined ? addressBytes(d.group, 6) : undefined;
  if (v4 !== undefined) out.MCAST_GROUP = v4;
  else if (v6 !== undefined) out.MCAST_GROUP6 = v6;
  else throw new CodecError(`${what}: group ${JSON.stringify(d.group)} is not an IPv4 or IPv6 address`);
  return out;
}

/** A sync daemon from a GET_DAEMON reply; attributes missing on old kernels read as the kernel's defaults. */
export function daemonFromWire(a: DaemonWire): Decoded<SyncDaemon> {
  const state = a.STATE === DAEMON_STATES.master ? 'master' : a.STATE === DAEMON_STATES.backup ? 'backup' : undefined;
  if (state === undefined) return fail(a.STATE === undefined ? 'missing_attr' : 'bad_value', `daemon: IPVS_DAEMON_ATTR_STATE ${a.STATE ?? 'absent'} is neither MASTER (1) nor BACKUP (2)`);
  if (a.MCAST_IFN === undefined) return fail('missing_attr', 'daemon: no IPVS_DAEMON_ATTR_MCAST_IFN');
  if (a.SYNC_ID === undefined) return fail('missing_attr', 'daemon: no IPVS_DAEMON_ATTR_SYNC_ID');
  let group = DEFAULT_SYNC_GROUP;
  if (a.MCAST_GROUP6 !== undefined) {
    if (a.MCAST_GROUP6.length !== 16) return fail('bad_attr', `daemon: IPVS_DAEMON_ATTR_MCAST_GROUP6 has ${a.MCAST_GROUP6.length} bytes, expected 16`);
    group = formatAddress(a.MCAST_GROUP6, 0, 6);
  } else if (a.MCAST_GROUP !== undefined) {
    if (a.MCAST_GROUP.length !== 4) return fail('bad_attr', `daemon: IPVS_DAEMON_ATTR_MCAST_GROUP has ${a.MCAST_GROUP.length} bytes, expected 4`);
    group = formatAddress(a.MCAST_GROUP, 0, 4);
  }
  return ok({
    state,
    ifname: a.MCAST_IFN,
    syncId: a.SYNC_ID,
    maxLen: a.SYNC_MAXLEN ?? 0,
    group,
    port: a.MCAST_PORT ?? DEFAULT_SYNC_PORT,
    ttl: a.MCAST_TTL ?? DEFAULT_SYNC_TTL,
  });
}

/** Connection timeouts as SET_CONFIG wants them (0 = leave unchanged). Throws CodecError. */
export function timeoutsToWire(t: IpvsTimeouts): CmdWire {
  return {
    TIMEOUT_TCP: checkInt(t.tcp, 0, 0xffffffff, 'timeout tcp'),
    TIMEOUT_TCP_FIN: checkInt(t.tcpFin, 0, 0xffffffff, 'timeout tcpfin'),
    TIMEOUT_UDP: checkInt(t.udp, 0, 0xffffffff, 'timeout udp'),
  };
}

/** Connection timeouts from a GET_CONFIG reply (a protocol compiled out of the kernel reads 0). */
export function timeoutsFromWire(a: CmdWire): IpvsTimeouts {
  return { tcp: a.TIMEOUT_TCP ?? 0, tcpFin: a.TIMEOUT_TCP_FIN ?? 0, udp: a.TIMEOUT_UDP ?? 0 };
}

/** IP_VS_VERSION_CODE (e.g. 0x010201) as text ("1.2.1"). */
export function versionText(code: number): string {
  return `${(code >>> 16) & 0xff}.${(code >>> 8) & 0xff}.${code & 0xff}`;
}

/** Version and connection table size from a GET_INFO reply. */
export function infoFromWire(a: InfoWire): Decoded<IpvsInfo> {
  if (a.VERSION === undefined) return fail('missing_attr', 'info: no IPVS_INFO_ATTR_VERSION');
  if (a.CONN_TAB_SIZE === undefined) return fail('missing_attr', 'info: no IPVS_INFO_ATTR_CONN_TAB_SIZE');
  return ok({ version: versionText(a.VERSION), connTabSize: a.CONN_TAB_SIZE });
}

// ---------------------------------------------------------------------------------------------------------
// Requests

/** How the kernel answers: an ACK (NLM_F_ACK), one reply message, or a dump of NLM_F_MULTI parts up to DONE. */
export type IpvsAnswer = 'ack' | 'reply' | 'dump';

/** Facts a request carries only to explain a kernel refusal (errors.ts). */
export interface RequestContext {
  scheduler?: string;
  peName?: string;
  ifname?: string;
  weight?: number;
  upperThreshold?: number;
  lowerThreshold?: number;
  daemonState?: 'master' | 'backup';
  /** A dest of another family than its service (only allowed with tunnel forwarding). */
  mixedFamily?: boolean;
}

/** One IPVS request, not yet framed (the family id and sequence number are the client's). */
export interface IpvsRequest {
  cmd: IpvsCmdName;
  answer: IpvsAnswer;
  /** Top-level attributes, validated when the request was made (so a bad one is refused before sending). */
  wire: CmdWire;
  /** Bytes the attributes take on the wire. */
  attrsLength: number;
  /** What the request is about, for errors: `TCP 10.0.0.1:80 -> 10.0.0.2:80`. */
  object: string;
  context: RequestContext;
}

/** nlmsg_flags for an answer kind. */
export function requestFlags(answer: IpvsAnswer): number {
  return answer === 'ack' ? NLM_F.REQUEST | NLM_F.ACK : answer === 'dump' ? NLM_F.REQUEST | NLM_F.DUMP : NLM_F.REQUEST;
}

/** Frames a request: nlmsghdr (type = the resolved family id) + genlmsghdr + attributes. */
export function encodeIpvsRequest(req: IpvsRequest, family: number, seq: number): Buffer {
  const out = Buffer.alloc(ipvsRequestSize(req));
  writeIpvsRequest(out, 0, req, family, seq, requestFlags(req.answer));
  return out;
}

/** Bytes the framed request takes (aligned): what writeIpvsRequest writes. */
export function ipvsRequestSize(req: IpvsRequest): number {
  return align4(NLMSG_HDRLEN + GENL_HDRLEN + req.attrsLength);
}

/**
 * Frames a request into zeroed `out` at `off` with the given nlmsg_flags (a batch clears NLM_F_ACK on all but its
 * last change); returns the end offset.
 */
export function writeIpvsRequest(out: Buffer, off: number, req: IpvsRequest, family: number, seq: number, flags: number): number {
  return writeGenlMsg(out, off, { family, cmd: IPVS_CMD[req.cmd], version: IPVS_GENL_VERSION, flags, seq }, IPVS_CMD_ATTR, req.wire, req.attrsLength);
}

function request(cmd: IpvsCmdName, answer: IpvsAnswer, wire: CmdWire, object: string, context: RequestContext = {}): IpvsRequest {
  return { cmd, answer, wire, attrsLength: attrsLength(IPVS_CMD_ATTR, wire, 'IPVS_CMD_ATTR'), object, context };
}

/** `TCP 10.0.0.1:80 -> 10.0.0.2:80`: the object of a dest operation. */
export function destObject(service: ServiceKey, dest: DestKey): string {
  return `${describeKey(service)} -> ${safeDestKey(dest)}`;
}

function serviceContext(svc: ServiceAttrs): RequestContext {
  return svc.peName === '' ? { scheduler: svc.scheduler } : { scheduler: svc.scheduler, peName: svc.peName };
}

/** NEW_SERVICE (EEXIST when it exists). */
export function newServiceRequest(svc: ServiceAttrs & { key: ServiceKey }): IpvsRequest {
  return request('NEW_SERVICE', 'ack', { SERVICE: serviceToWire(svc) }, describeKey(svc.key), serviceContext(svc));
}

/** SET_SERVICE: scheduler, flags, timeout, netmask, PE (ESRCH when missing). */
export function setServiceRequest(svc: ServiceAttrs & { key: ServiceKey }): IpvsRequest {
  return request('SET_SERVICE', 'ack', { SERVICE: serviceToWire(svc) }, describeKey(svc.key), serviceContext(svc));
}

/** DEL_SERVICE with its dests (ESRCH when missing). */
export function delServiceRequest(key: ServiceKey): IpvsRequest {
  return request('DEL_SERVICE', 'ack', { SERVICE: serviceKeyToWire(key) }, describeKey(key));
}

/** GET_SERVICE dump of every service (replies: NEW_SERVICE). */
export function getServicesRequest(): IpvsRequest {
  return request('GET_SERVICE', 'dump', {}, 'all services');
}

function destContext(service: ServiceKey, d: DestKey & DestAttrs): RequestContext {
  return { weight: d.weight, upperThreshold: d.upperThreshold, lowerThreshold: d.lowerThreshold, mixedFamily: d.family !== service.family };
}

/** NEW_DEST (EEXIST when it exists, ERANGE for l_thresh > u_thresh). `svcWire`: the service key, already encoded. */
export function newDestRequest(service: ServiceKey, d: DestKey & DestAttrs, svcWire = serviceKeyToWire(service)): IpvsRequest {
  const object = destObject(service, d);
  return request('NEW_DEST', 'ack', { SERVICE: svcWire, DEST: destToWire(d, `dest ${object}`) }, object, destContext(service, d));
}

/** SET_DEST (ENOENT when the dest is missing). */
export function setDestRequest(service: ServiceKey, d: DestKey & DestAttrs, svcWire = serviceKeyToWire(service)): IpvsRequest {
  const object = destObject(service, d);
  return request('SET_DEST', 'ack', { SERVICE: svcWire, DEST: destToWire(d, `dest ${object}`) }, object, destContext(service, d));
}

/** DEL_DEST (ENOENT when the dest is missing, ESRCH when the service is). */
export function delDestRequest(service: ServiceKey, d: DestKey, svcWire = serviceKeyToWire(service)): IpvsRequest {
  const object = destObject(service, d);
  return request('DEL_DEST', 'ack', { SERVICE: svcWire, DEST: destKeyToWire(d, `dest ${object}`) }, object);
}

/** GET_DEST dump of one service's dests (replies: NEW_DEST; a missing service gives an empty dump). */
export function getDestsRequest(service: ServiceKey): IpvsRequest {
  return request('GET_DEST', 'dump', { SERVICE: serviceKeyToWire(service) }, describeKey(service));
}

/** `master sync daemon on eth0 (syncid 1)`. */
function daemonObject(state: string, ifname?: string, syncId?: number): string {
  return ifname === undefined ? `${state} sync daemon` : `${state} sync daemon on ${ifname} (syncid ${syncId ?? 0})`;
}

/** NEW_DAEMON: start a sync daemon (EEXIST when one of that state runs). */
export function newDaemonRequest(d: SyncDaemon): IpvsRequest {
  return request('NEW_DAEMON', 'ack', { DAEMON: daemonToWire(d) }, daemonObject(d.state, d.ifname, d.syncId), { ifname: d.ifname, daemonState: d.state });
}

/** DEL_DAEMON: stop the sync daemon of that state (ESRCH when none runs). */
export function delDaemonRequest(state: 'master' | 'backup'): IpvsRequest {
  if (state !== 'master' && state !== 'backup') throw new CodecError(`DEL_DAEMON: state ${JSON.stringify(state)} must be master or backup`);
  return request('DEL_DAEMON', 'ack', { DAEMON: { STATE: DAEMON_STATES[state] } }, daemonObject(state), { daemonState: state });
}

/** GET_DAEMON dump (one NEW_DAEMON per running daemon, master first). */
export function getDaemonsRequest(): IpvsRequest {
  return request('GET_DAEMON', 'dump', {}, 'sync daemons');
}

/** SET_CONFIG: TCP / TCP_FIN / UDP timeouts (0 = unchanged). */
export function setConfigRequest(t: IpvsTimeouts): IpvsRequest {
  return request('SET_CONFIG', 'ack', timeoutsToWire(t), `timeouts tcp ${t.tcp} tcpfin ${t.tcpFin} udp ${t.udp}`);
}

/** GET_CONFIG (reply: SET_CONFIG with the timeouts at the top level). */
export function getConfigRequest(): IpvsRequest {
  return request('GET_CONFIG', 'reply', {}, 'timeouts');
}

/** GET_INFO (reply: SET_INFO with IPVS_INFO_ATTR_*). */
export function getInfoRequest(): IpvsRequest {
  return request('GET_INFO', 'reply', {}, 'IPVS info');
}

/** ZERO the counters of one service and its dests, or of everything. */
export function zeroRequest(service?: ServiceKey): IpvsRequest {
  return service === undefined ? request('ZERO', 'ack', {}, 'all services') : request('ZERO', 'ack', { SERVICE: serviceKeyToWire(service) }, describeKey(service));
}

/** FLUSH: delete every service. */
export function flushRequest(): IpvsRequest {
  return request('FLUSH', 'ack', {}, 'all services');
}

/**
 * The request for one diff operation. Throws CodecError. `serviceWires` (optional) caches encoded service keys
 * by key object: a diff repeats one key object for every dest of a service, and a table's worth of requests is
 * built at once (frameOps).
 */
export function opRequest(op: IpvsOp, serviceWires?: Map<ServiceKey, SvcWire>): IpvsRequest {
  switch (op.op) {
    case 'addService':
      return newServiceRequest(op.service);
    case 'editService':
      return setServiceRequest(op.service);
    case 'delService':
      return delServiceRequest(op.key);
    case 'addDest':
      return newDestRequest(op.service, op.dest, serviceWire(op.service, serviceWires));
    case 'editDest':
      return setDestRequest(op.service, op.dest, serviceWire(op.service, serviceWires));
    case 'delDest':
      return delDestRequest(op.service, op.dest, serviceWire(op.service, serviceWires));
  }
}

function serviceWire(key: ServiceKey, cache: Map<ServiceKey, SvcWire> | undefined): SvcWire {
  let w = cache?.get(key);
  if (w === undefined) {
    w = serviceKeyToWire(key);
    cache?.set(key, w);
  }
  return w;
}

/** The IPVS command of a diff operation. */
export function opCommand(op: IpvsOp): IpvsCmdName {
  return OP_COMMANDS[op.op];
}

const OP_COMMANDS = {
  addService: 'NEW_SERVICE',
  editService: 'SET_SERVICE',
  delService: 'DEL_SERVICE',
  addDest: 'NEW_DEST',
  editDest: 'SET_DEST',
  delDest: 'DEL_DEST',
} as const satisfies Record<IpvsOp['op'], IpvsCmdName>;

/** Diff operations framed back to back (seq 0, NLM_F_REQUEST | NLM_F_ACK); op i spans ends[i-1] (or 0) .. ends[i]. */
export interface FramedOps {
  bytes: Buffer;
  ends: Uint32Array;
}

/**
 * Frames every op into one buffer: validated first (CodecError names the op, and nothing is framed), then written
 * without per-op allocations that outlive the call. The client sends runs of it as batches, setting seq and flags
 * in place, so a table's worth of changes is a few long-lived objects rather than several per op.
 */
export function frameOps(ops: readonly IpvsOp[], family: number): FramedOps {
  // One pass, each request framed as soon as it is built, into a buffer that doubles when full: no request
  // object outlives its op (holding thousands of them through young-generation collections is what costs).
  const cache = new Map<ServiceKey, SvcWire>();
  const ends = new Uint32Array(ops.length);
  let bytes = Buffer.alloc(Math.max(256, ops.length * FRAME_SIZE_GUESS));
  let off = 0;
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i] as IpvsOp;
    let req: IpvsRequest;
    try {
      req = opRequest(op, cache);
    } catch (e) {
      if (e instanceof Error) e.message = `op ${i} (${op.op}): ${e.message}`;
      throw e;
    }
    const size = ipvsRequestSize(req);
    if (off + size > bytes.length) {
      const grown = Buffer.alloc(Math.max(bytes.length * 2, off + size));
      bytes.copy(grown, 0, 0, off);
      bytes = grown;
    }
    off = writeIpvsRequest(bytes, off, req, family, 0, NLM_F.REQUEST | NLM_F.ACK);
    ends[i] = off;
  }
  return { bytes: bytes.subarray(0, off), ends };
}

/** Bytes a framed dest change takes (164 for NEW_DEST IPv4); the first guess of frameOps' buffer. */
const FRAME_SIZE_GUESS = 168;

// ---------------------------------------------------------------------------------------------------------
// Replies (each takes one message's payload, after nlmsghdr)

function decodeCmd(payload: Buffer, expected: IpvsCmdName): Decoded<CmdWire> {
  const g = decodeGenlPayload(payload);
  if (!g.ok) return g;
  if (g.value.cmd !== IPVS_CMD[expected]) return fail('unexpected_message', `IPVS reply: command ${g.value.cmd}, expected ${expected} (${IPVS_CMD[expected]})`);
  return decodeAttrs(IPVS_CMD_ATTR, g.value.attrs, 'IPVS_CMD_ATTR');
}

/** One service of a GET_SERVICE dump (cmd NEW_SERVICE, IPVS_CMD_ATTR_SERVICE). */
export function decodeServiceReply(payload: Buffer): Decoded<Service> {
  const a = decodeCmd(payload, 'NEW_SERVICE');
  if (!a.ok) return a;
  if (a.value.SERVICE === undefined) return fail('missing_attr', 'NEW_SERVICE reply: no IPVS_CMD_ATTR_SERVICE');
  return serviceFromWire(a.value.SERVICE);
}

/** One dest of a GET_DEST dump (cmd NEW_DEST, IPVS_CMD_ATTR_DEST); `serviceFamily` covers old kernels. */
export function decodeDestReply(payload: Buffer, serviceFamily: AddressFamily): Decoded<Dest> {
  const a = decodeCmd(payload, 'NEW_DEST');
  if (!a.ok) return a;
  if (a.value.DEST === undefined) return fail('missing_attr', 'NEW_DEST reply: no IPVS_CMD_ATTR_DEST');
  return destFromWire(a.value.DEST, serviceFamily);
}

/** One daemon of a GET_DAEMON dump (cmd NEW_DAEMON, IPVS_CMD_ATTR_DAEMON). */
export function decodeDaemonReply(payload: Buffer): Decoded<SyncDaemon> {
  const a = decodeCmd(payload, 'NEW_DAEMON');
  if (!a.ok) return a;
  if (a.value.DAEMON === undefined) return fail('missing_attr', 'NEW_DAEMON reply: no IPVS_CMD_ATTR_DAEMON');
  return daemonFromWire(a.value.DAEMON);
}

/** The GET_CONFIG reply (cmd SET_CONFIG, timeouts at the top level). */
export function decodeConfigReply(payload: Buffer): Decoded<IpvsTimeouts> {
  const a = decodeCmd(payload, 'SET_CONFIG');
  if (!a.ok) return a;
  return ok(timeoutsFromWire(a.value));
}

/** The GET_INFO reply (cmd SET_INFO, IPVS_INFO_ATTR_* at the top level). */
export function decodeInfoReply(payload: Buffer): Decoded<IpvsInfo> {
  const g = decodeGenlPayload(payload);
  if (!g.ok) return g;
  if (g.value.cmd !== IPVS_CMD.SET_INFO) return fail('unexpected_message', `IPVS reply: command ${g.value.cmd}, expected SET_INFO (${IPVS_CMD.SET_INFO})`);
  const a = decodeAttrs(IPVS_INFO_ATTR, g.value.attrs, 'IPVS_INFO_ATTR');
  if (!a.ok) return a;
  return infoFromWire(a.value);
}
