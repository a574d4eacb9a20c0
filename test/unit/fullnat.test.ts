/**
 * Tests of FULLNAT (src/ipvs/fullnat.ts): rules derived from the configuration, the nft text (golden), the
 * semantic comparison with what `nft -j list table` reports (JSON recorded from nftables 1.0.6 after applying
 * exactly renderFullnatScript's output), the plan (none / replace / delete), and the driver against a fake
 * host: sysctls first, one transaction only when the table differs, dry runs that change nothing.
 */

import test from 'ava';
import { parseConfig } from '../../src/config/index.ts';
import {
  FullnatReconciler,
  deriveFullnatRules,
  fullnatSysctls,
  parseNftTable,
  planFullnat,
  renderFullnatScript,
  ruleSignature,
  ruleStatement,
  sysctlPath,
} from '../../src/ipvs/index.ts';
import type { FullnatHost, FullnatRule } from '../../src/ipvs/index.ts';
import { MemoryLogger } from '../../src/lib/log.ts';

const HEAD = ['node: { name: dirA, interface: eth0 }', 'vrrp:', '  transport: { mode: unicast, source: 10.99.0.2, peers: [10.99.0.3] }', '  instances: [{ name: VI_1, vrid: 51, vips: [10.99.0.100] }]', 'virtual_servers:'];

const CONFIG = parseConfig(
  [
    ...HEAD,
    '  - { name: web-dr, address: 10.99.0.100, port: 80, forwarding: dr }',
    '  - { name: web-fullnat, address: 10.99.0.100, port: 8443, forwarding: fullnat, fullnat: { source: 10.99.1.1 } }',
    '  - { name: web6-fullnat, address: "fd00:99::100", port: 8443, forwarding: fullnat, fullnat: { source: "fd00:99:1::1" } }',
    '  - { name: fw, fwmark: 7, forwarding: fullnat, fullnat: { source: 10.99.1.1 } }',
    '  - { name: allports, address: 10.99.0.101, port: 0, protocol: udp, forwarding: fullnat, fullnat: { source: 10.99.1.1 }, persistence: {} }',
  ].join('\n') + '\n',
  'test.yaml',
);

const RULES = deriveFullnatRules(CONFIG);

/** `nft -j list table inet tandem_fullnat` after `nft -f` of renderFullnatScript(RULES), nftables 1.0.6. */
const RECORDED = {
  nftables: [
    { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } },
    { table: { family: 'inet', name: 'tandem_fullnat', handle: 2 } },
    { chain: { family: 'inet', table: 'tandem_fullnat', name: 'postrouting', handle: 1, type: 'nat', hook: 'postrouting', prio: 100, policy: 'accept' } },
    {
      rule: {
        family: 'inet',
        table: 'tandem_fullnat',
        chain: 'postrouting',
        handle: 2,
        comment: 'tandem vs web-fullnat',
        expr: [
          { match: { op: '==', left: { meta: { key: 'l4proto' } }, right: 'tcp' } },
          { match: { op: '==', left: { ct: { key: 'ip daddr', dir: 'original' } }, right: '10.99.0.100' } },
          { match: { op: '==', left: { ct: { key: 'proto-dst', dir: 'original' } }, right: 8443 } },
          { snat: { family: 'ip', addr: '10.99.1.1' } },
        ],
      },
    },
    {
      rule: {
        family: 'inet',
        table: 'tandem_fullnat',
        chain: 'postrouting',
        handle: 3,
        comment: 'tandem vs web6-fullnat',
        expr: [
          { match: { op: '==', left: { meta: { key: 'l4proto' } }, right: 'tcp' } },
          { match: { op: '==', left: { ct: { key: 'ip6 daddr', dir: 'original' } }, right: 'fd00:99::100' } },
          { match: { op: '==', left: { ct: { key: 'proto-dst', dir: 'original' } }, right: 8443 } },
          { snat: { family: 'ip6', addr: 'fd00:99:1::1' } },
        ],
      },
    },
    {
      rule: {
        family: 'inet',
        table: 'tandem_fullnat',
        chain: 'postrouting',
        handle: 4,
        comment: 'tandem vs fw',
        expr: [
          { match: { op: '==', left: { meta: { key: 'nfproto' } }, right: 'ipv4' } },
          { match: { op: '==', left: { meta: { key: 'mark' } }, right: 7 } },
          { snat: { family: 'ip', addr: '10.99.1.1' } },
        ],
      },
    },
    {
      rule: {
        family: 'inet',
        table: 'tandem_fullnat',
        chain: 'postrouting',
        handle: 5,
        comment: 'tandem vs allports',
        expr: [
          { match: { op: '==', left: { meta: { key: 'l4proto' } }, right: 'udp' } },
          { match: { op: '==', left: { ct: { key: 'ip daddr', dir: 'original' } }, right: '10.99.0.101' } },
          { snat: { family: 'ip', addr: '10.99.1.1' } },
        ],
      },
    },
  ],
};

/** A deep copy of RECORDED to mutate. */
function recorded(): { nftables: Array<Record<string, unknown>> } {
  return JSON.parse(JSON.stringify(RECORDED)) as { nftables: Array<Record<string, unknown>> };
}

test('one rule per fullnat virtual server, in configuration order', (t) => {
  t.deepEqual(RULES, [
    { name: 'web-fullnat', family: 4, match: { kind: 'addr', protocol: 'tcp', address: '10.99.0.100', port: 8443 }, source: '10.99.1.1' },
    { name: 'web6-fullnat', family: 6, match: { kind: 'addr', protocol: 'tcp', address: 'fd00:99::100', port: 8443 }, source: 'fd00:99:1::1' },
    { name: 'fw', family: 4, match: { kind: 'fwmark', fwmark: 7 }, source: '10.99.1.1' },
    { name: 'allports', family: 4, match: { kind: 'addr', protocol: 'udp', address: '10.99.0.101', port: 0 }, source: '10.99.1.1' },
  ]);
  t.deepEqual(deriveFullnatRules({}), []);
});

test('the nft script replaces the table in one transaction (golden)', (t) => {
  t.is(
    renderFullnatScript(RULES),
    [
      'table inet tandem_fullnat',
      'delete table inet tandem_fullnat',
      'table inet tandem_fullnat {',
      '\tchain postrouting {',
      '\t\ttype nat hook postrouting priority srcnat; policy accept;',
      '\t\tmeta l4proto tcp ct original ip daddr 10.99.0.100 ct original proto-dst 8443 snat ip to 10.99.1.1 comment "tandem vs web-fullnat"',
      '\t\tmeta l4proto tcp ct original ip6 daddr fd00:99::100 ct original proto-dst 8443 snat ip6 to fd00:99:1::1 comment "tandem vs web6-fullnat"',
      '\t\tmeta nfproto ipv4 meta mark 7 snat ip to 10.99.1.1 comment "tandem vs fw"',
      '\t\tmeta l4proto udp ct original ip daddr 10.99.0.101 snat ip to 10.99.1.1 comment "tandem vs allports"',
      '\t}',
      '}',
      '',
    ].join('\n'),
  );
  t.is(renderFullnatScript([]), 'table inet tandem_fullnat\ndelete table inet tandem_fullnat\n');
  t.is(ruleStatement(RULES[0] as FullnatRule), 'meta l4proto tcp ct original ip daddr 10.99.0.100 ct original proto-dst 8443 snat ip to 10.99.1.1 comment "tandem vs web-fullnat"');
});

test('what nft reports for the applied script compares equal to the desired rules', (t) => {
  const state = parseNftTable(RECORDED);
  t.true(state.shapeOk, state.problems.join('; '));
  t.deepEqual(state.rules, RULES.map(ruleSignature));
  t.deepEqual(planFullnat(RULES, state), { action: 'none', reason: 'the table matches' });
});

test('any difference in the table means one replacement', (t) => {
  const changes: Array<[string, (j: { nftables: Array<Record<string, unknown>> }) => void]> = [
    ['another source', (j) => ((j.nftables[3] as { rule: { expr: unknown[] } }).rule.expr[3] = { snat: { family: 'ip', addr: '10.99.1.2' } })],
    ['a rule missing', (j) => j.nftables.splice(6, 1)],
    ['a foreign rule', (j) => j.nftables.push({ rule: { chain: 'postrouting', expr: [{ masquerade: null }] } })],
    ['an unknown expression', (j) => (j.nftables[3] as { rule: { expr: unknown[] } }).rule.expr.unshift({ counter: { packets: 0, bytes: 0 } })],
    ['another chain priority', (j) => ((j.nftables[2] as { chain: { prio: number } }).chain.prio = 0)],
    ['an extra chain', (j) => j.nftables.push({ chain: { name: 'prerouting', type: 'nat', hook: 'prerouting', prio: -100, policy: 'accept' } })],
    ['a set', (j) => j.nftables.push({ set: { name: 'x' } })],
    ['rules reordered', (j) => j.nftables.push(...j.nftables.splice(3, 1))],
  ];
  for (const [name, change] of changes) {
    const j = recorded();
    change(j);
    const plan = planFullnat(RULES, parseNftTable(j));
    t.is(plan.action, 'replace', name);
    if (plan.action === 'replace') t.is(plan.script, renderFullnatScript(RULES), name);
  }
  t.false(parseNftTable({ nope: 1 }).shapeOk);
});

test('no table: create it; no rules: delete the table, or nothing', (t) => {
  t.like(planFullnat(RULES, undefined), { action: 'replace', reason: 'the table does not exist' });
  t.like(planFullnat([], parseNftTable(RECORDED)), { action: 'delete', script: 'table inet tandem_fullnat\ndelete table inet tandem_fullnat\n' });
  t.deepEqual(planFullnat([], undefined), { action: 'none', reason: 'no FULLNAT services and no table' });
});

test('sysctls: IPVS conntrack and forwarding for the families in use, none without rules', (t) => {
  t.deepEqual(
    fullnatSysctls(RULES).map((s) => `${s.name}=${s.value}`),
    ['net.ipv4.vs.conntrack=1', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1'],
  );
  t.deepEqual(fullnatSysctls(RULES.filter((r) => r.family === 6)).map((s) => s.name), ['net.ipv4.vs.conntrack', 'net.ipv6.conf.all.forwarding']);
  t.deepEqual(fullnatSysctls([]), []);
  t.is(sysctlPath('net.ipv4.vs.conntrack'), '/proc/sys/net/ipv4/vs/conntrack');
});

/** A fake host: a table (as JSON), sysctls, and a record of scripts run. */
class FakeHost implements FullnatHost {
  table: unknown;
  readonly scripts: string[] = [];
  readonly sysctls = new Map<string, string>([
    ['net.ipv4.vs.conntrack', '0'],
    ['net.ipv4.ip_forward', '0'],
    ['net.ipv6.conf.all.forwarding', '1'],
  ]);
  failScript = false;
  async listTable(): Promise<unknown> {
    return this.table;
  }
  async runScript(script: string): Promise<void> {
    if (this.failScript) throw new Error('nft -f - exited 1: Error: Could not process rule');
    this.scripts.push(script);
    this.table = script.includes('{') ? RECORDED : undefined;
  }
  async readSysctl(name: string): Promise<string | undefined> {
    return this.sysctls.get(name);
  }
  async writeSysctl(name: string, value: string): Promise<void> {
    this.sysctls.set(name, value);
  }
}

test('the driver sets sysctls, replaces the table once, then finds it in line', async (t) => {
  const host = new FakeHost();
  const r = new FullnatReconciler({ host, logger: new MemoryLogger(), desired: () => RULES });
  const first = await r.reconcileOnce();
  t.like(first, { action: 'replace', rules: 4, error: undefined, dryRun: false });
  t.deepEqual(
    first.sysctls.map((s) => [s.name, s.status]),
    [
      ['net.ipv4.vs.conntrack', 'set'],
      ['net.ipv4.ip_forward', 'set'],
      ['net.ipv6.conf.all.forwarding', 'ok'],
    ],
  );
  t.deepEqual(host.scripts, [renderFullnatScript(RULES)]);
  const second = await r.reconcileOnce();
  t.like(second, { action: 'none', error: undefined });
  t.is(host.scripts.length, 1, 'no transaction when the table matches');
});

test('a dry run plans but changes nothing; failures are reported, not thrown', async (t) => {
  const host = new FakeHost();
  const dry = await new FullnatReconciler({ host, logger: new MemoryLogger(), desired: () => RULES }).reconcileOnce({ dryRun: true });
  t.like(dry, { action: 'replace', dryRun: true });
  t.deepEqual(host.scripts, []);
  t.is(host.sysctls.get('net.ipv4.vs.conntrack'), '0');
  t.true(dry.sysctls.some((s) => s.status === 'planned'));

  host.sysctls.delete('net.ipv4.vs.conntrack');
  host.failScript = true;
  const bad = await new FullnatReconciler({ host, logger: new MemoryLogger(), desired: () => RULES }).reconcileOnce();
  t.regex(bad.error ?? '', /net\.ipv4\.vs\.conntrack does not exist \(the ip_vs module is not loaded\)/);
  t.regex(bad.error ?? '', /cannot replace table inet tandem_fullnat: nft -f - exited 1/);

  const gone = new FakeHost();
  gone.table = RECORDED;
  const del = await new FullnatReconciler({ host: gone, logger: new MemoryLogger(), desired: () => [] }).reconcileOnce();
  t.like(del, { action: 'delete', error: undefined });
  t.is(gone.table, undefined);
});
