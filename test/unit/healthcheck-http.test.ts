/**
 * TCP, HTTP and HTTPS checkers against real loopback servers: servers that answer right or wrong, refuse,
 * hang, trickle bytes forever, stream 1 GB (lazily) or close mid-response, and TLS servers with a certificate
 * the checker must refuse when verifying. Also the request the server sees (Host, method, path, headers),
 * bindTo and connect_ip/connect_port.
 */

import test from 'ava';
import { createHash } from 'node:crypto';
import { checkHttp, checkTcp, resolveTarget, withDefaults } from '../../src/healthcheck/index.ts';
import type { CheckInput, HttpCheckSpec, TcpCheckSpec } from '../../src/healthcheck/index.ts';
import { TEST_CERT, closedTcpPort, hangingPort, httpResponse, onRequest, serve, streamForever, trickle } from '../fixtures/healthcheck/servers.ts';

/** An HTTP spec with test-friendly timeouts. */
function http(over: Partial<Omit<HttpCheckSpec, 'type'>> & { type?: 'http' | 'https' } = {}): HttpCheckSpec {
  // Generous by default: the machine running the tests may be busy; tests of timeouts set their own.
  const input: CheckInput<HttpCheckSpec> = { type: 'http', timeoutMs: 8000, ...over };
  return withDefaults(input);
}

function tcp(over: Partial<Omit<TcpCheckSpec, 'type'>> = {}): TcpCheckSpec {
  return withDefaults({ type: 'tcp', timeoutMs: 8000, ...over });
}

const never = (): AbortSignal => new AbortController().signal;
const local = (port: number) => ({ address: '127.0.0.1', port });

// ---------------------------------------------------------------- TCP

test('tcp: a listening port is up', async (t) => {
  const srv = await serve((s) => s.end());
  const r = await checkTcp(local(srv.port), tcp(), never());
  await srv.close();
  t.like(r, { ok: true, reason: 'ok' });
  t.true(r.durationMs >= 0 && r.durationMs < 2000);
});

test('tcp: a closed port is refused', async (t) => {
  const r = await checkTcp(local(await closedTcpPort()), tcp(), never());
  t.like(r, { ok: false, reason: 'refused' });
});

test('tcp: a connect that never completes times out at the connect timeout', async (t) => {
  const h = await hangingPort();
  const started = performance.now();
  const r = await checkTcp(local(h.port), tcp({ connectTimeoutMs: 300, timeoutMs: 3000 }), never());
  const took = performance.now() - started;
  await h.close();
  t.like(r, { ok: false, reason: 'timeout' });
  t.regex(r.detail, /connect timed out after 300 ms/);
  t.true(took >= 290 && took < 4500, `took ${took} ms`);
});

test('tcp: bindTo sets the source address; a non-local bindTo is unreachable', async (t) => {
  const srv = await serve((s) => s.end(), { host: '127.0.0.1' });
  const r = await checkTcp({ address: '127.0.0.1', port: srv.port, bindTo: '127.0.0.2' }, tcp(), never());
  t.like(r, { ok: true });
  t.deepEqual(srv.peers, ['127.0.0.2']);
  const bad = await checkTcp({ address: '127.0.0.1', port: srv.port, bindTo: '192.0.2.77' }, tcp(), never());
  await srv.close();
  t.like(bad, { ok: false, reason: 'unreachable' });
});

test('tcp and http over IPv6 loopback; the Host header brackets the address', async (t) => {
  let seen = '';
  const srv = await serve(onRequest((s, head) => {
    seen = head;
    s.end(httpResponse(200, ''));
  }), { host: '::1' });
  const r1 = await checkTcp({ address: '::1', port: srv.port }, tcp(), never());
  const r2 = await checkHttp({ address: '::1', port: srv.port }, http(), never());
  await srv.close();
  t.like(r1, { ok: true });
  t.like(r2, { ok: true });
  t.true(seen.split('\r\n').includes(`Host: [::1]:${srv.port}`));
});

test('tcp: connect_ip / connect_port replace the real server address', async (t) => {
  const srv = await serve((s) => s.end());
  const target = resolveTarget({ address: '10.1.2.3', port: 80 }, tcp({ connectAddress: '127.0.0.1', connectPort: srv.port }));
  t.deepEqual(target, { address: '127.0.0.1', port: srv.port });
  const r = await checkTcp(target, tcp(), never());
  await srv.close();
  t.true(r.ok);
});

test('tcp: an abort ends the attempt at once', async (t) => {
  const h = await hangingPort();
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 100);
  const started = performance.now();
  const r = await checkTcp(local(h.port), tcp({ timeoutMs: 5000 }), ac.signal);
  await h.close();
  t.like(r, { ok: false, reason: 'error', detail: 'aborted' });
  t.true(performance.now() - started < 4500);
});

// ---------------------------------------------------------------- HTTP: answers

test('http: 200 is up; the server sees method, path, Host, Connection: close and extra headers', async (t) => {
  let seen = '';
  const srv = await serve(onRequest((s, head) => {
    seen = head;
    s.end(httpResponse(200, 'hello'));
  }));
  const r = await checkHttp(local(srv.port), http({ path: '/health?x=1', headers: [['X-Probe', 'yes']] }), never());
  await srv.close();
  t.like(r, { ok: true, reason: 'ok', detail: 'HTTP 200 X' });
  const lines = seen.split('\r\n');
  t.is(lines[0], 'GET /health?x=1 HTTP/1.1');
  t.true(lines.includes(`Host: 127.0.0.1:${srv.port}`));
  t.true(lines.includes('Connection: close'));
  t.true(lines.includes('X-Probe: yes'));
});

test('http: virtualhost sets the Host header', async (t) => {
  let seen = '';
  const srv = await serve(onRequest((s, head) => {
    seen = head;
    s.end(httpResponse(200, ''));
  }));
  await checkHttp(local(srv.port), http({ host: 'www.example.com' }), never());
  await srv.close();
  t.true(seen.split('\r\n').includes('Host: www.example.com'));
});

test('http: a status outside the expected ranges is down with the status line', async (t) => {
  const srv = await serve(onRequest((s) => s.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n')));
  const r = await checkHttp(local(srv.port), http(), never());
  const r2 = await checkHttp(local(srv.port), http({ status: [[200, 299], [500, 503]] }), never());
  await srv.close();
  t.like(r, { ok: false, reason: 'status', detail: 'HTTP 503 Service Unavailable' });
  t.like(r2, { ok: true });
});

test('http: bodyContains, bodyRegex and digests (md5 like keepalived, sha256)', async (t) => {
  const body = 'status: green\nversion 42\n';
  const srv = await serve(onRequest((s) => s.end(httpResponse(200, body))));
  const md5 = createHash('md5').update(body).digest('hex');
  const sha = createHash('sha256').update(body).digest('hex');
  const cases: Array<[Partial<HttpCheckSpec>, boolean, string]> = [
    [{ bodyContains: 'green' }, true, 'ok'],
    [{ bodyContains: 'red' }, false, 'body_mismatch'],
    [{ bodyRegex: 'version \\d+' }, true, 'ok'],
    [{ bodyRegex: '^version 7$' }, false, 'body_mismatch'],
    [{ digest: { algorithm: 'md5', hex: md5 } }, true, 'ok'],
    [{ digest: { algorithm: 'sha256', hex: sha } }, true, 'ok'],
    [{ digest: { algorithm: 'md5', hex: '0'.repeat(32) } }, false, 'digest_mismatch'],
    [{ bodyRegex: '(' }, false, 'error'],
  ];
  for (const [over, ok, reason] of cases) {
    const r = await checkHttp(local(srv.port), http(over), never());
    t.like(r, { ok, reason }, JSON.stringify(over));
  }
  await srv.close();
});

test('http: a catastrophic regex fails within its budget instead of stalling the process', async (t) => {
  const srv = await serve(onRequest((s) => s.end(httpResponse(200, 'a'.repeat(40) + '!'))));
  const started = performance.now();
  const r = await checkHttp(local(srv.port), http({ bodyRegex: '^(a+)+$', regexTimeoutMs: 50 }), never());
  await srv.close();
  t.like(r, { ok: false, reason: 'body_mismatch' });
  t.regex(r.detail, /budget/);
  t.true(performance.now() - started < 4500, "a backtracking regex would run for minutes");
});

test('http: chunked bodies, HEAD, 204 and interim 100 responses', async (t) => {
  const srv = await serve(onRequest((s, head) => {
    if (head.startsWith('HEAD')) s.end('HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n');
    else if (head.includes('/204')) s.end('HTTP/1.1 204 No Content\r\n\r\n');
    else s.end('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\ngreen\r\n6\r\n light\r\n0\r\nX-T: 1\r\n\r\n');
  }));
  const body = await checkHttp(local(srv.port), http({ bodyContains: 'green light' }), never());
  const head = await checkHttp(local(srv.port), http({ method: 'HEAD' }), never());
  const noContent = await checkHttp(local(srv.port), http({ path: '/204' }), never());
  await srv.close();
  t.like(body, { ok: true });
  t.like(head, { ok: true });
  t.like(noContent, { ok: true });
});

test('http: dynamic weight from a header or the body', async (t) => {
  const srv = await serve(onRequest((s, head) => {
    if (head.includes('/pct')) s.end(httpResponse(200, ' 75%\n'));
    else s.end(httpResponse(200, 'ok', { 'X-Weight': '42' }));
  }));
  const h = await checkHttp(local(srv.port), http({ weightFrom: { from: 'header', name: 'X-Weight' } }), never());
  const b = await checkHttp(local(srv.port), http({ path: '/pct', weightFrom: { from: 'body' } }), never());
  const none = await checkHttp(local(srv.port), http({ weightFrom: { from: 'header', name: 'X-Missing' } }), never());
  await srv.close();
  t.like(h, { ok: true, weight: 42 });
  t.like(b, { ok: true, load: 75 });
  t.like(none, { ok: true });
  t.is(none.weight, undefined);
});

test('http: an invalid spec is an error result, not an exception', async (t) => {
  const r = await checkHttp(local(1), http({ path: 'no-slash' }), never());
  t.like(r, { ok: false, reason: 'error' });
  const r2 = await checkHttp(local(1), http({ method: 'G T' }), never());
  t.like(r2, { ok: false, reason: 'error' });
});

// ---------------------------------------------------------------- HTTP: misbehaving servers

test('http: refused', async (t) => {
  const r = await checkHttp(local(await closedTcpPort()), http(), never());
  t.like(r, { ok: false, reason: 'refused' });
});

test('http: a server that accepts and never answers times out at the read timeout', async (t) => {
  const srv = await serve(() => {});
  const started = performance.now();
  const r = await checkHttp(local(srv.port), http({ readTimeoutMs: 300, timeoutMs: 5000 }), never());
  await srv.close();
  t.like(r, { ok: false, reason: 'timeout' });
  t.regex(r.detail, /silent for 300 ms/);
  t.true(performance.now() - started < 4500);
});

test('http: a server that trickles bytes forever hits the overall deadline', async (t) => {
  for (const prefix of ['HTTP/1.1 200 OK\r\nX-Slow: ', 'HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n', 'HTTP/1.1 200 OK\r\n\r\n']) {
    const srv = await serve(onRequest((s) => trickle(s, prefix, 20)));
    const started = performance.now();
    // The idle timeout is far above the deadline: only the overall deadline can end a trickle.
    const r = await checkHttp(local(srv.port), http({ readTimeoutMs: 5000, timeoutMs: 800 }), never());
    const took = performance.now() - started;
    await srv.close();
    t.like(r, { ok: false, reason: 'timeout' }, prefix);
    t.regex(r.detail, /within 800 ms/);
    t.true(took >= 790 && took < 4500, `took ${took}`);
  }
});

test('http: 1 GB bodies fail too_large quickly and memory stays bounded', async (t) => {
  const GB = 1024 * 1024 * 1024;
  const heads = {
    length: `HTTP/1.1 200 OK\r\nContent-Length: ${GB}\r\n\r\n`,
    chunked: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n',
    close: 'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n',
  } as const;
  const rssBefore = process.memoryUsage().rss;
  for (const framing of ['length', 'chunked', 'close'] as const) {
    const srv = await serve(onRequest((s) => streamForever(s, heads[framing], framing)));
    const started = performance.now();
    const r = await checkHttp(local(srv.port), http({ timeoutMs: 20000, maxBodyBytes: 4 * 1024 * 1024, digest: { algorithm: 'md5', hex: '00' } }), never());
    const took = performance.now() - started;
    await srv.close();
    t.like(r, { ok: false, reason: 'too_large' }, framing);
    t.true(took < 10000, `${framing} took ${took} ms`);
  }
  const grown = process.memoryUsage().rss - rssBefore;
  t.true(grown < 64 * 1024 * 1024, `RSS grew by ${(grown / 1048576).toFixed(1)} MiB`);
});

test('http: a server that closes mid-response is down', async (t) => {
  const cases: Array<[string, (s: import('node:net').Socket) => void, string]> = [
    ['FIN mid-body', (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789'), 'bad_reply'],
    ['FIN mid-headers', (s) => s.end('HTTP/1.1 200 OK\r\nContent-Len'), 'bad_reply'],
    ['FIN in a chunked body', (s) => s.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab'), 'bad_reply'],
    ['FIN without a response', (s) => s.end(), 'bad_reply'],
    ['RST mid-body', (s) => {
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789');
      setTimeout(() => s.resetAndDestroy(), 50);
    }, 'reset'],
  ];
  for (const [name, respond, reason] of cases) {
    const srv = await serve(onRequest(respond));
    const r = await checkHttp(local(srv.port), http(), never());
    await srv.close();
    t.like(r, { ok: false, reason }, `${name}: ${r.detail}`);
  }
});

test('http: garbage and oversized heads are refused', async (t) => {
  const cases: Array<[string, string]> = [
    ['SSH-2.0-OpenSSH\r\n', 'bad_reply'],
    ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello', 'bad_reply'],
    [`HTTP/1.1 200 OK\r\nX-Big: ${'b'.repeat(20000)}\r\n\r\n`, 'too_large'],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 'bad_reply'],
  ];
  for (const [reply, reason] of cases) {
    const srv = await serve(onRequest((s) => s.end(reply)));
    const r = await checkHttp(local(srv.port), http(), never());
    await srv.close();
    t.like(r, { ok: false, reason }, reply.slice(0, 40));
  }
});

// ---------------------------------------------------------------- HTTPS

test('https: a self-signed certificate fails with verify on and passes with verify off', async (t) => {
  const srv = await serve(onRequest((s) => s.end(httpResponse(200, 'secure'))), { tls: true });
  const on = await checkHttp(local(srv.port), http({ type: 'https' }), never());
  const off = await checkHttp(local(srv.port), http({ type: 'https', tlsVerify: false, bodyContains: 'secure' }), never());
  await srv.close();
  t.like(on, { ok: false, reason: 'tls' });
  t.like(off, { ok: true });
});

test('https: a trusted CA with the right SNI passes; a wrong name fails tls', async (t) => {
  const srv = await serve(onRequest((s) => s.end(httpResponse(200, 'secure'))), { tls: true });
  const good = await checkHttp(local(srv.port), http({ type: 'https', ca: TEST_CERT, host: 'health.test' }), never());
  const bySni = await checkHttp(local(srv.port), http({ type: 'https', ca: TEST_CERT, sni: 'health.test' }), never());
  const byIp = await checkHttp(local(srv.port), http({ type: 'https', ca: TEST_CERT }), never());
  const wrong = await checkHttp(local(srv.port), http({ type: 'https', ca: TEST_CERT, sni: 'other.test' }), never());
  await srv.close();
  t.like(good, { ok: true }, good.detail);
  t.like(bySni, { ok: true }, bySni.detail);
  t.like(byIp, { ok: true }, byIp.detail);
  t.like(wrong, { ok: false, reason: 'tls' });
});

test('https: a plain HTTP server on the port fails tls', async (t) => {
  // A plain server answers the ClientHello bytes with a 400, as nginx or Apache do.
  const srv = await serve((s) => s.once('data', () => s.end(httpResponse(400, 'plain'))));
  const r = await checkHttp(local(srv.port), http({ type: 'https', tlsVerify: false }), never());
  await srv.close();
  t.like(r, { ok: false, reason: 'tls' });
});

test('https: a TLS server that never completes the handshake times out', async (t) => {
  const srv = await serve(() => {});
  const r = await checkHttp(local(srv.port), http({ type: 'https', readTimeoutMs: 300, timeoutMs: 600 }), never());
  await srv.close();
  t.like(r, { ok: false, reason: 'timeout' });
});

test('https: trickling and 1 GB servers behave over TLS as over TCP', async (t) => {
  const slow = await serve(onRequest((s) => trickle(s, 'HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n', 20)), { tls: true });
  const r1 = await checkHttp(local(slow.port), http({ type: 'https', tlsVerify: false, readTimeoutMs: 5000, timeoutMs: 800 }), never());
  await slow.close();
  t.like(r1, { ok: false, reason: 'timeout' });
  const big = await serve(onRequest((s) => streamForever(s, 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', 'chunked')), { tls: true });
  const r2 = await checkHttp(local(big.port), http({ type: 'https', tlsVerify: false }), never());
  await big.close();
  t.like(r2, { ok: false, reason: 'too_large' });
});
