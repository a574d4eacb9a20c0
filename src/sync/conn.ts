/**
 * The domain type of one IPVS connection entry (a connection or a persistence template), independent of any
 * wire layout: the kernel's sync protocol v1 (sync-v1.ts), /proc/net/ip_vs_conn (proc-conn.ts) and tandem's
 * resync frames (resync-protocol.ts) all convert to and from `ConnEntry`.
 *
 * Constants follow include/uapi/linux/ip_vs.h (IP_VS_CONN_F_*), include/net/ip_vs.h and the protocol modules
 * net/netfilter/ipvs/ip_vs_proto_{tcp,udp,sctp}.c (state numbers and the names /proc prints).
 */

import type { AddressFamily } from '../config/types.ts';
import { formatAddress, parseIPv6 } from '../lib/address.ts';

/** IPPROTO_* numbers IPVS knows by name (ip_vs_proto_name in ip_vs_core.c). */
export const IPPROTO = { IP: 0, ICMP: 1, IPIP: 4, TCP: 6, UDP: 17, GRE: 47, ICMPV6: 58, SCTP: 132 } as const;

/**
 * IP_VS_CONN_F_* connection flags. The low 3 bits are the forwarding method (FWD_MASK). Values from
 * include/uapi/linux/ip_vs.h; BACKUP_MASK is what a backup keeps from a synced entry (ip_vs_sync.c).
 */
export const CONN_FLAGS = {
  FWD_MASK: 0x0007,
  SYNC: 0x0020,
  HASHED: 0x0040,
  NOOUTPUT: 0x0080,
  INACTIVE: 0x0100,
  OUT_SEQ: 0x0200,
  IN_SEQ: 0x0400,
  SEQ_MASK: 0x0600,
  NO_CPORT: 0x0800,
  TEMPLATE: 0x1000,
  ONE_PACKET: 0x2000,
  NFCT: 0x10000,
  BACKUP_MASK: 0x1f87,
} as const;

/** Forwarding methods in the low flag bits (IP_VS_CONN_F_MASQ ... BYPASS); same numbers as ipvs/model FWD_METHODS. */
export const CONN_FWD = { masq: 0, local: 1, tunnel: 2, droute: 3, bypass: 4 } as const;
/** A forwarding method name. */
export type ConnFwd = keyof typeof CONN_FWD;

const FWD_BY_NUMBER: readonly ConnFwd[] = ['masq', 'local', 'tunnel', 'droute', 'bypass'];

/** TCP states (IP_VS_TCP_S_*), index = state number; the names /proc prints. */
export const TCP_STATES = [
  'NONE', 'ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'FIN_WAIT', 'TIME_WAIT', 'CLOSE', 'CLOSE_WAIT', 'LAST_ACK',
  'LISTEN', 'SYNACK',
] as const;
/** UDP has one state, IP_VS_UDP_S_NORMAL = 0, which /proc prints as `UDP`. */
export const UDP_STATES = ['UDP'] as const;
/** SCTP states (IP_VS_SCTP_S_*, Linux >= 3.12 table), index = state number. */
export const SCTP_STATES = [
  'NONE', 'INIT1', 'INIT', 'C-SENT', 'C-REPLIED', 'C-WAIT', 'COOKIE', 'C-ECHOED', 'ESTABLISHED', 'S-SENT',
  'S-RECEIVED', 'S-ACK-SENT', 'REJECTED', 'CLOSED',
] as const;
/** Persistence-template states (IP_VS_CTPL_S_*). */
export const TEMPLATE_STATES = ['NONE', 'ASSURED'] as const;

/** Named TCP state numbers, e.g. `TCP_STATE.ESTABLISHED` = 1. */
export const TCP_STATE = {
  NONE: 0, ESTABLISHED: 1, SYN_SENT: 2, SYN_RECV: 3, FIN_WAIT: 4, TIME_WAIT: 5, CLOSE: 6, CLOSE_WAIT: 7,
  LAST_ACK: 8, LISTEN: 9, SYNACK: 10,
} as const;
/** Named template state numbers. */
export const TEMPLATE_STATE = { NONE: 0, ASSURED: 1 } as const;

/** One direction's TCP sequence adjustment (struct ip_vs_seq), each a u32. Used by apps that rewrite payloads (FTP). */
export interface SeqAdjust {
  initSeq: number;
  delta: number;
  previousDelta: number;
}

/** Persistence-engine data (e.g. the `sip` engine keys templates by Call-ID). */
export interface PeData {
  /** Engine name, 1..16 bytes, no NUL. */
  name: string;
  /** Engine data, 1..255 bytes. */
  data: Buffer;
}

/**
 * One IPVS connection entry. Addresses are canonical text (lib/address.ts) of `family`; the real server's
 * address (`daddr`) has the same family (IPVS refuses mixed-family destinations while a sync daemon runs).
 *
 * Templates (`template: true`) record persistence: client (masked by the persistence netmask, `cport` 0) ->
 * real server. For a fwmark service a template has protocol 0 (IPPROTO_IP) and `vaddr` = the mark in the
 * first 4 address bytes (see fwmarkVaddr).
 */
export interface ConnEntry {
  family: AddressFamily;
  /** IPPROTO_* (IPPROTO values); 0 only for fwmark templates. */
  protocol: number;
  caddr: string;
  cport: number;
  vaddr: string;
  vport: number;
  daddr: string;
  dport: number;
  /** Firewall mark of the packets (u32), 0 if none. */
  fwmark: number;
  /** Forwarding method (flags & FWD_MASK). */
  fwd: ConnFwd;
  /** IP_VS_CONN_F_TEMPLATE. */
  template: boolean;
  /** The other IP_VS_CONN_F_* bits: never FWD_MASK, HASHED or TEMPLATE (those are `fwd`, stripped, `template`). */
  flags: number;
  /** Protocol state number (TCP_STATES, UDP_STATES, SCTP_STATES index; TEMPLATE_STATES for templates). */
  state: number;
  /** Timeout in seconds (the sync protocol carries the state's full timeout; /proc shows the time left). */
  timeoutS: number;
  pe?: PeData;
  /** Sequence adjustments; the kernel sends them only with IN_SEQ/OUT_SEQ set. */
  seq?: { in: SeqAdjust; out: SeqAdjust };
}

/** The IP_VS_CONN_F_* word of an entry: `flags | fwd | TEMPLATE`. */
export function connFlagsOf(e: ConnEntry): number {
  return (e.flags | CONN_FWD[e.fwd] | (e.template ? CONN_FLAGS.TEMPLATE : 0)) >>> 0;
}

/** Splits a kernel flags word into the entry's `fwd`, `template` and other bits (HASHED dropped); undefined for fwd 5..7. */
export function splitConnFlags(word: number): { fwd: ConnFwd; template: boolean; flags: number } | undefined {
  const fwd = FWD_BY_NUMBER[word & CONN_FLAGS.FWD_MASK];
  if (fwd === undefined) return undefined;
  const other = word & ~(CONN_FLAGS.FWD_MASK | CONN_FLAGS.HASHED | CONN_FLAGS.TEMPLATE);
  return { fwd, template: (word & CONN_FLAGS.TEMPLATE) !== 0, flags: other >>> 0 };
}

/** The protocol name /proc prints (ip_vs_proto_name): IP, TCP, UDP, SCTP, ICMP, IPIP, GRE, ICMPv6, else `IP_<n>`. */
export function protocolName(protocol: number): string {
  switch (protocol) {
    case IPPROTO.IP: return 'IP';
    case IPPROTO.TCP: return 'TCP';
    case IPPROTO.UDP: return 'UDP';
    case IPPROTO.SCTP: return 'SCTP';
    case IPPROTO.ICMP: return 'ICMP';
    case IPPROTO.IPIP: return 'IPIP';
    case IPPROTO.GRE: return 'GRE';
    case IPPROTO.ICMPV6: return 'ICMPv6';
    default: return `IP_${protocol}`;
  }
}

const PROTOCOL_BY_NAME: ReadonlyMap<string, number> = new Map([
  ['IP', IPPROTO.IP], ['TCP', IPPROTO.TCP], ['UDP', IPPROTO.UDP], ['SCTP', IPPROTO.SCTP], ['ICMP', IPPROTO.ICMP],
  ['IPIP', IPPROTO.IPIP], ['GRE', IPPROTO.GRE], ['ICMPv6', IPPROTO.ICMPV6],
]);

/** The inverse of protocolName; undefined for text it never prints. */
export function protocolFromName(name: string): number | undefined {
  const known = PROTOCOL_BY_NAME.get(name);
  if (known !== undefined) return known;
  const m = /^IP_(\d{1,3})$/.exec(name);
  if (m === null) return undefined;
  const n = Number(m[1]);
  return n <= 255 && !PROTOCOL_BY_NAME.has(protocolName(n)) ? n : undefined;
}

function stateTable(protocol: number, template: boolean): readonly string[] | undefined {
  if (template) return TEMPLATE_STATES;
  switch (protocol) {
    case IPPROTO.TCP: return TCP_STATES;
    case IPPROTO.UDP: return UDP_STATES;
    case IPPROTO.SCTP: return SCTP_STATES;
    default: return undefined;
  }
}

/**
 * The state name /proc prints (ip_vs_state_name): the template table for templates, the protocol's table
 * otherwise, `NONE` for protocol 0 without a table, `ERR!` for anything else.
 */
export function stateName(protocol: number, template: boolean, state: number): string {
  const table = stateTable(protocol, template);
  if (table === undefined) return protocol === IPPROTO.IP ? 'NONE' : 'ERR!';
  return table[state] ?? 'ERR!';
}

/** The state number of a name for a protocol (the inverse of stateName); undefined when unknown. */
export function stateFromName(protocol: number, template: boolean, name: string): number | undefined {
  const table = stateTable(protocol, template);
  if (table === undefined) return protocol === IPPROTO.IP && name === 'NONE' ? 0 : undefined;
  const i = table.indexOf(name);
  return i === -1 ? undefined : i;
}

/**
 * The virtual address a fwmark template carries: the mark, big-endian, in the first 4 address bytes (the
 * kernel builds `union nf_inet_addr { .ip = htonl(fwmark) }` in ip_vs_sched_persist), the rest zero.
 */
export function fwmarkVaddr(family: AddressFamily, fwmark: number): string {
  const b = Buffer.alloc(family === 4 ? 4 : 16);
  b.writeUInt32BE(fwmark >>> 0, 0);
  return formatAddress(b, 0, family);
}

/**
 * A stable text key of an entry's identity in the kernel's connection table (family, protocol, client and
 * virtual endpoint, template or not), e.g. `4 6 10.0.0.5:40000 10.99.0.100:80` or `4 0 T 10.0.0.0:0 0.0.0.7:0`.
 */
export function connKey(e: ConnEntry): string {
  return `${e.family} ${e.protocol}${e.template ? ' T' : ''} ${e.caddr}:${e.cport} ${e.vaddr}:${e.vport}`;
}

// ---------------------------------------------------------------------------------------------------------
// Address bytes (fast paths shared by the codecs and the digest)

/**
 * Writes the 4 (IPv4) or 16 (IPv6) network-order bytes of `text` at `off`; false when `text` is not a valid
 * address of `family` (the same acceptance as lib/address.ts: dotted quad without leading zeros, any RFC 4291
 * IPv6 form). IPv4 is parsed without allocating: a 1M-entry snapshot parses 3M addresses.
 */
export function writeAddressBytes(text: string, family: AddressFamily, buf: Buffer, off: number): boolean {
  if (family === 6) {
    const b = parseIPv6(text);
    if (b === undefined) return false;
    b.copy(buf, off);
    return true;
  }
  const n = text.length;
  if (n < 7 || n > 15) return false;
  let part = 0;
  let value = 0;
  let digits = 0;
  let first = 0;
  for (let i = 0; i <= n; i++) {
    const c = i === n ? 46 : text.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || (digits > 1 && first === 48) || value > 255 || part > 3) return false;
      buf[off + part] = value;
      part++;
      value = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits === 0) first = c;
      if (++digits > 3) return false;
      value = value * 10 + (c - 48);
    } else return false;
  }
  return part === 4;
}

/** The canonical text of the address at `off` (4 bytes for family 4, 16 for 6). */
export function readAddress(buf: Uint8Array, off: number, family: AddressFamily): string {
  if (family === 4) return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
  return formatAddress(buf, off, 6);
}

/** Bytes per address of a family. */
export function addressLength(family: AddressFamily): 4 | 16 {
  return family === 4 ? 4 : 16;
}

const U32 = 0xffff_ffff;
const SCRATCH = Buffer.alloc(16);

/** Writes an address field like writeAddressBytes; returns why it cannot, naming the field, or undefined. */
export function addressProblem(field: string, text: unknown, family: AddressFamily, buf: Buffer, off: number): string | undefined {
  return typeof text === 'string' && writeAddressBytes(text, family, buf, off) ? undefined : `${field} ${JSON.stringify(text)} is not an IPv${family} address`;
}

function isInt(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
}

/**
 * Why an entry cannot be represented on the wire, or undefined when it can: family 4/6, addresses of that
 * family, ports u16, protocol u8, state u16, fwmark/timeout/flags u32 with no FWD/HASHED/TEMPLATE bits in
 * `flags`, PE name 1..16 bytes without NUL and data 1..255 bytes, sequence values u32. With `checkAddresses`
 * false the addresses are left to the caller (the encoders check them as they write them, see addressProblem).
 */
export function connEntryProblem(e: ConnEntry, checkAddresses = true): string | undefined {
  if (e.family !== 4 && e.family !== 6) return `family ${String(e.family)} is not 4 or 6`;
  if (checkAddresses) {
    for (const name of ['caddr', 'vaddr', 'daddr'] as const) {
      const problem = addressProblem(name, e[name], e.family, SCRATCH, 0);
      if (problem !== undefined) return problem;
    }
  }
  for (const [name, v] of [['cport', e.cport], ['vport', e.vport], ['dport', e.dport]] as const) {
    if (!isInt(v, 0, 0xffff)) return `${name} ${String(v)} is not 0..65535`;
  }
  if (!isInt(e.protocol, 0, 255)) return `protocol ${String(e.protocol)} is not 0..255`;
  if (!isInt(e.state, 0, 0xffff)) return `state ${String(e.state)} is not 0..65535`;
  if (!isInt(e.fwmark, 0, U32)) return `fwmark ${String(e.fwmark)} is not a u32`;
  if (!isInt(e.timeoutS, 0, U32)) return `timeoutS ${String(e.timeoutS)} is not a u32`;
  if (!isInt(e.flags, 0, U32)) return `flags ${String(e.flags)} is not a u32`;
  if ((e.flags & (CONN_FLAGS.FWD_MASK | CONN_FLAGS.HASHED | CONN_FLAGS.TEMPLATE)) !== 0) {
    return `flags 0x${e.flags.toString(16)} carry FWD/HASHED/TEMPLATE bits (use fwd and template)`;
  }
  if (!(e.fwd in CONN_FWD)) return `fwd ${String(e.fwd)} is not one of ${Object.keys(CONN_FWD).join(', ')}`;
  if (e.pe !== undefined) {
    const nameLen = Buffer.byteLength(e.pe.name, 'utf8');
    if (nameLen < 1 || nameLen > 16 || e.pe.name.includes('\0')) return `PE name ${JSON.stringify(e.pe.name)} must be 1..16 bytes without NUL`;
    if (!Buffer.isBuffer(e.pe.data) || e.pe.data.length < 1 || e.pe.data.length > 255) return 'PE data must be 1..255 bytes';
  }
  if (e.seq !== undefined) {
    for (const dir of ['in', 'out'] as const) {
      const s = e.seq[dir];
      for (const k of ['initSeq', 'delta', 'previousDelta'] as const) {
        if (!isInt(s[k], 0, U32)) return `seq.${dir}.${k} ${String(s[k])} is not a u32`;
      }
    }
  }
  return undefined;
}
