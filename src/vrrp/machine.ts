/**
 * The election's state machine for one instance, as a pure function: `step(state, event, now)` returns the
 * next state and the effects a driver must perform (send an advert, arm a timer, add VIPs, announce them).
 * It never reads a clock or touches I/O; `now` is monotonic milliseconds supplied by the driver.
 *
 * Rules follow RFC 5798 section 6.4 (Initialize, Backup, Master); tandem additions are marked as such.
 */

import { compareAddresses } from '../lib/address.ts';
import { PRIORITY_OWNER, PRIORITY_RESIGN, type Advert } from './types.ts';

export const VRRP_STATES = ['INIT', 'BACKUP', 'MASTER', 'FAULT'] as const;
export type VrrpState = (typeof VRRP_STATES)[number];

export const TIMER_NAMES = ['advert', 'masterDown', 'preempt'] as const;
export type TimerName = (typeof TIMER_NAMES)[number];

/**
 * A master re-announces (immediate advert + gratuitous ARP burst) when it hears a lower-priority master, but
 * at most once per this many milliseconds: with a one-way link the other side never yields, and an
 * announcement per received advert at 20 ms intervals would flood the segment.
 */
export const REANNOUNCE_MIN_SPACING_MS = 1000;

/**
 * Timers may fire up to this much before their deadline as seen by `now` (timer and clock sources differ by
 * sub-millisecond rounding); a timer event earlier than that is stale and ignored.
 */
export const TIMER_EARLY_TOLERANCE_MS = 1;

/** What the machine needs to know about its instance (from configuration, fixed for the machine's life). */
export interface InstanceParams {
  name: string;
  vrid: number;
  /** 1..255; 255 = address owner. */
  priority: number;
  advertIntervalMs: number;
  preempt: boolean;
  preemptDelayMs: number;
  /** This node's primary address on the instance's network, for the equal-priority tie-break. */
  primaryAddress: string;
}

/** The master this node currently follows, as learned from its adverts. */
export interface KnownMaster {
  address: string;
  priority: number;
}

export interface MachineState {
  readonly params: InstanceParams;
  readonly state: VrrpState;
  /** RFC 5798 Master_Adver_Interval: learned from the master's adverts while backup. */
  readonly masterAdvertIntervalMs: number;
  /** Deadlines of armed timers (monotonic ms). */
  readonly timers: Readonly<Partial<Record<TimerName, number>>>;
  readonly master: KnownMaster | undefined;
  /** When the last split-brain re-announcement was made (monotonic ms). */
  readonly lastReannounceAt: number | undefined;
  /** A re-announcement was asked for within REANNOUNCE_MIN_SPACING_MS of the last; made at a later advert tick. */
  readonly reannounceDue: boolean;
  /**
   * tandem: preemption is held back (the `preemptHold` event). While set, a backup follows a lower-priority
   * master instead of preempting it; it still takes over when that master goes silent (Master_Down_Timer).
   * Connection sync sets it while a (re)joining director waits for its table (bounded by sync.resync_timeout),
   * so a failback never moves connections to a director that does not know them yet.
   */
  readonly preemptHold: boolean;
}

export type MachineEvent =
  | { type: 'startup' }
  | { type: 'shutdown' }
  /** An advert that already passed authentication and filtering (see ingress.ts). */
  | { type: 'advert'; advert: Advert }
  | { type: 'timer'; timer: TimerName }
  /** The instance's interface went down (or another tracked condition failed). */
  | { type: 'fault'; reason: string }
  | { type: 'faultCleared' }
  /** tandem: hold back (true) or allow (false) preemption of a live lower-priority master; see MachineState.preemptHold. */
  | { type: 'preemptHold'; hold: boolean };

export type TransitionReason =
  | 'startup'
  | 'address_owner'
  | 'master_down'
  | 'preempt_delay'
  | 'higher_priority'
  | 'tie_break'
  | 'shutdown'
  | 'fault'
  | 'fault_cleared';

export type Effect =
  | { type: 'sendAdvert'; priority: number }
  | { type: 'armTimer'; timer: TimerName; at: number }
  | { type: 'cancelTimer'; timer: TimerName }
  | { type: 'addVips' }
  | { type: 'removeVips' }
  /** Start a gratuitous ARP / unsolicited NA burst (first one at once, then the configured repeats). */
  | { type: 'announce'; reason: 'became_master' | 'reannounce' }
  /** Stop any announcement burst and periodic refresh. */
  | { type: 'stopAnnounce' }
  | { type: 'transition'; from: VrrpState; to: VrrpState; reason: TransitionReason; master: KnownMaster | undefined };

export interface StepResult {
  state: MachineState;
  effects: Effect[];
}

/** RFC 5798 section 6.1: Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256. */
export function skewTimeMs(priority: number, masterAdvertIntervalMs: number): number {
  return ((256 - priority) * masterAdvertIntervalMs) / 256;
}

/** RFC 5798 section 6.1: Master_Down_Interval = (3 * Master_Adver_Interval) + Skew_Time. */
export function masterDownIntervalMs(priority: number, masterAdvertIntervalMs: number): number {
  return 3 * masterAdvertIntervalMs + skewTimeMs(priority, masterAdvertIntervalMs);
}

/** The state of a machine that has not started. */
export function initialState(params: InstanceParams): MachineState {
  return {
    params,
    state: 'INIT',
    masterAdvertIntervalMs: params.advertIntervalMs,
    timers: {},
    master: undefined,
    lastReannounceAt: undefined,
    reannounceDue: false,
    preemptHold: false,
  };
}

/** True when an advert from `sender` with `priority` beats this node (RFC 5798 section 6.4.3). */
export function advertWins(params: InstanceParams, priority: number, sender: string): boolean {
  if (priority !== params.priority) return priority > params.priority;
  return compareAddresses(sender, params.primaryAddress) > 0;
}

/** One transition of the machine. Pure: same inputs, same outputs. */
export function step(s: MachineState, event: MachineEvent, now: number): StepResult {
  if (event.type === 'preemptHold') return setPreemptHold(s, event.hold);
  switch (s.state) {
    case 'INIT':
      return stepInit(s, event, now);
    case 'BACKUP':
      return stepBackup(s, event, now);
    case 'MASTER':
      return stepMaster(s, event, now);
    case 'FAULT':
      return stepFault(s, event, now);
  }
}

// --- building blocks -------------------------------------------------------------------------------------

function unchanged(s: MachineState): StepResult {
  return { state: s, effects: [] };
}

function timerDue(s: MachineState, timer: TimerName, now: number): boolean {
  const at = s.timers[timer];
  return at !== undefined && now >= at - TIMER_EARLY_TOLERANCE_MS;
}

function withoutTimers(s: MachineState, effects: Effect[]): MachineState {
  for (const t of TIMER_NAMES) if (s.timers[t] !== undefined) effects.push({ type: 'cancelTimer', timer: t });
  return { ...s, timers: {} };
}

function arm(s: MachineState, timer: TimerName, at: number, effects: Effect[]): MachineState {
  effects.push({ type: 'armTimer', timer, at });
  return { ...s, timers: { ...s.timers, [timer]: at } };
}

function disarm(s: MachineState, timer: TimerName, effects: Effect[]): MachineState {
  if (s.timers[timer] === undefined) return s;
  effects.push({ type: 'cancelTimer', timer });
  const timers = { ...s.timers };
  delete timers[timer];
  return { ...s, timers };
}

/** RFC 5798 section 6.4.1 (Priority = 255 branch) and 6.4.2 (Master_Down_Timer fires): become master. */
function becomeMaster(s: MachineState, now: number, reason: TransitionReason, effects: Effect[]): StepResult {
  const from = s.state;
  let next = withoutTimers(s, effects);
  effects.push({ type: 'transition', from, to: 'MASTER', reason, master: undefined });
  // VIPs first, then the advert and the announcement: the first gratuitous ARP goes out at once, for
  // addresses the kernel already holds.
  effects.push({ type: 'addVips' });
  effects.push({ type: 'sendAdvert', priority: s.params.priority });
  effects.push({ type: 'announce', reason: 'became_master' });
  next = arm({ ...next, state: 'MASTER', master: undefined, masterAdvertIntervalMs: s.params.advertIntervalMs }, 'advert', now + s.params.advertIntervalMs, effects);
  return { state: next, effects };
}

/** RFC 5798 section 6.4.1 (else branch) and 6.4.3 (step down): become backup, waiting Master_Down_Interval. */
function becomeBackup(
  s: MachineState,
  now: number,
  reason: TransitionReason,
  master: KnownMaster | undefined,
  masterAdvertIntervalMs: number,
  effects: Effect[],
): StepResult {
  const from = s.state;
  let next = withoutTimers(s, effects);
  if (from === 'MASTER') {
    effects.push({ type: 'stopAnnounce' });
    effects.push({ type: 'removeVips' });
  }
  effects.push({ type: 'transition', from, to: 'BACKUP', reason, master });
  next = { ...next, state: 'BACKUP', master, masterAdvertIntervalMs, reannounceDue: false };
  next = arm(next, 'masterDown', now + masterDownIntervalMs(s.params.priority, masterAdvertIntervalMs), effects);
  return { state: next, effects };
}

/** Startup (and recovery from FAULT): RFC 5798 section 6.4.1. */
function start(s: MachineState, now: number, reason: TransitionReason): StepResult {
  const effects: Effect[] = [];
  if (s.params.priority === PRIORITY_OWNER) return becomeMaster(s, now, 'address_owner', effects);
  return becomeBackup(s, now, reason, undefined, s.params.advertIntervalMs, effects);
}

function stop(s: MachineState, to: 'INIT' | 'FAULT', reason: TransitionReason): StepResult {
  const effects: Effect[] = [];
  const from = s.state;
  const next = withoutTimers(s, effects);
  if (from === 'MASTER') {
    // RFC 5798 section 6.4.3 (Shutdown): send an advert with priority 0 so a backup takes over after
    // Skew_Time instead of Master_Down_Interval. Also on FAULT (keepalived does the same), best effort.
    effects.push({ type: 'stopAnnounce' });
    effects.push({ type: 'sendAdvert', priority: PRIORITY_RESIGN });
    effects.push({ type: 'removeVips' });
  }
  effects.push({ type: 'transition', from, to, reason, master: undefined });
  return { state: { ...next, state: to, master: undefined, reannounceDue: false }, effects };
}

/**
 * tandem: sets or clears the preemption hold, in any state, with no other effect. Clearing it does not preempt
 * at once: the next advert of the lower-priority master is discarded as RFC 5798 section 6.4.2 says, so this
 * node takes over when its Master_Down_Timer fires (or after preempt_delay, counted from that advert).
 */
function setPreemptHold(s: MachineState, hold: boolean): StepResult {
  if (s.preemptHold === hold) return unchanged(s);
  const effects: Effect[] = [];
  // A preempt_delay countdown started before the hold must not complete during it.
  const next = hold && s.state === 'BACKUP' ? disarm(s, 'preempt', effects) : s;
  return { state: { ...next, preemptHold: hold }, effects };
}

// --- per state -------------------------------------------------------------------------------------------

function stepInit(s: MachineState, event: MachineEvent, now: number): StepResult {
  switch (event.type) {
    case 'startup':
      return start(s, now, 'startup');
    case 'fault':
      return stop(s, 'FAULT', 'fault');
    default:
      return unchanged(s);
  }
}

function stepFault(s: MachineState, event: MachineEvent, now: number): StepResult {
  switch (event.type) {
    case 'faultCleared':
      return start(s, now, 'fault_cleared');
    case 'shutdown':
      return stop(s, 'INIT', 'shutdown');
    default:
      return unchanged(s);
  }
}

function stepBackup(s: MachineState, event: MachineEvent, now: number): StepResult {
  const effects: Effect[] = [];
  switch (event.type) {
    case 'timer':
      if (event.timer === 'masterDown' && timerDue(s, 'masterDown', now)) return becomeMaster(s, now, 'master_down', effects);
      if (event.timer === 'preempt' && timerDue(s, 'preempt', now) && !s.preemptHold) return becomeMaster(s, now, 'preempt_delay', effects);
      return unchanged(s);
    case 'advert': {
      const a = event.advert;
      const interval = a.advertIntervalCs * 10;
      if (a.priority === PRIORITY_RESIGN) {
        // RFC 5798 section 6.4.2: the master resigned; take over after Skew_Time.
        const next = arm(s, 'masterDown', now + skewTimeMs(s.params.priority, s.masterAdvertIntervalMs), effects);
        return { state: { ...next, master: undefined }, effects };
      }
      const lower = a.priority < s.params.priority;
      if (!s.params.preempt || !lower || s.preemptHold) {
        // RFC 5798 section 6.4.2: accept the sender as master; learn its interval; restart the down timer.
        // tandem: also while preemption is held (sync not complete): follow the lower-priority master.
        let next = disarm(s, 'preempt', effects);
        next = { ...next, masterAdvertIntervalMs: interval, master: { address: a.sender, priority: a.priority } };
        next = arm(next, 'masterDown', now + masterDownIntervalMs(s.params.priority, interval), effects);
        return { state: next, effects };
      }
      if (s.params.preemptDelayMs > 0) {
        // tandem (after keepalived's preempt_delay): follow the lower-priority master until the delay since
        // first seeing it has passed, then preempt.
        let next: MachineState = { ...s, masterAdvertIntervalMs: interval, master: { address: a.sender, priority: a.priority } };
        next = arm(next, 'masterDown', now + masterDownIntervalMs(s.params.priority, interval), effects);
        if (next.timers.preempt === undefined) next = arm(next, 'preempt', now + s.params.preemptDelayMs, effects);
        return { state: next, effects };
      }
      // RFC 5798 section 6.4.2: preempting: discard, so Master_Down_Timer fires and this node takes over.
      return unchanged(s);
    }
    case 'shutdown':
      return stop(s, 'INIT', 'shutdown');
    case 'fault':
      return stop(s, 'FAULT', 'fault');
    default:
      return unchanged(s);
  }
}

function stepMaster(s: MachineState, event: MachineEvent, now: number): StepResult {
  const effects: Effect[] = [];
  switch (event.type) {
    case 'timer': {
      if (event.timer !== 'advert' || !timerDue(s, 'advert', now)) return unchanged(s);
      // RFC 5798 section 6.4.3: Adver_Timer fires: send an advert, restart the timer.
      effects.push({ type: 'sendAdvert', priority: s.params.priority });
      let next = s;
      if (s.reannounceDue && (s.lastReannounceAt === undefined || now - s.lastReannounceAt >= REANNOUNCE_MIN_SPACING_MS)) {
        effects.push({ type: 'announce', reason: 'reannounce' });
        next = { ...s, lastReannounceAt: now, reannounceDue: false };
      }
      return { state: arm(next, 'advert', now + s.params.advertIntervalMs, effects), effects };
    }
    case 'advert': {
      const a = event.advert;
      if (a.priority === PRIORITY_RESIGN) {
        // RFC 5798 section 6.4.3: another node resigned; assert mastership at once.
        effects.push({ type: 'sendAdvert', priority: s.params.priority });
        return { state: arm(s, 'advert', now + s.params.advertIntervalMs, effects), effects };
      }
      if (advertWins(s.params, a.priority, a.sender)) {
        // RFC 5798 section 6.4.3: a higher priority (or an equal one from a higher address) takes over.
        // tandem: one last advert with our priority before yielding. When two masters meet after a split, the
        // winner's advert may arrive first and the loser would never be heard; this advert tells the winner
        // there was a conflict, so it re-announces the VIPs and ARP caches that followed the loser come back.
        effects.push({ type: 'sendAdvert', priority: s.params.priority });
        const reason = a.priority === s.params.priority ? 'tie_break' : 'higher_priority';
        return becomeBackup(s, now, reason, { address: a.sender, priority: a.priority }, a.advertIntervalCs * 10, effects);
      }
      // tandem (split-brain heal): another node believes it is master but loses to us. Assert at once with an
      // advert (so it yields without waiting a full interval) and re-announce the VIPs so the network's ARP
      // caches follow this node again, at most once per REANNOUNCE_MIN_SPACING_MS; one asked for sooner is made
      // at the first advert tick after the spacing (the loser of a split sends only one advert before yielding).
      if (s.lastReannounceAt !== undefined && now - s.lastReannounceAt < REANNOUNCE_MIN_SPACING_MS) {
        return s.reannounceDue ? unchanged(s) : { state: { ...s, reannounceDue: true }, effects };
      }
      effects.push({ type: 'sendAdvert', priority: s.params.priority });
      effects.push({ type: 'announce', reason: 'reannounce' });
      const next = arm({ ...s, lastReannounceAt: now, reannounceDue: false }, 'advert', now + s.params.advertIntervalMs, effects);
      return { state: next, effects };
    }
    case 'shutdown':
      return stop(s, 'INIT', 'shutdown');
    case 'fault':
      return stop(s, 'FAULT', 'fault');
    default:
      return unchanged(s);
  }
}
