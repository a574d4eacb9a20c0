/**
 * UDP, SMTP and agent checkers against real loopback servers: right and wrong answers, refusal, silence,
 * bytes trickled forever, endless lines, early close; and the agent-line parser.
 */

import test from 'ava';
import { checkAgent, checkSmtp, checkUdp, parseAgentReply, withDefaults } from '../../src/healthcheck/index.ts';
import type { AgentCheckSpec, SmtpCheckSpec, UdpCheckSpec } from '../../src/healthcheck/index.ts';
import { closedTcpPort, closedUdpPort, serve, streamForever, trickle, udpServe } from '../fixtures/healthcheck/servers.ts';

const never = (): AbortSignal => new AbortController().signal;
const local = (port: number) => ({ address: '127.0.0.1', port });

function udp(over: Partial<Omit<UdpCheckSpec, 'type'>> = {}): UdpCheckSpec {
  return withDefaults({ type: 'udp', payload: Buffer.from('ping'), timeoutMs: 5000, ...over });
}
function smtp(over: Partial<Omit<SmtpCheckSpec, 'type'>> = {}): SmtpCheckSpec {
  return withDefaults({ type: 'smtp', timeoutMs: 5000, ...over });
}
function agent(over: Partial<Omit<AgentCheckSpec, 'type'>> = {}): AgentCheckSpec {
  return withDefaults({ type: 'agent', timeoutMs: 5000, ...over });
}

// ---------------------------------------------------------------- UDP

test('udp: an echo with the expected reply is up (exact, prefix, regex)', async (t) => {
  const srv = await udpServe((m) => [Buffer.concat([Buffer.from('PONG '), m])]);
  const cases: Array<[UdpCheckSpec['expect'], boolean]> = [
    [undefined, true],
    [{ match: 'exact', bytes: Buffer.from('PONG ping') }, true],
    [{ match: 'exact', bytes: Buffer.from('PONG') }, false],
    [{ match: 'prefix', bytes: Buffer.from('PONG') }, true],
    [{ match: 'prefix', bytes: Buffer.from('PING') }, false],
    [{ match: 'regex', pattern: '^PONG p.ng$' }, true],
    [{ match: 'regex', pattern: '^nope' }, false],
  ];
  for (const [expect, ok] of cases) {
    const r = await checkUdp(local(srv.port), expect === undefined ? udp({ requireReply: true }) : udp({ requireReply: true, expect }), never());
    t.is(r.ok, ok, JSON.stringify(expect));
    if (!ok) t.is(r.reason, 'bad_reply');
  }
  t.is(srv.received, cases.length, 'one datagram per check');
  await srv.close();
});

test('udp: bindTo sets the source address of the datagram', async (t) => {
  const srv = await udpServe((m) => [m]);
  const r = await checkUdp({ address: '127.0.0.1', port: srv.port, bindTo: '127.0.0.3' }, udp({ requireReply: true }), never());
  await srv.close();
  t.like(r, { ok: true });
  t.deepEqual(srv.sources, ['127.0.0.3']);
});

test('udp: silence is no_reply with require_reply and up without it (keepalived semantics)', async (t) => {
  const srv = await udpServe(() => []);
  const strict = await checkUdp(local(srv.port), udp({ requireReply: true, timeoutMs: 400 }), never());
  const lax = await checkUdp(local(srv.port), udp({ timeoutMs: 400 }), never());
  await srv.close();
  t.like(strict, { ok: false, reason: 'no_reply' });
  t.like(lax, { ok: true });
});

test('udp: an ICMP port unreachable is refused, with or without require_reply', async (t) => {
  const port = await closedUdpPort();
  t.like(await checkUdp(local(port), udp({ timeoutMs: 2000 }), never()), { ok: false, reason: 'refused' });
  t.like(await checkUdp(local(port), udp({ requireReply: true }), never()), { ok: false, reason: 'refused' });
});

// ---------------------------------------------------------------- SMTP

/** An SMTP server speaking `script`: greeting, then the reply to HELO. */
function smtpServer(greeting: string, heloReply: string) {
  return serve((s) => {
    s.write(greeting);
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (buf.includes('HELO ') && buf.includes('\r\n')) {
        const helo = buf;
        buf = '';
        if (helo.startsWith('HELO')) s.write(heloReply);
      }
      if (buf.startsWith('QUIT')) s.end('221 bye\r\n');
    });
  });
}

test('smtp: 220 greeting, 250 to HELO is up; multi-line replies are read whole', async (t) => {
  const srv = await smtpServer('220-mx.test ESMTP\r\n220-second line\r\n220 ready\r\n', '250-mx.test\r\n250 PIPELINING\r\n');
  const r = await checkSmtp(local(srv.port), smtp(), never());
  await srv.close();
  t.like(r, { ok: true, reason: 'ok' });
});

test('smtp: a wrong greeting or a refused HELO is status', async (t) => {
  const busy = await smtpServer('554 no service\r\n', '');
  const r1 = await checkSmtp(local(busy.port), smtp(), never());
  await busy.close();
  t.like(r1, { ok: false, reason: 'status' });
  t.regex(r1.detail, /greeting 554/);
  const picky = await smtpServer('220 hi\r\n', '501 who are you\r\n');
  const r2 = await checkSmtp(local(picky.port), smtp(), never());
  await picky.close();
  t.like(r2, { ok: false, reason: 'status' });
  t.regex(r2.detail, /HELO answered 501/);
});

test('smtp: refused, silent, trickling, endless line, early close, not SMTP', async (t) => {
  t.like(await checkSmtp(local(await closedTcpPort()), smtp(), never()), { ok: false, reason: 'refused' });
  const cases: Array<[string, (s: import('node:net').Socket) => void, string]> = [
    ['silent', () => {}, 'timeout'],
    ['trickle', (s) => trickle(s, '220 ', 20), 'timeout'],
    ['endless line', (s) => streamForever(s, '220 ', 'close'), 'too_large'],
    ['close after greeting', (s) => s.end('220 hi\r\n'), 'bad_reply'],
    ['not SMTP', (s) => s.end('SSH-2.0-x\r\n'), 'bad_reply'],
  ];
  for (const [name, handler, reason] of cases) {
    const srv = await serve(handler);
    const r = await checkSmtp(local(srv.port), reason === 'timeout' ? smtp({ readTimeoutMs: 300, timeoutMs: 700 }) : smtp(), never());
    await srv.close();
    t.like(r, { ok: false, reason }, `${name}: ${r.detail}`);
  }
});

// ---------------------------------------------------------------- agent

test('parseAgentReply understands HAProxy agent words', (t) => {
  t.deepEqual(parseAgentReply('up'), { state: 'up' });
  t.deepEqual(parseAgentReply('75%'), { load: 75 });
  t.deepEqual(parseAgentReply('ready,50%'), { state: 'up', load: 50 });
  t.deepEqual(parseAgentReply('drain'), { load: 0 });
  t.deepEqual(parseAgentReply('weight 50'), { weight: 50 });
  t.deepEqual(parseAgentReply('down#disk full'), { state: 'down', comment: 'disk full' });
  t.deepEqual(parseAgentReply('UP MAINT'), { state: 'down' });
  t.is(parseAgentReply(''), undefined);
  t.is(parseAgentReply('hello world'), undefined);
  t.is(parseAgentReply('weight x'), undefined);
});

test('agent: replies become up/down with load or weight', async (t) => {
  const table: Array<[string, boolean, string, number | undefined, number | undefined]> = [
    ['up\n', true, 'ok', undefined, undefined],
    ['75%\n', true, 'ok', undefined, 75],
    ['drain\r\n', true, 'ok', undefined, 0],
    ['weight 50\n', true, 'ok', 50, undefined],
    ['down # maintenance\n', false, 'status', undefined, undefined],
    ['hello\n', false, 'bad_reply', undefined, undefined],
    ['80%', true, 'ok', undefined, 80], // no newline: the agent closes after its line
    ['', false, 'bad_reply', undefined, undefined],
  ];
  for (const [reply, ok, reason, weight, load] of table) {
    const srv = await serve((s) => s.end(reply));
    const r = await checkAgent(local(srv.port), agent(), never());
    await srv.close();
    t.like(r, { ok, reason }, JSON.stringify(reply));
    t.is(r.weight, weight, JSON.stringify(reply));
    t.is(r.load, load, JSON.stringify(reply));
  }
});

test('agent: send is written before the reply is read', async (t) => {
  const srv = await serve((s) => s.once('data', (d: Buffer) => s.end(d.toString() === 'status\n' ? 'up\n' : 'down\n')));
  const r = await checkAgent(local(srv.port), agent({ send: 'status\n' }), never());
  await srv.close();
  t.like(r, { ok: true });
});

test('agent: refused, silent, trickling and endless lines fail', async (t) => {
  t.like(await checkAgent(local(await closedTcpPort()), agent(), never()), { ok: false, reason: 'refused' });
  const cases: Array<[string, (s: import('node:net').Socket) => void, string]> = [
    ['silent', () => {}, 'timeout'],
    ['trickle', (s) => trickle(s, '7', 20), 'timeout'],
    ['endless line', (s) => streamForever(s, '', 'close'), 'too_large'],
  ];
  for (const [name, handler, reason] of cases) {
    const srv = await serve(handler);
    const r = await checkAgent(local(srv.port), reason === 'timeout' ? agent({ readTimeoutMs: 300, timeoutMs: 700 }) : agent(), never());
    await srv.close();
    t.like(r, { ok: false, reason }, `${name}: ${r.detail}`);
  }
});
