/**
 * The HTTP/1.1 response parser on its own: table-driven responses fed whole and byte by byte (the result must
 * not depend on how the stream is cut), every bound, and fast-check properties: random bytes never throw,
 * never deliver more body than the limit, and never make the parser hold more than its head bound.
 */

import test from 'ava';
import fc from 'fast-check';
import { DEFAULT_MAX_HEAD_BYTES, HttpResponseParser } from '../../src/healthcheck/index.ts';
import type { HttpParseStatus } from '../../src/healthcheck/index.ts';

interface Parsed {
  status: HttpParseStatus;
  code: number | undefined;
  body: string;
  headers: Record<string, string>;
}

/** Feeds `input` in pieces of `step` bytes (0 = whole), then `end()` if the parser still wants more. */
function parse(input: string, step: number, opts: { head?: boolean; max?: number; keep?: string[]; close?: boolean } = {}): Parsed {
  let body = '';
  const p = new HttpResponseParser({
    head: opts.head ?? false,
    maxBodyBytes: opts.max ?? 1024,
    keepHeaders: opts.keep ?? [],
    onBody: (b) => {
      body += Buffer.from(b).toString('latin1');
    },
  });
  const bytes = Buffer.from(input, 'latin1');
  let status: HttpParseStatus = { state: 'more' };
  const n = step === 0 ? bytes.length : step;
  for (let i = 0; i < bytes.length && status.state === 'more'; i += n) status = p.push(bytes.subarray(i, i + n));
  if (status.state === 'more' && opts.close !== false) status = p.end();
  return { status, code: p.status, body, headers: Object.fromEntries(p.headers) };
}

const CASES: Array<{ name: string; input: string; state: 'done' | 'error' | 'more'; code?: number; body?: string; reason?: 'bad_reply' | 'too_large'; opts?: Parameters<typeof parse>[2] }> = [
  { name: 'content-length', input: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello', state: 'done', code: 200, body: 'hello' },
  { name: 'bare LF line ends', input: 'HTTP/1.0 200 OK\nContent-Length: 2\n\nhi', state: 'done', code: 200, body: 'hi' },
  { name: 'no reason phrase', input: 'HTTP/1.1 204\r\n\r\n', state: 'done', code: 204, body: '' },
  { name: 'chunked with extensions and trailers', input: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3;a=b\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n', state: 'done', body: 'abcde' },
  { name: 'close-delimited', input: 'HTTP/1.1 200 OK\r\n\r\nuntil close', state: 'done', body: 'until close' },
  { name: 'other transfer coding is close-delimited', input: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nabcdef', state: 'done', body: 'abcdef' },
  { name: 'HEAD ignores Content-Length', input: 'HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n', state: 'done', body: '', opts: { head: true } },
  { name: '304 has no body', input: 'HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n', state: 'done', code: 304 },
  { name: 'interim 100 then final', input: 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: x\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n', state: 'done', code: 201 },
  { name: 'identical Content-Length list', input: 'HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok', state: 'done', body: 'ok' },
  { name: 'kept header', input: 'HTTP/1.1 200 OK\r\nX-Weight:  17 \r\nContent-Length: 0\r\n\r\n', state: 'done', opts: { keep: ['x-weight'] } },
  { name: 'conflicting Content-Length', input: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok', state: 'error', reason: 'bad_reply' },
  { name: 'negative Content-Length', input: 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n', state: 'error', reason: 'bad_reply' },
  { name: 'Content-Length over the limit fails before any body', input: 'HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n', state: 'error', reason: 'too_large' },
  { name: 'chunked body over the limit', input: `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n${'x'.repeat(2048)}\r\n0\r\n\r\n`, state: 'error', reason: 'too_large' },
  { name: 'close-delimited body over the limit', input: `HTTP/1.1 200 OK\r\n\r\n${'x'.repeat(1025)}`, state: 'error', reason: 'too_large' },
  { name: 'chunk size too long', input: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000\r\n', state: 'error', reason: 'bad_reply' },
  { name: 'chunk data without CRLF', input: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n', state: 'error', reason: 'bad_reply' },
  { name: 'folded header', input: 'HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n', state: 'error', reason: 'bad_reply' },
  { name: 'header without colon', input: 'HTTP/1.1 200 OK\r\nbroken\r\n\r\n', state: 'error', reason: 'bad_reply' },
  { name: 'space in header name', input: 'HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n', state: 'error', reason: 'bad_reply' },
  { name: 'HTTP/2 status line', input: 'HTTP/2 200\r\n\r\n', state: 'error', reason: 'bad_reply' },
  { name: 'status 099', input: 'HTTP/1.1 099 X\r\n\r\n', state: 'error', reason: 'bad_reply' },
  { name: 'not HTTP', input: 'SSH-2.0-OpenSSH_9.2\r\n', state: 'error', reason: 'bad_reply' },
  { name: 'closed mid-body', input: 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc', state: 'error', reason: 'bad_reply' },
  { name: 'closed mid-head', input: 'HTTP/1.1 200 OK\r\nContent-Le', state: 'error', reason: 'bad_reply' },
  { name: 'closed in chunked body', input: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab', state: 'error', reason: 'bad_reply' },
  { name: 'empty', input: '', state: 'error', reason: 'bad_reply' },
  { name: 'oversized head', input: `HTTP/1.1 200 OK\r\nX: ${'a'.repeat(DEFAULT_MAX_HEAD_BYTES)}\r\n\r\n`, state: 'error', reason: 'too_large' },
  { name: 'endless status line', input: `HTTP/1.1 200 ${'a'.repeat(DEFAULT_MAX_HEAD_BYTES + 10)}`, state: 'error', reason: 'too_large' },
  { name: 'too many headers', input: `HTTP/1.1 200 OK\r\n${'A: b\r\n'.repeat(101)}\r\n`, state: 'error', reason: 'too_large' },
  { name: 'too many interim responses', input: 'HTTP/1.1 100 Continue\r\n\r\n'.repeat(9), state: 'error', reason: 'bad_reply' },
];

for (const c of CASES) {
  test(`parser: ${c.name} (whole, byte by byte, in 7-byte pieces)`, (t) => {
    const results = [0, 1, 7].map((step) => parse(c.input, step, c.opts));
    for (const r of results) {
      t.is(r.status.state, c.state, JSON.stringify(r.status));
      if (c.code !== undefined) t.is(r.code, c.code);
      if (c.body !== undefined) t.is(r.body, c.body);
      if (c.reason !== undefined && r.status.state === 'error') t.is(r.status.reason, c.reason);
    }
    // How much body a failing response delivered before failing depends on the cuts; the verdict does not.
    const verdict = (r: Parsed) => (r.status.state === 'error' ? { ...r, body: '' } : r);
    t.deepEqual(verdict(results[1]!), verdict(results[0]!), 'byte-by-byte feeding gives the same result');
    t.deepEqual(verdict(results[2]!), verdict(results[0]!), '7-byte pieces give the same result');
  });
}

test('parser: kept headers are lowercase and trimmed; others are not kept', (t) => {
  const r = parse('HTTP/1.1 200 OK\r\nX-Weight:  17 \r\nX-Other: 1\r\nContent-Length: 0\r\n\r\n', 0, { keep: ['x-weight'] });
  t.deepEqual(r.headers, { 'x-weight': '17' });
});

test('parser: bytes after a complete response are ignored', (t) => {
  const p = new HttpResponseParser({ head: false, maxBodyBytes: 10 });
  t.is(p.push(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA')).state, 'done');
  t.is(p.push(Buffer.from('more')).state, 'done');
  t.true(p.complete);
});

test('parser: random bytes never throw, never deliver more body than the limit', (t) => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }), (chunks) => {
      let delivered = 0;
      const p = new HttpResponseParser({ head: false, maxBodyBytes: 256, maxHeadBytes: 512, onBody: (b) => (delivered += b.length) });
      for (const c of chunks) p.push(c);
      p.end();
      return delivered <= 256 && p.bodyBytes <= 256;
    }),
    { numRuns: 20000 },
  );
  t.pass();
});

test('parser: random responses built from HTTP-like pieces never throw and stay bounded', (t) => {
  const piece = fc.constantFrom(
    'HTTP/1.1 200 OK\r\n', 'HTTP/1.1 100 Continue\r\n', 'HTTP/1.0 503 X\n', 'Content-Length: 5\r\n', 'Content-Length: 99999\r\n',
    'Transfer-Encoding: chunked\r\n', 'Transfer-Encoding: gzip\r\n', '\r\n', '\n', '5\r\n', 'ff;x\r\n', '0\r\n', 'hello', ': ', ' folded\r\n',
    'X: y\r\n', '\r', 'zz\r\n',
  );
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 40 }), fc.integer({ min: 1, max: 16 }), (pieces, step) => {
      let delivered = 0;
      const p = new HttpResponseParser({ head: false, maxBodyBytes: 64, onBody: (b) => (delivered += b.length) });
      const bytes = Buffer.from(pieces.join(''), 'latin1');
      for (let i = 0; i < bytes.length; i += step) p.push(bytes.subarray(i, i + step));
      const end = p.end();
      return delivered <= 64 && (end.state === 'done' || end.state === 'error');
    }),
    { numRuns: 20000 },
  );
  t.pass();
});
