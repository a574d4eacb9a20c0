/**
 * The resync protocol (src/sync/resync-protocol.ts), the table digest (digest.ts) and the pure snapshot core
 * (snapshot.ts): golden frames, every decode reason, properties (random bytes never throw, every message
 * round-trips, digests do not depend on order), and whole snapshots run through the receiver state machine:
 * accepted, a lost batch, a tampered entry, a wrong count, a superseded snapshot, a stray end, a bucket scope.
 */

import { isDeepStrictEqual } from 'node:util';
import test from 'ava';
import fc from 'fast-check';
import { CodecError } from '../../src/lib/errors.ts';
import type { ConnEntry } from '../../src/sync/conn.ts';
import { TableDigest, bucketOf, diffBuckets, murmur3, summarizeBuckets } from '../../src/sync/digest.ts';
import { ACK_STATUSES, MESSAGE_TYPES, RESYNC, RESYNC_DECODE_REASONS, decodeMessage, encodeMessage } from '../../src/sync/resync-protocol.ts';
import type { ResyncMessage, SnapshotBeginMessage, BatchMessage, SnapshotEndMessage, ReceivedBatchMessage, ReceivedMessage } from '../../src/sync/resync-protocol.ts';
import { SnapshotReceiver, snapshotDigest, snapshotFrames } from '../../src/sync/snapshot.ts';
import type { ReceiverOutput } from '../../src/sync/snapshot.ts';
import { syntheticEntries, syntheticEntry } from '../../src/sync/synthetic.ts';
import { connEntry, plain } from '../fixtures/sync/arbitraries.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/[\s|]/g, ''), 'hex');
const digest32 = Buffer.from(Array.from({ length: 32 }, (_, i) => i));

test('golden: HELLO, ACK and DELTA_REQUEST frames', (t) => {
  //        magic "TS" | version | type HELLO | body 10 | epoch 0x6553f100 | role backup | name length 4 | "dirA"
  const hello = hex('5453 | 01 | 01 | 0000000a | 6553f100 | 02 | 04 | 64697241');
  t.deepEqual(encodeMessage({ type: 'hello', node: 'dirA', epoch: 0x6553f100, role: 'backup' }), hello);
  t.deepEqual(decodeMessage(hello), { ok: true, value: { type: 'hello', node: 'dirA', epoch: 0x6553f100, role: 'backup' } });
  //      TS v1 ACK body 44 | snapshot 5 | received 100000 (0x186a0) | status digest_mismatch 2 | 000000 | digest
  const ack = hex(`5453 01 05 0000002c | 00000005 | 000186a0 | 02 000000 | ${digest32.toString('hex')}`);
  t.deepEqual(encodeMessage({ type: 'ack', snapshotId: 5, received: 100_000, status: 'digest_mismatch', digest: digest32 }), ack);
  const delta = hex('5453 01 07 0000000c | 00000009 | 08 00 0002 | 0003 00ff');
  t.deepEqual(encodeMessage({ type: 'deltaRequest', generation: 9, bucketBits: 8, buckets: [3, 255] }), delta);
  t.deepEqual(decodeMessage(delta), { ok: true, value: { type: 'deltaRequest', generation: 9, bucketBits: 8, buckets: [3, 255] } });
});

test('golden: a BATCH carries sync v1 entries, each padded to 4 bytes', (t) => {
  const e: ConnEntry = {
    family: 4, protocol: 6, caddr: '192.0.2.10', cport: 40000, vaddr: '10.99.0.100', vport: 80, daddr: '10.99.1.21', dport: 80,
    fwmark: 0, fwd: 'droute', template: false, flags: 0, state: 1, timeoutS: 900,
  };
  const frame = encodeMessage({ type: 'batch', snapshotId: 1, sequence: 2, entries: [e] });
  t.deepEqual(frame, hex(`5453 01 03 00000030 | 00000001 | 00000002 | 0001 0000 |
    00 06 0024 00000003 0001 9c40 0050 0050 00000000 00000384 c000020a 0a630064 0a630115`));
  const d = decodeMessage(frame);
  t.like(d, { ok: true, value: { type: 'batch', snapshotId: 1, sequence: 2 } });
  t.deepEqual(d.ok && d.value.type === 'batch' ? [...d.value.entries] : undefined, [e]);
});

test('every decode reason', (t) => {
  const hello = encodeMessage({ type: 'hello', node: 'dirA', epoch: 1, role: 'master' });
  const reason = (b: Uint8Array) => {
    const r = decodeMessage(b);
    return r.ok ? 'ok' : r.reason;
  };
  const edit = (f: (b: Buffer) => void) => {
    const b = Buffer.from(hello);
    f(b);
    return reason(b);
  };
  t.is(reason(Buffer.alloc(7)), 'too_short');
  t.is(reason(Buffer.alloc(RESYNC.maxFrameBytes + 1)), 'too_long');
  t.is(edit((b) => (b[0] = 0)), 'bad_magic');
  t.is(edit((b) => (b[2] = 2)), 'bad_version');
  t.is(edit((b) => b.writeUInt32BE(11, 4)), 'bad_length');
  t.is(edit((b) => (b[3] = 99)), 'unknown_type');
  t.is(edit((b) => (b[12] = 3)), 'malformed'); // role
  t.is(edit((b) => (b[13] = 5)), 'bad_length'); // name length disagrees with the body
  const badUtf8 = Buffer.from(hello);
  badUtf8[14] = 0xff;
  t.is(reason(badUtf8), 'malformed');
  const batch = encodeMessage({ type: 'batch', snapshotId: 1, sequence: 0, entries: [syntheticEntry(1)] });
  const b1 = Buffer.from(batch);
  b1[20] = 7; // entry type
  t.is(reason(b1), 'bad_entry');
  const b2 = Buffer.from(batch);
  b2.writeUInt16BE(2, 16); // two entries announced, one present
  t.is(reason(b2), 'bad_entry');
  const b3 = Buffer.from(batch);
  b3[18] = 1; // reserved
  t.is(reason(b3), 'malformed');
  const ack = encodeMessage({ type: 'ack', snapshotId: 1, received: 1, status: 'ok', digest: digest32 });
  const a1 = Buffer.from(ack);
  a1[16] = 9;
  t.is(reason(a1), 'malformed');
  const d = encodeMessage({ type: 'deltaRequest', generation: 1, bucketBits: 4, buckets: [1, 2] });
  const d1 = Buffer.from(d);
  d1.writeUInt16BE(1, 18); // 2, 1: not increasing
  t.is(reason(d1), 'malformed');
  const d2 = Buffer.from(d);
  d2.writeUInt16BE(16, 18); // bucket 16 of 16
  t.is(reason(d2), 'malformed');
  t.is(new Set(RESYNC_DECODE_REASONS).size, RESYNC_DECODE_REASONS.length);
});

test('encoders refuse out-of-range fields', (t) => {
  t.throws(() => encodeMessage({ type: 'hello', node: '', epoch: 1, role: 'master' }), { instanceOf: CodecError });
  t.throws(() => encodeMessage({ type: 'hello', node: 'x'.repeat(65), epoch: 1, role: 'master' }), { instanceOf: CodecError });
  t.throws(() => encodeMessage({ type: 'ack', snapshotId: -1, received: 0, status: 'ok', digest: digest32 }), { instanceOf: CodecError });
  t.throws(() => encodeMessage({ type: 'ack', snapshotId: 1, received: 0, status: 'ok', digest: Buffer.alloc(3) }), { instanceOf: CodecError });
  t.throws(() => encodeMessage({ type: 'deltaRequest', generation: 1, bucketBits: 4, buckets: [] }), { instanceOf: CodecError });
  t.throws(() => encodeMessage({ type: 'digest', generation: 1, bucketBits: 2, buckets: [] }), { instanceOf: CodecError });
  t.throws(() => encodeMessage({ type: 'batch', snapshotId: 1, sequence: 0, entries: [{ ...syntheticEntry(0), cport: -1 }] }), { instanceOf: CodecError });
});

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const digestBytes = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b));
const bucketList = (bits: number) => fc.uniqueArray(fc.integer({ min: 0, max: (1 << bits) - 1 }), { minLength: 1, maxLength: Math.min(50, 1 << bits) }).map((a) => a.sort((x, y) => x - y));
const message: fc.Arbitrary<ResyncMessage> = fc.oneof(
  fc.record({ type: fc.constant('hello' as const), node: fc.string({ minLength: 1, maxLength: 16 }).filter((s) => { const n = Buffer.byteLength(s); return n >= 1 && n <= 64; }), epoch: u32, role: fc.constantFrom('master' as const, 'backup' as const) }),
  fc.record({ type: fc.constant('snapshotBegin' as const), snapshotId: u32, estimate: u32, scope: fc.constant({ kind: 'full' as const }) }),
  fc.integer({ min: 0, max: 16 }).chain((bits) => fc.record({ type: fc.constant('snapshotBegin' as const), snapshotId: u32, estimate: u32, scope: fc.record({ kind: fc.constant('buckets' as const), bucketBits: fc.constant(bits), buckets: bucketList(bits) }) })),
  fc.record({ type: fc.constant('batch' as const), snapshotId: u32, sequence: u32, entries: fc.array(connEntry, { maxLength: 20 }) }),
  fc.record({ type: fc.constant('snapshotEnd' as const), snapshotId: u32, total: u32, digest: digestBytes }),
  fc.record({ type: fc.constant('ack' as const), snapshotId: u32, received: u32, status: fc.constantFrom(...(Object.keys(ACK_STATUSES) as Array<keyof typeof ACK_STATUSES>)), digest: digestBytes }),
  fc.integer({ min: 0, max: 6 }).chain((bits) => fc.record({ type: fc.constant('digest' as const), generation: u32, bucketBits: fc.constant(bits), buckets: fc.array(fc.record({ count: u32, h1: u32, h2: u32 }), { minLength: 1 << bits, maxLength: 1 << bits }) })),
  fc.integer({ min: 0, max: 16 }).chain((bits) => fc.record({ type: fc.constant('deltaRequest' as const), generation: u32, bucketBits: fc.constant(bits), buckets: bucketList(bits) })),
);

/** A decoded message as it was sent (a BATCH's entries decoded). */
function asSent(m: ReceivedMessage): ResyncMessage {
  return m.type === 'batch' ? { ...m, entries: [...m.entries] } : m;
}

/** A BATCH as the receiver gets it. */
function received(m: BatchMessage): ReceivedBatchMessage {
  const r = decodeMessage(encodeMessage(m));
  if (!r.ok || r.value.type !== 'batch') throw new Error('batch does not decode');
  return r.value;
}

test('property: every message round-trips, and a decoded frame re-encodes to the same bytes', (t) => {
  fc.assert(
    fc.property(message, (m) => {
      const frame = encodeMessage(m);
      const r = decodeMessage(frame);
      if (!r.ok) return false;
      const back = asSent(r.value);
      return isDeepStrictEqual(back, plain(m)) && encodeMessage(back).equals(frame) && frame.readUInt32BE(4) === frame.length - 8 && frame[3] === MESSAGE_TYPES[m.type];
    }),
    { numRuns: 1000 },
  );
  t.pass();
});

test('property: random bytes and corrupted frames never throw', (t) => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => { const r = decodeMessage(b); return r.ok || RESYNC_DECODE_REASONS.includes(r.reason); }), { numRuns: 3000 });
  // A valid header in front of random bodies reaches every body decoder.
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 9 }), fc.uint8Array({ maxLength: 300 }), (type, body) => {
      const b = Buffer.concat([hex('5453 01 00 00000000'), body]);
      b[3] = type;
      b.writeUInt32BE(body.length, 4);
      decodeMessage(b);
      return true;
    }),
    { numRuns: 5000 },
  );
  fc.assert(
    fc.property(message, fc.nat(), fc.integer({ min: 0, max: 255 }), (m, at, v) => {
      const b = encodeMessage(m);
      b[at % b.length] = v;
      decodeMessage(b);
      decodeMessage(b.subarray(0, at % b.length));
      return true;
    }),
    { numRuns: 1000 },
  );
  t.pass();
});

test('murmur3 matches the reference vectors', (t) => {
  // Reference values of MurmurHash3_x86_32 (smhasher).
  t.is(murmur3(Buffer.alloc(0), 0, 0, 0), 0);
  t.is(murmur3(Buffer.alloc(0), 0, 0, 1), 0x514e28b7);
  t.is(murmur3(Buffer.from([0xff, 0xff, 0xff, 0xff]), 0, 4, 0), 0x76293b50);
  t.is(murmur3(Buffer.from([0x21, 0x43, 0x65, 0x87]), 0, 4, 0), 0xf55b516b);
  t.is(murmur3(Buffer.from([0x21, 0x43, 0x65]), 0, 3, 0), 0x7e4a8634);
  t.is(murmur3(Buffer.from('Hello, world!'), 0, 13, 1234), 0xfaf6cdb3);
});

test('property: a digest does not depend on order, and remove undoes add', (t) => {
  fc.assert(
    fc.property(fc.array(connEntry, { maxLength: 60 }), fc.integer({ min: 0, max: 8 }), (entries, bits) => {
      const a = new TableDigest(bits);
      const b = new TableDigest(bits);
      for (const e of entries) a.add(e);
      for (const e of [...entries].reverse()) b.add(e);
      const c = new TableDigest(bits);
      for (const e of entries) c.add(e);
      const extra = entries[0];
      if (extra !== undefined) {
        c.add({ ...extra, cport: (extra.cport + 1) & 0xffff });
        c.remove({ ...extra, cport: (extra.cport + 1) & 0xffff });
      }
      return a.summary().equals(b.summary()) && a.summary().equals(c.summary()) && a.size === entries.length;
    }),
    { numRuns: 300 },
  );
  t.pass();
});

test('the digest ignores timeouts, flags and fwmark but sees state, real server and identity', (t) => {
  const e = syntheticEntry(3);
  const sum = (x: ConnEntry) => {
    const d = new TableDigest(4);
    d.add(x);
    return d.summary().toString('hex');
  };
  t.is(sum({ ...e, timeoutS: 1 }), sum(e));
  t.is(sum({ ...e, flags: 0x20, fwd: 'masq', fwmark: 9 }), sum(e));
  t.not(sum({ ...e, state: 4 }), sum(e));
  t.not(sum({ ...e, daddr: '10.99.1.99' }), sum(e));
  t.not(sum({ ...e, cport: e.cport + 1 }), sum(e));
  // The bucket depends on the identity only.
  t.is(bucketOf({ ...e, state: 4, daddr: '10.99.1.99' }, 8), bucketOf(e, 8));
});

test('diffBuckets finds the bucket that drifted', (t) => {
  const a = new TableDigest(6);
  const b = new TableDigest(6);
  for (const e of syntheticEntries(5000)) {
    a.add(e);
    b.add(e);
  }
  const changed = { ...syntheticEntry(1234), state: 5 };
  b.remove(syntheticEntry(1234));
  const bucket = b.add(changed);
  t.deepEqual(diffBuckets(a.buckets(), b.buckets()), [bucket]);
  t.deepEqual(diffBuckets(a.buckets(), a.buckets()), []);
  t.is(summarizeBuckets(6, a.buckets()).toString('hex'), a.summary().toString('hex'));
  t.is(diffBuckets(a.buckets(), new TableDigest(2).buckets()).length, 64);
});

/** Runs a snapshot's frames through a receiver; `tamper` may drop or change decoded messages on the way. */
async function runSnapshot(
  entries: Iterable<ConnEntry>,
  tamper: (m: SnapshotBeginMessage | ReceivedBatchMessage | SnapshotEndMessage, i: number) => SnapshotBeginMessage | ReceivedBatchMessage | SnapshotEndMessage | undefined = (m) => m,
  receiver = new SnapshotReceiver(),
  snapshotId = 42,
): Promise<{ outputs: ReceiverOutput[]; delivered: ConnEntry[] }> {
  const outputs: ReceiverOutput[] = [];
  const delivered: ConnEntry[] = [];
  let i = 0;
  for await (const frame of snapshotFrames(entries, { snapshotId, batchEntries: 100, estimate: 1000 })) {
    const r = decodeMessage(frame);
    if (!r.ok || (r.value.type !== 'snapshotBegin' && r.value.type !== 'batch' && r.value.type !== 'snapshotEnd')) throw new Error('bad frame');
    const m = tamper(r.value, i++);
    if (m === undefined) continue;
    for (const o of receiver.handle(m)) {
      outputs.push(o);
      if (o.kind === 'entries') delivered.push(...o.entries);
    }
  }
  return { outputs, delivered };
}

const acks = (outputs: ReceiverOutput[]) => outputs.flatMap((o) => (o.kind === 'send' ? [o.message] : []));

test('snapshot: 1000 entries in 10 batches arrive in order and are acknowledged ok with the sender digest', async (t) => {
  const entries = [...syntheticEntries(1000)];
  const { outputs, delivered } = await runSnapshot(entries);
  t.deepEqual(delivered, entries);
  const expected = snapshotDigest();
  for (const e of entries) expected.add(e);
  t.deepEqual(acks(outputs), [{ type: 'ack', snapshotId: 42, received: 1000, status: 'ok', digest: expected.summary() }]);
  t.deepEqual(outputs.at(-1), { kind: 'complete', snapshotId: 42, received: 1000, status: 'ok' });
});

test('snapshot: a lost batch ends it with sequence_gap; later batches are ignored; the end gets unknown_snapshot', async (t) => {
  const { outputs } = await runSnapshot(syntheticEntries(1000), (m) => (m.type === 'batch' && m.sequence === 3 ? undefined : m));
  const a = acks(outputs);
  t.is(a[0]?.status, 'sequence_gap');
  t.is(a[0]?.received, 300);
  t.is(a[1]?.status, 'unknown_snapshot');
  t.true(outputs.some((o) => o.kind === 'abandoned'));
  // Batches 5..9 and the end: the gap was noticed at batch 4.
  t.is(outputs.filter((o) => o.kind === 'ignored').length, 5 + 1);
});

test('snapshot: a changed entry gives digest_mismatch, a wrong total count_mismatch', async (t) => {
  const changed = await runSnapshot(syntheticEntries(500), (m) => (m.type === 'batch' && m.sequence === 1 ? received({ ...m, entries: [...m.entries].map((e, i) => (i === 0 ? { ...e, state: 6 } : e)) }) : m));
  t.is(acks(changed.outputs)[0]?.status, 'digest_mismatch');
  const count = await runSnapshot(syntheticEntries(500), (m) => (m.type === 'snapshotEnd' ? { ...m, total: 501 } : m));
  t.is(acks(count.outputs)[0]?.status, 'count_mismatch');
});

test('snapshot: a new SNAPSHOT_BEGIN supersedes the one in progress with an aborted ACK', async (t) => {
  const receiver = new SnapshotReceiver();
  const first = await runSnapshot(syntheticEntries(300), (m) => (m.type === 'snapshotEnd' ? undefined : m), receiver, 1);
  t.is(acks(first.outputs).length, 0);
  t.is(receiver.activeSnapshot, 1);
  const second = await runSnapshot(syntheticEntries(300), (m) => m, receiver, 2);
  const a = acks(second.outputs);
  t.deepEqual(a.map((x) => [x.snapshotId, x.status, x.received]), [[1, 'aborted', 300], [2, 'ok', 300]]);
  t.deepEqual(receiver.abandon('closing'), []);
});

test('snapshot: a bucket scope sends only the entries of those buckets', async (t) => {
  const entries = [...syntheticEntries(2000)];
  const scope = { kind: 'buckets' as const, bucketBits: 4, buckets: [2, 9] };
  const sent: ConnEntry[] = [];
  for await (const frame of snapshotFrames(entries, { snapshotId: 7, scope })) {
    const r = decodeMessage(frame);
    if (r.ok && r.value.type === 'batch') sent.push(...r.value.entries);
    if (r.ok && r.value.type === 'snapshotBegin') t.deepEqual(r.value.scope, scope);
  }
  t.deepEqual(sent, entries.filter((e) => [2, 9].includes(bucketOf(e, 4))));
  t.true(sent.length > 100 && sent.length < 400);
});

test('property: a BATCH digested in its wire form equals the digest of its decoded entries', (t) => {
  fc.assert(
    fc.property(fc.array(connEntry, { maxLength: 60 }), fc.integer({ min: 0, max: 16 }), (entries, bits) => {
      const r = decodeMessage(encodeMessage({ type: 'batch', snapshotId: 3, sequence: 0, entries }));
      if (!r.ok || r.value.type !== 'batch') return false;
      const fromObjects = new TableDigest(bits);
      for (const e of entries) fromObjects.add(e);
      const fromBytes = new TableDigest(bits);
      fromBytes.addEncoded(r.value.entries);
      return fromBytes.size === entries.length && fromBytes.summary().equals(fromObjects.summary());
    }),
    { numRuns: 300 },
  );
  t.pass();
});
