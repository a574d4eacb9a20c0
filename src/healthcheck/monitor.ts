/**
 * The health-check driver: owns the scheduler, the shared probes and, per watched real server, the rise/fall
 * state and the dynamic weight; emits typed events that consumers (the reconciler, metrics, logs) subscribe to.
 * Time comes from the injected Clock; the wall clock is read only for the `wallMs` display field of events.
 *
 * A watch is identified by the caller's id (typically a real server id of one virtual server). Watches whose
 * probes are identical share one execution per interval (probes.ts); each keeps its own rise/fall counters,
 * since virtual servers may differ in rise, fall and alpha.
 */

import type { Clock } from '../lib/clock.ts';
import { TypedEmitter } from '../lib/events.ts';
import { runCheck } from './check.ts';
import { ProbeHub } from './probes.ts';
import type { ProbeListener } from './probes.ts';
import { initialRiseFall, observe } from './risefall.ts';
import type { RiseFallState } from './risefall.ts';
import { Scheduler } from './scheduler.ts';
import type { CycleOutcome, Random } from './scheduler.ts';
import { resolveTarget } from './types.ts';
import type { CheckFn, CheckReason, CheckResult, CheckTarget, CheckType, HealthCheckSpec, RealServerAddress } from './types.ts';
import { defaultWeightPolicy, feedbackTarget, initialWeight, nextWeight } from './weights.ts';
import type { WeightPolicy, WeightState } from './weights.ts';

/** What the monitor reports. `at` is Clock time (monotonic ms); `wallMs` is for display only. */
export type HealthEvent =
  | {
      type: 'server_up' | 'server_down';
      id: string;
      target: CheckTarget;
      check: CheckType;
      probe: string;
      reason: CheckReason;
      detail: string;
      at: number;
      wallMs: number;
    }
  /** Every completed cycle of a probe, once per probe however many watches share it (metrics). */
  | { type: 'check_result'; probe: string; target: CheckTarget; check: CheckType; result: CheckResult; attempts: number; at: number }
  /** The smoothed dynamic weight of a watch changed. */
  | { type: 'weight_changed'; id: string; target: CheckTarget; weight: number; previous: number; at: number; wallMs: number };

/** One of HealthEvent's types. */
export type HealthEventType = HealthEvent['type'];

/** Per-watch options. */
export interface WatchOptions {
  /** The configured weight; with it, feedback in results (script, HTTP, agent) drives a dynamic weight. */
  weight?: number;
  /** How feedback is smoothed and bounded; default `defaultWeightPolicy(weight)`. */
  weightPolicy?: WeightPolicy;
}

/** Where one watch stands. */
export interface WatchStatus {
  up: boolean;
  /** The dynamic weight, when the watch has a configured weight. */
  weight: number | undefined;
  probe: string;
  target: CheckTarget;
  /** The last cycle's result, once there is one. */
  last: CheckResult | undefined;
}

/** The monitor's collaborators. */
export interface MonitorDeps {
  clock: Clock;
  /** Stagger and jitter randomness; default Math.random. */
  random?: Random;
  /** Runs one attempt; default runCheck (the real checkers). */
  check?: CheckFn;
  /** Wall clock for `wallMs`; default Date.now. */
  wallClock?: () => number;
}

interface Watch {
  readonly id: string;
  readonly spec: HealthCheckSpec;
  readonly target: CheckTarget;
  readonly key: string;
  readonly unsubscribe: () => void;
  readonly configuredWeight: number | undefined;
  readonly policy: WeightPolicy | undefined;
  risefall: RiseFallState;
  weight: WeightState | undefined;
  last: CheckResult | undefined;
}

/** Drives health checks and reports transitions. */
export class HealthMonitor {
  /** Transitions, results and weight changes. */
  readonly events = new TypedEmitter<HealthEvent>();
  private readonly clock: Clock;
  private readonly wallClock: () => number;
  private readonly scheduler: Scheduler;
  private readonly hub: ProbeHub;
  private readonly watches = new Map<string, Watch>();
  /** The last outcome reported as `check_result` per probe, so shared probes report once per cycle. */
  private readonly reported = new Map<string, CycleOutcome>();

  constructor(deps: MonitorDeps) {
    this.clock = deps.clock;
    this.wallClock = deps.wallClock ?? Date.now;
    this.scheduler = new Scheduler(deps.clock, deps.random ?? Math.random);
    this.hub = new ProbeHub(this.scheduler, deps.check ?? runCheck);
  }

  /** Distinct probes running (at most the number of watches). */
  get probeCount(): number {
    return this.hub.size;
  }

  /**
   * Starts checking `server` for watch `id` (replacing a previous watch of that id). The watch starts up, or
   * down with `alpha`; returns its probe key.
   */
  watch(id: string, server: RealServerAddress, spec: HealthCheckSpec, options: WatchOptions = {}): string {
    this.unwatch(id);
    const target = resolveTarget(server, spec);
    const listener: ProbeListener = (outcome, probe) => this.onCycle(id, outcome, probe.key);
    const { key, unsubscribe } = this.hub.subscribe(target, spec, listener);
    const configured = options.weight;
    this.watches.set(id, {
      id,
      spec,
      target,
      key,
      unsubscribe,
      configuredWeight: configured,
      policy: configured === undefined ? undefined : (options.weightPolicy ?? defaultWeightPolicy(configured)),
      risefall: initialRiseFall(spec),
      weight: configured === undefined ? undefined : initialWeight(configured),
      last: undefined,
    });
    return key;
  }

  /** Stops watch `id`; its probe stops when no other watch shares it. */
  unwatch(id: string): void {
    const w = this.watches.get(id);
    if (w === undefined) return;
    this.watches.delete(id);
    w.unsubscribe();
    if (this.hub.subscribers(w.key) === 0) this.reported.delete(w.key);
  }

  /** Where watch `id` stands, or undefined when it is not watched. */
  status(id: string): WatchStatus | undefined {
    const w = this.watches.get(id);
    if (w === undefined) return undefined;
    return { up: w.risefall.up, weight: w.weight?.weight, probe: w.key, target: w.target, last: w.last };
  }

  /** Health of every watch by id (the shape ipvs/derive takes as its HealthMap). */
  health(): Map<string, 'up' | 'down'> {
    const m = new Map<string, 'up' | 'down'>();
    for (const w of this.watches.values()) m.set(w.id, w.risefall.up ? 'up' : 'down');
    return m;
  }

  /** Dynamic weights of the watches that have one. */
  weights(): Map<string, number> {
    const m = new Map<string, number>();
    for (const w of this.watches.values()) if (w.weight !== undefined) m.set(w.id, w.weight.weight);
    return m;
  }

  /** Stops every watch and probe; in-flight attempts are aborted. */
  stop(): void {
    for (const id of [...this.watches.keys()]) this.unwatch(id);
    this.hub.stop();
    this.reported.clear();
  }

  private onCycle(id: string, outcome: CycleOutcome, key: string): void {
    const w = this.watches.get(id);
    if (w === undefined) return;
    const at = this.clock.now();
    if (this.reported.get(key) !== outcome) {
      this.reported.set(key, outcome);
      this.events.emit({ type: 'check_result', probe: key, target: w.target, check: w.spec.type, result: outcome.result, attempts: outcome.attempts, at });
    }
    const result = outcome.result;
    w.last = result;
    const step = observe(w.risefall, w.spec, result);
    w.risefall = step.state;
    if (step.transition !== undefined) {
      this.events.emit({
        type: step.transition.to === 'up' ? 'server_up' : 'server_down',
        id,
        target: w.target,
        check: w.spec.type,
        probe: key,
        reason: step.transition.reason,
        detail: step.transition.detail,
        at,
        wallMs: this.wallClock(),
      });
    }
    if (result.ok && w.weight !== undefined && w.policy !== undefined && w.configuredWeight !== undefined) {
      const target = feedbackTarget(result, w.configuredWeight);
      if (target !== undefined) {
        const before = w.weight.weight;
        w.weight = nextWeight(w.weight, target, w.policy);
        if (w.weight.weight !== before) {
          this.events.emit({ type: 'weight_changed', id, target: w.target, weight: w.weight.weight, previous: before, at, wallMs: this.wallClock() });
        }
      }
    }
  }
}
