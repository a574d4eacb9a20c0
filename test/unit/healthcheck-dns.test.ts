/**
 * The DNS codec (golden query bytes, responses with compression, hostile pointers, random bytes never throw)
 * and the DNS checker against a real loopback UDP responder: right answer, wrong answer, NXDOMAIN, silence,
 * ICMP refusal, a malformed reply, and replies that are not ours.
 */

import test from 'ava';
import fc from 'fast-check';
import { checkDns, decodeMessage, encodeQuery, withDefaults } from '../../src/healthcheck/index.ts';
import type { DnsCheckSpec } from '../../src/healthcheck/index.ts';
import { closedUdpPort, udpServe } from '../fixtures/healthcheck/servers.ts';

const never = (): AbortSignal => new AbortController().signal;

function dns(over: Partial<Omit<DnsCheckSpec, 'type'>> & { name?: string } = {}): DnsCheckSpec {
  return withDefaults({ type: 'dns', name: 'www.example.com', timeoutMs: 5000, ...over });
}

/** Wire form of a name, uncompressed. */
function wireName(name: string): Buffer {
  const parts = name.split('.').filter((l) => l !== '').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')]));
  return Buffer.concat([...parts, Buffer.from([0])]);
}

interface Rr {
  type: number;
  rdata: Buffer;
}

/**
 * A response to `query` (its id and question copied), with `answers` whose owner is a pointer to the question
 * name (0xc00c), as real servers compress.
 */
function response(query: Buffer, answers: Rr[], opts: { rcode?: number; id?: number; flags?: number } = {}): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(opts.id ?? query.readUInt16BE(0), 0);
  header.writeUInt16BE(opts.flags ?? 0x8180 | (opts.rcode ?? 0), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers.length, 6);
  const question = query.subarray(12);
  const rrs = answers.map((a) => {
    const fixed = Buffer.alloc(12);
    fixed.writeUInt16BE(0xc00c, 0);
    fixed.writeUInt16BE(a.type, 2);
    fixed.writeUInt16BE(1, 4);
    fixed.writeUInt32BE(300, 6);
    fixed.writeUInt16BE(a.rdata.length, 10);
    return Buffer.concat([fixed, a.rdata]);
  });
  return Buffer.concat([header, question, ...rrs]);
}

const A = (ip: string): Rr => ({ type: 1, rdata: Buffer.from(ip.split('.').map(Number)) });

// ---------------------------------------------------------------- codec

test('encodeQuery writes the RFC 1035 bytes of a recursive A query', (t) => {
  const q = encodeQuery(0x1234, 'www.example.com', 1);
  if (!q.ok) return t.fail(q.detail);
  t.is(q.value.toString('hex'), '123401000001000000000000' + '03777777076578616d706c6503636f6d00' + '00010001');
  t.true(encodeQuery(1, 'example.com.', 1).ok, 'a trailing dot is accepted');
});

test('encodeQuery refuses names it cannot encode', (t) => {
  t.false(encodeQuery(1, `${'a'.repeat(64)}.com`, 1).ok);
  t.false(encodeQuery(1, Array.from({ length: 60 }, () => 'abcd').join('.'), 1).ok);
  t.false(encodeQuery(1, 'a..b', 1).ok);
  t.false(encodeQuery(1, 'sp ace.com', 1).ok);
});

test('decodeMessage reads header, question and compressed answers of every supported type', (t) => {
  const q = encodeQuery(7, 'example.com', 1);
  if (!q.ok) return t.fail();
  const name = wireName('mail.example.com');
  const rrs: Rr[] = [
    A('192.0.2.1'),
    { type: 28, rdata: Buffer.from('20010db8000000000000000000000001', 'hex') },
    { type: 5, rdata: Buffer.from([0xc0, 0x0c]) }, // CNAME -> pointer to the question name
    { type: 15, rdata: Buffer.concat([Buffer.from([0, 10]), name]) },
    { type: 16, rdata: Buffer.from('\x05hello\x06 world', 'latin1') },
    { type: 33, rdata: Buffer.concat([Buffer.from([0, 1, 0, 2, 0x1f, 0x90]), name]) },
    { type: 99, rdata: Buffer.from([1, 2, 3]) },
  ];
  const m = decodeMessage(response(q.value, rrs));
  if (!m.ok) return t.fail(m.detail);
  t.like(m.value, { id: 7, response: true, rcode: 0, recursionAvailable: true, answerCount: rrs.length });
  t.deepEqual(m.value.questions, [{ name: 'example.com', type: 1, class: 1 }]);
  t.deepEqual(
    m.value.answers.map((a) => [a.name, a.type, a.data]),
    [
      ['example.com', 1, '192.0.2.1'],
      ['example.com', 28, '2001:db8::1'],
      ['example.com', 5, 'example.com'],
      ['example.com', 15, '10 mail.example.com'],
      ['example.com', 16, 'hello world'],
      ['example.com', 33, '1 2 8080 mail.example.com'],
      ['example.com', 99, '010203'],
    ],
  );
});

test('decodeMessage refuses pointer loops, forward pointers, truncation and bad RDATA without throwing', (t) => {
  const header = Buffer.from('000181800001000000000000', 'hex');
  const cases: Array<[string, Buffer]> = [
    ['self pointer', Buffer.concat([header, Buffer.from([0xc0, 12, 0, 1, 0, 1])])],
    ['forward pointer', Buffer.concat([header, Buffer.from([0xc0, 20, 0, 1, 0, 1, 0, 0])])],
    ['two-step loop', Buffer.concat([header, Buffer.from([1, 0x61, 0xc0, 12, 0, 1, 0, 1])])],
    ['label past the end', Buffer.concat([header, Buffer.from([9, 0x61])])],
    ['short header', Buffer.from([0, 1, 2])],
    ['question without type', Buffer.concat([header, Buffer.from([0])])],
    ['extended label type', Buffer.concat([header, Buffer.from([0x41, 0, 0, 1, 0, 1])])],
  ];
  for (const [name, bytes] of cases) t.false(decodeMessage(bytes).ok, name);
  const q = encodeQuery(1, 'x.com', 1);
  if (!q.ok) return t.fail();
  t.false(decodeMessage(response(q.value, [{ type: 1, rdata: Buffer.from([1, 2, 3]) }])).ok, 'A with 3 bytes');
  const full = response(q.value, [A('1.2.3.4')]);
  t.false(decodeMessage(full.subarray(0, full.length - 2)).ok, 'truncated RDATA');
});

test('decodeMessage never throws on random bytes and never reads a name over 255 bytes', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
      const r = decodeMessage(bytes);
      if (r.ok) for (const a of r.value.answers) if (a.name.length > 4 * 255) return false;
      return true;
    }),
    { numRuns: 20000 },
  );
  // Random bytes behind a valid header, so the name and record paths get exercised too.
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 70 }), (tail, qd, an) => {
      const h = Buffer.alloc(12);
      h.writeUInt16BE(0x8180, 2);
      h.writeUInt16BE(qd, 4);
      h.writeUInt16BE(an, 6);
      decodeMessage(Buffer.concat([h, tail]));
      return true;
    }),
    { numRuns: 20000 },
  );
  t.pass();
});

// ---------------------------------------------------------------- checker

/** A responder answering every query with `answers` (and `opts`). */
function responder(make: (query: Buffer) => Buffer[]): ReturnType<typeof udpServe> {
  return udpServe((q) => make(q));
}

test('dns: NOERROR with the expected A record is up', async (t) => {
  const srv = await responder((q) => [response(q, [A('192.0.2.10'), A('192.0.2.11')])]);
  const target = { address: '127.0.0.1', port: srv.port };
  const plain = await checkDns(target, dns(), never());
  const expected = await checkDns(target, dns({ expect: ['192.0.2.11'] }), never());
  await srv.close();
  t.like(plain, { ok: true, reason: 'ok' });
  t.like(expected, { ok: true, detail: 'NOERROR, 2 A answers' });
});

test('dns: a wrong answer, NXDOMAIN or SERVFAIL is dns_mismatch', async (t) => {
  const srv = await responder((q) => [response(q, [A('192.0.2.99')])]);
  const wrong = await checkDns({ address: '127.0.0.1', port: srv.port }, dns({ expect: ['192.0.2.10'] }), never());
  await srv.close();
  t.like(wrong, { ok: false, reason: 'dns_mismatch' });
  t.regex(wrong.detail, /expected 192\.0\.2\.10, got 192\.0\.2\.99/);
  for (const [rcode, name] of [[3, 'NXDOMAIN'], [2, 'SERVFAIL']] as const) {
    const s = await responder((q) => [response(q, [], { rcode })]);
    const r = await checkDns({ address: '127.0.0.1', port: s.port }, dns(), never());
    await s.close();
    t.like(r, { ok: false, reason: 'dns_mismatch' });
    t.regex(r.detail, new RegExp(name));
  }
});

test('dns: replies that are not ours are ignored; the right one still counts', async (t) => {
  const srv = await responder((q) => [
    response(q, [A('6.6.6.6')], { id: (q.readUInt16BE(0) + 1) & 0xffff }),
    Buffer.concat([q.subarray(0, 2), Buffer.from([0x01, 0x00]), q.subarray(4)]), // our id, but QR clear
    response(q, [A('192.0.2.10')]),
  ]);
  const r = await checkDns({ address: '127.0.0.1', port: srv.port }, dns({ expect: ['192.0.2.10'] }), never());
  await srv.close();
  t.like(r, { ok: true });
});

test('dns: a flood of datagrams that are not the answer ends the check as bad_reply', async (t) => {
  const srv = await responder((q) => Array.from({ length: 40 }, (_, i) => response(q, [], { id: (q.readUInt16BE(0) + 1 + i) & 0xffff })));
  const r = await checkDns({ address: '127.0.0.1', port: srv.port }, dns(), never());
  await srv.close();
  t.like(r, { ok: false, reason: 'bad_reply' });
});

test('dns: silence times out, a closed port is refused, garbage is bad_reply', async (t) => {
  const silent = await responder(() => []);
  const started = performance.now();
  const r1 = await checkDns({ address: '127.0.0.1', port: silent.port }, dns({ timeoutMs: 300 }), never());
  t.true(performance.now() - started < 4500);
  await silent.close();
  t.like(r1, { ok: false, reason: 'timeout' });
  const r2 = await checkDns({ address: '127.0.0.1', port: await closedUdpPort() }, dns(), never());
  t.like(r2, { ok: false, reason: 'refused' });
  const garbage = await responder((q) => [Buffer.concat([q.subarray(0, 2), Buffer.from([0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 0xc0, 0x0c])])]);
  const r3 = await checkDns({ address: '127.0.0.1', port: garbage.port }, dns(), never());
  await garbage.close();
  t.like(r3, { ok: false, reason: 'bad_reply' });
});

test('dns: AAAA and names compare in canonical form', async (t) => {
  const srv = await responder((q) => [response(q, [{ type: 28, rdata: Buffer.from('20010db8000000000000000000000001', 'hex') }])]);
  const r = await checkDns({ address: '127.0.0.1', port: srv.port }, dns({ queryType: 'AAAA', expect: ['2001:DB8:0:0::1'] }), never());
  await srv.close();
  t.like(r, { ok: true });
});
