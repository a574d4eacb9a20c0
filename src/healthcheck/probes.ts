/**
 * Shared probes: identical checks requested by several virtual servers (keepalived #2111, #2358: one real
 * server behind many VIPs checked once per VIP) run once per interval, and each cycle's result fans out to
 * every subscriber.
 *
 * Two requests are the same probe when their probe key is equal: the target (address, port, bind address)
 * plus every parameter that changes what the check does or when it runs (type, request, expectations,
 * timeouts, interval, jitter, retry). Decision parameters (rise, fall, alpha) are not part of the key: each
 * subscriber counts rise/fall on the shared results itself.
 */

import { canonicalAddress } from '../lib/address.ts';
import type { CheckFn } from './types.ts';
import type { CheckTarget, HealthCheckSpec } from './types.ts';
import type { CycleOutcome, ScheduleSpec, Scheduler } from './scheduler.ts';

/** Spec fields that are decisions or already folded into the target, left out of the probe key. */
const NOT_IN_KEY: ReadonlySet<string> = new Set(['rise', 'fall', 'alpha', 'connectAddress', 'connectPort', 'bindTo']);

/** Deterministic JSON: object keys sorted, byte arrays as hex, undefined members (and at `top`, NOT_IN_KEY) dropped. */
function canonicalJson(value: unknown, top = false): string {
  if (value instanceof Uint8Array) return JSON.stringify({ hex: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex') });
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([k, v]) => v !== undefined && !(top && NOT_IN_KEY.has(k)))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** The identity of a probe (see the module header). Addresses are compared in canonical form. */
export function probeKey(target: CheckTarget, spec: HealthCheckSpec): string {
  const t = {
    address: canonicalAddress(target.address) ?? target.address,
    port: target.port,
    bindTo: target.bindTo === undefined ? undefined : (canonicalAddress(target.bindTo) ?? target.bindTo),
  };
  return `${spec.type} ${t.address}:${t.port}${t.bindTo === undefined ? '' : ` from ${t.bindTo}`} ${canonicalJson(spec, true)}`;
}

/** Slack over a check's own timeouts before the scheduler gives up on it (see ScheduleSpec.deadlineMs). */
const DEADLINE_SLACK_MS = 1000;

/** How a spec is scheduled. */
export function scheduleOf(spec: HealthCheckSpec): ScheduleSpec {
  const own = spec.type === 'script' ? spec.timeoutMs + spec.killGraceMs + 2000 : spec.timeoutMs;
  return {
    intervalMs: spec.intervalMs,
    jitter: spec.jitter,
    retry: spec.retry,
    delayBeforeRetryMs: spec.delayBeforeRetryMs,
    deadlineMs: own + DEADLINE_SLACK_MS,
  };
}

/** Receives every cycle of a probe. */
export type ProbeListener = (outcome: CycleOutcome, probe: { key: string; target: CheckTarget; spec: HealthCheckSpec }) => void;

interface Probe {
  readonly key: string;
  readonly target: CheckTarget;
  readonly spec: HealthCheckSpec;
  readonly listeners: Set<ProbeListener>;
  cycles: number;
  last: CycleOutcome | undefined;
}

/** Runs each distinct probe once per interval and fans results out to its subscribers. */
export class ProbeHub {
  private readonly probes = new Map<string, Probe>();

  constructor(private readonly scheduler: Scheduler, private readonly check: CheckFn) {}

  /** Number of distinct probes running. */
  get size(): number {
    return this.probes.size;
  }

  /**
   * Subscribes to the probe of (target, spec), starting it if it is new. Returns the probe key and the
   * unsubscribe function; the probe stops with its last subscriber.
   */
  subscribe(target: CheckTarget, spec: HealthCheckSpec, listener: ProbeListener): { key: string; unsubscribe: () => void } {
    const key = probeKey(target, spec);
    let probe = this.probes.get(key);
    if (probe === undefined) {
      const p: Probe = { key, target, spec, listeners: new Set(), cycles: 0, last: undefined };
      probe = p;
      this.probes.set(key, p);
      this.scheduler.add(key, scheduleOf(spec), (signal) => this.check(target, spec, signal), (outcome) => this.fanOut(p, outcome));
    }
    probe.listeners.add(listener);
    const p = probe;
    let active = true;
    return {
      key,
      unsubscribe: () => {
        if (!active) return;
        active = false;
        p.listeners.delete(listener);
        if (p.listeners.size === 0 && this.probes.get(key) === p) {
          this.probes.delete(key);
          this.scheduler.remove(key);
        }
      },
    };
  }

  /** Subscribers of a probe (0 when it does not run). */
  subscribers(key: string): number {
    return this.probes.get(key)?.listeners.size ?? 0;
  }

  /** Cycles a probe has completed. */
  cycles(key: string): number {
    return this.probes.get(key)?.cycles ?? 0;
  }

  /** The last cycle of a probe, if any. */
  last(key: string): CycleOutcome | undefined {
    return this.probes.get(key)?.last;
  }

  /** Stops every probe. */
  stop(): void {
    for (const key of this.probes.keys()) this.scheduler.remove(key);
    this.probes.clear();
  }

  private fanOut(p: Probe, outcome: CycleOutcome): void {
    p.cycles++;
    p.last = outcome;
    for (const l of [...p.listeners]) {
      try {
        l(outcome, p);
      } catch {
        // One subscriber's bug must not starve the others.
      }
    }
  }
}
