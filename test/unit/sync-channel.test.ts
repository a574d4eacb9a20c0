/**
 * The sync channel (src/sync/channel.ts) with real ZeroMQ sockets on loopback (tcp://127.0.0.1, random ports):
 * a 100k-entry snapshot streamed and acknowledged with the right count and digest; peers without CURVE, with a
 * key pair not on the allowlist, or expecting another server key, refused and counted with nothing delivered;
 * malformed frames counted on both ends without harm; a peer that stops reading abandoned within the send
 * timeout while another peer is served meanwhile and afterwards; ACK and idle timeouts; reconnection to a
 * restarted server; the DIGEST / DELTA_REQUEST repair round.
 *
 * Raw zeromq sockets play the misbehaving peers (the project's own code imports zeromq only in channel.ts).
 */

import test from 'ava';
import { Dealer, Router } from 'zeromq';
import { FakeClock } from '../../src/lib/clock.ts';
import { SyncClient, SyncServer } from '../../src/sync/channel.ts';
import type { ChannelNode, SyncChannelEvent, SyncServerOptions } from '../../src/sync/channel.ts';
import type { ConnEntry } from '../../src/sync/conn.ts';
import { TableDigest, bucketOf, diffBuckets } from '../../src/sync/digest.ts';
import { SyncError } from '../../src/sync/errors.ts';
import { generateKeyPair } from '../../src/sync/keys.ts';
import type { CurveKeyPair } from '../../src/sync/keys.ts';
import { decodeMessage, encodeMessage } from '../../src/sync/resync-protocol.ts';
import { snapshotDigest, snapshotFrames } from '../../src/sync/snapshot.ts';
import { syntheticEntries } from '../../src/sync/synthetic.ts';
import type { EncodedEntries } from '../../src/sync/sync-v1.ts';

const MASTER: ChannelNode = { name: 'dirA', epoch: 1700000000, role: 'master' };
const BACKUP: ChannelNode = { name: 'dirB', epoch: 1700000001, role: 'backup' };
const LOOPBACK = 'tcp://127.0.0.1:*';

async function waitFor(what: string, cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function nextEvent<T extends SyncChannelEvent['type']>(
  emitter: { on(l: (e: SyncChannelEvent) => void): () => void },
  type: T,
  timeoutMs = 20_000,
): Promise<Extract<SyncChannelEvent, { type: T }>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${type} event within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = emitter.on((e) => {
      if (e.type === type) {
        clearTimeout(timer);
        off();
        resolve(e as Extract<SyncChannelEvent, { type: T }>);
      }
    });
  });
}

interface Pair {
  serverKeys: CurveKeyPair;
  clientKeys: CurveKeyPair;
  server: SyncServer;
}

async function startServer(extra: Partial<SyncServerOptions> = {}, allowed: CurveKeyPair[] = [generateKeyPair()]): Promise<Pair> {
  const serverKeys = generateKeyPair();
  const server = await SyncServer.listen({
    endpoint: LOOPBACK, keys: serverKeys, allowedPeers: allowed.map((k) => k.publicKey), node: MASTER, ...extra,
  });
  return { serverKeys, clientKeys: allowed[0]!, server };
}

/** A client that counts and digests what it receives. */
function startClient(p: Pair, opts: { keys?: CurveKeyPair; serverPublicKey?: string; node?: ChannelNode; onEntries?: (n: number) => void | Promise<void>; tuning?: Parameters<typeof SyncClient.connect>[0]['tuning'] } = {}) {
  const got = { entries: 0, digest: snapshotDigest() };
  const client = SyncClient.connect({
    endpoint: p.server.endpoint,
    serverPublicKey: opts.serverPublicKey ?? p.serverKeys.publicKey,
    keys: opts.keys ?? p.clientKeys,
    node: opts.node ?? BACKUP,
    ...(opts.tuning !== undefined ? { tuning: opts.tuning } : {}),
    onEntries: (entries: EncodedEntries) => {
      got.entries += entries.length;
      for (const e of entries) got.digest.add(e);
      return opts.onEntries?.(entries.length);
    },
  });
  return { client, got };
}

test('a 100k-entry snapshot streams over CURVE and is acknowledged with the right count and digest', async (t) => {
  const p = await startServer();
  const hello = nextEvent(p.server.events, 'hello');
  const { client, got } = startClient(p);
  try {
    const h = await hello;
    t.like(h, { node: 'dirB', epoch: 1700000001, role: 'backup' });
    await waitFor('the server HELLO at the client', () => client.server !== undefined);
    t.deepEqual(client.server, { node: 'dirA', epoch: 1700000000, role: 'master' });
    const received = nextEvent(client.events, 'snapshotReceived', 60_000);
    const started = performance.now();
    const r = await p.server.sendSnapshot(h.peer, syntheticEntries(100_000), { estimate: 100_000 });
    const ms = performance.now() - started;
    t.log(`100k entries: ${ms.toFixed(0)} ms, ${Math.round(100_000 / (ms / 1000))} entries/s`);
    t.true(r.ok);
    t.is(r.total, 100_000);
    t.is(r.batches, 100);
    t.is(r.ack.received, 100_000);
    t.is(r.ack.status, 'ok');
    const expected = snapshotDigest();
    for (const e of syntheticEntries(100_000)) expected.add(e);
    t.deepEqual(r.ack.digest, expected.summary());
    t.deepEqual(r.digest, expected.summary());
    t.is(got.entries, 100_000);
    t.deepEqual(got.digest.summary(), expected.summary());
    t.like(await received, { received: 100_000, status: 'ok' });
    t.is(p.server.stats.malformed, 0);
    t.is(client.stats.malformed, 0);
    t.is(p.server.stats.zapAllowed, 1);
    t.is(p.server.stats.snapshotsSent, 1);
  } finally {
    client.close();
    await p.server.close();
  }
});

test('unauthenticated peers are refused and counted, and nothing reaches them', async (t) => {
  const p = await startServer();
  const stranger = generateKeyPair();
  const denied = nextEvent(p.server.events, 'zapDenied');
  // 1. A valid key pair that is not on the allowlist: ZAP says 400.
  const outsider = startClient(p, { keys: stranger });
  // 2. No CURVE at all: the handshake fails (mechanism mismatch).
  const plain = new Dealer({ receiveTimeout: 1500, sendTimeout: 1000, linger: 0 });
  plain.connect(p.server.endpoint);
  // 3. The allowlisted key, but expecting another server key (a man in the middle would look like this).
  const wrongServer = startClient(p, { serverPublicKey: generateKeyPair().publicKey });
  try {
    t.like(await denied, { publicKey: stranger.publicKey, detail: 'public key not on the allowlist' });
    // Queued while the handshake is attempted, or refused outright (EAGAIN) between attempts: either way it must not arrive.
    await plain.send(encodeMessage({ type: 'hello', node: 'mallory', epoch: 1, role: 'backup' })).catch(() => {});
    await t.throwsAsync(plain.receive(), { code: 'EAGAIN' });
    await waitFor('three refused handshakes', () => p.server.stats.handshakeFailures >= 3);
    await waitFor('the outsider to see its refusal', () => outsider.client.stats.handshakeFailures >= 1);
    t.true(p.server.stats.zapDenied >= 1);
    t.is(p.server.stats.zapAllowed, 0);
    t.is(p.server.stats.framesIn, 0);
    t.deepEqual(p.server.peers(), []);
    t.is(outsider.client.stats.framesIn, 0);
    t.is(wrongServer.client.stats.framesIn, 0);
    t.is(outsider.got.entries + wrongServer.got.entries, 0);
    t.is(outsider.client.server, undefined);
  } finally {
    plain.close();
    outsider.client.close();
    wrongServer.client.close();
    await p.server.close();
  }
});

test('malformed frames from an authenticated peer are rejected and counted; the server keeps serving', async (t) => {
  const p = await startServer();
  const raw = new Dealer({
    curveServerKey: p.serverKeys.publicKey, curvePublicKey: p.clientKeys.publicKey, curveSecretKey: p.clientKeys.secretKey,
    receiveTimeout: 20_000, sendTimeout: 5000, linger: 0,
  });
  raw.connect(p.server.endpoint);
  try {
    await raw.send(Buffer.from('garbage!garbage!'));
    await raw.send([encodeMessage({ type: 'hello', node: 'x', epoch: 1, role: 'backup' }), Buffer.from('extra')]);
    const truncated = encodeMessage({ type: 'hello', node: 'dirB', epoch: 1, role: 'backup' }).subarray(0, 10);
    await raw.send(truncated);
    await raw.send(Buffer.alloc(0));
    await raw.send(encodeMessage({ type: 'snapshotBegin', snapshotId: 1, estimate: 0, scope: { kind: 'full' } }));
    await raw.send(encodeMessage({ type: 'ack', snapshotId: 99, received: 0, status: 'ok', digest: Buffer.alloc(32) }));
    await waitFor('six malformed frames', () => p.server.stats.malformed >= 6);
    t.deepEqual(p.server.stats.malformedByReason, { bad_magic: 1, frame_count: 1, bad_length: 1, too_short: 1, unexpected: 1, stray_ack: 1 });
    // Still serving: a proper HELLO gets the server's HELLO back, and a snapshot goes through.
    const hello = nextEvent(p.server.events, 'hello');
    await raw.send(encodeMessage({ type: 'hello', node: 'dirB', epoch: 2, role: 'backup' }));
    const [reply] = await raw.receive();
    const decoded = decodeMessage(reply!);
    t.like(decoded.ok ? decoded.value : {}, { type: 'hello', node: 'dirA', role: 'master' });
    const peer = (await hello).peer;
    const done = p.server.sendSnapshot(peer, syntheticEntries(10));
    const frames: Buffer[] = [];
    for (let i = 0; i < 3; i++) frames.push((await raw.receive())[0]!);
    t.deepEqual(frames.map((f) => (decodeMessage(f).ok ? (decodeMessage(f) as { value: { type: string } }).value.type : 'bad')), ['snapshotBegin', 'batch', 'snapshotEnd']);
    const end = decodeMessage(frames[2]!);
    if (!end.ok || end.value.type !== 'snapshotEnd') throw new Error('no end');
    await raw.send(encodeMessage({ type: 'ack', snapshotId: end.value.snapshotId, received: 10, status: 'ok', digest: end.value.digest }));
    t.true((await done).ok);
  } finally {
    raw.close();
    await p.server.close();
  }
});

test('malformed frames from a server are rejected and counted by the client, which still takes a snapshot', async (t) => {
  // A fake server: a CURVE ROUTER without ZAP (libzmq then accepts any client key).
  const keys = generateKeyPair();
  const clientKeys = generateKeyPair();
  const fake = new Router({ curveServer: true, curveSecretKey: keys.secretKey, curvePublicKey: keys.publicKey, linger: 0, receiveTimeout: 20_000 });
  await fake.bind(LOOPBACK);
  const got: ConnEntry[] = [];
  const client = SyncClient.connect({
    endpoint: fake.lastEndpoint!, serverPublicKey: keys.publicKey, keys: clientKeys, node: BACKUP,
    onEntries: (e) => void got.push(...e),
  });
  try {
    const [id, helloFrame] = await fake.receive();
    t.like(decodeMessage(helloFrame!), { ok: true, value: { type: 'hello', node: 'dirB' } });
    await fake.send([id!, Buffer.from('nonsense')]);
    await fake.send([id!, Buffer.from('a'), Buffer.from('b')]);
    await fake.send([id!, encodeMessage({ type: 'ack', snapshotId: 1, received: 0, status: 'ok', digest: Buffer.alloc(32) })]);
    await fake.send([id!, encodeMessage({ type: 'batch', snapshotId: 5, sequence: 0, entries: [] })]);
    const bad = encodeMessage({ type: 'batch', snapshotId: 5, sequence: 0, entries: [...syntheticEntries(2)] });
    bad[20] = 9;
    await fake.send([id!, bad]);
    await waitFor('five malformed frames', () => client.stats.malformed >= 5);
    t.deepEqual(client.stats.malformedByReason, { bad_magic: 1, frame_count: 1, unexpected: 1, stray_batch: 1, bad_entry: 1 });
    for await (const frame of snapshotFrames(syntheticEntries(250), { snapshotId: 77, batchEntries: 100 })) await fake.send([id!, frame]);
    const [, ackFrame] = await fake.receive();
    t.like(decodeMessage(ackFrame!), { ok: true, value: { type: 'ack', snapshotId: 77, received: 250, status: 'ok' } });
    t.deepEqual(got, [...syntheticEntries(250)]);
  } finally {
    client.close();
    fake.close();
  }
});

test('a peer that stops reading mid-resync is abandoned within the send timeout; other peers are served meanwhile and after', async (t) => {
  const stalledKeys = generateKeyPair();
  const healthyKeys = generateKeyPair();
  const sendTimeoutMs = 5000;
  const p = await startServer({ tuning: { sendTimeoutMs, highWaterMark: 4, socketBufferBytes: 64 * 1024 } }, [stalledKeys, healthyKeys]);
  // The stalled peer takes its first batch and then never returns from onEntries: it stops reading its socket.
  let release: () => void = () => {};
  const never = new Promise<void>((r) => (release = r));
  const helloStalled = nextEvent(p.server.events, 'hello');
  const stalled = startClient(p, { keys: stalledKeys, onEntries: () => never, tuning: { highWaterMark: 2, socketBufferBytes: 16 * 1024 } });
  let healthy: ReturnType<typeof startClient> | undefined;
  try {
    const stalledPeer = (await helloStalled).peer;
    const abandoned = nextEvent(p.server.events, 'snapshotAbandoned', 60_000);
    const t0 = performance.now();
    let failedAt = 0;
    const stream = p.server.sendSnapshot(stalledPeer, syntheticEntries(300_000)).finally(() => (failedAt = performance.now()));
    stream.catch(() => {});
    await waitFor('the stalled peer to take a batch', () => stalled.got.entries > 0);
    // Meanwhile another peer connects and gets a whole snapshot.
    const helloHealthy = nextEvent(p.server.events, 'hello');
    healthy = startClient(p, { keys: healthyKeys, node: { ...BACKUP, name: 'dirC' } });
    const healthyPeer = (await helloHealthy).peer;
    const during = await p.server.sendSnapshot(healthyPeer, syntheticEntries(10_000));
    const healthyDoneAt = performance.now();
    t.true(during.ok);
    const e = await t.throwsAsync(stream, { instanceOf: SyncError });
    t.is(e?.kind, 'peer_stalled');
    t.regex(e?.message ?? '', /has not read for 5000 ms/);
    t.like(await abandoned, { peer: stalledPeer });
    t.true(healthyDoneAt < failedAt, 'the healthy peer finished while the stalled stream was still waiting');
    t.log(`stalled stream abandoned after ${(failedAt - t0).toFixed(0)} ms (send timeout ${sendTimeoutMs} ms); healthy 10k snapshot done at ${(healthyDoneAt - t0).toFixed(0)} ms`);
    t.true(stalled.got.entries < 300_000);
    t.is(p.server.stats.snapshotsAbandoned, 1);
    // And the server is still usable for the next snapshot.
    const after = await p.server.sendSnapshot(healthyPeer, syntheticEntries(5_000));
    t.true(after.ok);
    t.is(healthy.got.entries, 15_000);
  } finally {
    release();
    stalled.client.close();
    healthy?.client.close();
    await p.server.close();
  }
});

test('a server gives up waiting for an ACK after ackTimeoutMs and stays usable', async (t) => {
  const p = await startServer({ ackTimeoutMs: 500 });
  const raw = new Dealer({ curveServerKey: p.serverKeys.publicKey, curvePublicKey: p.clientKeys.publicKey, curveSecretKey: p.clientKeys.secretKey, sendTimeout: 5000, linger: 0 });
  raw.connect(p.server.endpoint);
  try {
    const hello = nextEvent(p.server.events, 'hello');
    await raw.send(encodeMessage({ type: 'hello', node: 'mute', epoch: 1, role: 'backup' }));
    const peer = (await hello).peer;
    const e = await t.throwsAsync(p.server.sendSnapshot(peer, syntheticEntries(100)), { instanceOf: SyncError });
    t.is(e?.kind, 'ack_timeout');
    t.regex(e?.message ?? '', /no ACK within 500 ms after 100 entries/);
    t.is(p.server.stats.snapshotsAbandoned, 1);
  } finally {
    raw.close();
    await p.server.close();
  }
});

test('a client abandons a snapshot whose frames stop coming, with an aborted ACK (fake clock)', async (t) => {
  const keys = generateKeyPair();
  const fake = new Router({ curveServer: true, curveSecretKey: keys.secretKey, curvePublicKey: keys.publicKey, linger: 0, receiveTimeout: 20_000 });
  await fake.bind(LOOPBACK);
  const clock = new FakeClock();
  const client = SyncClient.connect({ endpoint: fake.lastEndpoint!, serverPublicKey: keys.publicKey, keys: generateKeyPair(), node: BACKUP, clock, idleTimeoutMs: 30_000 });
  try {
    const [id] = await fake.receive();
    const frames: Buffer[] = [];
    for await (const f of snapshotFrames(syntheticEntries(250), { snapshotId: 9, batchEntries: 100 })) frames.push(f);
    const abandoned = nextEvent(client.events, 'snapshotAbandoned');
    for (const f of frames.slice(0, 2)) await fake.send([id!, f]); // BEGIN and the first batch, then silence
    await waitFor('the first batch at the client', () => client.stats.entriesReceived === 100);
    clock.advance(29_999);
    t.is(client.stats.snapshotsAbandoned, 0);
    clock.advance(1);
    t.regex((await abandoned).error, /no frame of the snapshot for 30000 ms/);
    const [, ack] = await fake.receive();
    t.like(decodeMessage(ack!), { ok: true, value: { type: 'ack', snapshotId: 9, received: 100, status: 'aborted' } });
  } finally {
    client.close();
    fake.close();
  }
});

test('the client reconnects to a restarted server and says HELLO again', async (t) => {
  const p = await startServer();
  const first = nextEvent(p.server.events, 'hello');
  const { client, got } = startClient(p, { tuning: { reconnectIntervalMs: 50, reconnectMaxIntervalMs: 200 } });
  let second: SyncServer | undefined;
  try {
    await first;
    const endpoint = p.server.endpoint;
    const t0 = performance.now();
    await p.server.close();
    // libzmq releases the listening socket in its background thread: retry the bind for a moment.
    for (let i = 0; second === undefined; i++) {
      try {
        second = await SyncServer.listen({ endpoint, keys: p.serverKeys, allowedPeers: [p.clientKeys.publicKey], node: { ...MASTER, epoch: MASTER.epoch + 1 } });
      } catch (e) {
        if (i === 100) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const rebound = performance.now();
    const again = await nextEvent(second.events, 'hello');
    t.log(`rebound after ${(rebound - t0).toFixed(0)} ms, HELLO again after ${(performance.now() - t0).toFixed(0)} ms`);
    t.is(again.node, 'dirB');
    await waitFor('the new server epoch at the client', () => client.server?.epoch === MASTER.epoch + 1);
    const r = await second.sendSnapshot(again.peer, syntheticEntries(1000));
    t.true(r.ok);
    t.is(got.entries, 1000);
  } finally {
    client.close();
    await second?.close();
  }
});

test('repair: DIGEST, DELTA_REQUEST for the buckets that differ, and a snapshot of just those buckets', async (t) => {
  const p = await startServer();
  const hello = nextEvent(p.server.events, 'hello');
  const { client, got } = startClient(p);
  try {
    const peer = (await hello).peer;
    // The server's table, and the client's copy with two entries lost and one in another state.
    const table = [...syntheticEntries(20_000)];
    const mine = new TableDigest(8);
    const theirs = new TableDigest(8);
    for (const e of table) mine.add(e);
    for (const e of table.slice(2)) theirs.add(e.cport === table[500]!.cport && e.caddr === table[500]!.caddr ? { ...e, state: 7 } : e);
    const digest = nextEvent(client.events, 'digest');
    await p.server.sendDigest(peer, mine, 3);
    const d = (await digest).message;
    t.is(d.generation, 3);
    const differ = diffBuckets(d.buckets, theirs.buckets());
    t.true(differ.length >= 1 && differ.length <= 3);
    const request = nextEvent(p.server.events, 'deltaRequest');
    await client.requestDelta(d.generation, d.bucketBits, differ);
    const r = (await request).message;
    t.deepEqual(r.buckets, differ);
    const scope = { kind: 'buckets' as const, bucketBits: r.bucketBits, buckets: r.buckets };
    const result = await p.server.sendSnapshot(peer, table, { scope });
    t.true(result.ok);
    t.is(got.entries, table.filter((e) => r.buckets.includes(bucketOf(e, 8))).length);
    t.true(got.entries < 400);
  } finally {
    client.close();
    await p.server.close();
  }
});

test('bad keys and endpoints are refused with a SyncError', async (t) => {
  const keys = generateKeyPair();
  const e1 = await t.throwsAsync(SyncServer.listen({ endpoint: LOOPBACK, keys: { ...keys, secretKey: 'nope' }, allowedPeers: [], node: MASTER }), { instanceOf: SyncError });
  t.is(e1?.kind, 'key_invalid');
  const e2 = await t.throwsAsync(SyncServer.listen({ endpoint: 'tcp://192.0.2.1:1', keys, allowedPeers: [], node: MASTER }), { instanceOf: SyncError });
  t.is(e2?.kind, 'bind');
  const e3 = t.throws(() => SyncClient.connect({ endpoint: 'nonsense', serverPublicKey: keys.publicKey, keys, node: BACKUP }), { instanceOf: SyncError });
  t.is(e3?.kind, 'connect');
});
