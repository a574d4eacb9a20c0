/**
 * The advert wire codec: a VRRPv3-shaped advertisement (RFC 5798 section 5.1) carried in UDP, optionally
 * followed by a 48-byte authentication trailer (see auth.ts). Pure code, no I/O.
 *
 * Layout (big-endian):
 *
 * ```
 * off size field
 * 0   1   version<<4 | type = 0x31        (RFC 5798 sections 5.2.1, 5.2.2)
 * 1   1   vrid 1..255                     (section 5.2.3)
 * 2   1   priority 0..255                 (section 5.2.4)
 * 3   1   count of VIP addresses 0..64    (section 5.2.5)
 * 4   2   4 reserved bits (0) | max advert interval, centiseconds, 1..4095 (sections 5.2.6, 5.2.7)
 * 6   2   checksum, RFC 1071 over [0, vrrpLength) with this field zeroed (section 5.2.8, without the
 *         IP pseudo-header: the advert travels in UDP, whose own checksum covers the addresses)
 * 8   1   address family, 4 or 6
 * 9   1   flags: 0x01 = an authentication trailer follows; other bits must be 0
 * 10  2   reserved, 0
 * 12  4|16           sender primary address
 * ..  count x (4|16) VIP addresses                                   (section 5.2.9)
 * vrrpLength = 12 + (count + 1) * addressLength
 * [flags & 0x01] 48-byte authentication trailer at offset vrrpLength (layout in auth.ts)
 * ```
 *
 * The checksum covers the flags byte, so a signer that sets the flag must recompute the checksum (auth.ts
 * does). `decodeAdvert` never throws; it accepts only canonical frames, so for every unsigned frame it accepts,
 * `encodeAdvert(decoded.advert)` returns the very same bytes. Addresses are text in node:net's canonical form
 * (IPv4 dotted quad; IPv6 as libuv's inet_ntop writes it: lowercase, compressed, IPv4-mapped as
 * `::ffff:a.b.c.d`), which is what `new net.SocketAddress(...).address` returns (see lib/address.ts).
 */

import type { AddressFamily } from '../config/types.ts';
import { addressBytes, formatAddress } from '../lib/address.ts';
import { CodecError } from '../lib/errors.ts';
import { fail, ok } from '../lib/result.ts';
import type { Result } from '../lib/result.ts';
import type { Advert } from './types.ts';

/** Wire constants shared by the codec, the signer and the ingress filter. */
export const WIRE = {
  /** Version 3, type 1 ADVERTISEMENT (RFC 5798 sections 5.2.1, 5.2.2). */
  versionType: 0x31,
  /** Fixed header before the sender address. */
  headerLength: 12,
  offsetVrid: 1,
  offsetPriority: 2,
  offsetCount: 3,
  offsetInterval: 4,
  offsetChecksum: 6,
  offsetFamily: 8,
  offsetFlags: 9,
  offsetReserved: 10,
  /** Flags bit: an authentication trailer follows the VRRP part. */
  flagAuth: 0x01,
  maxAddresses: 64,
  maxIntervalCs: 4095,
  /** Authentication trailer: total length, type byte, MAC length. */
  trailerLength: 48,
  trailerType: 0xa1,
  macLength: 32,
} as const;

/** Why a datagram could not be decoded. */
export const DECODE_REASONS = ['bad_length', 'bad_version', 'bad_checksum', 'malformed'] as const;
/** One of DECODE_REASONS. */
export type DecodeReason = (typeof DECODE_REASONS)[number];

/** A successfully decoded datagram. */
export interface DecodedAdvert {
  advert: Advert;
  /** True when an authentication trailer follows (its MAC is NOT checked here; see auth.ts). */
  signed: boolean;
  /** Length of the VRRP part (the bytes the checksum covers); the trailer, if any, starts here. */
  frameLength: number;
}

/** Bytes per address of a family. */
export function addressLength(family: AddressFamily): 4 | 16 {
  return family === 4 ? 4 : 16;
}

/** Length of the VRRP part (without trailer) for `count` VIPs of a family. */
export function vrrpLength(family: AddressFamily, count: number): number {
  return WIRE.headerLength + (count + 1) * addressLength(family);
}

/**
 * RFC 1071 Internet checksum of `buf[start, end)`: the one's complement of the one's complement sum of the
 * 16-bit big-endian words (an odd last byte is padded with zero). If `skip` is given (an even distance from
 * `start`), the two bytes at that offset are treated as zero (the checksum field itself). A buffer holding its
 * own correct checksum checksums to 0.
 */
export function internetChecksum(buf: Uint8Array, start = 0, end = buf.length, skip?: number): number {
  let sum = 0;
  let i = start;
  for (; i + 1 < end; i += 2) {
    if (i === skip) continue;
    sum += ((buf[i] ?? 0) << 8) | (buf[i + 1] ?? 0);
    // Fold periodically so the sum never leaves the exact-integer range.
    if (sum > 0x7fff_ffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  }
  if (i < end && i !== skip) sum += (buf[i] ?? 0) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

// ---------------------------------------------------------------------------------------------------------
// Encode

function checkInt(name: string, v: unknown, min: number, max: number): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new CodecError(`advert ${name} must be an integer ${min}..${max}, got ${String(v)}`);
  }
}

/**
 * Encodes an advert as an unsigned frame (flags 0, checksum filled in). Throws CodecError when a field is out
 * of range: vrid 1..255, priority 0..255, advertIntervalCs 1..4095, at most 64 addresses, family 4 or 6, and
 * every address valid text of that family.
 */
export function encodeAdvert(a: Advert): Buffer {
  checkInt('vrid', a.vrid, 1, 255);
  checkInt('priority', a.priority, 0, 255);
  checkInt('advertIntervalCs', a.advertIntervalCs, 1, WIRE.maxIntervalCs);
  if (a.family !== 4 && a.family !== 6) throw new CodecError(`advert family must be 4 or 6, got ${String(a.family)}`);
  if (!Array.isArray(a.addresses) || a.addresses.length > WIRE.maxAddresses) {
    throw new CodecError(`advert (vrid ${a.vrid}) carries at most ${WIRE.maxAddresses} addresses, got ${String(a.addresses?.length)}`);
  }
  const family = a.family;
  const alen = addressLength(family);
  const len = vrrpLength(family, a.addresses.length);
  const buf = Buffer.alloc(len);
  buf[0] = WIRE.versionType;
  buf[WIRE.offsetVrid] = a.vrid;
  buf[WIRE.offsetPriority] = a.priority;
  buf[WIRE.offsetCount] = a.addresses.length;
  buf.writeUInt16BE(a.advertIntervalCs, WIRE.offsetInterval);
  buf[WIRE.offsetFamily] = family;
  const put = (text: string, what: string, off: number): void => {
    const b = typeof text === 'string' ? addressBytes(text, family) : undefined;
    if (b === undefined) throw new CodecError(`advert (vrid ${a.vrid}) ${what} ${JSON.stringify(text)} is not an IPv${family} address`);
    b.copy(buf, off);
  };
  put(a.sender, 'sender', WIRE.headerLength);
  a.addresses.forEach((addr, i) => put(addr, `address[${i}]`, WIRE.headerLength + (i + 1) * alen));
  buf.writeUInt16BE(internetChecksum(buf, 0, len, WIRE.offsetChecksum), WIRE.offsetChecksum);
  return buf;
}

// ---------------------------------------------------------------------------------------------------------
// Decode

/**
 * Decodes a datagram (an unsigned frame, or a signed frame with its trailer). Never throws. Checks, in order:
 * at least the 12-byte header ('bad_length'); version/type 0x31 ('bad_version'); family 4/6 and count <= 64
 * ('malformed'); total length = vrrpLength (+48 when flag 0x01 is set) ('bad_length'); checksum
 * ('bad_checksum'); then vrid != 0, reserved bits and bytes 0, interval != 0, unknown flags 0, and the trailer's
 * type 0xA1 and length 48 ('malformed'). The trailer's MAC is not verified here.
 */
export function decodeAdvert(datagram: Buffer): Result<DecodedAdvert, DecodeReason> {
  const buf = asBuffer(datagram);
  if (buf === undefined) return fail('malformed', 'datagram is not a byte buffer');
  if (buf.length < WIRE.headerLength) {
    return fail('bad_length', `datagram of ${buf.length} bytes is shorter than the ${WIRE.headerLength}-byte header`);
  }
  const vt = buf[0] ?? 0;
  if (vt !== WIRE.versionType) {
    return fail('bad_version', `version/type byte 0x${hex2(vt)} (version ${vt >> 4}, type ${vt & 0xf}), want 0x31 (version 3 advertisement, RFC 5798 section 5.2.1)`);
  }
  const familyByte = buf[WIRE.offsetFamily] ?? 0;
  if (familyByte !== 4 && familyByte !== 6) return fail('malformed', `address family ${familyByte}, want 4 or 6`);
  const family: AddressFamily = familyByte;
  const count = buf[WIRE.offsetCount] ?? 0;
  if (count > WIRE.maxAddresses) return fail('malformed', `address count ${count} exceeds ${WIRE.maxAddresses}`);
  const flags = buf[WIRE.offsetFlags] ?? 0;
  const signed = (flags & WIRE.flagAuth) !== 0;
  const vlen = vrrpLength(family, count);
  const want = vlen + (signed ? WIRE.trailerLength : 0);
  if (buf.length !== want) {
    return fail('bad_length', `datagram is ${buf.length} bytes, want ${want} (${count} IPv${family} address(es)${signed ? ' + 48-byte auth trailer' : ''})`);
  }
  const stored = buf.readUInt16BE(WIRE.offsetChecksum);
  const computed = internetChecksum(buf, 0, vlen, WIRE.offsetChecksum);
  if (stored !== computed) return fail('bad_checksum', `checksum 0x${hex4(stored)}, computed 0x${hex4(computed)}`);
  const vrid = buf[WIRE.offsetVrid] ?? 0;
  if (vrid === 0) return fail('malformed', 'vrid 0 (valid vrids are 1..255, RFC 5798 section 5.2.3)');
  const iv = buf.readUInt16BE(WIRE.offsetInterval);
  if (iv >> 12 !== 0) return fail('malformed', `vrid ${vrid}: reserved bits 0x${hex2(iv >> 12)} set in the interval field`);
  const advertIntervalCs = iv & 0x0fff;
  if (advertIntervalCs === 0) return fail('malformed', `vrid ${vrid}: max advert interval 0 (RFC 5798 section 5.2.7)`);
  if ((flags & ~WIRE.flagAuth) !== 0) return fail('malformed', `vrid ${vrid}: unknown flags 0x${hex2(flags)}`);
  if (buf.readUInt16BE(WIRE.offsetReserved) !== 0) return fail('malformed', `vrid ${vrid}: reserved bytes 10..11 are not zero`);
  if (signed) {
    const tt = buf[vlen] ?? 0;
    const tl = buf.readUInt16BE(vlen + 2);
    if (tt !== WIRE.trailerType || tl !== WIRE.trailerLength) {
      return fail('malformed', `vrid ${vrid}: auth trailer type 0x${hex2(tt)} length ${tl}, want type 0xa1 length 48`);
    }
  }
  const alen = addressLength(family);
  const sender = formatAddress(buf, WIRE.headerLength, family);
  const addresses: string[] = [];
  for (let i = 0; i < count; i++) addresses.push(formatAddress(buf, WIRE.headerLength + (i + 1) * alen, family));
  return ok({
    advert: { vrid, priority: buf[WIRE.offsetPriority] ?? 0, advertIntervalCs, family, sender, addresses },
    signed,
    frameLength: vlen,
  });
}

/** The bytes as a Buffer (a plain Uint8Array is wrapped without copying); undefined for anything else. */
export function asBuffer(x: unknown): Buffer | undefined {
  if (Buffer.isBuffer(x)) return x;
  if (x instanceof Uint8Array) return Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  return undefined;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

function hex4(n: number): string {
  return n.toString(16).padStart(4, '0');
}
