/**
 * One UDP exchange for the dns and udp checkers: a connected socket (so the kernel reports an ICMP port
 * unreachable as ECONNREFUSED), optionally bound to `bindTo`, one datagram out, replies handed to a handler
 * until it finishes or the deadline passes. Replies are read one datagram at a time (at most 64 KiB each by
 * the protocol), so memory is bounded whatever the peer sends. Adapter code: node:dgram and node timers.
 */

import dgram from 'node:dgram';
import net from 'node:net';
import type { CheckResult, CheckTarget } from '../types.ts';
import { classifyError, failure, finishResult } from './common.ts';
import type { Outcome } from './common.ts';

/** Replies looked at before giving up on a peer that floods us with datagrams that are not the answer. */
export const MAX_REPLIES = 32;

/** What to do with one exchange. */
export interface DatagramHandler {
  /** A reply arrived; return an outcome to finish, undefined to keep waiting. */
  onReply(msg: Buffer): Outcome | undefined;
  /** The deadline passed without an outcome. */
  onTimeout(): Outcome;
}

/** Sends `payload` to `target` and waits up to `timeoutMs` for the handler to decide. Never rejects. */
export function runDatagram(target: CheckTarget, payload: Uint8Array, timeoutMs: number, signal: AbortSignal, handler: DatagramHandler): Promise<CheckResult> {
  const started = performance.now();
  return new Promise<CheckResult>((resolve) => {
    if (signal.aborted) {
      resolve(finishResult(failure('error', 'aborted before start'), started));
      return;
    }
    let done = false;
    let replies = 0;
    let socket: dgram.Socket | undefined;
    const finish = (o: Outcome): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      try {
        socket?.close();
      } catch {
        // already closed
      }
      resolve(finishResult(o, started));
    };
    const onAbort = (): void => finish(failure('error', 'aborted'));
    const timer = setTimeout(() => finish(handler.onTimeout()), timeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const s = dgram.createSocket(net.isIPv6(target.address) ? 'udp6' : 'udp4');
      socket = s;
      s.on('error', (e) => finish(classifyError(e)));
      s.on('message', (msg) => {
        if (done) return;
        if (++replies > MAX_REPLIES) {
          finish(failure('bad_reply', `${MAX_REPLIES} datagrams without a valid reply`));
          return;
        }
        const o = handler.onReply(msg);
        if (o !== undefined) finish(o);
      });
      const connect = (): void => {
        s.connect(target.port, target.address, () => {
          if (done) return;
          s.send(payload, (e) => {
            if (e !== null && e !== undefined) finish(classifyError(e));
          });
        });
      };
      if (target.bindTo !== undefined) s.bind({ address: target.bindTo, port: 0 }, connect);
      else connect();
    } catch (e) {
      finish(classifyError(e));
    }
  });
}
