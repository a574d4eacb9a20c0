/**
 * When checks run: one job per probe, driven by the injected Clock (FakeClock in tests), randomness from an
 * injected generator (`seededRandom` makes a schedule reproducible).
 *
 * - Staggered start: a job's first cycle starts at a uniformly random point of its first interval, so
 *   thousands of probes added at once (a reload) do not fire in one burst.
 * - Interval with jitter: a cycle starts `intervalMs * (1 +- jitter)` after the previous cycle STARTED, so the
 *   check rate does not depend on how long checks take; jitter keeps probes from re-synchronising.
 * - No overlap: if a cycle is still running when the next one is due, the next starts when it ends.
 * - Retry (keepalived `retry` / `delay_before_retry`): a failed attempt is retried up to `retry` times, each
 *   after `delayBeforeRetryMs`; the cycle reports its first passing attempt or its last failing one.
 * - Hard deadline: an attempt that has not settled `deadlineMs` after it started is aborted and counted as a
 *   timeout, so a buggy checker can delay its own probe but never wedge it.
 */

import type { Clock, TimerHandle } from '../lib/clock.ts';
import type { CheckResult } from './types.ts';

/** A source of uniform numbers in [0, 1). */
export type Random = () => number;

/** A deterministic generator (mulberry32) for reproducible schedules in tests and simulations. */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** How one job is scheduled. */
export interface ScheduleSpec {
  intervalMs: number;
  /** Fraction of the interval, clamped to [0, 0.5]. */
  jitter: number;
  retry: number;
  delayBeforeRetryMs: number;
  /** An attempt still running this long after its start is aborted and reported as a timeout. */
  deadlineMs: number;
}

/** One attempt: resolves with its result; must stop when `signal` aborts. */
export type Attempt = (signal: AbortSignal) => Promise<CheckResult>;

/** What a finished cycle reports. */
export interface CycleOutcome {
  /** The passing attempt's result, or the last failing one's. */
  result: CheckResult;
  /** Attempts made (1 + retries used). */
  attempts: number;
  /** Clock time the cycle started and ended. */
  startedAt: number;
  endedAt: number;
}

/** Delay of a job's first cycle: uniform over its first interval. */
export function firstDelay(spec: Pick<ScheduleSpec, 'intervalMs'>, random: Random): number {
  return Math.floor(random() * Math.max(0, spec.intervalMs));
}

/** The gap between the starts of two cycles: the interval spread by +- jitter. */
export function jitteredInterval(spec: Pick<ScheduleSpec, 'intervalMs' | 'jitter'>, random: Random): number {
  const j = Math.min(0.5, Math.max(0, spec.jitter));
  return Math.max(1, Math.round(spec.intervalMs * (1 + j * (2 * random() - 1))));
}

interface Job {
  readonly key: string;
  readonly spec: ScheduleSpec;
  readonly attempt: Attempt;
  readonly onCycle: (o: CycleOutcome) => void;
  timer: TimerHandle | undefined;
  /** Shared by the job's attempts until one is aborted (an AbortController per attempt costs more than the rest of the bookkeeping). */
  controller: AbortController;
  /** Sequence number of the attempt in flight (0: none); a result for another number is stale. */
  inflight: number;
  attemptSeq: number;
  cycleStart: number;
  attempts: number;
  removed: boolean;
}

/** Runs jobs on a Clock. Not thread-safe by design: one owner (the probe hub) calls it. */
export class Scheduler {
  private readonly jobs = new Map<string, Job>();

  constructor(private readonly clock: Clock, private readonly random: Random = Math.random) {}

  /** Number of jobs. */
  get size(): number {
    return this.jobs.size;
  }

  /** True when a job with this key exists. */
  has(key: string): boolean {
    return this.jobs.has(key);
  }

  /**
   * Adds a job; its first cycle starts within one interval (staggered). Returns false (and changes nothing)
   * when the key is taken.
   */
  add(key: string, spec: ScheduleSpec, attempt: Attempt, onCycle: (o: CycleOutcome) => void): boolean {
    if (this.jobs.has(key)) return false;
    const job: Job = { key, spec, attempt, onCycle, timer: undefined, controller: new AbortController(), inflight: 0, attemptSeq: 0, cycleStart: 0, attempts: 0, removed: false };
    this.jobs.set(key, job);
    job.timer = this.clock.setTimer(firstDelay(spec, this.random), () => this.startCycle(job));
    return true;
  }

  /** Removes a job: cancels its timer and aborts an attempt in flight (its result is discarded). */
  remove(key: string): void {
    const job = this.jobs.get(key);
    if (job === undefined) return;
    this.jobs.delete(key);
    job.removed = true;
    if (job.timer !== undefined) this.clock.clearTimer(job.timer);
    job.timer = undefined;
    if (job.inflight !== 0) job.controller.abort();
    job.inflight = 0;
  }

  /** Removes every job. */
  stop(): void {
    for (const key of [...this.jobs.keys()]) this.remove(key);
  }

  private startCycle(job: Job): void {
    job.timer = undefined;
    if (job.removed) return;
    job.cycleStart = this.clock.now();
    job.attempts = 0;
    this.runAttempt(job);
  }

  private runAttempt(job: Job): void {
    job.timer = undefined;
    if (job.removed) return;
    job.attempts++;
    if (job.controller.signal.aborted) job.controller = new AbortController();
    const ac = job.controller;
    const seq = ++job.attemptSeq;
    job.inflight = seq;
    const attemptStart = this.clock.now();
    let settled = false;
    const settle = (result: CheckResult): void => {
      if (settled) return;
      settled = true;
      this.clock.clearTimer(guard);
      if (job.removed || job.inflight !== seq) return;
      job.inflight = 0;
      if (!result.ok && job.attempts <= job.spec.retry) {
        job.timer = this.clock.setTimer(job.spec.delayBeforeRetryMs, () => this.runAttempt(job));
        return;
      }
      this.endCycle(job, result);
    };
    const guard = this.clock.setTimer(job.spec.deadlineMs, () => {
      ac.abort();
      settle({ ok: false, reason: 'timeout', detail: `attempt did not settle within ${job.spec.deadlineMs} ms`, durationMs: this.clock.now() - attemptStart });
    });
    let p: Promise<CheckResult>;
    try {
      p = job.attempt(ac.signal);
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(settle, (e: unknown) => settle({ ok: false, reason: 'error', detail: `checker threw: ${e instanceof Error ? e.message : String(e)}`, durationMs: this.clock.now() - attemptStart }));
  }

  private endCycle(job: Job, result: CheckResult): void {
    const now = this.clock.now();
    const outcome: CycleOutcome = { result, attempts: job.attempts, startedAt: job.cycleStart, endedAt: now };
    const due = Math.max(job.cycleStart + jitteredInterval(job.spec, this.random), now);
    job.timer = this.clock.setTimer(due - now, () => this.startCycle(job));
    try {
      job.onCycle(outcome);
    } catch {
      // A subscriber's bug must not stop the probe; subscribers log their own failures.
    }
  }
}
