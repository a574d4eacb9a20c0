/**
 * Matching untrusted reply bytes against operator patterns without letting a reply stall the process.
 *
 * JavaScript's regex engine backtracks: `(a+)+$` against 30 `a`s and a `b` runs for minutes, and it would run
 * on the event loop that also sends the election's adverts. So a pattern is evaluated (a) only on a capped
 * prefix of the reply and (b) inside a `node:vm` script with a `timeout`, which V8 interrupts mid-match; a
 * pattern that exceeds its budget fails the check (`timedOut`), the event loop having been held for at most
 * that budget (twice, see matchBounded). The budget costs a watchdog thread per call (about 0.15 ms), acceptable
 * for the rare checks with a regex; substring matching (`bodyContains`) is linear and preferred.
 */

import vm from 'node:vm';
import { messageOf } from '../../lib/errors.ts';
import type { Result } from '../../lib/result.ts';
import { fail, ok } from '../../lib/result.ts';

const context = vm.createContext(Object.create(null) as object);
const testScript = new vm.Script('re.test(s)');
const compiled = new Map<string, RegExp>();
/** Compiled patterns kept; a configuration has few distinct patterns. */
const MAX_COMPILED = 256;

/** Compiles a pattern (cached), or says why it is not a valid JavaScript regular expression. */
export function compilePattern(pattern: string): Result<RegExp> {
  const hit = compiled.get(pattern);
  if (hit !== undefined) return ok(hit);
  try {
    const re = new RegExp(pattern);
    if (compiled.size >= MAX_COMPILED) compiled.clear();
    compiled.set(pattern, re);
    return ok(re);
  } catch (e) {
    return fail('invalid', `invalid regular expression: ${messageOf(e)}`);
  }
}

/** Outcome of a bounded regex evaluation. */
export type BoundedMatch = { matched: boolean } | { timedOut: true } | { invalid: string };

/** Evaluations of one match: a second chance when the first budget was lost to the scheduler, not to the regex. */
const MAX_EVALUATIONS = 2;

/**
 * Tests `pattern` against `text` with a budget of `timeoutMs`. The vm timeout counts wall time (and the start
 * of its watchdog thread), so on a starved machine a trivial match can overrun it; a timed-out evaluation that
 * used less than half its budget in CPU was descheduled rather than backtracking, and is run once more. A
 * catastrophic pattern burns its whole budget in CPU and fails; the event loop is held at most twice the budget.
 */
export function matchBounded(pattern: string, text: string, timeoutMs: number): BoundedMatch {
  const re = compilePattern(pattern);
  if (!re.ok) return { invalid: re.detail };
  const budget = Math.max(1, Math.ceil(timeoutMs));
  const sandbox = context as { re?: RegExp; s?: string };
  sandbox.re = re.value;
  sandbox.s = text;
  try {
    for (let i = 1; ; i++) {
      const cpu0 = process.cpuUsage();
      try {
        return { matched: testScript.runInContext(context, { timeout: budget }) === true };
      } catch {
        const cpu = process.cpuUsage(cpu0);
        const usedMs = (cpu.user + cpu.system) / 1000;
        if (i >= MAX_EVALUATIONS || usedMs >= budget / 2) return { timedOut: true };
      }
    }
  } finally {
    sandbox.s = '';
  }
}
