/**
 * Tests of derive(config, health?, overrides?): the mapping of configured virtual servers onto kernel services
 * and destinations (forwarding methods, scheduler flags, tunnels, persistence, one-packet, fwmark and IPv6),
 * health and overrides, and a round trip: the derived table applied to an empty kernel diffs to nothing.
 */

import test from 'ava';
import { fileURLToPath } from 'node:url';
import { loadConfig, parseConfig } from '../../src/config/index.ts';
import type { TandemConfig } from '../../src/config/index.ts';
import { applyOps, derive, diff, realServerId, serviceKeyOf, SVC_FLAGS, TUNNEL_FLAGS } from '../../src/ipvs/index.ts';
import type { Dest, Service } from '../../src/ipvs/index.ts';

const HEAD = ['node: { name: dirA, interface: eth0 }', 'vrrp:', '  transport: { mode: unicast, source: 10.99.0.2, peers: [10.99.0.3] }', '  instances: [{ name: VI_1, vrid: 51, vips: [10.99.0.100] }]', 'virtual_servers:'];

function config(...vs: string[]): TandemConfig {
  return parseConfig([...HEAD, ...vs].join('\n') + '\n', 'test.yaml');
}

function only(c: TandemConfig): Service {
  const [s] = derive(c).services;
  if (s === undefined) throw new Error('no service derived');
  return s;
}

const TUN_NONE = { type: 'ipip', port: 0, flags: 0 } as const;

test('a DR service: kernel identity, attributes and destinations', (t) => {
  const s = only(config('  - { name: web, address: 10.99.0.100, port: 80, forwarding: dr, real_servers: [{ address: 10.99.0.21, weight: 3, upper_threshold: 10, lower_threshold: 5 }] }'));
  t.deepEqual(s, {
    key: { kind: 'addr', family: 4, protocol: 'tcp', address: '10.99.0.100', port: 80 },
    scheduler: 'wlc',
    flags: 0,
    timeoutS: 0,
    netmask: 0xffffffff,
    peName: '',
    dests: [{ family: 4, address: '10.99.0.21', port: 80, fwd: 'droute', weight: 3, upperThreshold: 10, lowerThreshold: 5, tunnel: TUN_NONE }],
  });
});

test('nat and fullnat are masquerading; tun carries its tunnel type, port and checksum flags', (t) => {
  const fwd = (f: string, extra = ''): Dest | undefined => only(config(`  - { name: x, address: 10.99.0.100, port: 80, forwarding: ${f}${extra}, real_servers: [{ address: 10.99.0.21 }] }`)).dests[0];
  t.is(fwd('nat')?.fwd, 'masq');
  t.is(fwd('fullnat', ', fullnat: { source: 10.99.0.2 }')?.fwd, 'masq');
  t.is(fwd('dr')?.fwd, 'droute');
  t.deepEqual(fwd('tun')?.tunnel, TUN_NONE);
  t.is(fwd('tun')?.fwd, 'tunnel');
  t.deepEqual(fwd('tun', ', tunnel: { type: gue, port: 6080, checksum: remcsum }')?.tunnel, { type: 'gue', port: 6080, flags: TUNNEL_FLAGS.remcsum });
  t.deepEqual(fwd('tun', ', tunnel: { type: gre, checksum: csum }')?.tunnel, { type: 'gre', port: 0, flags: TUNNEL_FLAGS.csum });
});

test('scheduler flags, one-packet and persistence become service flags, timeout, netmask and PE', (t) => {
  const sh = only(config('  - { name: x, address: 10.99.0.100, port: 53, protocol: udp, scheduler: sh, scheduler_flags: [sh-fallback, sh-port], one_packet: true, forwarding: nat }'));
  t.is(sh.flags, SVC_FLAGS.SCHED1 | SVC_FLAGS.SCHED2 | SVC_FLAGS.ONEPACKET);
  const mh = only(config('  - { name: x, address: 10.99.0.100, port: 80, scheduler: mh, scheduler_flags: [mh-port, flag-3], forwarding: dr }'));
  t.is(mh.flags, SVC_FLAGS.SCHED2 | SVC_FLAGS.SCHED3);
  const p = only(config('  - { name: x, address: 10.99.0.100, port: 5060, protocol: udp, forwarding: nat, persistence: { timeout: 10m, netmask: 255.255.255.0, pe: sip } }'));
  t.like(p, { flags: 0, timeoutS: 600, netmask: 0xffffff00, peName: 'sip' });
  const p6 = only(config('  - { name: x, address: "fd00::100", port: 80, forwarding: nat, persistence: { netmask: 64 } }'));
  t.like(p6, { flags: 0, timeoutS: 300, netmask: 64 });
  t.like(only(config('  - { name: x, address: "fd00::100", port: 80, forwarding: nat }')), { flags: 0, timeoutS: 0, netmask: 128 });
});

test('fwmark services: the kernel key, family, and real server port 0 by default', (t) => {
  const s = only(config('  - { name: m, fwmark: 7, family: ipv6, forwarding: dr, real_servers: [{ address: "fd00::21" }] }'));
  t.deepEqual(s.key, { kind: 'fwmark', family: 6, fwmark: 7 });
  t.deepEqual(s.dests.map((d) => [d.address, d.port, d.family]), [['fd00::21', 0, 6]]);
  t.deepEqual(serviceKeyOf({ kind: 'fwmark', family: 4, fwmark: 9 }), { kind: 'fwmark', family: 4, fwmark: 9 });
});

test('mixed families over a tunnel keep each destination\'s own family', (t) => {
  const s = only(config('  - { name: x, address: "fd00::100", port: 80, forwarding: tun, real_servers: [{ address: 10.99.0.21 }, { address: "fd00::22" }] }'));
  t.deepEqual(s.dests.map((d) => d.family), [4, 6]);
});

test('health down removes a real server; overrides replace its weight', (t) => {
  const c = config('  - { name: web, address: 10.99.0.100, port: 80, forwarding: dr, real_servers: [{ address: 10.99.0.21 }, { address: 10.99.0.22, weight: 4 }] }');
  const a = { family: 4 as const, address: '10.99.0.21', port: 80 };
  const b = { family: 4 as const, address: '10.99.0.22', port: 80 };
  t.is(realServerId('web', a), 'web/10.99.0.21:80');
  const health = new Map([[realServerId('web', a), 'down' as const]]);
  t.deepEqual(derive(c, health).services[0]?.dests.map((d) => d.address), ['10.99.0.22']);
  const overrides = new Map([[realServerId('web', b), { weight: 0 }]]);
  t.deepEqual(derive(c, undefined, overrides).services[0]?.dests.map((d) => d.weight), [1, 0]);
  t.deepEqual(derive(c, new Map([[realServerId('web', a), 'up' as const]])).services[0]?.dests.length, 2);
});

test('derive is pure: the same configuration gives equal tables, and none without virtual servers', (t) => {
  const c = config('  - { name: web, address: 10.99.0.100, port: 80, forwarding: dr, real_servers: [{ address: 10.99.0.21 }] }');
  t.deepEqual(derive(c), derive(c));
  t.deepEqual(derive({}), { services: [] });
});

test('round trip: the all-features table applied to an empty kernel needs no further ops', (t) => {
  const c = loadConfig(fileURLToPath(new URL('../../config/ipvs-all-features.example.yaml', import.meta.url)));
  const desired = derive(c);
  t.is(desired.services.length, c.virtualServers?.length ?? -1);
  const ops = diff(desired, { services: [] }, { mayDelete: () => false });
  t.is(ops.filter((o) => o.op === 'addService').length, desired.services.length);
  const kernel = applyOps({ services: [] }, ops);
  t.deepEqual(diff(desired, kernel, { mayDelete: () => true }), []);
});
