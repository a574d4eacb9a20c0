/**
 * Scheduling, shared probes and the monitor driven by a FakeClock with injected checkers: staggered start,
 * interval and jitter (reproducible with a seeded generator), retry with delay_before_retry, no overlap, the
 * hard deadline, probe sharing (one execution per interval fanned out to every subscriber) and the events the
 * monitor emits (server_down/server_up with reasons, check_result once per probe, weight_changed).
 */

import test from 'ava';
import { FakeClock } from '../../src/lib/clock.ts';
import {
  HealthMonitor,
  ProbeHub,
  Scheduler,
  firstDelay,
  jitteredInterval,
  probeKey,
  seededRandom,
  withDefaults,
} from '../../src/healthcheck/index.ts';
import type { CheckFn, CheckResult, CycleOutcome, HealthEvent, HealthCheckSpec, HttpCheckSpec, ScheduleSpec } from '../../src/healthcheck/index.ts';

const OK: CheckResult = { ok: true, reason: 'ok', detail: 'fine', durationMs: 1 };
const BAD: CheckResult = { ok: false, reason: 'refused', detail: 'ECONNREFUSED', durationMs: 1 };

/** Lets promise callbacks run (an attempt's result is delivered on a microtask). */
async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

/** Advances the fake clock to `target`, timer by timer, letting promises settle after each. */
async function runUntil(clock: FakeClock, target: number): Promise<void> {
  await flush();
  for (;;) {
    const next = clock.nextDeadline();
    if (next === undefined || next > target) break;
    clock.runUntil(next);
    await flush();
  }
  clock.runUntil(target);
  await flush();
}

function schedule(over: Partial<ScheduleSpec> = {}): ScheduleSpec {
  return { intervalMs: 1000, jitter: 0, retry: 0, delayBeforeRetryMs: 300, deadlineMs: 5000, ...over };
}

/** An attempt returning results from `seq` in turn (the last one repeated), recording start times. */
function scripted(clock: FakeClock, seq: CheckResult[], starts: number[], durationMs = 0): (signal: AbortSignal) => Promise<CheckResult> {
  let i = 0;
  return () => {
    starts.push(clock.now());
    const r = seq[Math.min(i++, seq.length - 1)] ?? OK;
    if (durationMs === 0) return Promise.resolve(r);
    return new Promise((resolve) => clock.setTimer(durationMs, () => resolve(r)));
  };
}

// ---------------------------------------------------------------- scheduler

test('scheduler: the first cycle is staggered within one interval, then cycles follow the interval exactly without jitter', async (t) => {
  const clock = new FakeClock();
  const rng = seededRandom(7);
  const expectFirst = firstDelay({ intervalMs: 1000 }, seededRandom(7));
  const s = new Scheduler(clock, rng);
  const starts: number[] = [];
  s.add('a', schedule(), scripted(clock, [OK], starts), () => {});
  await runUntil(clock, 5000);
  t.is(starts[0], expectFirst);
  t.true(expectFirst < 1000);
  t.deepEqual(starts.slice(1).map((x, i) => x - (starts[i] ?? 0)), Array<number>(starts.length - 1).fill(1000));
});

test('scheduler: staggering spreads many jobs over the interval', async (t) => {
  const clock = new FakeClock();
  const s = new Scheduler(clock, seededRandom(1));
  const starts: number[] = [];
  for (let i = 0; i < 100; i++) s.add(`j${i}`, schedule(), scripted(clock, [OK], starts), () => {});
  await runUntil(clock, 999);
  t.is(starts.length, 100);
  const buckets = new Set(starts.map((x) => Math.floor(x / 100)));
  t.is(buckets.size, 10, 'every tenth of the interval gets some first checks');
});

test('scheduler: jitter keeps every gap within interval +- jitter, and a seed reproduces the schedule', async (t) => {
  const trace = async (seed: number): Promise<number[]> => {
    const clock = new FakeClock();
    const s = new Scheduler(clock, seededRandom(seed));
    const starts: number[] = [];
    s.add('a', schedule({ jitter: 0.1 }), scripted(clock, [OK], starts), () => {});
    await runUntil(clock, 60_000);
    return starts;
  };
  const a = await trace(42);
  const b = await trace(42);
  const c = await trace(43);
  t.deepEqual(a, b);
  t.notDeepEqual(a, c);
  const gaps = a.slice(1).map((x, i) => x - (a[i] ?? 0));
  t.true(gaps.every((g) => g >= 900 && g <= 1100), gaps.join(','));
  t.true(new Set(gaps).size > 5, 'gaps vary');
  const j = jitteredInterval({ intervalMs: 1000, jitter: 3 }, () => 0);
  t.is(j, 500, 'jitter is clamped to 0.5');
});

test('scheduler: retry runs up to `retry` more attempts after delay_before_retry; the cycle reports the last', async (t) => {
  const cases: Array<{ seq: CheckResult[]; retry: number; attempts: number; ok: boolean; offsets: number[] }> = [
    { seq: [BAD], retry: 2, attempts: 3, ok: false, offsets: [0, 300, 600] },
    { seq: [BAD, OK], retry: 2, attempts: 2, ok: true, offsets: [0, 300] },
    { seq: [OK], retry: 2, attempts: 1, ok: true, offsets: [0] },
    { seq: [BAD], retry: 0, attempts: 1, ok: false, offsets: [0] },
  ];
  for (const c of cases) {
    const clock = new FakeClock();
    const s = new Scheduler(clock, () => 0);
    const starts: number[] = [];
    const cycles: CycleOutcome[] = [];
    s.add('a', schedule({ retry: c.retry }), scripted(clock, c.seq, starts), (o) => cycles.push(o));
    await runUntil(clock, 999);
    t.is(cycles.length, 1);
    t.like(cycles[0], { attempts: c.attempts, startedAt: 0 });
    t.is(cycles[0]?.result.ok, c.ok);
    t.deepEqual(starts, c.offsets);
    await runUntil(clock, 1000);
    t.is(starts[starts.length - 1], 1000, 'the next cycle starts one interval after the previous cycle started');
  }
});

test('scheduler: a check slower than the interval never overlaps itself', async (t) => {
  const clock = new FakeClock();
  const s = new Scheduler(clock, () => 0);
  const starts: number[] = [];
  const ends: number[] = [];
  s.add('a', schedule(), scripted(clock, [OK], starts, 1500), (o) => ends.push(o.endedAt));
  await runUntil(clock, 6000);
  t.deepEqual(starts, [0, 1500, 3000, 4500, 6000]);
  t.deepEqual(ends, [1500, 3000, 4500, 6000]);
});

test('scheduler: an attempt that never settles is aborted at the deadline and reported as a timeout', async (t) => {
  const clock = new FakeClock();
  const s = new Scheduler(clock, () => 0);
  const signals: AbortSignal[] = [];
  const cycles: CycleOutcome[] = [];
  s.add('a', schedule({ deadlineMs: 700 }), (signal) => {
    signals.push(signal);
    return new Promise<CheckResult>(() => {});
  }, (o) => cycles.push(o));
  await runUntil(clock, 800);
  t.is(cycles.length, 1);
  t.like(cycles[0]?.result, { ok: false, reason: 'timeout' });
  t.true(signals[0]?.aborted);
});

test('scheduler: removing a job aborts its attempt and discards the result', async (t) => {
  const clock = new FakeClock();
  const s = new Scheduler(clock, () => 0);
  const starts: number[] = [];
  const cycles: CycleOutcome[] = [];
  let signal: AbortSignal | undefined;
  s.add('a', schedule(), (sig) => {
    signal = sig;
    starts.push(clock.now());
    return new Promise((resolve) => clock.setTimer(500, () => resolve(OK)));
  }, (o) => cycles.push(o));
  await runUntil(clock, 100);
  s.remove('a');
  await runUntil(clock, 5000);
  t.true(signal?.aborted);
  t.is(cycles.length, 0);
  t.is(starts.length, 1);
  t.is(s.size, 0);
  t.false(s.add('b', schedule(), scripted(clock, [OK], []), () => {}) === false);
  t.false(s.add('b', schedule(), scripted(clock, [OK], []), () => {}), 'a taken key is refused');
});

test('scheduler: a checker that throws synchronously is a failed cycle, and the job goes on', async (t) => {
  const clock = new FakeClock();
  const s = new Scheduler(clock, () => 0);
  const cycles: CycleOutcome[] = [];
  s.add('a', schedule(), () => {
    throw new Error('boom');
  }, (o) => cycles.push(o));
  await runUntil(clock, 2500);
  t.is(cycles.length, 3);
  t.like(cycles[0]?.result, { ok: false, reason: 'error' });
});

// ---------------------------------------------------------------- shared probes

const spec = (over: Partial<Omit<HttpCheckSpec, 'type'>> = {}): HealthCheckSpec => withDefaults({ type: 'http', path: '/health', intervalMs: 1000, jitter: 0, ...over });

test('probes: the key covers target and check parameters but not rise/fall/alpha', (t) => {
  const target = { address: '10.0.0.1', port: 80 };
  const base = probeKey(target, spec());
  t.is(probeKey(target, spec({ rise: 5, fall: 1, alpha: true })), base);
  t.is(probeKey({ address: '10.0.0.1', port: 80 }, spec()), base);
  t.not(probeKey(target, spec({ timeoutMs: 999 })), base);
  t.not(probeKey(target, spec({ intervalMs: 5000 })), base);
  t.not(probeKey({ ...target, port: 81 }, spec()), base);
  t.not(probeKey({ ...target, bindTo: '10.0.0.9' }, spec()), base);
  t.is(probeKey({ address: '2001:DB8::1', port: 80 }, spec()), probeKey({ address: '2001:db8:0::1', port: 80 }, spec()));
  const udp = (bytes: number[]) => probeKey(target, withDefaults({ type: 'udp', payload: Uint8Array.from(bytes) }));
  t.not(udp([1, 2]), udp([1, 3]));
  t.is(udp([1, 2]), udp([1, 2]));
});

test('probes: two subscribers of an identical probe share one execution per interval', async (t) => {
  const clock = new FakeClock();
  let executions = 0;
  const check: CheckFn = () => {
    executions++;
    return Promise.resolve(OK);
  };
  const hub = new ProbeHub(new Scheduler(clock, () => 0), check);
  const target = { address: '10.0.0.1', port: 80 };
  const a: number[] = [];
  const b: number[] = [];
  const sa = hub.subscribe(target, spec({ rise: 1 }), (o) => a.push(o.startedAt));
  const sb = hub.subscribe(target, spec({ rise: 4, alpha: true }), (o) => b.push(o.startedAt));
  t.is(sa.key, sb.key);
  t.is(hub.size, 1);
  await runUntil(clock, 9999);
  t.is(executions, 10);
  t.deepEqual(a, [0, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000]);
  t.deepEqual(b, a);
  sa.unsubscribe();
  t.is(hub.size, 1, 'the probe runs while a subscriber remains');
  await runUntil(clock, 12_000);
  t.is(b.length, 13);
  sb.unsubscribe();
  t.is(hub.size, 0);
  await runUntil(clock, 20_000);
  t.is(executions, 13, 'no execution after the last unsubscribe');
});

test('probes: different parameters are different probes', async (t) => {
  const clock = new FakeClock();
  let executions = 0;
  const hub = new ProbeHub(new Scheduler(clock, () => 0), () => {
    executions++;
    return Promise.resolve(OK);
  });
  const target = { address: '10.0.0.1', port: 80 };
  hub.subscribe(target, spec(), () => {});
  hub.subscribe(target, spec({ path: '/other' }), () => {});
  t.is(hub.size, 2);
  await runUntil(clock, 1999);
  t.is(executions, 4);
});

// ---------------------------------------------------------------- monitor

/** A checker whose answer per target port can be changed by the test. */
function switchable(): { check: CheckFn; set: (port: number, r: CheckResult) => void; calls: () => number } {
  const answers = new Map<number, CheckResult>();
  let calls = 0;
  return {
    check: (target) => {
      calls++;
      return Promise.resolve(answers.get(target.port) ?? OK);
    },
    set: (port, r) => answers.set(port, r),
    calls: () => calls,
  };
}

test('monitor: server_down after fall failures and server_up after rise passes, with reasons', async (t) => {
  const clock = new FakeClock();
  const c = switchable();
  const m = new HealthMonitor({ clock, random: () => 0, check: c.check, wallClock: () => 1_700_000_000_000 });
  const events: HealthEvent[] = [];
  m.events.on((e) => events.push(e));
  m.watch('vs1/rs1', { address: '10.0.0.1', port: 80 }, spec({ rise: 2, fall: 3 }));
  t.deepEqual([...m.health()], [['vs1/rs1', 'up']]);
  c.set(80, BAD);
  await runUntil(clock, 1500);
  t.deepEqual(events.filter((e) => e.type === 'server_down'), []);
  await runUntil(clock, 2500);
  const down = events.filter((e) => e.type === 'server_down');
  t.is(down.length, 1);
  t.like(down[0], { type: 'server_down', id: 'vs1/rs1', reason: 'refused', detail: 'ECONNREFUSED', at: 2000, check: 'http', wallMs: 1_700_000_000_000 });
  t.deepEqual([...m.health()], [['vs1/rs1', 'down']]);
  c.set(80, OK);
  await runUntil(clock, 4500);
  const up = events.filter((e) => e.type === 'server_up');
  t.is(up.length, 1);
  t.like(up[0], { id: 'vs1/rs1', reason: 'ok', at: 4000 });
  t.is(m.status('vs1/rs1')?.up, true);
  m.stop();
  t.is(m.probeCount, 0);
});

test('monitor: watches sharing a probe get one execution and one check_result per cycle, but their own rise/fall', async (t) => {
  const clock = new FakeClock();
  const c = switchable();
  const m = new HealthMonitor({ clock, random: () => 0, check: c.check });
  const events: HealthEvent[] = [];
  m.events.on((e) => events.push(e));
  const server = { address: '10.0.0.1', port: 80 };
  const k1 = m.watch('vip1/rs', server, spec({ fall: 1 }));
  const k2 = m.watch('vip2/rs', server, spec({ fall: 3 }));
  t.is(k1, k2);
  t.is(m.probeCount, 1);
  c.set(80, BAD);
  await runUntil(clock, 999);
  t.is(c.calls(), 1);
  t.is(events.filter((e) => e.type === 'check_result').length, 1);
  t.deepEqual(events.filter((e) => e.type === 'server_down').map((e) => (e.type === 'server_down' ? e.id : '')), ['vip1/rs']);
  await runUntil(clock, 2999);
  t.is(c.calls(), 3);
  t.deepEqual(events.filter((e) => e.type === 'server_down').map((e) => (e.type === 'server_down' ? e.id : '')), ['vip1/rs', 'vip2/rs']);
  m.unwatch('vip1/rs');
  t.is(m.probeCount, 1);
  m.unwatch('vip2/rs');
  t.is(m.probeCount, 0);
});

test('monitor: alpha watches start down; health() reflects it before any check', (t) => {
  const clock = new FakeClock();
  const m = new HealthMonitor({ clock, random: () => 0, check: switchable().check });
  m.watch('a', { address: '10.0.0.1', port: 80 }, spec({ alpha: true }));
  m.watch('b', { address: '10.0.0.2', port: 80 }, spec());
  t.deepEqual(Object.fromEntries(m.health()), { a: 'down', b: 'up' });
  m.stop();
});

test('monitor: feedback drives a smoothed, bounded weight and weight_changed events', async (t) => {
  const clock = new FakeClock();
  const c = switchable();
  const m = new HealthMonitor({ clock, random: () => 0, check: c.check });
  const changes: Array<[number, number]> = [];
  m.events.on((e) => {
    if (e.type === 'weight_changed') changes.push([e.previous, e.weight]);
  });
  m.watch('rs', { address: '10.0.0.1', port: 80 }, spec(), { weight: 100, weightPolicy: { min: 0, max: 200, smoothing: 0.5, maxStep: 20, minChange: 1 } });
  c.set(80, { ...OK, load: 50 });
  await runUntil(clock, 20_000);
  t.is(m.weights().get('rs'), 50);
  t.true(changes.length >= 3);
  t.true(changes.every(([a, b]) => Math.abs(a - b) <= 20));
  const n = changes.length;
  c.set(80, BAD);
  await runUntil(clock, 25_000);
  t.is(changes.length, n, 'failed checks carry no feedback');
  m.stop();
});

test('monitor: re-watching an id replaces the previous watch', async (t) => {
  const clock = new FakeClock();
  const m = new HealthMonitor({ clock, random: () => 0, check: switchable().check });
  m.watch('rs', { address: '10.0.0.1', port: 80 }, spec());
  m.watch('rs', { address: '10.0.0.1', port: 8080 }, spec());
  t.is(m.probeCount, 1);
  t.is(m.status('rs')?.target.port, 8080);
  m.stop();
});
