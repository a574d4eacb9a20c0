/**
 * src/realserver without a kernel: the plan for DR and each TUN encapsulation, the check report, and up/down
 * against a fake host, above all that `down` undoes exactly what `up` changed and nothing that was there before.
 */

import test from 'ava';
import type { AddressFamily } from '../../src/config/types.ts';
import { UsageError, VipError } from '../../src/lib/errors.ts';
import {
  RealserverApplyError,
  checkRealserver,
  confKey,
  emptyState,
  fixCommand,
  formatCheckReport,
  parseVip,
  planRealserver,
  realserverDown,
  realserverUp,
  requirementId,
  sysctlPath,
  type RealserverHost,
  type RealserverSpec,
} from '../../src/realserver/index.ts';
import { parseRealserverArgs } from '../../src/cli/realserver.ts';

/** An in-memory host: sysctls, interfaces with addresses and an up flag, modules that create fallback devices. */
class FakeHost implements RealserverHost {
  sysctls = new Map<string, number>();
  links = new Map<string, { up: boolean; addrs: string[] }>();
  modules = new Set<string>();
  fou = new Set<number>();
  calls: string[] = [];
  failOn: string | undefined;

  constructor(ifnames: string[] = ['lo', 'eth0']) {
    for (const i of ['all', 'default', ...ifnames]) this.addConf(i);
    for (const i of ifnames) this.links.set(i, { up: true, addrs: i === 'lo' ? ['127.0.0.1/8', '::1/128'] : [] });
  }

  private addConf(ifname: string): void {
    this.sysctls.set(confKey(ifname, 'arp_ignore'), 0);
    this.sysctls.set(confKey(ifname, 'arp_announce'), 0);
    this.sysctls.set(confKey(ifname, 'rp_filter'), ifname === 'lo' ? 0 : 1);
  }

  private step(call: string): void {
    this.calls.push(call);
    if (this.failOn !== undefined && call.startsWith(this.failOn)) throw new VipError(`injected failure: ${call}`);
  }

  async readSysctl(key: string) {
    return this.sysctls.get(key);
  }
  async addresses(ifname: string) {
    return this.links.get(ifname)?.addrs.slice();
  }
  async link(ifname: string) {
    const l = this.links.get(ifname);
    return { exists: l !== undefined, up: l?.up ?? false };
  }
  async fouGuePorts() {
    return [...this.fou];
  }
  async writeSysctl(key: string, value: number) {
    this.step(`sysctl ${key}=${value}`);
    if (!this.sysctls.has(key)) throw new VipError(`no ${key}`);
    this.sysctls.set(key, value);
  }
  async addAddress(ifname: string, address: string, prefixLength: number, _family: AddressFamily) {
    this.step(`addr add ${address}/${prefixLength} dev ${ifname}`);
    this.links.get(ifname)?.addrs.push(`${address}/${prefixLength}`);
  }
  async removeAddress(ifname: string, address: string, prefixLength: number, _family: AddressFamily) {
    this.step(`addr del ${address}/${prefixLength} dev ${ifname}`);
    const l = this.links.get(ifname);
    if (l !== undefined) l.addrs = l.addrs.filter((a) => a !== `${address}/${prefixLength}`);
  }
  async loadModule(name: string) {
    this.step(`modprobe ${name}`);
    if (this.modules.has(name)) return;
    this.modules.add(name);
    const dev = name === 'ipip' ? 'tunl0' : name === 'ip_gre' ? 'gre0' : undefined;
    if (dev !== undefined) {
      this.links.set(dev, { up: false, addrs: [] });
      this.addConf(dev);
    }
  }
  async setLinkUp(ifname: string, up: boolean) {
    this.step(`link ${ifname} ${up ? 'up' : 'down'}`);
    const l = this.links.get(ifname);
    if (l !== undefined) l.up = up;
  }
  async addFouGuePort(port: number) {
    this.step(`fou add ${port}`);
    this.fou.add(port);
  }
  async removeFouGuePort(port: number) {
    this.step(`fou del ${port}`);
    this.fou.delete(port);
  }
}

const VIP = parseVip('10.99.0.100');
const VIP2 = parseVip('10.99.0.101');
const VIP6 = parseVip('2001:DB8::100');
const dr = (over: Partial<RealserverSpec> = {}): RealserverSpec => ({ vips: [VIP], mode: 'dr', interface: 'eth0', ...over });
const ids = (s: RealserverSpec) => planRealserver(s).map(requirementId);

// --- the plan -------------------------------------------------------------------------------------------------

test('DR, IPv4: ARP settings on all, lo and the interface, then the VIP /32 on lo', (t) => {
  t.deepEqual(ids(dr()), [
    'sysctl net.ipv4.conf.all.arp_ignore',
    'sysctl net.ipv4.conf.all.arp_announce',
    'sysctl net.ipv4.conf.lo.arp_ignore',
    'sysctl net.ipv4.conf.lo.arp_announce',
    'sysctl net.ipv4.conf.eth0.arp_ignore',
    'sysctl net.ipv4.conf.eth0.arp_announce',
    'address 10.99.0.100/32 dev lo',
  ]);
  t.is(ids({ vips: [VIP], mode: 'dr' }).length, 5, 'no interface: all and lo only');
});

test('DR, IPv6 only: the VIP /128 on lo and no ARP sysctls', (t) => {
  t.deepEqual(ids(dr({ vips: [VIP6] })), ['address 2001:db8::100/128 dev lo']);
  t.is(VIP6.address, '2001:db8::100', 'VIPs are canonicalised');
});

test('TUN ipip / gre / gue: device (and GUE port), ARP, rp_filter on all and the device, VIP on the device', (t) => {
  const ipip = ids({ vips: [VIP], mode: 'tun', tunnel: 'ipip' });
  t.deepEqual(ipip, [
    'link tunl0',
    'sysctl net.ipv4.conf.all.arp_ignore',
    'sysctl net.ipv4.conf.all.arp_announce',
    'sysctl net.ipv4.conf.lo.arp_ignore',
    'sysctl net.ipv4.conf.lo.arp_announce',
    'sysctl net.ipv4.conf.all.rp_filter',
    'sysctl net.ipv4.conf.tunl0.rp_filter',
    'address 10.99.0.100/32 dev tunl0',
  ]);
  t.deepEqual(ids({ vips: [VIP], mode: 'tun' }), ipip, 'ipip is the default tunnel');
  t.true(ids({ vips: [VIP], mode: 'tun', tunnel: 'gre' }).includes('address 10.99.0.100/32 dev gre0'));
  t.true(ids({ vips: [VIP], mode: 'tun', tunnel: 'gre' }).includes('sysctl net.ipv4.conf.gre0.rp_filter'));
  t.deepEqual(ids({ vips: [VIP], mode: 'tun', tunnel: 'gue', guePort: 6080 }).slice(0, 2), ['link tunl0', 'fou port 6080 gue']);
});

test('plans that cannot work are UsageErrors', (t) => {
  const bad: RealserverSpec[] = [
    { vips: [], mode: 'dr' },
    { vips: [VIP6], mode: 'tun' },
    { vips: [VIP], mode: 'tun', tunnel: 'gue' },
    { vips: [VIP], mode: 'tun', tunnel: 'ipip', guePort: 6080 },
    { vips: [VIP], mode: 'tun', tunnel: 'gue', guePort: 70000 },
    { vips: [VIP], mode: 'dr', tunnel: 'gre' },
    { vips: [VIP], mode: 'dr', interface: 'eth 0' },
  ];
  for (const s of bad) t.throws(() => planRealserver(s), { instanceOf: UsageError }, JSON.stringify(s));
  t.throws(() => parseVip('10.0.0.1/32'), { instanceOf: UsageError });
});

test('fix commands are the exact shell commands; VLAN dots follow sysctl(8)', (t) => {
  const cmds = planRealserver({ vips: [VIP, VIP6], mode: 'dr', interface: 'eth0.100' }).map(fixCommand);
  t.true(cmds.includes('sysctl -w net.ipv4.conf.eth0/100.arp_ignore=1'));
  t.true(cmds.includes('sysctl -w net.ipv4.conf.all.arp_announce=2'));
  t.true(cmds.includes('ip addr add 10.99.0.100/32 dev lo'));
  t.true(cmds.includes('ip -6 addr add 2001:db8::100/128 dev lo'));
  t.is(sysctlPath('net.ipv4.conf.eth0/100.arp_ignore'), '/proc/sys/net/ipv4/conf/eth0.100/arp_ignore');
  const gue = planRealserver({ vips: [VIP], mode: 'tun', tunnel: 'gue', guePort: 6080 }).map(fixCommand);
  t.deepEqual(gue.slice(0, 2), ['modprobe ipip && ip link set dev tunl0 up', 'modprobe fou && ip fou add port 6080 gue']);
  t.true(gue.includes('sysctl -w net.ipv4.conf.tunl0.rp_filter=0'));
});

// --- check ----------------------------------------------------------------------------------------------------

test('check: one line per requirement, MISSING with what was found and the fix', async (t) => {
  const host = new FakeHost();
  host.sysctls.set(confKey('all', 'arp_ignore'), 2);
  host.links.get('lo')?.addrs.push('10.99.0.100/8');
  const report = formatCheckReport(await checkRealserver(planRealserver(dr()), host));
  t.is(
    report,
    [
      'ok       sysctl net.ipv4.conf.all.arp_ignore = 1 or 2',
      'MISSING  sysctl net.ipv4.conf.all.arp_announce = 2: is 0; fix: sysctl -w net.ipv4.conf.all.arp_announce=2',
      'MISSING  sysctl net.ipv4.conf.lo.arp_ignore = 1 or 2: is 0; fix: sysctl -w net.ipv4.conf.lo.arp_ignore=1',
      'MISSING  sysctl net.ipv4.conf.lo.arp_announce = 2: is 0; fix: sysctl -w net.ipv4.conf.lo.arp_announce=2',
      'MISSING  sysctl net.ipv4.conf.eth0.arp_ignore = 1 or 2: is 0; fix: sysctl -w net.ipv4.conf.eth0.arp_ignore=1',
      'MISSING  sysctl net.ipv4.conf.eth0.arp_announce = 2: is 0; fix: sysctl -w net.ipv4.conf.eth0.arp_announce=2',
      'MISSING  address 10.99.0.100/32 on lo: present as 10.99.0.100/8: the prefix must be /32; fix: ip addr add 10.99.0.100/32 dev lo',
      '6 of 7 requirements missing',
      '',
    ].join('\n'),
  );
});

test('check TUN: a missing device and a missing GUE port say so', async (t) => {
  const results = await checkRealserver(planRealserver({ vips: [VIP], mode: 'tun', tunnel: 'gue', guePort: 6080 }), new FakeHost());
  t.is(results[0]?.found, 'tunl0 does not exist (module ipip not loaded)');
  t.is(results[1]?.found, 'no GUE port');
  t.is(results.find((r) => r.requirement.kind === 'address')?.found, 'tunl0 does not exist');
});

// --- up / down ------------------------------------------------------------------------------------------------

test('up makes the check pass and records only what it changed; down restores exactly that', async (t) => {
  const host = new FakeHost();
  host.sysctls.set(confKey('lo', 'arp_ignore'), 1); // already right: must survive down
  const before = new Map(host.sysctls);
  const plan = planRealserver(dr());
  const up = await realserverUp(plan, host, emptyState());
  t.true((await checkRealserver(plan, host)).every((r) => r.ok));
  t.is(up.state.items.length, 6, '5 sysctls + 1 address');
  t.false(up.state.items.some((i) => i.kind === 'sysctl' && i.key === confKey('lo', 'arp_ignore')));
  t.true(up.lines.includes('ok       sysctl net.ipv4.conf.lo.arp_ignore = 1 or 2'));

  const again = await realserverUp(plan, host, up.state);
  t.deepEqual(again.state, up.state, 'a second up changes nothing');

  const down = await realserverDown([VIP.address], host, again.state);
  t.deepEqual(down.state, emptyState());
  t.deepEqual(host.sysctls, before);
  t.deepEqual(host.links.get('lo')?.addrs, ['127.0.0.1/8', '::1/128']);
  t.is(down.lines[0], 'undone   address 10.99.0.100/32 removed from lo', 'newest first');
});

test('down keeps what other VIPs still need and sysctls someone changed since', async (t) => {
  const host = new FakeHost();
  const s1 = await realserverUp(planRealserver(dr()), host, emptyState());
  const s2 = await realserverUp(planRealserver(dr({ vips: [VIP2] })), host, s1.state);
  const d1 = await realserverDown([VIP.address], host, s2.state);
  t.deepEqual(d1.lines, ['undone   address 10.99.0.100/32 removed from lo']);
  t.is(host.sysctls.get(confKey('all', 'arp_ignore')), 1, 'still needed by the second VIP');
  host.sysctls.set(confKey('eth0', 'arp_announce'), 1); // an operator's change
  const d2 = await realserverDown([VIP2.address, '10.1.1.1'], host, d1.state);
  t.true(d2.lines.includes('skipped  10.1.1.1: not prepared by tandem (nothing recorded), left alone'));
  t.true(d2.lines.includes('kept     sysctl net.ipv4.conf.eth0.arp_announce = 1: changed since tandem set 2'));
  t.is(host.sysctls.get(confKey('eth0', 'arp_announce')), 1);
  t.is(host.sysctls.get(confKey('all', 'arp_ignore')), 0);
  t.deepEqual(d2.state, emptyState());
});

test('TUN gue up loads modules, brings tunl0 up, opens the port; down undoes it but leaves modules', async (t) => {
  const host = new FakeHost();
  const plan = planRealserver({ vips: [VIP], mode: 'tun', tunnel: 'gue', guePort: 6080 });
  const up = await realserverUp(plan, host, emptyState());
  t.true((await checkRealserver(plan, host)).every((r) => r.ok));
  t.deepEqual(host.calls.slice(0, 4), ['modprobe ipip', 'link tunl0 up', 'modprobe fou', 'fou add 6080']);
  t.is(host.sysctls.get(confKey('tunl0', 'rp_filter')), 0);
  await realserverDown([VIP.address], host, up.state);
  t.false(host.links.get('tunl0')?.up);
  t.deepEqual([...host.fou], []);
  t.true(host.modules.has('ipip'), 'modules are never unloaded');
  t.is(host.sysctls.get(confKey('all', 'rp_filter')), 1, 'restored');
});

test('up that fails part-way reports where, with the state of what it did so far', async (t) => {
  const host = new FakeHost();
  host.failOn = 'sysctl net.ipv4.conf.lo.arp_ignore';
  const e = await t.throwsAsync(realserverUp(planRealserver(dr()), host, emptyState()), { instanceOf: RealserverApplyError });
  t.regex(e?.message ?? '', /sysctl net\.ipv4\.conf\.lo\.arp_ignore = 1 or 2: injected failure/);
  t.deepEqual(
    e?.state.items.map((i) => (i.kind === 'sysctl' ? i.key : i.kind)),
    [confKey('all', 'arp_ignore'), confKey('all', 'arp_announce')],
  );
});

// --- the command line -----------------------------------------------------------------------------------------

test('parseRealserverArgs', (t) => {
  const a = parseRealserverArgs(['up', '--vip', '10.99.0.100', '--vip', '2001:db8::1', '--mode', 'dr', '--state-file', '/tmp/x.json']);
  t.is(a.action, 'up');
  t.deepEqual(a.spec.vips.map((v) => v.address), ['10.99.0.100', '2001:db8::1']);
  t.is(a.stateFile, '/tmp/x.json');
  t.false(a.interfaceGiven);
  const g = parseRealserverArgs(['check', '--vip', '10.0.0.1', '--mode', 'tun', '--tunnel', 'gue', '--gue-port', '6080', '--interface', 'ens3']);
  t.deepEqual(g.spec, { vips: [{ address: '10.0.0.1', family: 4 }], mode: 'tun', tunnel: 'gue', guePort: 6080, interface: 'ens3' });
  t.is(parseRealserverArgs(['down', '--vip', '10.0.0.1']).stateFile, '/run/tandem/realserver.json');
  const bad = [
    [],
    ['start', '--vip', '10.0.0.1', '--mode', 'dr'],
    ['up', '--mode', 'dr'],
    ['up', '--vip', '10.0.0.1'],
    ['up', '--vip', '10.0.0.1', '--mode', 'nat'],
    ['up', '--vip', '10.0.0.1', '--mode', 'tun', '--tunnel', 'vxlan'],
    ['up', '--vip', '10.0.0.1', '--mode', 'tun', '--tunnel', 'gue', '--gue-port', 'x'],
    ['up', '--vip', 'host.example', '--mode', 'dr'],
    ['up', '--vip', '10.0.0.1', '--mode', 'dr', '--bogus'],
  ];
  for (const args of bad) t.throws(() => parseRealserverArgs(args), { instanceOf: UsageError }, args.join(' '));
});
