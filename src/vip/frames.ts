/**
 * Pure codecs for the frames that announce a VIP after it moves: a gratuitous ARP (IPv4, like `arping -U`) and
 * an unsolicited neighbour advertisement (IPv6, RFC 4861 sections 4.4 and 7.2.6). Also the MAC text <-> bytes
 * helpers the VIP code shares, and throwing wrappers of lib/address.ts's IP parsers (IP formatting is
 * lib/address.ts's `formatAddress`). No I/O here: packet-socket.ts sends what this module builds.
 */

import { parseIPv4, parseIPv6 } from '../lib/address.ts';
import { CodecError } from '../lib/errors.ts';

/** EtherType of ARP. */
export const ETH_P_ARP = 0x0806;
/** EtherType of IPv6. */
export const ETH_P_IPV6 = 0x86dd;
/** Ethernet broadcast, the destination of a gratuitous ARP. */
export const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';
/** Ethernet multicast address of ff02::1 (all nodes), the destination of an unsolicited NA. */
export const ALL_NODES_MAC = '33:33:00:00:00:01';
/** Length of a gratuitous ARP frame (no padding: the NIC pads to 60 bytes). */
export const GARP_FRAME_LENGTH = 42;
/** Length of an unsolicited NA frame: Ethernet 14 + IPv6 40 + ICMPv6 NA 24 + target link-layer option 8. */
export const NA_FRAME_LENGTH = 86;

const ETH_HEADER = 14;
const IPV6_HEADER = 40;
const ICMPV6_NA_LENGTH = 32;
const NEXT_HEADER_ICMPV6 = 58;
const ICMPV6_NEIGHBOUR_ADVERTISEMENT = 136;
/** NA flags word: Router 0x80000000, Solicited 0x40000000, Override 0x20000000. */
const NA_FLAG_OVERRIDE = 0x20000000;
const ND_OPT_TARGET_LL_ADDR = 2;
const ALL_NODES_IPV6 = 'ff02::1';

const MAC_RE = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/i;

/** Parses `aa:bb:cc:dd:ee:ff` (case-insensitive) into 6 bytes; throws CodecError otherwise. */
export function parseMac(text: string): Buffer {
  if (!MAC_RE.test(text)) throw new CodecError(`invalid MAC address '${text}': expected six colon-separated hex octets, e.g. 02:00:00:00:00:01`);
  return Buffer.from(text.replace(/:/g, ''), 'hex');
}

/** Formats 6 bytes as lower-case `aa:bb:cc:dd:ee:ff`; throws CodecError when the length is not 6. */
export function formatMac(bytes: Uint8Array): string {
  if (bytes.length !== 6) throw new CodecError(`invalid MAC address: ${bytes.length} bytes, expected 6`);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(':');
}

/** Parses dotted-quad IPv4 text into 4 bytes (lib/address.ts `parseIPv4`); throws CodecError otherwise. */
export function parseIpv4(text: string): Buffer {
  const bytes = parseIPv4(text);
  if (bytes === undefined) throw new CodecError(`invalid IPv4 address '${text}'`);
  return bytes;
}

/**
 * Parses IPv6 text (`::` compression and a trailing dotted quad allowed, no zone) into 16 bytes (lib/address.ts
 * `parseIPv6`); throws CodecError otherwise.
 */
export function parseIpv6(text: string): Buffer {
  const bytes = parseIPv6(text);
  if (bytes === undefined) throw new CodecError(`invalid IPv6 address '${text}'`);
  return bytes;
}

/**
 * A gratuitous ARP, as `arping -U` sends it: Ethernet broadcast, ARP REQUEST (opcode 1) whose sender and target
 * protocol addresses are both the VIP, sender hardware address `srcMac`, target hardware address all zero.
 * 42 bytes (the kernel or NIC pads to the Ethernet minimum).
 */
export function garpFrame(srcMac: string, vip: string): Buffer {
  const mac = parseMac(srcMac);
  const ip = parseIpv4(vip);
  const f = Buffer.alloc(GARP_FRAME_LENGTH);
  parseMac(BROADCAST_MAC).copy(f, 0);
  mac.copy(f, 6);
  f.writeUInt16BE(ETH_P_ARP, 12);
  f.writeUInt16BE(1, 14); // hardware type: Ethernet
  f.writeUInt16BE(0x0800, 16); // protocol type: IPv4
  f.writeUInt8(6, 18); // hardware address length
  f.writeUInt8(4, 19); // protocol address length
  f.writeUInt16BE(1, 20); // opcode: request
  mac.copy(f, 22); // sender hardware address
  ip.copy(f, 28); // sender protocol address
  // 32..37: target hardware address, left zero
  ip.copy(f, 38); // target protocol address
  return f;
}

/** The 16-bit one's-complement sum of `data` folded into `sum` (RFC 1071); odd lengths are zero-padded. */
function onesComplementAdd(sum: number, data: Uint8Array): number {
  let s = sum;
  for (let i = 0; i < data.length; i += 2) s += ((data[i] ?? 0) << 8) | (data[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/**
 * The ICMPv6 checksum (RFC 4443 section 2.3) of `message` (its checksum field zero) from `src` to `dst`: the
 * one's complement of the one's-complement sum of the pseudo-header (source, destination, 32-bit upper-layer
 * length, three zero bytes, next header 58) and the message.
 */
export function icmpv6Checksum(src: Uint8Array, dst: Uint8Array, message: Uint8Array): number {
  const pseudo = Buffer.alloc(40);
  Buffer.from(src).copy(pseudo, 0);
  Buffer.from(dst).copy(pseudo, 16);
  pseudo.writeUInt32BE(message.length, 32);
  pseudo.writeUInt8(NEXT_HEADER_ICMPV6, 39);
  const sum = onesComplementAdd(onesComplementAdd(0, pseudo), message);
  return ~sum & 0xffff;
}

/**
 * An unsolicited neighbour advertisement for `vip6` (RFC 4861 section 7.2.6): Ethernet to 33:33:00:00:00:01,
 * IPv6 from the VIP to ff02::1 with hop limit 255, ICMPv6 type 136 code 0 with only the Override flag (so
 * receivers replace a cached link-layer address; Solicited must be clear for a multicast destination), target
 * the VIP, and a target link-layer address option carrying `srcMac`. 86 bytes.
 */
export function unsolicitedNaFrame(srcMac: string, vip6: string): Buffer {
  const mac = parseMac(srcMac);
  const target = parseIpv6(vip6);
  const dst = parseIpv6(ALL_NODES_IPV6);
  const f = Buffer.alloc(NA_FRAME_LENGTH);
  parseMac(ALL_NODES_MAC).copy(f, 0);
  mac.copy(f, 6);
  f.writeUInt16BE(ETH_P_IPV6, 12);

  const ip = ETH_HEADER;
  f.writeUInt32BE(0x60000000, ip); // version 6, traffic class 0, flow label 0
  f.writeUInt16BE(ICMPV6_NA_LENGTH, ip + 4); // payload length
  f.writeUInt8(NEXT_HEADER_ICMPV6, ip + 6);
  f.writeUInt8(255, ip + 7); // hop limit: receivers drop ND messages with any other value
  target.copy(f, ip + 8); // source: the VIP itself
  dst.copy(f, ip + 24);

  const icmp = ETH_HEADER + IPV6_HEADER;
  f.writeUInt8(ICMPV6_NEIGHBOUR_ADVERTISEMENT, icmp);
  f.writeUInt8(0, icmp + 1); // code
  // icmp + 2: checksum, filled below
  f.writeUInt32BE(NA_FLAG_OVERRIDE, icmp + 4);
  target.copy(f, icmp + 8);
  f.writeUInt8(ND_OPT_TARGET_LL_ADDR, icmp + 24);
  f.writeUInt8(1, icmp + 25); // option length in units of 8 bytes
  mac.copy(f, icmp + 26);
  f.writeUInt16BE(icmpv6Checksum(target, dst, f.subarray(icmp, icmp + ICMPV6_NA_LENGTH)), icmp + 2);
  return f;
}
