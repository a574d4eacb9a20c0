/**
 * The sync service (src/sync/service.ts) between two directors over real ZeroMQ CURVE sockets on loopback,
 * with in-memory tables standing in for the kernels (the sink of one writes into its table, as injection
 * does): a director that joins gets the master's whole table and releases its preemption hold on the
 * acknowledgement; entries lost afterwards are found by the digest round, reported as missing, and repaired
 * by a bucket resync; a peer that never answers releases the hold at resync_timeout; a peer whose kernel
 * stalls mid-resync makes the stream fail within the send timeout while the sender's event loop keeps running;
 * malformed sync datagrams are counted.
 */

import test from 'ava';
import { FakeClock, SystemClock } from '../../src/lib/clock.ts';
import { MemoryLogger } from '../../src/lib/log.ts';
import { SyncClient, SyncServer } from '../../src/sync/channel.ts';
import type { ChannelNode } from '../../src/sync/channel.ts';
import { connKey } from '../../src/sync/conn.ts';
import type { ConnEntry } from '../../src/sync/conn.ts';
import { TableDigest } from '../../src/sync/digest.ts';
import { generateKeyPair } from '../../src/sync/keys.ts';
import { SyncService, compareDigest } from '../../src/sync/service.ts';
import type { SyncServiceEvent } from '../../src/sync/service.ts';
import { syncDatagrams } from '../../src/sync/sync-v1.ts';
import { syntheticEntries, syntheticEntry } from '../../src/sync/synthetic.ts';

async function waitFor(what: string, cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A director's kernel table as a Map; its sink inserts (as the backup thread does for injected entries). */
class MemoryTable {
  readonly rows = new Map<string, ConnEntry>();
  stall: Promise<void> | undefined;
  constructor(entries: Iterable<ConnEntry> = []) {
    for (const e of entries) this.rows.set(connKey(e), e);
  }
  async *entries(): AsyncGenerator<ConnEntry, void, undefined> {
    for (const e of [...this.rows.values()]) yield e;
  }
  async inject(entries: Iterable<ConnEntry>): Promise<void> {
    if (this.stall !== undefined) await this.stall;
    for (const e of entries) this.rows.set(connKey(e), e);
  }
}

interface Director {
  name: string;
  table: MemoryTable;
  service: SyncService;
  events: SyncServiceEvent[];
  holds: Array<[boolean, string]>;
  clock: FakeClock;
  server: SyncServer;
  client: SyncClient;
}

type Keys = ReturnType<typeof generateKeyPair>;

async function director(
  name: string,
  keys: Keys,
  peerKeys: Keys,
  table: MemoryTable,
  opts: { peerEndpoint?: string; resyncTimeoutMs?: number; sendTimeoutMs?: number } = {},
): Promise<Director> {
  const clock = new FakeClock();
  const node: ChannelNode = { name, epoch: 1, role: 'backup' };
  const holds: Array<[boolean, string]> = [];
  const service = new SyncService(
    { table, sink: table, clock, logger: new MemoryLogger(), node, setPreemptHold: (h, r) => holds.push([h, r]) },
    { resyncTimeoutMs: opts.resyncTimeoutMs ?? 30_000, repairIntervalMs: 60_000, verifyDelayMs: 2000 },
  );
  const events: SyncServiceEvent[] = [];
  service.events.on((e) => events.push(e));
  const server = await SyncServer.listen({
    endpoint: 'tcp://127.0.0.1:*',
    keys,
    allowedPeers: [peerKeys.publicKey],
    node,
    clock: new SystemClock(),
    ...(opts.sendTimeoutMs !== undefined ? { tuning: { sendTimeoutMs: opts.sendTimeoutMs, highWaterMark: 4 } } : {}),
  });
  const client = SyncClient.connect({
    endpoint: opts.peerEndpoint ?? 'tcp://127.0.0.1:1',
    serverPublicKey: peerKeys.publicKey,
    keys,
    node,
    onEntries: (entries, id) => service.receiveEntries(entries, id),
    ...(opts.sendTimeoutMs !== undefined ? { tuning: { highWaterMark: 4 } } : {}),
  });
  service.attach(server, client);
  return { name, table, service, events, holds, clock, server, client };
}

/** Two directors: A (master, `masterEntries`) already up; B joins with an empty table and connects to A. */
async function pair(masterEntries: number, opts: { sendTimeoutMs?: number } = {}) {
  const ka = generateKeyPair();
  const kb = generateKeyPair();
  const a = await director('dirA', ka, kb, new MemoryTable(syntheticEntries(masterEntries)), opts);
  a.service.setMaster(true);
  a.service.start();
  const b = await director('dirB', kb, ka, new MemoryTable(), { ...opts, peerEndpoint: a.server.endpoint });
  b.service.start();
  return { a, b, ka, kb, stop: async () => Promise.all([a.service.stop(), b.service.stop()]) };
}

test('a joining director gets the master table, injects it, and releases its preemption hold on the ACK', async (t) => {
  const { a, b, stop } = await pair(5000);
  try {
    t.deepEqual(b.holds[0], [true, 'waiting for the connection table from the peer']);
    await waitFor('B released its hold', () => b.holds.length === 2);
    t.deepEqual(b.holds[1], [false, 'resync complete (5000 entries)']);
    t.is(b.table.rows.size, 5000);
    t.deepEqual([...b.table.rows.keys()].sort(), [...a.table.rows.keys()].sort());
    const got = b.events.find((e) => e.type === 'resync_received');
    t.like(got, { received: 5000, status: 'ok', scope: 'full' });
    t.true(b.events.some((e) => e.type === 'resync_progress'), 'progress is reported batch by batch');
    await waitFor('A saw the ACK', () => a.events.some((e) => e.type === 'resync_sent'));
    t.like(a.events.find((e) => e.type === 'resync_sent'), { entries: 5000, status: 'ok', node: 'dirB', scope: 'full' });
    t.false(b.service.holding);
  } finally {
    await stop();
  }
});

test('repair: entries lost on the backup are counted as missing by the digest round and restored', async (t) => {
  const { a, b, stop } = await pair(3000);
  try {
    await waitFor('full resync', () => b.table.rows.size === 3000 && a.events.some((e) => e.type === 'resync_sent'));
    // 37 entries vanish from B's kernel (sync datagrams lost, say); 1 entry B has that A does not.
    const lost = [...b.table.rows.keys()].filter((_, i) => i % 81 === 0);
    for (const k of lost) b.table.rows.delete(k);
    const stray = syntheticEntry(900_000);
    b.table.rows.set(connKey(stray), stray);
    a.clock.advance(2000); // the verification DIGEST after the full resync
    await waitFor('repair checked', () => b.events.some((e) => e.type === 'repair_checked'));
    const check = b.events.find((e) => e.type === 'repair_checked');
    t.like(check, { missing: lost.length, extra: 1 });
    await waitFor('repair applied', () => lost.every((k) => b.table.rows.has(k)));
    await waitFor('repair acknowledged', () => a.events.some((e) => e.type === 'resync_sent' && e.scope === 'buckets'));
    const repair = a.events.find((e) => e.type === 'resync_sent' && e.scope === 'buckets');
    t.true(repair !== undefined && repair.type === 'resync_sent' && repair.entries >= lost.length && repair.entries < 3000, 'only the differing buckets were sent');
    // The next round finds nothing missing.
    b.events.length = 0;
    a.clock.advance(60_000);
    await waitFor('second check', () => b.events.some((e) => e.type === 'repair_checked'));
    t.like(b.events.find((e) => e.type === 'repair_checked'), { missing: 0 });
  } finally {
    await stop();
  }
});

test('no peer answers: the hold is released at resync_timeout', async (t) => {
  const k = generateKeyPair();
  const d = await director('dirB', k, generateKeyPair(), new MemoryTable(), { resyncTimeoutMs: 30_000 });
  try {
    d.service.start();
    d.clock.advance(29_999);
    t.true(d.service.holding);
    d.clock.advance(1);
    t.false(d.service.holding);
    t.deepEqual(d.holds, [[true, 'waiting for the connection table from the peer'], [false, 'no full resync within resync_timeout (30000 ms)']]);
  } finally {
    await d.service.stop();
  }
});

test('becoming master releases the hold and streams to peers that said hello meanwhile', async (t) => {
  const ka = generateKeyPair();
  const kb = generateKeyPair();
  const a = await director('dirA', ka, kb, new MemoryTable(syntheticEntries(500)));
  a.service.start();
  const b = await director('dirB', kb, ka, new MemoryTable(), { peerEndpoint: a.server.endpoint });
  b.service.start();
  try {
    await waitFor('B said hello to A', () => a.events.some((e) => e.type === 'channel' && e.event.type === 'hello'));
    await new Promise((r) => setTimeout(r, 200));
    t.is(b.table.rows.size, 0, 'a backup does not stream');
    a.service.setMaster(true);
    t.false(a.service.holding);
    await waitFor('B got the table', () => b.table.rows.size === 500);
    await waitFor('B released', () => !b.service.holding);
  } finally {
    await Promise.all([a.service.stop(), b.service.stop()]);
  }
});

test('a peer whose kernel stalls mid-resync: the stream fails within the send timeout; the sender loop never blocks', async (t) => {
  const ka = generateKeyPair();
  const kb = generateKeyPair();
  const a = await director('dirA', ka, kb, new MemoryTable(syntheticEntries(200_000)), { sendTimeoutMs: 1500 });
  a.service.setMaster(true);
  a.service.start();
  const table = new MemoryTable();
  let release: () => void = () => {};
  table.stall = new Promise((r) => (release = r));
  const b = await director('dirB', kb, ka, table, { peerEndpoint: a.server.endpoint, sendTimeoutMs: 1500 });
  b.service.start();
  let maxGap = 0;
  let last = performance.now();
  const ticker = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
  }, 5);
  try {
    await waitFor('the stream failed', () => a.events.some((e) => e.type === 'resync_send_failed'), 30_000);
    const failed = a.events.find((e) => e.type === 'resync_send_failed');
    t.regex(failed?.type === 'resync_send_failed' ? failed.error : '', /has not read for 1500 ms/);
    // Under a loaded machine timers are late anyway; a sender that blocked on the stalled peer would stall for
    // the whole 1500 ms send timeout, so 1000 ms still tells the two apart.
    t.true(maxGap < 1000, `the sending director's event loop stalled at most ${maxGap.toFixed(0)} ms`);
    t.true(b.service.holding, 'B still holds (it has no complete table)');
    b.clock.advance(30_000);
    t.false(b.service.holding, 'resync_timeout bounds the hold');
  } finally {
    clearInterval(ticker);
    release();
    await Promise.all([a.service.stop(), b.service.stop()]);
  }
});

test('sync datagrams seen on the group are counted; malformed ones by reason', async (t) => {
  const d = await director('dirB', generateKeyPair(), generateKeyPair(), new MemoryTable());
  try {
    const [good] = [...syncDatagrams(syntheticEntries(10), { syncId: 5 })];
    d.service.observeSyncDatagram(good!);
    d.service.observeSyncDatagram(Buffer.concat([good!, Buffer.alloc(4)]));
    d.service.observeSyncDatagram(Buffer.from([1, 2, 3]));
    t.deepEqual(
      d.events.filter((e) => e.type === 'sync_datagram' || e.type === 'sync_datagram_malformed').map((e) => (e.type === 'sync_datagram' ? `ok ${e.entries}` : `bad ${e.reason}`)),
      ['ok 10', 'bad bad_size', 'bad too_short'],
    );
  } finally {
    await d.service.stop();
  }
});

test('compareDigest counts missing and extra entries per differing bucket', (t) => {
  const master = new TableDigest(4);
  const local = new TableDigest(4);
  for (const e of syntheticEntries(100)) master.add(e);
  for (const e of syntheticEntries(90)) local.add(e);
  for (const e of syntheticEntries(3, 5000)) local.add(e);
  const cmp = compareDigest({ type: 'digest', generation: 1, bucketBits: 4, buckets: master.buckets() }, local);
  t.is(cmp.missing - cmp.extra, 100 - 93);
  t.true(cmp.missing >= 10 - 3 && cmp.missing <= 10);
  t.true(cmp.buckets.length > 0);
});

test('a peer that reconnects in the same run is not streamed the table again; a restarted one (new epoch) is', async (t) => {
  const { a, ka, kb, stop } = await pair(300);
  const extra: SyncClient[] = [];
  try {
    await waitFor('first resync', () => a.events.filter((e) => e.type === 'resync_sent').length === 1);
    const hellos = () => a.events.filter((e) => e.type === 'channel' && e.event.type === 'hello').length;
    const connect = (epoch: number) => {
      const c = SyncClient.connect({
        endpoint: a.server.endpoint,
        serverPublicKey: ka.publicKey,
        keys: kb,
        node: { name: 'dirB', epoch, role: 'backup' },
      });
      extra.push(c);
    };
    const before = hellos();
    connect(1); // same epoch as B's first connection: a reconnect of the same run
    await waitFor('hello of the reconnect', () => hellos() === before + 1);
    await new Promise((r) => setTimeout(r, 300));
    t.is(a.events.filter((e) => e.type === 'resync_sent').length, 1, 'no second full resync');
    connect(2); // a restarted dirB
    await waitFor('second resync', () => a.events.filter((e) => e.type === 'resync_sent').length === 2);
    t.pass();
  } finally {
    for (const c of extra) c.close();
    await stop();
  }
});
