/**
 * What every stream checker (tcp, http, https, smtp, agent) shares: one connection with a connect timeout, an
 * idle (read) timeout and an overall deadline, abort support, errno -> CheckReason classification and a single
 * settle, so a checker is only a small protocol state machine fed the bytes it receives.
 *
 * This is adapter code: it uses node:net/node:tls and node's timers directly (the deadlines of one attempt are
 * I/O timeouts, not decisions; the scheduler above decides when attempts happen, on the injected Clock).
 */

import net from 'node:net';
import tls from 'node:tls';
import { messageOf } from '../../lib/errors.ts';
import type { CheckReason, CheckResult, CheckTarget } from '../types.ts';

/** What a checker decided: a CheckResult without its duration (the runner measures it). */
export interface Outcome {
  ok: boolean;
  reason: CheckReason;
  detail: string;
  weight?: number;
  load?: number;
}

/** A successful outcome. */
export function pass(detail: string, extra: { weight?: number; load?: number } = {}): Outcome {
  const o: Outcome = { ok: true, reason: 'ok', detail };
  if (extra.weight !== undefined) o.weight = extra.weight;
  if (extra.load !== undefined) o.load = extra.load;
  return o;
}

/** A failed outcome. */
export function failure(reason: Exclude<CheckReason, 'ok'>, detail: string): Outcome {
  return { ok: false, reason, detail };
}

/** Adds the duration measured since `startedMs` (performance.now) to an outcome. */
export function finishResult(o: Outcome, startedMs: number): CheckResult {
  const r: CheckResult = { ok: o.ok, reason: o.reason, detail: o.detail, durationMs: Math.round((performance.now() - startedMs) * 1000) / 1000 };
  if (o.weight !== undefined) r.weight = o.weight;
  if (o.load !== undefined) r.load = o.load;
  return r;
}

/** Longest text of untrusted origin (server replies, script output) kept in a detail. */
export const MAX_DETAIL_CHARS = 200;

/**
 * Untrusted bytes or text made safe for a detail: control and non-ASCII characters become `.`, and the text
 * is cut at MAX_DETAIL_CHARS (a reply must not be able to forge log lines or grow them without bound).
 */
export function sanitize(input: string | Uint8Array, max = MAX_DETAIL_CHARS): string {
  const s = typeof input === 'string' ? input : Buffer.from(input.buffer, input.byteOffset, Math.min(input.byteLength, max + 1)).toString('latin1');
  const cut = s.length > max ? s.slice(0, max) : s;
  // eslint-disable-next-line no-control-regex
  const clean = cut.replace(/[^\x20-\x7e]/g, '.');
  return s.length > max ? `${clean}...` : clean;
}

const REFUSED = new Set(['ECONNREFUSED']);
const RESET = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);
const UNREACHABLE = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'EADDRNOTAVAIL']);
const TIMEDOUT = new Set(['ETIMEDOUT']);

/** The errno-style code of a thrown or emitted error, if it has one. */
export function errorCode(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Maps a socket error to a reason. During a TLS handshake (`tlsPhase`), anything that is not a plain
 * transport errno is a TLS failure (certificate verification, protocol version, a peer that is not TLS).
 */
export function classifyError(e: unknown, tlsPhase = false): Outcome {
  const code = errorCode(e);
  const detail = sanitize(code !== undefined && !messageOf(e).includes(code) ? `${code}: ${messageOf(e)}` : messageOf(e));
  if (code !== undefined) {
    if (REFUSED.has(code)) return failure('refused', detail);
    if (RESET.has(code)) return failure(tlsPhase ? 'tls' : 'reset', detail);
    if (UNREACHABLE.has(code)) return failure('unreachable', detail);
    if (TIMEDOUT.has(code)) return failure('timeout', detail);
  }
  if (tlsPhase || (code !== undefined && /^(ERR_TLS|ERR_SSL|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|HOSTNAME_MISMATCH)/.test(code))) {
    return failure('tls', detail);
  }
  return failure('error', detail);
}

/** Timeouts of one stream attempt. */
export interface StreamTimeouts {
  /** Deadline of the TCP handshake. */
  connectTimeoutMs: number;
  /** Longest silence once connected (reset by every read and write). */
  readTimeoutMs: number;
  /** Deadline of the whole attempt. */
  timeoutMs: number;
}

/** What a protocol handler can do with its connection. */
export interface StreamIo {
  /** Writes bytes; `then` runs once they are handed to the kernel. */
  write(data: string | Uint8Array, then?: () => void): void;
  /** Ends the attempt with `o` (later calls are ignored). */
  finish(o: Outcome): void;
}

/** A protocol on top of one connection: each callback may call `io.finish` or return an outcome to end. */
export interface StreamHandler {
  /** Connected (after the TLS handshake for TLS). */
  onConnect(io: StreamIo): Outcome | undefined;
  /** Bytes arrived. */
  onData(chunk: Buffer, io: StreamIo): Outcome | undefined;
  /** The peer closed its side (FIN) before the handler finished. */
  onEnd(io: StreamIo): Outcome;
}

/** TLS options of a stream attempt. */
export interface StreamTls {
  servername?: string;
  verify: boolean;
  ca?: string;
}

/**
 * Runs one connection: connect (optionally from `target.bindTo`, optionally TLS), then hands events to
 * `handler` until it finishes, the peer misbehaves or a deadline passes. Never rejects. The socket is always
 * destroyed before the promise resolves, so an attempt holds no file descriptor once it has reported.
 */
export function runStream(target: CheckTarget, timeouts: StreamTimeouts, signal: AbortSignal, handler: StreamHandler, tlsOpts?: StreamTls): Promise<CheckResult> {
  const started = performance.now();
  return new Promise<CheckResult>((resolve) => {
    if (signal.aborted) {
      resolve(finishResult(failure('error', 'aborted before start'), started));
      return;
    }
    let done = false;
    let connected = false;
    let secured = tlsOpts === undefined;
    let socket: net.Socket | undefined;
    let connectTimer: NodeJS.Timeout | undefined;

    const finish = (o: Outcome): void => {
      if (done) return;
      done = true;
      clearTimeout(overall);
      if (connectTimer !== undefined) clearTimeout(connectTimer);
      signal.removeEventListener('abort', onAbort);
      close();
      resolve(finishResult(o, started));
    };
    // Close with RST (SO_LINGER 0), as HAProxy does for its checks: the attempt is over, and a director
    // checking thousands of servers a second would otherwise keep one TIME_WAIT socket per check for 60 s
    // (beyond net.ipv4.tcp_max_tw_buckets, and slowing every connect's port search). TLS sockets cannot
    // reset through node's API and close normally.
    const close = (): void => {
      if (socket === undefined || socket.destroyed) return;
      if (connected && tlsOpts === undefined) {
        try {
          socket.resetAndDestroy();
          return;
        } catch {
          // not a TCP handle any more: fall through to a normal close
        }
      }
      socket.destroy();
    };
    const io: StreamIo = {
      write(data, then) {
        if (done || socket === undefined) return;
        socket.write(data, (e) => {
          if (e === undefined || e === null) then?.();
        });
      },
      finish,
    };
    const step = (o: Outcome | undefined): void => {
      if (o !== undefined) finish(o);
    };
    const onAbort = (): void => finish(failure('error', 'aborted'));
    const overall = setTimeout(() => {
      finish(failure('timeout', connected ? `no complete reply within ${timeouts.timeoutMs} ms` : `no connection within ${timeouts.timeoutMs} ms`));
    }, timeouts.timeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });

    try {
      // No TCP_NODELAY: a check writes one request and waits, and Nagle never holds back a first segment;
      // the setsockopt would be one more syscall per check.
      const base: net.TcpNetConnectOpts = { host: target.address, port: target.port };
      if (target.bindTo !== undefined) base.localAddress = target.bindTo;
      if (tlsOpts === undefined) {
        socket = net.connect(base);
      } else {
        const t: tls.ConnectionOptions = { ...base, rejectUnauthorized: tlsOpts.verify };
        if (tlsOpts.servername !== undefined) t.servername = tlsOpts.servername;
        if (tlsOpts.ca !== undefined) t.ca = tlsOpts.ca;
        socket = tls.connect(t);
      }
    } catch (e) {
      finish(classifyError(e));
      return;
    }
    const s = socket;
    if (timeouts.connectTimeoutMs < timeouts.timeoutMs) {
      connectTimer = setTimeout(() => {
        if (!connected) finish(failure('timeout', `connect timed out after ${timeouts.connectTimeoutMs} ms`));
      }, timeouts.connectTimeoutMs);
    }
    s.once('connect', () => {
      connected = true;
      if (connectTimer !== undefined) clearTimeout(connectTimer);
      if (secured) step(handler.onConnect(io));
      // The idle timer only for attempts that go on reading (a TCP check is over at this point), and only when
      // it can fire before the overall deadline: armed after the connect, a silence of readTimeoutMs >= timeoutMs
      // can never end the attempt first (and node refreshes a socket timer on every read and write).
      if (!done && timeouts.readTimeoutMs < timeouts.timeoutMs) s.setTimeout(timeouts.readTimeoutMs);
    });
    if (tlsOpts !== undefined) {
      s.once('secureConnect', () => {
        secured = true;
        step(handler.onConnect(io));
      });
    }
    s.on('timeout', () => finish(failure('timeout', `silent for ${timeouts.readTimeoutMs} ms`)));
    s.on('data', (chunk: Buffer) => {
      if (!done) step(handler.onData(chunk, io));
    });
    s.on('end', () => {
      if (done) return;
      finish(secured ? handler.onEnd(io) : failure('tls', 'connection closed during the TLS handshake'));
    });
    s.on('error', (e) => finish(classifyError(e, !secured && connected)));
    s.on('close', () => finish(failure('reset', 'connection closed')));
  });
}

/**
 * Splits a byte stream into lines (LF, an optional CR before it is dropped) with a bound on each line, so a
 * peer that never sends a newline costs at most `maxLineBytes` of memory.
 */
export class LineReader {
  private partial: Buffer | undefined;

  constructor(private readonly maxLineBytes: number) {}

  /**
   * Feeds bytes; returns the complete lines (latin1), or `too_large` when a line exceeds the bound. Bytes
   * after the last newline are kept for the next call.
   */
  push(chunk: Buffer): { lines: string[] } | { tooLarge: true } {
    const lines: string[] = [];
    let data = this.partial === undefined ? chunk : Buffer.concat([this.partial, chunk]);
    this.partial = undefined;
    for (;;) {
      const nl = data.indexOf(0x0a);
      if (nl < 0) break;
      if (nl > this.maxLineBytes) return { tooLarge: true };
      const end = nl > 0 && data[nl - 1] === 0x0d ? nl - 1 : nl;
      lines.push(data.toString('latin1', 0, end));
      data = data.subarray(nl + 1);
    }
    if (data.length > this.maxLineBytes) return { tooLarge: true };
    if (data.length > 0) this.partial = Buffer.from(data);
    return { lines };
  }

  /** The bytes after the last newline (what a peer sent before closing without one). */
  rest(): string {
    return this.partial === undefined ? '' : this.partial.toString('latin1');
  }
}

/** Text that is an IP literal needs brackets in a Host header when IPv6. */
export function hostForHeader(address: string): string {
  return net.isIPv6(address) ? `[${address}]` : address;
}

/** True for an IPv4 or IPv6 literal. */
export function isIpLiteral(text: string): boolean {
  return net.isIP(text) !== 0;
}
