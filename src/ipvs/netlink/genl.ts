/**
 * Generic netlink framing, pure code with no I/O: nlmsghdr and genlmsghdr (include/uapi/linux/netlink.h,
 * genetlink.h), attribute TLVs declared as constant layout tables and converted to and from typed values,
 * multi-message datagram splitting, NLMSG_ERROR / NLMSG_DONE payloads, and the ctrl family
 * (CTRL_CMD_GETFAMILY -> family id) that resolves a family name such as "IPVS".
 *
 * Layout (every integer in host byte order unless the attribute kind says otherwise):
 *
 * ```
 * nlmsghdr   16  len u32 (header included) | type u16 | flags u16 | seq u32 | pid u32
 * genlmsghdr  4  cmd u8 | version u8 | reserved u16
 * nlattr      4  len u16 (header included, padding excluded) | type u16; data padded to 4 bytes
 * ```
 *
 * Decoders return results and never throw, whatever the bytes; encoders throw CodecError for values a layout
 * cannot carry. Attribute types are masked with NLA_TYPE_MASK on decode because some families (IPVS among them)
 * nest attributes without setting NLA_F_NESTED.
 */

import { CodecError } from '../../lib/errors.ts';
import { fail, ok } from '../../lib/result.ts';
import type { Result } from '../../lib/result.ts';

/** The generic netlink protocol number for socket(AF_NETLINK, SOCK_RAW, NETLINK_GENERIC). */
export const NETLINK_GENERIC = 16;

/** sizeof(struct nlmsghdr). */
export const NLMSG_HDRLEN = 16;
/** sizeof(struct genlmsghdr). */
export const GENL_HDRLEN = 4;
/** sizeof(struct nlattr). */
export const NLA_HDRLEN = 4;
/** Attributes and messages start on 4-byte boundaries (NLA_ALIGNTO, NLMSG_ALIGNTO). */
export const NLA_ALIGNTO = 4;
/** Attribute type bits that are flags, not part of the type. */
export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
/** Mask to apply to nla_type before looking the type up. */
export const NLA_TYPE_MASK = 0x3fff;

/** Control message types (linux/netlink.h). */
export const NLMSG = { NOOP: 1, ERROR: 2, DONE: 3, OVERRUN: 4 } as const;

/** nlmsg_flags bits (linux/netlink.h); DUMP = ROOT | MATCH. CAPPED and ACK_TLVS are the same bits on acks. */
export const NLM_F = {
  REQUEST: 0x1,
  MULTI: 0x2,
  ACK: 0x4,
  ECHO: 0x8,
  DUMP_INTR: 0x10,
  ROOT: 0x100,
  MATCH: 0x200,
  DUMP: 0x300,
  CAPPED: 0x100,
  ACK_TLVS: 0x200,
} as const;

/** The ctrl family has this fixed id (linux/genetlink.h). */
export const GENL_ID_CTRL = 0x10;
/** ctrl commands (linux/genetlink.h). */
export const CTRL_CMD = { UNSPEC: 0, NEWFAMILY: 1, DELFAMILY: 2, GETFAMILY: 3 } as const;

/** Why bytes could not be decoded (shared by the genl and IPVS decoders). */
export const DECODE_REASONS = ['truncated', 'bad_length', 'bad_attr', 'missing_attr', 'bad_value', 'unexpected_message'] as const;
/** One of DECODE_REASONS. */
export type DecodeReason = (typeof DECODE_REASONS)[number];
/** A decoder's answer. */
export type Decoded<T> = Result<T, DecodeReason>;

/** True on little-endian hosts (x86, arm64): netlink integers are in the host's byte order. */
const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---------------------------------------------------------------------------------------------------------
// Attribute layout tables

/** How an attribute's payload is laid out. `be16`/`be32` are network order; `flags` is struct {u32 flags; u32 mask}. */
export type AttrKind = 'u8' | 'u16' | 'u32' | 'u64' | 'be16' | 'be32' | 'string' | 'binary' | 'flags' | 'nested' | 'pad';

/** An integer, flags or padding attribute. */
export interface FixedAttrSpec {
  readonly type: number;
  readonly kind: 'u8' | 'u16' | 'u32' | 'u64' | 'be16' | 'be32' | 'flags' | 'pad';
}
/** A NUL-terminated string of at most `maxLen` characters (the NUL excluded), like the kernel's NLA_NUL_STRING. */
export interface StringAttrSpec {
  readonly type: number;
  readonly kind: 'string';
  readonly maxLen: number;
}
/** Bytes, at most `maxLen` of them (NLA_BINARY). */
export interface BinaryAttrSpec {
  readonly type: number;
  readonly kind: 'binary';
  readonly maxLen: number;
}
/** Attributes nested in this one, laid out by `table`, whose attributes are named `name`_KEY. */
export interface NestedAttrSpec {
  readonly type: number;
  readonly kind: 'nested';
  readonly name: string;
  readonly table: AttrTable;
}
/** One attribute of a layout table. */
export type AttrSpec = FixedAttrSpec | StringAttrSpec | BinaryAttrSpec | NestedAttrSpec;
/** A layout table: attribute name (the header's name without its prefix) -> spec. Declared `as const`. */
export interface AttrTable {
  readonly [name: string]: AttrSpec;
}

/** The value of a `flags` attribute (e.g. struct ip_vs_flags): which bits to set, and which bits to touch. */
export interface GenlFlags {
  flags: number;
  mask: number;
}

interface KindValues {
  u8: number;
  u16: number;
  u32: number;
  u64: bigint;
  be16: number;
  be32: number;
  string: string;
  binary: Buffer;
  flags: GenlFlags;
  pad: never;
}

/** The TypeScript value of one attribute spec. */
export type AttrValue<S extends AttrSpec> = S extends { readonly kind: 'nested'; readonly table: infer T extends AttrTable }
  ? AttrValues<T>
  : S extends { readonly kind: infer K extends keyof KindValues }
    ? KindValues[K]
    : never;

/** The values of a layout table's attributes, each optional (absent = not sent / not received). */
export type AttrValues<T extends AttrTable> = { -readonly [K in keyof T]?: AttrValue<T[K]> };

const FIXED_SIZES = { u8: 1, u16: 2, u32: 4, u64: 8, be16: 2, be32: 4, flags: 8 } as const;

/** Rounds up to the 4-byte attribute/message alignment. */
export function align4(n: number): number {
  return (n + NLA_ALIGNTO - 1) & ~(NLA_ALIGNTO - 1);
}

/** One attribute as a type and its payload bytes, before any interpretation. */
export interface RawAttr {
  /** The type with NLA_F_NESTED / NLA_F_NET_BYTEORDER masked off. */
  type: number;
  data: Buffer;
}

/** Splits a run of attributes into TLVs; fails on a length below the header or past the end. */
export function parseAttrs(buf: Buffer): Decoded<RawAttr[]> {
  const out: RawAttr[] = [];
  let off = 0;
  while (off < buf.length) {
    if (buf.length - off < NLA_HDRLEN) return fail('truncated', `attribute header at offset ${off}: ${buf.length - off} bytes left, need ${NLA_HDRLEN}`);
    const len = readU16(buf, off);
    const type = readU16(buf, off + 2) & NLA_TYPE_MASK;
    if (len < NLA_HDRLEN) return fail('bad_length', `attribute type ${type} at offset ${off}: length ${len} is below the ${NLA_HDRLEN}-byte header`);
    if (off + len > buf.length) return fail('truncated', `attribute type ${type} at offset ${off}: length ${len} runs past the end (${buf.length - off} bytes left)`);
    out.push({ type, data: buf.subarray(off + NLA_HDRLEN, off + len) });
    off = Math.min(buf.length, off + align4(len));
  }
  return ok(out);
}

/** One attribute: header, payload and zero padding to 4 bytes. `type` may carry NLA_F_* bits. */
export function encodeAttr(type: number, data: Uint8Array): Buffer {
  const len = NLA_HDRLEN + data.length;
  if (len > 0xffff) throw new CodecError(`attribute type ${type & NLA_TYPE_MASK}: ${data.length} bytes do not fit a netlink attribute (max ${0xffff - NLA_HDRLEN})`);
  const out = Buffer.alloc(align4(len));
  writeU16(out, len, 0);
  writeU16(out, type, 2);
  out.set(data, NLA_HDRLEN);
  return out;
}

const lookupCache = new WeakMap<AttrTable, Map<number, readonly [string, AttrSpec]>>();

function byType(table: AttrTable): Map<number, readonly [string, AttrSpec]> {
  let m = lookupCache.get(table);
  if (m === undefined) {
    m = new Map(Object.entries(table).map(([k, s]) => [s.type, [k, s] as const]));
    lookupCache.set(table, m);
  }
  return m;
}

/**
 * Encodes `values` with `table`, in the table's declaration order (the kernel headers' order), skipping absent
 * values. `name` prefixes attribute names in errors (e.g. `IPVS_SVC_ATTR`). Throws CodecError for a value the
 * layout cannot carry. Nested attributes are sent without NLA_F_NESTED, as ipvsadm (libnl) does.
 */
export function encodeAttrs<T extends AttrTable>(table: T, values: AttrValues<T>, name: string): Buffer {
  // Two passes over one buffer: measure (and validate) everything, then write. Requests are built by the
  // thousand when a table is programmed cold, and one allocation per request instead of one per attribute is
  // what keeps that fast (a tenth of the CPU, measured).
  const out = Buffer.alloc(measureAttrs(table, values as Readonly<Record<string, unknown>>, name));
  writeAttrs(out, 0, table, values as Readonly<Record<string, unknown>>);
  return out;
}

/** Bytes `values` take as attributes with `table` (headers and padding included). Throws CodecError like encodeAttrs. */
export function attrsLength<T extends AttrTable>(table: T, values: AttrValues<T>, name: string): number {
  return measureAttrs(table, values as Readonly<Record<string, unknown>>, name);
}

/**
 * Writes one generic netlink message (nlmsghdr + genlmsghdr + attributes) into zeroed `out` at `off`, the
 * attributes already measured (and so validated) by attrsLength as `attrsLen`; returns the aligned end offset.
 * The allocation-free path for batches: many messages written into one datagram.
 */
export function writeGenlMsg<T extends AttrTable>(
  out: Buffer,
  off: number,
  h: { family: number; cmd: number; version: number; flags: number; seq: number },
  table: T,
  values: AttrValues<T>,
  attrsLen: number,
): number {
  const len = NLMSG_HDRLEN + GENL_HDRLEN + attrsLen;
  writeGenlHeaders(out, off, len, h);
  writeAttrs(out, off + NLMSG_HDRLEN + GENL_HDRLEN, table, values as Readonly<Record<string, unknown>>);
  return off + align4(len);
}

/** Sets nlmsg_flags and nlmsg_seq of the message whose header starts at `off` (a pre-framed request). */
export function setMsgFlagsAndSeq(buf: Buffer, off: number, flags: number, seq: number): void {
  writeU16(buf, flags, off + 6);
  writeU32(buf, seq >>> 0, off + 8);
}

/** Kinds as small integers, for the encoder's switch (string cases and keyed lookups cost on the hot path). */
const KIND_CODES = { u8: 0, u16: 1, u32: 2, u64: 3, be16: 4, be32: 5, string: 6, binary: 7, flags: 8, nested: 9, pad: 10 } as const satisfies Record<AttrKind, number>;

/** One table entry, prepared for encoding: name, spec, and the facts the encoder needs as plain numbers. */
interface PreparedAttr {
  readonly key: string;
  readonly spec: AttrSpec;
  readonly type: number;
  readonly code: number;
  /** Payload size of fixed-size kinds; 0 otherwise. */
  readonly size: number;
  /** Largest value of the integer kinds. */
  readonly max: number;
  /** Nested table name (for errors), or ''. */
  readonly nestedName: string;
}

const preparedCache = new WeakMap<AttrTable, readonly PreparedAttr[]>();

/** The table's entries in declaration order, prepared once per table. */
function prepared(table: AttrTable): readonly PreparedAttr[] {
  let p = preparedCache.get(table);
  if (p === undefined) {
    p = Object.entries(table).map(([key, spec]): PreparedAttr => {
      const size = spec.kind === 'string' || spec.kind === 'binary' || spec.kind === 'nested' || spec.kind === 'pad' ? 0 : FIXED_SIZES[spec.kind];
      return { key, spec, type: spec.type, code: KIND_CODES[spec.kind], size, max: size > 0 && size <= 4 ? 2 ** (size * 8) - 1 : 0, nestedName: spec.kind === 'nested' ? spec.name : '' };
    });
    preparedCache.set(table, p);
  }
  return p;
}

/**
 * One-entry memos of the last nested value measured and written. Attribute values are never mutated once built
 * (every *ToWire function returns fresh objects), so object identity means identical bytes.
 */
const lastMeasured: { value: unknown; size: number } = { value: undefined, size: 0 };
const lastWritten: { value: unknown; buf: Buffer | undefined; start: number; end: number } = { value: undefined, buf: undefined, start: 0, end: 0 };

/** Bytes `values` take as attributes (headers and padding included); throws CodecError for a bad value. */
function measureAttrs(table: AttrTable, vals: Readonly<Record<string, unknown>>, name: string): number {
  let total = 0;
  const attrs = prepared(table);
  for (let i = 0; i < attrs.length; i++) {
    const a = attrs[i] as PreparedAttr;
    const v = vals[a.key];
    if (v === undefined) continue;
    const len = NLA_HDRLEN + measureValue(a, v, name);
    if (len > 0xffff) throw new CodecError(`${name}_${a.key}: ${len - NLA_HDRLEN} bytes do not fit a netlink attribute (max ${0xffff - NLA_HDRLEN})`);
    total += align4(len);
  }
  return total;
}

/** Payload bytes of one attribute value, validated. `name`_KEY names it in errors. */
function measureValue(a: PreparedAttr, v: unknown, name: string): number {
  // No closure for the name: the TypeScript loader wraps every function created at run time with a naming
  // helper (Object.defineProperty), which costs more than the encoding here.
  switch (a.code) {
    case KIND_CODES.u8:
    case KIND_CODES.u16:
    case KIND_CODES.u32:
    case KIND_CODES.be16:
    case KIND_CODES.be32:
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > a.max) throw new CodecError(`${name}_${a.key}: ${String(v)} is not an integer 0..${a.max}`);
      return a.size;
    case KIND_CODES.u64:
      if (typeof v !== 'bigint' || v < 0n || v > 0xffff_ffff_ffff_ffffn) throw new CodecError(`${name}_${a.key}: ${String(v)} is not an integer 0..2^64-1`);
      return 8;
    case KIND_CODES.flags: {
      const f = v as Partial<GenlFlags>;
      for (const [k, x] of [['flags', f.flags], ['mask', f.mask]] as const) {
        if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > 0xffffffff) throw new CodecError(`${name}_${a.key}: ${k} ${String(x)} is not an integer 0..0xffffffff`);
      }
      return 8;
    }
    case KIND_CODES.string: {
      const maxLen = (a.spec as StringAttrSpec).maxLen;
      if (typeof v !== 'string') throw new CodecError(`${name}_${a.key}: not a string`);
      if (v.includes('\0')) throw new CodecError(`${name}_${a.key}: ${JSON.stringify(v)} contains a NUL character`);
      const n = Buffer.byteLength(v, 'utf8');
      if (n > maxLen) throw new CodecError(`${name}_${a.key}: ${JSON.stringify(v)} is ${n} bytes long, at most ${maxLen} fit`);
      return n + 1;
    }
    case KIND_CODES.binary: {
      const maxLen = (a.spec as BinaryAttrSpec).maxLen;
      if (!(v instanceof Uint8Array)) throw new CodecError(`${name}_${a.key}: not bytes`);
      if (v.length > maxLen) throw new CodecError(`${name}_${a.key}: ${v.length} bytes, at most ${maxLen} fit`);
      return v.length;
    }
    case KIND_CODES.nested: {
      // A dest request repeats its service's key object (ipvs-codec caches it per service): measure it once.
      if (v === lastMeasured.value) return lastMeasured.size;
      const size = measureAttrs((a.spec as NestedAttrSpec).table, v as Readonly<Record<string, unknown>>, a.nestedName);
      lastMeasured.value = v;
      lastMeasured.size = size;
      return size;
    }
    default:
      return 0; // pad
  }
}

/** Writes attributes already measured by measureAttrs into zeroed `out` at `off`; returns the end offset. */
function writeAttrs(out: Buffer, off: number, table: AttrTable, vals: Readonly<Record<string, unknown>>): number {
  const attrs = prepared(table);
  for (let i = 0; i < attrs.length; i++) {
    const a = attrs[i] as PreparedAttr;
    const v = vals[a.key];
    if (v === undefined) continue;
    const start = off;
    const p = off + NLA_HDRLEN;
    let end: number;
    switch (a.code) {
      case KIND_CODES.u8:
        out[p] = v as number;
        end = p + 1;
        break;
      case KIND_CODES.u16:
        writeU16(out, v as number, p);
        end = p + 2;
        break;
      case KIND_CODES.u32:
        writeU32(out, v as number, p);
        end = p + 4;
        break;
      case KIND_CODES.be16:
        out.writeUInt16BE(v as number, p);
        end = p + 2;
        break;
      case KIND_CODES.be32:
        out.writeUInt32BE(v as number, p);
        end = p + 4;
        break;
      case KIND_CODES.u64:
        if (HOST_LE) out.writeBigUInt64LE(v as bigint, p);
        else out.writeBigUInt64BE(v as bigint, p);
        end = p + 8;
        break;
      case KIND_CODES.flags: {
        const f = v as GenlFlags;
        writeU32(out, f.flags, p);
        writeU32(out, f.mask, p + 4);
        end = p + 8;
        break;
      }
      case KIND_CODES.string:
        end = p + out.write(v as string, p, 'utf8') + 1; // the NUL is already there (zeroed buffer)
        break;
      case KIND_CODES.binary:
        out.set(v as Uint8Array, p);
        end = p + (v as Uint8Array).length;
        break;
      case KIND_CODES.nested:
        if (v === lastWritten.value && out === lastWritten.buf) {
          // The same nested value as the last one written into this buffer (a service key repeated by its
          // dests): copy those bytes instead of encoding them again.
          end = p + out.copy(out, p, lastWritten.start, lastWritten.end);
        } else {
          end = writeAttrs(out, p, (a.spec as NestedAttrSpec).table, v as Readonly<Record<string, unknown>>);
          lastWritten.value = v;
          lastWritten.buf = out;
          lastWritten.start = p;
          lastWritten.end = end;
        }
        break;
      default: // pad
        end = p;
    }
    writeU16(out, end - start, start);
    writeU16(out, a.type, start + 2);
    off = align4(end);
  }
  return off;
}

/**
 * Decodes attributes with `table`: unknown types are skipped (as the kernel's lenient parsers do), zero-length
 * padding attributes are skipped, a repeated type keeps the last value. Fails when a known attribute has the
 * wrong size or a nested run is malformed. `name` prefixes attribute names in details.
 */
export function decodeAttrs<T extends AttrTable>(table: T, buf: Buffer, name: string): Decoded<AttrValues<T>> {
  const raw = parseAttrs(buf);
  if (!raw.ok) return fail(raw.reason, `${name}: ${raw.detail}`);
  const lookup = byType(table);
  const out: Record<string, unknown> = {};
  for (const a of raw.value) {
    const entry = lookup.get(a.type);
    if (entry === undefined) continue;
    const [key, spec] = entry;
    const v = decodeValue(spec, a.data, `${name}_${key}`);
    if (!v.ok) return v;
    if (v.value !== undefined) out[key] = v.value;
  }
  return ok(out as AttrValues<T>);
}

function decodeValue(spec: AttrSpec, data: Buffer, attr: string): Decoded<unknown> {
  switch (spec.kind) {
    case 'u8':
    case 'u16':
    case 'u32':
    case 'u64':
    case 'be16':
    case 'be32':
    case 'flags': {
      const size = FIXED_SIZES[spec.kind];
      if (data.length !== size) return fail('bad_attr', `${attr}: ${data.length} bytes, expected ${size}`);
      return ok(readFixed(spec.kind, data));
    }
    case 'string': {
      const nul = data.indexOf(0);
      return ok(data.subarray(0, nul === -1 ? data.length : nul).toString('utf8'));
    }
    case 'binary':
      if (data.length > spec.maxLen) return fail('bad_attr', `${attr}: ${data.length} bytes, at most ${spec.maxLen} expected`);
      return ok(Buffer.from(data));
    case 'nested':
      return decodeAttrs(spec.table, data, spec.name);
    case 'pad':
      return ok(undefined);
  }
}

/** A fixed-size value from exactly FIXED_SIZES[kind] bytes. */
function readFixed(kind: keyof typeof FIXED_SIZES, data: Buffer): number | bigint | GenlFlags {
  switch (kind) {
    case 'u8':
      return data.readUInt8(0);
    case 'u16':
      return readU16(data, 0);
    case 'u32':
      return readU32(data, 0);
    case 'u64':
      return HOST_LE ? data.readBigUInt64LE(0) : data.readBigUInt64BE(0);
    case 'be16':
      return data.readUInt16BE(0);
    case 'be32':
      return data.readUInt32BE(0);
    case 'flags':
      return { flags: readU32(data, 0), mask: readU32(data, 4) };
  }
}

// ---------------------------------------------------------------------------------------------------------
// Messages

/** struct nlmsghdr, as decoded. */
export interface NlMsgHeader {
  len: number;
  type: number;
  flags: number;
  seq: number;
  pid: number;
}

/** One netlink message of a datagram: its header fields and its payload (after the 16-byte header). */
export interface NetlinkMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  payload: Buffer;
}

/** A netlink message: nlmsghdr (length filled in) then the payload, padded to 4 bytes. */
export function encodeNlMsg(h: { type: number; flags: number; seq: number; pid?: number }, payload: Uint8Array): Buffer {
  const len = NLMSG_HDRLEN + payload.length;
  const out = Buffer.alloc(align4(len));
  writeNlMsgHeader(out, 0, len, h.type, h.flags, h.seq, h.pid ?? 0);
  out.set(payload, NLMSG_HDRLEN);
  return out;
}

/** Writes an nlmsghdr at `off`: total length (header included), type, flags, seq, pid. */
function writeNlMsgHeader(out: Buffer, off: number, len: number, type: number, flags: number, seq: number, pid: number): void {
  writeU32(out, len, off);
  writeU16(out, type, off + 4);
  writeU16(out, flags, off + 6);
  writeU32(out, seq >>> 0, off + 8);
  writeU32(out, pid >>> 0, off + 12);
}

/** Writes nlmsghdr (type = family id) and genlmsghdr at `off` for a message of `len` bytes. */
function writeGenlHeaders(out: Buffer, off: number, len: number, h: { family: number; cmd: number; version: number; flags: number; seq: number; pid?: number }): void {
  writeNlMsgHeader(out, off, len, h.family, h.flags, h.seq, h.pid ?? 0);
  out.writeUInt8(h.cmd, off + NLMSG_HDRLEN);
  out.writeUInt8(h.version, off + NLMSG_HDRLEN + 1);
}

/** A generic netlink request or reply: nlmsghdr (type = family id), genlmsghdr, attributes. */
export function encodeGenlMsg(h: { family: number; cmd: number; version: number; flags: number; seq: number; pid?: number }, attrs: Uint8Array): Buffer {
  const len = NLMSG_HDRLEN + GENL_HDRLEN + attrs.length;
  const out = Buffer.alloc(align4(len));
  writeGenlHeaders(out, 0, len, h);
  out.set(attrs, NLMSG_HDRLEN + GENL_HDRLEN);
  return out;
}

/** Reads the nlmsghdr at `off`, or undefined when fewer than 16 bytes are left. */
export function readNlMsgHeader(buf: Buffer, off = 0): NlMsgHeader | undefined {
  if (buf.length - off < NLMSG_HDRLEN) return undefined;
  return { len: readU32(buf, off), type: readU16(buf, off + 4), flags: readU16(buf, off + 6), seq: readU32(buf, off + 8), pid: readU32(buf, off + 12) };
}

/** Splits a received datagram into its messages (a dump packs many into one datagram). */
export function splitDatagram(buf: Buffer): Decoded<NetlinkMessage[]> {
  const out: NetlinkMessage[] = [];
  let off = 0;
  while (off < buf.length) {
    const h = readNlMsgHeader(buf, off);
    if (h === undefined) return fail('truncated', `message header at offset ${off}: ${buf.length - off} bytes left, need ${NLMSG_HDRLEN}`);
    if (h.len < NLMSG_HDRLEN) return fail('bad_length', `message at offset ${off}: length ${h.len} is below the ${NLMSG_HDRLEN}-byte header`);
    if (h.len > buf.length - off) return fail('truncated', `message at offset ${off}: length ${h.len} runs past the end (${buf.length - off} bytes left)`);
    out.push({ type: h.type, flags: h.flags, seq: h.seq, pid: h.pid, payload: buf.subarray(off + NLMSG_HDRLEN, off + h.len) });
    off = Math.min(buf.length, off + align4(h.len));
  }
  return ok(out);
}

/** A generic netlink payload: command, version and the attribute bytes. */
export interface GenlPayload {
  cmd: number;
  version: number;
  attrs: Buffer;
}

/** Reads the genlmsghdr of a message payload. */
export function decodeGenlPayload(payload: Buffer): Decoded<GenlPayload> {
  if (payload.length < GENL_HDRLEN) return fail('truncated', `generic netlink header: ${payload.length} bytes, need ${GENL_HDRLEN}`);
  return ok({ cmd: payload.readUInt8(0), version: payload.readUInt8(1), attrs: payload.subarray(GENL_HDRLEN) });
}

/** An NLMSG_ERROR payload: errno 0 is an acknowledgement. */
export interface NlError {
  /** Positive errno (the kernel sends it negated), 0 for an ACK. */
  errno: number;
  /** The header of the request this answers (echoed by the kernel), when present. */
  request: NlMsgHeader | undefined;
}

/** Decodes an NLMSG_ERROR payload: struct nlmsgerr { int error; struct nlmsghdr msg; ... }. */
export function decodeNlError(payload: Buffer): Decoded<NlError> {
  if (payload.length < 4) return fail('truncated', `NLMSG_ERROR: ${payload.length} bytes, need at least 4 for the error code`);
  const error = HOST_LE ? payload.readInt32LE(0) : payload.readInt32BE(0);
  if (error > 0) return fail('bad_value', `NLMSG_ERROR: error code ${error} is positive (the kernel sends -errno)`);
  return ok({ errno: error === 0 ? 0 : -error, request: readNlMsgHeader(payload, 4) });
}

/** Decodes an NLMSG_DONE payload: the dump's final status as a positive errno (0 = complete). */
export function decodeDone(payload: Buffer): Decoded<number> {
  if (payload.length === 0) return ok(0);
  if (payload.length < 4) return fail('truncated', `NLMSG_DONE: ${payload.length} bytes, expected 4 or none`);
  const status = HOST_LE ? payload.readInt32LE(0) : payload.readInt32BE(0);
  return ok(status < 0 ? -status : 0);
}

// ---------------------------------------------------------------------------------------------------------
// The ctrl family

/** CTRL_ATTR_* (linux/genetlink.h); OPS and MCAST_GROUPS are not needed here and left undecoded. */
export const CTRL_ATTR = {
  FAMILY_ID: { type: 1, kind: 'u16' },
  FAMILY_NAME: { type: 2, kind: 'string', maxLen: 15 },
  VERSION: { type: 3, kind: 'u32' },
  HDRSIZE: { type: 4, kind: 'u32' },
  MAXATTR: { type: 5, kind: 'u32' },
} as const;

/** A resolved generic netlink family. */
export interface GenlFamily {
  id: number;
  name: string;
  version: number;
  hdrSize: number;
  maxAttr: number;
}

/** CTRL_CMD_GETFAMILY by name (a plain request: the kernel answers with CTRL_CMD_NEWFAMILY or an error). */
export function encodeGetFamily(name: string, seq: number): Buffer {
  return encodeGenlMsg({ family: GENL_ID_CTRL, cmd: CTRL_CMD.GETFAMILY, version: 1, flags: NLM_F.REQUEST, seq }, encodeAttrs(CTRL_ATTR, { FAMILY_NAME: name }, 'CTRL_ATTR'));
}

/** Decodes the ctrl family's CTRL_CMD_NEWFAMILY reply (a message payload, after nlmsghdr). */
export function decodeFamily(payload: Buffer): Decoded<GenlFamily> {
  const g = decodeGenlPayload(payload);
  if (!g.ok) return g;
  if (g.value.cmd !== CTRL_CMD.NEWFAMILY) return fail('unexpected_message', `ctrl reply: command ${g.value.cmd}, expected CTRL_CMD_NEWFAMILY (${CTRL_CMD.NEWFAMILY})`);
  const a = decodeAttrs(CTRL_ATTR, g.value.attrs, 'CTRL_ATTR');
  if (!a.ok) return a;
  const { FAMILY_ID: id, FAMILY_NAME: name } = a.value;
  if (id === undefined) return fail('missing_attr', 'ctrl reply: no CTRL_ATTR_FAMILY_ID');
  if (name === undefined) return fail('missing_attr', 'ctrl reply: no CTRL_ATTR_FAMILY_NAME');
  return ok({ id, name, version: a.value.VERSION ?? 0, hdrSize: a.value.HDRSIZE ?? 0, maxAttr: a.value.MAXATTR ?? 0 });
}

// ---------------------------------------------------------------------------------------------------------
// Host-order integers

function readU16(b: Buffer, off: number): number {
  return HOST_LE ? b.readUInt16LE(off) : b.readUInt16BE(off);
}
function readU32(b: Buffer, off: number): number {
  return HOST_LE ? b.readUInt32LE(off) : b.readUInt32BE(off);
}
// Plain indexed stores rather than Buffer#writeUInt*: these run for every attribute header of every request,
// and the values were range-checked when measured; offsets always lie inside a buffer sized by measuring.
function writeU16(b: Buffer, v: number, off: number): void {
  if (HOST_LE) {
    b[off] = v & 0xff;
    b[off + 1] = (v >>> 8) & 0xff;
  } else {
    b[off] = (v >>> 8) & 0xff;
    b[off + 1] = v & 0xff;
  }
}
function writeU32(b: Buffer, v: number, off: number): void {
  if (HOST_LE) {
    b[off] = v & 0xff;
    b[off + 1] = (v >>> 8) & 0xff;
    b[off + 2] = (v >>> 16) & 0xff;
    b[off + 3] = (v >>> 24) & 0xff;
  } else {
    b[off] = (v >>> 24) & 0xff;
    b[off + 1] = (v >>> 16) & 0xff;
    b[off + 2] = (v >>> 8) & 0xff;
    b[off + 3] = v & 0xff;
  }
}

/** A host-order u32 as 4 bytes (IPVS carries an IPv6 prefix length this way inside a __be32 field). */
export function hostU32Bytes(v: number): Buffer {
  const out = Buffer.alloc(4);
  writeU32(out, v >>> 0, 0);
  return out;
}

/** 4 bytes read as a host-order u32. */
export function readHostU32(b: Buffer, off = 0): number {
  return readU32(b, off);
}
