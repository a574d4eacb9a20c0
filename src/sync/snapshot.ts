/**
 * The pure core of a full-table resync: the sender side turns a stream of entries into the frames of one
 * snapshot (SNAPSHOT_BEGIN, BATCH..., SNAPSHOT_END with count and digest); the receiver side is a state machine
 * fed decoded messages that hands entries on as they arrive and judges the snapshot with an ACK. No I/O, no
 * clock: the channel (channel.ts) performs the sends and owns the timers.
 *
 * Entries are handed on before the snapshot is verified (a 1M-entry table is streamed into the kernel, not
 * held); an ACK other than `ok` tells the sender the receiver's table needs another full or partial resync.
 */

import { bucketOf, TableDigest } from './digest.ts';
import type { ConnEntry } from './conn.ts';
import { BATCH_ENTRIES_OFFSET, encodeMessage } from './resync-protocol.ts';
import type { AckMessage, AckStatus, ReceivedBatchMessage, SnapshotBeginMessage, SnapshotEndMessage, SnapshotScope } from './resync-protocol.ts';
import { EncodedEntries } from './sync-v1.ts';

/**
 * Bucket bits of the digest a snapshot carries in SNAPSHOT_END and ACK: one bucket, i.e. the entry count and
 * two 32-bit sums, hashed to 32 bytes. Both ends must agree, so it is fixed by the protocol version.
 */
export const SNAPSHOT_DIGEST_BITS = 0;

/**
 * Entries per BATCH frame: 1000 IPv4 entries are ~36 KB, small enough to interleave with other peers' traffic
 * and to bound what a stalled peer pins in memory, large enough that per-frame costs vanish.
 */
export const DEFAULT_BATCH_ENTRIES = 1000;

/** A fresh digest of the kind SNAPSHOT_END / ACK carry. */
export function snapshotDigest(): TableDigest {
  return new TableDigest(SNAPSHOT_DIGEST_BITS);
}

/** Options of snapshotFrames. */
export interface SnapshotFramesOptions {
  snapshotId: number;
  /** Expected entry count (a hint for the receiver); 0 when unknown. */
  estimate?: number;
  /** Whole table (default) or only the entries of some buckets (answering a DELTA_REQUEST). */
  scope?: SnapshotScope;
  batchEntries?: number;
}

/** What snapshotFrames reports when it is done: the totals that went into SNAPSHOT_END. */
export interface SnapshotTotals {
  total: number;
  batches: number;
  /** Bytes of all frames (BEGIN, BATCHes, END). */
  bytes: number;
  digest: Buffer;
}

/**
 * The frames of one snapshot, lazily: SNAPSHOT_BEGIN, one BATCH per `batchEntries` entries (sequence 0, 1, ...),
 * SNAPSHOT_END. With a bucket scope, only entries whose bucket is in the scope are sent. Returns the totals.
 * Throws CodecError for an entry that cannot be encoded.
 */
export async function* snapshotFrames(
  entries: Iterable<ConnEntry> | AsyncIterable<ConnEntry>,
  options: SnapshotFramesOptions,
): AsyncGenerator<Buffer, SnapshotTotals, undefined> {
  const scope = options.scope ?? { kind: 'full' };
  const batchEntries = Math.max(1, Math.min(options.batchEntries ?? DEFAULT_BATCH_ENTRIES, 0xffff));
  const wanted = scope.kind === 'buckets' ? new Set(scope.buckets) : undefined;
  const digest = snapshotDigest();
  const begin = encodeMessage({ type: 'snapshotBegin', snapshotId: options.snapshotId, estimate: options.estimate ?? 0, scope });
  let bytes = begin.length;
  yield begin;
  let sequence = 0;
  const batchFrame = (batch: ConnEntry[]): Buffer => {
    const frame = encodeMessage({ type: 'batch', snapshotId: options.snapshotId, sequence: sequence++, entries: batch });
    // Digested from the bytes just written, as the receiver digests them (no second parse of the addresses).
    digest.addEncoded(new EncodedEntries(frame, BATCH_ENTRIES_OFFSET, frame.length, batch.length));
    bytes += frame.length;
    return frame;
  };
  // Pull whole batches: a synchronous source is read without a promise per entry (that alone would double the
  // cost of a 1M-entry snapshot); an asynchronous one (a /proc read stream) is awaited entry by entry.
  const source = Symbol.iterator in entries ? entries[Symbol.iterator]() : undefined;
  const asyncSource = source === undefined ? (entries as AsyncIterable<ConnEntry>)[Symbol.asyncIterator]() : undefined;
  try {
    for (;;) {
      const batch: ConnEntry[] = [];
      let done = false;
      while (batch.length < batchEntries) {
        const step = source !== undefined ? source.next() : await asyncSource!.next();
        if (step.done === true) {
          done = true;
          break;
        }
        const e = step.value;
        if (wanted !== undefined && scope.kind === 'buckets' && !wanted.has(bucketOf(e, scope.bucketBits))) continue;
        batch.push(e);
      }
      if (batch.length > 0) yield batchFrame(batch);
      if (done) break;
    }
  } finally {
    // Stopped early (the consumer gave up): let the source release what it holds (a read stream).
    await (source ?? asyncSource)?.return?.();
  }
  const summary = digest.summary();
  const end = encodeMessage({ type: 'snapshotEnd', snapshotId: options.snapshotId, total: digest.size, digest: summary });
  bytes += end.length;
  yield end;
  return { total: digest.size, batches: sequence, bytes, digest: summary };
}

/** What the receiver asks its driver to do or know. */
export type ReceiverOutput =
  | { kind: 'begin'; snapshotId: number; estimate: number; scope: SnapshotScope }
  | { kind: 'entries'; snapshotId: number; entries: EncodedEntries }
  | { kind: 'send'; message: AckMessage }
  | { kind: 'complete'; snapshotId: number; received: number; status: AckStatus }
  | { kind: 'abandoned'; snapshotId: number; received: number; reason: string }
  | { kind: 'ignored'; reason: 'stray_batch' | 'stray_end'; detail: string };

interface Receiving {
  snapshotId: number;
  nextSequence: number;
  digest: TableDigest;
}

/**
 * Receives snapshots one at a time. A new SNAPSHOT_BEGIN supersedes one in progress (abandoned with an `aborted`
 * ACK); a BATCH out of sequence ends the snapshot with a `sequence_gap` ACK; SNAPSHOT_END compares the count and
 * digest and ACKs `ok`, `count_mismatch` or `digest_mismatch`. Batches and ends of other snapshots are ignored
 * (an END for an unknown snapshot gets an `unknown_snapshot` ACK so its sender does not wait).
 */
export class SnapshotReceiver {
  private current: Receiving | undefined;

  /** The snapshot being received, if any. */
  get activeSnapshot(): number | undefined {
    return this.current?.snapshotId;
  }

  /** Feeds one snapshot message; returns what to do, in order. */
  handle(m: SnapshotBeginMessage | ReceivedBatchMessage | SnapshotEndMessage): ReceiverOutput[] {
    switch (m.type) {
      case 'snapshotBegin': {
        const out = this.current === undefined ? [] : this.abandon(`superseded by snapshot ${m.snapshotId}`);
        this.current = { snapshotId: m.snapshotId, nextSequence: 0, digest: snapshotDigest() };
        out.push({ kind: 'begin', snapshotId: m.snapshotId, estimate: m.estimate, scope: m.scope });
        return out;
      }
      case 'batch': {
        const c = this.current;
        if (c === undefined || c.snapshotId !== m.snapshotId) {
          return [{ kind: 'ignored', reason: 'stray_batch', detail: `batch ${m.sequence} of snapshot ${m.snapshotId}, receiving ${c === undefined ? 'none' : c.snapshotId}` }];
        }
        if (m.sequence !== c.nextSequence) {
          const out = this.finish('sequence_gap');
          out.push({ kind: 'abandoned', snapshotId: c.snapshotId, received: c.digest.size, reason: `batch ${m.sequence} arrived, expected ${c.nextSequence}` });
          return out;
        }
        c.nextSequence++;
        c.digest.addEncoded(m.entries);
        return [{ kind: 'entries', snapshotId: m.snapshotId, entries: m.entries }];
      }
      case 'snapshotEnd': {
        const c = this.current;
        if (c === undefined || c.snapshotId !== m.snapshotId) {
          return [
            { kind: 'ignored', reason: 'stray_end', detail: `end of snapshot ${m.snapshotId}, receiving ${c === undefined ? 'none' : c.snapshotId}` },
            { kind: 'send', message: { type: 'ack', snapshotId: m.snapshotId, received: 0, status: 'unknown_snapshot', digest: snapshotDigest().summary() } },
          ];
        }
        const status: AckStatus = c.digest.size !== m.total ? 'count_mismatch' : c.digest.summary().equals(m.digest) ? 'ok' : 'digest_mismatch';
        const received = c.digest.size;
        const out = this.finish(status);
        out.push({ kind: 'complete', snapshotId: m.snapshotId, received, status });
        return out;
      }
    }
  }

  /** Gives up the snapshot in progress (idle too long, closing): an `aborted` ACK and an `abandoned` output. */
  abandon(reason: string): ReceiverOutput[] {
    const c = this.current;
    if (c === undefined) return [];
    const out = this.finish('aborted');
    out.push({ kind: 'abandoned', snapshotId: c.snapshotId, received: c.digest.size, reason });
    return out;
  }

  private finish(status: AckStatus): ReceiverOutput[] {
    const c = this.current;
    if (c === undefined) return [];
    this.current = undefined;
    return [{ kind: 'send', message: { type: 'ack', snapshotId: c.snapshotId, received: c.digest.size, status, digest: c.digest.summary() } }];
  }
}
