/**
 * Tests of the injector (src/sync/injector.ts) against a recording sink and a fake clock: datagrams respect the
 * backup thread's maxlen and the 255-entry limit and decode back to the entries, the token bucket paces them,
 * entries that cannot be encoded are counted and skipped, a socket error rejects that injection only.
 */

import test from 'ava';
import { FakeClock } from '../../src/lib/clock.ts';
import { SyncInjector } from '../../src/sync/injector.ts';
import type { DatagramSink, InjectorEvent } from '../../src/sync/injector.ts';
import type { BacklogProbe, SocketBacklog } from '../../src/sync/backlog.ts';
import { connKey, decodeSyncMessage, syntheticEntries, syntheticEntry } from '../../src/sync/index.ts';
import type { ConnEntry } from '../../src/sync/index.ts';

class RecordingSink implements DatagramSink {
  readonly sent: Array<{ at: number; datagram: Buffer }> = [];
  failAfter = Infinity;
  constructor(private readonly clock: FakeClock) {}
  async send(datagram: Buffer): Promise<void> {
    if (this.sent.length >= this.failAfter) throw new Error('sendmsg: ENOBUFS');
    this.sent.push({ at: this.clock.now(), datagram });
  }
  close(): void {}
}

/** Runs `p` to completion, advancing the fake clock 1 ms whenever nothing else is pending. */
async function drive<T>(clock: FakeClock, p: Promise<T>): Promise<T> {
  let done = false;
  const out = p.finally(() => {
    done = true;
  });
  out.catch(() => undefined);
  for (let i = 0; i < 100_000 && !done; i++) {
    await new Promise((r) => setImmediate(r));
    if (!done) clock.advance(1);
  }
  return out;
}

test('datagrams fit the backup maxlen and 255 entries, and decode back to every entry in order', async (t) => {
  const clock = new FakeClock();
  const sink = new RecordingSink(clock);
  const inj = new SyncInjector(sink, clock, { syncId: 51, maxLen: 1200, datagramsPerSecond: 1e9, burst: 1e6 });
  const entries = [...syntheticEntries(3000)];
  const r = await drive(clock, inj.inject(entries));
  t.is(r.entries, 3000);
  t.is(r.datagrams, sink.sent.length);
  const back: ConnEntry[] = [];
  for (const { datagram } of sink.sent) {
    t.true(datagram.length <= 1200);
    const m = decodeSyncMessage(datagram);
    if (!m.ok) return t.fail(m.detail);
    t.is(m.value.syncId, 51);
    t.true(m.value.entries.length <= 255);
    back.push(...m.value.entries);
  }
  t.deepEqual(back.map(connKey), entries.map(connKey));
});

test('the token bucket paces datagrams: a burst at once, then one per 1/rate', async (t) => {
  const clock = new FakeClock();
  const sink = new RecordingSink(clock);
  const inj = new SyncInjector(sink, clock, { syncId: 1, datagramsPerSecond: 1000, burst: 4 });
  // 40 IPv4 entries per 1472-byte datagram: 400 entries (no IPv6 among the first 19 of every 20) ~ 11 datagrams.
  const r = await drive(clock, inj.inject(syntheticEntries(400)));
  const times = sink.sent.map((s) => s.at);
  t.deepEqual(times.slice(0, 4), [0, 0, 0, 0], 'the burst goes at once');
  for (let i = 5; i < times.length; i++) t.true(times[i]! - times[i - 1]! >= 1, `datagram ${i} waited for a token`);
  t.true(r.durationMs >= r.datagrams - 4 - 1, `${r.datagrams} datagrams at 1000/s with a burst of 4 took ${r.durationMs} ms`);
});

test('entries that cannot be encoded are counted, reported and skipped; the rest go out', async (t) => {
  const clock = new FakeClock();
  const sink = new RecordingSink(clock);
  const inj = new SyncInjector(sink, clock, { syncId: 1, datagramsPerSecond: 1e9, burst: 1e6 });
  const events: InjectorEvent[] = [];
  inj.events.on((e) => events.push(e));
  const bad = { ...syntheticEntry(1), caddr: 'not-an-address' };
  const r = await drive(clock, inj.inject([syntheticEntry(0), bad, { ...syntheticEntry(2), cport: 70000 }, syntheticEntry(3)]));
  t.is(r.entries, 2);
  t.is(r.rejected, 2);
  t.is(events.filter((e) => e.type === 'inject_rejected').length, 2);
});

test('a socket error rejects that injection and the next one still runs', async (t) => {
  const clock = new FakeClock();
  const sink = new RecordingSink(clock);
  sink.failAfter = 1;
  const inj = new SyncInjector(sink, clock, { syncId: 1, datagramsPerSecond: 1e9, burst: 1e6 });
  const events: InjectorEvent[] = [];
  inj.events.on((e) => events.push(e));
  await t.throwsAsync(drive(clock, inj.inject(syntheticEntries(200))), { message: /ENOBUFS/ });
  t.true(events.some((e) => e.type === 'inject_error'));
  sink.failAfter = Infinity;
  const r = await drive(clock, inj.inject(syntheticEntries(10)));
  t.is(r.entries, 10);
});

/**
 * A backup socket model: every datagram sent adds its length twice (its sk_buff) to the queue; the kernel
 * thread drains `drainPerMs` bytes per fake millisecond; beyond `capacity` a datagram is dropped and counted.
 */
class SocketModel implements BacklogProbe, DatagramSink {
  queued = 0;
  drops = 0;
  reads = 0;
  private last: number;
  constructor(private readonly clock: FakeClock, readonly capacity: number, private readonly drainPerMs: number) {
    this.last = clock.now();
  }
  private drain(): void {
    const now = this.clock.now();
    this.queued = Math.max(0, this.queued - (now - this.last) * this.drainPerMs);
    this.last = now;
  }
  async send(datagram: Buffer): Promise<void> {
    this.drain();
    if (this.queued + 2 * datagram.length > this.capacity) this.drops++;
    else this.queued += 2 * datagram.length;
  }
  async read(): Promise<SocketBacklog> {
    this.drain();
    this.reads++;
    return { queuedBytes: this.queued, capacityBytes: this.capacity, drops: this.drops };
  }
  close(): void {}
}

test('with a backlog probe a slow kernel thread loses nothing: the injector waits for room; without, it drops', async (t) => {
  const entries = [...syntheticEntries(20_000)];
  // 1 MiB socket drained at 3 MB/s: the token bucket alone (20,000 datagrams/s, ~29 MB/s) overruns it.
  const slow = (clock: FakeClock) => new SocketModel(clock, 1 << 20, 3000);
  const clockA = new FakeClock();
  const blind = slow(clockA);
  const rA = await drive(clockA, new SyncInjector(blind, clockA, { syncId: 1 }).inject(entries));
  t.true(blind.drops > 0, `without the probe the socket dropped ${blind.drops} of ${rA.datagrams} datagrams`);
  t.is(rA.kernelDrops, undefined);

  const clockB = new FakeClock();
  const paced = slow(clockB);
  const rB = await drive(clockB, new SyncInjector(paced, clockB, { syncId: 1, backlog: paced }).inject(entries));
  t.is(paced.drops, 0);
  t.is(rB.kernelDrops, 0);
  t.is(rB.entries, entries.length);
  t.true(rB.backlogWaitMs > 0 && paced.reads > 2, `waited ${rB.backlogWaitMs} ms over ${paced.reads} probe reads`);
});

test('the backlog wait is bounded and the drops the kernel counted meanwhile are reported', async (t) => {
  const clock = new FakeClock();
  // A socket that never drains: every wait runs to maxBacklogWaitMs, then the injector sends anyway.
  const stuck = new SocketModel(clock, 64 * 1024, 0);
  const r = await drive(clock, new SyncInjector(stuck, clock, { syncId: 1, burst: 8, maxBacklogWaitMs: 50 }).inject(syntheticEntries(2000)));
  t.true(r.datagrams > 16);
  const r2 = await drive(clock, new SyncInjector(stuck, clock, { syncId: 1, burst: 8, maxBacklogWaitMs: 50, backlog: stuck }).inject(syntheticEntries(2000)));
  t.true(r2.backlogWaitMs >= 50 && r2.backlogWaitMs <= 52 * (r2.datagrams + 1), `waited ${r2.backlogWaitMs} ms for ${r2.datagrams} datagrams: at most 50 ms per burst`);
  t.true(r2.kernelDrops !== undefined && r2.kernelDrops > 0 && r2.kernelDrops <= r2.datagrams, `${String(r2.kernelDrops)} of ${r2.datagrams} datagrams of the second injection seen dropped by the full socket`);
});
