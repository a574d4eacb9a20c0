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
 * This module is the driver; the socket is behind `DatagramSink` (mcast.ts is the adapter).
 */

import type { Clock } from '../lib/clock.ts';
import { messageOf } from '../lib/errors.ts';
import { TypedEmitter } from '../lib/events.ts';
import { connEntryProblem } from './conn.ts';
import type { ConnEntry } from './conn.ts';
import { DEFAULT_SYNC_MAXLEN, syncDatagrams } from './sync-v1.ts';

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
}

/**
 * 20,000 datagrams/s (~800,000 IPv4 entries/s at 40 per 1472-byte datagram) in bursts of 64 (~94 KB, under half
 * of a default 208 KB socket buffer): above the 1M-entries-in-10-s goal with room, and a burst always fits the
 * backup thread's buffer even if it has not run at all meanwhile.
 */
export const DEFAULT_INJECT_DATAGRAMS_PER_SECOND = 20_000;
export const DEFAULT_INJECT_BURST = 64;

/** What one injection did. */
export interface InjectResult {
  entries: number;
  datagrams: number;
  bytes: number;
  /** Entries refused before encoding (they cannot be represented on the wire). */
  rejected: number;
  durationMs: number;
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

  constructor(
    private readonly sink: DatagramSink,
    private readonly clock: Clock,
    private readonly options: InjectorOptions,
  ) {
    this.rate = options.datagramsPerSecond ?? DEFAULT_INJECT_DATAGRAMS_PER_SECOND;
    this.burst = Math.max(1, options.burst ?? DEFAULT_INJECT_BURST);
    this.maxLen = options.maxLen ?? DEFAULT_SYNC_MAXLEN;
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
  inject(entries: Iterable<ConnEntry>): Promise<InjectResult> {
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

  private async run(entries: Iterable<ConnEntry>): Promise<InjectResult> {
    const started = this.clock.now();
    const counts = { rejected: 0 };
    let datagrams = 0;
    let bytes = 0;
    let sent = 0;
    // Up to `burst` sends in flight at once: awaiting each send's callback before the next one costs more
    // than the send itself (measured: 1M entries 7.1 s one by one, see docs/operations.md).
    const inFlight: Array<Promise<void>> = [];
    try {
      for (const d of syncDatagrams(this.valid(entries, counts), { syncId: this.options.syncId, maxLen: this.maxLen })) {
        await this.take();
        inFlight.push(this.sink.send(d));
        datagrams++;
        bytes += d.length;
        sent += d[4] ?? 0; // nr_conns
        if (inFlight.length >= this.burst) await Promise.all(inFlight.splice(0));
      }
      await Promise.all(inFlight.splice(0));
    } catch (e) {
      await Promise.allSettled(inFlight);
      this.events.emit({ type: 'inject_error', error: messageOf(e) });
      throw e;
    }
    const result: InjectResult = { entries: sent, datagrams, bytes, rejected: counts.rejected, durationMs: this.clock.now() - started };
    this.events.emit({ type: 'injected', result });
    return result;
  }
}
