/**
 * The codec and the client against bytes the real kernel produced (Debian's Linux 6.1 in the test VM), recorded
 * by test/vm/capture-golden.ts into test/fixtures/ipvs/: each scenario's client call is replayed through a
 * transport that checks every request is byte-for-byte the one the kernel accepted (sequence numbers aside) and
 * answers with the kernel's recorded datagrams; the decoded result must be what the scenario did. A second set
 * of tests reads the raw replies and pins the kernel facts the decoders rely on.
 *
 * Refresh the fixtures with `node --import tsx test/vm/capture-golden.ts --update` (boots a VM).
 */

import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { NetlinkError } from '../../src/lib/errors.ts';
import { NetlinkIpvsClient } from '../../src/ipvs/netlink/client.ts';
import type { NetlinkTransport, TransportEvents } from '../../src/ipvs/netlink/client.ts';
import { GENL_ID_CTRL, NLMSG, NLM_F, decodeAttrs, decodeGenlPayload, decodeNlError, readNlMsgHeader, splitDatagram } from '../../src/ipvs/netlink/genl.ts';
import type { NetlinkMessage } from '../../src/ipvs/netlink/genl.ts';
import { IPVS_CMD, IPVS_CMD_ATTR, decodeDestReply } from '../../src/ipvs/netlink/ipvs-codec.ts';
import { serviceKeyString } from '../../src/ipvs/model.ts';
import type { Dest, IpvsStats, OpResult, Service, SyncDaemon } from '../../src/ipvs/model.ts';
import type { GoldenFixture } from '../vm/capture-golden.ts';

const DIR = fileURLToPath(new URL('../fixtures/ipvs/', import.meta.url));
const FIXTURES = new Map<string, GoldenFixture>(
  readdirSync(DIR)
    .filter((f) => f.endsWith('.json'))
    .map((f) => {
      const fx = JSON.parse(readFileSync(join(DIR, f), 'utf8')) as GoldenFixture;
      return [fx.name, fx];
    }),
);

function fixture(name: string): GoldenFixture {
  const f = FIXTURES.get(name);
  if (f === undefined) throw new Error(`no fixture ${name} in test/fixtures/ipvs (run test/vm/capture-golden.ts --update)`);
  return f;
}

const unhex = (s: string): Buffer => Buffer.from(s, 'hex');

/** A copy of `datagram` with every message's nlmsg_seq set to `seq`. */
function withSeq(datagram: Buffer, seq: number): Buffer {
  const out = Buffer.from(datagram);
  for (let off = 0; off + 16 <= out.length; ) {
    const len = out.readUInt32LE(off);
    if (len < 16) break;
    out.writeUInt32LE(seq, off + 8);
    off += (len + 3) & ~3;
  }
  return out;
}

/**
 * Replays a fixture: answers the family lookup with the recorded ctrl reply, then each request with the next
 * recorded exchange after checking the request bytes; mismatches are collected for the test to report.
 */
class Replay {
  readonly mismatches: string[] = [];
  private next = 0;
  constructor(
    private readonly fx: GoldenFixture,
    private readonly ctrl: GoldenFixture,
  ) {}

  get remaining(): number {
    return this.fx.call.method === 'open' ? 0 : this.fx.exchanges.length - this.next;
  }

  /**
   * The client may pack several changes into one datagram (a batch) with NLM_F_ACK on the last only: each message
   * is matched against the next recorded exchange with that flag ignored, and a recorded success ACK is withheld
   * when the message did not ask for one, as the kernel does (netlink_rcv_skb acks only on NLM_F_ACK or error).
   */
  readonly transport = (events: TransportEvents): NetlinkTransport => ({
    send: (datagram, done) => {
      const msgs = splitDatagram(datagram);
      if (!msgs.ok) {
        this.mismatches.push(`malformed request datagram ${datagram.toString('hex')}`);
        done();
        return;
      }
      for (const m of msgs.value) {
        const x = m.type === GENL_ID_CTRL ? this.ctrl.exchanges[0] : this.fx.exchanges[this.next++];
        const sent = rawMessage(datagram, m);
        if (x === undefined) {
          this.mismatches.push(`unexpected request ${sent.toString('hex')}`);
          continue;
        }
        if (!withoutAck(withSeq(sent, 0)).equals(withoutAck(withSeq(unhex(x.sent), 0)))) this.mismatches.push(`request differs:\n sent     ${sent.toString('hex')}\n recorded ${x.sent}`);
        for (const r of x.received) {
          const answer = withSeq(unhex(r), m.seq);
          if ((m.flags & NLM_F.ACK) === 0 && isSuccessAck(answer)) continue;
          setImmediate(() => events.message(answer, false));
        }
      }
      done();
    },
    close: () => undefined,
    recvBufferSize: () => 425984,
  });
}

/** The bytes of one message of a datagram (header included). */
function rawMessage(datagram: Buffer, m: NetlinkMessage): Buffer {
  const start = m.payload.byteOffset - datagram.byteOffset - 16;
  return datagram.subarray(start, start + 16 + m.payload.length);
}

/** A copy with NLM_F_ACK cleared in the first message header. */
function withoutAck(msg: Buffer): Buffer {
  const out = Buffer.from(msg);
  out.writeUInt16LE(out.readUInt16LE(6) & ~NLM_F.ACK, 6);
  return out;
}

/** An NLMSG_ERROR with errno 0. */
function isSuccessAck(datagram: Buffer): boolean {
  const h = readNlMsgHeader(datagram);
  return h !== undefined && h.type === NLMSG.ERROR && datagram.length >= 20 && datagram.readInt32LE(16) === 0;
}

/** Runs a fixture's call through a client on its recorded bytes; returns the result or the error. */
async function replay(t: ExecutionContext, name: string): Promise<{ result?: unknown; error?: unknown; client: NetlinkIpvsClient }> {
  const fx = fixture(name);
  const r = new Replay(fx, fixture('ctrl-getfamily'));
  const client = await NetlinkIpvsClient.open({ transport: r.transport, dumpSockets: 1, kernelRelease: fx.kernel });
  let out: { result?: unknown; error?: unknown };
  try {
    const c = fx.call;
    switch (c.method) {
      case 'open':
      case 'raw':
        out = { result: undefined };
        break;
      case 'apply':
        out = { result: await client.apply(c.args[0]) };
        break;
      case 'zero':
        out = { result: await client.zero(...c.args) };
        break;
      default: {
        const fn = client[c.method] as (...a: unknown[]) => Promise<unknown>;
        out = { result: await fn.apply(client, c.args) };
      }
    }
  } catch (e) {
    out = { error: e };
  }
  t.deepEqual(r.mismatches, [], `${name}: the client sent exactly the requests the kernel answered`);
  t.is(r.remaining, 0, `${name}: every recorded exchange was used`);
  client.close();
  return { ...out, client };
}

const ZERO: IpvsStats = { conns: 0n, inPkts: 0n, outPkts: 0n, inBytes: 0n, outBytes: 0n, cps: 0n, inPps: 0n, outPps: 0n, inBps: 0n, outBps: 0n };
const counters = { activeConns: 0, inactiveConns: 0, persistConns: 0, stats: ZERO };
const ok1: OpResult[] = [{ ok: true }];
const noTunnel = { type: 'ipip', port: 0, flags: 0 } as const;

/** The dests of TCP 10.0.0.1:80 after new-dests and set-dest, newest first as the kernel lists them. */
const TCP4_DESTS: Dest[] = [
  { family: 4, address: '10.0.1.5', port: 80, fwd: 'tunnel', weight: 0, upperThreshold: 0, lowerThreshold: 0, tunnel: { type: 'gre', port: 0, flags: 2 }, ...counters },
  { family: 4, address: '10.0.1.4', port: 80, fwd: 'tunnel', weight: 4, upperThreshold: 0, lowerThreshold: 0, tunnel: { type: 'gue', port: 6080, flags: 1 }, ...counters },
  { family: 4, address: '10.0.1.3', port: 80, fwd: 'tunnel', weight: 3, upperThreshold: 0, lowerThreshold: 0, tunnel: noTunnel, ...counters },
  { family: 4, address: '10.0.1.2', port: 80, fwd: 'droute', weight: 2, upperThreshold: 1000, lowerThreshold: 100, tunnel: noTunnel, ...counters },
  { family: 4, address: '10.0.1.1', port: 8080, fwd: 'masq', weight: 7, upperThreshold: 50, lowerThreshold: 10, tunnel: noTunnel, ...counters },
];

/** The table after the service and dest scenarios, as dump() must return it (order aside). */
const TABLE: Service[] = [
  { key: { kind: 'addr', family: 4, protocol: 'tcp', address: '10.0.0.1', port: 80 }, scheduler: 'rr', flags: 0, timeoutS: 60, netmask: 0xffffff00, peName: '', stats: ZERO, dests: TCP4_DESTS },
  {
    key: { kind: 'addr', family: 6, protocol: 'udp', address: '2001:db8::1', port: 53 },
    scheduler: 'sh',
    flags: 0x18,
    timeoutS: 300,
    netmask: 64,
    peName: '',
    stats: ZERO,
    dests: [{ family: 6, address: '2001:db8::2', port: 53, fwd: 'droute', weight: 5, upperThreshold: 0, lowerThreshold: 0, tunnel: noTunnel, ...counters }],
  },
  { key: { kind: 'addr', family: 4, protocol: 'sctp', address: '10.0.0.1', port: 3868 }, scheduler: 'rr', flags: 0, timeoutS: 0, netmask: 0xffffffff, peName: '', stats: ZERO, dests: [] },
  { key: { kind: 'addr', family: 4, protocol: 'udp', address: '10.0.0.1', port: 5060 }, scheduler: 'rr', flags: 0, timeoutS: 60, netmask: 0xffffffff, peName: 'sip', stats: ZERO, dests: [] },
  { key: { kind: 'fwmark', family: 4, fwmark: 7 }, scheduler: 'rr', flags: 0, timeoutS: 0, netmask: 0xffffffff, peName: '', stats: ZERO, dests: [] },
  {
    key: { kind: 'fwmark', family: 6, fwmark: 8 },
    scheduler: 'mh',
    flags: 0x1c,
    timeoutS: 0,
    netmask: 128,
    peName: '',
    stats: ZERO,
    // An IPv4 dest of an IPv6 service: ADDR_FAMILY says AF_INET.
    dests: [{ family: 4, address: '10.0.2.1', port: 0, fwd: 'tunnel', weight: 1, upperThreshold: 0, lowerThreshold: 0, tunnel: noTunnel, ...counters }],
  },
];

const sortByKey = (services: readonly Service[]): Service[] => [...services].sort((a, b) => serviceKeyString(a.key).localeCompare(serviceKeyString(b.key)));

/** What each scenario's call returns (or rejects with). */
const EXPECTED: Record<string, { result: unknown } | { error: { errno: number; operation: string; object: string; message?: RegExp } } | { check: (t: ExecutionContext, result: unknown) => void }> = {
  'get-info': { result: { version: '1.2.1', connTabSize: 4096 } },
  flush: { result: undefined },
  'new-service-tcp4': { result: ok1 },
  'new-service-udp6-persistent': { result: ok1 },
  'new-service-sctp4': { result: ok1 },
  'new-service-sip-pe': { result: ok1 },
  'new-service-fwm4': { result: ok1 },
  'new-service-fwm6': { result: ok1 },
  'set-service': { result: ok1 },
  'new-dests': { result: [ok1[0], ok1[0], ok1[0], ok1[0], ok1[0]] },
  'new-dests-ipv6': { result: [ok1[0], ok1[0]] },
  'set-dest': { result: ok1 },
  'get-dests': { result: TCP4_DESTS },
  'get-dests-missing-service': { result: [] },
  dump: { check: (t, r) => t.deepEqual(sortByKey((r as { services: Service[] }).services), sortByKey(TABLE)) },
  'zero-service': { result: undefined },
  'zero-all': { result: undefined },
  'error-new-service-eexist': { check: (t, r) => opError(t, r, 17, 'NEW_SERVICE', 'TCP 10.0.0.1:80', /the virtual service already exists/) },
  'error-del-service-esrch': { check: (t, r) => opError(t, r, 3, 'DEL_SERVICE', 'TCP 10.0.0.1:81', /does not exist/) },
  'error-del-dest-enoent': { check: (t, r) => opError(t, r, 2, 'DEL_DEST', 'TCP 10.0.0.1:80 -> 10.0.9.9:80', /the destination does not exist/) },
  'error-new-dest-erange': { check: (t, r) => opError(t, r, 34, 'NEW_DEST', 'TCP 10.0.0.1:80 -> 10.0.1.9:80', /lower connection threshold \(10\) is above the upper one \(5\)/) },
  'error-new-service-twos': { check: (t, r) => opError(t, r, 2, 'NEW_SERVICE', 'TCP 10.0.0.1:82', /scheduler "twos" does not exist on this kernel \(Linux 6\.1\.[^)]*\): ip_vs_twos arrived in Linux 6\.2/) },
  'set-config': { result: undefined },
  'get-config': { result: { tcp: 900, tcpFin: 120, udp: 60 } },
  'error-new-daemon-mixed-family': { error: { errno: 22, operation: 'NEW_DAEMON', object: 'master sync daemon on tdm0 (syncid 9)', message: /no service may have destinations of another address family/ } },
  'del-dest-mixed-family': { result: ok1 },
  'new-daemon-master': { result: undefined },
  'new-daemon-backup': { result: undefined },
  'error-new-daemon-eexist': { error: { errno: 17, operation: 'NEW_DAEMON', object: 'master sync daemon on tdm0 (syncid 9)', message: /a master sync daemon is already running/ } },
  'get-daemons': {
    // maxlen 0 was asked for the master: the kernel reports what it uses, 1500 - 28 (IPv4 + UDP headers).
    result: [
      { state: 'master', ifname: 'tdm0', syncId: 9, maxLen: 1472, group: '224.0.0.81', port: 8848, ttl: 1 },
      { state: 'backup', ifname: 'tdm0', syncId: 9, maxLen: 1400, group: 'ff02::81', port: 8849, ttl: 4 },
    ] satisfies SyncDaemon[],
  },
  'del-daemon-master': { result: undefined },
  'error-del-daemon-esrch': { error: { errno: 3, operation: 'DEL_DAEMON', object: 'master sync daemon', message: /no master sync daemon is running/ } },
  'del-daemon-backup': { result: undefined },
  'del-dest': { result: ok1 },
  'del-service': { result: ok1 },
  'dump-multipart': {
    check: (t, r) => {
      const services = (r as { services: Service[] }).services;
      t.is(services.length, 120);
      t.is(new Set(services.map((s) => serviceKeyString(s.key))).size, 120, 'no service twice');
      t.true(services.every((s) => s.scheduler === 'wlc' && s.dests.length === 0));
    },
  },
};

function opError(t: ExecutionContext, r: unknown, errno: number, operation: string, object: string, message: RegExp): void {
  const results = r as OpResult[];
  t.is(results.length, 1);
  const first = results[0];
  if (first === undefined || first.ok) {
    t.fail('expected a failed op');
    return;
  }
  t.true(first.error instanceof NetlinkError);
  t.like(first.error, { errno, operation, object });
  t.regex(first.error.message, message);
}

for (const name of Object.keys(EXPECTED)) {
  test(`kernel bytes: ${name}`, async (t) => {
    const want = EXPECTED[name];
    const got = await replay(t, name);
    if (want === undefined) return;
    if ('error' in want) {
      t.true(got.error instanceof NetlinkError, String(got.error));
      t.like(got.error, { errno: want.error.errno, operation: want.error.operation, object: want.error.object });
      if (want.error.message !== undefined) t.regex((got.error as Error).message, want.error.message);
    } else {
      t.is(got.error, undefined, String(got.error));
      if ('check' in want) want.check(t, got.result);
      else t.deepEqual(got.result, want.result);
    }
  });
}

test('every captured scenario has an expectation', (t) => {
  const known = new Set([...Object.keys(EXPECTED), 'ctrl-getfamily', 'error-dump-ebusy']);
  t.deepEqual([...FIXTURES.keys()].filter((n) => !known.has(n)), []);
  t.true(FIXTURES.size >= 38);
});

test('kernel bytes: ctrl-getfamily resolves IPVS (version 1, maxattr 6 = IPVS_CMD_ATTR_MAX)', async (t) => {
  const { client } = await replay(t, 'ctrl-getfamily');
  t.like(client.family, { id: fixture('ctrl-getfamily').family, name: 'IPVS', version: 1, hdrSize: 0, maxAttr: 6 });
});

// ---------------------------------------------------------------------------------------------- kernel facts

function replies(name: string): NetlinkMessage[] {
  const out: NetlinkMessage[] = [];
  for (const x of fixture(name).exchanges) {
    for (const r of x.received) {
      const s = splitDatagram(unhex(r));
      if (!s.ok) throw new Error(`${name}: ${s.detail}`);
      out.push(...s.value);
    }
  }
  return out;
}

function cmdAttrs(m: NetlinkMessage): ReturnType<typeof decodeAttrs<typeof IPVS_CMD_ATTR>> {
  const g = decodeGenlPayload(m.payload);
  if (!g.ok) throw new Error(g.detail);
  return decodeAttrs(IPVS_CMD_ATTR, g.value.attrs, 'IPVS_CMD_ATTR');
}

test('kernel facts: replies carry ADDR as 16 bytes, FLAGS with HASHED and mask 0xffffffff; fwmark services FWMARK only', (t) => {
  const services = replies('dump').filter((m) => m.type === fixture('dump').family && m.payload[0] === IPVS_CMD.NEW_SERVICE);
  t.is(services.length, 6);
  for (const m of services) {
    const a = cmdAttrs(m);
    t.true(a.ok);
    const s = a.ok ? a.value.SERVICE : undefined;
    t.is(s?.FLAGS?.mask, 0xffffffff);
    t.is((s?.FLAGS?.flags ?? 0) & 0x2, 0x2, 'HASHED is set in replies');
    if (s?.FWMARK !== undefined) {
      t.is(s.PROTOCOL, undefined);
      t.is(s.ADDR, undefined);
      t.is(s.PORT, undefined);
    } else {
      t.is(s?.ADDR?.length, 16);
    }
    t.not(s?.STATS, undefined);
    t.not(s?.STATS64, undefined);
    t.is(m.flags & NLM_F.MULTI, NLM_F.MULTI);
  }
});

test('kernel facts: dests carry 16-byte ADDR, ADDR_FAMILY, TUN_TYPE/PORT/FLAGS, STATS and STATS64', (t) => {
  const dests = replies('get-dests').filter((m) => m.type === fixture('get-dests').family);
  t.is(dests.length, 5);
  for (const m of dests) {
    const a = cmdAttrs(m);
    const d = a.ok ? a.value.DEST : undefined;
    t.is(d?.ADDR?.length, 16);
    t.is(d?.ADDR_FAMILY, 2);
    t.not(d?.TUN_TYPE, undefined);
    t.not(d?.TUN_PORT, undefined);
    t.not(d?.TUN_FLAGS, undefined);
    t.not(d?.STATS, undefined);
    t.not(d?.STATS64, undefined);
    t.true(decodeDestReply(m.payload, 4).ok);
  }
});

test('kernel facts: ACKs are capped (NLM_F_CAPPED, header only); errors echo the whole request', (t) => {
  const [ack] = replies('flush');
  t.is(ack?.type, NLMSG.ERROR);
  t.is(ack?.flags, NLM_F.CAPPED);
  t.is(ack?.payload.length, 20);
  const [err] = replies('error-new-dest-erange');
  const sent = unhex(fixture('error-new-dest-erange').exchanges[0]?.sent ?? '');
  t.is(err?.flags, 0);
  t.is(err?.payload.length, 4 + sent.length);
  t.like(decodeNlError(err?.payload ?? Buffer.alloc(0)), { ok: true, value: { errno: 34, request: { len: sent.length } } });
});

test('kernel facts: a dump ends with NLMSG_DONE in a datagram of its own; a large dump spans many datagrams', (t) => {
  for (const name of ['get-dests', 'dump', 'get-daemons', 'dump-multipart']) {
    for (const x of fixture(name).exchanges) {
      const last = x.received.at(-1) ?? '';
      const s = splitDatagram(unhex(last));
      t.true(s.ok && s.value.length === 1 && s.value[0]?.type === NLMSG.DONE, `${name}: DONE alone`);
    }
  }
  const first = fixture('dump-multipart').exchanges[0];
  t.true((first?.received.length ?? 0) > 5, `120 services came in ${first?.received.length} datagrams`);
  t.true((first?.received ?? []).every((r) => r.length / 2 <= 4096), 'with message peeking the kernel fills about one page per datagram');
});

test('kernel facts: a second dump on a socket whose dump is still running is refused with EBUSY', (t) => {
  const [first, second] = fixture('error-dump-ebusy').exchanges;
  const parts = (first?.received ?? []).flatMap((r) => {
    const s = splitDatagram(unhex(r));
    return s.ok ? s.value : [];
  });
  t.deepEqual(parts.map((m) => m.type), [fixture('error-dump-ebusy').family, fixture('error-dump-ebusy').family, NLMSG.DONE]);
  const err = splitDatagram(unhex(second?.received[0] ?? ''));
  t.true(err.ok);
  const e = err.ok ? decodeNlError(err.value[0]?.payload ?? Buffer.alloc(0)) : undefined;
  t.like(e, { ok: true, value: { errno: 16 } });
});

test('fixtures: every request is a REQUEST, with ACK for changes, DUMP for lists, neither for GET_INFO', (t) => {
  for (const fx of FIXTURES.values()) {
    for (const x of fx.exchanges) {
      const h = readNlMsgHeader(unhex(x.sent));
      t.truthy(h, fx.name);
      t.is((h?.flags ?? 0) & NLM_F.REQUEST, NLM_F.REQUEST, fx.name);
    }
  }
  const flags = (name: string): number[] => fixture(name).exchanges.map((x) => readNlMsgHeader(unhex(x.sent))?.flags ?? 0);
  t.deepEqual(flags('new-dests'), Array(5).fill(NLM_F.REQUEST | NLM_F.ACK));
  t.deepEqual(flags('get-dests'), [NLM_F.REQUEST | NLM_F.DUMP]);
  t.deepEqual(flags('get-info'), [NLM_F.REQUEST]);
});
