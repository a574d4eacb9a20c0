/**
 * HTTP and HTTPS checks (keepalived HTTP_GET / SSL_GET) over a raw socket with the strict parser of
 * http-parser.ts, which gives a hard memory bound: the request is one write, the reply is parsed as it
 * arrives, the body is streamed into the digest and at most `maxMatchBytes` of it are kept. A reply is judged
 * in this order: status, digest, bodyContains, bodyRegex; then a dynamic weight is read if configured.
 *
 * Every request carries `Connection: close`; once the response is complete the socket is destroyed, so a
 * server that keeps sending after its declared length costs nothing.
 */

import { createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';
import type { CheckResult, CheckTarget, HttpCheckSpec } from '../types.ts';
import { failure, finishResult, hostForHeader, isIpLiteral, pass, runStream, sanitize } from './common.ts';
import type { Outcome, StreamTls } from './common.ts';
import { HttpResponseParser } from './http-parser.ts';
import { matchBounded } from './match.ts';

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const NO_CTL = /^[^\x00-\x20\x7f]+$/;
const HEADER_VALUE = /^[^\x00-\x08\x0a-\x1f\x7f]*$/;

/** Why a spec cannot be turned into a request, or undefined when it can. */
export function httpSpecProblem(spec: Pick<HttpCheckSpec, 'method' | 'path' | 'host' | 'headers' | 'digest' | 'status'>): string | undefined {
  if (!TOKEN.test(spec.method)) return `invalid method ${JSON.stringify(spec.method)}`;
  if (!spec.path.startsWith('/') || !NO_CTL.test(spec.path)) return `invalid path ${JSON.stringify(spec.path)} (must start with / and contain no spaces or control characters)`;
  if (spec.host !== undefined && !NO_CTL.test(spec.host)) return `invalid host ${JSON.stringify(spec.host)}`;
  for (const [name, value] of spec.headers) {
    if (!TOKEN.test(name) || !HEADER_VALUE.test(value)) return `invalid request header ${JSON.stringify(name)}`;
  }
  if (spec.digest !== undefined && !/^[0-9a-f]+$/.test(spec.digest.hex)) return 'digest must be lowercase hex';
  for (const [lo, hi] of spec.status) if (!(lo >= 100 && hi <= 599 && lo <= hi)) return `invalid status range ${lo}-${hi}`;
  return undefined;
}

/** The request bytes for a spec and target. */
export function buildRequest(target: CheckTarget, spec: Pick<HttpCheckSpec, 'type' | 'method' | 'path' | 'host' | 'headers'>): string {
  const defaultPort = spec.type === 'https' ? 443 : 80;
  const host = spec.host ?? (target.port === defaultPort ? hostForHeader(target.address) : `${hostForHeader(target.address)}:${target.port}`);
  let req = `${spec.method} ${spec.path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: tandem-healthcheck\r\nAccept: */*\r\nConnection: close\r\n`;
  for (const [name, value] of spec.headers) req += `${name}: ${value}\r\n`;
  return req + '\r\n';
}

/** A feedback value: `N` is an absolute weight, `N%` a percentage of the configured weight. */
export function parseFeedback(text: string): { weight: number } | { load: number } | undefined {
  const m = /^\s*(\d{1,6})(%?)\s*$/.exec(text);
  if (m === null) return undefined;
  const n = Number(m[1]);
  return m[2] === '%' ? { load: n } : { weight: n };
}

/** Collects at most `max` bytes of the body. */
class Capture {
  private readonly parts: Buffer[] = [];
  private size = 0;
  constructor(private readonly max: number) {}
  add(bytes: Uint8Array): void {
    if (this.size >= this.max) return;
    const take = Math.min(this.max - this.size, bytes.length);
    this.parts.push(Buffer.from(bytes.subarray(0, take)));
    this.size += take;
  }
  text(): string {
    return Buffer.concat(this.parts, this.size).toString('latin1');
  }
}

/** Judges a complete response against the spec. */
function judge(spec: HttpCheckSpec, p: HttpResponseParser, hash: Hash | undefined, capture: Capture | undefined): Outcome {
  const status = p.status ?? 0;
  const line = `HTTP ${status} ${sanitize(p.statusText, 60)}`.trimEnd();
  if (!spec.status.some(([lo, hi]) => status >= lo && status <= hi)) return failure('status', line);
  if (spec.digest !== undefined && hash !== undefined) {
    const got = hash.digest('hex');
    if (got !== spec.digest.hex) return failure('digest_mismatch', `${line}: ${spec.digest.algorithm} ${got}, expected ${spec.digest.hex}`);
  }
  const body = capture?.text() ?? '';
  if (spec.bodyContains !== undefined && !body.includes(spec.bodyContains)) {
    return failure('body_mismatch', `${line}: body (first ${spec.maxMatchBytes} bytes) lacks ${JSON.stringify(sanitize(spec.bodyContains, 60))}`);
  }
  if (spec.bodyRegex !== undefined) {
    const m = matchBounded(spec.bodyRegex, body, spec.regexTimeoutMs);
    if ('invalid' in m) return failure('error', m.invalid);
    if ('timedOut' in m) return failure('body_mismatch', `${line}: body regex exceeded its ${spec.regexTimeoutMs} ms budget`);
    if (!m.matched) return failure('body_mismatch', `${line}: body does not match /${sanitize(spec.bodyRegex, 60)}/`);
  }
  if (spec.weightFrom !== undefined) {
    const raw = spec.weightFrom.from === 'header' ? p.headers.get(spec.weightFrom.name.toLowerCase()) : body;
    const fb = raw === undefined ? undefined : parseFeedback(raw);
    if (fb === undefined) return pass(`${line} (no weight feedback)`);
    return pass(`${line}`, fb);
  }
  return pass(line);
}

/** Encoded requests per spec and target: a probe sends the same bytes every interval, so build them once. */
const requests = new WeakMap<HttpCheckSpec, Map<string, Buffer>>();

/** The request bytes of (target, spec), cached (never mutated: sockets write them as they are). */
function requestBytes(target: CheckTarget, spec: HttpCheckSpec): Buffer {
  let byTarget = requests.get(spec);
  if (byTarget === undefined) {
    byTarget = new Map();
    requests.set(spec, byTarget);
  }
  const key = `${target.address} ${target.port}`;
  let bytes = byTarget.get(key);
  if (bytes === undefined) {
    bytes = Buffer.from(buildRequest(target, spec), 'utf8');
    byTarget.set(key, bytes);
  }
  return bytes;
}

/** Validation results per spec object: a probe runs the same spec every interval, so validate it once. */
const validated = new WeakMap<HttpCheckSpec, string | undefined>();

/** One HTTP or HTTPS attempt. Never throws. */
export function checkHttp(target: CheckTarget, spec: HttpCheckSpec, signal: AbortSignal): Promise<CheckResult> {
  let problem = validated.get(spec);
  if (problem === undefined && !validated.has(spec)) {
    problem = httpSpecProblem(spec);
    validated.set(spec, problem);
  }
  if (problem !== undefined) return Promise.resolve(finishResult(failure('error', problem), performance.now()));
  const hash = spec.digest !== undefined ? createHash(spec.digest.algorithm) : undefined;
  const needBody = spec.bodyContains !== undefined || spec.bodyRegex !== undefined || spec.weightFrom?.from === 'body';
  const capture = needBody ? new Capture(spec.maxMatchBytes) : undefined;
  const keepHeaders = spec.weightFrom?.from === 'header' ? [spec.weightFrom.name.toLowerCase()] : [];
  const parser = new HttpResponseParser({
    head: spec.method === 'HEAD',
    maxBodyBytes: spec.maxBodyBytes,
    keepHeaders,
    onBody: (bytes) => {
      hash?.update(bytes);
      capture?.add(bytes);
    },
  });
  let tlsOpts: StreamTls | undefined;
  if (spec.type === 'https') {
    tlsOpts = { verify: spec.tlsVerify };
    const hostName = spec.host?.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
    const sni = spec.sni ?? (hostName !== undefined && !isIpLiteral(hostName) ? hostName : undefined);
    if (sni !== undefined) tlsOpts.servername = sni;
    if (spec.ca !== undefined) tlsOpts.ca = spec.ca;
  }
  const request = requestBytes(target, spec);
  const afterParse = (st: ReturnType<HttpResponseParser['push']>): Outcome | undefined => {
    if (st.state === 'more') return undefined;
    if (st.state === 'error') return failure(st.reason, st.detail);
    return judge(spec, parser, hash, capture);
  };
  return runStream(
    target,
    spec,
    signal,
    {
      onConnect: (io) => {
        io.write(request);
        return undefined;
      },
      onData: (chunk) => afterParse(parser.push(chunk)),
      onEnd: () => afterParse(parser.end()) ?? failure('bad_reply', 'connection closed mid-response'),
    },
    tlsOpts,
  );
}
