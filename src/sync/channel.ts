/**
 * The sync channel: resync-protocol messages between two directors over ZeroMQ, authenticated and encrypted
 * with CURVE. This is the only module that imports zeromq.
 *
 * - `SyncServer` binds a ROUTER socket as CURVE server. Its own ZeroMQ context carries a ZAP handler (a ROUTER
 *   bound to inproc://zeromq.zap.01, ZeroMQ RFC 27) that lets in only the allowlisted client public keys;
 *   everyone else (a valid key pair not on the list, no CURVE at all, garbage) fails the handshake before any
 *   message flows, and is counted. It streams snapshots to peers and waits for their ACK.
 * - `SyncClient` connects a DEALER socket as CURVE client (it must know the server's public key), says HELLO on
 *   every (re)connection, feeds snapshots through the pure SnapshotReceiver (snapshot.ts) and ACKs them.
 *   ZeroMQ reconnects by itself (reconnectIntervalMs doubling up to reconnectMaxIntervalMs).
 *
 * Flow control: every pipe holds at most `highWaterMark` frames (plus the socket buffers). Frames are sent
 * with ZeroMQ's send timeout 0 and, on EAGAIN (the peer's pipe is full), retried with a short backoff until
 * `sendTimeoutMs` has passed; then the stream is abandoned with a SyncError ('peer_stalled'). ROUTER_MANDATORY
 * makes a full pipe an error instead of a silent drop, and because no send ever blocks the socket, a stalled
 * peer holds up nothing but its own stream: other peers, ACKs and HELLOs keep flowing. A receiver whose
 * consumer (`onEntries`) is slow simply stops reading, which is how backpressure reaches the sender.
 *
 * Malformed frames (wrong frame count, anything decodeMessage rejects, a message the other role never sends)
 * are counted by reason and reported as events, never thrown.
 */

import { randomInt } from 'node:crypto';
import { Context, Dealer, Router } from 'zeromq';
import type { Event as ZmqEvent, Observer } from 'zeromq';
import { SystemClock } from '../lib/clock.ts';
import type { Clock } from '../lib/clock.ts';
import { messageOf } from '../lib/errors.ts';
import { TypedEmitter } from '../lib/events.ts';
import type { ConnEntry } from './conn.ts';
import type { EncodedEntries } from './sync-v1.ts';
import type { TableDigest } from './digest.ts';
import { SyncError } from './errors.ts';
import { z85Decode, z85Encode } from './keys.ts';
import type { CurveKeyPair } from './keys.ts';
import { RESYNC, decodeMessage, encodeMessage } from './resync-protocol.ts';
import type { AckMessage, DeltaRequestMessage, DigestMessage, NodeRole, ResyncMessage, SnapshotScope } from './resync-protocol.ts';
import { DEFAULT_BATCH_ENTRIES, SnapshotReceiver, snapshotFrames } from './snapshot.ts';
import type { ReceiverOutput, SnapshotTotals } from './snapshot.ts';

/** Who this node is, as HELLO announces it. */
export interface ChannelNode {
  name: string;
  /** Boot epoch (u32), e.g. the one vrrp/epoch.ts keeps: a new value tells the peer this node restarted. */
  epoch: number;
  role: NodeRole;
}

/** Socket tuning shared by server and client. */
export interface ChannelTuning {
  /** How long one frame may wait for room toward a peer before the stream is abandoned. */
  sendTimeoutMs: number;
  /** Frames queued per peer and direction (ZMQ_SNDHWM / ZMQ_RCVHWM). */
  highWaterMark: number;
  /** SO_SNDBUF / SO_RCVBUF in bytes; 0 leaves the kernel's default (and its autotuning). */
  socketBufferBytes: number;
  /** ZMTP heartbeats: a peer silent for heartbeatTimeoutMs is disconnected. */
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  reconnectIntervalMs: number;
  reconnectMaxIntervalMs: number;
}

/**
 * Defaults. 5 s for one frame to find room is far above any healthy peer's pause (a 1000-entry batch is decoded
 * in about a millisecond) and short enough that a wedged peer frees its stream quickly. 64 frames x ~36 KB
 * bounds what one peer pins in user space at ~2.3 MB. Heartbeats every second notice a dead peer long before
 * TCP would; their 10 s timeout is longer than the send timeout on purpose: a peer that stops reading also stops
 * answering heartbeats (libzmq stops reading its socket when the pipe is full), and the stall should be reported
 * as one ('peer_stalled') rather than as a disconnection. Reconnects start at 100 ms and back off to 5 s.
 */
export const DEFAULT_CHANNEL_TUNING: ChannelTuning = {
  sendTimeoutMs: 5000,
  highWaterMark: 64,
  socketBufferBytes: 0,
  heartbeatIntervalMs: 1000,
  heartbeatTimeoutMs: 10_000,
  reconnectIntervalMs: 100,
  reconnectMaxIntervalMs: 5000,
};

/** How long a server waits for the ACK after SNAPSHOT_END: the receiver may still be feeding the kernel. */
export const DEFAULT_ACK_TIMEOUT_MS = 30_000;
/** How long a client keeps a snapshot open without a frame of it before abandoning it. */
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
/** The ZAP domain the server socket announces (a ZAP handler also sees it; ours only accepts this one). */
export const ZAP_DOMAIN = 'tandem-sync';
/** Peers remembered by a server; the oldest are forgotten first (each reconnection is a new peer id). */
const MAX_PEERS = 256;

/** Counters of a channel end. */
export interface ChannelStats {
  framesIn: number;
  framesOut: number;
  malformed: number;
  malformedByReason: Record<string, number>;
  /** Handshakes that failed on this socket (any reason: refused key, no CURVE, protocol garbage). */
  handshakeFailures: number;
  /** Server: ZAP requests refused (key not on the allowlist, wrong mechanism or domain). */
  zapDenied: number;
  zapAllowed: number;
  /** Times a frame found the peer's queue full and was retried (backpressure). */
  sendRetries: number;
  snapshotsSent: number;
  snapshotsAbandoned: number;
  snapshotsReceived: number;
  entriesSent: number;
  entriesReceived: number;
}

function emptyStats(): ChannelStats {
  return {
    framesIn: 0, framesOut: 0, malformed: 0, malformedByReason: {}, handshakeFailures: 0, zapDenied: 0, zapAllowed: 0,
    sendRetries: 0, snapshotsSent: 0, snapshotsAbandoned: 0, snapshotsReceived: 0, entriesSent: 0, entriesReceived: 0,
  };
}

/** Everything a channel end reports; metrics and logs subscribe. */
export type SyncChannelEvent =
  | { type: 'hello'; peer: string; node: string; epoch: number; role: NodeRole }
  | { type: 'zapDenied'; address: string; publicKey: string; detail: string }
  | { type: 'handshakeFailed'; address: string; reason: string }
  | { type: 'malformed'; peer: string; reason: string; detail: string }
  | { type: 'snapshotSent'; peer: string; snapshotId: number; entries: number; ack: AckMessage; durationMs: number }
  | { type: 'snapshotAbandoned'; peer: string; snapshotId: number; error: string }
  | { type: 'snapshotBegin'; snapshotId: number; estimate: number; scope: SnapshotScope }
  | { type: 'snapshotReceived'; snapshotId: number; received: number; status: AckMessage['status'] }
  | { type: 'deltaRequest'; peer: string; message: DeltaRequestMessage }
  | { type: 'digest'; peer: string; message: DigestMessage }
  | { type: 'connected'; address: string }
  | { type: 'disconnected'; address: string }
  | { type: 'error'; detail: string };

/** A peer known to a server (it said HELLO). */
export interface PeerInfo {
  /** Routing id as hex: what sendSnapshot takes. */
  id: string;
  node: string;
  epoch: number;
  role: NodeRole;
  /** Clock time of its last frame. */
  lastSeenMs: number;
}

/** The outcome of one snapshot sent and acknowledged. */
export interface SnapshotResult extends SnapshotTotals {
  snapshotId: number;
  ack: AckMessage;
  /** ack.status === 'ok' (count and digest match). */
  ok: boolean;
  durationMs: number;
}

function tuningOf(t: Partial<ChannelTuning> | undefined): ChannelTuning {
  return { ...DEFAULT_CHANNEL_TUNING, ...t };
}

function socketOptions(t: ChannelTuning) {
  return {
    sendTimeout: 0,
    sendHighWaterMark: t.highWaterMark,
    receiveHighWaterMark: t.highWaterMark,
    ...(t.socketBufferBytes > 0 ? { sendBufferSize: t.socketBufferBytes, receiveBufferSize: t.socketBufferBytes } : {}),
    heartbeatInterval: t.heartbeatIntervalMs,
    heartbeatTimeout: t.heartbeatTimeoutMs,
    reconnectInterval: t.reconnectIntervalMs,
    reconnectMaxInterval: t.reconnectMaxIntervalMs,
    // A peer cannot make us allocate more than one frame's worth (plus the ZMTP framing).
    maxMessageSize: RESYNC.maxFrameBytes + 1024,
    linger: 0,
  };
}

function checkKey(what: string, key: string): Buffer {
  const raw = key.length === 40 ? z85Decode(key) : undefined;
  if (raw === undefined) throw new SyncError('key_invalid', `${what} is not a 40-character Z85 CURVE key`);
  return raw;
}

function errnoCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Lets timers and I/O run. A send that succeeds at once and a receive that finds a frame waiting both resolve
 * as microtasks, so a snapshot streamed without this would hold the event loop for its whole length (seconds
 * for 1M entries) and starve everything else in the process, election timers included. Once per frame
 * (~1000 entries) costs nothing measurable. Not a timing decision, so not on the Clock.
 */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimer(ms, resolve));
}

/**
 * Sends one multipart message within `timeoutMs`: tries at once, and while the pipe is full (EAGAIN) retries
 * with backoff 1, 2, 4 ms (then every 4 ms: a ROUTER cannot tell when one peer's pipe has room again, so it polls;
 * a short cap keeps a briefly busy peer from costing throughput, and 250 wakeups/s while stalled cost nothing).
 * `onRetry` counts the retries. Throws SyncError 'peer_stalled' after the timeout, 'peer_gone' when a ROUTER
 * no longer knows the peer, 'closed' when the socket closed.
 */
async function sendWithin(
  socket: Router | Dealer,
  frames: Buffer[],
  timeoutMs: number,
  clock: Clock,
  what: string,
  onRetry: () => void,
): Promise<void> {
  const deadline = clock.now() + timeoutMs;
  let delay = 1;
  for (;;) {
    if (socket.closed) throw new SyncError('closed', `${what}: the sync socket is closed`);
    try {
      await socket.send(frames);
      return;
    } catch (e) {
      const code = errnoCode(e);
      if (code === 'EHOSTUNREACH') {
        throw new SyncError('peer_gone', `${what}: the peer is not connected (it disconnected, missed its heartbeats, or never said HELLO)`, { cause: e });
      }
      if (code !== 'EAGAIN' && code !== 'EBUSY') {
        if (socket.closed) throw new SyncError('closed', `${what}: the sync socket is closed`, { cause: e });
        throw new SyncError('peer_gone', `${what}: send failed: ${messageOf(e)}`, { cause: e });
      }
    }
    const left = deadline - clock.now();
    if (left <= 0) {
      throw new SyncError('peer_stalled', `${what}: the peer has not read for ${timeoutMs} ms (its queue of frames is full); stream abandoned`);
    }
    onRetry();
    await sleep(clock, Math.min(delay, left));
    delay = Math.min(delay * 2, 4);
  }
}

function countMalformed(stats: ChannelStats, events: TypedEmitter<SyncChannelEvent>, peer: string, reason: string, detail: string): void {
  stats.malformed++;
  stats.malformedByReason[reason] = (stats.malformedByReason[reason] ?? 0) + 1;
  events.emit({ type: 'malformed', peer, reason, detail });
}

/** A socket's monitor being read; `release` after closing the socket. */
interface SocketWatch {
  release(): void;
}

/**
 * How long a closed socket's monitor may take to report its end before it is closed by hand. Seen with zeromq
 * 6.8.0: a monitor closed before (or right after) its socket kept libzmq from closing the socket's TCP
 * connections, so peers noticed only at their heartbeat timeout; a monitor left to end by itself did not
 * always get its stop event, and its poll handle then kept the process alive. Waiting for the end, and
 * closing it after a second only if it never came, avoids both.
 */
const MONITOR_RELEASE_MS = 1000;

/**
 * Reads a socket's monitor (ZMQ_EVENT_*) until the socket closes: failed handshakes are counted and reported,
 * `onHandshake` runs for every completed one. The monitor is read with receive() rather than events.on():
 * zeromq's emitter mode can leave a rejected promise unhandled when the monitor closes.
 */
function watchSocket(
  socket: Router | Dealer,
  stats: ChannelStats,
  events: TypedEmitter<SyncChannelEvent>,
  onHandshake: (address: string) => void = () => {},
): SocketWatch {
  // Keep this reference: once the socket is closed, `socket.events` would try to make a new monitor.
  const monitor: Observer = socket.events;
  let ended = false;
  void (async () => {
    for (;;) {
      let e: ZmqEvent | undefined;
      try {
        e = await monitor.receive();
      } catch {
        break; // the monitor closed
      }
      if (e === undefined || e.type === 'end') break; // closed while a receive was pending, or stopped
      switch (e.type) {
        case 'handshake:error:auth':
        case 'handshake:error:protocol':
        case 'handshake:error:other': {
          stats.handshakeFailures++;
          const err = e.error;
          const why = 'status' in err ? `ZAP status ${err.status}` : err.code;
          events.emit({ type: 'handshakeFailed', address: e.address, reason: `${e.type.slice('handshake:error:'.length)}: ${why}` });
          break;
        }
        case 'handshake':
          onHandshake(e.address);
          break;
        case 'disconnect':
          events.emit({ type: 'disconnected', address: e.address });
          break;
        default:
          break;
      }
    }
    ended = true;
  })();
  return {
    release(): void {
      if (ended) return;
      // Node's own timer, unref'd, not the Clock: releasing a native handle is not a protocol timing decision,
      // and it must neither keep the process alive nor wait for a fake clock in tests.
      setTimeout(() => {
        if (ended) return;
        try {
          monitor.close();
        } catch {
          // Already closed underneath.
        }
      }, MONITOR_RELEASE_MS).unref();
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Server

/** Options of SyncServer.listen. */
export interface SyncServerOptions {
  /** ZeroMQ endpoint, e.g. `tcp://10.0.0.1:9114`; port `*` picks a free one (see `endpoint`). */
  endpoint: string;
  keys: CurveKeyPair;
  /** Public keys (Z85) of the clients allowed in. */
  allowedPeers: readonly string[];
  node: ChannelNode;
  clock?: Clock;
  tuning?: Partial<ChannelTuning>;
  ackTimeoutMs?: number;
  batchEntries?: number;
}

interface AckWaiter {
  resolve: (ack: AckMessage) => void;
  early: AckMessage | undefined;
}

/** The serving end of the sync channel. */
export class SyncServer {
  readonly events = new TypedEmitter<SyncChannelEvent>();
  readonly stats: ChannelStats = emptyStats();
  private readonly peerTable = new Map<string, PeerInfo>();
  private readonly waiters = new Map<string, AckWaiter>();
  private readonly queues = new Map<string, Promise<unknown>>();
  private nextSnapshot = randomInt(1, 0x7fff_ffff);
  private closing = false;

  private watch: SocketWatch | undefined;

  private constructor(
    private readonly router: Router,
    private readonly zap: Router,
    readonly endpoint: string,
    private readonly options: SyncServerOptions,
    private readonly clock: Clock,
    private readonly tuning: ChannelTuning,
    private readonly allowed: ReadonlySet<string>,
  ) {}

  /**
   * Binds the ZAP handler and the server socket. Throws SyncError 'key_invalid' for a bad key, 'bind' when the
   * endpoint cannot be bound.
   */
  static async listen(options: SyncServerOptions): Promise<SyncServer> {
    checkKey('the server secret key', options.keys.secretKey);
    checkKey('the server public key', options.keys.publicKey);
    const allowed = new Set(options.allowedPeers.map((k, i) => checkKey(`allowed peer key ${i}`, k).toString('hex')));
    const tuning = tuningOf(options.tuning);
    const clock = options.clock ?? new SystemClock();
    // One context per server: the ZAP endpoint is per context, and this keeps servers independent.
    const context = new Context();
    const zap = new Router({ context, linger: 0 });
    const router = new Router({
      context,
      ...socketOptions(tuning),
      mandatory: true,
      curveServer: true,
      curveSecretKey: options.keys.secretKey,
      curvePublicKey: options.keys.publicKey,
      zapDomain: ZAP_DOMAIN,
    });
    try {
      await zap.bind('inproc://zeromq.zap.01');
      await router.bind(options.endpoint);
    } catch (e) {
      router.close();
      zap.close();
      throw new SyncError('bind', `cannot bind the sync channel to ${options.endpoint}: ${messageOf(e)}; is another tandem running, or is the address missing?`, { cause: e });
    }
    const server = new SyncServer(router, zap, router.lastEndpoint ?? options.endpoint, options, clock, tuning, allowed);
    server.watch = watchSocket(router, server.stats, server.events);
    void server.zapLoop();
    void server.receiveLoop();
    return server;
  }

  /**
   * Peers that said HELLO, most recent last. A peer stays listed after it disconnects until its node says HELLO
   * from a new connection or 256 newer peers arrive; sending to a gone peer fails with SyncError 'peer_gone'.
   */
  peers(): PeerInfo[] {
    return [...this.peerTable.values()];
  }

  /** ZAP (RFC 27): allow CURVE clients whose key is on the list, in our domain; refuse everything else. */
  private async zapLoop(): Promise<void> {
    try {
      for await (const f of this.zap) {
        const [id, delimiter, version, requestId, domain, address, , mechanism, key] = f;
        if (id === undefined || delimiter === undefined || requestId === undefined) continue;
        const keyHex = key?.length === 32 ? key.toString('hex') : '';
        const publicKey = key?.length === 32 ? z85Encode(key) : '';
        let status = '200';
        let text = 'OK';
        if (version?.toString() !== '1.0') [status, text] = ['400', 'unsupported ZAP version'];
        else if (mechanism?.toString() !== 'CURVE') [status, text] = ['400', `mechanism ${mechanism?.toString() ?? '?'} is not CURVE`];
        else if (domain?.toString() !== ZAP_DOMAIN) [status, text] = ['400', `domain ${domain?.toString() ?? '?'}`];
        else if (!this.allowed.has(keyHex)) [status, text] = ['400', 'public key not on the allowlist'];
        if (status === '200') this.stats.zapAllowed++;
        else {
          this.stats.zapDenied++;
          this.events.emit({ type: 'zapDenied', address: address?.toString() ?? '', publicKey, detail: text });
        }
        await this.zap.send([id, delimiter, '1.0', requestId, status, text, status === '200' ? publicKey : '', '']);
      }
    } catch (e) {
      if (!this.closing) this.events.emit({ type: 'error', detail: `ZAP handler stopped: ${messageOf(e)}` });
    }
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const frames of this.router) {
        this.onFrames(frames);
        await yieldToEventLoop();
      }
    } catch (e) {
      if (!this.closing) this.events.emit({ type: 'error', detail: `sync server receive loop stopped: ${messageOf(e)}` });
    }
  }

  private onFrames(frames: Buffer[]): void {
    this.stats.framesIn++;
    const id = frames[0]?.toString('hex') ?? '';
    if (frames.length !== 2) {
      countMalformed(this.stats, this.events, id, 'frame_count', `${frames.length - 1} frames, want 1`);
      return;
    }
    const decoded = decodeMessage(frames[1]!);
    if (!decoded.ok) {
      countMalformed(this.stats, this.events, id, decoded.reason, decoded.detail);
      return;
    }
    const m = decoded.value;
    const known = this.peerTable.get(id);
    if (known !== undefined) known.lastSeenMs = this.clock.now();
    switch (m.type) {
      case 'hello': {
        // A reconnecting node comes back with a new routing id: forget its old ones.
        for (const [k, p] of this.peerTable) if (p.node === m.node && k !== id) this.peerTable.delete(k);
        this.peerTable.delete(id);
        this.peerTable.set(id, { id, node: m.node, epoch: m.epoch, role: m.role, lastSeenMs: this.clock.now() });
        while (this.peerTable.size > MAX_PEERS) this.peerTable.delete(this.peerTable.keys().next().value!);
        this.events.emit({ type: 'hello', peer: id, node: m.node, epoch: m.epoch, role: m.role });
        void this.send(id, { type: 'hello', node: this.options.node.name, epoch: this.options.node.epoch, role: this.options.node.role }).catch(() => {});
        return;
      }
      case 'ack': {
        const w = this.waiters.get(`${id}/${m.snapshotId}`);
        if (w === undefined) countMalformed(this.stats, this.events, id, 'stray_ack', `ACK of snapshot ${m.snapshotId}, which is not waiting`);
        else if (w.early === undefined) {
          w.early = m;
          w.resolve(m);
        }
        return;
      }
      case 'deltaRequest':
        this.events.emit({ type: 'deltaRequest', peer: id, message: m });
        return;
      case 'digest':
        this.events.emit({ type: 'digest', peer: id, message: m });
        return;
      default:
        countMalformed(this.stats, this.events, id, 'unexpected', `a client does not send ${m.type}`);
    }
  }

  /** Runs `job` after every job queued for the same peer: one stream per peer at a time, in order. */
  private serialize<T>(peer: string, job: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(peer) ?? Promise.resolve();
    const next = prev.then(job, job);
    const tail = next.catch(() => {});
    this.queues.set(peer, tail);
    void tail.then(() => {
      if (this.queues.get(peer) === tail) this.queues.delete(peer);
    });
    return next;
  }

  private async sendFrame(peer: string, frame: Buffer, what: string): Promise<void> {
    await sendWithin(this.router, [Buffer.from(peer, 'hex'), frame], this.tuning.sendTimeoutMs, this.clock, what, () => this.stats.sendRetries++);
    this.stats.framesOut++;
  }

  /** Sends one message to a peer within the send timeout (SyncError otherwise). Queued behind the peer's streams. */
  send(peer: string, message: ResyncMessage): Promise<void> {
    return this.serialize(peer, () => this.sendFrame(peer, encodeMessage(message), `${message.type} to peer ${peer}`));
  }

  /** Sends a DIGEST of `digest` (periodic repair: the peer answers with a DELTA_REQUEST if it differs). */
  sendDigest(peer: string, digest: TableDigest, generation: number): Promise<void> {
    return this.send(peer, { type: 'digest', generation, bucketBits: digest.bucketBits, buckets: digest.buckets() });
  }

  /**
   * Streams `entries` to `peer` as one snapshot (the whole table, or some buckets of it) and waits for its ACK.
   * Resolves with the totals and the ACK (look at `ok`); rejects with SyncError 'peer_stalled' when one frame
   * cannot be queued within the send timeout, 'peer_gone', 'ack_timeout', or 'closed'. The server stays usable
   * either way.
   */
  sendSnapshot(
    peer: string,
    entries: Iterable<ConnEntry> | AsyncIterable<ConnEntry>,
    options: { estimate?: number; scope?: SnapshotScope } = {},
  ): Promise<SnapshotResult> {
    return this.serialize(peer, () => this.streamSnapshot(peer, entries, options));
  }

  private async streamSnapshot(
    peer: string,
    entries: Iterable<ConnEntry> | AsyncIterable<ConnEntry>,
    options: { estimate?: number; scope?: SnapshotScope },
  ): Promise<SnapshotResult> {
    const snapshotId = this.nextSnapshot;
    this.nextSnapshot = (this.nextSnapshot + 1) >>> 0 || 1;
    const started = this.clock.now();
    const key = `${peer}/${snapshotId}`;
    let resolveAck: (ack: AckMessage) => void = () => {};
    const ackArrived = new Promise<AckMessage>((resolve) => (resolveAck = resolve));
    const waiter: AckWaiter = { resolve: resolveAck, early: undefined };
    this.waiters.set(key, waiter);
    const frames = snapshotFrames(entries, {
      snapshotId,
      batchEntries: this.options.batchEntries ?? DEFAULT_BATCH_ENTRIES,
      ...(options.estimate !== undefined ? { estimate: options.estimate } : {}),
      ...(options.scope !== undefined ? { scope: options.scope } : {}),
    });
    try {
      let step = await frames.next();
      let n = 0;
      while (step.done !== true) {
        if (this.closing) throw new SyncError('closed', `snapshot ${snapshotId} to peer ${peer}: the server is closing`);
        if (waiter.early !== undefined && waiter.early.status !== 'ok') {
          throw new SyncError('peer_gone', `snapshot ${snapshotId} to peer ${peer}: the peer gave it up (${waiter.early.status}) after ${waiter.early.received} entries`);
        }
        await this.sendFrame(peer, step.value, `snapshot ${snapshotId} frame ${n++} to peer ${peer}`);
        await yieldToEventLoop();
        step = await frames.next();
      }
      const totals = step.value;
      this.stats.entriesSent += totals.total;
      const ackTimeoutMs = this.options.ackTimeoutMs ?? DEFAULT_ACK_TIMEOUT_MS;
      let timer: ReturnType<Clock['setTimer']> | undefined;
      const timedOut = new Promise<undefined>((resolve) => (timer = this.clock.setTimer(ackTimeoutMs, () => resolve(undefined))));
      const ack = await Promise.race([ackArrived, timedOut]);
      if (timer !== undefined) this.clock.clearTimer(timer);
      if (ack === undefined) throw new SyncError('ack_timeout', `snapshot ${snapshotId} to peer ${peer}: no ACK within ${ackTimeoutMs} ms after ${totals.total} entries`);
      const durationMs = this.clock.now() - started;
      this.stats.snapshotsSent++;
      this.events.emit({ type: 'snapshotSent', peer, snapshotId, entries: totals.total, ack, durationMs });
      return { ...totals, snapshotId, ack, ok: ack.status === 'ok', durationMs };
    } catch (e) {
      this.stats.snapshotsAbandoned++;
      this.events.emit({ type: 'snapshotAbandoned', peer, snapshotId, error: messageOf(e) });
      // Ends the generator, and through it the entry source (a /proc read stream is closed).
      await frames.return({ total: 0, batches: 0, bytes: 0, digest: Buffer.alloc(0) }).catch(() => {});
      throw e;
    } finally {
      this.waiters.delete(key);
    }
  }

  /** Closes the sockets; streams in progress reject with SyncError 'closed'. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.router.close();
    this.watch?.release();
    this.zap.close();
    await Promise.allSettled([...this.queues.values()]);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Client

/** Options of SyncClient.connect. */
export interface SyncClientOptions {
  /** The server's endpoint, e.g. `tcp://10.0.0.1:9114`. */
  endpoint: string;
  /** The server's public key (Z85): the client refuses to talk to anyone else. */
  serverPublicKey: string;
  keys: CurveKeyPair;
  node: ChannelNode;
  /**
   * Receives each batch of a snapshot as it arrives (before the snapshot is verified). A returned promise is
   * awaited before the next frame is read: a slow consumer slows the sender instead of filling memory. The
   * entries stay in their wire form (checked; iterate them for objects).
   */
  onEntries?: (entries: EncodedEntries, snapshotId: number) => void | Promise<void>;
  clock?: Clock;
  tuning?: Partial<ChannelTuning>;
  idleTimeoutMs?: number;
}

/** The receiving end of the sync channel. */
export class SyncClient {
  readonly events = new TypedEmitter<SyncChannelEvent>();
  readonly stats: ChannelStats = emptyStats();
  private readonly receiver = new SnapshotReceiver();
  private serverInfo: { node: string; epoch: number; role: NodeRole } | undefined;
  private idleTimer: ReturnType<Clock['setTimer']> | undefined;
  private closing = false;

  private watch: SocketWatch | undefined;

  private constructor(
    private readonly dealer: Dealer,
    private readonly options: SyncClientOptions,
    private readonly clock: Clock,
    private readonly tuning: ChannelTuning,
  ) {}

  /**
   * Starts connecting (in the background; ZeroMQ retries until the server answers) and returns at once.
   * Throws SyncError 'key_invalid' for a bad key, 'connect' for a bad endpoint.
   */
  static connect(options: SyncClientOptions): SyncClient {
    checkKey('the server public key', options.serverPublicKey);
    checkKey('the client secret key', options.keys.secretKey);
    checkKey('the client public key', options.keys.publicKey);
    const tuning = tuningOf(options.tuning);
    const dealer = new Dealer({
      ...socketOptions(tuning),
      // Queue only on connections whose handshake completed, so nothing is queued for a server that refuses us.
      immediate: true,
      curveServerKey: options.serverPublicKey,
      curvePublicKey: options.keys.publicKey,
      curveSecretKey: options.keys.secretKey,
    });
    const client = new SyncClient(dealer, options, options.clock ?? new SystemClock(), tuning);
    client.watch = watchSocket(dealer, client.stats, client.events, (address) => {
      client.events.emit({ type: 'connected', address });
      void client.hello().catch((err: unknown) => client.events.emit({ type: 'error', detail: `HELLO: ${messageOf(err)}` }));
    });
    try {
      dealer.connect(options.endpoint);
    } catch (e) {
      dealer.close();
      throw new SyncError('connect', `cannot connect the sync channel to ${options.endpoint}: ${messageOf(e)}`, { cause: e });
    }
    void client.receiveLoop();
    return client;
  }

  /** The server's HELLO, once it arrived. */
  get server(): { node: string; epoch: number; role: NodeRole } | undefined {
    return this.serverInfo;
  }

  private hello(): Promise<void> {
    const n = this.options.node;
    return this.send({ type: 'hello', node: n.name, epoch: n.epoch, role: n.role });
  }

  /** Sends one message to the server within the send timeout (SyncError otherwise). */
  async send(message: ResyncMessage): Promise<void> {
    await sendWithin(this.dealer, [encodeMessage(message)], this.tuning.sendTimeoutMs, this.clock, `${message.type} to the sync server`, () => this.stats.sendRetries++);
    this.stats.framesOut++;
  }

  /** Asks for the entries of the buckets that differ (answer to a DIGEST). */
  requestDelta(generation: number, bucketBits: number, buckets: number[]): Promise<void> {
    return this.send({ type: 'deltaRequest', generation, bucketBits, buckets });
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const frames of this.dealer) {
        await this.onFrames(frames);
        await yieldToEventLoop();
      }
    } catch (e) {
      if (!this.closing) this.events.emit({ type: 'error', detail: `sync client receive loop stopped: ${messageOf(e)}` });
    }
  }

  private async onFrames(frames: Buffer[]): Promise<void> {
    this.stats.framesIn++;
    if (frames.length !== 1) {
      countMalformed(this.stats, this.events, 'server', 'frame_count', `${frames.length} frames, want 1`);
      return;
    }
    const decoded = decodeMessage(frames[0]!);
    if (!decoded.ok) {
      countMalformed(this.stats, this.events, 'server', decoded.reason, decoded.detail);
      return;
    }
    const m = decoded.value;
    switch (m.type) {
      case 'hello':
        this.serverInfo = { node: m.node, epoch: m.epoch, role: m.role };
        this.events.emit({ type: 'hello', peer: 'server', node: m.node, epoch: m.epoch, role: m.role });
        return;
      case 'snapshotBegin':
      case 'batch':
      case 'snapshotEnd':
        await this.perform(this.receiver.handle(m));
        return;
      case 'digest':
        this.events.emit({ type: 'digest', peer: 'server', message: m });
        return;
      default:
        countMalformed(this.stats, this.events, 'server', 'unexpected', `a server does not send ${m.type}`);
    }
  }

  private armIdle(): void {
    this.disarmIdle();
    const ms = this.options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.idleTimer = this.clock.setTimer(ms, () => {
      this.idleTimer = undefined;
      void this.perform(this.receiver.abandon(`no frame of the snapshot for ${ms} ms`));
    });
  }

  private disarmIdle(): void {
    if (this.idleTimer !== undefined) this.clock.clearTimer(this.idleTimer);
    this.idleTimer = undefined;
  }

  private async perform(outputs: ReceiverOutput[]): Promise<void> {
    for (const o of outputs) {
      switch (o.kind) {
        case 'begin':
          this.armIdle();
          this.events.emit({ type: 'snapshotBegin', snapshotId: o.snapshotId, estimate: o.estimate, scope: o.scope });
          break;
        case 'entries':
          this.armIdle();
          this.stats.entriesReceived += o.entries.length;
          if (this.options.onEntries !== undefined) {
            try {
              await this.options.onEntries(o.entries, o.snapshotId);
            } catch (e) {
              this.events.emit({ type: 'error', detail: `onEntries failed for snapshot ${o.snapshotId}: ${messageOf(e)}` });
            }
          }
          break;
        case 'send':
          void this.send(o.message).catch((e: unknown) => this.events.emit({ type: 'error', detail: `ACK of snapshot ${o.message.snapshotId}: ${messageOf(e)}` }));
          break;
        case 'complete':
          this.disarmIdle();
          this.stats.snapshotsReceived++;
          this.events.emit({ type: 'snapshotReceived', snapshotId: o.snapshotId, received: o.received, status: o.status });
          break;
        case 'abandoned':
          this.disarmIdle();
          this.stats.snapshotsAbandoned++;
          this.events.emit({ type: 'snapshotAbandoned', peer: 'server', snapshotId: o.snapshotId, error: o.reason });
          break;
        case 'ignored':
          countMalformed(this.stats, this.events, 'server', o.reason, o.detail);
          break;
      }
    }
  }

  /** Closes the socket. */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    this.disarmIdle();
    this.dealer.close();
    this.watch?.release();
  }
}
