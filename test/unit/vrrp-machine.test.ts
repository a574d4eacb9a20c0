import test from 'ava';
import fc from 'fast-check';
import {
  initialState,
  masterDownIntervalMs,
  skewTimeMs,
  step,
  type Effect,
  type InstanceParams,
  type MachineEvent,
  type MachineState,
  type VrrpState,
} from '../../src/vrrp/machine.ts';
import type { Advert } from '../../src/vrrp/types.ts';
import { FakeClock } from '../../src/lib/clock.ts';

const BASE: InstanceParams = {
  name: 'VI_1',
  vrid: 51,
  priority: 100,
  advertIntervalMs: 1000,
  preempt: true,
  preemptDelayMs: 0,
  primaryAddress: '10.99.0.2',
};

function params(over: Partial<InstanceParams> = {}): InstanceParams {
  return { ...BASE, ...over };
}

function advert(priority: number, sender = '10.99.0.3', intervalCs = 100): MachineEvent {
  const a: Advert = { vrid: 51, priority, advertIntervalCs: intervalCs, family: 4, sender, addresses: ['10.99.0.100'] };
  return { type: 'advert', advert: a };
}

function run(p: InstanceParams, events: Array<[number, MachineEvent]>): { s: MachineState; effects: Effect[][] } {
  let s = initialState(p);
  const effects: Effect[][] = [];
  for (const [at, e] of events) {
    const r = step(s, e, at);
    s = r.state;
    effects.push(r.effects);
  }
  return { s, effects };
}

function types(effects: Effect[] | undefined): string[] {
  return (effects ?? []).map((e) => (e.type === 'transition' ? `transition:${e.to}:${e.reason}` : e.type === 'sendAdvert' ? `sendAdvert:${e.priority}` : e.type));
}

test('RFC 5798 timing formulas: skew and master-down interval', (t) => {
  t.is(skewTimeMs(100, 1000), 609.375);
  t.is(masterDownIntervalMs(100, 1000), 3609.375);
  t.is(masterDownIntervalMs(150, 20), 60 + (106 * 20) / 256);
  t.is(skewTimeMs(255, 1000), 1000 / 256);
});

test('startup with priority < 255 enters BACKUP and arms Master_Down_Timer', (t) => {
  const r = step(initialState(params()), { type: 'startup' }, 0);
  t.is(r.state.state, 'BACKUP');
  t.deepEqual(r.state.timers, { masterDown: 3609.375 });
  t.deepEqual(types(r.effects), ['transition:BACKUP:startup', 'armTimer']);
});

test('startup with priority 255 (address owner) becomes MASTER at once', (t) => {
  const r = step(initialState(params({ priority: 255 })), { type: 'startup' }, 5);
  t.is(r.state.state, 'MASTER');
  t.deepEqual(types(r.effects), ['transition:MASTER:address_owner', 'addVips', 'sendAdvert:255', 'announce', 'armTimer']);
  t.deepEqual(r.state.timers, { advert: 1005 });
});

type Case = {
  name: string;
  p?: Partial<InstanceParams>;
  events: Array<[number, MachineEvent]>;
  state: VrrpState;
  last: string[];
  timers?: MachineState['timers'];
};

const CASES: Case[] = [
  {
    name: 'BACKUP: Master_Down_Timer fires -> MASTER, VIPs, advert, announce',
    events: [[0, { type: 'startup' }], [3609.375, { type: 'timer', timer: 'masterDown' }]],
    state: 'MASTER',
    last: ['cancelTimer', 'transition:MASTER:master_down', 'addVips', 'sendAdvert:100', 'announce', 'armTimer'],
    timers: { advert: 4609.375 },
  },
  {
    name: 'BACKUP: a stale masterDown timer event before its deadline is ignored',
    events: [[0, { type: 'startup' }], [1000, { type: 'timer', timer: 'masterDown' }]],
    state: 'BACKUP',
    last: [],
  },
  {
    name: 'BACKUP: timer events for timers not armed are ignored',
    events: [[0, { type: 'startup' }], [9000, { type: 'timer', timer: 'advert' }]],
    state: 'BACKUP',
    last: [],
  },
  {
    name: 'BACKUP: higher-priority advert restarts Master_Down_Timer and learns the interval',
    events: [[0, { type: 'startup' }], [500, advert(150, '10.99.0.3', 20)]],
    state: 'BACKUP',
    last: ['armTimer'],
    timers: { masterDown: 500 + masterDownIntervalMs(100, 200) },
  },
  {
    name: 'BACKUP: equal-priority advert is accepted (RFC: priority >= local)',
    events: [[0, { type: 'startup' }], [500, advert(100, '10.99.0.1')]],
    state: 'BACKUP',
    last: ['armTimer'],
    timers: { masterDown: 500 + 3609.375 },
  },
  {
    name: 'BACKUP with preempt: lower-priority advert is discarded, so the down timer still fires',
    events: [[0, { type: 'startup' }], [500, advert(50)]],
    state: 'BACKUP',
    last: [],
    timers: { masterDown: 3609.375 },
  },
  {
    name: 'BACKUP with nopreempt: lower-priority advert is accepted as master',
    p: { preempt: false },
    events: [[0, { type: 'startup' }], [500, advert(50)]],
    state: 'BACKUP',
    last: ['armTimer'],
    timers: { masterDown: 500 + 3609.375 },
  },
  {
    name: 'BACKUP with nopreempt: the down timer keeps being pushed back by a lower master',
    p: { preempt: false },
    events: [[0, { type: 'startup' }], [3000, advert(50)], [3609.375, { type: 'timer', timer: 'masterDown' }]],
    state: 'BACKUP',
    last: [],
  },
  {
    name: 'BACKUP with preempt_delay: a lower master is followed and a preempt timer armed once',
    p: { preemptDelayMs: 5000 },
    events: [[0, { type: 'startup' }], [500, advert(50)], [1500, advert(50)]],
    state: 'BACKUP',
    last: ['armTimer'],
    timers: { masterDown: 1500 + 3609.375, preempt: 5500 },
  },
  {
    name: 'BACKUP with preempt_delay: the preempt timer fires -> MASTER (preempt_delay)',
    p: { preemptDelayMs: 5000 },
    events: [[0, { type: 'startup' }], [500, advert(50)], [5500, { type: 'timer', timer: 'preempt' }]],
    state: 'MASTER',
    last: ['cancelTimer', 'cancelTimer', 'transition:MASTER:preempt_delay', 'addVips', 'sendAdvert:100', 'announce', 'armTimer'],
  },
  {
    name: 'BACKUP with preempt_delay: a higher master appearing cancels the preempt timer',
    p: { preemptDelayMs: 5000 },
    events: [[0, { type: 'startup' }], [500, advert(50)], [600, advert(200)]],
    state: 'BACKUP',
    last: ['cancelTimer', 'armTimer'],
    timers: { masterDown: 600 + 3609.375 },
  },
  {
    name: 'BACKUP: priority 0 advert -> Master_Down_Timer = Skew_Time',
    events: [[0, { type: 'startup' }], [500, advert(150)], [900, advert(0)]],
    state: 'BACKUP',
    last: ['armTimer'],
    timers: { masterDown: 900 + 609.375 },
  },
  {
    name: 'BACKUP: priority 0 then skew time passes -> MASTER',
    events: [[0, { type: 'startup' }], [500, advert(150)], [900, advert(0)], [1509.375, { type: 'timer', timer: 'masterDown' }]],
    state: 'MASTER',
    last: ['cancelTimer', 'transition:MASTER:master_down', 'addVips', 'sendAdvert:100', 'announce', 'armTimer'],
  },
  {
    name: 'MASTER: Adver_Timer fires -> advert and re-arm',
    p: { priority: 255 },
    events: [[0, { type: 'startup' }], [1000, { type: 'timer', timer: 'advert' }]],
    state: 'MASTER',
    last: ['sendAdvert:255', 'armTimer'],
    timers: { advert: 2000 },
  },
  {
    name: 'MASTER: higher-priority advert -> one last advert (so the winner re-announces), BACKUP, VIPs removed, interval learned',
    p: { priority: 255 },
    events: [[0, { type: 'startup' }], [100, advert(255, '10.99.0.9', 10)]],
    state: 'BACKUP',
    last: ['sendAdvert:255', 'cancelTimer', 'stopAnnounce', 'removeVips', 'transition:BACKUP:tie_break', 'armTimer'],
    timers: { masterDown: 100 + masterDownIntervalMs(255, 100) },
  },
  {
    name: 'MASTER: equal priority from a higher address -> one last advert, then BACKUP (tie_break)',
    events: [[0, { type: 'startup' }], [3609.375, { type: 'timer', timer: 'masterDown' }], [4000, advert(100, '10.99.0.3')]],
    state: 'BACKUP',
    last: ['sendAdvert:100', 'cancelTimer', 'stopAnnounce', 'removeVips', 'transition:BACKUP:tie_break', 'armTimer'],
  },
  {
    name: 'MASTER: equal priority from a lower address -> stays MASTER and re-announces',
    events: [[0, { type: 'startup' }], [3609.375, { type: 'timer', timer: 'masterDown' }], [4000, advert(100, '10.99.0.1')]],
    state: 'MASTER',
    last: ['sendAdvert:100', 'announce', 'armTimer'],
  },
  {
    name: 'MASTER: lower priority (split brain) -> advert + re-announce, then rate-limited',
    events: [
      [0, { type: 'startup' }],
      [3609.375, { type: 'timer', timer: 'masterDown' }],
      [4000, advert(50)],
      [4500, advert(50)],
    ],
    state: 'MASTER',
    last: [],
  },
  {
    name: 'MASTER: a re-announcement asked for too soon is made at the first advert tick after the spacing',
    events: [
      [0, { type: 'startup' }],
      [3609.375, { type: 'timer', timer: 'masterDown' }],
      [4000, advert(50)],
      [4500, advert(50)],
      [5000, { type: 'timer', timer: 'advert' }],
    ],
    state: 'MASTER',
    last: ['sendAdvert:100', 'announce', 'armTimer'],
  },
  {
    name: 'MASTER: priority 0 from another node -> immediate advert',
    events: [[0, { type: 'startup' }], [3609.375, { type: 'timer', timer: 'masterDown' }], [4000, advert(0)]],
    state: 'MASTER',
    last: ['sendAdvert:100', 'armTimer'],
    timers: { advert: 5000 },
  },
  {
    name: 'MASTER: shutdown -> priority 0 advert, VIPs removed, INIT',
    events: [[0, { type: 'startup' }], [3609.375, { type: 'timer', timer: 'masterDown' }], [4000, { type: 'shutdown' }]],
    state: 'INIT',
    last: ['cancelTimer', 'stopAnnounce', 'sendAdvert:0', 'removeVips', 'transition:INIT:shutdown'],
    timers: {},
  },
  {
    name: 'BACKUP: shutdown -> INIT without advert',
    events: [[0, { type: 'startup' }], [100, { type: 'shutdown' }]],
    state: 'INIT',
    last: ['cancelTimer', 'transition:INIT:shutdown'],
  },
  {
    name: 'MASTER: fault -> FAULT, resigns and removes VIPs',
    events: [[0, { type: 'startup' }], [3609.375, { type: 'timer', timer: 'masterDown' }], [4000, { type: 'fault', reason: 'link down' }]],
    state: 'FAULT',
    last: ['cancelTimer', 'stopAnnounce', 'sendAdvert:0', 'removeVips', 'transition:FAULT:fault'],
  },
  {
    name: 'BACKUP: fault -> FAULT',
    events: [[0, { type: 'startup' }], [100, { type: 'fault', reason: 'link down' }]],
    state: 'FAULT',
    last: ['cancelTimer', 'transition:FAULT:fault'],
  },
  {
    name: 'FAULT: adverts and timers are ignored',
    events: [[0, { type: 'startup' }], [100, { type: 'fault', reason: 'x' }], [200, advert(200)], [9000, { type: 'timer', timer: 'masterDown' }]],
    state: 'FAULT',
    last: [],
  },
  {
    name: 'FAULT: cleared -> BACKUP with a fresh down timer',
    events: [[0, { type: 'startup' }], [100, { type: 'fault', reason: 'x' }], [200, { type: 'faultCleared' }]],
    state: 'BACKUP',
    last: ['transition:BACKUP:fault_cleared', 'armTimer'],
    timers: { masterDown: 200 + 3609.375 },
  },
  {
    name: 'FAULT: cleared with priority 255 -> MASTER',
    p: { priority: 255 },
    events: [[0, { type: 'startup' }], [100, { type: 'fault', reason: 'x' }], [200, { type: 'faultCleared' }]],
    state: 'MASTER',
    last: ['transition:MASTER:address_owner', 'addVips', 'sendAdvert:255', 'announce', 'armTimer'],
  },
  {
    name: 'INIT: fault before startup -> FAULT',
    events: [[0, { type: 'fault', reason: 'no interface' }]],
    state: 'FAULT',
    last: ['transition:FAULT:fault'],
  },
  {
    name: 'INIT: adverts before startup are ignored',
    events: [[0, advert(200)]],
    state: 'INIT',
    last: [],
  },
];

for (const c of CASES) {
  test(`transition: ${c.name}`, (t) => {
    const { s, effects } = run(params(c.p), c.events);
    t.is(s.state, c.state);
    t.deepEqual(types(effects[effects.length - 1]), c.last);
    if (c.timers !== undefined) t.deepEqual(s.timers, c.timers);
  });
}

test('backup remembers the master it follows; a master follows nobody', (t) => {
  const { s } = run(params(), [[0, { type: 'startup' }], [10, advert(150, '10.99.0.3')]]);
  t.deepEqual(s.master, { address: '10.99.0.3', priority: 150 });
  const m = run(params(), [[0, { type: 'startup' }], [3609.375, { type: 'timer', timer: 'masterDown' }]]);
  t.is(m.s.master, undefined);
});

test('IPv6 tie-break compares addresses as unsigned 128-bit numbers', (t) => {
  const p = params({ primaryAddress: 'fd00::2' });
  const { s } = run(p, [[0, { type: 'startup' }], [3609.375, { type: 'timer', timer: 'masterDown' }], [4000, advert(100, 'fd00::10')]]);
  t.is(s.state, 'BACKUP');
  const lower = run(p, [[0, { type: 'startup' }], [3609.375, { type: 'timer', timer: 'masterDown' }], [4000, advert(100, 'fd00::1')]]);
  t.is(lower.s.state, 'MASTER');
});

// --- properties ------------------------------------------------------------------------------------------

const senderArb = fc.constantFrom('10.99.0.1', '10.99.0.3', '10.99.0.200');
const eventArb: fc.Arbitrary<MachineEvent> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ p: fc.integer({ min: 0, max: 255 }), s: senderArb, i: fc.integer({ min: 1, max: 400 }) }).map(({ p, s, i }) => advert(p, s, i)) },
  { weight: 4, arbitrary: fc.constantFrom<MachineEvent>({ type: 'timer', timer: 'masterDown' }, { type: 'timer', timer: 'advert' }, { type: 'timer', timer: 'preempt' }) },
  { weight: 1, arbitrary: fc.constantFrom<MachineEvent>({ type: 'startup' }, { type: 'shutdown' }, { type: 'fault', reason: 'x' }, { type: 'faultCleared' }) },
);
const paramsArb = fc.record({
  priority: fc.integer({ min: 1, max: 255 }),
  advertIntervalMs: fc.integer({ min: 1, max: 400 }).map((cs) => cs * 10),
  preempt: fc.boolean(),
  preemptDelayMs: fc.constantFrom(0, 0, 500, 3000),
});

test('property: any sequence of adverts and timeouts never yields two masters in one node\'s view', (t) => {
  fc.assert(
    fc.property(paramsArb, fc.array(fc.tuple(fc.integer({ min: 0, max: 5000 }), eventArb), { maxLength: 60 }), (over, evs) => {
      const p = params(over);
      let s = initialState(p);
      let now = 0;
      let vipsHeld = false;
      for (const [dt, e] of evs) {
        now += dt;
        const r = step(s, e, now);
        s = r.state;
        for (const eff of r.effects) {
          if (eff.type === 'addVips') vipsHeld = true;
          if (eff.type === 'removeVips') vipsHeld = false;
        }
        // A master never believes another node is master.
        if (s.state === 'MASTER' && s.master !== undefined) return false;
        // After an advert that beats this node, it is not master.
        if (e.type === 'advert' && e.advert.priority > 0 && (e.advert.priority > p.priority || (e.advert.priority === p.priority && e.advert.sender > p.primaryAddress)) && s.state === 'MASTER') return false;
        // VIPs are held exactly while MASTER.
        if (vipsHeld !== (s.state === 'MASTER')) return false;
        // Timers match the state: master has Adver_Timer only, backup has Master_Down_Timer.
        if (s.state === 'MASTER' && (s.timers.advert === undefined || s.timers.masterDown !== undefined)) return false;
        if (s.state === 'BACKUP' && (s.timers.masterDown === undefined || s.timers.advert !== undefined)) return false;
        if ((s.state === 'INIT' || s.state === 'FAULT') && Object.keys(s.timers).length > 0) return false;
      }
      return true;
    }),
    { numRuns: 3000 },
  );
  t.pass();
});

/** Simulates N machines on a lossless network with a fake clock; adverts arrive after `delay` ms. */
function simulate(nodes: InstanceParams[], delay: number, until: number, kill?: { node: number; at: number }) {
  const clock = new FakeClock();
  const states = nodes.map((p) => initialState(p));
  const alive = nodes.map(() => true);
  const timers = nodes.map(() => new Map<string, { id: number }>());
  const apply = (i: number, e: MachineEvent) => {
    if (!alive[i]) return;
    const r = step(states[i]!, e, clock.now());
    states[i] = r.state;
    for (const eff of r.effects) {
      if (eff.type === 'armTimer') {
        const old = timers[i]!.get(eff.timer);
        if (old) clock.clearTimer(old);
        timers[i]!.set(eff.timer, clock.setTimer(eff.at - clock.now(), () => apply(i, { type: 'timer', timer: eff.timer })));
      } else if (eff.type === 'cancelTimer') {
        const old = timers[i]!.get(eff.timer);
        if (old) clock.clearTimer(old);
        timers[i]!.delete(eff.timer);
      } else if (eff.type === 'sendAdvert') {
        const p = nodes[i]!;
        const a: Advert = { vrid: p.vrid, priority: eff.priority, advertIntervalCs: p.advertIntervalMs / 10, family: 4, sender: p.primaryAddress, addresses: [] };
        for (let j = 0; j < nodes.length; j++) if (j !== i) clock.setTimer(delay, () => apply(j, { type: 'advert', advert: a }));
      }
    }
  };
  nodes.forEach((_, i) => clock.setTimer(i * 7, () => apply(i, { type: 'startup' })));
  if (kill) clock.setTimer(kill.at, () => { alive[kill.node] = false; });
  clock.runUntil(until);
  return { states, alive, clock };
}

test('property: on a lossless network a group settles on exactly one master, the best one', (t) => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.integer({ min: 1, max: 254 }), { minLength: 2, maxLength: 4 }),
      fc.integer({ min: 2, max: 100 }),
      fc.integer({ min: 0, max: 5 }),
      (prios, intervalCs, delay) => {
        const nodes = prios.map((priority, i) => params({ priority, advertIntervalMs: intervalCs * 10, primaryAddress: `10.99.0.${i + 2}` }));
        const { states } = simulate(nodes, delay, 20 * intervalCs * 10 + 10_000);
        const masters = states.filter((s) => s.state === 'MASTER');
        if (masters.length !== 1) return false;
        const best = Math.max(...prios);
        return masters[0]!.params.priority === best && states.every((s) => s.state === 'MASTER' || s.master?.priority === best);
      },
    ),
    { numRuns: 300 },
  );
  t.pass();
});

test('simulation: killing the master hands over within Master_Down_Interval of its last advert', (t) => {
  const nodes = [params({ priority: 150, advertIntervalMs: 100, primaryAddress: '10.99.0.2' }), params({ priority: 100, advertIntervalMs: 100, primaryAddress: '10.99.0.3' })];
  const { states } = simulate(nodes, 1, 5000, { node: 0, at: 3000 });
  t.is(states[1]!.state, 'MASTER');
  const early = simulate(nodes, 1, 3000 + masterDownIntervalMs(100, 100) - 110, { node: 0, at: 3000 });
  t.is(early.states[1]!.state, 'BACKUP');
  const late = simulate(nodes, 1, 3000 + masterDownIntervalMs(100, 100) + 1, { node: 0, at: 3000 });
  t.is(late.states[1]!.state, 'MASTER');
});

// --- tandem: preemption hold (sync-gated preemption) -----------------------------------------------------

test('preempt hold: a higher-priority backup follows a lower-priority master instead of preempting', (t) => {
  const p = params({ priority: 200 });
  const { s, effects } = run(p, [
    [0, { type: 'startup' }],
    [1, { type: 'preemptHold', hold: true }],
    [100, advert(100)],
    [1100, advert(100)],
  ]);
  t.is(s.state, 'BACKUP');
  t.deepEqual(s.master, { address: '10.99.0.3', priority: 100 });
  t.deepEqual(types(effects[2]), ['armTimer'], 'the advert restarts Master_Down_Timer: the master is accepted');
  t.is(s.timers.masterDown, 1100 + masterDownIntervalMs(200, 1000));
});

test('preempt hold released: the next lower-priority advert is discarded and Master_Down_Timer takes over', (t) => {
  const p = params({ priority: 200 });
  const held = run(p, [
    [0, { type: 'startup' }],
    [1, { type: 'preemptHold', hold: true }],
    [100, advert(100)],
    [200, { type: 'preemptHold', hold: false }],
    [1100, advert(100)],
  ]);
  t.deepEqual(types(held.effects[3]), [], 'releasing the hold does nothing by itself');
  t.deepEqual(types(held.effects[4]), [], 'the advert is discarded (RFC 5798 6.4.2 preempt)');
  const down = held.s.timers.masterDown!;
  t.is(down, 100 + masterDownIntervalMs(200, 1000), 'the down timer still runs from the last accepted advert');
  const r = step(held.s, { type: 'timer', timer: 'masterDown' }, down);
  t.is(r.state.state, 'MASTER');
  t.deepEqual(types(r.effects).filter((x) => x.startsWith('transition')), ['transition:MASTER:master_down']);
});

test('preempt hold never blocks a takeover when the master goes silent', (t) => {
  const p = params({ priority: 200 });
  const { s } = run(p, [
    [0, { type: 'startup' }],
    [1, { type: 'preemptHold', hold: true }],
    [100, advert(100)],
  ]);
  const r = step(s, { type: 'timer', timer: 'masterDown' }, s.timers.masterDown!);
  t.is(r.state.state, 'MASTER');
  t.true(r.state.preemptHold, 'the hold stays set; it only matters in BACKUP');
});

test('preempt hold with preempt_delay: the countdown is cancelled by the hold and restarts after it', (t) => {
  const p = params({ priority: 200, preemptDelayMs: 5000 });
  const { s, effects } = run(p, [
    [0, { type: 'startup' }],
    [100, advert(100)],
    [200, { type: 'preemptHold', hold: true }],
    [1100, advert(100)],
    [2000, { type: 'preemptHold', hold: false }],
    [2100, advert(100)],
  ]);
  t.deepEqual(types(effects[2]), ['cancelTimer'], 'holding cancels the running preempt_delay countdown');
  t.is(s.timers.preempt, 2100 + 5000, 'after the hold the delay counts from the first advert seen again');
  const early = step(s, { type: 'timer', timer: 'preempt' }, 5100);
  t.is(early.state.state, 'BACKUP', 'the old deadline (100 + 5000) is gone');
  t.is(step(s, { type: 'timer', timer: 'preempt' }, 7100).state.state, 'MASTER');
});

test('preempt hold does not change a node that is master or an advert from a higher priority', (t) => {
  const master = run(params({ priority: 255 }), [[0, { type: 'startup' }], [1, { type: 'preemptHold', hold: true }]]);
  t.is(master.s.state, 'MASTER');
  t.deepEqual(master.effects[1], []);
  const backup = run(params({ priority: 100 }), [[0, { type: 'startup' }], [1, { type: 'preemptHold', hold: true }], [50, advert(200)]]);
  t.deepEqual(backup.s.master, { address: '10.99.0.3', priority: 200 });
  t.deepEqual(step(backup.s, { type: 'preemptHold', hold: true }, 60).effects, [], 'setting an already-set hold is a no-op');
});
