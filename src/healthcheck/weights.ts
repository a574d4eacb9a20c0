/**
 * Dynamic feedback weights: turns what servers report (script exit code - 2, an HTTP body or header `N` or
 * `N%`, an agent's `75%` / `drain` / `weight N`) into the IPVS weight to apply, smoothed and bounded so the
 * kernel's weights never flap. Pure: no I/O, no clock (one sample per check cycle is the time base).
 *
 * Per sample:
 * 1. target = the absolute weight reported, or `load`% of the configured weight;
 * 2. ewma = smoothing * target + (1 - smoothing) * ewma  (exponentially weighted moving average);
 * 3. candidate = round(ewma) clamped to [min, max];
 * 4. the applied weight moves towards the candidate by at most `maxStep` per sample, and not at all when the
 *    move is smaller than `minChange` (a dead band), unless the candidate is a bound (0 = drain must be
 *    reachable exactly).
 */

import type { CheckResult } from './types.ts';

/** How feedback becomes a weight. */
export interface WeightPolicy {
  /** Lowest weight applied (0 lets a server drain itself). */
  min: number;
  /** Highest weight applied. */
  max: number;
  /** EWMA factor in (0, 1]: 1 follows each sample, 0.3 averages over roughly the last 3 samples. */
  smoothing: number;
  /** Largest change of the applied weight per sample. */
  maxStep: number;
  /** Smallest change worth a kernel update. */
  minChange: number;
}

/** The largest weight ipvsadm accepts. */
export const MAX_IPVS_WEIGHT = 65535;

/**
 * Defaults relative to the configured weight: full range 0..65535; smoothing 0.3 (a one-sample spike moves the
 * weight by under a third); at most half the configured weight per cycle; changes under 5 % of it ignored.
 */
export function defaultWeightPolicy(configured: number): WeightPolicy {
  return {
    min: 0,
    max: MAX_IPVS_WEIGHT,
    smoothing: 0.3,
    maxStep: Math.max(1, Math.ceil(configured / 2)),
    minChange: Math.max(1, Math.round(configured * 0.05)),
  };
}

/** Smoothed state of one server's weight. */
export interface WeightState {
  /** The moving average (not rounded). */
  readonly ewma: number;
  /** The weight applied. */
  readonly weight: number;
}

/** The state before any feedback: the configured weight. */
export function initialWeight(configured: number): WeightState {
  return { ewma: configured, weight: configured };
}

/** The weight a result asks for (absolute `weight` wins over `load`), or undefined when it carries none. */
export function feedbackTarget(result: Pick<CheckResult, 'weight' | 'load'>, configured: number): number | undefined {
  if (result.weight !== undefined && Number.isFinite(result.weight)) return Math.max(0, result.weight);
  if (result.load !== undefined && Number.isFinite(result.load)) return Math.max(0, (configured * result.load) / 100);
  return undefined;
}

/** Feeds one target weight. */
export function nextWeight(state: WeightState, target: number, policy: WeightPolicy): WeightState {
  const a = Math.min(1, Math.max(0.001, policy.smoothing));
  const ewma = a * target + (1 - a) * state.ewma;
  const candidate = Math.min(policy.max, Math.max(policy.min, Math.round(ewma)));
  const delta = candidate - state.weight;
  if (delta === 0) return { ewma, weight: state.weight };
  const atBound = candidate === policy.min || candidate === policy.max;
  if (Math.abs(delta) < policy.minChange && !atBound) return { ewma, weight: state.weight };
  const step = Math.max(1, policy.maxStep);
  const weight = state.weight + Math.sign(delta) * Math.min(Math.abs(delta), step);
  return { ewma, weight };
}
