/**
 * UDP check (keepalived UDP_CHECK): send `payload`; with `requireReply` a reply (matching `expect` when set)
 * must arrive within the timeout. Without it the check passes unless the kernel reports an ICMP port
 * unreachable (ECONNREFUSED on the connected socket) within the timeout, or a reply arrives that does not
 * match `expect`; a silent server therefore costs the whole timeout, as in keepalived.
 */

import type { CheckResult, CheckTarget, UdpCheckSpec, UdpExpect } from '../types.ts';
import { failure, pass, sanitize } from './common.ts';
import type { Outcome } from './common.ts';
import { runDatagram } from './datagram.ts';
import { matchBounded } from './match.ts';

/** Judges one reply against the expectation. */
export function judgeUdpReply(msg: Buffer, expect: UdpExpect | undefined, regexTimeoutMs: number): Outcome {
  const shown = sanitize(msg, 60);
  if (expect === undefined) return pass(`reply of ${msg.length} bytes`);
  switch (expect.match) {
    case 'exact':
      return Buffer.from(expect.bytes).equals(msg) ? pass(`reply of ${msg.length} bytes matches`) : failure('bad_reply', `reply ${JSON.stringify(shown)} differs`);
    case 'prefix':
      return msg.length >= expect.bytes.length && Buffer.from(expect.bytes).equals(msg.subarray(0, expect.bytes.length))
        ? pass(`reply of ${msg.length} bytes matches`)
        : failure('bad_reply', `reply ${JSON.stringify(shown)} lacks the expected prefix`);
    case 'regex': {
      const m = matchBounded(expect.pattern, msg.toString('latin1'), regexTimeoutMs);
      if ('invalid' in m) return failure('error', m.invalid);
      if ('timedOut' in m) return failure('bad_reply', `reply regex exceeded its ${regexTimeoutMs} ms budget`);
      return m.matched ? pass(`reply of ${msg.length} bytes matches`) : failure('bad_reply', `reply ${JSON.stringify(shown)} does not match`);
    }
  }
}

/** One UDP exchange. Never throws. */
export function checkUdp(target: CheckTarget, spec: Pick<UdpCheckSpec, 'payload' | 'expect' | 'requireReply' | 'regexTimeoutMs' | 'timeoutMs'>, signal: AbortSignal): Promise<CheckResult> {
  return runDatagram(target, spec.payload, spec.timeoutMs, signal, {
    onReply: (msg) => judgeUdpReply(msg, spec.expect, spec.regexTimeoutMs),
    onTimeout: () => (spec.requireReply ? failure('no_reply', `no reply within ${spec.timeoutMs} ms`) : pass(`no ICMP error within ${spec.timeoutMs} ms`)),
  });
}
