/**
 * The DNS message codec the DNS check needs (RFC 1035 section 4; AAAA from RFC 3596, SRV from RFC 2782):
 * encode a single-question query, decode a response's header, question and answer records. Pure code, no I/O.
 *
 * Replies are untrusted: decoding never throws and never loops. Compression pointers must point strictly
 * backwards (RFC 1035 section 4.1.4 allows only prior occurrences), which rules out cycles; a name is at most
 * 255 bytes; every read is bounds-checked; at most MAX_RECORDS answers are decoded (the rest are counted only).
 */

import { formatAddress } from '../../lib/address.ts';
import type { Result } from '../../lib/result.ts';
import { fail, ok } from '../../lib/result.ts';

/** RFC 1035 section 4.1.1 RCODE values (and RFC 2136's), for messages. */
export const RCODE_NAMES: Readonly<Record<number, string>> = {
  0: 'NOERROR',
  1: 'FORMERR',
  2: 'SERVFAIL',
  3: 'NXDOMAIN',
  4: 'NOTIMP',
  5: 'REFUSED',
  6: 'YXDOMAIN',
  7: 'YXRRSET',
  8: 'NXRRSET',
  9: 'NOTAUTH',
  10: 'NOTZONE',
};

/** RR types whose RDATA the decoder turns into text (others become hex). */
export const RR_TYPES = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33 } as const;

/** Class IN. */
export const CLASS_IN = 1;
/** Longest name in wire form (RFC 1035 section 2.3.4). */
export const MAX_NAME_BYTES = 255;
/** Answers decoded at most; a health-check reply has a handful. */
export const MAX_RECORDS = 64;

/** One question. */
export interface DnsQuestion {
  /** Presentation form without the trailing dot, as sent (case preserved). */
  name: string;
  type: number;
  class: number;
}

/** One resource record. */
export interface DnsRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  /**
   * RDATA as text: A/AAAA canonical addresses; CNAME/NS/PTR names; MX `pref name`; TXT the strings joined;
   * SRV `priority weight port target`; SOA `mname rname serial refresh retry expire minimum`; other types hex.
   */
  data: string;
}

/** A decoded response (or query). */
export interface DnsMessage {
  id: number;
  /** QR bit: true for a response. */
  response: boolean;
  opcode: number;
  authoritative: boolean;
  truncated: boolean;
  recursionDesired: boolean;
  recursionAvailable: boolean;
  rcode: number;
  questions: DnsQuestion[];
  answers: DnsRecord[];
  /** ANCOUNT as sent (answers beyond MAX_RECORDS are not decoded). */
  answerCount: number;
  authorityCount: number;
  additionalCount: number;
}

/** Why a message could not be decoded. */
export type DnsDecodeReason = 'short' | 'bad_name' | 'bad_rdata' | 'too_many';

/**
 * Encodes a standard query (opcode 0, RD set) for one name and type, class IN. Fails when the name is not a
 * valid sequence of 1..63-byte labels of at most 255 bytes in wire form.
 */
export function encodeQuery(id: number, name: string, type: number): Result<Buffer> {
  const labels = name.replace(/\.$/, '').split('.').filter((l, i, a) => !(a.length === 1 && l === ''));
  const parts: Buffer[] = [];
  let nameBytes = 1;
  for (const label of labels) {
    const b = Buffer.from(label, 'latin1');
    if (b.length === 0 || b.length > 63) return fail('bad_name', `label ${JSON.stringify(label)} must be 1..63 bytes`);
    if (/[^\x21-\x7e]/.test(label)) return fail('bad_name', `label ${JSON.stringify(label)} has non-printable characters`);
    parts.push(Buffer.from([b.length]), b);
    nameBytes += 1 + b.length;
  }
  if (nameBytes > MAX_NAME_BYTES) return fail('bad_name', `name ${JSON.stringify(name)} over ${MAX_NAME_BYTES} bytes`);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id & 0xffff, 0);
  header.writeUInt16BE(0x0100, 2); // RD
  header.writeUInt16BE(1, 4); // QDCOUNT
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(type & 0xffff, 0);
  tail.writeUInt16BE(CLASS_IN, 2);
  return ok(Buffer.concat([header, ...parts, Buffer.from([0]), tail]));
}

/** Reads a (possibly compressed) name at `offset`: the text and the offset just past it in the original flow. */
function readName(buf: Uint8Array, offset: number): { name: string; next: number } | undefined {
  const labels: string[] = [];
  let pos = offset;
  let next = -1;
  let wireBytes = 1;
  let lowest = offset;
  for (;;) {
    if (pos >= buf.length) return undefined;
    const len = buf[pos] ?? 0;
    if (len === 0) {
      if (next < 0) next = pos + 1;
      break;
    }
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (pos + 1 >= buf.length) return undefined;
      const target = ((len & 0x3f) << 8) | (buf[pos + 1] ?? 0);
      // Only strictly earlier positions than anything read so far: no cycles, bounded work.
      if (target >= lowest) return undefined;
      if (next < 0) next = pos + 2;
      lowest = target;
      pos = target;
      continue;
    }
    if (kind !== 0) return undefined; // 0x40 / 0x80: extended label types, not used (RFC 6891 deprecated them)
    if (pos + 1 + len > buf.length) return undefined;
    wireBytes += 1 + len;
    if (wireBytes > MAX_NAME_BYTES) return undefined;
    labels.push(presentLabel(buf, pos + 1, len));
    pos += 1 + len;
  }
  return { name: labels.join('.'), next };
}

/** A label in presentation form: `.` and `\` escaped, bytes outside printable ASCII as `\DDD`. */
function presentLabel(buf: Uint8Array, start: number, len: number): string {
  let s = '';
  for (let i = start; i < start + len; i++) {
    const c = buf[i] ?? 0;
    if (c === 0x2e || c === 0x5c) s += `\\${String.fromCharCode(c)}`;
    else if (c > 0x20 && c < 0x7f) s += String.fromCharCode(c);
    else s += `\\${String(c).padStart(3, '0')}`;
  }
  return s;
}

function u16(buf: Uint8Array, o: number): number {
  return ((buf[o] ?? 0) << 8) | (buf[o + 1] ?? 0);
}

function u32(buf: Uint8Array, o: number): number {
  return (((buf[o] ?? 0) << 24) >>> 0) + (((buf[o + 1] ?? 0) << 16) | ((buf[o + 2] ?? 0) << 8) | (buf[o + 3] ?? 0));
}

function hex(buf: Uint8Array, start: number, end: number): string {
  return Buffer.from(buf.buffer, buf.byteOffset + start, end - start).toString('hex');
}

/** RDATA in text form, or undefined when it does not fit its type. */
function readRdata(buf: Uint8Array, type: number, start: number, len: number): string | undefined {
  const end = start + len;
  switch (type) {
    case RR_TYPES.A:
      return len === 4 ? formatAddress(buf, start, 4) : undefined;
    case RR_TYPES.AAAA:
      return len === 16 ? formatAddress(buf, start, 6) : undefined;
    case RR_TYPES.CNAME:
    case RR_TYPES.NS:
    case RR_TYPES.PTR: {
      const n = readName(buf, start);
      return n !== undefined && n.next === end ? n.name : undefined;
    }
    case RR_TYPES.MX: {
      if (len < 3) return undefined;
      const n = readName(buf, start + 2);
      return n !== undefined && n.next === end ? `${u16(buf, start)} ${n.name}` : undefined;
    }
    case RR_TYPES.SRV: {
      if (len < 7) return undefined;
      const n = readName(buf, start + 6);
      return n !== undefined && n.next === end ? `${u16(buf, start)} ${u16(buf, start + 2)} ${u16(buf, start + 4)} ${n.name}` : undefined;
    }
    case RR_TYPES.TXT: {
      let s = '';
      let p = start;
      while (p < end) {
        const l = buf[p] ?? 0;
        if (p + 1 + l > end) return undefined;
        s += Buffer.from(buf.buffer, buf.byteOffset + p + 1, l).toString('latin1');
        p += 1 + l;
      }
      return s;
    }
    case RR_TYPES.SOA: {
      const m = readName(buf, start);
      if (m === undefined) return undefined;
      const r = readName(buf, m.next);
      if (r === undefined || r.next + 20 !== end) return undefined;
      const nums = [0, 4, 8, 12, 16].map((o) => u32(buf, r.next + o));
      return `${m.name} ${r.name} ${nums.join(' ')}`;
    }
    default:
      return hex(buf, start, end);
  }
}

/** Decodes a DNS message. Never throws. */
export function decodeMessage(buf: Uint8Array): Result<DnsMessage, DnsDecodeReason> {
  if (buf.length < 12) return fail('short', `${buf.length} bytes, a header has 12`);
  const flags = u16(buf, 2);
  const qd = u16(buf, 4);
  const an = u16(buf, 6);
  const msg: DnsMessage = {
    id: u16(buf, 0),
    response: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    authoritative: (flags & 0x0400) !== 0,
    truncated: (flags & 0x0200) !== 0,
    recursionDesired: (flags & 0x0100) !== 0,
    recursionAvailable: (flags & 0x0080) !== 0,
    rcode: flags & 0xf,
    questions: [],
    answers: [],
    answerCount: an,
    authorityCount: u16(buf, 8),
    additionalCount: u16(buf, 10),
  };
  if (qd > MAX_RECORDS) return fail('too_many', `${qd} questions`);
  let pos = 12;
  for (let i = 0; i < qd; i++) {
    const n = readName(buf, pos);
    if (n === undefined) return fail('bad_name', `question ${i + 1}: malformed name`);
    if (n.next + 4 > buf.length) return fail('short', `question ${i + 1} truncated`);
    msg.questions.push({ name: n.name, type: u16(buf, n.next), class: u16(buf, n.next + 2) });
    pos = n.next + 4;
  }
  const decode = Math.min(an, MAX_RECORDS);
  for (let i = 0; i < decode; i++) {
    const n = readName(buf, pos);
    if (n === undefined) return fail('bad_name', `answer ${i + 1}: malformed name`);
    if (n.next + 10 > buf.length) return fail('short', `answer ${i + 1} truncated`);
    const type = u16(buf, n.next);
    const cls = u16(buf, n.next + 2);
    const ttl = u32(buf, n.next + 4);
    const rdlen = u16(buf, n.next + 8);
    const start = n.next + 10;
    if (start + rdlen > buf.length) return fail('short', `answer ${i + 1} RDATA truncated`);
    const data = readRdata(buf, type, start, rdlen);
    if (data === undefined) return fail('bad_rdata', `answer ${i + 1}: malformed RDATA for type ${type}`);
    msg.answers.push({ name: n.name, type, class: cls, ttl, data });
    pos = start + rdlen;
  }
  return ok(msg);
}
