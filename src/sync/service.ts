/**
 * Connection sync at run time: the driver that ties the resync channel, the local table, the injector and the
 * election together. The kernel's own sync threads (daemons.ts) carry connections as they change; this adds
 * what they never send: the whole table to a director that (re)joins, and a periodic repair of what got lost.
 *
 * - Full resync. Every director serves (SyncServer) and connects to its peer (SyncClient). When a peer says
 *   HELLO (it started, or reconnected) and this director is master, it streams its table (read from
 *   /proc/net/ip_vs_conn) as one snapshot; the peer injects each batch into its kernel as it arrives and ACKs
 *   the snapshot with the count and digest of what it got. A peer that said HELLO while this director was
 *   backup is streamed to when this director becomes master; a failed stream is retried at the next repair tick.
 * - Preemption hold. From start until its first full snapshot is acknowledged `ok` (or `resync_timeout`
 *   passes, or it becomes master itself), this director holds back preemption (vrrp/machine.ts preemptHold):
 *   a returning higher-priority director does not take the VIPs before it knows the connections.
 * - Repair. Every `repair_interval` the master sends each peer a DIGEST of its table (also once shortly after a
 *   full resync, to verify it). The peer compares it with its own table, reports the entries missing on it
 *   (the sum over differing buckets of the master's count minus its own), and asks for the differing buckets
 *   (DELTA_REQUEST); the master streams just those and the peer injects them.
 * - Sync datagrams seen on the group (mcast.ts listener) are decoded and counted; malformed ones by reason.
 *
 * Nothing here runs on the election's critical path: the channel yields to the event loop between frames, a
 * stalled peer costs only its own stream (channel send timeout), and the hold is bounded by resync_timeout.
 */

import type { Clock, TimerHandle } from '../lib/clock.ts';
import { messageOf } from '../lib/errors.ts';
import { TypedEmitter } from '../lib/events.ts';
import type { Logger } from '../lib/log.ts';
import type { ChannelNode, PeerInfo, SnapshotResult, SyncChannelEvent } from './channel.ts';
import type { ConnEntry } from './conn.ts';
import { DEFAULT_BUCKET_BITS, TableDigest, diffBuckets } from './digest.ts';
import type { DigestMessage, SnapshotScope } from './resync-protocol.ts';
import { checkSyncMessage } from './sync-v1.ts';
import type { EncodedEntries } from './sync-v1.ts';

/** The local kernel table, read fresh on each call (the adapter reads /proc/net/ip_vs_conn). */
export interface SyncTable {
  entries(): AsyncIterable<ConnEntry>;
}

/** Where received entries go (the injector). */
export interface EntrySink {
  inject(entries: EncodedEntries): Promise<unknown>;
}

/** What the service uses of a SyncServer. */
export interface SyncServerPort {
  readonly events: { on(l: (e: SyncChannelEvent) => void): () => void };
  peers(): PeerInfo[];
  sendSnapshot(peer: string, entries: AsyncIterable<ConnEntry>, options?: { estimate?: number; scope?: SnapshotScope }): Promise<SnapshotResult>;
  sendDigest(peer: string, digest: TableDigest, generation: number): Promise<void>;
  close(): Promise<void>;
}

/** What the service uses of a SyncClient. */
export interface SyncClientPort {
  readonly events: { on(l: (e: SyncChannelEvent) => void): () => void };
  requestDelta(generation: number, bucketBits: number, buckets: number[]): Promise<void>;
  close(): void;
}

export interface SyncServiceOptions {
  resyncTimeoutMs: number;
  /** 0 = no periodic repair. */
  repairIntervalMs: number;
  bucketBits?: number;
  /** Delay of the verification DIGEST after a full resync; see DEFAULT_VERIFY_DELAY_MS. */
  verifyDelayMs?: number;
}

/**
 * 2 s after a full resync is acknowledged the master sends a DIGEST to verify it: long enough for the peer's
 * backup thread to drain the last injected datagrams from its socket, short enough that a loss is repaired
 * long before anyone relies on the table.
 */
export const DEFAULT_VERIFY_DELAY_MS = 2000;

/** What the service reports; metrics and logs subscribe. */
export type SyncServiceEvent =
  | { type: 'preempt_hold'; hold: boolean; reason: string }
  | { type: 'resync_sent'; peer: string; node: string; entries: number; status: string; durationMs: number; scope: 'full' | 'buckets' }
  | { type: 'resync_send_failed'; peer: string; error: string }
  | { type: 'resync_progress'; snapshotId: number; received: number }
  | { type: 'resync_received'; snapshotId: number; received: number; status: string; durationMs: number; scope: 'full' | 'buckets' }
  | { type: 'resync_abandoned'; snapshotId: number; error: string }
  | { type: 'repair_checked'; generation: number; differingBuckets: number; missing: number; extra: number }
  | { type: 'sync_datagram'; entries: number }
  | { type: 'sync_datagram_malformed'; reason: string; detail: string }
  | { type: 'inject_failed'; error: string }
  | { type: 'channel'; side: 'server' | 'client'; event: SyncChannelEvent };

/** The digest of a table read once. */
export async function digestOf(entries: AsyncIterable<ConnEntry> | Iterable<ConnEntry>, bucketBits: number): Promise<TableDigest> {
  const d = new TableDigest(bucketBits);
  for await (const e of entries) d.add(e);
  return d;
}

/**
 * Compares the master's digest with the local one: the buckets that differ, and how many entries the local
 * table lacks (`missing`) or has beyond the master's (`extra`), counted per bucket.
 */
export function compareDigest(master: DigestMessage, local: TableDigest): { buckets: number[]; missing: number; extra: number } {
  const mine = local.buckets();
  const buckets = diffBuckets(master.buckets, mine);
  let missing = 0;
  let extra = 0;
  for (const b of buckets) {
    const m = master.buckets[b]?.count ?? 0;
    const l = mine[b]?.count ?? 0;
    if (m > l) missing += m - l;
    else extra += l - m;
  }
  return { buckets, missing, extra };
}

export class SyncService {
  readonly events = new TypedEmitter<SyncServiceEvent>();
  private server: SyncServerPort | undefined;
  private client: SyncClientPort | undefined;
  private isMaster = false;
  private hold = false;
  private holdTimer: TimerHandle | undefined;
  private repairTimer: TimerHandle | undefined;
  /** Peers (routing ids) that said HELLO and have not had a full snapshot acknowledged `ok`. */
  private readonly pending = new Set<string>();
  private readonly streaming = new Set<string>();
  /** node name -> boot epoch of peers whose full snapshot was acknowledged `ok` (a reconnect needs no new one). */
  private readonly synced = new Map<string, number>();
  private receiving: { snapshotId: number; full: boolean; startedAt: number; received: number } | undefined;
  private repairRunning = false;
  private generation = 1;
  private stopped = false;
  private readonly unsubscribe: Array<() => void> = [];
  private readonly bucketBits: number;

  constructor(
    private readonly deps: {
      table: SyncTable;
      sink: EntrySink;
      clock: Clock;
      logger: Logger;
      /** The channel node announced in HELLO; the service keeps its `role` current. */
      node: ChannelNode;
      /** Holds back / allows preemption (Director.setPreemptHold). */
      setPreemptHold: (hold: boolean, reason: string) => void;
    },
    private readonly options: SyncServiceOptions,
  ) {
    this.bucketBits = options.bucketBits ?? DEFAULT_BUCKET_BITS;
  }

  /** Connects the channel ends (created by the caller, the client with `onEntries` = this.receiveEntries). */
  attach(server: SyncServerPort, client: SyncClientPort): void {
    this.server = server;
    this.client = client;
    this.unsubscribe.push(server.events.on((e) => this.onServerEvent(e)));
    this.unsubscribe.push(client.events.on((e) => this.onClientEvent(e)));
  }

  /** Holds preemption until the first full resync (bounded by resync_timeout) and starts the repair timer. */
  start(): void {
    this.setHold(true, 'waiting for the connection table from the peer');
    this.holdTimer = this.deps.clock.setTimer(this.options.resyncTimeoutMs, () => {
      this.holdTimer = undefined;
      if (this.hold) this.setHold(false, `no full resync within resync_timeout (${this.options.resyncTimeoutMs} ms)`);
    });
    this.armRepair();
  }

  /** True while preemption is held for the resync. */
  get holding(): boolean {
    return this.hold;
  }

  /** The election says whether this director is master (any instance). */
  setMaster(isMaster: boolean): void {
    if (this.isMaster === isMaster) return;
    this.isMaster = isMaster;
    this.deps.node.role = isMaster ? 'master' : 'backup';
    if (isMaster) {
      // A master's table is the reference: nothing left to wait for.
      if (this.hold) this.setHold(false, 'became master');
      for (const peer of this.pending) this.streamTo(peer);
    }
  }

  /** SyncClient `onEntries`: injects a batch; awaited, so a slow kernel slows the sender (backpressure). */
  async receiveEntries(entries: EncodedEntries, snapshotId: number): Promise<void> {
    try {
      await this.deps.sink.inject(entries);
    } catch (e) {
      this.events.emit({ type: 'inject_failed', error: messageOf(e) });
    }
    const r = this.receiving;
    if (r !== undefined && r.snapshotId === snapshotId) {
      r.received += entries.length;
      this.events.emit({ type: 'resync_progress', snapshotId, received: r.received });
    }
  }

  /** A datagram seen on the sync group (mcast.ts listener): checked and counted, malformed ones by reason. */
  observeSyncDatagram(datagram: Buffer): void {
    const m = checkSyncMessage(datagram);
    if (m.ok) this.events.emit({ type: 'sync_datagram', entries: m.value.entries });
    else this.events.emit({ type: 'sync_datagram_malformed', reason: m.reason, detail: m.detail });
  }

  /** Stops timers and closes the channel ends. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.holdTimer !== undefined) this.deps.clock.clearTimer(this.holdTimer);
    if (this.repairTimer !== undefined) this.deps.clock.clearTimer(this.repairTimer);
    for (const u of this.unsubscribe) u();
    this.client?.close();
    await this.server?.close();
  }

  // --- internals -----------------------------------------------------------------------------------------

  private setHold(hold: boolean, reason: string): void {
    if (this.hold === hold) return;
    this.hold = hold;
    if (!hold && this.holdTimer !== undefined) {
      this.deps.clock.clearTimer(this.holdTimer);
      this.holdTimer = undefined;
    }
    this.events.emit({ type: 'preempt_hold', hold, reason });
    this.deps.setPreemptHold(hold, reason);
  }

  private onServerEvent(e: SyncChannelEvent): void {
    this.events.emit({ type: 'channel', side: 'server', event: e });
    if (this.stopped) return;
    switch (e.type) {
      case 'hello':
        if (this.synced.get(e.node) === e.epoch) {
          // The same run of the peer reconnected (a network blip): its table is whole; repair covers the gap.
          this.deps.logger.log('info', 'sync peer reconnected; its table was already resynced', { peer: e.peer, node: e.node, epoch: e.epoch });
          return;
        }
        this.pending.add(e.peer);
        this.deps.logger.log('info', 'sync peer said hello', { peer: e.peer, node: e.node, epoch: e.epoch, role: e.role, streaming: this.isMaster });
        if (this.isMaster) this.streamTo(e.peer);
        return;
      case 'deltaRequest':
        if (this.isMaster) this.streamTo(e.peer, { kind: 'buckets', bucketBits: e.message.bucketBits, buckets: e.message.buckets });
        return;
      default:
        return;
    }
  }

  private onClientEvent(e: SyncChannelEvent): void {
    this.events.emit({ type: 'channel', side: 'client', event: e });
    if (this.stopped) return;
    switch (e.type) {
      case 'snapshotBegin':
        this.receiving = { snapshotId: e.snapshotId, full: e.scope.kind === 'full', startedAt: this.deps.clock.now(), received: 0 };
        this.deps.logger.log('info', 'resync from the peer started', { snapshot: e.snapshotId, estimate: e.estimate, scope: e.scope.kind });
        return;
      case 'snapshotReceived': {
        const r = this.receiving;
        const full = r !== undefined && r.snapshotId === e.snapshotId ? r.full : false;
        const durationMs = r !== undefined ? this.deps.clock.now() - r.startedAt : 0;
        this.receiving = undefined;
        this.events.emit({ type: 'resync_received', snapshotId: e.snapshotId, received: e.received, status: e.status, durationMs, scope: full ? 'full' : 'buckets' });
        this.deps.logger.log(e.status === 'ok' ? 'info' : 'warn', 'resync from the peer complete', { snapshot: e.snapshotId, entries: e.received, status: e.status, duration_ms: Math.round(durationMs) });
        if (full && e.status === 'ok') this.setHold(false, `resync complete (${e.received} entries)`);
        return;
      }
      case 'snapshotAbandoned':
        this.receiving = undefined;
        this.events.emit({ type: 'resync_abandoned', snapshotId: e.snapshotId, error: e.error });
        this.deps.logger.log('warn', 'resync from the peer abandoned', { snapshot: e.snapshotId, error: e.error });
        return;
      case 'digest':
        void this.repairFrom(e.message);
        return;
      default:
        return;
    }
  }

  private streamTo(peer: string, scope?: SnapshotScope): void {
    const server = this.server;
    if (server === undefined || this.stopped) return;
    const full = scope === undefined || scope.kind === 'full';
    if (full && this.streaming.has(peer)) return;
    if (full) this.streaming.add(peer);
    const info = server.peers().find((p) => p.id === peer);
    const node = info?.node ?? peer;
    server
      .sendSnapshot(peer, this.deps.table.entries(), scope === undefined ? {} : { scope })
      .then(
        (r) => {
          this.events.emit({ type: 'resync_sent', peer, node, entries: r.total, status: r.ack.status, durationMs: r.durationMs, scope: full ? 'full' : 'buckets' });
          this.deps.logger.log(r.ok ? 'info' : 'warn', full ? 'resync sent' : 'repair sent', { peer: node, entries: r.total, status: r.ack.status, duration_ms: Math.round(r.durationMs) });
          if (full && r.ok) {
            this.pending.delete(peer);
            if (info !== undefined) this.synced.set(info.node, info.epoch);
            const verify = this.options.verifyDelayMs ?? DEFAULT_VERIFY_DELAY_MS;
            this.deps.clock.setTimer(verify, () => void this.sendDigest(peer));
          }
        },
        (e: unknown) => {
          this.events.emit({ type: 'resync_send_failed', peer, error: messageOf(e) });
          this.deps.logger.log('warn', 'resync to the peer failed; retried at the next repair tick', { peer: node, error: messageOf(e) });
        },
      )
      .finally(() => {
        if (full) this.streaming.delete(peer);
      });
  }

  private async sendDigest(peer: string): Promise<void> {
    const server = this.server;
    if (server === undefined || this.stopped || !this.isMaster) return;
    try {
      const digest = await digestOf(this.deps.table.entries(), this.bucketBits);
      await server.sendDigest(peer, digest, this.generation++ >>> 0);
    } catch (e) {
      this.deps.logger.log('warn', 'sending the repair digest failed', { peer, error: messageOf(e) });
    }
  }

  private armRepair(): void {
    if (this.options.repairIntervalMs <= 0 || this.stopped) return;
    this.repairTimer = this.deps.clock.setTimer(this.options.repairIntervalMs, () => {
      this.repairTimer = undefined;
      void this.repairTick().finally(() => this.armRepair());
    });
  }

  /** Master: a full resync to peers still waiting for one, a DIGEST to the others. */
  private async repairTick(): Promise<void> {
    const server = this.server;
    if (server === undefined || !this.isMaster || this.stopped) return;
    for (const p of server.peers()) {
      if (this.pending.has(p.id)) this.streamTo(p.id);
      else if (!this.streaming.has(p.id)) await this.sendDigest(p.id);
    }
  }

  /** Backup: compares the master's DIGEST with the local table and asks for the buckets that differ. */
  private async repairFrom(m: DigestMessage): Promise<void> {
    if (this.repairRunning || this.client === undefined) return;
    this.repairRunning = true;
    try {
      const local = await digestOf(this.deps.table.entries(), m.bucketBits);
      const cmp = compareDigest(m, local);
      this.events.emit({ type: 'repair_checked', generation: m.generation, differingBuckets: cmp.buckets.length, missing: cmp.missing, extra: cmp.extra });
      if (cmp.buckets.length > 0) {
        this.deps.logger.log('info', 'sync repair: table differs from the master', { buckets: cmp.buckets.length, missing: cmp.missing, extra: cmp.extra });
        await this.client.requestDelta(m.generation, m.bucketBits, cmp.buckets);
      }
    } catch (e) {
      this.deps.logger.log('warn', 'sync repair failed', { error: messageOf(e) });
    } finally {
      this.repairRunning = false;
    }
  }
}
