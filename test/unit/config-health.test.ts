/**
 * Tests of the health-check keys of `virtual_servers`: every checker's options convert into complete specs with
 * defaults, a real server's `health_check` merges over the virtual server's, `inhibit_on_failure`, `quorum`,
 * `sorry_server` and `alpha` convert, and bad input is a ConfigError at file:line:column with the document path.
 */

import test from 'ava';
import type { ExecutionContext } from 'ava';
import { fileURLToPath } from 'node:url';
import { ConfigError, DEFAULT_QUORUM, loadConfig, parseConfig, virtualServersOf } from '../../src/config/index.ts';
import type { ConfigIssue, VirtualServerConfig } from '../../src/config/index.ts';
import { DEFAULT_FALL, DEFAULT_INTERVAL_MS, DEFAULT_RISE, DEFAULT_TIMEOUT_MS } from '../../src/healthcheck/index.ts';

const FILE = 'tandem.yaml';
const HEAD = [
  'node: { name: dirA, interface: eth0 }', //                                       1
  'vrrp:', //                                                                       2
  '  transport: { mode: unicast, source: 10.99.0.2, peers: [10.99.0.3] }', //       3
  '  instances: [{ name: VI_1, vrid: 51, vips: [10.99.0.100] }]', //               4
  'virtual_servers:', //                                                            5
  '  - name: web', //                                                               6
  '    address: 10.99.0.100', //                                                    7
  '    port: 80', //                                                                8
  '    forwarding: nat', //                                                         9
];

function doc(...lines: string[]): string {
  return [...HEAD, ...lines].join('\n') + '\n';
}

function vs(...lines: string[]): VirtualServerConfig {
  const [v] = virtualServersOf(parseConfig(doc(...lines), FILE));
  if (v === undefined) throw new Error('no virtual server');
  return v;
}

function issues(t: ExecutionContext, text: string): readonly ConfigIssue[] {
  const err = t.throws(() => parseConfig(text, FILE), { instanceOf: ConfigError });
  return err?.issues ?? [];
}

/** Exactly one issue, at `line`, column of `needle` in that line, with `path`, and a message matching `re`. */
function oneIssue(t: ExecutionContext, lines: string[], needle: string, path: string, re: RegExp): void {
  const text = doc(...lines);
  const found = issues(t, text);
  t.is(found.length, 1, found.map((i) => `${i.line}:${i.column} ${i.path}: ${i.message}`).join('\n'));
  const i = found[0];
  if (i === undefined) return;
  const all = text.split('\n');
  const lineNo = all.findIndex((l, n) => n >= HEAD.length && l.includes(needle)) + 1;
  t.is(i.line, lineNo, i.message);
  t.is(i.column, (all[lineNo - 1] ?? '').indexOf(needle) + 1, i.message);
  t.is(i.path, path);
  t.regex(i.message, re);
  t.true(i.file === FILE);
}

test('the documented example converts: http check with defaults, per-server tcp override, quorum, sorry server', (t) => {
  const v = vs(
    '    health_check: { type: http, path: /healthz, status: [200-299], interval: 1s, timeout: 500ms, rise: 2, fall: 3 }',
    '    inhibit_on_failure: false',
    '    quorum: { min: 1, hysteresis: 0 }',
    '    sorry_server: { address: 10.99.0.30, port: 80 }',
    '    alpha: false',
    '    real_servers:',
    '      - { address: 10.99.0.21, port: 80, weight: 1, health_check: { type: tcp } }',
    '      - { address: 10.99.0.22, port: 80 }',
  );
  t.deepEqual(v.health, {
    inhibitOnFailure: false,
    quorum: { min: 1, hysteresis: 0 },
    sorryServer: { address: '10.99.0.30', family: 4, port: 80, weight: 1, upperThreshold: 0, lowerThreshold: 0 },
    alpha: false,
  });
  const [a, b] = v.realServers;
  // The tcp override keeps the virtual server's timing (shared keys) but none of its HTTP keys.
  t.deepEqual(a?.healthCheck?.spec, {
    type: 'tcp',
    intervalMs: 1000,
    timeoutMs: 500,
    connectTimeoutMs: 500,
    readTimeoutMs: 500,
    retry: 0,
    delayBeforeRetryMs: 1000,
    jitter: 0.1,
    rise: 2,
    fall: 3,
    alpha: false,
  });
  t.like(b?.healthCheck?.spec, { type: 'http', method: 'GET', path: '/healthz', status: [[200, 299]], intervalMs: 1000, timeoutMs: 500, tlsVerify: true });
  t.is(b?.healthCheck?.caFile, undefined);
});

test('without health keys a virtual server has no health settings and its servers no checks', (t) => {
  const v = vs('    real_servers: [{ address: 10.99.0.21 }]');
  t.false('health' in v);
  t.false('healthCheck' in (v.realServers[0] ?? {}));
});

test('defaults: a bare { type: tcp } gets the documented interval, timeout, rise and fall; quorum defaults to min 1', (t) => {
  const v = vs('    health_check: { type: tcp }', '    real_servers: [{ address: 10.99.0.21 }]');
  t.like(v.realServers[0]?.healthCheck?.spec, { intervalMs: DEFAULT_INTERVAL_MS, timeoutMs: DEFAULT_TIMEOUT_MS, rise: DEFAULT_RISE, fall: DEFAULT_FALL, alpha: false });
  t.deepEqual(v.health?.quorum, { ...DEFAULT_QUORUM });
  t.is(v.health?.sorryServer, undefined);
});

test('every shared and HTTPS key converts', (t) => {
  const v = vs(
    '    alpha: true',
    '    health_check:',
    '      type: https',
    '      interval: 3s',
    '      timeout: 2s',
    '      connect_timeout: 700ms',
    '      read_timeout: 900ms',
    '      retry: 2',
    '      delay_before_retry: 250ms',
    '      jitter: 0.2',
    '      rise: 4',
    '      fall: 5',
    '      connect_ip: 10.99.1.21',
    '      connect_port: 8443',
    '      bind_to: 10.99.0.2',
    '      dynamic_weight: { min: 1, max: 50, smoothing: 0.5, max_step: 10, min_change: 2 }',
    '      method: HEAD',
    '      path: /status?full=1',
    '      host: www.example.com',
    '      sni: api.example.com',
    '      headers: { X-Check: tandem, Accept: text/plain }',
    '      status: [200, 301-302]',
    '      body_contains: OK',
    '      body_regex: "^up"',
    '      digest: sha256:' + 'ab'.repeat(32),
    '      max_body_bytes: 4096',
    '      max_match_bytes: 1024',
    '      regex_timeout: 20ms',
    '      weight_from: header:X-Weight',
    '      tls_verify: false',
    '      ca_file: /etc/tandem/ca.pem',
    '    real_servers: [{ address: 10.99.0.21 }]',
  );
  const c = v.realServers[0]?.healthCheck;
  t.deepEqual(c?.spec, {
    type: 'https',
    intervalMs: 3000,
    timeoutMs: 2000,
    connectTimeoutMs: 700,
    readTimeoutMs: 900,
    retry: 2,
    delayBeforeRetryMs: 250,
    jitter: 0.2,
    rise: 4,
    fall: 5,
    alpha: true,
    connectAddress: '10.99.1.21',
    connectPort: 8443,
    bindTo: '10.99.0.2',
    method: 'HEAD',
    path: '/status?full=1',
    host: 'www.example.com',
    sni: 'api.example.com',
    headers: [
      ['X-Check', 'tandem'],
      ['Accept', 'text/plain'],
    ],
    status: [
      [200, 200],
      [301, 302],
    ],
    bodyContains: 'OK',
    bodyRegex: '^up',
    digest: { algorithm: 'sha256', hex: 'ab'.repeat(32) },
    maxBodyBytes: 4096,
    maxMatchBytes: 1024,
    regexTimeoutMs: 20,
    weightFrom: { from: 'header', name: 'X-Weight' },
    tlsVerify: false,
  });
  t.is(c?.caFile, '/etc/tandem/ca.pem');
  t.deepEqual(c?.dynamicWeight, { min: 1, max: 50, smoothing: 0.5, maxStep: 10, minChange: 2 });
  t.true(v.health?.alpha);
});

test('script, dns, udp, smtp and agent checks convert with their options', (t) => {
  const v = vs(
    '    real_servers:',
    '      - address: 10.99.0.21',
    '        health_check: { type: script, script: /usr/local/bin/check, args: [--port, 80], dynamic: true, kill_grace: 2s, max_output_bytes: 100, env: { MODE: fast } }',
    '      - address: 10.99.0.22',
    '        health_check: { type: dns, name: www.example.com., query_type: AAAA, expect: ["fd00::1"] }',
    '      - address: 10.99.0.23',
    '        health_check: { type: udp, payload: ping, expect: { prefix: pong }, require_reply: true }',
    '      - address: 10.99.0.24',
    '        health_check: { type: udp, payload_hex: "0a ff", expect: { regex: "^ok" } }',
    '      - address: 10.99.0.25',
    '        health_check: { type: smtp, helo: director.example.com, connect_port: 25 }',
    '      - address: 10.99.0.26',
    '        health_check: { type: agent, send: "status\\n", connect_port: 9999 }',
    '      - address: 10.99.0.27',
    '        health_check: { type: http, digest: 0123456789abcdef0123456789ABCDEF, weight_from: body }',
  );
  const spec = (i: number) => v.realServers[i]?.healthCheck?.spec;
  t.like(spec(0), { type: 'script', command: ['/usr/local/bin/check', '--port', '80'], dynamic: true, killGraceMs: 2000, maxOutputBytes: 100, env: { MODE: 'fast' } });
  t.like(spec(1), { type: 'dns', name: 'www.example.com', queryType: 'AAAA', expect: ['fd00::1'] });
  const udp = spec(2);
  t.is(udp?.type, 'udp');
  if (udp?.type === 'udp') {
    t.deepEqual(Buffer.from(udp.payload).toString(), 'ping');
    t.deepEqual(udp.expect?.match, 'prefix');
    t.true(udp.requireReply);
  }
  const udp2 = spec(3);
  if (udp2?.type === 'udp') {
    t.deepEqual([...udp2.payload], [0x0a, 0xff]);
    t.deepEqual(udp2.expect, { match: 'regex', pattern: '^ok' });
  } else t.fail('udp expected');
  t.like(spec(4), { type: 'smtp', helo: 'director.example.com', connectPort: 25 });
  t.like(spec(5), { type: 'agent', send: 'status\n', connectPort: 9999 });
  t.like(spec(6), { type: 'http', digest: { algorithm: 'md5', hex: '0123456789abcdef0123456789abcdef' }, weightFrom: { from: 'body' } });
  t.false('script' in (spec(0) ?? {}), 'internal keys do not leak into the spec');
});

test('a real server override of the same type merges key by key; of another type keeps only the shared keys', (t) => {
  const v = vs(
    '    health_check: { type: http, path: /healthz, host: web.example.com, interval: 5s, fall: 4 }',
    '    real_servers:',
    '      - { address: 10.99.0.21, health_check: { path: /other } }',
    '      - { address: 10.99.0.22, health_check: { type: https } }',
  );
  t.like(v.realServers[0]?.healthCheck?.spec, { type: 'http', path: '/other', host: 'web.example.com', intervalMs: 5000, fall: 4 });
  const b = v.realServers[1]?.healthCheck?.spec;
  t.like(b, { type: 'https', path: '/', intervalMs: 5000, fall: 4 });
  t.false('host' in (b ?? {}));
});

// ---------------------------------------------------------------------------------------------------------
// Bad input: one issue each, at the right place

const RS = '    real_servers: [{ address: 10.99.0.21 }]';

test('a negative interval is refused at its value', (t) => {
  oneIssue(t, ['    health_check: { type: tcp, interval: -1s }', RS], '-1s', 'virtual_servers[0].health_check.interval', /interval must be a duration/);
});

test('an interval below the floor is refused with the range', (t) => {
  oneIssue(t, ['    health_check: { type: tcp, interval: 10ms }', RS], '10ms', 'virtual_servers[0].health_check.interval', /100ms\.\.1h/);
});

test('rise 0 and fall 0 are refused', (t) => {
  oneIssue(t, ['    health_check: { type: tcp, rise: 0 }', RS], '0 }', 'virtual_servers[0].health_check.rise', /rise must be an integer 1\.\.100/);
  oneIssue(t, ['    health_check: { type: tcp, fall: 0 }', RS], '0 }', 'virtual_servers[0].health_check.fall', /fall must be an integer 1\.\.100/);
});

test('an unknown check type is refused with the list of types', (t) => {
  oneIssue(t, ['    health_check: { type: ping }', RS], 'ping', 'virtual_servers[0].health_check.type', /one of tcp, http, https, script, dns, udp, smtp, agent/);
});

test('a status of 700 is refused at that list item', (t) => {
  oneIssue(t, ['    health_check: { type: http, status: [200-299, 700] }', RS], '700', 'virtual_servers[0].health_check.status[1]', /100\.\.599/);
});

test('a reversed status range is refused', (t) => {
  oneIssue(t, ['    health_check: { type: http, status: [299-200] }', RS], '299-200', 'virtual_servers[0].health_check.status[0]', /low <= high/);
});

test('a key of another check type is refused naming the types it belongs to', (t) => {
  oneIssue(t, ['    health_check: { type: tcp, path: /x }', RS], 'path', 'virtual_servers[0].health_check.path', /applies to http\/https checks; this check is `type: tcp`/);
  oneIssue(t, ['    health_check: { type: http, tls_verify: false }', RS], 'tls_verify', 'virtual_servers[0].health_check.tls_verify', /applies to https checks/);
});

test('a misspelt key gets a suggestion', (t) => {
  oneIssue(t, ['    health_check: { type: tcp, intervall: 1s }', RS], 'intervall', 'virtual_servers[0].health_check.intervall', /did you mean `interval`/);
});

test('a missing type is refused', (t) => {
  oneIssue(t, ['    health_check: { interval: 1s }', RS], '{ interval', 'virtual_servers[0].health_check.type', /missing required key `type`/);
});

test('a script check without script is refused where the check is', (t) => {
  oneIssue(t, ['    real_servers: [{ address: 10.99.0.21, health_check: { type: script } }]'], '{ type: script', 'virtual_servers[0].real_servers[0].health_check.script', /missing required key `script`/);
});

test('a relative script path is refused', (t) => {
  oneIssue(t, ['    health_check: { type: script, script: check.sh }', RS], 'check.sh', 'virtual_servers[0].health_check.script', /absolute path/);
});

test('an invalid body regex is refused with the engine message', (t) => {
  oneIssue(t, ['    health_check: { type: http, body_regex: "(" }', RS], '"("', 'virtual_servers[0].health_check.body_regex', /not a valid JavaScript regular expression/);
});

test('a digest of the wrong length is refused', (t) => {
  oneIssue(t, ['    health_check: { type: http, digest: abc }', RS], 'abc', 'virtual_servers[0].health_check.digest', /32 hex digits/);
});

test('an HTTP method that is not a token is refused', (t) => {
  oneIssue(t, ['    health_check: { type: http, method: "GE T" }', RS], '{ type: http', 'virtual_servers[0].health_check', /invalid method/);
});

test('a UDP check needs a payload, and exactly one expectation', (t) => {
  oneIssue(t, ['    health_check: { type: udp }', RS], '{ type: udp', 'virtual_servers[0].health_check.payload', /missing required key `payload`/);
  oneIssue(t, ['    health_check: { type: udp, payload: x, expect: { exact: a, prefix: b } }', RS], '{ exact', 'virtual_servers[0].health_check.expect', /exactly one of/);
});

test('jitter above 0.5 and a timeout with no unit are refused', (t) => {
  oneIssue(t, ['    health_check: { type: tcp, jitter: 0.9 }', RS], '0.9', 'virtual_servers[0].health_check.jitter', /0\.\.0\.5/);
  oneIssue(t, ['    health_check: { type: tcp, timeout: 500 }', RS], '500', 'virtual_servers[0].health_check.timeout', /bare number/);
});

test('bind_to of another family than the target is refused', (t) => {
  oneIssue(t, ['    health_check: { type: tcp, bind_to: "fd00::2" }', RS], '{ type: tcp', 'virtual_servers[0].health_check.bind_to', /IPv6 but the check connects to an IPv4/);
});

test('dynamic_weight with min above max is refused', (t) => {
  oneIssue(t, ['    health_check: { type: agent, dynamic_weight: { min: 10, max: 5 } }', RS], '10,', 'virtual_servers[0].health_check.dynamic_weight.min', /above max/);
});

test('quorum: a negative min and a hysteresis not below min are refused', (t) => {
  oneIssue(t, ['    quorum: { min: -1 }', RS], '-1', 'virtual_servers[0].quorum.min', /integer 0\.\./);
  oneIssue(t, ['    quorum: { min: 2, hysteresis: 2 }', RS], '2 }', 'virtual_servers[0].quorum.hysteresis', /must be below min/);
});

test('a sorry server takes no health_check and must not repeat a real server', (t) => {
  oneIssue(t, ['    sorry_server: { address: 10.99.0.30, health_check: { type: tcp } }', RS], 'health_check', 'virtual_servers[0].sorry_server.health_check', /unknown key/);
  oneIssue(t, ['    real_servers: [{ address: 10.99.0.21, port: 80 }]', '    sorry_server: { address: 10.99.0.21 }'], '10.99.0.21 }', 'virtual_servers[0].sorry_server.address', /already listed/);
});

test('alpha without any checked real server is refused; inhibit_on_failure must be a boolean', (t) => {
  oneIssue(t, ['    alpha: true', RS], 'true', 'virtual_servers[0].alpha', /no real server here has a `health_check`/);
  oneIssue(t, ['    inhibit_on_failure: yes', RS], 'yes', 'virtual_servers[0].inhibit_on_failure', /true or false/);
});

test('several problems are all reported, each with its own line', (t) => {
  const found = issues(t, doc('    health_check: { type: http, status: [700], rise: 0 }', '    quorum: { min: 1, hysteresis: 5 }', RS));
  t.deepEqual(
    found.map((i) => [i.line, i.path]),
    [
      [10, 'virtual_servers[0].health_check.status[0]'],
      [10, 'virtual_servers[0].health_check.rise'],
      [11, 'virtual_servers[0].quorum.hysteresis'],
    ],
  );
});

test('the shipped health example loads, with shared checks and every check type it shows', (t) => {
  const c = loadConfig(fileURLToPath(new URL('../../config/health.example.yaml', import.meta.url)));
  const v = virtualServersOf(c);
  t.deepEqual(
    v.map((x) => x.name),
    ['web', 'web-tls', 'dns', 'api', 'mail'],
  );
  t.deepEqual(v[0]?.realServers.map((r) => r.healthCheck?.spec.type), ['http', 'http', 'tcp']);
  t.is(v[1]?.realServers[0]?.healthCheck?.caFile, '/etc/tandem/internal-ca.pem');
  t.true(v[2]?.health?.alpha);
  t.like(v[4]?.realServers[0]?.healthCheck?.spec, { type: 'script', dynamic: true, intervalMs: 5000, retry: 1 });
});
