/**
 * Rise/fall counting for one watched server: a pure transition from (state, cycle result) to the next state
 * and, when health flips, a transition carrying the reason. No I/O, no clock.
 *
 * - A server starts up (keepalived without `alpha`) or, with `alpha`, down until proven up.
 * - `rise` consecutive passing cycles bring a down server up; `fall` consecutive failing cycles take an up
 *   server down. A result of the other kind resets the streak (HAProxy semantics).
 * - A "cycle" is what the scheduler reports: an attempt plus its retries (keepalived `retry`), so
 *   retry absorbs failures within a cycle and fall absorbs them across cycles.
 */

import type { CheckReason, CheckResult } from './types.ts';

/** Rise/fall parameters of one watch. */
export interface RiseFallConfig {
  rise: number;
  fall: number;
  alpha: boolean;
}

/** Where one server stands. */
export interface RiseFallState {
  readonly up: boolean;
  /** Consecutive passing cycles (0 after a failure), capped at `rise`. */
  readonly passes: number;
  /** Consecutive failing cycles (0 after a pass), capped at `fall`. */
  readonly failures: number;
}

/** A change of health, with the result that caused it. */
export interface RiseFallTransition {
  to: 'up' | 'down';
  reason: CheckReason;
  detail: string;
}

/** The state before any result: up, or down with `alpha`. */
export function initialRiseFall(cfg: RiseFallConfig): RiseFallState {
  return { up: !cfg.alpha, passes: 0, failures: 0 };
}

/** Feeds one cycle result. */
export function observe(
  state: RiseFallState,
  cfg: RiseFallConfig,
  result: Pick<CheckResult, 'ok' | 'reason' | 'detail'>,
): { state: RiseFallState; transition?: RiseFallTransition } {
  const rise = Math.max(1, Math.floor(cfg.rise));
  const fall = Math.max(1, Math.floor(cfg.fall));
  if (result.ok) {
    const passes = Math.min(state.passes + 1, rise);
    if (!state.up && passes >= rise) {
      return { state: { up: true, passes, failures: 0 }, transition: { to: 'up', reason: result.reason, detail: result.detail } };
    }
    return { state: { up: state.up, passes, failures: 0 } };
  }
  const failures = Math.min(state.failures + 1, fall);
  if (state.up && failures >= fall) {
    return { state: { up: false, passes: 0, failures }, transition: { to: 'down', reason: result.reason, detail: result.detail } };
  }
  return { state: { up: state.up, passes: 0, failures } };
}
