/**
 * The pure cores of health checking, table-driven: rise/fall counting (alpha, streak resets), dynamic weight
 * smoothing and bounds, and the defaults of specs.
 */

import test from 'ava';
import {
  DEFAULT_FALL,
  DEFAULT_INTERVAL_MS,
  DEFAULT_RISE,
  DEFAULT_TIMEOUT_MS,
  defaultWeightPolicy,
  feedbackTarget,
  initialRiseFall,
  initialWeight,
  nextWeight,
  observe,
  withDefaults,
} from '../../src/healthcheck/index.ts';
import type { CheckReason, RiseFallConfig, WeightPolicy } from '../../src/healthcheck/index.ts';

const pass = { ok: true, reason: 'ok' as CheckReason, detail: 'fine' };
const failWith = (reason: CheckReason) => ({ ok: false, reason, detail: reason });

/** Runs a sequence of results ('+' pass, '-' fail) and returns the up/down trace and the transitions. */
function run(cfg: RiseFallConfig, seq: string): { trace: string; transitions: string[] } {
  let s = initialRiseFall(cfg);
  let trace = '';
  const transitions: string[] = [];
  for (const c of seq) {
    const step = observe(s, cfg, c === '+' ? pass : failWith('refused'));
    s = step.state;
    trace += s.up ? 'U' : 'D';
    if (step.transition !== undefined) transitions.push(`${step.transition.to}:${step.transition.reason}`);
  }
  return { trace, transitions };
}

const RISEFALL: Array<{ name: string; cfg: RiseFallConfig; seq: string; trace: string; transitions: string[] }> = [
  { name: 'keepalived-like 1/1 starts up, one failure takes it down', cfg: { rise: 1, fall: 1, alpha: false }, seq: '+-+', trace: 'UDU', transitions: ['down:refused', 'up:ok'] },
  { name: 'fall 3 needs three failures in a row', cfg: { rise: 2, fall: 3, alpha: false }, seq: '--+---', trace: 'UUUUUD', transitions: ['down:refused'] },
  { name: 'rise 2 needs two passes in a row', cfg: { rise: 2, fall: 1, alpha: false }, seq: '-+-++', trace: 'DDDDU', transitions: ['down:refused', 'up:ok'] },
  { name: 'alpha starts down and needs rise passes', cfg: { rise: 2, fall: 3, alpha: true }, seq: '++', trace: 'DU', transitions: ['up:ok'] },
  { name: 'alpha with failures stays down without a transition', cfg: { rise: 1, fall: 1, alpha: true }, seq: '---', trace: 'DDD', transitions: [] },
  { name: 'without alpha, passes while up emit nothing', cfg: { rise: 3, fall: 3, alpha: false }, seq: '++++++', trace: 'UUUUUU', transitions: [] },
  { name: 'flapping target below fall never goes down', cfg: { rise: 2, fall: 3, alpha: false }, seq: '--+--+--+', trace: 'UUUUUUUUU', transitions: [] },
  { name: 'nonsense rise/fall of 0 behave as 1', cfg: { rise: 0, fall: 0, alpha: false }, seq: '-+', trace: 'DU', transitions: ['down:refused', 'up:ok'] },
];

for (const c of RISEFALL) {
  test(`risefall: ${c.name}`, (t) => {
    t.deepEqual(run(c.cfg, c.seq), { trace: c.trace, transitions: c.transitions });
  });
}

test('risefall: the transition carries the reason and detail of the result that caused it', (t) => {
  const cfg = { rise: 1, fall: 1, alpha: false };
  const step = observe(initialRiseFall(cfg), cfg, { ok: false, reason: 'status', detail: 'HTTP 503' });
  t.deepEqual(step.transition, { to: 'down', reason: 'status', detail: 'HTTP 503' });
});

test('risefall: counters stay bounded over a long run', (t) => {
  const cfg = { rise: 2, fall: 3, alpha: false };
  let s = initialRiseFall(cfg);
  for (let i = 0; i < 10000; i++) s = observe(s, cfg, pass).state;
  t.is(s.passes, 2);
});

// ---------------------------------------------------------------- weights

test('weights: feedbackTarget reads absolute weights and percentages of the configured weight', (t) => {
  t.is(feedbackTarget({ weight: 40 }, 100), 40);
  t.is(feedbackTarget({ load: 75 }, 200), 150);
  t.is(feedbackTarget({ load: 0 }, 200), 0);
  t.is(feedbackTarget({ weight: 5, load: 50 }, 100), 5, 'absolute wins');
  t.is(feedbackTarget({}, 100), undefined);
  t.is(feedbackTarget({ weight: -3 }, 100), 0);
});

/** Applies samples; returns the applied weights after each. */
function smooth(configured: number, samples: number[], policy: WeightPolicy = defaultWeightPolicy(configured)): number[] {
  let s = initialWeight(configured);
  return samples.map((x) => (s = nextWeight(s, x, policy)).weight);
}

test('weights: a step change converges, moving at most maxStep per sample', (t) => {
  const policy: WeightPolicy = { min: 0, max: 1000, smoothing: 0.5, maxStep: 20, minChange: 1 };
  const w = smooth(100, Array<number>(30).fill(200), policy);
  let prev = 100;
  for (const x of w) {
    t.true(Math.abs(x - prev) <= 20, `${prev} -> ${x}`);
    prev = x;
  }
  t.is(w[w.length - 1], 200);
});

test('weights: min and max bound the applied weight', (t) => {
  const policy: WeightPolicy = { min: 10, max: 150, smoothing: 1, maxStep: 1000, minChange: 1 };
  t.deepEqual(smooth(100, [500, 0, 3], policy), [150, 10, 10]);
});

test('weights: noise around a level does not flap the weight', (t) => {
  const samples = Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? 90 : 110));
  const w = smooth(100, samples);
  const changes = w.filter((x, i) => x !== (i === 0 ? 100 : w[i - 1])).length;
  t.true(changes <= 2, `${changes} changes`);
  t.true(w.every((x) => x >= 95 && x <= 105));
});

test('weights: a single spike moves the weight by less than a third of it', (t) => {
  const w = smooth(100, [400, 100, 100, 100]);
  t.true((w[0] ?? 0) <= 100 + 0.3 * 300 + 1);
  t.true((w[0] ?? 0) < 200);
});

test('weights: drain (0) is reached exactly despite the dead band', (t) => {
  const w = smooth(100, Array<number>(40).fill(0));
  t.is(w[w.length - 1], 0);
});

// ---------------------------------------------------------------- defaults

test('withDefaults documents and applies the defaults', (t) => {
  const s = withDefaults({ type: 'http' });
  t.like(s, {
    type: 'http',
    intervalMs: DEFAULT_INTERVAL_MS,
    timeoutMs: DEFAULT_TIMEOUT_MS,
    connectTimeoutMs: DEFAULT_TIMEOUT_MS,
    readTimeoutMs: DEFAULT_TIMEOUT_MS,
    rise: DEFAULT_RISE,
    fall: DEFAULT_FALL,
    alpha: false,
    retry: 0,
    method: 'GET',
    path: '/',
    tlsVerify: true,
  });
  t.true(DEFAULT_TIMEOUT_MS <= DEFAULT_INTERVAL_MS / 2, 'a hanging target never delays its next check');
  t.like(withDefaults({ type: 'tcp', timeoutMs: 300 }), { connectTimeoutMs: 300, readTimeoutMs: 300 });
  t.like(withDefaults({ type: 'script', command: ['/bin/true'] }), { dynamic: false, killGraceMs: 1000, maxOutputBytes: 4096 });
});
