/**
 * /proc/net/ip_vs_conn parser (src/sync/proc-conn.ts): fixture tables written from the kernel's format
 * (ip_vs_conn_seq_show: "%-3s %08X %04X %08X %04X %s %04X %-11s %7u%s", %pI6 for IPv6), template inference,
 * PE columns, bad lines counted by reason, input fed in chunks of every size (byte by byte included), a
 * synthetic 100k-line table streamed, and random text never throwing.
 *
 * TODO(vm lab): add a fixture captured from a real kernel's /proc/net/ip_vs_conn (TCP, UDP, templates, IPv6).
 */

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import { IPPROTO, TCP_STATE } from '../../src/sync/conn.ts';
import type { ConnEntry } from '../../src/sync/conn.ts';
import { PROC_CONN_BAD_REASONS, ProcConnParser, parseProcConn, parseProcConnLine, readProcConn } from '../../src/sync/proc-conn.ts';
import { procConnLine, syntheticEntry, syntheticProcText } from '../../src/sync/synthetic.ts';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/sync/${name}`, import.meta.url), 'latin1');
const GOOD = fixture('ip_vs_conn.txt');
const BAD = fixture('ip_vs_conn-bad.txt');

const base = { fwmark: 0, fwd: 'masq', flags: 0 } as const;
const EXPECTED: Array<{ entry: ConnEntry; expiresS: number; stateName: string }> = [
  { stateName: 'ESTABLISHED', expiresS: 897, entry: { ...base, family: 4, protocol: IPPROTO.TCP, caddr: '192.0.2.10', cport: 40000, vaddr: '10.99.0.100', vport: 80, daddr: '10.99.1.21', dport: 80, template: false, state: TCP_STATE.ESTABLISHED, timeoutS: 897 } },
  { stateName: 'UDP', expiresS: 299, entry: { ...base, family: 4, protocol: IPPROTO.UDP, caddr: '192.0.2.11', cport: 5353, vaddr: '10.99.0.53', vport: 53, daddr: '10.99.1.22', dport: 53, template: false, state: 0, timeoutS: 299 } },
  { stateName: 'ASSURED', expiresS: 359, entry: { ...base, family: 4, protocol: IPPROTO.TCP, caddr: '192.0.2.0', cport: 0, vaddr: '10.99.0.100', vport: 80, daddr: '10.99.1.21', dport: 80, template: true, state: 1, timeoutS: 359 } },
  { stateName: 'NONE', expiresS: 120, entry: { ...base, family: 4, protocol: IPPROTO.TCP, caddr: '192.0.3.0', cport: 0, vaddr: '10.99.0.100', vport: 0, daddr: '10.99.1.22', dport: 0, template: true, state: 0, timeoutS: 120 } },
  { stateName: 'ASSURED', expiresS: 300, entry: { ...base, fwmark: 7, family: 4, protocol: IPPROTO.IP, caddr: '192.0.2.0', cport: 0, vaddr: '0.0.0.7', vport: 0, daddr: '10.99.1.21', dport: 0, template: true, state: 1, timeoutS: 300 } },
  { stateName: 'ESTABLISHED', expiresS: 880, entry: { ...base, family: 4, protocol: IPPROTO.SCTP, caddr: '192.0.2.12', cport: 8080, vaddr: '10.99.0.100', vport: 2905, daddr: '10.99.1.23', dport: 2905, template: false, state: 8, timeoutS: 880 } },
  { stateName: 'FIN_WAIT', expiresS: 95, entry: { ...base, family: 6, protocol: IPPROTO.TCP, caddr: '2001:db8::10', cport: 40001, vaddr: '2001:db8:99::100', vport: 443, daddr: '2001:db8:1::21', dport: 443, template: false, state: TCP_STATE.FIN_WAIT, timeoutS: 95 } },
  { stateName: 'NONE', expiresS: 50, entry: { ...base, family: 4, protocol: IPPROTO.UDP, caddr: '192.0.2.10', cport: 0, vaddr: '10.99.0.100', vport: 5060, daddr: '10.99.1.21', dport: 5060, template: true, state: 0, timeoutS: 50, pe: { name: 'sip', data: Buffer.from('3848276298@192.0.2.10') } } },
  // Expires 0 becomes timeout 1: a synced timeout of 0 would mean "the state's full default".
  { stateName: 'TIME_WAIT', expiresS: 0, entry: { ...base, family: 4, protocol: IPPROTO.TCP, caddr: '192.0.2.13', cport: 40002, vaddr: '10.99.0.100', vport: 80, daddr: '10.99.1.21', dport: 80, template: false, state: TCP_STATE.TIME_WAIT, timeoutS: 1 } },
  { stateName: 'ASSURED', expiresS: 200, entry: { ...base, fwmark: 7, family: 6, protocol: IPPROTO.IP, caddr: '2001:db8::', cport: 0, vaddr: '0:7::', vport: 0, daddr: '2001:db8:1::21', dport: 0, template: true, state: 1, timeoutS: 200 } },
  { stateName: 'SYN_RECV', expiresS: 59, entry: { ...base, family: 4, protocol: IPPROTO.TCP, caddr: '192.0.2.14', cport: 40003, vaddr: '10.99.0.100', vport: 80, daddr: '10.99.1.21', dport: 80, template: false, state: TCP_STATE.SYN_RECV, timeoutS: 59 } },
];

test('fixture table: every row, templates inferred, fwmark templates, IPv6 %pI6, SCTP, PE columns', (t) => {
  const { rows, stats } = parseProcConn(GOOD);
  t.deepEqual(rows, EXPECTED);
  t.is(stats.rows, EXPECTED.length);
  t.is(stats.bad, 0);
  t.is(stats.lines, EXPECTED.length + 1);
});

test('bad lines are counted by reason with samples (line numbers), good ones around them still parse', (t) => {
  const { rows, stats } = parseProcConn(BAD);
  t.is(rows.length, 2);
  t.is(stats.bad, 7);
  t.deepEqual(stats.badByReason, { fields: 1, protocol: 1, address: 1, port: 1, state: 1, expires: 1, mixed_family: 1 });
  t.deepEqual(stats.badSamples.map((s) => `${s.line}:${s.reason}`), [
    '3:fields', '4:protocol', '5:address', '6:mixed_family', '7:state', '8:port', '9:expires',
  ]);
  t.regex(stats.badSamples[0]?.detail ?? '', /2 fields/);
});

test('the options give the forwarding method; sample count is bounded', (t) => {
  const { rows } = parseProcConn(GOOD, { fwd: 'droute' });
  t.true(rows.every((r) => r.entry.fwd === 'droute'));
  const p = new ProcConnParser({ maxSamples: 2 });
  p.push(BAD);
  p.end();
  t.is(p.stats.badSamples.length, 2);
  t.is(p.stats.bad, 7);
});

test('feeding the table in chunks of any size, byte by byte included, gives the same rows', (t) => {
  const bytes = Buffer.from(GOOD + BAD + '\r\n', 'latin1');
  const whole = parseProcConn(bytes.toString('latin1'));
  for (const size of [1, 2, 3, 7, 64, 1000]) {
    const p = new ProcConnParser();
    const rows = [];
    for (let i = 0; i < bytes.length; i += size) rows.push(...p.push(bytes.subarray(i, i + size)));
    rows.push(...p.end());
    t.deepEqual(rows, whole.rows, `chunk size ${size}`);
    t.deepEqual(p.stats, whole.stats, `chunk size ${size}`);
  }
});

test('a line without its newline at EOF is parsed by end()', (t) => {
  const p = new ProcConnParser();
  t.is(p.push('Pro FromIP\nTCP C000020A 9C40 0A630064 0050 0A630115 0050 ESTABLISHED     897').length, 0);
  t.is(p.end().length, 1);
  t.is(p.end().length, 0);
});

test('rows written by procConnLine parse back to the synthetic entries (all fields /proc shows)', (t) => {
  for (let i = 0; i < 200; i++) {
    const e = syntheticEntry(i);
    const r = parseProcConnLine(procConnLine(e), { fwd: e.fwd });
    t.true(r.ok, String(i));
    if (r.ok) t.deepEqual(r.value.entry, e, `entry ${i}`);
  }
});

test('a 100k-line synthetic table streams from a file with every row parsed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-proc-'));
  const path = join(dir, 'ip_vs_conn');
  writeFileSync(path, [...syntheticProcText(100_000)].join(''));
  const parser = new ProcConnParser({ fwd: 'droute' });
  let n = 0;
  let templates = 0;
  for await (const row of readProcConn(path, parser)) {
    n++;
    if (row.entry.template) templates++;
  }
  t.is(n, 100_000);
  t.is(templates, 5000);
  t.is(parser.stats.bad, 0);
  t.is(parser.stats.lines, 100_001);
});

test('readProcConn rejects when the file cannot be read', async (t) => {
  await t.throwsAsync(async () => {
    for await (const _ of readProcConn('/nonexistent/ip_vs_conn')) void _;
  }, { code: 'ENOENT' });
});

test('property: arbitrary text never throws and every line is a row, bad, header or blank', (t) => {
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.string({ maxLength: 120 }), fc.constantFrom(...GOOD.split('\n'), ...BAD.split('\n'))), { maxLength: 40 }), (lines) => {
      const text = lines.join('\n');
      const { rows, stats } = parseProcConn(text);
      const lineList = text === '' ? [] : text.split('\n').slice(0, text.endsWith('\n') ? -1 : undefined);
      const blankOrHeader = lineList.filter((l) => l.replace(/\r$/, '').trim() === '' || l.startsWith('Pro ')).length;
      return rows.length === stats.rows && stats.lines === lineList.length && stats.rows + stats.bad + blankOrHeader === stats.lines &&
        Object.keys(stats.badByReason).length === PROC_CONN_BAD_REASONS.length;
    }),
    { numRuns: 500 },
  );
  t.pass();
});
