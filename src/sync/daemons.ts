/**
 * The kernel's IPVS sync threads, kept running over generic netlink (IpvsClient NEW_DAEMON / DEL_DAEMON /
 * GET_DAEMON). A pure planner compares the threads this director wants with the ones the kernel reports; a
 * small driver (`SyncDaemonSupervisor`) applies the plan at start, on every master/backup change, and every
 * `checkIntervalMs`, so a thread that vanished (someone ran `ipvsadm --stop-daemon`, the module was reloaded)
 * is restarted and counted.
 *
 * Which threads run:
 * - BACKUP, always, on both directors: it turns the peer master's sync datagrams into connection entries, and
 *   it is also what tandem's injector (injector.ts) feeds a resynced table to. It must run on the master too:
 *   after a failback the returning director is master again, and its peer's master thread keeps sending.
 * - MASTER, by `master_thread`: `always` (default) keeps it running on both directors. The kernel sends only
 *   for connections whose packets pass through this director (ip_vs_sync_conn is called from the packet path),
 *   so on a backup it is idle, and on the director that takes over it is already running when the first packet
 *   arrives: no connection created during the takeover is left unsynced. A director running a master and a
 *   backup thread with the same syncid and group works in the kernel: the master sends with multicast loop off,
 *   so it never hears itself. `while_master` starts it on becoming master and stops it on leaving, like
 *   keepalived's lvs_sync_daemon.
 */

import { isIPv4 } from 'node:net';
import type { Clock, TimerHandle } from '../lib/clock.ts';
import { messageOf } from '../lib/errors.ts';
import { TypedEmitter } from '../lib/events.ts';
import type { IpvsClient, SyncDaemon } from '../ipvs/index.ts';

/** What the supervisor needs from the IPVS client. */
export type SyncDaemonControl = Pick<IpvsClient, 'startDaemon' | 'stopDaemon' | 'listDaemons'>;

/** The threads' settings, from the `sync` configuration. */
export interface SyncThreadSettings {
  interface: string;
  syncId: number;
  group: string;
  port: number;
  ttl: number;
  /** The master thread's sync_maxlen; 0 = the kernel's default (the link's MTU). */
  maxLen: number;
  masterThread: 'always' | 'while_master';
}

/**
 * How often GET_DAEMON checks the threads: 5 s. A missing backup thread loses every sync datagram until it is
 * back, so the check should be frequent; one netlink dump every 5 s costs nothing.
 */
export const DEFAULT_DAEMON_CHECK_MS = 5000;

/**
 * The backup thread's sync_maxlen: the largest the kernel takes (65535 minus the IP and UDP headers). It is
 * only the size of the backup thread's receive buffer: the peer's master thread still sends datagrams of its
 * link's size, and the local injection can send 255 entries per datagram (~10 KB) instead of 40, six times
 * fewer datagrams for a full resync.
 */
export function backupMaxLen(group: string): number {
  return isIPv4(group) ? 65535 - 28 : 65535 - 48;
}

/** The thread definitions this director wants, given whether it is master now. */
export function wantedDaemons(s: SyncThreadSettings, isMaster: boolean): SyncDaemon[] {
  const base = { ifname: s.interface, syncId: s.syncId, group: s.group, port: s.port, ttl: s.ttl };
  const out: SyncDaemon[] = [];
  if (s.masterThread === 'always' || isMaster) out.push({ state: 'master', ...base, maxLen: s.maxLen });
  out.push({ state: 'backup', ...base, maxLen: backupMaxLen(s.group) });
  return out;
}

/** True when a running thread matches a wanted one (maxLen 0 accepts whatever the kernel chose). */
export function daemonMatches(wanted: SyncDaemon, running: SyncDaemon): boolean {
  return (
    wanted.state === running.state &&
    wanted.ifname === running.ifname &&
    wanted.syncId === running.syncId &&
    wanted.group === running.group &&
    wanted.port === running.port &&
    wanted.ttl === running.ttl &&
    (wanted.maxLen === 0 || wanted.maxLen === running.maxLen)
  );
}

/** Why a thread is (re)started. */
export type DaemonStartReason = 'initial' | 'missing' | 'mismatch' | 'became_master';

/** What to do to get from `running` to `wanted`: stops first (a mismatched thread is stopped, then started). */
export interface DaemonPlan {
  stop: Array<{ state: 'master' | 'backup'; reason: 'mismatch' | 'not_wanted' }>;
  start: Array<{ daemon: SyncDaemon; reason: DaemonStartReason }>;
}

/**
 * The plan: start wanted threads that are missing, restart ones with other settings, stop a master thread that
 * is not wanted (one this supervisor started, `ownMaster`, or any with `stopUnwantedMaster`). `initial` marks
 * the first plan, so a missing thread then is not counted as lost; a master thread this supervisor did not
 * start is `became_master`, not lost.
 */
export function planDaemons(
  wanted: readonly SyncDaemon[],
  running: readonly SyncDaemon[],
  opts: { initial: boolean; ownMaster: boolean; stopUnwantedMaster?: boolean },
): DaemonPlan {
  const plan: DaemonPlan = { stop: [], start: [] };
  for (const w of wanted) {
    const r = running.find((x) => x.state === w.state);
    if (r === undefined) plan.start.push({ daemon: w, reason: opts.initial ? 'initial' : w.state === 'master' && !opts.ownMaster ? 'became_master' : 'missing' });
    else if (!daemonMatches(w, r)) {
      plan.stop.push({ state: w.state, reason: 'mismatch' });
      plan.start.push({ daemon: w, reason: 'mismatch' });
    }
  }
  if ((opts.stopUnwantedMaster ?? opts.ownMaster) && !wanted.some((w) => w.state === 'master') && running.some((r) => r.state === 'master')) {
    plan.stop.push({ state: 'master', reason: 'not_wanted' });
  }
  return plan;
}

/** What the supervisor reports; metrics and logs subscribe. */
export type SyncDaemonEvent =
  | { type: 'daemon_started'; state: 'master' | 'backup'; reason: DaemonStartReason; ifname: string; syncId: number }
  | { type: 'daemon_stopped'; state: 'master' | 'backup'; reason: 'mismatch' | 'not_wanted' | 'shutdown' }
  /** A thread that was running is gone; it is restarted at once (`daemon_started` reason `missing`). */
  | { type: 'daemon_missing'; state: 'master' | 'backup' }
  | { type: 'daemon_error'; op: 'start' | 'stop' | 'list'; state: 'master' | 'backup' | undefined; error: string }
  /** After every check: the threads as the kernel reports them (with its effective maxLen). */
  | { type: 'daemon_checked'; running: readonly SyncDaemon[] };

/** Keeps the kernel sync threads as wanted; one owner, every netlink call serialized. */
export class SyncDaemonSupervisor {
  readonly events = new TypedEmitter<SyncDaemonEvent>();
  private queue: Promise<void> = Promise.resolve();
  private timer: TimerHandle | undefined;
  private isMaster = false;
  private initial = true;
  private ownMaster = false;
  private stopped = false;
  private lastRunning: SyncDaemon[] = [];
  private readonly checkIntervalMs: number;

  constructor(
    private readonly control: SyncDaemonControl,
    private readonly clock: Clock,
    private readonly settings: SyncThreadSettings,
    opts: { checkIntervalMs?: number } = {},
  ) {
    this.checkIntervalMs = opts.checkIntervalMs ?? DEFAULT_DAEMON_CHECK_MS;
  }

  /** Applies the plan once (resolves when done) and starts the periodic check. */
  async start(isMaster: boolean): Promise<void> {
    this.isMaster = isMaster;
    await this.reconcile();
    this.arm();
  }

  /** The director became master (true) or left it: re-plans at once (matters with `while_master`). */
  setMaster(isMaster: boolean): Promise<void> {
    if (this.isMaster === isMaster) return this.queue;
    this.isMaster = isMaster;
    return this.reconcile();
  }

  /** Checks now (what the timer does). */
  check(): Promise<void> {
    return this.reconcile();
  }

  /** The kernel's view of the threads at the last check (its effective maxLen, for the injector). */
  running(): readonly SyncDaemon[] {
    return this.lastRunning;
  }

  /** Stops the periodic check and the threads this supervisor wants, and waits for queued work. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    await this.queue;
    for (const state of ['master', 'backup'] as const) {
      if (!this.lastRunning.some((d) => d.state === state)) continue;
      try {
        await this.control.stopDaemon(state);
        this.events.emit({ type: 'daemon_stopped', state, reason: 'shutdown' });
      } catch (e) {
        this.events.emit({ type: 'daemon_error', op: 'stop', state, error: messageOf(e) });
      }
    }
    this.lastRunning = [];
  }

  private arm(): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimer(this.checkIntervalMs, () => {
      this.timer = undefined;
      void this.reconcile().finally(() => this.arm());
    });
  }

  private reconcile(): Promise<void> {
    const run = async (): Promise<void> => {
      if (this.stopped) return;
      let running: SyncDaemon[];
      try {
        running = await this.control.listDaemons();
      } catch (e) {
        this.events.emit({ type: 'daemon_error', op: 'list', state: undefined, error: messageOf(e) });
        return;
      }
      const wanted = wantedDaemons(this.settings, this.isMaster);
      const plan = planDaemons(wanted, running, {
        initial: this.initial,
        ownMaster: this.ownMaster,
        stopUnwantedMaster: this.ownMaster || this.settings.masterThread === 'while_master',
      });
      this.initial = false;
      for (const s of plan.stop) {
        try {
          await this.control.stopDaemon(s.state);
          this.events.emit({ type: 'daemon_stopped', state: s.state, reason: s.reason });
          running = running.filter((d) => d.state !== s.state);
          if (s.state === 'master') this.ownMaster = false;
        } catch (e) {
          this.events.emit({ type: 'daemon_error', op: 'stop', state: s.state, error: messageOf(e) });
        }
      }
      for (const s of plan.start) {
        if (s.reason === 'missing') this.events.emit({ type: 'daemon_missing', state: s.daemon.state });
        try {
          await this.control.startDaemon(s.daemon);
          this.events.emit({ type: 'daemon_started', state: s.daemon.state, reason: s.reason, ifname: s.daemon.ifname, syncId: s.daemon.syncId });
          if (s.daemon.state === 'master') this.ownMaster = true;
        } catch (e) {
          this.events.emit({ type: 'daemon_error', op: 'start', state: s.daemon.state, error: messageOf(e) });
        }
      }
      if (plan.start.length > 0 || plan.stop.length > 0) {
        try {
          running = await this.control.listDaemons();
        } catch (e) {
          this.events.emit({ type: 'daemon_error', op: 'list', state: undefined, error: messageOf(e) });
        }
      }
      this.lastRunning = running;
      this.events.emit({ type: 'daemon_checked', running });
    };
    this.queue = this.queue.then(run, run);
    return this.queue;
  }
}
