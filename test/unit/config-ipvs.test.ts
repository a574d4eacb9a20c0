/**
 * Tests of the IPVS part of the configuration (`ipvs`, `virtual_servers`): conversion and defaults, the shipped
 * all-features example covering every scheduler / forwarding method / tunnel type, and every class of bad input
 * reported as file:line:column with the document path and a message that says how to fix it.
 */

import test from 'ava';
import type { ExecutionContext } from 'ava';
import fc from 'fast-check';
import { fileURLToPath } from 'node:url';
import {
  CONFIG_LIMITS,
  ConfigError,
  DEFAULT_IPVS,
  VS_FORWARDING,
  VS_SCHEDULERS,
  VS_TUNNEL_CHECKSUMS,
  VS_TUNNEL_TYPES,
  ipvsSettings,
  loadConfig,
  parseConfig,
  virtualServersOf,
} from '../../src/config/index.ts';
import type { ConfigIssue, VirtualServerConfig } from '../../src/config/index.ts';
import { SCHEDULERS } from '../../src/ipvs/model.ts';

const FILE = 'tandem.yaml';

/** A valid document with one virtual server; tests refer to its line numbers. */
const BASE = [
  'node: { name: dirA, interface: eth0 }', //                                       1
  'vrrp:', //                                                                       2
  '  transport: { mode: unicast, source: 10.99.0.2, peers: [10.99.0.3] }', //       3
  '  instances: [{ name: VI_1, vrid: 51, vips: [10.99.0.100] }]', //               4
  'virtual_servers:', //                                                            5
  '  - name: web', //                                                               6
  '    address: 10.99.0.100', //                                                    7
  '    port: 80', //                                                                8
  '    protocol: tcp', //                                                           9
  '    scheduler: wlc', //                                                         10
  '    forwarding: dr', //                                                         11
  '    real_servers:', //                                                          12
  '      - { address: 10.99.0.21, port: 80, weight: 1 }', //                       13
  '      - { address: 10.99.0.22 }', //                                            14
] as const;

function doc(lines: readonly string[]): string {
  return lines.join('\n') + '\n';
}

/** BASE with 1-based line `n` replaced by `text` (several lines allowed; undefined removes it). */
function baseWith(...edits: Array<[number, string | undefined]>): string {
  const lines: Array<string | undefined> = [...BASE];
  for (const [n, text] of edits) lines[n - 1] = text;
  return doc(lines.filter((l): l is string => l !== undefined));
}

/** BASE plus extra lines at the end. */
function basePlus(...extra: string[]): string {
  return doc([...BASE, ...extra]);
}

function issuesOf(t: ExecutionContext, text: string): readonly ConfigIssue[] {
  const err = t.throws(() => parseConfig(text, FILE), { instanceOf: ConfigError });
  return err?.issues ?? [];
}

function oneIssue(t: ExecutionContext, text: string): ConfigIssue | undefined {
  const issues = issuesOf(t, text);
  t.is(issues.length, 1, issues.map((i) => `${i.line}:${i.column} ${i.path}: ${i.message}`).join('\n'));
  return issues[0];
}

/** The 1-based column of `needle` in `line`. */
function col(line: string, needle: string): number {
  return line.indexOf(needle) + 1;
}

function vsOf(text: string): VirtualServerConfig[] {
  return [...virtualServersOf(parseConfig(text, FILE))];
}

// ---------------------------------------------------------------------------------------------------------
// Valid configurations

test('a virtual server converts with its defaults filled in', (t) => {
  const [vs] = vsOf(doc(BASE));
  t.deepEqual(vs, {
    name: 'web',
    service: { kind: 'addr', family: 4, protocol: 'tcp', address: '10.99.0.100', port: 80 },
    scheduler: 'wlc',
    schedulerFlags: [],
    forwarding: 'dr',
    tunnel: undefined,
    persistence: undefined,
    onePacket: false,
    fullnat: undefined,
    realServers: [
      { address: '10.99.0.21', family: 4, port: 80, weight: 1, upperThreshold: 0, lowerThreshold: 0 },
      { address: '10.99.0.22', family: 4, port: 80, weight: 1, upperThreshold: 0, lowerThreshold: 0 },
    ],
  });
});

test('without ipvs or virtual_servers the keys are absent and the defaults apply', (t) => {
  const c = parseConfig(doc(BASE.slice(0, 4)), FILE);
  t.false('ipvs' in c);
  t.false('virtualServers' in c);
  t.deepEqual(ipvsSettings(c), { reconcileIntervalMs: 5000, manage: 'owned', timeouts: undefined });
  t.deepEqual(ipvsSettings(c), { ...DEFAULT_IPVS });
  t.deepEqual(virtualServersOf(c), []);
});

test('the ipvs section converts durations to milliseconds', (t) => {
  const c = parseConfig(basePlus('ipvs:', '  reconcile_interval: 1500ms', '  manage: all', '  timeouts: { tcp: 15m, udp: 300s }'), FILE);
  t.deepEqual(c.ipvs, { reconcileIntervalMs: 1500, manage: 'all', timeouts: { tcpMs: 900_000, tcpFinMs: undefined, udpMs: 300_000 } });
});

test('every key of a virtual server converts', (t) => {
  const [a, b, c] = vsOf(
    basePlus(
      '  - name: tun6',
      '    address: "FD00:99::100"',
      '    port: 443',
      '    protocol: udp',
      '    scheduler: sh',
      '    scheduler_flags: [sh-fallback, sh-port, flag-3]',
      '    forwarding: tun',
      '    tunnel: { type: gue, port: 6080, checksum: remcsum }',
      '    persistence: { timeout: 10m, netmask: 64, pe: sip }',
      '    one_packet: true',
      '    real_servers:',
      '      - { address: 10.99.1.21, weight: 65535, upper_threshold: 100, lower_threshold: 100 }',
      '      - { address: "fd00:99:1::22", weight: 0 }',
      '  - name: marks',
      '    fwmark: 7',
      '    family: ipv6',
      '    forwarding: fullnat',
      '    fullnat: { source: "fd00:99:1::1" }',
      '    persistence: {}',
      '    real_servers: [{ address: "fd00:99:1::21" }]',
    ),
  ).slice(0);
  t.is(a?.name, 'web');
  t.deepEqual(b, {
    name: 'tun6',
    service: { kind: 'addr', family: 6, protocol: 'udp', address: 'fd00:99::100', port: 443 },
    scheduler: 'sh',
    schedulerFlags: ['sh-fallback', 'sh-port', 'flag-3'],
    forwarding: 'tun',
    tunnel: { type: 'gue', port: 6080, checksum: 'remcsum' },
    persistence: { timeoutMs: 600_000, netmask: '64', netmaskValue: 64, pe: 'sip' },
    onePacket: true,
    fullnat: undefined,
    realServers: [
      { address: '10.99.1.21', family: 4, port: 443, weight: 65535, upperThreshold: 100, lowerThreshold: 100 },
      { address: 'fd00:99:1::22', family: 6, port: 443, weight: 0, upperThreshold: 0, lowerThreshold: 0 },
    ],
  });
  t.deepEqual(c, {
    name: 'marks',
    service: { kind: 'fwmark', family: 6, fwmark: 7 },
    scheduler: 'wlc',
    schedulerFlags: [],
    forwarding: 'fullnat',
    tunnel: undefined,
    persistence: { timeoutMs: 300_000, netmask: '128', netmaskValue: 128, pe: undefined },
    onePacket: false,
    fullnat: { source: 'fd00:99:1::1' },
    realServers: [{ address: 'fd00:99:1::21', family: 6, port: 0, weight: 1, upperThreshold: 0, lowerThreshold: 0 }],
  });
});

test('tun defaults to ipip without checksum; an IPv4 netmask is kept as written and as a u32', (t) => {
  const [vs] = vsOf(baseWith([11, '    forwarding: tun\n    persistence: { timeout: 300s, netmask: 255.255.255.0 }']));
  t.deepEqual(vs?.tunnel, { type: 'ipip', port: 0, checksum: 'nocsum' });
  t.deepEqual(vs?.persistence, { timeoutMs: 300_000, netmask: '255.255.255.0', netmaskValue: 0xffffff00, pe: undefined });
});

test('twos is valid configuration (the kernel decides)', (t) => {
  t.is(vsOf(baseWith([10, '    scheduler: twos']))[0]?.scheduler, 'twos');
});

test('the configuration\'s scheduler list is the model\'s', (t) => {
  t.deepEqual([...VS_SCHEDULERS], [...SCHEDULERS]);
});

test('the all-features example covers every scheduler, forwarding method, tunnel and family', (t) => {
  const c = loadConfig(fileURLToPath(new URL('../../config/ipvs-all-features.example.yaml', import.meta.url)));
  const vss = virtualServersOf(c);
  const set = (xs: readonly string[]): string[] => [...new Set(xs)].sort();
  t.deepEqual(set(vss.map((v) => v.scheduler)), set(VS_SCHEDULERS));
  t.deepEqual(set(vss.map((v) => v.forwarding)), set(VS_FORWARDING));
  t.deepEqual(set(vss.flatMap((v) => (v.tunnel === undefined ? [] : [v.tunnel.type]))), set(VS_TUNNEL_TYPES));
  t.deepEqual(set(vss.flatMap((v) => (v.tunnel === undefined ? [] : [v.tunnel.checksum]))), set(VS_TUNNEL_CHECKSUMS));
  t.true(vss.some((v) => v.service.kind === 'fwmark' && v.service.family === 4));
  t.true(vss.some((v) => v.service.kind === 'fwmark' && v.service.family === 6));
  t.true(vss.some((v) => v.service.kind === 'addr' && v.service.family === 6));
  t.true(vss.some((v) => v.service.kind === 'addr' && v.service.protocol === 'udp'));
  t.true(vss.some((v) => v.service.kind === 'addr' && v.service.protocol === 'sctp'));
  t.true(vss.some((v) => v.realServers.some((r) => r.family !== v.service.family)), 'mixed families over a tunnel');
  t.true(vss.some((v) => v.persistence?.pe === 'sip'));
  t.true(vss.some((v) => v.persistence !== undefined && v.persistence.netmask !== '255.255.255.255' && v.service.family === 4));
  t.true(vss.some((v) => v.persistence !== undefined && v.service.family === 6 && v.persistence.netmaskValue < 128));
  t.true(vss.some((v) => v.onePacket));
  t.true(vss.some((v) => v.schedulerFlags.length > 0));
  t.true(vss.some((v) => v.realServers.some((r) => r.upperThreshold > 0 && r.lowerThreshold > 0)));
  t.truthy(c.ipvs?.timeouts);
});

test('the unicast example has virtual servers', (t) => {
  const c = loadConfig(fileURLToPath(new URL('../../config/tandem.example.yaml', import.meta.url)));
  t.true(virtualServersOf(c).length > 0);
});

// ---------------------------------------------------------------------------------------------------------
// Errors, with exact positions

test('unknown scheduler: exact position, the choices and a did-you-mean', (t) => {
  t.deepEqual(oneIssue(t, baseWith([10, '    scheduler: wlcc'])), {
    file: FILE,
    line: 10,
    column: 16,
    path: 'virtual_servers[0].scheduler',
    message: 'scheduler must be one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos; got "wlcc"; did you mean `wlc`?',
  });
  t.regex(oneIssue(t, baseWith([10, '    scheduler: wcl']))?.message ?? '', /did you mean `wlc`\?$/, 'swapped letters');
  t.regex(oneIssue(t, baseWith([10, '    scheduler: WRR']))?.message ?? '', /did you mean `wrr`\?$/, 'case');
  t.regex(oneIssue(t, baseWith([10, '    scheduler: round-robin']))?.message ?? '', /did you mean `rr`\?$/, 'long name');
  t.regex(oneIssue(t, baseWith([10, '    scheduler: maglev']))?.message ?? '', /did you mean `mh`\?$/, 'long name');
  t.notRegex(oneIssue(t, baseWith([10, '    scheduler: zzzzzz']))?.message ?? '', /did you mean/);
});

test('bad virtual and real server addresses', (t) => {
  t.like(oneIssue(t, baseWith([7, '    address: 10.99.0.300'])), { line: 7, column: 14, path: 'virtual_servers[0].address' });
  t.like(oneIssue(t, baseWith([7, '    address: 224.0.0.1'])), { path: 'virtual_servers[0].address', message: 'address must be a unicast address, not a multicast address; got 224.0.0.1' });
  const rs = oneIssue(t, baseWith([14, '      - { address: 10.99.0.x }']));
  t.like(rs, { line: 14, column: 20, path: 'virtual_servers[0].real_servers[1].address' });
  t.regex(rs?.message ?? '', /^address must be an IPv4 or IPv6 address/);
});

test('weight below 0 and above 65535 are refused', (t) => {
  const line = '      - { address: 10.99.0.21, port: 80, weight: -1 }';
  t.deepEqual(oneIssue(t, baseWith([13, line])), {
    file: FILE,
    line: 13,
    column: col(line, '-1'),
    path: 'virtual_servers[0].real_servers[0].weight',
    message: 'weight must be an integer 0..65535 (0 = quiesced: no new connections); got -1',
  });
  t.like(oneIssue(t, baseWith([13, '      - { address: 10.99.0.21, port: 80, weight: 65536 }'])), { path: 'virtual_servers[0].real_servers[0].weight' });
  t.is(CONFIG_LIMITS.weightMax, 65535);
});

test('lower_threshold above upper_threshold is refused at the lower one', (t) => {
  const line = '      - { address: 10.99.0.22, upper_threshold: 10, lower_threshold: 11 }';
  const issue = oneIssue(t, baseWith([14, line]));
  t.like(issue, { line: 14, column: col(line, '11'), path: 'virtual_servers[0].real_servers[1].lower_threshold' });
  t.regex(issue?.message ?? '', /^lower_threshold 11 is above upper_threshold 10; the kernel refuses that \(ERANGE\)/);
  t.regex(oneIssue(t, baseWith([14, '      - { address: 10.99.0.22, lower_threshold: 5 }']))?.message ?? '', /upper_threshold defaults to 0/);
});

test('gue without a port is refused at the tunnel mapping', (t) => {
  const issue = oneIssue(t, baseWith([11, '    forwarding: tun\n    tunnel: { type: gue }']));
  t.like(issue, { line: 12, column: 13, path: 'virtual_servers[0].tunnel.port' });
  t.regex(issue?.message ?? '', /^missing required key `port`: the UDP port the real servers decapsulate GUE on/);
  t.regex(oneIssue(t, baseWith([11, '    forwarding: tun\n    tunnel: { type: ipip, port: 6080 }']))?.message ?? '', /only used by `type: gue`/);
  t.regex(oneIssue(t, baseWith([11, '    forwarding: tun\n    tunnel: { type: ipip, checksum: csum }']))?.message ?? '', /^ipip has no checksum option/);
  t.regex(oneIssue(t, baseWith([11, '    forwarding: tun\n    tunnel: { type: gre, checksum: remcsum }']))?.message ?? '', /only for `type: gue`/);
});

test('tunnel with non-tun forwarding is refused', (t) => {
  t.deepEqual(oneIssue(t, baseWith([11, '    forwarding: nat\n    tunnel: { type: ipip }'])), {
    file: FILE,
    line: 12,
    column: 13,
    path: 'virtual_servers[0].tunnel',
    message: '`tunnel` is only valid with `forwarding: tun`; this virtual server uses `forwarding: nat`: remove it or switch the forwarding',
  });
});

test('fullnat needs a source, of the service family, and only with forwarding fullnat', (t) => {
  t.deepEqual(oneIssue(t, baseWith([11, '    forwarding: fullnat'])), {
    file: FILE,
    line: 6,
    column: 5,
    path: 'virtual_servers[0].fullnat',
    message: 'missing required key `fullnat`: with `forwarding: fullnat` the director address the real servers see as the client, e.g. `fullnat: { source: 10.99.0.2 }`',
  });
  t.like(oneIssue(t, baseWith([11, '    forwarding: fullnat\n    fullnat: {}'])), { path: 'virtual_servers[0].fullnat.source' });
  t.regex(oneIssue(t, baseWith([11, '    forwarding: fullnat\n    fullnat: { source: "fd00::2" }']))?.message ?? '', /^source fd00::2 is IPv6 but the service is IPv4/);
  t.like(oneIssue(t, baseWith([11, '    forwarding: dr\n    fullnat: { source: 10.99.0.2 }'])), { line: 12, path: 'virtual_servers[0].fullnat' });
});

test('duplicate service identity and duplicate names are refused', (t) => {
  const dup = oneIssue(t, basePlus('  - name: web2', '    address: 10.99.0.100', '    port: 80', '    forwarding: nat'));
  t.deepEqual(dup, {
    file: FILE,
    line: 16,
    column: 14,
    path: 'virtual_servers[1].address',
    message: 'service TCP 10.99.0.100:80 is already defined by virtual_servers[0] (web); each service (address, protocol and port, or fwmark and family) may appear once',
  });
  // Same address and port over another protocol is another service.
  t.is(vsOf(basePlus('  - name: web-udp', '    address: 10.99.0.100', '    port: 80', '    protocol: udp', '    forwarding: nat')).length, 2);
  // The same fwmark in each family is two services; twice in one family is one too many.
  t.is(vsOf(basePlus('  - { name: m4, fwmark: 7, forwarding: dr }', '  - { name: m6, fwmark: 7, family: ipv6, forwarding: dr }')).length, 3);
  t.regex(oneIssue(t, basePlus('  - { name: m4, fwmark: 7, forwarding: dr }', '  - { name: m5, fwmark: 7, forwarding: dr }'))?.message ?? '', /^service FWM 7 is already defined/);
  t.like(oneIssue(t, basePlus('  - { name: web, fwmark: 9, forwarding: dr }')), { path: 'virtual_servers[1].name' });
});

test('a duplicate real server within a service is refused; IPv6 text is compared canonically', (t) => {
  t.deepEqual(oneIssue(t, baseWith([14, '      - { address: 10.99.0.21 }'])), {
    file: FILE,
    line: 14,
    column: 20,
    path: 'virtual_servers[0].real_servers[1].address',
    message: 'real server 10.99.0.21:80 is already listed at virtual_servers[0].real_servers[0]; list each real server (address and port) once per virtual server',
  });
  // Another port of the same address is another real server (NAT translates ports).
  t.is(vsOf(baseWith([11, '    forwarding: nat'], [14, '      - { address: 10.99.0.21, port: 8080 }']))[0]?.realServers.length, 2);
  const v6 = [7, '    address: "fd00::100"'] as [number, string];
  t.like(oneIssue(t, baseWith(v6, [13, '      - { address: "fd00::21" }'], [14, '      - { address: "FD00:0::21" }'])), { path: 'virtual_servers[0].real_servers[1].address' });
});

test('a real server of the other family is refused unless forwarding is tun', (t) => {
  const v6 = [7, '    address: "fd00::100"'] as [number, string];
  const issue = oneIssue(t, baseWith(v6, [13, '      - { address: "fd00::21" }']));
  t.deepEqual(issue, {
    file: FILE,
    line: 14,
    column: 20,
    path: 'virtual_servers[0].real_servers[1].address',
    message: 'real server 10.99.0.22 is IPv4 but the service is IPv6; the kernel allows a real server of the other family only with `forwarding: tun`',
  });
  const ok = vsOf(baseWith(v6, [11, '    forwarding: tun'], [13, '      - { address: "fd00::21" }']));
  t.deepEqual(ok[0]?.realServers.map((r) => r.family), [6, 4]);
});

test('port is required for address services and refused for fwmark services', (t) => {
  t.deepEqual(oneIssue(t, baseWith([8, undefined])), {
    file: FILE,
    line: 6,
    column: 5,
    path: 'virtual_servers[0].port',
    message: 'missing required key `port`: the service port, e.g. `port: 80` (0 = every port, only with `persistence`)',
  });
  t.regex(oneIssue(t, baseWith([8, '    port: 0']))?.message ?? '', /^port 0 \(every port\) needs `persistence`/);
  const fw = issuesOf(t, baseWith([7, '    fwmark: 7']));
  t.deepEqual(
    fw.map((i) => [i.line, i.path]),
    [
      [8, 'virtual_servers[0].port'],
      [9, 'virtual_servers[0].protocol'],
    ],
  );
  t.regex(fw[0]?.message ?? '', /does not apply to a fwmark service/);
  t.like(oneIssue(t, baseWith([6, '  - name: web\n    fwmark: 7'])), { path: 'virtual_servers[0].fwmark', message: 'a virtual server is either `address` (with `port` and `protocol`) or `fwmark`, not both: remove one' });
  t.like(oneIssue(t, baseWith([7, undefined])), { line: 6, path: 'virtual_servers[0].address' });
  t.regex(oneIssue(t, baseWith([7, '    address: 10.99.0.100\n    family: ipv4']))?.message ?? '', /^`family` is only for fwmark services/);
});

test('dr and tun cannot translate ports', (t) => {
  const line = '      - { address: 10.99.0.21, port: 8080 }';
  const issue = oneIssue(t, baseWith([13, line]));
  t.like(issue, { line: 13, column: col(line, '8080'), path: 'virtual_servers[0].real_servers[0].port' });
  t.regex(issue?.message ?? '', /^with `forwarding: dr` packets reach the real server unchanged, so its port is the service port 80; got 8080/);
});

test('scheduler flags are validated against the scheduler', (t) => {
  const issue = oneIssue(t, baseWith([10, '    scheduler: wlc\n    scheduler_flags: [sh-port]']));
  t.like(issue, { line: 11, column: 23, path: 'virtual_servers[0].scheduler_flags[0]' });
  t.regex(issue?.message ?? '', /^`sh-port` is a flag of the sh scheduler, but this virtual server uses wlc/);
  t.regex(oneIssue(t, baseWith([10, '    scheduler: sh\n    scheduler_flags: [sh-port, flag-2]']))?.message ?? '', /same kernel bit as `sh-port`/);
  t.regex(oneIssue(t, baseWith([10, '    scheduler: mh\n    scheduler_flags: [mh-port, mh-prot]']))?.message ?? '', /did you mean `mh-port`\?$/);
  t.deepEqual(vsOf(baseWith([10, '    scheduler: mh\n    scheduler_flags: [mh-fallback, mh-port]']))[0]?.schedulerFlags, ['mh-fallback', 'mh-port']);
});

test('persistence: netmask per family, pe only where UDP can arrive', (t) => {
  t.regex(oneIssue(t, baseWith([11, '    forwarding: dr\n    persistence: { netmask: 24 }']))?.message ?? '', /write 255\.255\.255\.0 for \/24/);
  t.regex(oneIssue(t, baseWith([11, '    forwarding: dr\n    persistence: { netmask: 255.0.255.0 }']))?.message ?? '', /contiguous dotted netmask/);
  t.regex(oneIssue(t, baseWith([7, '    address: "fd00::100"'], [12, undefined], [13, undefined], [14, undefined], [11, '    forwarding: dr\n    persistence: { netmask: 255.255.255.0 }']))?.message ?? '', /an IPv6 service takes a prefix length/);
  const pe = oneIssue(t, baseWith([11, '    forwarding: dr\n    persistence: { pe: sip }']));
  t.like(pe, { path: 'virtual_servers[0].persistence.pe' });
  t.regex(pe?.message ?? '', /`pe: sip` reads SIP Call-IDs from UDP payloads/);
  t.regex(oneIssue(t, baseWith([11, '    forwarding: dr\n    persistence: { timeout: 1.5s }']))?.message ?? '', /whole number of seconds/);
  t.regex(oneIssue(t, baseWith([11, '    forwarding: dr\n    one_packet: true']))?.message ?? '', /applies only to UDP/);
});

test('forwarding is required, with the choices', (t) => {
  t.like(oneIssue(t, baseWith([11, undefined])), { line: 6, path: 'virtual_servers[0].forwarding' });
  t.regex(oneIssue(t, baseWith([11, '    forwarding: route']))?.message ?? '', /^forwarding must be one of nat, dr, tun, fullnat/);
});

test('ipvs section errors', (t) => {
  t.like(oneIssue(t, basePlus('ipvs: { reconcile_interval: 5 }')), { path: 'ipvs.reconcile_interval' });
  t.like(oneIssue(t, basePlus('ipvs: { reconcile_interval: 100ms }')), { path: 'ipvs.reconcile_interval', message: 'reconcile_interval must be 500ms..1h; got 100ms' });
  t.like(oneIssue(t, basePlus('ipvs: { manage: owner }')), { path: 'ipvs.manage', message: 'manage must be one of owned, all; got "owner"; did you mean `owned`?' });
  t.like(oneIssue(t, basePlus('ipvs: { timeouts: { tcp: 900500ms } }')), { path: 'ipvs.timeouts.tcp' });
  t.like(oneIssue(t, basePlus('ipvs: { timeouts: { tcp_fn: 1s } }')), { path: 'ipvs.timeouts.tcp_fn', message: 'unknown key `tcp_fn`; did you mean `tcp_fin`?' });
});

test('unknown keys in a virtual server and a real server get suggestions', (t) => {
  t.like(oneIssue(t, baseWith([10, '    schedular: wlc'])), { path: 'virtual_servers[0].schedular', message: 'unknown key `schedular`; did you mean `scheduler`?' });
  t.like(oneIssue(t, baseWith([14, '      - { address: 10.99.0.22, wieght: 2 }'])), { message: 'unknown key `wieght`; did you mean `weight`?' });
});

test('several virtual server errors are reported together in source order', (t) => {
  const issues = issuesOf(t, baseWith([8, '    port: 70000'], [10, '    scheduler: nope'], [13, '      - { address: 10.99.0.21, weight: -5 }']));
  t.deepEqual(
    issues.map((i) => i.line),
    [8, 10, 13],
  );
});

// ---------------------------------------------------------------------------------------------------------
// Property

const VS_TOKENS = ['scheduler: ', 'twos', 'sh', 'forwarding: ', 'tun', 'fullnat', 'tunnel: { type: gue }', 'fwmark: 7', 'port: 0', '"fd00::1"', 'weight: ', '-1', '\n', '  ', '- ', '{', '}', '[', ']', ',', ':'];

test('property: mutations of a virtual server are a config or a ConfigError', (t) => {
  const base = doc(BASE);
  const start = base.indexOf('virtual_servers:');
  const edit = fc.record({ at: fc.integer({ min: start, max: base.length }), del: fc.nat({ max: 6 }), insert: fc.constantFrom(...VS_TOKENS, '') });
  fc.assert(
    fc.property(fc.array(edit, { minLength: 1, maxLength: 4 }), (edits) => {
      let text = base;
      for (const e of edits) text = text.slice(0, e.at) + e.insert + text.slice(e.at + e.del);
      try {
        parseConfig(text, FILE);
        return true;
      } catch (e) {
        return e instanceof ConfigError;
      }
    }),
    { numRuns: 500 },
  );
  t.pass();
});
