/**
 * Codec of tandem's full-table resync protocol: the messages two directors exchange over the sync channel
 * (channel.ts, ZeroMQ) so a director that joins late, or whose table drifted, gets every connection the kernel
 * sync threads would never resend (an idle connection is synced once and then never again). Pure code, no I/O;
 * one message = one ZeroMQ frame.
 *
 * Frame layout (big-endian):
 *
 * ```
 * 0  2  magic 0x5453 ("TS")
 * 2  1  version = 1
 * 3  1  type (MESSAGE_TYPES)
 * 4  4  body length = frame length - 8
 * 8  ..  body:
 *   HELLO           epoch u32 | role u8 (1 master, 2 backup) | name length u8 (1..64) | name (UTF-8)
 *   SNAPSHOT_BEGIN  snapshot id u32 | entry estimate u32 | bucket bits u8 | 0 u8 | bucket count u16 |
 *                   buckets u16 each, strictly increasing (count 0 = the whole table)
 *   BATCH           snapshot id u32 | sequence u32 (0, 1, 2 ... within a snapshot) | entry count u16 | 0 u16 |
 *                   entries in the sync v1 entry encoding (sync-v1.ts), each padded to 4 bytes
 *   SNAPSHOT_END    snapshot id u32 | total entries u32 | digest (32 bytes, TableDigest.summary)
 *   ACK             snapshot id u32 | entries received u32 | status u8 | 0 0 0 | digest of what arrived (32)
 *   DIGEST          generation u32 | bucket bits u8 | 0 0 0 | 2^bits x (count u32, h1 u32, h2 u32)
 *   DELTA_REQUEST   generation u32 | bucket bits u8 | 0 u8 | bucket count u16 (>= 1) | buckets u16 each,
 *                   strictly increasing
 * ```
 *
 * Decoders never throw. They accept exact lengths, zero reserved bytes and in-range values only, so a frame
 * they accept re-encodes to the same bytes, with one exception: BATCH entries are read as the kernel reads
 * sync v1 entries (decodeEntry: a HASHED flag is dropped, skippable unknown options are ignored), though their
 * padding must be zero. Encoders throw CodecError on out-of-range values.
 */

import { CodecError } from '../lib/errors.ts';
import { fail, ok } from '../lib/result.ts';
import type { Result } from '../lib/result.ts';
import type { ConnEntry } from './conn.ts';
import { DIGEST_SUMMARY_LENGTH, MAX_BUCKET_BITS } from './digest.ts';
import type { BucketDigest } from './digest.ts';
import { checkEncodedEntries, encodeEntry, entryLength } from './sync-v1.ts';
import type { EncodedEntries } from './sync-v1.ts';

/** Frame constants. */
export const RESYNC = {
  magic: 0x5453,
  version: 1,
  headerLength: 8,
  /** Upper bound of one frame; the channel also sets it as the socket's maximum message size. */
  maxFrameBytes: 8 * 1024 * 1024,
  maxNodeNameBytes: 64,
  maxBatchEntries: 0xffff,
} as const;

/** Where a BATCH frame's entries start (header 8 + snapshot id, sequence, count, reserved). */
export const BATCH_ENTRIES_OFFSET = 20;

/** Message type numbers. */
export const MESSAGE_TYPES = {
  hello: 1,
  snapshotBegin: 2,
  batch: 3,
  snapshotEnd: 4,
  ack: 5,
  digest: 6,
  deltaRequest: 7,
} as const;
/** A message type name. */
export type MessageType = keyof typeof MESSAGE_TYPES;

/** The role a node announces. */
export const NODE_ROLES = { master: 1, backup: 2 } as const;
/** A role name. */
export type NodeRole = keyof typeof NODE_ROLES;

/** How a receiver judged a snapshot. */
export const ACK_STATUSES = {
  /** Count and digest match. */
  ok: 0,
  count_mismatch: 1,
  digest_mismatch: 2,
  /** A batch was missing or out of order; the receiver stopped taking this snapshot. */
  sequence_gap: 3,
  /** SNAPSHOT_END for a snapshot the receiver is not taking. */
  unknown_snapshot: 4,
  /** The receiver gave up (idle too long, superseded, closing). */
  aborted: 5,
} as const;
/** An ACK status name. */
export type AckStatus = keyof typeof ACK_STATUSES;

/** Which part of the table a snapshot carries: everything, or the entries of some digest buckets. */
export type SnapshotScope = { kind: 'full' } | { kind: 'buckets'; bucketBits: number; buckets: number[] };

/** HELLO: who is talking. Sent by each side on every (re)connection. */
export interface HelloMessage {
  type: 'hello';
  node: string;
  /** The sender's boot epoch (u32): a new value means the peer restarted. */
  epoch: number;
  role: NodeRole;
}

/** SNAPSHOT_BEGIN: a snapshot starts; `estimate` is a hint (the table changes while it streams). */
export interface SnapshotBeginMessage {
  type: 'snapshotBegin';
  snapshotId: number;
  estimate: number;
  scope: SnapshotScope;
}

/** BATCH: the `sequence`-th group of entries of a snapshot. */
export interface BatchMessage {
  type: 'batch';
  snapshotId: number;
  sequence: number;
  entries: ConnEntry[];
}

/** SNAPSHOT_END: the snapshot is complete: `total` entries whose digest summary is `digest`. */
export interface SnapshotEndMessage {
  type: 'snapshotEnd';
  snapshotId: number;
  total: number;
  digest: Buffer;
}

/** ACK: the receiver's verdict on a snapshot. */
export interface AckMessage {
  type: 'ack';
  snapshotId: number;
  received: number;
  status: AckStatus;
  /** Summary of the digest of what arrived. */
  digest: Buffer;
}

/** DIGEST: the sender's table digest, for periodic repair. */
export interface DigestMessage {
  type: 'digest';
  generation: number;
  bucketBits: number;
  /** Exactly 2^bucketBits buckets. */
  buckets: BucketDigest[];
}

/** DELTA_REQUEST: the receiver asks for the entries of the buckets that differ from its own table. */
export interface DeltaRequestMessage {
  type: 'deltaRequest';
  /** The DIGEST generation the request answers. */
  generation: number;
  bucketBits: number;
  buckets: number[];
}

/** Any resync message. */
export type ResyncMessage =
  | HelloMessage
  | SnapshotBeginMessage
  | BatchMessage
  | SnapshotEndMessage
  | AckMessage
  | DigestMessage
  | DeltaRequestMessage;

/** BATCH as decoded: the entries stay in their wire form (iterate them for objects). */
export interface ReceivedBatchMessage {
  type: 'batch';
  snapshotId: number;
  sequence: number;
  entries: EncodedEntries;
}

/** A decoded message: as sent, but a BATCH keeps its entries encoded. */
export type ReceivedMessage = Exclude<ResyncMessage, BatchMessage> | ReceivedBatchMessage;

/** Why a frame was rejected. */
export const RESYNC_DECODE_REASONS = ['too_short', 'too_long', 'bad_magic', 'bad_version', 'bad_length', 'unknown_type', 'malformed', 'bad_entry'] as const;
/** One of RESYNC_DECODE_REASONS. */
export type ResyncDecodeReason = (typeof RESYNC_DECODE_REASONS)[number];

const TYPE_NAMES: ReadonlyMap<number, MessageType> = new Map(Object.entries(MESSAGE_TYPES).map(([k, v]) => [v, k as MessageType]));
const ROLE_NAMES: ReadonlyMap<number, NodeRole> = new Map(Object.entries(NODE_ROLES).map(([k, v]) => [v, k as NodeRole]));
const STATUS_NAMES: ReadonlyMap<number, AckStatus> = new Map(Object.entries(ACK_STATUSES).map(([k, v]) => [v, k as AckStatus]));

// ---------------------------------------------------------------------------------------------------------
// Encode

function u32(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) throw new CodecError(`resync ${name} ${v} must be a u32`);
  return v;
}

function frame(type: MessageType, bodyLength: number): Buffer {
  const total = RESYNC.headerLength + bodyLength;
  if (total > RESYNC.maxFrameBytes) throw new CodecError(`resync ${type} frame of ${total} bytes exceeds ${RESYNC.maxFrameBytes}; send smaller batches`);
  const buf = Buffer.alloc(total);
  buf.writeUInt16BE(RESYNC.magic, 0);
  buf[2] = RESYNC.version;
  buf[3] = MESSAGE_TYPES[type];
  buf.writeUInt32BE(bodyLength, 4);
  return buf;
}

function checkBuckets(what: string, bucketBits: number, buckets: readonly number[], minCount: number): void {
  if (!Number.isInteger(bucketBits) || bucketBits < 0 || bucketBits > MAX_BUCKET_BITS) throw new CodecError(`resync ${what} bucket bits ${bucketBits} must be 0..${MAX_BUCKET_BITS}`);
  const n = 1 << bucketBits;
  if (buckets.length < minCount || buckets.length > n) throw new CodecError(`resync ${what} needs ${minCount}..${n} buckets, got ${buckets.length}`);
  buckets.forEach((b, i) => {
    if (!Number.isInteger(b) || b < 0 || b >= n || (i > 0 && b <= buckets[i - 1]!)) {
      throw new CodecError(`resync ${what} buckets must be strictly increasing integers below ${n}, got ${b} at ${i}`);
    }
  });
}

/** Encodes a message as one frame. Throws CodecError when a field is out of range or the frame exceeds 8 MiB. */
export function encodeMessage(m: ResyncMessage): Buffer {
  switch (m.type) {
    case 'hello': {
      const name = Buffer.from(m.node, 'utf8');
      if (name.length < 1 || name.length > RESYNC.maxNodeNameBytes) throw new CodecError(`resync hello node name must be 1..${RESYNC.maxNodeNameBytes} bytes, got ${name.length}`);
      if (!(m.role in NODE_ROLES)) throw new CodecError(`resync hello role ${String(m.role)} is not master or backup`);
      const buf = frame('hello', 6 + name.length);
      buf.writeUInt32BE(u32('epoch', m.epoch), 8);
      buf[12] = NODE_ROLES[m.role];
      buf[13] = name.length;
      name.copy(buf, 14);
      return buf;
    }
    case 'snapshotBegin': {
      const buckets = m.scope.kind === 'full' ? [] : m.scope.buckets;
      const bits = m.scope.kind === 'full' ? 0 : m.scope.bucketBits;
      if (m.scope.kind === 'buckets') checkBuckets('snapshot scope', bits, buckets, 1);
      const buf = frame('snapshotBegin', 12 + 2 * buckets.length);
      buf.writeUInt32BE(u32('snapshot id', m.snapshotId), 8);
      buf.writeUInt32BE(u32('estimate', m.estimate), 12);
      buf[16] = bits;
      buf.writeUInt16BE(buckets.length, 18);
      buckets.forEach((b, i) => buf.writeUInt16BE(b, 20 + 2 * i));
      return buf;
    }
    case 'batch': {
      if (m.entries.length > RESYNC.maxBatchEntries) throw new CodecError(`resync batch of ${m.entries.length} entries exceeds ${RESYNC.maxBatchEntries}`);
      let body = 12;
      for (const e of m.entries) body += (entryLength(e) + 3) & ~3;
      const buf = frame('batch', body);
      buf.writeUInt32BE(u32('snapshot id', m.snapshotId), 8);
      buf.writeUInt32BE(u32('sequence', m.sequence), 12);
      buf.writeUInt16BE(m.entries.length, 16);
      let p = 20;
      for (const e of m.entries) p += (encodeEntry(e, buf, p) + 3) & ~3;
      return buf;
    }
    case 'snapshotEnd': {
      if (m.digest.length !== DIGEST_SUMMARY_LENGTH) throw new CodecError(`resync snapshot end digest must be ${DIGEST_SUMMARY_LENGTH} bytes`);
      const buf = frame('snapshotEnd', 8 + DIGEST_SUMMARY_LENGTH);
      buf.writeUInt32BE(u32('snapshot id', m.snapshotId), 8);
      buf.writeUInt32BE(u32('total', m.total), 12);
      m.digest.copy(buf, 16);
      return buf;
    }
    case 'ack': {
      if (m.digest.length !== DIGEST_SUMMARY_LENGTH) throw new CodecError(`resync ack digest must be ${DIGEST_SUMMARY_LENGTH} bytes`);
      if (!(m.status in ACK_STATUSES)) throw new CodecError(`resync ack status ${String(m.status)} is unknown`);
      const buf = frame('ack', 12 + DIGEST_SUMMARY_LENGTH);
      buf.writeUInt32BE(u32('snapshot id', m.snapshotId), 8);
      buf.writeUInt32BE(u32('received', m.received), 12);
      buf[16] = ACK_STATUSES[m.status];
      m.digest.copy(buf, 20);
      return buf;
    }
    case 'digest': {
      const bits = m.bucketBits;
      if (!Number.isInteger(bits) || bits < 0 || bits > MAX_BUCKET_BITS) throw new CodecError(`resync digest bucket bits ${bits} must be 0..${MAX_BUCKET_BITS}`);
      if (m.buckets.length !== 1 << bits) throw new CodecError(`resync digest needs ${1 << bits} buckets, got ${m.buckets.length}`);
      const buf = frame('digest', 8 + 12 * m.buckets.length);
      buf.writeUInt32BE(u32('generation', m.generation), 8);
      buf[12] = bits;
      m.buckets.forEach((b, i) => {
        buf.writeUInt32BE(u32('bucket count', b.count), 16 + 12 * i);
        buf.writeUInt32BE(u32('bucket h1', b.h1), 20 + 12 * i);
        buf.writeUInt32BE(u32('bucket h2', b.h2), 24 + 12 * i);
      });
      return buf;
    }
    case 'deltaRequest': {
      checkBuckets('delta request', m.bucketBits, m.buckets, 1);
      const buf = frame('deltaRequest', 8 + 2 * m.buckets.length);
      buf.writeUInt32BE(u32('generation', m.generation), 8);
      buf[12] = m.bucketBits;
      buf.writeUInt16BE(m.buckets.length, 14);
      m.buckets.forEach((b, i) => buf.writeUInt16BE(b, 16 + 2 * i));
      return buf;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Decode

type Decoded = Result<ReceivedMessage, ResyncDecodeReason>;

/** Reads `count` strictly increasing u16 bucket numbers below 2^bits at `off`; a failure detail or the list. */
function readBuckets(buf: Buffer, off: number, count: number, bits: number): number[] | string {
  const n = 1 << bits;
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const b = buf.readUInt16BE(off + 2 * i);
    if (b >= n) return `bucket ${b} is not below ${n}`;
    if (i > 0 && b <= out[i - 1]!) return `buckets are not strictly increasing at ${i}`;
    out.push(b);
  }
  return out;
}

function bodyLengthIs(type: MessageType, body: number, want: number): Decoded | undefined {
  return body === want ? undefined : fail('bad_length', `${type} body of ${body} bytes, want ${want}`);
}

/**
 * Decodes one frame. Never throws. Checks the header ('too_short', 'too_long', 'bad_magic', 'bad_version',
 * 'bad_length' when the body length field disagrees with the frame, 'unknown_type'), then the body: exact
 * lengths ('bad_length'), reserved bytes zero and values in range ('malformed'), entries ('bad_entry').
 */
export function decodeMessage(input: Uint8Array): Decoded {
  if (!(input instanceof Uint8Array)) return fail('malformed', 'frame is not a byte buffer');
  const buf = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (buf.length < RESYNC.headerLength) return fail('too_short', `frame of ${buf.length} bytes is shorter than the ${RESYNC.headerLength}-byte header`);
  if (buf.length > RESYNC.maxFrameBytes) return fail('too_long', `frame of ${buf.length} bytes exceeds ${RESYNC.maxFrameBytes}`);
  if (buf.readUInt16BE(0) !== RESYNC.magic) return fail('bad_magic', `magic 0x${buf.readUInt16BE(0).toString(16)}, want 0x5453 ("TS")`);
  if (buf[2] !== RESYNC.version) return fail('bad_version', `version ${buf[2]}, this node speaks ${RESYNC.version}`);
  const body = buf.readUInt32BE(4);
  if (body !== buf.length - RESYNC.headerLength) return fail('bad_length', `body length field ${body}, frame carries ${buf.length - RESYNC.headerLength}`);
  const type = TYPE_NAMES.get(buf[3] ?? 0);
  if (type === undefined) return fail('unknown_type', `message type ${buf[3]}`);
  switch (type) {
    case 'hello': {
      if (body < 7) return fail('bad_length', `hello body of ${body} bytes, want at least 7`);
      const nameLen = buf[13] ?? 0;
      const bad = bodyLengthIs(type, body, 6 + nameLen);
      if (bad !== undefined) return bad;
      const role = ROLE_NAMES.get(buf[12] ?? 0);
      if (role === undefined) return fail('malformed', `hello role ${buf[12]}`);
      if (nameLen < 1 || nameLen > RESYNC.maxNodeNameBytes) return fail('malformed', `hello node name of ${nameLen} bytes`);
      const nameBytes = buf.subarray(14, 14 + nameLen);
      const node = nameBytes.toString('utf8');
      if (!Buffer.from(node, 'utf8').equals(nameBytes)) return fail('malformed', 'hello node name is not valid UTF-8');
      return ok({ type, node, epoch: buf.readUInt32BE(8), role });
    }
    case 'snapshotBegin': {
      if (body < 12) return fail('bad_length', `snapshotBegin body of ${body} bytes, want at least 12`);
      const count = buf.readUInt16BE(18);
      const bad = bodyLengthIs(type, body, 12 + 2 * count);
      if (bad !== undefined) return bad;
      const bits = buf[16] ?? 0;
      if (buf[17] !== 0) return fail('malformed', 'snapshotBegin reserved byte is not zero');
      const snapshotId = buf.readUInt32BE(8);
      const estimate = buf.readUInt32BE(12);
      if (count === 0) {
        if (bits !== 0) return fail('malformed', 'snapshotBegin of the whole table with bucket bits set');
        return ok({ type, snapshotId, estimate, scope: { kind: 'full' } });
      }
      if (bits > MAX_BUCKET_BITS) return fail('malformed', `snapshotBegin bucket bits ${bits} exceed ${MAX_BUCKET_BITS}`);
      const buckets = readBuckets(buf, 20, count, bits);
      if (typeof buckets === 'string') return fail('malformed', `snapshotBegin: ${buckets}`);
      return ok({ type, snapshotId, estimate, scope: { kind: 'buckets', bucketBits: bits, buckets } });
    }
    case 'batch': {
      if (body < 12) return fail('bad_length', `batch body of ${body} bytes, want at least 12`);
      if (buf.readUInt16BE(18) !== 0) return fail('malformed', 'batch reserved bytes are not zero');
      const count = buf.readUInt16BE(16);
      const checked = checkEncodedEntries(buf, BATCH_ENTRIES_OFFSET, buf.length, count);
      if (!checked.ok) {
        const reason = checked.reason === 'bad_padding' ? 'malformed' : checked.reason === 'trailing_bytes' ? 'bad_length' : 'bad_entry';
        return fail(reason, `batch ${checked.detail}`);
      }
      const entries = checked.value;
      return ok({ type, snapshotId: buf.readUInt32BE(8), sequence: buf.readUInt32BE(12), entries });
    }
    case 'snapshotEnd': {
      const bad = bodyLengthIs(type, body, 8 + DIGEST_SUMMARY_LENGTH);
      if (bad !== undefined) return bad;
      return ok({ type, snapshotId: buf.readUInt32BE(8), total: buf.readUInt32BE(12), digest: Buffer.from(buf.subarray(16, 16 + DIGEST_SUMMARY_LENGTH)) });
    }
    case 'ack': {
      const bad = bodyLengthIs(type, body, 12 + DIGEST_SUMMARY_LENGTH);
      if (bad !== undefined) return bad;
      const status = STATUS_NAMES.get(buf[16] ?? 0xff);
      if (status === undefined) return fail('malformed', `ack status ${buf[16]}`);
      if (buf[17] !== 0 || buf[18] !== 0 || buf[19] !== 0) return fail('malformed', 'ack reserved bytes are not zero');
      return ok({ type, snapshotId: buf.readUInt32BE(8), received: buf.readUInt32BE(12), status, digest: Buffer.from(buf.subarray(20, 20 + DIGEST_SUMMARY_LENGTH)) });
    }
    case 'digest': {
      if (body < 8) return fail('bad_length', `digest body of ${body} bytes, want at least 8`);
      const bits = buf[12] ?? 0;
      if (bits > MAX_BUCKET_BITS) return fail('malformed', `digest bucket bits ${bits} exceed ${MAX_BUCKET_BITS}`);
      const bad = bodyLengthIs(type, body, 8 + 12 * (1 << bits));
      if (bad !== undefined) return bad;
      if (buf[13] !== 0 || buf[14] !== 0 || buf[15] !== 0) return fail('malformed', 'digest reserved bytes are not zero');
      const buckets: BucketDigest[] = [];
      for (let i = 0; i < 1 << bits; i++) {
        const o = 16 + 12 * i;
        buckets.push({ count: buf.readUInt32BE(o), h1: buf.readUInt32BE(o + 4), h2: buf.readUInt32BE(o + 8) });
      }
      return ok({ type, generation: buf.readUInt32BE(8), bucketBits: bits, buckets });
    }
    case 'deltaRequest': {
      if (body < 8) return fail('bad_length', `deltaRequest body of ${body} bytes, want at least 8`);
      const count = buf.readUInt16BE(14);
      const bad = bodyLengthIs(type, body, 8 + 2 * count);
      if (bad !== undefined) return bad;
      const bits = buf[12] ?? 0;
      if (buf[13] !== 0) return fail('malformed', 'deltaRequest reserved byte is not zero');
      if (bits > MAX_BUCKET_BITS) return fail('malformed', `deltaRequest bucket bits ${bits} exceed ${MAX_BUCKET_BITS}`);
      if (count === 0 || count > 1 << bits) return fail('malformed', `deltaRequest of ${count} buckets out of ${1 << bits}`);
      const buckets = readBuckets(buf, 16, count, bits);
      if (typeof buckets === 'string') return fail('malformed', `deltaRequest: ${buckets}`);
      return ok({ type, generation: buf.readUInt32BE(8), bucketBits: bits, buckets });
    }
  }
}
