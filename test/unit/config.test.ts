/**
 * Tests of the configuration loader (src/config): conversion of a valid file into TandemConfig (milliseconds,
 * camelCase, defaults), every class of error with its exact file:line:column and document path, several errors
 * reported together, the shipped example files, and a property: any input either parses or throws ConfigError.
 */

import test from 'ava';
import type { ExecutionContext } from 'ava';
import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import {
  ConfigError,
  DEFAULT_ADVERT_INTERVAL_MS,
  DEFAULT_GARP,
  DEFAULT_MAX_PEER_PRIORITY,
  DEFAULT_MULTICAST_TTL,
  DEFAULT_PORT,
  DEFAULT_PRIORITY,
  DEFAULT_STATE_DIR,
  loadConfig,
  parseConfig,
} from '../../src/config/index.ts';
import type { ConfigIssue, TandemConfig } from '../../src/config/index.ts';

const FILE = 'tandem.yaml';

/** Joins lines into a document (so tests can count lines by array index + 1). */
function doc(...lines: string[]): string {
  return lines.join('\n') + '\n';
}

/** A minimal valid unicast document; line numbers are referred to by the tests below. */
const BASE_LINES = [
  'node:', //                          1
  '  name: dirA', //                   2
  '  interface: eth0', //              3
  'vrrp:', //                          4
  '  transport:', //                   5
  '    mode: unicast', //              6
  '    source: 10.99.0.2', //          7
  '    peers: [10.99.0.3]', //         8
  '  instances:', //                   9
  '    - name: VI_1', //              10
  '      vrid: 51', //                11
  '      priority: 150', //           12
  '      vips: [10.99.0.100/32]', //  13
] as const;

/** BASE_LINES with line `n` (1-based) replaced by `text` (or removed when text is undefined). */
function baseWith(n: number, text: string | undefined): string {
  const lines: string[] = [...BASE_LINES];
  if (text === undefined) lines.splice(n - 1, 1);
  else lines[n - 1] = text;
  return doc(...lines);
}

/** Parses text that must fail and returns its issues. */
function issuesOf(t: ExecutionContext, text: string, file = FILE): readonly ConfigIssue[] {
  const err = t.throws(() => parseConfig(text, file), { instanceOf: ConfigError });
  return err?.issues ?? [];
}

/** Parses text that must fail with exactly one issue and returns it. */
function oneIssue(t: ExecutionContext, text: string): ConfigIssue | undefined {
  const issues = issuesOf(t, text);
  t.is(issues.length, 1, issues.map((i) => `${i.line}:${i.column} ${i.path}: ${i.message}`).join('\n'));
  return issues[0];
}

// ---------------------------------------------------------------------------------------------------------
// Valid configurations

test('a full unicast configuration converts to camelCase with durations in milliseconds', (t) => {
  const text = doc(
    'node: { name: dirA, interface: eth0, state_dir: /run/tandem }',
    'vrrp:',
    '  transport: { mode: unicast, port: 6000, source: 10.99.0.2, peers: [10.99.0.3, 10.99.0.4] }',
    '  auth: { key_file: /etc/tandem/vrrp.key, mode: permissive, send_key_id: 7 }',
    '  max_peer_priority: 200',
    '  instances:',
    '    - name: VI_1',
    '      vrid: 51',
    '      priority: 255',
    '      advert_interval: 1.5s',
    '      preempt: false',
    '      preempt_delay: 2m',
    '      interface: eth1',
    '      vips: [10.99.0.100/24, "FD00:0:0::100", 10.99.0.101]',
    '      garp: { repeat: 0, interval: 10ms, refresh: 30s }',
    'metrics: { listen: "127.0.0.1:9112" }',
  );
  const expected: TandemConfig = {
    file: 'dir/full.yaml',
    node: { name: 'dirA', interface: 'eth0', stateDir: '/run/tandem' },
    vrrp: {
      transport: { mode: 'unicast', port: 6000, source: '10.99.0.2', peers: ['10.99.0.3', '10.99.0.4'] },
      auth: { keyFile: '/etc/tandem/vrrp.key', mode: 'permissive', sendKeyId: 7 },
      maxPeerPriority: 200,
      instances: [
        {
          name: 'VI_1',
          vrid: 51,
          priority: 255,
          advertIntervalMs: 1500,
          preempt: false,
          preemptDelayMs: 120_000,
          interface: 'eth1',
          vips: [
            { address: '10.99.0.100', prefixLength: 24, family: 4, interface: 'eth1' },
            { address: 'fd00::100', prefixLength: 128, family: 6, interface: 'eth1' },
            { address: '10.99.0.101', prefixLength: 32, family: 4, interface: 'eth1' },
          ],
          garp: { repeat: 0, intervalMs: 10, refreshMs: 30_000 },
        },
      ],
    },
    metrics: { listen: '127.0.0.1:9112' },
  };
  t.deepEqual(parseConfig(text, 'dir/full.yaml'), expected);
});

test('omitted keys take the DEFAULT_* values', (t) => {
  const c = parseConfig(doc(...BASE_LINES).replace('      priority: 150\n', ''), FILE);
  t.is(c.file, FILE);
  t.is(c.node.stateDir, DEFAULT_STATE_DIR);
  t.is(c.vrrp.transport.port, DEFAULT_PORT);
  t.is(c.vrrp.auth, undefined);
  t.is(c.vrrp.maxPeerPriority, DEFAULT_MAX_PEER_PRIORITY);
  t.deepEqual(c.metrics, { listen: undefined });
  const inst = c.vrrp.instances[0];
  t.truthy(inst);
  t.is(inst?.priority, DEFAULT_PRIORITY);
  t.is(inst?.advertIntervalMs, DEFAULT_ADVERT_INTERVAL_MS);
  t.is(inst?.preempt, true);
  t.is(inst?.preemptDelayMs, 0);
  t.is(inst?.interface, 'eth0', 'instance interface defaults to node.interface');
  t.deepEqual(inst?.garp, { ...DEFAULT_GARP });
  t.deepEqual(inst?.vips, [{ address: '10.99.0.100', prefixLength: 32, family: 4, interface: 'eth0' }]);
  t.deepEqual(DEFAULT_GARP, { repeat: 5, intervalMs: 200, refreshMs: 0 });
  t.is(DEFAULT_PORT, 5112);
  t.is(DEFAULT_PRIORITY, 100);
  t.is(DEFAULT_ADVERT_INTERVAL_MS, 1000);
  t.is(DEFAULT_MAX_PEER_PRIORITY, 254);
});

test('multicast transport: defaults, optional source, canonical IPv6 text', (t) => {
  const text = doc(
    'node: { name: dirA, interface: eth0 }',
    'vrrp:',
    '  transport: { mode: multicast, group: "FF02::12" }',
    '  auth: { key_file: /etc/tandem/vrrp.key }',
    '  instances: [{ name: VI_6, vrid: 7, vips: ["fd00::100/64", "::ffff:10.0.0.1"] }]',
  );
  const c = parseConfig(text, FILE);
  t.deepEqual(c.vrrp.transport, { mode: 'multicast', port: DEFAULT_PORT, group: 'ff02::12', source: undefined, ttl: DEFAULT_MULTICAST_TTL });
  t.deepEqual(c.vrrp.auth, { keyFile: '/etc/tandem/vrrp.key', mode: 'enforce', sendKeyId: undefined });
  t.deepEqual(
    c.vrrp.instances[0]?.vips.map((v) => `${v.address}/${v.prefixLength}`),
    ['fd00::100/64', '::ffff:10.0.0.1/128'],
  );
});

test('anchors and aliases are followed', (t) => {
  const text = doc(
    'node: { name: dirA, interface: eth0 }',
    'vrrp:',
    '  transport: { mode: unicast, source: 10.99.0.2, peers: [10.99.0.3] }',
    '  instances:',
    '    - { name: VI_1, vrid: 1, vips: [10.0.0.1], garp: &g { repeat: 2 } }',
    '    - { name: VI_2, vrid: 2, vips: [10.0.0.2], garp: *g }',
  );
  const c = parseConfig(text, FILE);
  t.is(c.vrrp.instances[1]?.garp.repeat, 2);
});

test('the example configurations validate', (t) => {
  for (const name of ['tandem.example.yaml', 'multicast.example.yaml']) {
    const file = fileURLToPath(new URL(`../../config/${name}`, import.meta.url));
    const c = loadConfig(file);
    t.is(c.file, file);
    t.true(c.vrrp.instances.length > 0, name);
  }
  const uni = loadConfig(fileURLToPath(new URL('../../config/tandem.example.yaml', import.meta.url)));
  t.is(uni.vrrp.transport.mode, 'unicast');
  t.not(uni.vrrp.auth, undefined);
  const multi = loadConfig(fileURLToPath(new URL('../../config/multicast.example.yaml', import.meta.url)));
  t.is(multi.vrrp.transport.mode, 'multicast');
});

test('loadConfig reads a file and reports issues against that file name', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-config-'));
  try {
    const good = join(dir, 'good.yaml');
    writeFileSync(good, doc(...BASE_LINES));
    t.is(loadConfig(good).node.name, 'dirA');
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, baseWith(12, '      priority: 300'));
    const err = t.throws(() => loadConfig(bad), { instanceOf: ConfigError });
    t.is(err?.issues[0]?.file, bad);
    t.true(err?.message.startsWith(`${bad}:12:17: vrrp.instances[0].priority: `));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loadConfig on a missing file throws ConfigError', (t) => {
  const err = t.throws(() => loadConfig('/nonexistent/tandem.yaml'), { instanceOf: ConfigError });
  t.like(err?.issues[0], { file: '/nonexistent/tandem.yaml', line: 1, column: 1, path: '' });
  t.regex(err?.issues[0]?.message ?? '', /cannot read the configuration file/);
});

test('a byte order mark does not shift columns', (t) => {
  const issue = oneIssue(t, '\uFEFF' + baseWith(2, '  name: "dir A"'));
  t.like(issue, { line: 2, column: 9, path: 'node.name' });
});

// ---------------------------------------------------------------------------------------------------------
// One error class each, with exact positions

test('priority out of range: exact line, column, path and message', (t) => {
  const issue = oneIssue(t, baseWith(12, '      priority: 300'));
  t.deepEqual(issue, {
    file: FILE,
    line: 12,
    column: 17,
    path: 'vrrp.instances[0].priority',
    message: 'priority must be an integer 1..255 (255 = address owner); got 300',
  });
});

test('the ConfigError message is file:line:column: path: message', (t) => {
  const err = t.throws(() => parseConfig(baseWith(12, '      priority: 300'), FILE), { instanceOf: ConfigError });
  t.is(err?.message, 'tandem.yaml:12:17: vrrp.instances[0].priority: priority must be an integer 1..255 (255 = address owner); got 300');
  t.is(err?.code, 'ERR_CONFIG');
});

test('unknown key with a suggestion points at the key', (t) => {
  const issue = oneIssue(t, baseWith(12, '      prio: 150'));
  t.deepEqual(issue, { file: FILE, line: 12, column: 7, path: 'vrrp.instances[0].prio', message: 'unknown key `prio`; did you mean `priority`?' });
});

test('unknown keys: camelCase spelling, typo, and no suggestion', (t) => {
  t.is(oneIssue(t, baseWith(12, '      advertInterval: 1s'))?.message, 'unknown key `advertInterval`; did you mean `advert_interval`?');
  // A misspelt required key is two issues: the unknown key, and the missing one (at the parent mapping).
  const issues = issuesOf(t, baseWith(3, '  interfce: eth0'));
  t.deepEqual(
    issues.map((i) => [i.line, i.column, i.path, i.message]),
    [
      [2, 3, 'node.interface', 'missing required key `interface`: the interface that carries the VIPs and advertisements, e.g. `interface: eth0`'],
      [3, 3, 'node.interfce', 'unknown key `interfce`; did you mean `interface`?'],
    ],
  );
  const none = oneIssue(t, doc(...BASE_LINES, 'zzz: 1'));
  t.like(none, { line: 14, column: 1, path: 'zzz' });
  t.regex(none?.message ?? '', /^unknown key `zzz`; the configuration accepts `node`, `vrrp`, `metrics`, `ipvs`, `virtual_servers`, `sync`$/);
});

test('a key of the other transport mode is explained', (t) => {
  const issue = oneIssue(t, baseWith(8, '    peers: [10.99.0.3]\n    group: 224.0.0.18'));
  t.deepEqual(issue, {
    file: FILE,
    line: 9,
    column: 5,
    path: 'vrrp.transport.group',
    message: '`group` is only valid with `mode: multicast`; remove it or switch the mode',
  });
});

test('a bare number for a duration says to write a unit', (t) => {
  const issue = oneIssue(t, baseWith(12, '      advert_interval: 1'));
  t.like(issue, { line: 12, column: 24, path: 'vrrp.instances[0].advert_interval' });
  t.is(issue?.message, 'advert_interval must be a duration with a unit, e.g. `1s` or `200ms`; a bare number (1) has no unit');
});

test('duration rules: unit, range, 10ms steps, refresh off or >= 1s', (t) => {
  t.regex(oneIssue(t, baseWith(12, '      advert_interval: fast'))?.message ?? '', /must be a duration such as `20ms`, `1s`, `1.5s` or `2m` \(10ms..40.95s\); got "fast"/);
  t.is(oneIssue(t, baseWith(12, '      advert_interval: 41s'))?.message, 'advert_interval must be 10ms..40.95s; got 41s');
  t.is(oneIssue(t, baseWith(12, '      advert_interval: 5ms'))?.message, 'advert_interval must be 10ms..40.95s; got 5ms');
  t.is(oneIssue(t, baseWith(12, '      advert_interval: 1005ms'))?.message, 'advert_interval must be a multiple of 10ms (it is sent in centiseconds); got 1005ms');
  t.is(parseConfig(baseWith(12, '      advert_interval: 40.95s'), FILE).vrrp.instances[0]?.advertIntervalMs, 40_950);
  t.is(parseConfig(baseWith(12, '      preempt_delay: 1000s'), FILE).vrrp.instances[0]?.preemptDelayMs, 1_000_000);
  t.is(oneIssue(t, baseWith(12, '      preempt_delay: 1001s'))?.message, 'preempt_delay must be 0s..1000s; got 1001s');
  t.is(oneIssue(t, baseWith(12, '      garp: { refresh: 500ms }'))?.message, 'refresh must be 0s (off) or 1s..24h; got 500ms');
  t.like(oneIssue(t, baseWith(12, '      garp: { interval: 20s }')), { path: 'vrrp.instances[0].garp.interval', line: 12, column: 25 });
  t.like(oneIssue(t, baseWith(12, '      garp: { repeat: 101 }')), { path: 'vrrp.instances[0].garp.repeat' });
});

test('bad address: exact position and message', (t) => {
  const issue = oneIssue(t, baseWith(7, '    source: 10.99.0.300'));
  t.deepEqual(issue, {
    file: FILE,
    line: 7,
    column: 13,
    path: 'vrrp.transport.source',
    message: 'source must be an IPv4 or IPv6 address such as 10.99.0.2 or fd00::2; got "10.99.0.300"',
  });
});

test('peer rules: not the source, same family, no duplicates, at least one', (t) => {
  const issues = issuesOf(t, baseWith(8, '    peers: [10.99.0.2, "fd00::3", 10.99.0.3, 10.99.0.3]'));
  t.deepEqual(
    issues.map((i) => [i.path, i.line, i.column]),
    [
      ['vrrp.transport.peers[0]', 8, 13],
      ['vrrp.transport.peers[1]', 8, 24],
      ['vrrp.transport.peers[3]', 8, 46],
    ],
  );
  t.regex(issues[0]?.message ?? '', /must not include this node's own source address 10\.99\.0\.2/);
  t.regex(issues[1]?.message ?? '', /peer fd00::3 is IPv6 but source 10\.99\.0\.2 is IPv4/);
  t.regex(issues[2]?.message ?? '', /listed twice \(also at vrrp\.transport\.peers\[2\]\)/);
  t.like(oneIssue(t, baseWith(8, '    peers: []')), { path: 'vrrp.transport.peers', line: 8, column: 12 });
  t.like(oneIssue(t, baseWith(8, undefined)), { path: 'vrrp.transport.peers', line: 6, column: 5 });
});

test('multicast rules: group must be multicast, source family, unicast-only keys', (t) => {
  const lines = (transport: string): string =>
    doc('node: { name: dirA, interface: eth0 }', 'vrrp:', `  transport: ${transport}`, '  instances: [{ name: VI_1, vrid: 1, vips: [10.0.0.1] }]');
  t.deepEqual(oneIssue(t, lines('{ mode: multicast, group: 10.0.0.18 }')), {
    file: FILE,
    line: 3,
    column: 40,
    path: 'vrrp.transport.group',
    message: 'group must be a multicast address (224.0.0.0/4 or ff00::/8), e.g. 224.0.0.18 or ff02::12; got 10.0.0.18',
  });
  t.regex(oneIssue(t, lines('{ mode: multicast, group: 224.0.0.18, source: "fd00::1" }'))?.message ?? '', /source fd00::1 is IPv6 but group 224\.0\.0\.18 is IPv4/);
  t.like(oneIssue(t, lines('{ mode: multicast, group: 224.0.0.18, peers: [10.0.0.2] }')), {
    path: 'vrrp.transport.peers',
    message: '`peers` is only valid with `mode: unicast`; remove it or switch the mode',
  });
  t.like(oneIssue(t, lines('{ mode: multicast, group: 224.0.0.18, ttl: 0 }')), { path: 'vrrp.transport.ttl' });
  t.like(oneIssue(t, lines('{ mode: multicast }')), { path: 'vrrp.transport.group', line: 3, column: 14 });
  t.like(oneIssue(t, lines('{ mode: broadcast }')), { path: 'vrrp.transport.mode', message: 'mode must be one of unicast, multicast; got "broadcast"' });
});

test('duplicate vrid points at the second instance', (t) => {
  const issue = oneIssue(t, doc(...BASE_LINES, '    - name: VI_2', '      vrid: 51', '      vips: [10.99.0.101]'));
  t.deepEqual(issue, {
    file: FILE,
    line: 15,
    column: 13,
    path: 'vrrp.instances[1].vrid',
    message: 'vrid 51 is already used by vrrp.instances[0]; each instance needs its own vrid',
  });
});

test('duplicate instance names and VIPs (also in another spelling) are refused', (t) => {
  const issues = issuesOf(t, doc(...BASE_LINES, '    - name: VI_1', '      vrid: 52', '      vips: [10.99.0.100/24, "fd00::1", "FD00:0::1"]'));
  t.deepEqual(
    issues.map((i) => [i.path, i.line, i.column]),
    [
      ['vrrp.instances[1].name', 14, 13],
      ['vrrp.instances[1].vips[0]', 16, 14],
      ['vrrp.instances[1].vips[2]', 16, 41],
    ],
  );
  t.regex(issues[1]?.message ?? '', /VIP 10\.99\.0\.100 is already listed at vrrp\.instances\[0\]\.vips\[0\]/);
  t.regex(issues[2]?.message ?? '', /VIP fd00::1 is already listed at vrrp\.instances\[1\]\.vips\[1\]/);
});

test('VIP syntax: prefix range, zone ids, non-unicast, empty list', (t) => {
  t.is(oneIssue(t, baseWith(13, '      vips: [10.99.0.100/33]'))?.message, 'the prefix length of an IPv4 VIP must be 0..32 (usually /32); got 10.99.0.100/33');
  t.regex(oneIssue(t, baseWith(13, '      vips: ["fd00::1/129"]'))?.message ?? '', /IPv6 VIP must be 0\.\.128/);
  t.regex(oneIssue(t, baseWith(13, '      vips: ["fe80::1%eth0"]'))?.message ?? '', /zone id/);
  t.regex(oneIssue(t, baseWith(13, '      vips: [224.0.0.5]'))?.message ?? '', /not a multicast address/);
  t.regex(oneIssue(t, baseWith(13, '      vips: [10.99.0.100/x]'))?.message ?? '', /prefix length/);
  t.like(oneIssue(t, baseWith(13, '      vips: []')), { path: 'vrrp.instances[0].vips', line: 13, column: 13 });
  t.like(oneIssue(t, baseWith(13, '      vips: 10.99.0.100')), { path: 'vrrp.instances[0].vips', line: 13, column: 13 });
});

test('missing required key points at the parent mapping', (t) => {
  const issue = oneIssue(t, baseWith(11, undefined));
  t.deepEqual(issue, {
    file: FILE,
    line: 10,
    column: 7,
    path: 'vrrp.instances[0].vrid',
    message: 'missing required key `vrid`: the virtual router id shared with the peers, e.g. `vrid: 51`',
  });
  const top = oneIssue(t, doc(...BASE_LINES.slice(3)));
  t.like(top, { line: 1, column: 1, path: 'node' });
  const flow = oneIssue(t, doc('node:', '  { name: dirA }', ...BASE_LINES.slice(3)));
  t.like(flow, { line: 2, column: 3, path: 'node.interface' });
});

test('names and interfaces', (t) => {
  t.like(oneIssue(t, baseWith(2, '  name: "dir A"')), { path: 'node.name', line: 2, column: 9 });
  t.like(oneIssue(t, baseWith(2, `  name: ${'a'.repeat(65)}`)), { path: 'node.name' });
  t.regex(oneIssue(t, baseWith(2, '  name: 42'))?.message ?? '', /quote it/);
  t.like(oneIssue(t, baseWith(3, '  interface: eth0/1')), { path: 'node.interface', line: 3, column: 14 });
  t.like(oneIssue(t, baseWith(3, '  interface: averyveryverylong0')), { path: 'node.interface' });
  t.like(oneIssue(t, baseWith(12, '      interface: "eth 0"')), { path: 'vrrp.instances[0].interface' });
  t.like(oneIssue(t, baseWith(3, '  interface: eth0\n  state_dir: var/lib/tandem')), { path: 'node.state_dir', line: 4, column: 14 });
});

test('types: booleans, quoted numbers, explicit nulls, wrong collection kinds', (t) => {
  t.is(oneIssue(t, baseWith(12, '      preempt: yes'))?.message, 'preempt must be true or false; got "yes"');
  t.is(oneIssue(t, baseWith(12, '      priority: "150"'))?.message, 'priority must be an integer 1..255 (255 = address owner); got "150" (write the number without quotes)');
  t.is(oneIssue(t, baseWith(12, '      priority: 1.5'))?.message, 'priority must be an integer 1..255 (255 = address owner); got 1.5');
  t.like(oneIssue(t, baseWith(12, '      priority:')), { path: 'vrrp.instances[0].priority', message: 'priority must be an integer 1..255 (255 = address owner); got nothing (the value is empty)' });
  t.like(oneIssue(t, doc(...BASE_LINES.slice(0, 8), '  instances: { a: 1 }')), { path: 'vrrp.instances', line: 9, column: 14 });
  t.like(oneIssue(t, doc('node: [a]', ...BASE_LINES.slice(3))), { path: 'node', line: 1, column: 7 });
});

test('auth, max_peer_priority and metrics', (t) => {
  const withVrrpKey = (line: string): string => baseWith(8, `    peers: [10.99.0.3]\n${line}`);
  t.like(oneIssue(t, withVrrpKey('  auth: { key_file: /k, mode: enforcing }')), {
    path: 'vrrp.auth.mode',
    message: 'mode must be one of receive-only, permissive, enforce; got "enforcing"; did you mean `enforce`?',
  });
  t.like(oneIssue(t, withVrrpKey('  auth: { mode: enforce }')), { path: 'vrrp.auth.key_file', line: 9, column: 9 });
  t.like(oneIssue(t, withVrrpKey('  auth: { key_file: /k, send_key_id: 256 }')), { path: 'vrrp.auth.send_key_id' });
  t.like(oneIssue(t, withVrrpKey('  max_peer_priority: 0')), { path: 'vrrp.max_peer_priority', line: 9, column: 22 });
  const metrics = (listen: string): string => doc(...BASE_LINES, `metrics: { listen: ${listen} }`);
  t.is(parseConfig(metrics('"[::1]:9112"'), FILE).metrics.listen, '[::1]:9112');
  t.is(parseConfig(metrics('"localhost:9112"'), FILE).metrics.listen, 'localhost:9112');
  t.like(oneIssue(t, metrics('"127.0.0.1"')), { path: 'metrics.listen', line: 14, column: 20 });
  t.like(oneIssue(t, metrics('"127.0.0.1:0"')), { path: 'metrics.listen' });
  t.like(oneIssue(t, metrics('"::1:9112"')), { path: 'metrics.listen' });
});

test('empty and non-mapping documents', (t) => {
  t.like(oneIssue(t, ''), { line: 1, column: 1, path: '' });
  t.like(oneIssue(t, '# only a comment\n'), { line: 1, column: 1, path: '' });
  t.like(oneIssue(t, '- a\n- b\n'), { line: 1, column: 1, path: '' });
});

test('YAML syntax errors carry line and column', (t) => {
  t.deepEqual(oneIssue(t, doc('node:', '  name: dirA', '\tinterface: eth0')), {
    file: FILE,
    line: 3,
    column: 1,
    path: '',
    message: 'YAML syntax error: Tabs are not allowed as indentation',
  });
  const dup = oneIssue(t, doc('node:', '  name: dirA', '  name: dirB'));
  t.like(dup, { line: 3, column: 3, path: '' });
  t.regex(dup?.message ?? '', /^YAML syntax error: Map keys must be unique/);
  t.like(oneIssue(t, doc('node: { name: a', 'vrrp: 1')), { line: 2, column: 1 });
  t.like(oneIssue(t, doc('a: b: c')), { line: 1, column: 4 });
});

test('dangling alias is one issue at the alias', (t) => {
  const issues = issuesOf(t, doc(...BASE_LINES, 'metrics: *nope'));
  t.deepEqual(issues.map((i) => [i.line, i.column, i.path]), [[14, 10, 'metrics']]);
  t.regex(issues[0]?.message ?? '', /alias `\*nope` refers to no anchor/);
});

// ---------------------------------------------------------------------------------------------------------
// Many errors at once

test('every issue is reported together, in source order', (t) => {
  const text = doc(
    'node:', //                                  1
    '  name: "dir A"', //                        2
    '  interface: eth0', //                      3
    'vrrp:', //                                  4
    '  transport:', //                           5
    '    mode: unicast', //                      6
    '    source: 10.99.0.300', //                7
    '    peers: [10.99.0.3]', //                 8
    '  instances:', //                           9
    '    - name: VI_1', //                      10
    '      vrid: 51', //                        11
    '      prio: 3', //                         12
    '      priority: 300', //                   13
    '      advert_interval: 1', //              14
    '      vips: [10.99.0.100/32]', //          15
    '    - name: VI_2', //                      16
    '      vips: [10.99.0.101]', //             17
  );
  const issues = issuesOf(t, text);
  t.deepEqual(
    issues.map((i) => `${i.line}:${i.column} ${i.path}`),
    [
      '2:9 node.name',
      '7:13 vrrp.transport.source',
      '12:7 vrrp.instances[0].prio',
      '13:17 vrrp.instances[0].priority',
      '14:24 vrrp.instances[0].advert_interval',
      '16:7 vrrp.instances[1].vrid',
    ],
  );
  t.true(issues.every((i) => i.file === FILE));
  const err = t.throws(() => parseConfig(text, FILE), { instanceOf: ConfigError });
  t.is(err?.message.split('\n').length, 6);
});

// ---------------------------------------------------------------------------------------------------------
// Properties: nothing but a config or a ConfigError comes out

/** Asserts the outcome of parseConfig is a config or a well-formed ConfigError; returns false otherwise. */
function parsesOrConfigError(text: string): boolean {
  try {
    const c = parseConfig(text, 'fuzz.yaml');
    return c.file === 'fuzz.yaml' && c.vrrp.instances.length > 0;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return (
      e.issues.length > 0 &&
      e.issues.every((i) => i.file === 'fuzz.yaml' && Number.isInteger(i.line) && i.line >= 1 && Number.isInteger(i.column) && i.column >= 1 && i.message !== '')
    );
  }
}

const KEYS = [
  'node', 'vrrp', 'metrics', 'name', 'interface', 'state_dir', 'transport', 'auth', 'max_peer_priority', 'instances',
  'mode', 'port', 'source', 'peers', 'group', 'ttl', 'key_file', 'send_key_id', 'vrid', 'priority', 'advert_interval',
  'preempt', 'preempt_delay', 'vips', 'garp', 'repeat', 'interval', 'refresh', 'listen',
] as const;
const TOKENS = [
  ...KEYS.map((k) => `${k}:`), ' ', '\n', '  ', '- ', '[', ']', '{', '}', ',', ':', '"', "'", '&a ', '*a', '!!str ', '#', '---', '? ',
  'unicast', 'multicast', '10.99.0.2', '10.99.0.3', '224.0.0.18', 'fd00::1', '10.99.0.100/32', '1s', '10ms', '300', '51', 'true', 'null', '\t',
];

test('property: random text is a config or a ConfigError, never another exception', (t) => {
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), parsesOrConfigError), { numRuns: 300 });
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => parsesOrConfigError(Buffer.from(bytes).toString('utf8'))), { numRuns: 300 });
  fc.assert(fc.property(fc.array(fc.constantFrom(...TOKENS), { maxLength: 60 }), (parts) => parsesOrConfigError(parts.join(''))), { numRuns: 500 });
  t.pass();
});

test('property: mutations of a valid file are a config or a ConfigError', (t) => {
  const base = doc(...BASE_LINES);
  const edit = fc.record({ at: fc.nat({ max: base.length }), del: fc.nat({ max: 6 }), insert: fc.constantFrom(...TOKENS, '') });
  fc.assert(
    fc.property(fc.array(edit, { minLength: 1, maxLength: 4 }), (edits) => {
      let text = base;
      for (const e of edits) text = text.slice(0, e.at) + e.insert + text.slice(e.at + e.del);
      return parsesOrConfigError(text);
    }),
    { numRuns: 500 },
  );
  t.pass();
});

test('property: arbitrary YAML data shaped with real keys is a config or a ConfigError', (t) => {
  const values = [fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.constantFrom('1s', '10.99.0.2', 'unicast', 'multicast', '224.0.0.18', 'eth0')];
  const shaped = fc.object({ key: fc.constantFrom(...KEYS), values, maxDepth: 4, maxKeys: 6 });
  fc.assert(fc.property(shaped, (data) => parsesOrConfigError(stringify(data))), { numRuns: 500 });
  t.pass();
});
