/**
 * TCP connect check (keepalived TCP_CHECK): the server is up when the three-way handshake completes within the
 * connect timeout. The connection is closed at once; nothing is sent.
 */

import type { CheckResult, CheckTarget, TcpCheckSpec } from '../types.ts';
import { pass, runStream } from './common.ts';

/** One TCP connect attempt. Never throws. */
export function checkTcp(target: CheckTarget, spec: Pick<TcpCheckSpec, 'connectTimeoutMs' | 'readTimeoutMs' | 'timeoutMs'>, signal: AbortSignal): Promise<CheckResult> {
  return runStream(target, spec, signal, {
    onConnect: () => pass('connected'),
    onData: () => undefined,
    onEnd: () => pass('connected'),
  });
}
