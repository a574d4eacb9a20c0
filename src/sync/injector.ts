/**
 * The injector: puts connection entries into this director's own kernel table by sending them, as IPVS sync
 * protocol v1 datagrams, to its own BACKUP sync thread. There is no netlink call that creates a connection
 * entry; the backup thread is the kernel's one door for them, and it does not check the source address, only
 * the syncid and that the datagram's length equals its size field (ip_vs_sync.c). The datagrams go to the sync
 * group with IP_MULTICAST_IF = the sync interface, multicast loop on and TTL 0: the kernel loops a copy back
 * to local listeners and, because of TTL 0, sends nothing on the wire (ip_mc_output), so the peer director's
 * backup thread never sees a resync it already has.
 *
 * Batching: every datagram holds at most 255 entries and at most `maxLen` bytes, the backup thread's receive
 * buffer (its sync_maxlen as GET_DAEMON reports it; a longer datagram is cut and dropped by the kernel).
 *
 * Pacing: the backup thread drains one socket whose receive buffer is finite (net.core.rmem_default unless
 * the sync_sock_size sysctl says otherwise); datagrams sent faster than it creates entries are dropped by the
 * kernel without a trace here. A token bucket (`datagramsPerSecond`, `burst`) keeps the send rate under what
 * the thread takes; each send awaits its completion, which also lets timers (the election) run in between.
 *
 * Flow control: with a BacklogProbe (backlog.ts) the injector also looks at the backup thread's socket each
 * time it has sent a quarter of the socket's capacity, and waits, up to `maxBacklogWaitMs`, while the socket is
 * more than half full: the token bucket is a ceiling for a fast kernel, the probe keeps a slow one (a loaded or
 * emulated CPU) from dropping what it cannot take yet. The socket's drop counter gives `kernelDrops`.
 *
 * This module is the driver; the socket is behind `DatagramSink` (mcast.ts is the adapter), the fill level
 * behind `BacklogProbe` (backlog.ts).
 */

import type { Clock } from '../lib/clock.ts';
import { messageOf } from '../lib/errors.ts';
import { TypedEmitter } from '../lib/events.ts';
import type { BacklogProbe } from './backlog.ts';
import { connEntryProblem } from './conn.ts';
import type { ConnEntry } from './conn.ts';
import { DEFAULT_SYNC_MAXLEN, EncodedEntries, encodedDatagrams, syncDatagrams } from './sync-v1.ts';

/** Where the datagrams go (the sync group on the sync interface); mcast.ts has the real one. */
export interface DatagramSink {
  /** Resolves when the datagram was handed to the kernel; rejects on a socket error. */
  send(datagram: Buffer): Promise<void>;
  close(): void;
}

/** Injector settings. */
export interface InjectorOptions {
  syncId: number;
  /** The backup thread's sync_maxlen (GET_DAEMON); DEFAULT_SYNC_MAXLEN when unknown. */
  maxLen?: number;
  datagramsPerSecond?: number;
  burst?: number;
  /** The backup thread's socket fill level; without it only the token bucket paces. */
  backlog?: BacklogProbe;
  /** Longest wait for room in the backup socket before sending anyway (default 2000 ms). */
  maxBacklogWaitMs?: number;
}

/**
 * 20,000 datagrams/s (~800,000 IPv4 entries/s at 40 per 1472-byte datagram) in bursts of 64 (~94 KB, under half
 * of a default 208 KB socket buffer): above the 1M-entries-in-10-s goal with room, and a burst always fits the
 * backup thread's buffer even if it has not run at all meanwhile.
 */
export const DEFAULT_INJECT_DATAGRAMS_PER_SECOND = 20_000;
export const DEFAULT_INJECT_BURST = 64;

/** What a datagram takes of a socket's receive buffer (its sk_buff around it), as a multiple of its length. */
const SKB_FACTOR = 2;

/** What one injection did. */
export interface InjectResult {
  entries: number;
  datagrams: number;
  bytes: number;
  /** Entries refused before encoding (they cannot be represented on the wire). */
  rejected: number;
  durationMs: number;
  /** Datagrams the kernel dropped on the backup socket meanwhile (undefined without a probe). */
  kernelDrops?: number;
  /** Time spent waiting for room in the backup socket. */
  backlogWaitMs: number;
}

/** Injector events; metrics subscribe. */
export type InjectorEvent =
  | { type: 'injected'; result: InjectResult }
  | { type: 'inject_rejected'; detail: string }
  | { type: 'inject_error'; error: string };

/** Sends entries to the local backup thread, paced; one injection at a time, in call order. */
export class SyncInjector {
  readonly events = new TypedEmitter<InjectorEvent>();
  private queue: Promise<unknown> = Promise.resolve();
  private tokens: number;
  private lastRefill: number;
  private readonly rate: number;
  private readonly burst: number;
  private maxLen: number;
  /** The burst, made smaller when the probe shows a small backup socket. */
  private effectiveBurst: number;
  /** Bytes (counted as they weigh in the socket) sent since the probe was last read, and when to read it next. */
  private sentSinceProbe = Infinity;
  private probeEveryBytes = 0;
  /** The backup socket's drop counter at the last read, and the drops seen since this injector started. */
  private lastDrops: number | undefined;
  private dropsSeen = 0;

  constructor(
    private readonly sink: DatagramSink,
    private readonly clock: Clock,
    private readonly options: InjectorOptions,
  ) {
    this.rate = options.datagramsPerSecond ?? DEFAULT_INJECT_DATAGRAMS_PER_SECOND;
    this.burst = Math.max(1, options.burst ?? DEFAULT_INJECT_BURST);
    this.maxLen = options.maxLen ?? DEFAULT_SYNC_MAXLEN;
    this.effectiveBurst = this.burst;
    this.tokens = this.burst;
    this.lastRefill = clock.now();
  }

  /** Updates the datagram limit (the backup thread was restarted with another sync_maxlen). */
  setMaxLen(maxLen: number): void {
    this.maxLen = maxLen;
  }

  /**
   * Injects the entries (after any injection still running). Entries that cannot be encoded are counted and
   * skipped. Rejects only when the socket fails (the rest of that injection is abandoned).
   */
  inject(entries: Iterable<ConnEntry> | EncodedEntries): Promise<InjectResult> {
    const job = () => this.run(entries);
    const next = this.queue.then(job, job);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private *valid(entries: Iterable<ConnEntry>, counts: { rejected: number }): Generator<ConnEntry, void, undefined> {
    for (const e of entries) {
      const problem = connEntryProblem(e);
      if (problem === undefined) yield e;
      else {
        counts.rejected++;
        this.events.emit({ type: 'inject_rejected', detail: problem });
      }
    }
  }

  private async take(): Promise<void> {
    for (;;) {
      const now = this.clock.now();
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.lastRefill) * this.rate) / 1000);
      this.lastRefill = now;
      if (this.tokens >= 1) {
        this.tokens -= 1;
        return;
      }
      const waitMs = Math.max(1, Math.ceil(((1 - this.tokens) * 1000) / this.rate));
      await new Promise<void>((resolve) => this.clock.setTimer(waitMs, resolve));
    }
  }

  /**
   * Flow control, between bursts. The probe is read once a quarter of the socket has been sent since the last
   * read (a read costs a /proc file); then, while the socket is more than half full, it waits and reads again. With bursts of at most a quarter of the socket, the queue never exceeds its capacity.
   * Returns the time waited.
   */
  private async waitForRoom(): Promise<number> {
    const probe = this.options.backlog;
    if (probe === undefined || this.sentSinceProbe < this.probeEveryBytes) return 0;
    const started = this.clock.now();
    const maxWait = this.options.maxBacklogWaitMs ?? 2000;
    for (;;) {
      const b = await probe.read().catch(() => undefined);
      this.sentSinceProbe = 0;
      if (b === undefined) {
        this.probeEveryBytes = 0;
        break;
      }
      if (this.lastDrops !== undefined) this.dropsSeen += Math.max(0, b.drops - this.lastDrops);
      this.lastDrops = b.drops;
      this.probeEveryBytes = b.capacityBytes / 4;
      this.effectiveBurst = Math.max(1, Math.min(this.burst, Math.floor(b.capacityBytes / (4 * SKB_FACTOR * this.maxLen))));
      if (b.queuedBytes <= b.capacityBytes / 2) break;
      if (this.clock.now() - started >= maxWait) break;
      await new Promise<void>((resolve) => this.clock.setTimer(2, resolve));
    }
    return this.clock.now() - started;
  }

  private async run(entries: Iterable<ConnEntry> | EncodedEntries): Promise<InjectResult> {
    const started = this.clock.now();
    let backlogWaitMs = await this.waitForRoom();
    const drops0 = this.dropsSeen;
    const counts = { rejected: 0 };
    let datagrams = 0;
    let bytes = 0;
    let sent = 0;
    // Up to `burst` sends in flight at once: awaiting each send's callback before the next one costs more
    // than the send itself (measured: 1M entries 7.1 s one by one, see docs/operations.md).
    const inFlight: Array<Promise<void>> = [];
    try {
      const options = { syncId: this.options.syncId, maxLen: this.maxLen };
      // Entries from a resync BATCH were checked as the kernel checks them and go as they came; objects are
      // checked for what the wire can carry and encoded.
      const out = entries instanceof EncodedEntries ? encodedDatagrams(entries, options) : syncDatagrams(this.valid(entries, counts), options);
      for (const d of out) {
        await this.take();
        inFlight.push(this.sink.send(d));
        this.sentSinceProbe += SKB_FACTOR * d.length;
        datagrams++;
        bytes += d.length;
        sent += d[4] ?? 0; // nr_conns
        if (inFlight.length >= this.effectiveBurst) {
          await Promise.all(inFlight.splice(0));
          backlogWaitMs += await this.waitForRoom();
        }
      }
      await Promise.all(inFlight.splice(0));
    } catch (e) {
      await Promise.allSettled(inFlight);
      this.events.emit({ type: 'inject_error', error: messageOf(e) });
      throw e;
    }
    // Drops the probe saw while this injection ran (those of its last datagrams show at the next read).
    backlogWaitMs += await this.waitForRoom();
    const result: InjectResult = {
      entries: sent, datagrams, bytes, rejected: counts.rejected, durationMs: this.clock.now() - started, backlogWaitMs,
      ...(this.lastDrops !== undefined ? { kernelDrops: this.dropsSeen - drops0 } : {}),
    };
    this.events.emit({ type: 'injected', result });
    return result;
  }
}
