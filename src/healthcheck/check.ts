/**
 * One attempt of any check type: dispatches a HealthCheckSpec to its checker. This is the default `CheckFn`
 * of the probe hub and the monitor; tests and benchmarks may inject another.
 */

import { checkAgent } from './checkers/agent.ts';
import { checkDns } from './checkers/dns.ts';
import { checkHttp } from './checkers/http.ts';
import { checkScript } from './checkers/script.ts';
import { checkSmtp } from './checkers/smtp.ts';
import { checkTcp } from './checkers/tcp.ts';
import { checkUdp } from './checkers/udp.ts';
import type { CheckResult, CheckTarget, HealthCheckSpec } from './types.ts';

/** Runs one attempt of `spec` against `target`. Never throws; resolves within the spec's timeouts. */
export function runCheck(target: CheckTarget, spec: HealthCheckSpec, signal: AbortSignal): Promise<CheckResult> {
  switch (spec.type) {
    case 'tcp':
      return checkTcp(target, spec, signal);
    case 'http':
    case 'https':
      return checkHttp(target, spec, signal);
    case 'script':
      return checkScript(target, spec, signal);
    case 'dns':
      return checkDns(target, spec, signal);
    case 'udp':
      return checkUdp(target, spec, signal);
    case 'smtp':
      return checkSmtp(target, spec, signal);
    case 'agent':
      return checkAgent(target, spec, signal);
  }
}
