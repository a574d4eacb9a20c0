/**
 * src/ipvs/format.ts and the pure half of src/cli/ipvs-list.ts against real ipvsadm 1.31 output: every capture in
 * test/fixtures/ipvsadm/<scenario>/ (taken in the VM by capture.ts, with the table rebuilt into model.json) must
 * come out byte for byte from the model, through the same argument parser the CLI uses. Then the corners the
 * captures cannot reach (numbers above 10^8 in every unit, 64-bit counters, wrap-around sorting).
 */

import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import fc from 'fast-check';
import {
  compareDestsIpvsadm,
  compareServicesIpvsadm,
  formatDaemons,
  formatLargeNum,
  formatList,
  formatSave,
  formatTimeouts,
  glibcQsort,
  sortDestsIpvsadm,
} from '../../src/ipvs/format.ts';
import type { Dest, IpvsStats, Service, ServiceKey } from '../../src/ipvs/model.ts';
import { parseListArgs, renderList, type ListRequest } from '../../src/cli/ipvs-list.ts';
import { UsageError } from '../../src/lib/errors.ts';
import { snapshotFromJson } from '../fixtures/ipvsadm/ipvsadm-parse.ts';

const FIXTURES = fileURLToPath(new URL('../fixtures/ipvsadm/', import.meta.url));
const INFO = { version: '1.2.1', connTabSize: 4096 };

// --- captured output of the real ipvsadm ------------------------------------------------------------------

const scenarios = readdirSync(FIXTURES, { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(FIXTURES, d.name, 'captures.json')))
  .map((d) => d.name)
  .sort();

test('fixtures are present', (t) => {
  t.true(scenarios.length >= 10, `found ${scenarios.join(', ')}`);
});

for (const name of scenarios) {
  const dir = join(FIXTURES, name);
  const snapshot = snapshotFromJson(readFileSync(join(dir, 'model.json'), 'utf8'));
  const captures = JSON.parse(readFileSync(join(dir, 'captures.json'), 'utf8')) as Array<{ file: string; ipvsadm: string[] }>;
  for (const c of captures) {
    test(`${name}: ipvsadm ${c.ipvsadm.join(' ')} (${c.file})`, (t) => {
      const [cmd, ...rest] = c.ipvsadm;
      const req = parseListArgs(cmd === '-S' ? 'save' : 'list', rest);
      const out = renderList(req, snapshot);
      if (!out.ok) return t.fail(out.detail);
      t.is(out.value, readFileSync(join(dir, c.file), 'utf8'));
    });
  }
}

// --- numbers ------------------------------------------------------------------------------------------------

// Expected strings below were printed by a C program running ipvsadm's print_largenum and printf formats.
test('formatLargeNum: units switch at 10^8, 10^9, 10^11, 10^14 and truncate', (t) => {
  const cases: Array<[bigint, string]> = [
    [0n, '        0'],
    [99_999_999n, ' 99999999'],
    [100_000_000n, '  100000K'],
    [999_999_999n, '  999999K'],
    [1_000_000_000n, '    1000M'],
    [99_999_999_999n, '   99999M'],
    [100_000_000_000n, '     100G'],
    [99_999_999_999_999n, '   99999G'],
    [100_000_000_000_000n, '     100T'],
    [18_446_744_073_709_551_615n, '18446744T'],
  ];
  for (const [n, s] of cases) t.is(formatLargeNum(n), s, n.toString());
});

test('formatLargeNum exact: at least 9 wide, always a leading space', (t) => {
  t.is(formatLargeNum(0n, true), '        0');
  t.is(formatLargeNum(12_345_678n, true), ' 12345678');
  t.is(formatLargeNum(123_456_789n, true), ' 123456789');
  t.is(formatLargeNum(18_446_744_073_709_551_615n, true), ' 18446744073709551615');
});

function stats(over: Partial<IpvsStats> = {}): IpvsStats {
  return { conns: 0n, inPkts: 0n, outPkts: 0n, inBytes: 0n, outBytes: 0n, cps: 0n, inPps: 0n, outPps: 0n, inBps: 0n, outBps: 0n, ...over };
}

function dest(address: string, over: Partial<Dest> = {}): Dest {
  const family = address.includes(':') ? 6 : 4;
  return { family, address, port: 80, fwd: 'droute', weight: 1, upperThreshold: 0, lowerThreshold: 0, tunnel: { type: 'ipip', port: 0, flags: 0 }, ...over };
}

function service(key: ServiceKey, dests: Dest[], over: Partial<Service> = {}): Service {
  return { key, scheduler: 'wlc', flags: 0, timeoutS: 0, netmask: key.family === 6 ? 128 : 0xffffffff, peName: '', dests, ...over };
}

const WEB: ServiceKey = { kind: 'addr', family: 4, protocol: 'tcp', address: '10.99.0.100', port: 80 };
const BIG = 1n << 40n;

test('--stats: service counters are 64-bit, dest counters 32-bit but for bytes (ipvsadm 1.31 libipvs)', (t) => {
  const table = {
    services: [
      service(WEB, [dest('10.0.0.1', { stats: stats({ conns: BIG + 5n, inPkts: BIG + 6n, outPkts: 7n, inBytes: BIG, outBytes: 3n * BIG }) })], {
        stats: stats({ conns: BIG + 5n, inPkts: BIG + 6n, outPkts: 7n, inBytes: BIG, outBytes: 3n * BIG }),
      }),
    ],
  };
  t.is(
    formatList(table, INFO, { view: 'stats' }),
    [
      'IP Virtual Server version 1.2.1 (size=4096)',
      'Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes',
      '  -> RemoteAddress:Port',
      'TCP  10.99.0.100:80                  1099G    1099G        7    1099G    3298G',
      '  -> 10.0.0.1:80                         5        6        7    1099G    3298G',
      '',
    ].join('\n'),
  );
});

test('--rate: dest CPS/InPPS/OutPPS are plain %8llu after a space, bytes/s use units', (t) => {
  const st = stats({ cps: 123_456_789n, inPps: 5n, outPps: 6n, inBps: 200_000_000n, outBps: 7n });
  const table = { services: [service(WEB, [dest('10.0.0.1', { stats: st })], { stats: st })] };
  t.is(
    formatList(table, INFO, { view: 'rate' }),
    [
      'IP Virtual Server version 1.2.1 (size=4096)',
      'Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS',
      '  -> RemoteAddress:Port',
      'TCP  10.99.0.100:80                123456K        5        6  200000K        7',
      '  -> 10.0.0.1:80                  123456789        5        6  200000K        7',
      '',
    ].join('\n'),
  );
});

test('a forwarding method ipvsadm has no name for prints (null), like glibc printf of NULL', (t) => {
  const table = { services: [service(WEB, [dest('10.0.0.1', { fwd: 'bypass' })])] };
  t.true(formatList(table, INFO).includes('  -> 10.0.0.1:80                  (null)  1      0          0         \n'));
  t.is(formatSave(table), '-A -t 10.99.0.100:80 -s wlc\n-a -t 10.99.0.100:80 -r 10.0.0.1:80 (null) -w 1\n');
});

test('signed printf conversions: fwmark, weight and timeouts print as int', (t) => {
  const table = { services: [service({ kind: 'fwmark', family: 4, fwmark: 0xffffffff }, [dest('10.0.0.1', { weight: 0xffffffff })])] };
  t.true(formatList(table, INFO).includes('FWM  -1 wlc\n  -> 10.0.0.1:80                  Route   -1     '));
  t.is(formatSave(table), '-A -f -1 -s wlc\n-a -f -1 -r 10.0.0.1:80 -g -w -1\n');
  t.is(formatTimeouts({ tcp: 900, tcpFin: 120, udp: 0xffffffff }), 'Timeout (tcp tcpfin udp): 900 120 -1\n');
});

test('daemons: optional fields left out when zero or empty; canonical IPv6 group; none prints nothing', (t) => {
  t.is(formatDaemons([]), '');
  t.is(
    formatDaemons([
      { state: 'master', ifname: 'eth0', syncId: 1, maxLen: 0, group: '', port: 0, ttl: 0 },
      { state: 'backup', ifname: 'eth1', syncId: 2, maxLen: 1452, group: 'FF02:0:0::1:3', port: 8848, ttl: 1 },
    ]),
    'master sync daemon (mcast=eth0, syncid=1)\nbackup sync daemon (mcast=eth1, syncid=2, maxlen=1452, group=ff02::1:3, port=8848, ttl=1)\n',
  );
});

// --- sorting --------------------------------------------------------------------------------------------------

const addr = (address: string, port = 80): ServiceKey => ({ kind: 'addr', family: address.includes(':') ? 6 : 4, protocol: 'tcp', address, port });

test('comparators subtract in 32-bit arithmetic that wraps, like libipvs', (t) => {
  t.true(compareServicesIpvsadm(addr('1.0.0.0'), addr('200.0.0.0')) > 0, '1.0.0.0 - 200.0.0.0 wraps positive');
  t.true(compareServicesIpvsadm(addr('1.0.0.0'), addr('100.0.0.0')) < 0);
  t.true(compareServicesIpvsadm({ kind: 'fwmark', family: 4, fwmark: 1 }, { kind: 'fwmark', family: 4, fwmark: 0x80000002 }) > 0);
  t.true(compareServicesIpvsadm(addr('255.0.0.0'), { kind: 'fwmark', family: 4, fwmark: 1 }) < 0, 'address services (fwmark 0) first');
  t.true(compareServicesIpvsadm(addr('10.0.0.1'), addr('::1')) < 0, 'AF_INET (2) before AF_INET6 (10)');
  t.true(compareServicesIpvsadm(addr('8000::1'), addr('::1')) < 0, 'word 0x80000000 - 0 wraps negative');
  t.true(compareServicesIpvsadm(addr('7fff::1'), addr('::1')) > 0);
  t.true(compareServicesIpvsadm(addr('ffff::1'), addr('::1')) < 0, 'word 0xffff0000 - 0 wraps negative');
  // A dest compares by the family of the left one: IPv6 vs IPv4 reads the IPv4 as one word and three zeros.
  t.true(compareDestsIpvsadm(dest('::1'), dest('10.0.0.1')) < 0);
  t.true(compareDestsIpvsadm(dest('10.0.0.1'), dest('::1')) > 0);
  t.true(compareDestsIpvsadm(dest('10.0.0.1'), dest('0.0.0.0', { port: 81 })) > 0);
});

test('glibcQsort equals a stable sort for any consistent comparator', (t) => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 20 }), fc.nat())), (xs) => {
      const cmp = (a: [number, number], b: [number, number]) => a[0] - b[0];
      const expected = xs.map((x, i) => [x, i] as const).sort((a, b) => cmp(a[0], b[0]) || a[1] - b[1]).map((p) => p[0]);
      t.deepEqual(glibcQsort(xs, cmp), expected);
    }),
  );
});

test('glibcQsort with the wrapping comparator keeps glibc merge order, not a total order', (t) => {
  // 10.0.0.0 < 106.0.0.0 < 202.0.0.0 < 10.0.0.0: each difference is 0x60000000 and the last one wraps. With a
  // cycle, every rotation is already "sorted" as far as merge sort can tell, so the output is the input.
  const x = dest('10.0.0.0');
  const y = dest('106.0.0.0');
  const z = dest('202.0.0.0');
  t.true(compareDestsIpvsadm(x, y) < 0 && compareDestsIpvsadm(y, z) < 0 && compareDestsIpvsadm(z, x) < 0);
  for (const input of [[x, y, z], [y, z, x], [z, x, y]]) {
    t.deepEqual(sortDestsIpvsadm(input).map((d) => d.address), input.map((d) => d.address));
  }
  // Merge order proper: [1.0.0.0] | [200.0.0.0, 64.0.0.1]; 200.0.0.0 - 64.0.0.1 wraps negative so the right run
  // stays as it is, and 1.0.0.0 lands between the two.
  t.deepEqual(sortDestsIpvsadm([dest('1.0.0.0'), dest('200.0.0.0'), dest('64.0.0.1')]).map((d) => d.address), ['200.0.0.0', '1.0.0.0', '64.0.0.1']);
});

// --- the command line -----------------------------------------------------------------------------------------

test('parseListArgs: views, precedence, sort and services', (t) => {
  t.deepEqual(parseListArgs('list', ['-n']), { kind: 'table', view: 'plain', exact: false, sort: true, service: undefined });
  t.deepEqual(parseListArgs('list', ['--rate', '--stats', '--exact', '--nosort']), { kind: 'table', view: 'stats', exact: true, sort: false, service: undefined });
  t.deepEqual(parseListArgs('list', ['--tun-info', '--thresholds']), { kind: 'table', view: 'thresholds', exact: false, sort: true, service: undefined });
  t.deepEqual(parseListArgs('list', ['-n', '--timeout']), { kind: 'timeout' });
  t.deepEqual(parseListArgs('list', ['--daemon', '--tun-info']), { kind: 'daemon' });
  t.deepEqual(parseListArgs('save', ['-n']), { kind: 'save' });
  t.deepEqual(parseListArgs('save', []), { kind: 'save' });
  const svc = (r: ListRequest) => (r.kind === 'table' ? r.service : undefined);
  t.deepEqual(svc(parseListArgs('list', ['-t', '[2001:DB8::1]:443'])), { kind: 'addr', family: 6, protocol: 'tcp', address: '2001:db8::1', port: 443 });
  t.deepEqual(svc(parseListArgs('list', ['--sctp-service', '10.0.0.1'])), { kind: 'addr', family: 4, protocol: 'sctp', address: '10.0.0.1', port: 0 });
  t.deepEqual(svc(parseListArgs('list', ['-f', '4294967295', '-6'])), { kind: 'fwmark', family: 6, fwmark: 0xffffffff });
});

test('parseListArgs: ipvsadm refusals are UsageErrors', (t) => {
  const bad: Array<['list' | 'save', string[]]> = [
    ['list', ['--timeout', '--daemon']],
    ['list', ['--timeout', '--stats']],
    ['list', ['--daemon', '--persistent-conn']],
    ['list', ['--stats', '--stats']],
    ['list', ['-t', '10.0.0.1:80', '--timeout']],
    ['list', ['-t', 'web.example:80']],
    ['list', ['-t', '10.0.0.1:65536']],
    ['list', ['-f', '0']],
    ['list', ['-6']],
    ['list', ['-t']],
    ['list', ['-c']],
    ['list', ['--bogus']],
    ['save', ['--stats']],
  ];
  for (const [sub, args] of bad) t.throws(() => parseListArgs(sub, args), { instanceOf: UsageError }, args.join(' '));
});

test('renderList: a service that does not exist is ipvsadm\'s "No such service"', (t) => {
  const data = { info: INFO, table: { services: [] }, timeouts: { tcp: 900, tcpFin: 120, udp: 300 }, daemons: [] };
  const r = renderList(parseListArgs('list', ['-t', '10.0.0.1:80']), data);
  t.deepEqual(r, { ok: false, reason: 'no-such-service', detail: 'No such service' });
});
