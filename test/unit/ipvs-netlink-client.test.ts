/**
 * NetlinkIpvsClient (src/ipvs/netlink/client.ts) against a fake kernel behind the injected transport: family
 * resolution (and the `modprobe ip_vs` hint), pipelining (every op sent before the first answer, answers
 * matched by sequence number in any order, results in op order), the in-flight window, one dump at a time per
 * socket (the real kernel answers a second one with EBUSY), multi-datagram dumps, ENOBUFS and truncation failing
 * the requests in flight and replacing the socket, timeouts on a fake clock, malformed replies, close().
 */

import test from 'ava';
import { FakeClock } from '../../src/lib/clock.ts';
import { CodecError, NetlinkError } from '../../src/lib/errors.ts';
import { MAX_BATCH_BYTES, NetlinkIpvsClient } from '../../src/ipvs/netlink/client.ts';
import type { NetlinkTransport, SocketError, TransportEvents, TraceEvent } from '../../src/ipvs/netlink/client.ts';
import {
  CTRL_ATTR,
  CTRL_CMD,
  GENL_ID_CTRL,
  NLMSG,
  NLM_F,
  decodeAttrs,
  decodeGenlPayload,
  encodeAttrs,
  encodeGenlMsg,
  encodeNlMsg,
  splitDatagram,
} from '../../src/ipvs/netlink/genl.ts';
import type { NetlinkMessage } from '../../src/ipvs/netlink/genl.ts';
import { IPVS_CMD, IPVS_CMD_ATTR, IPVS_INFO_ATTR } from '../../src/ipvs/netlink/ipvs-codec.ts';
import type { CmdWire, DestWire, SvcWire } from '../../src/ipvs/netlink/ipvs-codec.ts';
import type { DestAttrs, DestKey, IpvsOp, ServiceAttrs, ServiceKey } from '../../src/ipvs/model.ts';

const FAMILY = 0x21;
const E = { ENOENT: 2, ESRCH: 3, EEXIST: 17, ERANGE: 34, EBUSY: 16 } as const;

/** int32 host order, as NLMSG_ERROR and NLMSG_DONE carry it. */
function int32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v);
  return b;
}

class FakeSocket implements NetlinkTransport {
  readonly sent: NetlinkMessage[] = [];
  /** Datagrams (sendmsg calls) received. */
  datagrams = 0;
  closed = false;
  /** A dump is running on this socket (the kernel refuses a second one with EBUSY). */
  dumping = false;
  ebusy = 0;
  constructor(
    private readonly kernel: FakeKernel,
    readonly events: TransportEvents,
  ) {}
  send(datagram: Buffer, done: (err?: SocketError) => void): void {
    if (this.closed) throw new Error('send on a closed socket');
    const msgs = splitDatagram(datagram);
    if (!msgs.ok) throw new Error(msgs.detail);
    this.datagrams++;
    for (const m of msgs.value) {
      this.sent.push(m);
      this.kernel.handle(this, m);
    }
    done();
  }
  close(): void {
    this.closed = true;
  }
  recvBufferSize(): number {
    return this.kernel.recvBuffer;
  }
  /** Delivers a datagram to the client (asynchronously, like a socket). */
  deliver(datagram: Buffer, truncated = false): void {
    this.kernel.schedule(() => {
      if (!this.closed) this.events.message(datagram, truncated);
    });
  }
}

interface FakeService {
  svc: SvcWire;
  dests: Map<string, DestWire>;
}

/** A small IPVS kernel: services and dests in memory, answers shaped like ip_vs_ctl.c's. */
class FakeKernel {
  readonly sockets: FakeSocket[] = [];
  readonly services = new Map<string, FakeService>();
  /** Messages per dump datagram (the kernel fills ~4-32 KiB). */
  partSize = 2;
  /** SO_RCVBUF each socket reports (Debian's default: 2 x rmem_max 212992). */
  recvBuffer = 425984;
  /** While set, answers wait in `held` (to observe what is in flight). */
  holding = false;
  readonly held: Array<() => void> = [];
  /** Overrides the answer to one request; return true when handled. */
  intercept: ((sock: FakeSocket, m: NetlinkMessage) => boolean) | undefined;

  readonly transport = (events: TransportEvents): NetlinkTransport => {
    const s = new FakeSocket(this, events);
    this.sockets.push(s);
    return s;
  };

  schedule(fn: () => void): void {
    if (this.holding) this.held.push(fn);
    else setImmediate(fn);
  }

  release(order: 'fifo' | 'reverse' = 'fifo'): void {
    this.holding = false;
    const fns = this.held.splice(0);
    if (order === 'reverse') fns.reverse();
    for (const fn of fns) setImmediate(fn);
  }

  ack(sock: FakeSocket, m: NetlinkMessage, errno = 0): void {
    // Like netlink_rcv_skb: a success is answered only when the request asked for it (NLM_F_ACK).
    if (errno === 0 && (m.flags & NLM_F.ACK) === 0) return;
    const echo = encodeNlMsg({ type: m.type, flags: m.flags, seq: m.seq }, errno === 0 ? Buffer.alloc(0) : m.payload);
    sock.deliver(encodeNlMsg({ type: NLMSG.ERROR, flags: errno === 0 ? NLM_F.CAPPED : 0, seq: m.seq, pid: 4242 }, Buffer.concat([int32(-errno), errno === 0 ? echo.subarray(0, 16) : echo])));
  }

  reply(sock: FakeSocket, m: NetlinkMessage, cmd: number, attrs: Buffer, flags = 0): Buffer {
    return encodeGenlMsg({ family: FAMILY, cmd, version: 1, flags, seq: m.seq, pid: 4242 }, attrs);
  }

  /** Sends dump parts `partSize` messages per datagram, then DONE, one datagram per tick like recvmsg-driven dumps. */
  dump(sock: FakeSocket, m: NetlinkMessage, parts: Buffer[]): void {
    if (sock.dumping) {
      sock.ebusy++;
      this.ack(sock, m, E.EBUSY);
      return;
    }
    sock.dumping = true;
    const datagrams: Buffer[] = [];
    for (let i = 0; i < parts.length; i += this.partSize) datagrams.push(Buffer.concat(parts.slice(i, i + this.partSize)));
    datagrams.push(encodeNlMsg({ type: NLMSG.DONE, flags: NLM_F.MULTI, seq: m.seq, pid: 4242 }, int32(0)));
    const next = (i: number): void => {
      const d = datagrams[i];
      if (d === undefined) return;
      this.schedule(() => {
        if (i === datagrams.length - 1) sock.dumping = false;
        if (!sock.closed) sock.events.message(d, false);
        next(i + 1);
      });
    };
    next(0);
  }

  handle(sock: FakeSocket, m: NetlinkMessage): void {
    if (this.intercept?.(sock, m) === true) return;
    const g = decodeGenlPayload(m.payload);
    if (!g.ok) throw new Error(g.detail);
    if (m.type === GENL_ID_CTRL) {
      const a = decodeAttrs(CTRL_ATTR, g.value.attrs, 'CTRL_ATTR');
      if (!a.ok || a.value.FAMILY_NAME !== 'IPVS') return this.ack(sock, m, E.ENOENT);
      const attrs = encodeAttrs(CTRL_ATTR, { FAMILY_ID: FAMILY, FAMILY_NAME: 'IPVS', VERSION: 1, HDRSIZE: 0, MAXATTR: 6 }, 'CTRL_ATTR');
      sock.deliver(encodeGenlMsg({ family: GENL_ID_CTRL, cmd: CTRL_CMD.NEWFAMILY, version: 2, flags: 0, seq: m.seq, pid: 4242 }, attrs));
      return;
    }
    if (m.type !== FAMILY) throw new Error(`fake kernel: family ${m.type}`);
    const a = decodeAttrs(IPVS_CMD_ATTR, g.value.attrs, 'IPVS_CMD_ATTR');
    if (!a.ok) throw new Error(a.detail);
    const { SERVICE: svc, DEST: dest } = a.value;
    const svcKey = svc === undefined ? '' : serviceId(svc);
    const found = this.services.get(svcKey);
    const destKey = dest === undefined ? '' : `${dest.ADDR?.toString('hex')}:${dest.PORT}`;
    switch (g.value.cmd) {
      case IPVS_CMD.NEW_SERVICE:
        if (found !== undefined || svc === undefined) return this.ack(sock, m, E.EEXIST);
        this.services.set(svcKey, { svc, dests: new Map() });
        return this.ack(sock, m);
      case IPVS_CMD.DEL_SERVICE:
        if (found === undefined) return this.ack(sock, m, E.ESRCH);
        this.services.delete(svcKey);
        return this.ack(sock, m);
      case IPVS_CMD.NEW_DEST:
        if (found === undefined || dest === undefined) return this.ack(sock, m, E.ESRCH);
        if (found.dests.has(destKey)) return this.ack(sock, m, E.EEXIST);
        if ((dest.L_THRESH ?? 0) > (dest.U_THRESH ?? 0)) return this.ack(sock, m, E.ERANGE);
        found.dests.set(destKey, dest);
        return this.ack(sock, m);
      case IPVS_CMD.FLUSH:
        this.services.clear();
        return this.ack(sock, m);
      case IPVS_CMD.GET_INFO:
        return sock.deliver(this.reply(sock, m, IPVS_CMD.SET_INFO, encodeAttrs(IPVS_INFO_ATTR, { VERSION: 0x010201, CONN_TAB_SIZE: 4096 }, 'IPVS_INFO_ATTR')));
      case IPVS_CMD.GET_SERVICE:
        return this.dump(
          sock,
          m,
          [...this.services.values()].map((s) =>
            this.reply(sock, m, IPVS_CMD.NEW_SERVICE, encodeAttrs(IPVS_CMD_ATTR, { SERVICE: { ...s.svc, FLAGS: { flags: (s.svc.FLAGS?.flags ?? 0) | 2, mask: 0xffffffff } } } as CmdWire, 'IPVS_CMD_ATTR'), NLM_F.MULTI),
          ),
        );
      case IPVS_CMD.GET_DEST:
        return this.dump(
          sock,
          m,
          [...(found?.dests.values() ?? [])].map((d) => this.reply(sock, m, IPVS_CMD.NEW_DEST, encodeAttrs(IPVS_CMD_ATTR, { DEST: d }, 'IPVS_CMD_ATTR'), NLM_F.MULTI)),
        );
      default:
        return this.ack(sock, m);
    }
  }
}

function serviceId(s: SvcWire): string {
  return `${s.AF}|${s.FWMARK ?? ''}|${s.PROTOCOL ?? ''}|${s.ADDR?.toString('hex') ?? ''}|${s.PORT ?? ''}`;
}

const svcKey = (i: number): ServiceKey => ({ kind: 'addr', family: 4, protocol: 'tcp', address: `10.0.${i >> 8}.${i & 0xff}`, port: 80 });
const ATTRS: ServiceAttrs = { scheduler: 'wlc', flags: 0, timeoutS: 0, netmask: 0xffffffff, peName: '' };
const dest = (i: number, extra: Partial<DestAttrs> = {}): DestKey & DestAttrs => ({
  family: 4,
  address: `10.1.0.${i}`,
  port: 80,
  fwd: 'droute',
  weight: i,
  upperThreshold: 0,
  lowerThreshold: 0,
  tunnel: { type: 'ipip', port: 0, flags: 0 },
  ...extra,
});

async function open(kernel: FakeKernel, extra: Partial<Parameters<typeof NetlinkIpvsClient.open>[0]> = {}): Promise<NetlinkIpvsClient> {
  return NetlinkIpvsClient.open({ transport: kernel.transport, kernelRelease: '6.1.0-26-amd64', ...extra });
}

/** Lets queued immediates (fake socket deliveries) run. */
const ticks = async (n = 20): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

test('open resolves the IPVS family by name; requests then carry its id', async (t) => {
  const kernel = new FakeKernel();
  const trace: TraceEvent[] = [];
  const c = await open(kernel, { trace: (e) => trace.push(e) });
  t.like(c.family, { id: FAMILY, name: 'IPVS', version: 1, maxAttr: 6 });
  t.deepEqual(await c.info(), { version: '1.2.1', connTabSize: 4096 });
  const sent = kernel.sockets[0]?.sent ?? [];
  t.deepEqual(sent.map((m) => m.type), [GENL_ID_CTRL, FAMILY]);
  t.deepEqual(sent.map((m) => m.flags), [NLM_F.REQUEST, NLM_F.REQUEST]);
  t.deepEqual(trace.map((e) => e.direction), ['send', 'recv', 'send', 'recv']);
  c.close();
});

test('open fails with ENOENT and says to run modprobe ip_vs when the family is not registered', async (t) => {
  const kernel = new FakeKernel();
  kernel.intercept = (sock, m) => {
    kernel.ack(sock, m, E.ENOENT);
    return true;
  };
  const e = await t.throwsAsync(open(kernel), { instanceOf: NetlinkError });
  t.is(e?.errno, 2);
  t.is(e?.operation, 'CTRL_CMD_GETFAMILY');
  t.is(e?.object, 'family "IPVS"');
  t.regex(e?.message ?? '', /^CTRL_CMD_GETFAMILY family "IPVS": ENOENT \(errno 2\): .*ip_vs kernel module is not loaded.*`modprobe ip_vs`/);
  t.true(kernel.sockets.every((s) => s.closed), 'sockets closed after a failed open');
});

test('apply pipelines every op before the first answer and reports results in op order', async (t) => {
  const kernel = new FakeKernel();
  const c = await open(kernel);
  kernel.services.set(serviceId({ AF: 2, PROTOCOL: 6, ADDR: Buffer.from('0a000002000000000000000000000000', 'hex'), PORT: 80 }), { svc: {}, dests: new Map() });
  kernel.holding = true;
  const ops: IpvsOp[] = [
    { op: 'addService', service: { key: svcKey(1), ...ATTRS } },
    { op: 'addService', service: { key: svcKey(2), ...ATTRS } }, // exists: EEXIST
    { op: 'addDest', service: svcKey(1), dest: dest(1) },
    { op: 'addDest', service: svcKey(1), dest: dest(2, { upperThreshold: 5, lowerThreshold: 10 }) }, // ERANGE
    { op: 'delService', key: svcKey(9) }, // ESRCH
  ];
  const results = c.apply(ops);
  await ticks();
  const sent = kernel.sockets[0]?.sent.slice(1) ?? [];
  t.is(sent.length, 5, 'all five requests are in flight before any answer');
  t.is(new Set(sent.map((m) => m.seq)).size, 5, 'each with its own sequence number');
  t.is(kernel.sockets[0]?.datagrams, 2, 'the five changes left in one datagram (after the family lookup)');
  t.deepEqual(
    sent.map((m) => m.flags),
    [NLM_F.REQUEST, NLM_F.REQUEST, NLM_F.REQUEST, NLM_F.REQUEST, NLM_F.REQUEST | NLM_F.ACK],
    'only the last change of the batch asks for an ACK',
  );
  kernel.release(); // the kernel answers failures as it meets them, then the last change; matched by seq
  const r = await results;
  t.deepEqual(r.map((x) => x.ok), [true, false, true, false, false]);
  const errs = r.map((x) => (x.ok ? undefined : x.error));
  t.like(errs[1], { errno: E.EEXIST, operation: 'NEW_SERVICE', object: 'TCP 10.0.0.2:80' });
  t.regex(errs[1]?.message ?? '', /^NEW_SERVICE TCP 10\.0\.0\.2:80: EEXIST \(errno 17\): the virtual service already exists/);
  t.like(errs[3], { errno: E.ERANGE, operation: 'NEW_DEST', object: 'TCP 10.0.0.1:80 -> 10.1.0.2:80' });
  t.regex(errs[3]?.message ?? '', /ERANGE \(errno 34\): the lower connection threshold \(10\) is above the upper one \(5\)/);
  t.like(errs[4], { errno: E.ESRCH, operation: 'DEL_SERVICE', object: 'TCP 10.0.0.9:80' });
  t.regex(errs[4]?.message ?? '', /the virtual service does not exist/);
  t.true(errs[4] instanceof NetlinkError);
  c.close();
});

test('the in-flight window holds further requests until answers come back', async (t) => {
  const kernel = new FakeKernel();
  const c = await open(kernel, { maxInFlight: 2 });
  kernel.holding = true;
  const ops: IpvsOp[] = [1, 2, 3, 4, 5].map((i) => ({ op: 'addService', service: { key: svcKey(i), ...ATTRS } }));
  const results = c.apply(ops);
  await ticks();
  t.is((kernel.sockets[0]?.sent.length ?? 0) - 1, 2, 'two in flight');
  kernel.release();
  t.deepEqual((await results).map((r) => r.ok), [true, true, true, true, true]);
  t.is((kernel.sockets[0]?.sent.length ?? 0) - 1, 5);
  c.close();
});

test('the window is lowered so that the answers in flight always fit the socket receive buffer', async (t) => {
  const kernel = new FakeKernel();
  // Room for the dump reserve (64 KiB) and three 2 KiB answers.
  kernel.recvBuffer = 64 * 1024 + 3 * 2048 + 100;
  const c = await open(kernel, { maxInFlight: 1000 });
  kernel.holding = true;
  const results = c.apply([1, 2, 3, 4, 5, 6, 7].map((i): IpvsOp => ({ op: 'delService', key: svcKey(i) })));
  await ticks();
  t.is((kernel.sockets[0]?.sent.length ?? 0) - 1, 3, 'three in flight');
  kernel.release();
  t.is((await results).length, 7);
  c.close();
  // Below the reserve, one request at a time still goes through.
  const small = new FakeKernel();
  small.recvBuffer = 4096;
  const d = await open(small);
  small.holding = true;
  const r2 = d.apply([1, 2].map((i): IpvsOp => ({ op: 'delService', key: svcKey(i) })));
  await ticks();
  t.is((small.sockets[0]?.sent.length ?? 0) - 1, 1);
  small.release();
  t.deepEqual((await r2).map((r) => (r.ok ? 0 : r.error.errno)), [3, 3]);
  d.close();
});

test('apply rejects with CodecError and sends nothing when an op cannot be encoded', async (t) => {
  const kernel = new FakeKernel();
  const c = await open(kernel);
  const ops: IpvsOp[] = [
    { op: 'addService', service: { key: svcKey(1), ...ATTRS } },
    { op: 'addDest', service: svcKey(1), dest: dest(1, { weight: -1 }) },
  ];
  await t.throwsAsync(c.apply(ops), { instanceOf: CodecError, message: /^op 1 \(addDest\): dest TCP 10\.0\.0\.1:80 -> 10\.1\.0\.1:80: weight: -1/ });
  t.is(kernel.sockets[0]?.sent.length, 1, 'only the family lookup was sent');
  c.close();
});

test('dump: a multi-datagram service dump, then dest dumps spread over sockets, one dump at a time each', async (t) => {
  const kernel = new FakeKernel();
  const c = await open(kernel, { dumpSockets: 3 });
  const n = 7;
  const ops: IpvsOp[] = [];
  for (let i = 1; i <= n; i++) {
    ops.push({ op: 'addService', service: { key: svcKey(i), ...ATTRS } });
    for (let d = 1; d <= i; d++) ops.push({ op: 'addDest', service: svcKey(i), dest: dest(d) });
  }
  t.true((await c.apply(ops)).every((r) => r.ok));
  const table = await c.dump();
  t.is(table.services.length, n);
  for (const s of table.services) {
    const i = Number(s.key.kind === 'addr' ? s.key.address.split('.')[3] : 0);
    t.is(s.dests.length, i, `service ${i} has ${i} dests`);
    t.deepEqual(s.dests.map((d) => d.weight).sort((a, b) => a - b), Array.from({ length: i }, (_, k) => k + 1));
  }
  t.is(kernel.sockets.length, 3, 'three sockets');
  t.true(kernel.sockets.every((s) => s.ebusy === 0), 'no socket ever had two dumps running (no EBUSY)');
  t.true(kernel.sockets.every((s) => s.sent.some((m) => decodeGenlPayload(m.payload).ok && m.payload[0] === IPVS_CMD.GET_DEST)), 'every socket carried dest dumps');
  c.close();
});

test('listDests of a missing service is empty (the kernel answers DONE at once)', async (t) => {
  const kernel = new FakeKernel();
  const c = await open(kernel);
  t.deepEqual(await c.listDests(svcKey(42)), []);
  c.close();
});

test('ENOBUFS fails every request in flight on that socket, with a hint to dump again; a new socket follows', async (t) => {
  const kernel = new FakeKernel();
  const c = await open(kernel);
  kernel.holding = true;
  const results = c.apply([1, 2, 3].map((i): IpvsOp => ({ op: 'addService', service: { key: svcKey(i), ...ATTRS } })));
  await ticks();
  const first = kernel.sockets[0];
  const err: SocketError = Object.assign(new Error('Error when receiving Netlink message: No buffer space available'), { errno: 105, code: 'ENOBUFS' });
  first?.events.error(err);
  const r = await results;
  t.true(r.every((x) => !x.ok && x.error.errno === 105));
  const e = r[0]?.ok === false ? r[0].error : undefined;
  t.regex(e?.message ?? '', /^NEW_SERVICE TCP 10\.0\.0\.1:80: ENOBUFS \(errno 105\): .*receive buffer overflowed.*dump the tables again/);
  t.true(first?.closed);
  kernel.held.splice(0); // the lost answers
  kernel.holding = false;
  t.deepEqual(await c.info(), { version: '1.2.1', connTabSize: 4096 });
  t.is(kernel.sockets.length, 2, 'a fresh socket carries the next request');
  c.close();
});

test('a truncated datagram fails the requests in flight with EMSGSIZE; a malformed one with EBADMSG', async (t) => {
  for (const [truncated, errno] of [[true, 90], [false, 74]] as const) {
    const kernel = new FakeKernel();
    const c = await open(kernel);
    kernel.intercept = (sock, m) => {
      sock.deliver(truncated ? Buffer.alloc(64) : Buffer.from('ffff', 'hex'), truncated);
      void m;
      return true;
    };
    const e = await t.throwsAsync(c.info(), { instanceOf: NetlinkError });
    t.is(e?.errno, errno);
    t.is(e?.operation, 'GET_INFO');
    c.close();
  }
});

test('a malformed dump part fails the dump with EBADMSG naming the operation', async (t) => {
  const kernel = new FakeKernel();
  const c = await open(kernel);
  kernel.intercept = (sock, m) => {
    // A NEW_SERVICE with an AF of 3.
    kernel.dump(sock, m, [kernel.reply(sock, m, IPVS_CMD.NEW_SERVICE, encodeAttrs(IPVS_CMD_ATTR, { SERVICE: { AF: 3, FWMARK: 1 } }, 'IPVS_CMD_ATTR'), NLM_F.MULTI)]);
    return true;
  };
  const e = await t.throwsAsync(c.dump(), { instanceOf: NetlinkError });
  t.like(e, { errno: 74, operation: 'GET_SERVICE', object: 'all services' });
  t.regex(e?.message ?? '', /malformed reply \(bad_value\): service: IPVS_SVC_ATTR_AF 3/);
  c.close();
});

test('a request without an answer fails with ETIMEDOUT after timeoutMs; a late answer is ignored', async (t) => {
  const kernel = new FakeKernel();
  const clock = new FakeClock();
  const c = await open(kernel, { clock, timeoutMs: 5000 });
  kernel.holding = true;
  const p = c.flush();
  await ticks();
  clock.advance(4999);
  let settled = false;
  void p.then(
    () => (settled = true),
    () => (settled = true),
  );
  await ticks();
  t.false(settled, 'still waiting at 4999 ms');
  clock.advance(1);
  const e = await t.throwsAsync(p, { instanceOf: NetlinkError });
  t.like(e, { errno: 110, operation: 'FLUSH', object: 'all services' });
  t.regex(e?.message ?? '', /ETIMEDOUT \(errno 110\): no answer from the kernel within 5000 ms/);
  kernel.release(); // the late ACK matches nothing in flight
  await ticks();
  t.is(clock.pendingCount, 0);
  c.close();
});

test('a dump that times out retires its socket, so the next dump does not meet the kernel\'s EBUSY', async (t) => {
  const kernel = new FakeKernel();
  const clock = new FakeClock();
  const c = await open(kernel, { clock, dumpSockets: 1 });
  let swallow = true;
  kernel.intercept = (sock, m) => {
    if (!swallow || m.payload[0] !== IPVS_CMD.GET_SERVICE) return false;
    sock.dumping = true; // the kernel's dump is stuck mid-way
    return true;
  };
  const p = c.dump();
  await ticks();
  clock.advance(5000);
  await t.throwsAsync(p, { instanceOf: NetlinkError, message: /^GET_SERVICE all services: ETIMEDOUT/ });
  swallow = false;
  t.deepEqual(await c.dump(), { services: [] });
  t.is(kernel.sockets.length, 2);
  t.true(kernel.sockets[0]?.closed);
  t.is(kernel.sockets[1]?.ebusy, 0);
  c.close();
});

test('twos on a kernel before 6.2: ENOENT names the kernel and the version twos needs', async (t) => {
  const kernel = new FakeKernel();
  const c = await open(kernel);
  kernel.intercept = (sock, m) => {
    kernel.ack(sock, m, E.ENOENT);
    return true;
  };
  const [r] = await c.apply([{ op: 'addService', service: { key: svcKey(1), ...ATTRS, scheduler: 'twos' } }]);
  const e = r?.ok === false ? r.error : undefined;
  t.like(e, { errno: 2, operation: 'NEW_SERVICE', object: 'TCP 10.0.0.1:80' });
  t.is(
    e?.message,
    'NEW_SERVICE TCP 10.0.0.1:80: ENOENT (errno 2): scheduler "twos" does not exist on this kernel (Linux 6.1.0-26-amd64): ip_vs_twos arrived in Linux 6.2; choose another scheduler or upgrade the kernel',
  );
  const [other] = await c.apply([{ op: 'addService', service: { key: svcKey(1), ...ATTRS, scheduler: 'nosuch' } }]);
  t.regex(other?.ok === false ? other.error.message : '', /could not load scheduler "nosuch" \(module ip_vs_nosuch\)/);
  c.close();
});

test('close rejects what is in flight with EBADF and every later call', async (t) => {
  const kernel = new FakeKernel();
  const c = await open(kernel);
  kernel.holding = true;
  const p = c.getTimeouts();
  await ticks();
  c.close();
  await t.throwsAsync(p, { instanceOf: NetlinkError, message: /^GET_CONFIG timeouts: EBADF \(errno 9\): the IPVS client was closed/ });
  await t.throwsAsync(c.info(), { instanceOf: NetlinkError, message: /closed/ });
  t.true(kernel.sockets.every((s) => s.closed));
  c.close(); // twice is fine
});

test('a large apply is split into datagrams of at most MAX_BATCH_BYTES, each ending with the one change that asks for an ACK', async (t) => {
  const kernel = new FakeKernel();
  kernel.recvBuffer = 4 << 20; // window 256 (DEFAULT_MAX_IN_FLIGHT): more than 32 KiB of changes may be in flight
  const c = await open(kernel);
  const ops: IpvsOp[] = [{ op: 'addService', service: { key: svcKey(1), ...ATTRS } }];
  for (let i = 1; i <= 400; i++) ops.push({ op: 'addDest', service: svcKey(1), dest: { ...dest(1), address: `10.1.${Math.floor(i / 250)}.${i % 250}` } });
  const sizes: number[] = [];
  const sock = kernel.sockets[0];
  if (sock === undefined) throw new Error('no socket');
  const send = sock.send.bind(sock);
  sock.send = (datagram, done) => {
    sizes.push(datagram.length);
    send(datagram, done);
  };
  const results = await c.apply(ops);
  t.true(results.every((r) => r.ok));
  t.is(kernel.services.get(serviceId({ AF: 2, PROTOCOL: 6, ADDR: Buffer.from('0a000001000000000000000000000000', 'hex'), PORT: 80 }))?.dests.size, 400);
  t.true(sizes.length >= 2, `401 changes of ~160 bytes need more than one 32 KiB datagram (sent ${sizes.join(', ')})`);
  t.true(sizes.every((n) => n <= MAX_BATCH_BYTES));
  const changes = sock.sent.slice(1);
  const acked = changes.filter((m) => (m.flags & NLM_F.ACK) !== 0).length;
  t.is(acked, sizes.length, 'one ACK asked per datagram');
  c.close();
});

test('when a batch gets no answer, every change it carried fails with ETIMEDOUT', async (t) => {
  const kernel = new FakeKernel();
  const clock = new FakeClock();
  const c = await open(kernel, { clock, timeoutMs: 5000 });
  kernel.holding = true;
  const p = c.apply([1, 2, 3].map((i): IpvsOp => ({ op: 'addService', service: { key: svcKey(i), ...ATTRS } })));
  await ticks();
  t.is(clock.pendingCount, 1, 'one timer for the whole batch');
  clock.advance(5000);
  const r = await p;
  t.deepEqual(r.map((x) => (x.ok ? 0 : x.error.errno)), [110, 110, 110]);
  kernel.release();
  await ticks();
  c.close();
});
