/**
 * derive(config, health) with health checking, table-driven: down servers removed (or weight 0 with
 * inhibit_on_failure), alpha servers down until they have an entry, dynamic weights, operator overrides over
 * dynamic weights, and quorum with hysteresis (keepalived semantics: lost below min - hysteresis or at 0,
 * regained at min + hysteresis) switching to the sorry server and back.
 */

import test from 'ava';
import { parseConfig } from '../../src/config/index.ts';
import type { TandemConfig, VsQuorumConfig } from '../../src/config/index.ts';
import { derive, members, realServerId, stepQuorum } from '../../src/ipvs/index.ts';
import type { HealthMap, OverrideMap, RealServerHealth } from '../../src/ipvs/index.ts';

const HEAD = ['node: { name: dirA, interface: eth0 }', 'vrrp:', '  transport: { mode: unicast, source: 10.99.0.2, peers: [10.99.0.3] }', '  instances: [{ name: VI_1, vrid: 51, vips: [10.99.0.100] }]', 'virtual_servers:'];

/** One NAT virtual server `web` with real servers .21 (weight 2), .22 and .23 (weight 1), checked by tcp. */
function config(extra: string[] = []): TandemConfig {
  return parseConfig(
    [
      ...HEAD,
      '  - name: web',
      '    address: 10.99.0.100',
      '    port: 80',
      '    forwarding: nat',
      '    health_check: { type: tcp }',
      ...extra,
      '    real_servers:',
      '      - { address: 10.99.0.21, weight: 2 }',
      '      - { address: 10.99.0.22 }',
      '      - { address: 10.99.0.23 }',
    ].join('\n') + '\n',
    'test.yaml',
  );
}

const ID = (last: number): string => realServerId('web', { family: 4, address: `10.99.0.${last}`, port: 80 });

function health(entries: Record<number, RealServerHealth>): HealthMap {
  return new Map(Object.entries(entries).map(([k, v]) => [ID(Number(k)), v]));
}

/** `address:weight` of the dests of the only service. */
function dests(c: TandemConfig, h?: Parameters<typeof derive>[1], o?: OverrideMap): string[] {
  return (derive(c, h, o).services[0]?.dests ?? []).map((d) => `${d.address.split('.')[3]}:${d.weight}`);
}

interface Row {
  name: string;
  extra?: string[];
  health?: Record<number, RealServerHealth>;
  overrides?: Record<number, number>;
  want: string[];
}

const ROWS: Row[] = [
  { name: 'no health entries: every checked server starts up', want: ['21:2', '22:1', '23:1'] },
  { name: 'a down server is removed', health: { 22: 'down' }, want: ['21:2', '23:1'] },
  { name: 'a down server (status form) is removed', health: { 22: { up: false } }, want: ['21:2', '23:1'] },
  { name: 'inhibit_on_failure keeps a down server with weight 0', extra: ['    inhibit_on_failure: true'], health: { 22: 'down' }, want: ['21:2', '22:0', '23:1'] },
  { name: 'alpha: servers without an entry start down', extra: ['    alpha: true'], health: { 21: 'up' }, want: ['21:2'] },
  { name: 'alpha with inhibit: not yet proven servers are in with weight 0', extra: ['    alpha: true', '    inhibit_on_failure: true'], want: ['21:0', '22:0', '23:0'] },
  { name: 'a dynamic weight replaces the configured one', health: { 21: { up: true, weight: 7 } }, want: ['21:7', '22:1', '23:1'] },
  { name: 'an operator override wins over the dynamic weight', health: { 21: { up: true, weight: 7 } }, overrides: { 21: 3 }, want: ['21:3', '22:1', '23:1'] },
  { name: 'every server down without a sorry server: an empty service', health: { 21: 'down', 22: 'down', 23: 'down' }, want: [] },
  {
    name: 'quorum lost (up weight 1 < min 3) with a sorry server: the sorry server alone',
    extra: ['    quorum: { min: 3 }', '    sorry_server: { address: 10.99.0.30 }'],
    health: { 21: 'down', 22: 'down' },
    want: ['30:1'],
  },
  {
    name: 'quorum held at exactly min: the real servers',
    extra: ['    quorum: { min: 2 }', '    sorry_server: { address: 10.99.0.30, weight: 5 }'],
    health: { 22: 'down', 23: 'down', 21: 'up' },
    want: ['21:2'],
  },
  {
    name: 'quorum lost without a sorry server: the up servers stay',
    extra: ['    quorum: { min: 3 }'],
    health: { 21: 'down', 22: 'down' },
    want: ['23:1'],
  },
  {
    name: 'sorry server weight is its own',
    extra: ['    sorry_server: { address: 10.99.0.30, weight: 4 }'],
    health: { 21: 'down', 22: 'down', 23: 'down' },
    want: ['30:4'],
  },
];

for (const row of ROWS) {
  test(`derive with health: ${row.name}`, (t) => {
    const c = config(row.extra);
    const o = row.overrides === undefined ? undefined : new Map(Object.entries(row.overrides).map(([k, w]) => [ID(Number(k)), { weight: w }]));
    t.deepEqual(dests(c, row.health === undefined ? undefined : health(row.health), o), row.want);
  });
}

test('derive honours the quorum state it is given (hysteresis is the caller\'s state)', (t) => {
  const c = config(['    quorum: { min: 3, hysteresis: 1 }', '    sorry_server: { address: 10.99.0.30 }']);
  const servers = health({ 21: 'down' }); // up weight 2: below min, but not below min - hysteresis
  t.deepEqual(dests(c, { servers, quorum: new Map([['web', true]]) }), ['22:1', '23:1'], 'held: the real servers');
  t.deepEqual(dests(c, { servers, quorum: new Map([['web', false]]) }), ['30:1'], 'lost: the sorry server');
  t.deepEqual(dests(c, { servers }), ['30:1'], 'no state: judged without hysteresis (2 < 3)');
});

test('members reports up flags, weights and the up weight', (t) => {
  const c = config(['    alpha: true']);
  const vs = c.virtualServers?.[0];
  if (vs === undefined) return t.fail();
  const m = members(vs, health({ 21: { up: true, weight: 5 }, 22: 'up' }));
  t.deepEqual(
    m.members.map((x) => [x.id, x.up, x.weight]),
    [
      [ID(21), true, 5],
      [ID(22), true, 1],
      [ID(23), false, 1],
    ],
  );
  t.is(m.upWeight, 6);
});

interface QuorumRow {
  q: VsQuorumConfig;
  /** [up weight, expected state] fed in order from the start. */
  steps: Array<[number, boolean]>;
}

const QUORUM_ROWS: Array<[string, QuorumRow]> = [
  ['min 3, no hysteresis: lost below 3, regained at 3', { q: { min: 3, hysteresis: 0 }, steps: [[3, true], [2, false], [3, true], [5, true], [0, false]] }],
  [
    'min 4, hysteresis 1: held down to 3, lost at 2, regained only at 5',
    { q: { min: 4, hysteresis: 1 }, steps: [[4, true], [3, true], [2, false], [3, false], [4, false], [5, true], [3, true], [2, false]] },
  ],
  ['start below min: lost at once; start at min: held', { q: { min: 2, hysteresis: 1 }, steps: [[1, false], [2, false], [3, true]] }],
  ['min 1: lost only at 0 (keepalived: a zero sum always loses)', { q: { min: 1, hysteresis: 0 }, steps: [[1, true], [0, false], [1, true]] }],
  ['min 0: never lost', { q: { min: 0, hysteresis: 0 }, steps: [[0, true], [5, true], [0, true]] }],
];

for (const [name, row] of QUORUM_ROWS) {
  test(`stepQuorum: ${name}`, (t) => {
    let state: boolean | undefined;
    const got: boolean[] = [];
    for (const [w] of row.steps) {
      state = stepQuorum(state, w, row.q);
      got.push(state);
    }
    t.deepEqual(got, row.steps.map(([, s]) => s));
  });
}

test('derive is pure: the same inputs give equal tables and inputs are not changed', (t) => {
  const c = config(['    inhibit_on_failure: true']);
  const before = JSON.stringify(c);
  const h = health({ 22: 'down' });
  t.deepEqual(derive(c, h), derive(c, h));
  t.is(JSON.stringify(c), before);
});
