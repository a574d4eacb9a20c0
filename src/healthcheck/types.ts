/**
 * Domain types of health checking: what a check is asked to do (`HealthCheckSpec`, one variant per checker
 * type, every duration in milliseconds), where it connects (`CheckTarget`) and what it answers (`CheckResult`
 * with a `CheckReason`). No I/O here; the checkers (checkers/*.ts) perform one attempt, the pure cores
 * (risefall.ts, scheduler.ts, weights.ts) decide, and monitor.ts drives them.
 *
 * Defaults (`DEFAULT_*`) and why they differ from keepalived's:
 * - interval 2 s (keepalived `delay_loop` defaults to 60 s, far too slow to take a dead real server out of an
 *   LVS table; 2 s is HAProxy's `inter` default and costs nothing on a LAN);
 * - timeout 1 s for one attempt as a whole, and by default for the TCP connect and for the longest silence
 *   between two reads (keepalived's `connect_timeout` is 5 s and only bounds each step; a real server on the
 *   director's LAN answers in milliseconds, and an overall deadline is what stops a server trickling one byte a
 *   second). A timeout at or below half the interval keeps a hanging target from delaying its next check;
 * - rise 2 / fall 3 (HAProxy's defaults): one lost SYN or one slow reply does not take a server out, three
 *   failures in a row (about 6 s) do, and a server must answer twice before it takes traffic again. keepalived
 *   has rise 1 / fall 1 plus `retry`; set rise 1, fall 1 to get that behaviour;
 * - no alpha: a server starts up, like keepalived without `alpha`; with `alpha` it starts down until `rise`
 *   checks have passed;
 * - retry 0, delay_before_retry 1 s (keepalived's default delay; rise/fall already absorbs single failures);
 * - jitter 10 % of the interval, so checks of many servers started together drift apart.
 */

/** Every checker type. `https` is `http` over TLS. */
export const CHECK_TYPES = ['tcp', 'http', 'https', 'script', 'dns', 'udp', 'smtp', 'agent'] as const;
/** One of CHECK_TYPES. */
export type CheckType = (typeof CHECK_TYPES)[number];

/** Why a check attempt ended as it did; `ok` for success. */
export const CHECK_REASONS = {
  ok: 'ok',
  /** Connect, read or overall deadline passed. */
  timeout: 'timeout',
  /** ECONNREFUSED, or an ICMP port unreachable for UDP. */
  refused: 'refused',
  /** ECONNRESET / EPIPE. */
  reset: 'reset',
  /** No route, host or network unreachable, bind address not local. */
  unreachable: 'unreachable',
  /** HTTP status outside the expected ranges, SMTP reply code not the expected one, agent says down. */
  status: 'status',
  /** HTTP body does not contain the expected text or match the expected pattern. */
  body_mismatch: 'body_mismatch',
  /** HTTP body digest differs from the expected one. */
  digest_mismatch: 'digest_mismatch',
  /** The reply exceeded its byte limit (body, header block, line). */
  too_large: 'too_large',
  /** TLS handshake or certificate verification failed. */
  tls: 'tls',
  /** Script exited with a code meaning down. */
  exit: 'exit',
  /** Script was killed by a signal it did not expect (not our timeout). */
  signal: 'signal',
  /** The reply is not what the protocol allows (malformed HTTP, DNS, SMTP, agent line; early close). */
  bad_reply: 'bad_reply',
  /** DNS answered, but with an error rcode or without the expected records. */
  dns_mismatch: 'dns_mismatch',
  /** UDP with require_reply: nothing came back. */
  no_reply: 'no_reply',
  /** Anything else: spawn failure, bad spec, aborted by the caller. */
  error: 'error',
} as const;
/** One of CHECK_REASONS. */
export type CheckReason = (typeof CHECK_REASONS)[keyof typeof CHECK_REASONS];

/** The outcome of one check attempt. Checkers never throw; every failure is a result. */
export interface CheckResult {
  ok: boolean;
  /** A short human-readable account (status line, exit code, error), at most a few hundred characters. */
  detail: string;
  reason: CheckReason;
  /** Wall time of the attempt, measured with the monotonic clock. */
  durationMs: number;
  /** An absolute weight the server asks for (script exit code - 2, HTTP body or header `N`, agent `weight N`). */
  weight?: number;
  /**
   * A weight relative to the configured one, in percent (HAProxy agent-check semantics: agent `75%` or an HTTP
   * feedback `75%` means 75 % of the configured weight; `drain` means 0).
   */
  load?: number;
}

/** Where a check connects: the real server, or its `connect_ip`/`connect_port`; optionally from `bindTo`. */
export interface CheckTarget {
  /** IPv4 or IPv6 literal. */
  address: string;
  port: number;
  /** Local source address to bind (keepalived `bindto`). */
  bindTo?: string;
}

/** Parameters every check type has: scheduling, timeouts, rise/fall, and where to connect. */
export interface CheckCommon {
  /** Time between the starts of two checks (keepalived `delay_loop`). */
  intervalMs: number;
  /** Deadline of one attempt as a whole: connect, request, every byte of the reply (keepalived `connect_timeout`). */
  timeoutMs: number;
  /** Deadline of the TCP connect. */
  connectTimeoutMs: number;
  /** Longest silence between two reads once connected. */
  readTimeoutMs: number;
  /** Further attempts after a failure before the cycle counts as failed (keepalived `retry`). */
  retry: number;
  /** Pause before each retry (keepalived `delay_before_retry`). */
  delayBeforeRetryMs: number;
  /** Random spread of each interval, as a fraction of it (0 to 0.5). */
  jitter: number;
  /** Consecutive successful cycles that bring a down server up. */
  rise: number;
  /** Consecutive failed cycles that take an up server down. */
  fall: number;
  /** Start down until `rise` cycles pass (keepalived `alpha`); otherwise start up. */
  alpha: boolean;
  /** Connect here instead of the real server's address (keepalived `connect_ip`). */
  connectAddress?: string;
  /** Connect to this port instead of the real server's (keepalived `connect_port`). */
  connectPort?: number;
  /** Bind this local address before connecting (keepalived `bindto`). */
  bindTo?: string;
}

/** TCP connect check (keepalived TCP_CHECK): up when the handshake completes. */
export interface TcpCheckSpec extends CheckCommon {
  type: 'tcp';
}

/** An inclusive range of HTTP status codes. */
export type StatusRange = readonly [number, number];

/** Where a dynamic weight is read from in an HTTP reply: a header, or the whole (trimmed) body. */
export type HttpWeightSource = { from: 'header'; name: string } | { from: 'body' };

/** HTTP/HTTPS check (keepalived HTTP_GET / SSL_GET). */
export interface HttpCheckSpec extends CheckCommon {
  type: 'http' | 'https';
  /** Request method, an HTTP token (GET, HEAD, ...). */
  method: string;
  /** Request target, starting with `/`. */
  path: string;
  /** Host header (keepalived `virtualhost`); default: the target address, with the port unless 80/443. */
  host?: string;
  /** TLS server name; default: `host` when it is a name (SNI never carries an IP address). */
  sni?: string;
  /** Extra request headers. */
  headers: ReadonlyArray<readonly [string, string]>;
  /** Expected status codes; default 200-299. */
  status: readonly StatusRange[];
  /** The body must contain this text (within the first `maxMatchBytes`). Linear, preferred over a regex. */
  bodyContains?: string;
  /**
   * The body (its first `maxMatchBytes`, read as latin1) must match this JavaScript regular expression. It runs
   * under a `regexTimeoutMs` budget, so a catastrophic pattern fails the check instead of stalling the process.
   */
  bodyRegex?: string;
  /** Expected digest of the whole body, lowercase hex (keepalived `digest` is MD5). */
  digest?: { algorithm: 'md5' | 'sha256'; hex: string };
  /** Fail `too_large` as soon as the body exceeds this. */
  maxBodyBytes: number;
  /** Bytes of body kept for `bodyContains`, `bodyRegex` and a body weight. */
  maxMatchBytes: number;
  /** CPU budget of one `bodyRegex` evaluation. */
  regexTimeoutMs: number;
  /** https: verify the certificate chain and name. */
  tlsVerify: boolean;
  /** https: trusted CA certificates (PEM) instead of the system store. */
  ca?: string;
  /** Read a dynamic weight (`N`) or relative weight (`N%`) from the reply. */
  weightFrom?: HttpWeightSource;
}

/** External program check (keepalived MISC_CHECK). */
export interface ScriptCheckSpec extends CheckCommon {
  type: 'script';
  /** argv: the program and its arguments (no shell; use ['/bin/sh', '-c', '...'] for one). */
  command: readonly string[];
  /**
   * keepalived `misc_dynamic`: exit 0 up, 1 down, 2..255 up with weight (code - 2). Without it: 0 up, any other
   * code down.
   */
  dynamic: boolean;
  /** After the timeout the process group gets SIGTERM, then SIGKILL this much later. */
  killGraceMs: number;
  /** Bytes of stdout+stderr kept for `detail`; the rest is read and discarded. */
  maxOutputBytes: number;
  /** Extra environment variables (the daemon's environment is not passed on beyond PATH). */
  env: Readonly<Record<string, string>>;
}

/** DNS record types the DNS check can ask for. */
export const DNS_QUERY_TYPES = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33 } as const;
/** One of the keys of DNS_QUERY_TYPES. */
export type DnsQueryType = keyof typeof DNS_QUERY_TYPES;

/** DNS over UDP check (keepalived DNS_CHECK). */
export interface DnsCheckSpec extends CheckCommon {
  type: 'dns';
  /** Query name, e.g. `www.example.com`. */
  name: string;
  queryType: DnsQueryType;
  /**
   * Values every one of which must appear among the answers of `queryType` (A/AAAA as addresses, names without
   * the trailing dot, TXT as the joined strings). Empty: NOERROR is enough.
   */
  expect: readonly string[];
}

/** What a UDP reply must look like. */
export type UdpExpect =
  | { match: 'exact' | 'prefix'; bytes: Uint8Array }
  /** A regular expression run on the reply read as latin1, under the same budget as HTTP's. */
  | { match: 'regex'; pattern: string };

/** UDP check (keepalived UDP_CHECK). */
export interface UdpCheckSpec extends CheckCommon {
  type: 'udp';
  payload: Uint8Array;
  /** Reply requirement; without it any reply passes. */
  expect?: UdpExpect;
  /**
   * Fail when nothing comes back. Without it the check passes unless an ICMP port unreachable arrives within
   * the timeout (keepalived semantics), so it takes the whole timeout when the server stays silent.
   */
  requireReply: boolean;
  /** CPU budget of a regex expectation. */
  regexTimeoutMs: number;
}

/** SMTP check (keepalived SMTP_CHECK): banner 220, HELO -> 250, QUIT. */
export interface SmtpCheckSpec extends CheckCommon {
  type: 'smtp';
  /** Name sent with HELO. */
  helo: string;
}

/** HAProxy-style agent check: one line such as `up`, `down`, `drain`, `75%`, `weight 50`. */
export interface AgentCheckSpec extends CheckCommon {
  type: 'agent';
  /** Sent after connecting (HAProxy `agent-send`), e.g. `status\n`; empty sends nothing. */
  send: string;
}

/** A fully specified health check, every default applied (see `withDefaults`). */
export type HealthCheckSpec =
  | TcpCheckSpec
  | HttpCheckSpec
  | ScriptCheckSpec
  | DnsCheckSpec
  | UdpCheckSpec
  | SmtpCheckSpec
  | AgentCheckSpec;

/** A spec with only its type required: what `withDefaults` completes. */
export type CheckInput<S extends HealthCheckSpec> = Pick<S, 'type'> & Partial<Omit<S, 'type'>>;

/** A partially specified check of any type. */
export type HealthCheckInput =
  | CheckInput<TcpCheckSpec>
  | CheckInput<HttpCheckSpec>
  | (Pick<ScriptCheckSpec, 'type' | 'command'> & Partial<Omit<ScriptCheckSpec, 'type' | 'command'>>)
  | (Pick<DnsCheckSpec, 'type' | 'name'> & Partial<Omit<DnsCheckSpec, 'type' | 'name'>>)
  | (Pick<UdpCheckSpec, 'type' | 'payload'> & Partial<Omit<UdpCheckSpec, 'type' | 'payload'>>)
  | CheckInput<SmtpCheckSpec>
  | CheckInput<AgentCheckSpec>;

/** Default time between checks (see the module header). */
export const DEFAULT_INTERVAL_MS = 2000;
/** Default deadline of one attempt, of its connect and of a silence between reads (see the module header). */
export const DEFAULT_TIMEOUT_MS = 1000;
/** Default retries within one cycle (keepalived `retry`); rise/fall already absorbs single failures. */
export const DEFAULT_RETRY = 0;
/** keepalived's default `delay_before_retry`. */
export const DEFAULT_DELAY_BEFORE_RETRY_MS = 1000;
/** Default spread of each interval: enough to de-synchronise thousands of checks started at once. */
export const DEFAULT_JITTER = 0.1;
/** Consecutive passes before a down server comes up (HAProxy `rise`). */
export const DEFAULT_RISE = 2;
/** Consecutive failures before an up server goes down (HAProxy `fall`). */
export const DEFAULT_FALL = 3;
/** Health pages are small; 1 MiB stops a misbehaving server early without failing any real status page. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
/** Body bytes kept for matching: a status page's interesting part is at its start. */
export const DEFAULT_MAX_MATCH_BYTES = 16 * 1024;
/**
 * Budget of one regex evaluation: a sane pattern on 16 KiB takes well under 1 ms, and holding the event loop
 * for 50 ms (100 ms with the retry of checkers/match.ts) is harmless next to 1 s election adverts.
 */
export const DEFAULT_REGEX_TIMEOUT_MS = 50;
/** Grace between SIGTERM and SIGKILL of a timed-out script's process group. */
export const DEFAULT_KILL_GRACE_MS = 1000;
/** Script output kept for `detail` (4 KiB); the rest is drained and discarded. */
export const DEFAULT_MAX_OUTPUT_BYTES = 4096;
/** Default expected HTTP status codes (keepalived: 200-299). */
export const DEFAULT_HTTP_STATUS: readonly StatusRange[] = [[200, 299]];

/** The timing, decision and connect defaults shared by every type. */
function commonDefaults(i: Partial<CheckCommon>): CheckCommon {
  const timeoutMs = i.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const c: CheckCommon = {
    intervalMs: i.intervalMs ?? DEFAULT_INTERVAL_MS,
    timeoutMs,
    connectTimeoutMs: i.connectTimeoutMs ?? timeoutMs,
    readTimeoutMs: i.readTimeoutMs ?? timeoutMs,
    retry: i.retry ?? DEFAULT_RETRY,
    delayBeforeRetryMs: i.delayBeforeRetryMs ?? DEFAULT_DELAY_BEFORE_RETRY_MS,
    jitter: i.jitter ?? DEFAULT_JITTER,
    rise: i.rise ?? DEFAULT_RISE,
    fall: i.fall ?? DEFAULT_FALL,
    alpha: i.alpha ?? false,
  };
  if (i.connectAddress !== undefined) c.connectAddress = i.connectAddress;
  if (i.connectPort !== undefined) c.connectPort = i.connectPort;
  if (i.bindTo !== undefined) c.bindTo = i.bindTo;
  return c;
}

/** The spec type of each check type. */
export interface SpecByType {
  tcp: TcpCheckSpec;
  http: HttpCheckSpec;
  https: HttpCheckSpec;
  script: ScriptCheckSpec;
  dns: DnsCheckSpec;
  udp: UdpCheckSpec;
  smtp: SmtpCheckSpec;
  agent: AgentCheckSpec;
}

/** Completes a partial check with every default; the result has the spec type of the input's `type`. */
export function withDefaults<T extends CheckType>(i: HealthCheckInput & { type: T }): SpecByType[T] {
  return completeSpec(i) as SpecByType[T];
}

function completeSpec(i: HealthCheckInput): HealthCheckSpec {
  const common = commonDefaults(i);
  switch (i.type) {
    case 'tcp':
      return { ...common, type: 'tcp' };
    case 'http':
    case 'https': {
      const s: HttpCheckSpec = {
        ...common,
        type: i.type,
        method: i.method ?? 'GET',
        path: i.path ?? '/',
        headers: i.headers ?? [],
        status: i.status ?? DEFAULT_HTTP_STATUS,
        maxBodyBytes: i.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
        maxMatchBytes: i.maxMatchBytes ?? DEFAULT_MAX_MATCH_BYTES,
        regexTimeoutMs: i.regexTimeoutMs ?? DEFAULT_REGEX_TIMEOUT_MS,
        tlsVerify: i.tlsVerify ?? true,
      };
      if (i.host !== undefined) s.host = i.host;
      if (i.sni !== undefined) s.sni = i.sni;
      if (i.bodyContains !== undefined) s.bodyContains = i.bodyContains;
      if (i.bodyRegex !== undefined) s.bodyRegex = i.bodyRegex;
      if (i.digest !== undefined) s.digest = i.digest;
      if (i.ca !== undefined) s.ca = i.ca;
      if (i.weightFrom !== undefined) s.weightFrom = i.weightFrom;
      return s;
    }
    case 'script':
      return {
        ...common,
        type: 'script',
        command: i.command,
        dynamic: i.dynamic ?? false,
        killGraceMs: i.killGraceMs ?? DEFAULT_KILL_GRACE_MS,
        maxOutputBytes: i.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES,
        env: i.env ?? {},
      };
    case 'dns':
      return { ...common, type: 'dns', name: i.name, queryType: i.queryType ?? 'A', expect: i.expect ?? [] };
    case 'udp': {
      const s: UdpCheckSpec = {
        ...common,
        type: 'udp',
        payload: i.payload,
        requireReply: i.requireReply ?? false,
        regexTimeoutMs: i.regexTimeoutMs ?? DEFAULT_REGEX_TIMEOUT_MS,
      };
      if (i.expect !== undefined) s.expect = i.expect;
      return s;
    }
    case 'smtp':
      return { ...common, type: 'smtp', helo: i.helo ?? 'tandem' };
    case 'agent':
      return { ...common, type: 'agent', send: i.send ?? '' };
  }
}

/** The real server a check belongs to. */
export interface RealServerAddress {
  address: string;
  port: number;
}

/** Where a check of `server` connects: `connectAddress`/`connectPort` when set, with `bindTo`. */
export function resolveTarget(server: RealServerAddress, spec: CheckCommon): CheckTarget {
  const t: CheckTarget = { address: spec.connectAddress ?? server.address, port: spec.connectPort ?? server.port };
  if (spec.bindTo !== undefined) t.bindTo = spec.bindTo;
  return t;
}

/** A checker: performs one attempt; never throws, never outlives its timeouts, stops when `signal` aborts. */
export type CheckFn<S extends HealthCheckSpec = HealthCheckSpec> = (target: CheckTarget, spec: S, signal: AbortSignal) => Promise<CheckResult>;
