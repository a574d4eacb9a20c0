/**
 * NetlinkIpvsClient: the IpvsClient adapter over generic netlink, and the only code in src/ipvs that imports
 * the `netlink` package (RawNetlinkSocket, protocol NETLINK_GENERIC). Everything it sends is built, and
 * everything it receives is decoded, by the pure codecs genl.ts and ipvs-codec.ts.
 *
 * Pipelining: requests are framed with their own sequence numbers and sent without waiting for earlier answers
 * (a window per socket, sized so their answers always fit the socket's receive buffer: see
 * ANSWER_BUDGET_BYTES); answers are matched by sequence number. Batching: consecutive changes are packed into
 * one datagram (up to MAX_BATCH_BYTES), one sendmsg; the kernel runs every message of it in order, and only
 * the last carries NLM_F_ACK. The others are answered only when they fail, so the last one's answer means every
 * earlier change of its batch without an error of its own was applied. A change ends with its ACK or error; a dump collects NLM_F_MULTI parts until NLMSG_DONE. The kernel runs at most one
 * dump per netlink socket (a second one started before the first's DONE is refused with EBUSY, see
 * net/netlink/af_netlink.c __netlink_dump_start), so each socket serializes its dumps, and `dump()` spreads the
 * per-service GET_DEST dumps over `dumpSockets` sockets. Changes all go through the first socket, in order:
 * the kernel applies them in the order they were sent.
 *
 * Failures: every request rejects with NetlinkError(errno, operation, object), e.g. `NEW_DEST`,
 * `TCP 10.0.0.1:80 -> 10.0.0.2:80`. A socket error such as ENOBUFS (answers lost to a full receive buffer; the
 * window prevents it, and netlink 0.3's addon aborts on it rather than reporting it) fails every request in
 * flight on that socket, which is then replaced: the caller (the reconciler) dumps again. A request
 * without an answer within `timeoutMs` fails with ETIMEDOUT. A malformed reply fails with EBADMSG. Invalid
 * input (a negative weight, an unknown protocol) rejects with CodecError before anything is sent.
 */

import { release } from 'node:os';
import { RawNetlinkSocket } from 'netlink';
import { SystemClock } from '../../lib/clock.ts';
import type { Clock, TimerHandle } from '../../lib/clock.ts';
import { messageOf } from '../../lib/errors.ts';
import type { NetlinkError } from '../../lib/errors.ts';
import type { Dest, IpvsClient, IpvsInfo, IpvsOp, IpvsTable, IpvsTimeouts, OpResult, ServiceKey, SyncDaemon } from '../model.ts';
import { ERRNO, IPVS_MODULE_HINT, explainIpvsErrno, ipvsNetlinkError } from './errors.ts';
import { GENL_ID_CTRL, NETLINK_GENERIC, NLM_F, NLMSG, decodeDone, setMsgFlagsAndSeq, decodeFamily, decodeNlError, encodeGetFamily, splitDatagram } from './genl.ts';
import type { Decoded, GenlFamily, NetlinkMessage } from './genl.ts';
import {
  IPVS_GENL_NAME,
  decodeConfigReply,
  decodeDaemonReply,
  decodeDestReply,
  decodeInfoReply,
  decodeServiceReply,
  delDaemonRequest,
  encodeIpvsRequest,
  ipvsRequestSize,
  writeIpvsRequest,
  flushRequest,
  getConfigRequest,
  getDaemonsRequest,
  getDestsRequest,
  getInfoRequest,
  getServicesRequest,
  newDaemonRequest,
  frameOps,
  opCommand,
  opRequest,
  setConfigRequest,
  zeroRequest,
} from './ipvs-codec.ts';
import type { FramedOps, IpvsAnswer, IpvsRequest } from './ipvs-codec.ts';

/**
 * The kernel answers an IPVS request inside the sendmsg call that carries it (genl_rcv runs synchronously), so
 * an answer missing after 5 s was lost, not slow, even under TCG emulation; failing beats hanging the reconciler.
 */
export const DEFAULT_REQUEST_TIMEOUT_MS = 5000;
/**
 * Bytes of requests packed into one datagram. netlink_sendmsg refuses a datagram above the socket's send buffer
 * (default net.core.wmem_default 212992, minus 32) with EMSGSIZE; 32 KiB stays far below it and still carries
 * ~200 NEW_DEST messages per sendmsg.
 */
export const MAX_BATCH_BYTES = 32 * 1024;
/**
 * Upper bound of requests in flight per socket; the socket's receive buffer lowers it (see ANSWER_BUDGET_BYTES).
 * Measured in the VM (TCG) for 2,000 ops: window 8 -> 7.4 s, 64 -> 4.2 s, 512 -> 2.6 s.
 */
export const DEFAULT_MAX_IN_FLIGHT = 256;
/**
 * Answers wait in the socket's receive buffer until read, and one that does not fit is dropped with ENOBUFS,
 * which the `netlink` addon turns into a process abort (seen in the VM: its native recv path throws a C++
 * exception no JS handler can catch). So the window must never let answers outgrow the buffer: each request in
 * flight is budgeted 2 KiB (an ACK's skb truesize is ~768 bytes, an error echoing a 164-byte NEW_DEST ~1.3 KiB),
 * and one dump datagram (at most 32 KiB of data, ~36 KiB truesize) is reserved. With Debian's defaults
 * (net.core.rmem_max 212992, so SO_RCVBUF 425984) the window is 176.
 */
export const ANSWER_BUDGET_BYTES = 2048;
export const DUMP_RESERVE_BYTES = 64 * 1024;
/**
 * Sockets the GET_DEST dumps of dump() are spread over (the kernel runs one dump at a time per socket). Measured
 * in the VM (TCG), 1,000 services with one dest each: 1 socket 3.3-4.0 s, 4 sockets 1.7-2.5 s.
 */
export const DEFAULT_DUMP_SOCKETS = 4;
/** SO_RCVBUF asked for (the kernel caps it at net.core.rmem_max): room for bursts of answers and dump parts. */
export const DEFAULT_RECV_BUFFER_BYTES = 1 << 20;

/** A socket error as the netlink package reports it (positive errno, code such as `ENOBUFS`). */
export interface SocketError extends Error {
  errno?: number;
  code?: string;
}

/** What a transport reports to the client. */
export interface TransportEvents {
  message(datagram: Buffer, truncated: boolean): void;
  error(err: SocketError): void;
}

/** One bound NETLINK_GENERIC socket, as the client uses it. */
export interface NetlinkTransport {
  send(datagram: Buffer, done: (err?: SocketError) => void): void;
  close(): void;
  /** The socket's receive buffer (SO_RCVBUF as the kernel set it), which bounds the answers in flight. */
  recvBufferSize(): number;
}

/** Opens a transport; throws when the socket cannot be created. Tests pass a fake kernel. */
export type TransportFactory = (events: TransportEvents) => NetlinkTransport;

/** A datagram sent or received, for tracing and for recording golden bytes. */
export interface TraceEvent {
  direction: 'send' | 'recv';
  /** Index of the socket (0 carries every change; dest dumps are spread over all). */
  socket: number;
  datagram: Buffer;
}

/** Options of NetlinkIpvsClient.open / createIpvsClient. */
export interface NetlinkIpvsClientOptions {
  /** Per-request answer timeout; default DEFAULT_REQUEST_TIMEOUT_MS. */
  timeoutMs?: number;
  /** Requests in flight per socket at most; default DEFAULT_MAX_IN_FLIGHT, lowered to fit the receive buffer. */
  maxInFlight?: number;
  /** Sockets for the dest dumps of dump(); default DEFAULT_DUMP_SOCKETS. */
  dumpSockets?: number;
  /** Timers for request timeouts; default SystemClock. */
  clock?: Clock;
  /** Socket factory; default rawNetlinkTransport (the netlink package). */
  transport?: TransportFactory;
  /** `uname -r` used in error hints; default os.release(). */
  kernelRelease?: string;
  /** Called with every datagram sent and received. */
  trace?: (event: TraceEvent) => void;
}

/** The real transport: a RawNetlinkSocket with message peeking, so no datagram is truncated. */
export function rawNetlinkTransport(events: TransportEvents): NetlinkTransport {
  // sendBufferSize 0 keeps the default: requests are small and consumed synchronously by the kernel.
  const sock = new RawNetlinkSocket(NETLINK_GENERIC, { messagePeeking: true, recvBufferSize: DEFAULT_RECV_BUFFER_BYTES, sendBufferSize: 0 });
  sock.on('message', (msg) => events.message(msg, false));
  sock.on('truncatedMessage', (msg) => events.message(msg, true));
  sock.on('error', (err) => events.error(err));
  let closed = false;
  return {
    send: (datagram, done) => sock.send(datagram, undefined, (err) => done(err)),
    recvBufferSize: () => sock.getRecvBufferSize(),
    // The client may close a socket from inside its own 'error' or 'message' callback (a socket error, a
    // truncated datagram), and the addon's poll handler goes on with the socket after the callback returns
    // (binding.cc PollHandler: Sendmsg, RunCompleted, watcher->start): close on the next turn instead.
    close: () => {
      if (closed) return;
      closed = true;
      setImmediate(() => sock.close());
    },
  };
}

/**
 * What requests are, as the client needs them: how to frame one and how to explain a refusal. One spec may stand
 * for many jobs (all the ops of an apply()), each job naming its request by index.
 */
interface JobSpec {
  readonly answer: IpvsAnswer;
  /** nlmsg_type of the data messages that answer it (the family id). */
  readonly msgType: number;
  /** True when its requests may travel in a batch (IPVS changes): then size and writeInto work. */
  readonly batchable: boolean;
  /** The command, for errors. */
  operation(index: number): string;
  /** What the request is about, for errors. */
  object(index: number): string;
  /** Bytes of the framed request (aligned). */
  size(index: number): number;
  /** Frames the request into zeroed `out` at `off` with these nlmsg_flags; returns the end offset. */
  writeInto(index: number, out: Buffer, off: number, seq: number, flags: number): number;
  encode(index: number, seq: number): Buffer;
  explain(index: number, errno: number): string | undefined;
}

/**
 * One request in the client's hands, from queue to answer. A class with every field set in the constructor:
 * thousands are made when a table is programmed cold, and object spreads or per-request closures cost more
 * than the request's encoding (measured).
 */
class Job {
  readonly answer: IpvsAnswer;
  readonly msgType: number;
  seq = 0;
  /** Data messages received (replies and dump parts); made on the first. */
  parts: NetlinkMessage[] | undefined = undefined;
  timer: TimerHandle | undefined = undefined;
  conn: Conn | undefined = undefined;
  /** On the last change of a batch (the one sent with NLM_F_ACK): the earlier changes its answer settles. */
  covers: Job[] | undefined = undefined;

  constructor(
    readonly spec: JobSpec,
    /** Told once how the job ended. */
    private readonly sink: JobSink,
    /** The job's request within its spec, and its place among its sink's jobs (apply's op index). */
    readonly index: number,
  ) {
    this.answer = spec.answer;
    this.msgType = spec.msgType;
  }

  get operation(): string {
    return this.spec.operation(this.index);
  }

  get object(): string {
    return this.spec.object(this.index);
  }

  get batchable(): boolean {
    return this.spec.batchable;
  }

  get size(): number {
    return this.spec.size(this.index);
  }

  writeInto(out: Buffer, off: number, seq: number, flags: number): number {
    return this.spec.writeInto(this.index, out, off, seq, flags);
  }

  encode(seq: number): Buffer {
    return this.spec.encode(this.index, seq);
  }

  explain(errno: number): string | undefined {
    return this.spec.explain(this.index, errno);
  }

  resolve(): void {
    this.sink.settled(this, undefined);
  }

  reject(e: NetlinkError): void {
    this.sink.settled(this, e);
  }
}

/** Where a job's outcome goes: one promise per request, or one collector for a whole apply(). */
interface JobSink {
  settled(job: Job, error: NetlinkError | undefined): void;
}

/** A single request's promise. */
class PromiseSink implements JobSink {
  constructor(
    private readonly resolve: (parts: NetlinkMessage[]) => void,
    private readonly reject: (e: NetlinkError) => void,
  ) {}

  settled(job: Job, error: NetlinkError | undefined): void {
    if (error === undefined) this.resolve(job.parts ?? []);
    else this.reject(error);
  }
}

/** The outcome of every op of one apply(), in op order; resolves when the last is known. */
class ApplySink implements JobSink {
  readonly results: OpResult[];
  private pending: number;

  constructor(
    count: number,
    private readonly resolve: (results: OpResult[]) => void,
  ) {
    this.results = new Array<OpResult>(count);
    this.pending = count;
    if (count === 0) resolve(this.results);
  }

  settled(job: Job, error: NetlinkError | undefined): void {
    this.results[job.index] = error === undefined ? { ok: true } : { ok: false, error };
    if (--this.pending === 0) this.resolve(this.results);
  }
}

/** One IPVS request (index 0) as a JobSpec. */
class IpvsJobSpec implements JobSpec {
  readonly answer: IpvsAnswer;
  readonly batchable: boolean;

  constructor(
    private readonly req: IpvsRequest,
    readonly msgType: number,
    private readonly kernelRelease: string,
  ) {
    this.answer = req.answer;
    this.batchable = req.answer === 'ack';
  }

  operation(): string {
    return this.req.cmd;
  }

  object(): string {
    return this.req.object;
  }

  size(): number {
    return ipvsRequestSize(this.req);
  }

  writeInto(_index: number, out: Buffer, off: number, seq: number, flags: number): number {
    return writeIpvsRequest(out, off, this.req, this.msgType, seq, flags);
  }

  encode(_index: number, seq: number): Buffer {
    return encodeIpvsRequest(this.req, this.msgType, seq);
  }

  explain(_index: number, errno: number): string | undefined {
    return explainIpvsErrno(this.req.cmd, this.req.context, errno, this.kernelRelease);
  }
}

/**
 * The ops of one apply(), pre-framed back to back in one FramedOps buffer; job i is op i. An op's name, object
 * and error context are worked out from the op only when the kernel refuses it.
 */
class FramedOpsSpec implements JobSpec {
  readonly answer = 'ack';
  readonly batchable = true;

  constructor(
    private readonly framed: FramedOps,
    private readonly ops: readonly IpvsOp[],
    readonly msgType: number,
    private readonly kernelRelease: string,
  ) {}

  operation(i: number): string {
    return opCommand(this.ops[i] as IpvsOp);
  }

  object(i: number): string {
    return opRequest(this.ops[i] as IpvsOp).object;
  }

  size(i: number): number {
    return this.end(i) - this.start(i);
  }

  private start(i: number): number {
    return i === 0 ? 0 : (this.framed.ends[i - 1] as number);
  }

  private end(i: number): number {
    return this.framed.ends[i] as number;
  }

  writeInto(i: number, out: Buffer, off: number, seq: number, flags: number): number {
    const n = this.framed.bytes.copy(out, off, this.start(i), this.end(i));
    setMsgFlagsAndSeq(out, off, flags, seq);
    return off + n;
  }

  encode(i: number, seq: number): Buffer {
    const out = Buffer.alloc(this.size(i));
    this.writeInto(i, out, 0, seq, NLM_F.REQUEST | NLM_F.ACK);
    return out;
  }

  explain(i: number, errno: number): string | undefined {
    const op = this.ops[i] as IpvsOp;
    return explainIpvsErrno(opCommand(op), opRequest(op).context, errno, this.kernelRelease);
  }
}

/** CTRL_CMD_GETFAMILY for the IPVS family (index 0). */
class FamilyLookupSpec implements JobSpec {
  readonly answer = 'reply';
  readonly msgType = GENL_ID_CTRL;
  readonly batchable = false;

  constructor(private readonly what: string) {}

  operation(): string {
    return 'CTRL_CMD_GETFAMILY';
  }

  object(): string {
    return this.what;
  }

  size(): number {
    return this.encode(0, 0).length;
  }

  writeInto(_index: number, out: Buffer, off: number, seq: number, flags: number): number {
    const n = this.encode(0, seq).copy(out, off);
    setMsgFlagsAndSeq(out, off, flags, seq);
    return off + n;
  }

  encode(_index: number, seq: number): Buffer {
    return encodeGetFamily(IPVS_GENL_NAME, seq);
  }

  explain(_index: number, errno: number): string | undefined {
    return errno === ERRNO.ENOENT ? IPVS_MODULE_HINT : undefined;
  }
}

/** What the client's channels share. */
interface ChannelEnv {
  readonly factory: TransportFactory;
  readonly clock: Clock;
  readonly timeoutMs: number;
  readonly maxInFlight: number;
  readonly nextSeq: () => number;
  readonly trace: ((event: TraceEvent) => void) | undefined;
}

/** One open socket and the requests in flight on it. */
class Conn {
  readonly inFlight = new Map<number, Job>();
  /** Requests allowed in flight: maxInFlight, lowered so their answers fit the receive buffer. */
  window = 1;
  /** A dump is in flight (the kernel refuses a second one on this socket). */
  dumping = false;
  /** No new requests: closed once its in-flight requests are answered. */
  retired = false;
  closed = false;
  transport: NetlinkTransport | undefined;
}

/** A logical socket: a FIFO of requests, sent over a Conn that is replaced when it breaks. */
class Channel {
  private conn: Conn | undefined;
  private readonly queue: Job[] = [];
  private closedBy: ((job: Job) => NetlinkError) | undefined;
  private pumpScheduled = false;

  constructor(
    private readonly env: ChannelEnv,
    private readonly index: number,
  ) {}

  /** Requests queued or in flight here. */
  get load(): number {
    return this.queue.length + (this.conn?.inFlight.size ?? 0);
  }

  submit(job: Job): void {
    if (this.closedBy !== undefined) {
      job.reject(this.closedBy(job));
      return;
    }
    this.queue.push(job);
    // Send on the next microtask, not now: changes submitted in the same turn (apply() submits all of its ops
    // synchronously) then leave together in one batch.
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    queueMicrotask(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** Fails everything queued and in flight with `error(job)` and closes the socket; later submits fail too. */
  close(error: (job: Job) => NetlinkError): void {
    this.closedBy = error;
    for (const job of this.queue.splice(0)) job.reject(error(job));
    if (this.conn !== undefined) this.failConn(this.conn, error);
  }

  /** Sends queued requests while the window (and, for dumps, the socket's dump slot) allows. */
  private pump(): void {
    while (this.queue.length > 0 && this.closedBy === undefined) {
      const job = this.queue[0];
      if (job === undefined) return;
      let conn: Conn;
      try {
        conn = this.current();
      } catch (e) {
        this.queue.shift();
        const errno = socketErrno(e);
        job.reject(ipvsNetlinkError(errno, job.operation, job.object, `cannot open a generic netlink socket: ${messageOf(e)}`, e));
        continue;
      }
      if (conn.inFlight.size >= conn.window) return;
      if (job.answer === 'dump' && conn.dumping) return;
      if (job.answer === 'ack' && job.batchable) {
        this.transmitBatch(conn, this.takeBatch(conn.window - conn.inFlight.size));
        continue;
      }
      this.queue.shift();
      this.transmit(conn, job);
    }
  }

  /** Takes up to `room` consecutive batchable changes (answer 'ack', with writeInto) from the head of the queue. */
  private takeBatch(room: number): Job[] {
    let n = 0;
    for (let job = this.queue[n]; n < room && job !== undefined && job.answer === 'ack' && job.batchable; job = this.queue[++n]);
    return this.queue.splice(0, n);
  }

  /**
   * Sends changes packed into datagrams of at most MAX_BATCH_BYTES, each acknowledged by its last message
   * (see the module header). Each datagram is one allocation the requests are written into.
   */
  private transmitBatch(conn: Conn, jobs: readonly Job[]): void {
    let first = 0;
    while (first < jobs.length) {
      let end = first;
      let bytes = 0;
      while (end < jobs.length) {
        const size = (jobs[end] as Job).size;
        if (end > first && bytes + size > MAX_BATCH_BYTES) break;
        bytes += size;
        end++;
      }
      const datagram = Buffer.alloc(bytes);
      let off = 0;
      for (let i = first; i < end; i++) {
        const job = jobs[i] as Job;
        job.seq = this.env.nextSeq();
        job.conn = conn;
        conn.inFlight.set(job.seq, job);
        off = job.writeInto(datagram, off, job.seq, i === end - 1 ? NLM_F.REQUEST | NLM_F.ACK : NLM_F.REQUEST);
      }
      const leader = jobs[end - 1] as Job;
      leader.covers = end - first > 1 ? jobs.slice(first, end - 1) : undefined;
      this.sendBatch(conn, leader, datagram);
      first = end;
    }
  }

  private sendBatch(conn: Conn, leader: Job, datagram: Buffer): void {
    this.arm(leader);
    this.env.trace?.({ direction: 'send', socket: this.index, datagram });
    conn.transport?.send(datagram, (err) => {
      if (err !== undefined && err !== null && conn.inFlight.get(leader.seq) === leader) {
        const failed = (j: Job): NetlinkError => ipvsNetlinkError(socketErrno(err), j.operation, j.object, `sendmsg failed: ${err.message}`, err);
        this.settleCovered(leader, failed);
        this.settle(leader, failed(leader));
      }
    });
  }

  private current(): Conn {
    if (this.conn !== undefined && !this.conn.retired && !this.conn.closed) return this.conn;
    const conn = new Conn();
    const transport = this.env.factory({
      message: (datagram, truncated) => this.onDatagram(conn, datagram, truncated),
      error: (err) => this.onSocketError(conn, err),
    });
    conn.transport = transport;
    conn.window = Math.max(1, Math.min(this.env.maxInFlight, Math.floor((transport.recvBufferSize() - DUMP_RESERVE_BYTES) / ANSWER_BUDGET_BYTES)));
    this.conn = conn;
    return conn;
  }

  private transmit(conn: Conn, job: Job): void {
    const seq = this.env.nextSeq();
    job.seq = seq;
    job.conn = conn;
    const datagram = job.encode(seq);
    conn.inFlight.set(seq, job);
    if (job.answer === 'dump') conn.dumping = true;
    this.arm(job);
    this.env.trace?.({ direction: 'send', socket: this.index, datagram });
    conn.transport?.send(datagram, (err) => {
      if (err !== undefined && err !== null && conn.inFlight.get(seq) === job) {
        this.settle(job, ipvsNetlinkError(socketErrno(err), job.operation, job.object, `sendmsg failed: ${err.message}`, err));
      }
    });
  }

  private arm(job: Job): void {
    if (job.timer !== undefined) this.env.clock.clearTimer(job.timer);
    job.timer = this.env.clock.setTimer(this.env.timeoutMs, () => {
      job.timer = undefined;
      if (job.conn?.inFlight.get(job.seq) !== job) return;
      const timedOut = (j: Job): NetlinkError => ipvsNetlinkError(ERRNO.ETIMEDOUT, j.operation, j.object, `no answer from the kernel within ${this.env.timeoutMs} ms`);
      this.settleCovered(job, timedOut);
      this.settle(job, timedOut(job));
    });
  }

  private onDatagram(conn: Conn, datagram: Buffer, truncated: boolean): void {
    if (conn.closed) return;
    this.env.trace?.({ direction: 'recv', socket: this.index, datagram });
    if (truncated) {
      this.failConn(conn, (job) => ipvsNetlinkError(ERRNO.EMSGSIZE, job.operation, job.object, `a ${datagram.length}-byte reply was truncated; answers on this socket were lost`));
      return;
    }
    const msgs = splitDatagram(datagram);
    if (!msgs.ok) {
      this.failConn(conn, (job) => ipvsNetlinkError(ERRNO.EBADMSG, job.operation, job.object, `malformed datagram from the kernel (${msgs.reason}): ${msgs.detail}`));
      return;
    }
    for (const msg of msgs.value) {
      const job = conn.inFlight.get(msg.seq);
      if (job !== undefined) this.onMessage(conn, job, msg);
    }
  }

  private onMessage(conn: Conn, job: Job, msg: NetlinkMessage): void {
    switch (msg.type) {
      case NLMSG.NOOP:
        return;
      case NLMSG.OVERRUN:
        this.failConn(conn, (j) => ipvsNetlinkError(ERRNO.ENOBUFS, j.operation, j.object, LOST_ANSWERS_HINT));
        return;
      case NLMSG.ERROR: {
        // The kernel got as far as this message: the earlier changes of its batch without an error were applied.
        this.settleCovered(job, undefined);
        const e = decodeNlError(msg.payload);
        if (!e.ok) this.settle(job, ipvsNetlinkError(ERRNO.EBADMSG, job.operation, job.object, `malformed NLMSG_ERROR: ${e.detail}`));
        else if (e.value.errno === 0) this.settle(job, undefined);
        else this.settle(job, ipvsNetlinkError(e.value.errno, job.operation, job.object, job.explain(e.value.errno)));
        return;
      }
      case NLMSG.DONE: {
        const d = decodeDone(msg.payload);
        if (!d.ok) this.settle(job, ipvsNetlinkError(ERRNO.EBADMSG, job.operation, job.object, `malformed NLMSG_DONE: ${d.detail}`));
        else if (d.value !== 0) this.settle(job, ipvsNetlinkError(d.value, job.operation, job.object, job.explain(d.value)));
        else this.settle(job, undefined);
        return;
      }
      default:
        if (msg.type !== job.msgType) {
          this.settle(job, ipvsNetlinkError(ERRNO.EBADMSG, job.operation, job.object, `unexpected message type ${msg.type} (expected ${job.msgType})`));
          return;
        }
        (job.parts ??= []).push(msg);
        if (job.answer === 'reply') this.settle(job, undefined);
        else if (job.answer === 'dump') this.arm(job); // a long dump is alive while parts keep coming
    }
  }

  /** Settles the changes a batch's last message covers and that are still waiting (no error of their own). */
  private settleCovered(job: Job, error: ((j: Job) => NetlinkError) | undefined): void {
    const covered = job.covers;
    if (covered === undefined) return;
    job.covers = undefined;
    for (const c of covered) {
      if (c.conn?.inFlight.get(c.seq) === c) this.settle(c, error?.(c), false);
    }
  }

  /**
   * Ends a job. A dump that ends before its NLMSG_DONE (timeout, malformed part) may still be running in the
   * kernel, which would refuse the next dump on that socket: the socket is retired and replaced.
   */
  private settle(job: Job, error: NetlinkError | undefined, pump = true): void {
    const conn = job.conn;
    if (job.timer !== undefined) this.env.clock.clearTimer(job.timer);
    job.timer = undefined;
    if (conn !== undefined) {
      conn.inFlight.delete(job.seq);
      if (job.answer === 'dump') {
        conn.dumping = false;
        if (error !== undefined && error.errno !== ERRNO.EBUSY) this.retire(conn);
      }
      if (conn.retired && conn.inFlight.size === 0) this.closeConn(conn);
    }
    if (error === undefined) job.resolve();
    else job.reject(error);
    if (pump) this.pump();
  }

  private retire(conn: Conn): void {
    conn.retired = true;
    if (this.conn === conn) this.conn = undefined;
  }

  private closeConn(conn: Conn): void {
    this.retire(conn);
    if (conn.closed) return;
    conn.closed = true;
    try {
      conn.transport?.close();
    } catch {
      // already closed by the native layer after a poll error
    }
  }

  /** Fails every request in flight on `conn` and closes it; queued requests go to a new socket. */
  private failConn(conn: Conn, error: (job: Job) => NetlinkError): void {
    this.closeConn(conn);
    const jobs = [...conn.inFlight.values()];
    conn.inFlight.clear();
    conn.dumping = false;
    for (const job of jobs) {
      if (job.timer !== undefined) this.env.clock.clearTimer(job.timer);
      job.timer = undefined;
      job.reject(error(job));
    }
    this.pump();
  }

  private onSocketError(conn: Conn, err: SocketError): void {
    const errno = socketErrno(err);
    const hint = errno === ERRNO.ENOBUFS ? LOST_ANSWERS_HINT : `netlink socket error: ${err.message}`;
    this.failConn(conn, (job) => ipvsNetlinkError(errno, job.operation, job.object, hint, err));
  }
}

const LOST_ANSWERS_HINT =
  "the netlink socket's receive buffer overflowed and the kernel dropped answers: this request may or may not have been applied; dump the tables again";

/** The positive errno of a socket error (the netlink package sets `errno` and `code`). */
function socketErrno(e: unknown): number {
  if (typeof e === 'object' && e !== null) {
    const { errno, code } = e as SocketError;
    if (typeof errno === 'number' && errno !== 0) return Math.abs(errno);
    if (typeof code === 'string' && code in ERRNO) return ERRNO[code as keyof typeof ERRNO];
  }
  return ERRNO.EBADF;
}

/** The kernel's IPVS over generic netlink. Create with `NetlinkIpvsClient.open()` (or createIpvsClient). */
export class NetlinkIpvsClient implements IpvsClient {
  private closed = false;

  private constructor(
    private readonly channels: readonly [Channel, ...Channel[]],
    /** The resolved "IPVS" family (id, version, maxattr). */
    readonly family: GenlFamily,
    private readonly kernelRelease: string,
  ) {}

  /**
   * Opens the sockets and resolves the "IPVS" family. Rejects with NetlinkError: ENOENT from the family lookup
   * means the ip_vs module is not loaded (the message says to run `modprobe ip_vs`).
   */
  static async open(options: NetlinkIpvsClientOptions = {}): Promise<NetlinkIpvsClient> {
    let seq = 0;
    const env: ChannelEnv = {
      factory: options.transport ?? rawNetlinkTransport,
      clock: options.clock ?? new SystemClock(),
      timeoutMs: positive(options.timeoutMs, DEFAULT_REQUEST_TIMEOUT_MS, 'timeoutMs'),
      maxInFlight: positive(options.maxInFlight, DEFAULT_MAX_IN_FLIGHT, 'maxInFlight'),
      nextSeq: () => (seq = seq >= 0xffffffff ? 1 : seq + 1),
      trace: options.trace,
    };
    const n = positive(options.dumpSockets, DEFAULT_DUMP_SOCKETS, 'dumpSockets');
    const channels: [Channel, ...Channel[]] = [new Channel(env, 0)];
    for (let i = 1; i < n; i++) channels.push(new Channel(env, i));
    const kernelRelease = options.kernelRelease ?? release();
    const object = `family "${IPVS_GENL_NAME}"`;
    try {
      const parts = await submit(channels[0], new FamilyLookupSpec(object));
      const family = decodeOne(parts, decodeFamily, 'CTRL_CMD_GETFAMILY', object);
      return new NetlinkIpvsClient(channels, family, kernelRelease);
    } catch (e) {
      for (const ch of channels) ch.close((job) => ipvsNetlinkError(ERRNO.EBADF, job.operation, job.object, 'the IPVS client failed to open'));
      throw e;
    }
  }

  /** IPVS version and connection table size (GET_INFO). */
  async info(): Promise<IpvsInfo> {
    const req = getInfoRequest();
    return decodeOne(await this.run(req), decodeInfoReply, req.cmd, req.object);
  }

  /** Every service (one GET_SERVICE dump) with its dests (GET_DEST dumps, pipelined over the dump sockets). */
  async dump(): Promise<IpvsTable> {
    const req = getServicesRequest();
    const services = decodeAll(await this.run(req), decodeServiceReply, req.cmd, req.object);
    await Promise.all(
      services.map(async (svc) => {
        svc.dests = await this.listDests(svc.key);
      }),
    );
    return { services };
  }

  /** The dests of one service (GET_DEST dump); empty when the service does not exist. */
  async listDests(service: ServiceKey): Promise<Dest[]> {
    const req = getDestsRequest(service);
    const parts = await this.run(req, this.leastLoaded());
    return decodeAll(parts, (p) => decodeDestReply(p, service.family), req.cmd, req.object);
  }

  /**
   * Sends every op at once over one socket (the kernel applies them in order) and reports each op's outcome in
   * op order. Rejects with CodecError, before sending anything, when an op cannot be encoded.
   */
  async apply(ops: readonly IpvsOp[]): Promise<OpResult[]> {
    const framed = frameOps(ops, this.family.id);
    // One collector for all ops rather than a promise each, and the ops framed in one buffer: a cold table is
    // thousands of ops, and per-op objects that live until the answers come are what the GC pays for.
    return new Promise((resolve) => {
      const sink = new ApplySink(ops.length, resolve);
      const channel = this.channels[0];
      const spec = new FramedOpsSpec(framed, ops, this.family.id, this.kernelRelease);
      for (let i = 0; i < ops.length; i++) channel.submit(new Job(spec, sink, i));
    });
  }

  /** TCP / TCP_FIN / UDP connection timeouts (GET_CONFIG). */
  async getTimeouts(): Promise<IpvsTimeouts> {
    const req = getConfigRequest();
    return decodeOne(await this.run(req), decodeConfigReply, req.cmd, req.object);
  }

  /** Sets connection timeouts; 0 leaves one unchanged (SET_CONFIG). */
  async setTimeouts(t: IpvsTimeouts): Promise<void> {
    await this.run(setConfigRequest(t));
  }

  /** Zeroes the counters of one service and its dests, or of everything (ZERO). */
  async zero(service?: ServiceKey): Promise<void> {
    await this.run(zeroRequest(service));
  }

  /** Deletes every service (FLUSH). */
  async flush(): Promise<void> {
    await this.run(flushRequest());
  }

  /** Starts a kernel sync daemon (NEW_DAEMON). */
  async startDaemon(d: SyncDaemon): Promise<void> {
    await this.run(newDaemonRequest(d));
  }

  /** Stops the kernel sync daemon of that state (DEL_DAEMON). */
  async stopDaemon(state: 'master' | 'backup'): Promise<void> {
    await this.run(delDaemonRequest(state));
  }

  /** The running sync daemons, master first (GET_DAEMON dump), with the kernel's effective values. */
  async listDaemons(): Promise<SyncDaemon[]> {
    const req = getDaemonsRequest();
    return decodeAll(await this.run(req), decodeDaemonReply, req.cmd, req.object);
  }

  /** Closes every socket; requests still queued or in flight reject with NetlinkError EBADF. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const ch of this.channels) ch.close((job) => ipvsNetlinkError(ERRNO.EBADF, job.operation, job.object, 'the IPVS client was closed'));
  }

  private leastLoaded(): Channel {
    let best = this.channels[0];
    for (const ch of this.channels) if (ch.load < best.load) best = ch;
    return best;
  }

  private run(req: IpvsRequest, channel: Channel = this.channels[0]): Promise<NetlinkMessage[]> {
    return submit(channel, new IpvsJobSpec(req, this.family.id, this.kernelRelease));
  }
}

function submit(channel: Channel, spec: JobSpec): Promise<NetlinkMessage[]> {
  return new Promise((resolve, reject) => {
    channel.submit(new Job(spec, new PromiseSink(resolve, reject), 0));
  });
}

/** Decodes every data message; a malformed one fails the whole answer with EBADMSG. */
function decodeAll<T>(parts: readonly NetlinkMessage[], decode: (payload: Buffer) => Decoded<T>, operation: string, object: string): T[] {
  return parts.map((m) => {
    const d = decode(m.payload);
    if (!d.ok) throw ipvsNetlinkError(ERRNO.EBADMSG, operation, object, `malformed reply (${d.reason}): ${d.detail}`);
    return d.value;
  });
}

/** Decodes the single data message of a reply. */
function decodeOne<T>(parts: readonly NetlinkMessage[], decode: (payload: Buffer) => Decoded<T>, operation: string, object: string): T {
  const [first] = decodeAll(parts.slice(0, 1), decode, operation, object);
  if (first === undefined) throw ipvsNetlinkError(ERRNO.EBADMSG, operation, object, 'the kernel answered without a reply message');
  return first;
}

function positive(v: number | undefined, fallback: number, name: string): number {
  if (v === undefined) return fallback;
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`NetlinkIpvsClient: ${name} must be a positive integer, got ${v}`);
  return v;
}
