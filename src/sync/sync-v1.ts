/**
 * Codec for the kernel's IPVS sync protocol version 1 (net/netfilter/ipvs/ip_vs_sync.c): the datagrams a master
 * sync thread multicasts and a backup thread turns into connection entries. tandem encodes them to inject a
 * resynced table into its own backup kernel thread, and decodes them to read what a master sends. Pure code,
 * no I/O.
 *
 * Layout (all multi-byte fields big-endian):
 *
 * ```
 * header, 8 bytes
 * 0  1  reserved = 0 (a v0 message has nr_conns here)
 * 1  1  syncid
 * 2  2  size: the whole datagram, header and padding included; the backup drops it unless length == size
 * 4  1  nr_conns, <= 255
 * 5  1  version = 1
 * 6  2  spare = 0
 *
 * entry (each starts on a 4-byte boundary; zero padding goes between entries, none after the last,
 * exactly as ip_vs_sync_conn_v1 builds it)
 * 0   1     type: 0 IPv4, 1 IPv6 (STYPE_F_INET6)
 * 1   1     protocol
 * 2   2     ver_size: version (top 4 bits, 0) | entry length incl. options, excl. padding (low 12 bits)
 * 4   4     flags (cp->flags & ~HASHED)
 * 8   2     state
 * 10  2     cport
 * 12  2     vport
 * 14  2     dport
 * 16  4     fwmark
 * 20  4     timeout, seconds
 * 24  4|16  caddr
 * 28|40 4|16 vaddr
 * 32|56 4|16 daddr          -> 36 bytes (IPv4) / 72 bytes (IPv6)
 * options: [type u8][len u8][data]: 1 SEQ_DATA (24 bytes: in_seq, out_seq as {init, delta, previous_delta}
 * BE32), 2 PE_DATA (<= 255), 3 PE_NAME (<= 16, no NUL). Type bit 0x40: skippable if unknown.
 * ```
 *
 * Decoding mirrors the backup's checks (ip_vs_process_message, ip_vs_proc_sync_conn): anything that makes the
 * kernel drop the whole datagram is `{ ok: false }`; entries the kernel would skip but not drop (an unknown
 * mandatory option, PE data without a PE name) are listed in `skipped`. Unlike the kernel, the decoder accepts
 * only entry types 0 and 1 (the kernel reads any odd type as IPv6) and forwarding methods 0..4.
 */

import type { AddressFamily } from '../config/types.ts';
import { CodecError } from '../lib/errors.ts';
import { fail, ok } from '../lib/result.ts';
import type { Result } from '../lib/result.ts';
import { CONN_FLAGS, CONN_FWD, addressLength, addressProblem, connEntryProblem, connFlagsOf, readAddress, splitConnFlags } from './conn.ts';
import type { ConnEntry, SeqAdjust } from './conn.ts';

/** Wire constants (names as in ip_vs_sync.c). */
export const SYNC_V1 = {
  headerLength: 8,
  version: 1,
  maxConns: 255,
  /** sizeof(struct ip_vs_sync_v4) / sizeof(struct ip_vs_sync_v6). */
  entryLengthV4: 36,
  entryLengthV6: 72,
  STYPE_INET: 0,
  STYPE_F_INET6: 1,
  /** ver_size: low 12 bits length (SVER_MASK), top 4 bits version (SVER_SHIFT 12). */
  SVER_MASK: 0x0fff,
  SVER_SHIFT: 12,
  IPVS_OPT_SEQ_DATA: 1,
  IPVS_OPT_PE_DATA: 2,
  IPVS_OPT_PE_NAME: 3,
  /** Option type bit: the option may be skipped when unknown. */
  IPVS_OPT_F_PARAM: 0x40,
  /** sizeof(struct ip_vs_sync_conn_options): two struct ip_vs_seq of three u32. */
  seqDataLength: 24,
  /** IP_VS_PEDATA_MAXLEN, IP_VS_PENAME_MAXLEN. */
  peDataMax: 255,
  peNameMax: 16,
  /** The size field is a u16. */
  maxDatagram: 0xffff,
} as const;

/**
 * The sync_maxlen the encoder fills datagrams up to unless told otherwise: what a master uses with
 * sync_maxlen 0 on a 1500-byte IPv4 link (1500 - 20 IP - 8 UDP). A backup's receive buffer is at least this on
 * such a link (it uses clamp(MTU, 1500, 65535) - 28), so these datagrams are never cut.
 */
export const DEFAULT_SYNC_MAXLEN = 1472;

/** Why a datagram was dropped (the whole datagram, as the backup kernel drops it). */
export const SYNC_DECODE_REASONS = [
  'too_short',
  'bad_size',
  'not_v1',
  'truncated',
  'bad_entry_version',
  'bad_entry_type',
  'bad_entry_length',
  'bad_option',
  'bad_flags',
  'trailing_bytes',
] as const;
/** One of SYNC_DECODE_REASONS. */
export type SyncDecodeReason = (typeof SYNC_DECODE_REASONS)[number];

/** An entry the backup would skip without dropping the datagram. */
export interface SkippedEntry {
  /** Position of the entry in the datagram (0-based). */
  index: number;
  reason: 'unknown_mandatory_option' | 'pe_data_without_name';
  detail: string;
}

/** A decoded sync datagram. */
export interface SyncMessage {
  syncId: number;
  entries: ConnEntry[];
  skipped: SkippedEntry[];
}

/** Options of the datagram encoder. */
export interface SyncEncodeOptions {
  /** 0..255; a backup with syncid != 0 ignores datagrams of another syncid. */
  syncId: number;
  /** Maximum datagram length, DEFAULT_SYNC_MAXLEN unless given; at most 65535 and enough for one entry. */
  maxLen?: number;
}

// ---------------------------------------------------------------------------------------------------------
// Entries

/** Length of an entry on the wire, options included, padding excluded (what ver_size carries). */
export function entryLength(e: ConnEntry): number {
  let len = e.family === 6 ? SYNC_V1.entryLengthV6 : SYNC_V1.entryLengthV4;
  if (e.seq !== undefined) len += 2 + SYNC_V1.seqDataLength;
  if (e.pe !== undefined) len += 2 + e.pe.data.length + 2 + Buffer.byteLength(e.pe.name, 'utf8');
  return len;
}

function writeSeq(buf: Buffer, off: number, s: SeqAdjust): number {
  buf.writeUInt32BE(s.initSeq, off);
  buf.writeUInt32BE(s.delta, off + 4);
  buf.writeUInt32BE(s.previousDelta, off + 8);
  return off + 12;
}

/**
 * Writes one entry at `off` (which the caller keeps 4-byte aligned) and returns its length (entryLength).
 * Throws CodecError when the entry cannot be represented (see connEntryProblem) or `buf` is too short.
 */
export function encodeEntry(e: ConnEntry, buf: Buffer, off: number): number {
  const problem = connEntryProblem(e, false);
  if (problem !== undefined) throw entryError(e, problem);
  const len = entryLength(e);
  if (off + len > buf.length) throw new CodecError(`sync entry of ${len} bytes does not fit at offset ${off} of a ${buf.length}-byte buffer`);
  return writeEntry(e, buf, off, len);
}

function entryError(e: ConnEntry, problem: string): CodecError {
  return new CodecError(`sync entry ${String(e.caddr)}:${String(e.cport)} -> ${String(e.vaddr)}:${String(e.vport)}: ${problem}`);
}

/** Writes a scalar-checked entry of length `len`; the addresses are checked as they are written. */
function writeEntry(e: ConnEntry, buf: Buffer, off: number, len: number): number {
  const family = e.family;
  const alen = addressLength(family);
  const addrProblem =
    addressProblem('caddr', e.caddr, family, buf, off + 24) ??
    addressProblem('vaddr', e.vaddr, family, buf, off + 24 + alen) ??
    addressProblem('daddr', e.daddr, family, buf, off + 24 + 2 * alen);
  if (addrProblem !== undefined) throw entryError(e, addrProblem);
  buf[off] = family === 6 ? SYNC_V1.STYPE_F_INET6 : SYNC_V1.STYPE_INET;
  buf[off + 1] = e.protocol;
  buf.writeUInt16BE(len & SYNC_V1.SVER_MASK, off + 2);
  buf.writeUInt32BE(connFlagsOf(e), off + 4);
  buf.writeUInt16BE(e.state, off + 8);
  buf.writeUInt16BE(e.cport, off + 10);
  buf.writeUInt16BE(e.vport, off + 12);
  buf.writeUInt16BE(e.dport, off + 14);
  buf.writeUInt32BE(e.fwmark, off + 16);
  buf.writeUInt32BE(e.timeoutS, off + 20);
  let p = off + 24 + 3 * alen;
  // Option order as the kernel writes them: SEQ_DATA, then PE_DATA followed by PE_NAME.
  if (e.seq !== undefined) {
    buf[p++] = SYNC_V1.IPVS_OPT_SEQ_DATA;
    buf[p++] = SYNC_V1.seqDataLength;
    p = writeSeq(buf, p, e.seq.in);
    p = writeSeq(buf, p, e.seq.out);
  }
  if (e.pe !== undefined) {
    buf[p++] = SYNC_V1.IPVS_OPT_PE_DATA;
    buf[p++] = e.pe.data.length;
    p += e.pe.data.copy(buf, p);
    const name = Buffer.from(e.pe.name, 'utf8');
    buf[p++] = SYNC_V1.IPVS_OPT_PE_NAME;
    buf[p++] = name.length;
    p += name.copy(buf, p);
  }
  return len;
}

/** A decoded entry, or an entry the kernel would skip. */
export type DecodedEntry =
  | { kind: 'entry'; entry: ConnEntry; length: number }
  | { kind: 'skip'; reason: SkippedEntry['reason']; detail: string; length: number };

function readSeq(buf: Buffer, off: number): SeqAdjust {
  return { initSeq: buf.readUInt32BE(off), delta: buf.readUInt32BE(off + 4), previousDelta: buf.readUInt32BE(off + 8) };
}

/**
 * Where the parts of a checked entry are (checkEntry fills one; callers reuse one object so a check allocates
 * nothing). Offsets are absolute in the buffer; -1 when the option is absent.
 */
export interface EntryLayout {
  family: AddressFamily;
  /** ver_size length: options included, padding excluded. */
  length: number;
  seqAt: number;
  peDataAt: number;
  peDataLength: number;
  peNameAt: number;
  peNameLength: number;
  /** Set when the kernel would skip the entry (but keep the datagram). */
  skip: SkippedEntry['reason'] | undefined;
  skipDetail: string;
}

/** A fresh layout for checkEntry. */
export function entryLayout(): EntryLayout {
  return { family: 4, length: 0, seqAt: -1, peDataAt: -1, peDataLength: 0, peNameAt: -1, peNameLength: 0, skip: undefined, skipDetail: '' };
}

const CHECKED: Result<void, SyncDecodeReason> = ok(undefined);

/**
 * Checks the entry at `off`, which must end at or before `end`, the way the backup kernel does, and fills
 * `layout`; builds no object. Never throws. Failures are the reasons the kernel drops the whole datagram;
 * an entry it would skip has `layout.skip` set. decodeEntry is this check plus the object.
 */
export function checkEntry(buf: Buffer, off: number, end: number, layout: EntryLayout): Result<void, SyncDecodeReason> {
  if (off + SYNC_V1.entryLengthV4 > end) {
    return fail('truncated', `entry at offset ${off}: ${end - off} bytes left, an entry needs at least ${SYNC_V1.entryLengthV4}`);
  }
  const type = buf[off] ?? 0;
  const verSize = buf.readUInt16BE(off + 2);
  const len = verSize & SYNC_V1.SVER_MASK;
  if (off + len > end) return fail('truncated', `entry at offset ${off} says ${len} bytes, ${end - off} left`);
  if (verSize >> SYNC_V1.SVER_SHIFT !== 0) return fail('bad_entry_version', `entry at offset ${off}: version ${verSize >> SYNC_V1.SVER_SHIFT}, want 0`);
  let family: AddressFamily;
  if (type === SYNC_V1.STYPE_INET) family = 4;
  else if (type === SYNC_V1.STYPE_F_INET6) family = 6;
  else return fail('bad_entry_type', `entry at offset ${off}: type ${type}, want 0 (IPv4) or 1 (IPv6)`);
  const base = family === 6 ? SYNC_V1.entryLengthV6 : SYNC_V1.entryLengthV4;
  if (len < base) return fail('bad_entry_length', `IPv${family} entry at offset ${off}: length ${len} < ${base}`);
  const fwd = buf.readUInt32BE(off + 4) & CONN_FLAGS.FWD_MASK;
  if (fwd > CONN_FWD.bypass) return fail('bad_flags', `entry at offset ${off}: forwarding method ${fwd} is not 0..4`);
  layout.family = family;
  layout.length = len;
  layout.seqAt = -1;
  layout.peDataAt = -1;
  layout.peDataLength = 0;
  layout.peNameAt = -1;
  layout.peNameLength = 0;
  layout.skip = undefined;
  layout.skipDetail = '';
  // Options (ip_vs_proc_sync_conn): a zero length, an overrun, a duplicate, a SEQ_DATA that is not 24 bytes or
  // a PE string over its maximum drops the datagram; an unknown option without the 0x40 bit skips the entry.
  const optEnd = off + len;
  let p = off + base;
  let seen = 0;
  while (p < optEnd) {
    if (p + 2 > optEnd) return fail('bad_option', `entry at offset ${off}: option header overruns the entry at ${p}`);
    const ptype = buf[p] ?? 0;
    const plen = buf[p + 1] ?? 0;
    p += 2;
    if (plen === 0 || p + plen > optEnd) return fail('bad_option', `entry at offset ${off}: option ${ptype} length ${plen} ${plen === 0 ? 'is zero' : 'overruns the entry'}`);
    const kind = ptype & ~SYNC_V1.IPVS_OPT_F_PARAM;
    if (kind === SYNC_V1.IPVS_OPT_SEQ_DATA || kind === SYNC_V1.IPVS_OPT_PE_DATA || kind === SYNC_V1.IPVS_OPT_PE_NAME) {
      const bit = 1 << kind;
      if ((seen & bit) !== 0) return fail('bad_option', `entry at offset ${off}: option ${kind} appears twice`);
      seen |= bit;
      if (kind === SYNC_V1.IPVS_OPT_SEQ_DATA) {
        if (plen !== SYNC_V1.seqDataLength) return fail('bad_option', `entry at offset ${off}: SEQ_DATA of ${plen} bytes, want ${SYNC_V1.seqDataLength}`);
        layout.seqAt = p;
      } else if (kind === SYNC_V1.IPVS_OPT_PE_DATA) {
        layout.peDataAt = p;
        layout.peDataLength = plen;
      } else {
        if (plen > SYNC_V1.peNameMax) return fail('bad_option', `entry at offset ${off}: PE_NAME of ${plen} bytes exceeds ${SYNC_V1.peNameMax}`);
        layout.peNameAt = p;
        layout.peNameLength = plen;
      }
    } else if ((ptype & SYNC_V1.IPVS_OPT_F_PARAM) === 0 && layout.skip === undefined) {
      layout.skip = 'unknown_mandatory_option';
      layout.skipDetail = `entry at offset ${off}: unknown mandatory option ${ptype}`;
    }
    p += plen;
  }
  // ip_vs_conn_fill_param_sync: PE data needs a PE name ("Invalid PE parameters"); a lone PE name is ignored.
  if (layout.skip === undefined && layout.peDataAt >= 0 && layout.peNameAt < 0) {
    layout.skip = 'pe_data_without_name';
    layout.skipDetail = `entry at offset ${off}: PE_DATA without PE_NAME`;
  }
  return CHECKED;
}

const DECODE_LAYOUT = entryLayout();

/**
 * Decodes the entry at `off`, which must end at or before `end`. Never throws. `length` is the entry's
 * ver_size length (padding excluded). Failures are the reasons the kernel drops the whole datagram.
 */
export function decodeEntry(buf: Buffer, off: number, end: number): Result<DecodedEntry, SyncDecodeReason> {
  const layout = DECODE_LAYOUT;
  const checked = checkEntry(buf, off, end, layout);
  if (!checked.ok) return checked;
  const len = layout.length;
  if (layout.skip !== undefined) return ok({ kind: 'skip', reason: layout.skip, detail: layout.skipDetail, length: len });
  return ok({ kind: 'entry', entry: entryAt(buf, off, layout), length: len });
}

/** The entry of a checked, not skipped layout. */
function entryAt(buf: Buffer, off: number, layout: EntryLayout): ConnEntry {
  const family = layout.family;
  const alen = addressLength(family);
  const split = splitConnFlags(buf.readUInt32BE(off + 4))!;
  const entry: ConnEntry = {
    family,
    protocol: buf[off + 1] ?? 0,
    caddr: readAddress(buf, off + 24, family),
    cport: buf.readUInt16BE(off + 10),
    vaddr: readAddress(buf, off + 24 + alen, family),
    vport: buf.readUInt16BE(off + 12),
    daddr: readAddress(buf, off + 24 + 2 * alen, family),
    dport: buf.readUInt16BE(off + 14),
    fwmark: buf.readUInt32BE(off + 16),
    fwd: split.fwd,
    template: split.template,
    flags: split.flags,
    state: buf.readUInt16BE(off + 8),
    timeoutS: buf.readUInt32BE(off + 20),
  };
  if (layout.seqAt >= 0) entry.seq = { in: readSeq(buf, layout.seqAt), out: readSeq(buf, layout.seqAt + 12) };
  if (layout.peDataAt >= 0 && layout.peNameAt >= 0) {
    entry.pe = {
      name: buf.toString('utf8', layout.peNameAt, layout.peNameAt + layout.peNameLength),
      data: Buffer.from(buf.subarray(layout.peDataAt, layout.peDataAt + layout.peDataLength)),
    };
  }
  return entry;
}

/**
 * Entries as they travel in a resync BATCH: `count` sync v1 entries back to back in `buf[start, end)`, each
 * padded with zeros to 4 bytes, every one already checked (checkEntry) and none of them skipped. The receiver
 * passes them to the kernel as they are (encodedDatagrams) and digests them in place (TableDigest.addEncoded),
 * so a million entries cross a director without a million objects; iterating decodes them one by one.
 */
export class EncodedEntries implements Iterable<ConnEntry> {
  constructor(
    readonly buf: Buffer,
    readonly start: number,
    readonly end: number,
    readonly count: number,
  ) {}

  /** The entry count (like an array's). */
  get length(): number {
    return this.count;
  }

  /** Calls `fn` with the offset and layout of every entry, in order (the layout object is reused). */
  forEachEntry(fn: (off: number, layout: EntryLayout) => void): void {
    const layout = entryLayout();
    let p = this.start;
    for (let i = 0; i < this.count; i++) {
      checkEntry(this.buf, p, this.end, layout);
      fn(p, layout);
      p += (layout.length + 3) & ~3;
    }
  }

  *[Symbol.iterator](): Iterator<ConnEntry> {
    const layout = entryLayout();
    let p = this.start;
    for (let i = 0; i < this.count; i++) {
      checkEntry(this.buf, p, this.end, layout);
      yield entryAt(this.buf, p, layout);
      p += (layout.length + 3) & ~3;
    }
  }

  /** The entries as objects. */
  toArray(): ConnEntry[] {
    return [...this];
  }
}

/**
 * Checks `count` padded entries from `start` on, which must fill `buf` up to `end` exactly: the EncodedEntries
 * of a BATCH body, or why it is malformed (an entry the kernel would drop the datagram for or skip, a padding
 * byte that is not zero, bytes left over).
 */
export function checkEncodedEntries(buf: Buffer, start: number, end: number, count: number): Result<EncodedEntries, SyncDecodeReason | 'skipped_entry' | 'bad_padding'> {
  const layout = entryLayout();
  let p = start;
  for (let i = 0; i < count; i++) {
    const c = checkEntry(buf, p, end, layout);
    if (!c.ok) return fail(c.reason, `entry ${i} of ${count}: ${c.detail}`);
    if (layout.skip !== undefined) return fail('skipped_entry', `entry ${i} of ${count}: ${layout.skipDetail}`);
    const entryEnd = p + layout.length;
    p += (layout.length + 3) & ~3;
    for (let q = entryEnd; q < p && q < end; q++) if (buf[q] !== 0) return fail('bad_padding', `entry ${i} of ${count}: padding byte at ${q} is not zero`);
  }
  if (p !== end) return fail('trailing_bytes', `${count} entries end at ${p}, the data at ${end}`);
  return ok(new EncodedEntries(buf, start, end, count));
}

// ---------------------------------------------------------------------------------------------------------
// Datagrams

function checkMaxLen(maxLen: number): void {
  if (!Number.isInteger(maxLen) || maxLen < SYNC_V1.headerLength + SYNC_V1.entryLengthV4 || maxLen > SYNC_V1.maxDatagram) {
    throw new CodecError(`sync maxLen ${maxLen} must be an integer ${SYNC_V1.headerLength + SYNC_V1.entryLengthV4}..${SYNC_V1.maxDatagram}`);
  }
}

function writeHeader(buf: Buffer, syncId: number, size: number, nrConns: number): void {
  buf[0] = 0;
  buf[1] = syncId;
  buf.writeUInt16BE(size, 2);
  buf[4] = nrConns;
  buf[5] = SYNC_V1.version;
  buf.writeUInt16BE(0, 6);
}

/**
 * Packs entries into sync v1 datagrams, lazily: each datagram holds at most 255 entries and at most `maxLen`
 * bytes, and its size field equals its length. Entries keep their order. Throws CodecError for an entry that
 * cannot be encoded or that alone does not fit in `maxLen`, or for a bad syncId/maxLen.
 */
export function* syncDatagrams(entries: Iterable<ConnEntry>, options: SyncEncodeOptions): Generator<Buffer, void, undefined> {
  const maxLen = options.maxLen ?? DEFAULT_SYNC_MAXLEN;
  checkMaxLen(maxLen);
  if (!Number.isInteger(options.syncId) || options.syncId < 0 || options.syncId > 255) {
    throw new CodecError(`sync syncId ${options.syncId} must be an integer 0..255`);
  }
  const buf = Buffer.alloc(maxLen);
  let used = SYNC_V1.headerLength;
  let count = 0;
  const flush = (): Buffer => {
    writeHeader(buf, options.syncId, used, count);
    const out = Buffer.from(buf.subarray(0, used));
    buf.fill(0, 0, used);
    used = SYNC_V1.headerLength;
    count = 0;
    return out;
  };
  for (const e of entries) {
    const problem = connEntryProblem(e, false);
    if (problem !== undefined) throw entryError(e, problem);
    const len = entryLength(e);
    if (SYNC_V1.headerLength + len > maxLen) throw new CodecError(`sync entry of ${len} bytes cannot fit in a datagram of at most ${maxLen} bytes`);
    let at = (used + 3) & ~3;
    if (count === SYNC_V1.maxConns || at + len > maxLen) {
      yield flush();
      at = used;
    }
    writeEntry(e, buf, at, len);
    used = at + len;
    count++;
  }
  if (count > 0) yield flush();
}

/**
 * Packs already encoded entries (a resync BATCH) into sync v1 datagrams by copying runs of their bytes: the same
 * datagrams syncDatagrams makes of the decoded entries, without decoding them. Throws CodecError for a bad
 * syncId/maxLen or an entry that alone does not fit in `maxLen`.
 */
export function* encodedDatagrams(entries: EncodedEntries, options: SyncEncodeOptions): Generator<Buffer, void, undefined> {
  const maxLen = options.maxLen ?? DEFAULT_SYNC_MAXLEN;
  checkMaxLen(maxLen);
  if (!Number.isInteger(options.syncId) || options.syncId < 0 || options.syncId > 255) {
    throw new CodecError(`sync syncId ${options.syncId} must be an integer 0..255`);
  }
  const src = entries.buf;
  const room = maxLen - SYNC_V1.headerLength;
  let runStart = entries.start;
  // End of the run's last entry without its padding, and the run's entry count.
  let runEnd = runStart;
  let count = 0;
  let p = entries.start;
  const flush = (): Buffer => {
    const size = SYNC_V1.headerLength + (runEnd - runStart);
    const out = Buffer.allocUnsafe(size);
    writeHeader(out, options.syncId, size, count);
    src.copy(out, SYNC_V1.headerLength, runStart, runEnd);
    return out;
  };
  for (let i = 0; i < entries.count; i++) {
    const len = src.readUInt16BE(p + 2) & SYNC_V1.SVER_MASK;
    if (len > room) throw new CodecError(`sync entry of ${len} bytes cannot fit in a datagram of at most ${maxLen} bytes`);
    // Where this entry would start in the current datagram: after the previous one's padding.
    const at = count === 0 ? 0 : p - runStart;
    if (count === SYNC_V1.maxConns || at + len > room) {
      yield flush();
      runStart = p;
      count = 0;
    }
    runEnd = p + len;
    count++;
    p += (len + 3) & ~3;
  }
  if (count > 0) yield flush();
}

/** All datagrams of syncDatagrams as an array. */
export function encodeSyncMessages(entries: Iterable<ConnEntry>, options: SyncEncodeOptions): Buffer[] {
  return [...syncDatagrams(entries, options)];
}

/**
 * Decodes one datagram. Never throws. Checks, as the backup does: at least the 8-byte header ('too_short'),
 * size == length ('bad_size'), reserved 0 / version 1 / spare 0 ('not_v1'), then each of nr_conns entries
 * (decodeEntry reasons); after the last entry nothing but its padding to a 4-byte boundary ('trailing_bytes').
 */
export function decodeSyncMessage(datagram: Uint8Array): Result<SyncMessage, SyncDecodeReason> {
  const h = checkSyncHeader(datagram);
  if (!h.ok) return h;
  const buf = h.value;
  const nrConns = buf[4] ?? 0;
  const entries: ConnEntry[] = [];
  const skipped: SkippedEntry[] = [];
  let p = SYNC_V1.headerLength;
  for (let i = 0; i < nrConns; i++) {
    const d = decodeEntry(buf, p, buf.length);
    if (!d.ok) return fail(d.reason, `entry ${i} of ${nrConns}: ${d.detail}`);
    const v = d.value;
    if (v.kind === 'entry') entries.push(v.entry);
    else skipped.push({ index: i, reason: v.reason, detail: v.detail });
    // The next entry starts on a 4-byte boundary; the kernel does not look at the padding bytes.
    p += (v.length + 3) & ~3;
  }
  // The last entry may be followed by its padding (up to the next 4-byte boundary) and nothing else.
  if (p < buf.length) return fail('trailing_bytes', `${buf.length - p} byte(s) after the last of ${nrConns} entries`);
  return ok({ syncId: buf[1] ?? 0, entries, skipped });
}

/** What checkSyncMessage found in a datagram the backup would take. */
export interface SyncMessageCounts {
  syncId: number;
  entries: number;
  skipped: number;
}

/**
 * Checks one datagram exactly as decodeSyncMessage does (same reasons) but builds no entries: for counting
 * the datagrams seen on the sync group, which during a resync are hundreds per second.
 */
export function checkSyncMessage(datagram: Uint8Array): Result<SyncMessageCounts, SyncDecodeReason> {
  const h = checkSyncHeader(datagram);
  if (!h.ok) return h;
  const buf = h.value;
  const nrConns = buf[4] ?? 0;
  const layout = CHECK_LAYOUT;
  let skipped = 0;
  let p = SYNC_V1.headerLength;
  for (let i = 0; i < nrConns; i++) {
    const c = checkEntry(buf, p, buf.length, layout);
    if (!c.ok) return fail(c.reason, `entry ${i} of ${nrConns}: ${c.detail}`);
    if (layout.skip !== undefined) skipped++;
    p += (layout.length + 3) & ~3;
  }
  if (p < buf.length) return fail('trailing_bytes', `${buf.length - p} byte(s) after the last of ${nrConns} entries`);
  return ok({ syncId: buf[1] ?? 0, entries: nrConns - skipped, skipped });
}

const CHECK_LAYOUT = entryLayout();

/** The header checks of decodeSyncMessage; the datagram as a Buffer. */
function checkSyncHeader(datagram: Uint8Array): Result<Buffer, SyncDecodeReason> {
  if (!(datagram instanceof Uint8Array)) return fail('too_short', 'datagram is not a byte buffer');
  const buf = Buffer.isBuffer(datagram) ? datagram : Buffer.from(datagram.buffer, datagram.byteOffset, datagram.byteLength);
  if (buf.length < SYNC_V1.headerLength) return fail('too_short', `datagram of ${buf.length} bytes is shorter than the ${SYNC_V1.headerLength}-byte header`);
  const size = buf.readUInt16BE(2);
  if (size !== buf.length) return fail('bad_size', `size field ${size}, datagram length ${buf.length} (the backup drops it)`);
  const reserved = buf[0] ?? 0;
  const version = buf[5] ?? 0;
  const spare = buf.readUInt16BE(6);
  if (reserved !== 0 || version !== SYNC_V1.version || spare !== 0) {
    return fail('not_v1', `reserved ${reserved}, version ${version}, spare ${spare}: want 0, 1, 0 (a version 0 message or garbage)`);
  }
  return ok(buf);
}
