/**
 * Tests of the `sync` configuration section: the documented example converts with its defaults, every optional
 * key is read, and each kind of mistake is reported at its own line:column with the document path.
 */

import test from 'ava';
import type { ExecutionContext } from 'ava';
import { ConfigError, DEFAULT_SYNC, parseConfig } from '../../src/config/index.ts';
import type { ConfigIssue } from '../../src/config/index.ts';

const FILE = 'tandem.yaml';

/** A valid document whose `sync` section starts on line 14; `syncLines` follow it. */
function withSync(...syncLines: string[]): string {
  return [
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
    'sync:', //                         14
    ...syncLines, //                    15...
  ].join('\n') + '\n';
}

const EXAMPLE = [
  '  interface: eth0', //                                                                               15
  '  sync_id: 51', //                                                                                   16
  '  listen: tcp://10.99.0.2:5113', //                                                                  17
  '  peer: tcp://10.99.0.3:5113', //                                                                    18
  '  curve: { secret_key_file: /etc/tandem/sync.key, peer_public_key_file: /etc/tandem/peer.pub }', // 19
  '  resync_timeout: 30s', //                                                                           20
];

function oneIssue(t: ExecutionContext, text: string): ConfigIssue | undefined {
  const err = t.throws(() => parseConfig(text, FILE), { instanceOf: ConfigError });
  const issues = err?.issues ?? [];
  t.is(issues.length, 1, issues.map((i) => `${i.line}:${i.column} ${i.path}: ${i.message}`).join('\n'));
  return issues[0];
}

/** EXAMPLE with line `n` (15-based, as in the document) replaced, or removed when text is undefined. */
function exampleWith(n: number, text: string | undefined): string[] {
  const lines = [...EXAMPLE];
  if (text === undefined) lines.splice(n - 15, 1);
  else lines[n - 15] = text;
  return lines;
}

test('the documented sync example converts, with the defaults for the keys it leaves out', (t) => {
  const c = parseConfig(withSync(...EXAMPLE), FILE);
  t.deepEqual(c.sync, {
    interface: 'eth0',
    syncId: 51,
    listen: 'tcp://10.99.0.2:5113',
    peer: 'tcp://10.99.0.3:5113',
    curve: { secretKeyFile: '/etc/tandem/sync.key', peerPublicKeyFile: '/etc/tandem/peer.pub' },
    resyncTimeoutMs: 30_000,
    repairIntervalMs: DEFAULT_SYNC.repairIntervalMs,
    group: '224.0.0.81',
    port: 8848,
    ttl: 1,
    maxLen: 0,
    masterThread: 'always',
  });
});

test('a configuration without `sync` has no sync settings', (t) => {
  const text = withSync().replace('sync:\n', '');
  t.is(parseConfig(text, FILE).sync, undefined);
});

test('every optional sync key is read; the interface defaults to node.interface', (t) => {
  const c = parseConfig(
    withSync(
      '  listen: "tcp://*:5113"',
      '  peer: "tcp://[fd00::3]:5113"',
      '  curve: { secret_key_file: /k/s.key, peer_public_key_file: /k/p.pub }',
      '  group: 239.1.2.3',
      '  port: 8849',
      '  ttl: 2',
      '  maxlen: 1400',
      '  repair_interval: 0s',
      '  resync_timeout: 2m',
      '  master_thread: while_master',
    ),
    FILE,
  );
  t.like(c.sync, {
    interface: 'eth0',
    syncId: 0,
    listen: 'tcp://*:5113',
    peer: 'tcp://[fd00::3]:5113',
    group: '239.1.2.3',
    port: 8849,
    ttl: 2,
    maxLen: 1400,
    repairIntervalMs: 0,
    resyncTimeoutMs: 120_000,
    masterThread: 'while_master',
  });
});

test('an IPv6 sync group is accepted in canonical form', (t) => {
  t.is(parseConfig(withSync(...EXAMPLE, '  group: FF02:0::81'), FILE).sync?.group, 'ff02::81');
});

const BAD: ReadonlyArray<{ name: string; lines: string[]; line: number; column: number; path: string; message: RegExp }> = [
  { name: 'a sync_id above 255', lines: exampleWith(16, '  sync_id: 256'), line: 16, column: 12, path: 'sync.sync_id', message: /sync_id must be an integer 0\.\.255/ },
  { name: 'a listen endpoint that is not tcp://', lines: exampleWith(17, '  listen: ipc:///tmp/x'), line: 17, column: 11, path: 'sync.listen', message: /only tcp:\/\/ is supported/ },
  { name: 'a peer endpoint without a port', lines: exampleWith(18, '  peer: tcp://10.99.0.3'), line: 18, column: 9, path: 'sync.peer', message: /ZeroMQ TCP endpoint/ },
  { name: 'a wildcard peer endpoint', lines: exampleWith(18, '  peer: "tcp://*:5113"'), line: 18, column: 9, path: 'sync.peer', message: /ZeroMQ TCP endpoint/ },
  { name: 'a peer equal to listen', lines: exampleWith(18, '  peer: tcp://10.99.0.2:5113'), line: 18, column: 9, path: 'sync.peer', message: /not this director's own `listen`/ },
  { name: 'a port out of range in an endpoint', lines: exampleWith(17, '  listen: tcp://10.99.0.2:70000'), line: 17, column: 11, path: 'sync.listen', message: /port in listen must be 1\.\.65535/ },
  { name: 'a relative key file', lines: exampleWith(19, '  curve: { secret_key_file: sync.key, peer_public_key_file: /etc/tandem/peer.pub }'), line: 19, column: 29, path: 'sync.curve.secret_key_file', message: /absolute path/ },
  { name: 'a missing peer key file', lines: exampleWith(19, '  curve: { secret_key_file: /etc/tandem/sync.key }'), line: 19, column: 10, path: 'sync.curve.peer_public_key_file', message: /missing required key `peer_public_key_file`/ },
  { name: 'a resync_timeout without a unit', lines: exampleWith(20, '  resync_timeout: 30'), line: 20, column: 19, path: 'sync.resync_timeout', message: /has no unit/ },
  { name: 'a resync_timeout below one second', lines: exampleWith(20, '  resync_timeout: 10ms'), line: 20, column: 19, path: 'sync.resync_timeout', message: /1s\.\.1h/ },
  { name: 'a unicast sync group', lines: [...EXAMPLE, '  group: 10.0.0.1'], line: 21, column: 10, path: 'sync.group', message: /multicast address/ },
  { name: 'a maxlen too small for one entry', lines: [...EXAMPLE, '  maxlen: 20'], line: 21, column: 11, path: 'sync.maxlen', message: /maxlen must be an integer 44\.\.65507/ },
  { name: 'a misspelt key', lines: [...EXAMPLE, '  repair_intervall: 10s'], line: 21, column: 3, path: 'sync.repair_intervall', message: /did you mean `repair_interval`/ },
  { name: 'an unknown master_thread mode', lines: [...EXAMPLE, '  master_thread: whilemaster'], line: 21, column: 18, path: 'sync.master_thread', message: /did you mean `while_master`/ },
  { name: 'a missing listen', lines: exampleWith(17, undefined), line: 15, column: 3, path: 'sync.listen', message: /missing required key `listen`/ },
];

for (const c of BAD) {
  test(`sync config error: ${c.name} is reported at its line:column`, (t) => {
    const issue = oneIssue(t, withSync(...c.lines));
    t.like(issue, { file: FILE, line: c.line, column: c.column, path: c.path });
    t.regex(issue?.message ?? '', c.message);
  });
}

test('several sync mistakes are reported together', (t) => {
  const err = t.throws(() => parseConfig(withSync(...exampleWith(16, '  sync_id: -1'), '  ttl: 0', '  port: x'), FILE), { instanceOf: ConfigError });
  t.deepEqual(err?.issues.map((i) => i.path).sort(), ['sync.port', 'sync.sync_id', 'sync.ttl']);
});
