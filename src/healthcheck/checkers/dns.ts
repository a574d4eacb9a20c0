/**
 * DNS check (keepalived DNS_CHECK): one query over UDP; up when a reply with our id, the QR bit, our question
 * and rcode NOERROR arrives, and (when `expect` is set) every expected value is among the answers of the
 * queried type. The codec is dns-codec.ts; replies that are not ours (wrong id, not a response) are ignored.
 */

import { randomInt } from 'node:crypto';
import { canonicalAddress } from '../../lib/address.ts';
import type { CheckResult, CheckTarget, DnsCheckSpec } from '../types.ts';
import { DNS_QUERY_TYPES } from '../types.ts';
import { failure, finishResult, pass, sanitize } from './common.ts';
import type { Outcome } from './common.ts';
import { runDatagram } from './datagram.ts';
import { RCODE_NAMES, decodeMessage, encodeQuery } from './dns-codec.ts';
import type { DnsMessage } from './dns-codec.ts';

/** Comparable form of a name or value: lowercase, no trailing dot; addresses canonical. */
function normalize(value: string, type: number): string {
  if (type === DNS_QUERY_TYPES.A || type === DNS_QUERY_TYPES.AAAA) return canonicalAddress(value) ?? value;
  if (type === DNS_QUERY_TYPES.TXT) return value;
  return value.replace(/\.$/, '').toLowerCase();
}

/** Judges a decoded reply to our query. */
export function judgeDnsReply(msg: DnsMessage, spec: Pick<DnsCheckSpec, 'name' | 'queryType' | 'expect'>): Outcome {
  const qtype = DNS_QUERY_TYPES[spec.queryType];
  const q = msg.questions[0];
  if (msg.questions.length !== 1 || q === undefined || q.type !== qtype || normalize(q.name, 0) !== normalize(spec.name, 0)) {
    return failure('bad_reply', 'reply is for another question');
  }
  const rcode = RCODE_NAMES[msg.rcode] ?? `RCODE ${msg.rcode}`;
  if (msg.rcode !== 0) return failure('dns_mismatch', `${rcode} for ${spec.queryType} ${sanitize(spec.name, 80)}`);
  const values = msg.answers.filter((a) => a.type === qtype).map((a) => normalize(a.data, qtype));
  const missing = spec.expect.filter((e) => !values.includes(normalize(e, qtype)));
  if (missing.length > 0) {
    const got = values.length === 0 ? 'no answers' : sanitize(values.slice(0, 8).join(', '), 120);
    return failure('dns_mismatch', `${spec.queryType} ${sanitize(spec.name, 80)}: expected ${sanitize(missing.join(', '), 80)}, got ${got}${msg.truncated ? ' (truncated)' : ''}`);
  }
  return pass(`NOERROR, ${values.length} ${spec.queryType} answer${values.length === 1 ? '' : 's'}`);
}

/** One DNS query. Never throws. */
export function checkDns(target: CheckTarget, spec: Pick<DnsCheckSpec, 'name' | 'queryType' | 'expect' | 'timeoutMs'>, signal: AbortSignal): Promise<CheckResult> {
  const id = randomInt(0, 0x10000);
  const query = encodeQuery(id, spec.name, DNS_QUERY_TYPES[spec.queryType]);
  if (!query.ok) return Promise.resolve(finishResult(failure('error', query.detail), performance.now()));
  return runDatagram(target, query.value, spec.timeoutMs, signal, {
    onReply(bytes) {
      const msg = decodeMessage(bytes);
      if (!msg.ok) return failure('bad_reply', `malformed reply: ${msg.detail}`);
      if (msg.value.id !== id || !msg.value.response) return undefined; // not the answer to our query
      return judgeDnsReply(msg.value, spec);
    },
    onTimeout: () => failure('timeout', `no reply within ${spec.timeoutMs} ms`),
  });
}
