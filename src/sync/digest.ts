/**
 * Order-independent digests of a connection table, for the resync protocol: the SNAPSHOT_END / ACK digest
 * proves both ends hold the same entries, and the periodic DIGEST message lets a backup find which parts of
 * its table drifted (DELTA_REQUEST) without shipping the table. Pure code, no I/O.
 *
 * The key space is the 32-bit hash of an entry's identity (family, protocol, template bit, client and virtual
 * endpoint), split into 2^bits buckets by its top bits: contiguous ranges of the sorted key-hash space. A
 * bucket keeps the count of its entries and two independent 32-bit sums (mod 2^32) of their content hashes, so
 * adding or removing one entry is O(1) and the result does not depend on order.
 *
 * What is hashed: identity + real server (daddr, dport) + state + PE data: "this client goes to that real
 * server, in this state". Left out on purpose: timeouts (they count down), flags and forwarding method (a
 * backup keeps its own, ip_vs_sync.c), fwmark and sequence data (not shown by /proc/net/ip_vs_conn, so two
 * tables read from /proc on the two directors stay comparable). The hash is MurmurHash3 (x86, 32-bit): fast
 * and well mixed, not cryptographic; the channel is authenticated (CURVE), so only accidents need catching.
 */

import { createHash } from 'node:crypto';
import { CONN_FLAGS, addressLength, writeAddressBytes } from './conn.ts';
import type { ConnEntry } from './conn.ts';
import type { EncodedEntries, EntryLayout } from './sync-v1.ts';

/** 256 buckets: a DIGEST message of 3 KiB, ~4k entries per bucket for a 1M table. */
export const DEFAULT_BUCKET_BITS = 8;
/** At most 2^16 buckets (a 768 KiB DIGEST message). */
export const MAX_BUCKET_BITS = 16;
/** Length of `TableDigest.summary()`. */
export const DIGEST_SUMMARY_LENGTH = 32;

/** One bucket of a table digest. */
export interface BucketDigest {
  count: number;
  /** Sum mod 2^32 of the entries' first content hash. */
  h1: number;
  /** Sum mod 2^32 of the entries' second content hash. */
  h2: number;
}

const SEED_KEY = 0x9747b28c;
const SEED_H1 = 0x2f6b_1d3d;
const SEED_H2 = 0x5bd1_e995;

/** MurmurHash3 x86 32-bit of `buf[start, end)`. */
export function murmur3(buf: Uint8Array, start: number, end: number, seed: number): number {
  let h = seed | 0;
  let i = start;
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  for (; i + 4 <= end; i += 4) {
    let k = (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24)) | 0;
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const rest = end - i;
  if (rest > 0) {
    let k = 0;
    if (rest === 3) k ^= buf[i + 2]! << 16;
    if (rest >= 2) k ^= buf[i + 1]! << 8;
    k ^= buf[i]!;
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= end - start;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

// Canonical digest bytes of an entry, written into one scratch buffer (max 8 + 2*16 + 10 + 16 + 2 + 16 + 255):
//   0 family | 1 protocol | 2 template | 3 zero | 4 cport | 6 vport | 8 caddr | vaddr      <- key ends here
//   dport(2) | state(2) | daddr | PE: name length, name, data length, data (only with PE)
const SCRATCH = Buffer.alloc(512);

/** Writes the canonical bytes; returns [keyEnd, end], or undefined when an address is not of the family. */
function canonical(e: ConnEntry): [number, number] | undefined {
  const b = SCRATCH;
  const alen = addressLength(e.family);
  b[0] = e.family;
  b[1] = e.protocol & 0xff;
  b[2] = e.template ? 1 : 0;
  b[3] = 0;
  b.writeUInt16BE(e.cport & 0xffff, 4);
  b.writeUInt16BE(e.vport & 0xffff, 6);
  if (!writeAddressBytes(e.caddr, e.family, b, 8) || !writeAddressBytes(e.vaddr, e.family, b, 8 + alen)) return undefined;
  const keyEnd = 8 + 2 * alen;
  let p = keyEnd;
  b.writeUInt16BE(e.dport & 0xffff, p);
  b.writeUInt16BE(e.state & 0xffff, p + 2);
  p += 4;
  if (!writeAddressBytes(e.daddr, e.family, b, p)) return undefined;
  p += alen;
  if (e.pe !== undefined) {
    const n = b.write(e.pe.name.slice(0, 16), p + 1, 16, 'utf8');
    b[p] = n;
    p += 1 + n;
    const d = Math.min(e.pe.data.length, 255);
    b[p] = d;
    e.pe.data.copy(b, p + 1, 0, d);
    p += 1 + d;
  }
  return [keyEnd, p];
}

/**
 * The same canonical bytes as `canonical`, read from a checked, not skipped sync v1 entry at `off` (see
 * checkEntry) instead of an object: the resync receiver digests what it passes on without decoding it.
 */
/** Where canonicalEncoded's key ended (a module variable, so the per-entry path allocates nothing). */
let encodedKeyEnd = 0;

function canonicalEncoded(buf: Buffer, off: number, layout: EntryLayout): number {
  const b = SCRATCH;
  const alen = addressLength(layout.family);
  b[0] = layout.family;
  b[1] = buf[off + 1]!;
  b[2] = ((buf[off + 6]! << 8) & CONN_FLAGS.TEMPLATE) !== 0 ? 1 : 0; // flags is BE32 at off + 4
  b[3] = 0;
  // Byte by byte: Buffer#copy crosses into C++ and costs more than these few bytes.
  b[4] = buf[off + 10]!; // cport
  b[5] = buf[off + 11]!;
  b[6] = buf[off + 12]!; // vport
  b[7] = buf[off + 13]!;
  const addrs = off + 24;
  for (let i = 0; i < 2 * alen; i++) b[8 + i] = buf[addrs + i]!; // caddr, vaddr
  const keyEnd = 8 + 2 * alen;
  let p = keyEnd;
  b[p] = buf[off + 14]!; // dport
  b[p + 1] = buf[off + 15]!;
  b[p + 2] = buf[off + 8]!; // state
  b[p + 3] = buf[off + 9]!;
  p += 4;
  const daddr = addrs + 2 * alen;
  for (let i = 0; i < alen; i++) b[p + i] = buf[daddr + i]!;
  p += alen;
  if (layout.peDataAt >= 0 && layout.peNameAt >= 0) {
    // As decodeEntry reads the name (UTF-8 text) and canonical writes it back.
    const name = buf.toString('utf8', layout.peNameAt, layout.peNameAt + layout.peNameLength);
    const n = b.write(name.slice(0, 16), p + 1, 16, 'utf8');
    b[p] = n;
    p += 1 + n;
    b[p] = layout.peDataLength;
    buf.copy(b, p + 1, layout.peDataAt, layout.peDataAt + layout.peDataLength);
    p += 1 + layout.peDataLength;
  }
  encodedKeyEnd = keyEnd;
  return p;
}

/** The entry's bucket among 2^bits (top bits of its key hash); entries with invalid addresses land in bucket 0. */
export function bucketOf(e: ConnEntry, bits: number): number {
  const c = canonical(e);
  if (c === undefined || bits === 0) return 0;
  return murmur3(SCRATCH, 0, c[0], SEED_KEY) >>> (32 - bits);
}

/** An incrementally maintained, order-independent digest of a set of entries. */
export class TableDigest {
  readonly bucketBits: number;
  private readonly counts: Uint32Array;
  private readonly h1: Uint32Array;
  private readonly h2: Uint32Array;
  private total = 0;

  /** `bucketBits` 0..16 (2^bits buckets). */
  constructor(bucketBits: number = DEFAULT_BUCKET_BITS) {
    if (!Number.isInteger(bucketBits) || bucketBits < 0 || bucketBits > MAX_BUCKET_BITS) {
      throw new RangeError(`bucketBits ${bucketBits} must be an integer 0..${MAX_BUCKET_BITS}`);
    }
    this.bucketBits = bucketBits;
    const n = 1 << bucketBits;
    this.counts = new Uint32Array(n);
    this.h1 = new Uint32Array(n);
    this.h2 = new Uint32Array(n);
  }

  /** Number of entries added minus removed. */
  get size(): number {
    return this.total;
  }

  /** Adds an entry; returns its bucket. */
  add(e: ConnEntry): number {
    return this.apply(e, 1);
  }

  /** Removes an entry added before; returns its bucket. */
  remove(e: ConnEntry): number {
    return this.apply(e, -1);
  }

  /** Adds every entry of a checked BATCH body (the same as adding each decoded entry). */
  addEncoded(entries: EncodedEntries): void {
    entries.forEachEntry((off, layout) => {
      const end = canonicalEncoded(entries.buf, off, layout);
      this.applyCanonical(encodedKeyEnd, end, 1);
    });
  }

  private apply(e: ConnEntry, sign: 1 | -1): number {
    const c = canonical(e);
    // An entry with an invalid address counts in bucket 0 with hashes 0 (keyEnd -1).
    return c === undefined ? this.applyCanonical(-1, 0, sign) : this.applyCanonical(c[0], c[1], sign);
  }

  /** Counts the canonical bytes SCRATCH[0, end) whose key is SCRATCH[0, keyEnd); keyEnd -1: no bytes. */
  private applyCanonical(keyEnd: number, end: number, sign: 1 | -1): number {
    let bucket = 0;
    let x = 0;
    let y = 0;
    if (keyEnd >= 0) {
      if (this.bucketBits > 0) bucket = murmur3(SCRATCH, 0, keyEnd, SEED_KEY) >>> (32 - this.bucketBits);
      x = murmur3(SCRATCH, 0, end, SEED_H1);
      y = murmur3(SCRATCH, 0, end, SEED_H2);
    }
    this.counts[bucket] = (this.counts[bucket]! + sign) >>> 0;
    this.h1[bucket] = (this.h1[bucket]! + sign * x) >>> 0;
    this.h2[bucket] = (this.h2[bucket]! + sign * y) >>> 0;
    this.total += sign;
    return bucket;
  }

  /** A copy of every bucket, index = bucket number. */
  buckets(): BucketDigest[] {
    const out: BucketDigest[] = [];
    for (let i = 0; i < this.counts.length; i++) out.push({ count: this.counts[i]!, h1: this.h1[i]!, h2: this.h2[i]! });
    return out;
  }

  /** SHA-256 over the bucket count and every bucket (count, h1, h2 as BE32): 32 bytes. */
  summary(): Buffer {
    return summarizeBuckets(this.bucketBits, this.buckets());
  }
}

/** The summary (TableDigest.summary) of a bucket array, e.g. one received in a DIGEST message. */
export function summarizeBuckets(bucketBits: number, buckets: readonly BucketDigest[]): Buffer {
  const b = Buffer.alloc(1 + 12 * buckets.length);
  b[0] = bucketBits;
  buckets.forEach((k, i) => {
    b.writeUInt32BE(k.count >>> 0, 1 + 12 * i);
    b.writeUInt32BE(k.h1 >>> 0, 5 + 12 * i);
    b.writeUInt32BE(k.h2 >>> 0, 9 + 12 * i);
  });
  return createHash('sha256').update(b).digest();
}

/** Indexes of the buckets that differ between two digests of the same size (all of them if the sizes differ). */
export function diffBuckets(a: readonly BucketDigest[], b: readonly BucketDigest[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[i];
    const y = b[i];
    if (a.length !== b.length || x === undefined || y === undefined || x.count !== y.count || x.h1 !== y.h1 || x.h2 !== y.h2) out.push(i);
  }
  return out;
}
