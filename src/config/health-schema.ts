/**
 * The health-check part of the configuration schema: `health_check` of a virtual server and of a real server
 * (merged over the virtual server's), `inhibit_on_failure`, `quorum`, `sorry_server` and `alpha`. Like the rest
 * of the schema it reports every problem with the offset and document path it is about and never stops at the
 * first one; the result is a `HealthCheckSpec` with every default applied (healthcheck/types.ts `withDefaults`).
 *
 * Merge rule of a real server's `health_check`: keys it sets win; the rest come from the virtual server's check
 * when both have the same `type`, and only the shared keys (timing, rise/fall, retry, connect_*, bind_to,
 * dynamic_weight) when the real server names another type.
 *
 * This module and schema.ts import each other; nothing here touches schema.ts at module evaluation time.
 */

import { isMap, isScalar } from 'yaml';
import { DNS_QUERY_TYPES, compilePattern, httpSpecProblem, withDefaults } from '../healthcheck/index.ts';
import type { CheckType, DnsQueryType, HealthCheckInput, HealthCheckSpec, HttpWeightSource, StatusRange, UdpExpect, WeightPolicy } from '../healthcheck/index.ts';
import {
  describe,
  familyName,
  readAbsolutePath,
  readBool,
  readChoice,
  readDuration,
  readInt,
  readIp,
  readList,
  readMap,
  stringOf,
} from './schema.ts';
import type { Checker, Entry, Obj } from './schema.ts';
import type { AddressFamily, HealthCheckConfig, VsQuorumConfig } from './types.ts';

/** Every check type a configuration may name (healthcheck CHECK_TYPES). */
const TYPES = ['tcp', 'http', 'https', 'script', 'dns', 'udp', 'smtp', 'agent'] as const satisfies readonly CheckType[];

/** Keys every check type accepts. */
export const HEALTH_COMMON_KEYS = [
  'type',
  'interval',
  'timeout',
  'connect_timeout',
  'read_timeout',
  'retry',
  'delay_before_retry',
  'jitter',
  'rise',
  'fall',
  'connect_ip',
  'connect_port',
  'bind_to',
  'dynamic_weight',
] as const;

/** Keys of each check type beyond the common ones. */
export const HEALTH_TYPE_KEYS: Readonly<Record<CheckType, readonly string[]>> = {
  tcp: [],
  http: ['method', 'path', 'host', 'headers', 'status', 'body_contains', 'body_regex', 'digest', 'max_body_bytes', 'max_match_bytes', 'regex_timeout', 'weight_from'],
  https: [
    'method',
    'path',
    'host',
    'headers',
    'status',
    'body_contains',
    'body_regex',
    'digest',
    'max_body_bytes',
    'max_match_bytes',
    'regex_timeout',
    'weight_from',
    'sni',
    'tls_verify',
    'ca_file',
  ],
  script: ['script', 'args', 'dynamic', 'kill_grace', 'max_output_bytes', 'env'],
  dns: ['name', 'query_type', 'expect'],
  udp: ['payload', 'payload_hex', 'expect', 'require_reply', 'regex_timeout'],
  smtp: ['helo'],
  agent: ['send'],
};

const DYNAMIC_WEIGHT_KEYS = ['min', 'max', 'smoothing', 'max_step', 'min_change'] as const;
const UDP_EXPECT_KEYS = ['exact', 'prefix', 'exact_hex', 'prefix_hex', 'regex'] as const;
const QUORUM_KEYS = ['min', 'hysteresis'] as const;

/** The ranges of health-check keys (milliseconds for durations), for messages, docs and tests. */
export const HEALTH_LIMITS = {
  /** Below 100 ms a check per server costs more than it tells: a dead server still needs `fall` checks. */
  intervalMinMs: 100,
  intervalMaxMs: 3_600_000,
  /** A LAN round trip plus a server's accept takes a few ms; 10 ms is the least that can pass at all. */
  timeoutMinMs: 10,
  timeoutMaxMs: 600_000,
  riseFallMax: 100,
  retryMax: 10,
  delayBeforeRetryMaxMs: 600_000,
  jitterMax: 0.5,
  bytesMax: 64 * 1024 * 1024,
  regexTimeoutMinMs: 1,
  regexTimeoutMaxMs: 1000,
  killGraceMaxMs: 60_000,
  /** Quorum is a sum of weights. */
  quorumMax: 2_147_483_647,
} as const;

/** Quorum when `quorum` (or `min`) is not given: keepalived's default. */
export const DEFAULT_QUORUM: Readonly<VsQuorumConfig> = Object.freeze({ min: 1, hysteresis: 0 });

/** The validated keys of one `health_check` mapping, before merging and defaults. */
interface CheckFields {
  type: CheckType;
  /** Spec fields by name (only keys the mapping set). */
  values: Record<string, unknown>;
  caFile: string | undefined;
  dynamicWeight: Partial<WeightPolicy> | undefined;
  entry: Entry;
}

/** Spec field of each common YAML key (dynamic_weight is kept apart). */
const COMMON_FIELD: Readonly<Record<string, string>> = {
  interval: 'intervalMs',
  timeout: 'timeoutMs',
  connect_timeout: 'connectTimeoutMs',
  read_timeout: 'readTimeoutMs',
  retry: 'retry',
  delay_before_retry: 'delayBeforeRetryMs',
  jitter: 'jitter',
  rise: 'rise',
  fall: 'fall',
  connect_ip: 'connectAddress',
  connect_port: 'connectPort',
  bind_to: 'bindTo',
};

/** A number in [min, max] (integers and decimals). */
function readNumber(ck: Checker, e: Entry, key: string, min: number, max: number): number | undefined {
  const v = e.value;
  if (isScalar(v) && typeof v.value === 'number' && Number.isFinite(v.value) && v.value >= min && v.value <= max) return v.value;
  ck.issue(e.offset, e.path, `${key} must be a number ${min}..${max}; got ${describe(v)}`);
  return undefined;
}

/** A string (empty allowed) without control characters other than tab, CR and LF when `multiline`. */
function readText(ck: Checker, e: Entry, key: string, opts: { allowEmpty?: boolean; multiline?: boolean } = {}): string | undefined {
  const s = stringOf(e.value);
  const bad = opts.multiline === true ? /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/ : /[\x00-\x1f\x7f]/;
  if (s === undefined || (s === '' && opts.allowEmpty !== true) || bad.test(s)) {
    ck.issue(e.offset, e.path, `${key} must be ${opts.allowEmpty === true ? 'text' : 'non-empty text'}${opts.multiline === true ? '' : ' on one line'} (quote numbers); got ${describe(e.value)}`);
    return undefined;
  }
  return s;
}

/** Hex bytes (`0a1b...`, spaces allowed between bytes). */
function readHex(ck: Checker, e: Entry, key: string): Uint8Array | undefined {
  const s = stringOf(e.value)?.replace(/\s+/g, '');
  if (s === undefined || s === '' || s.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(s)) {
    ck.issue(e.offset, e.path, `${key} must be bytes in hex, e.g. "0a1bff" (an even number of hex digits); got ${describe(e.value)}`);
    return undefined;
  }
  return new Uint8Array(Buffer.from(s, 'hex'));
}

/** HTTP status codes: a list of codes (`200`) and ranges (`200-299`), each within 100..599. */
function readStatus(ck: Checker, e: Entry): StatusRange[] | undefined {
  const items = readList(ck, e, 'status', '[200-299, 301]');
  if (items === undefined) return undefined;
  if (items.length === 0) {
    ck.issue(e.offset, e.path, 'status must list at least one code or range, e.g. `[200-299]`');
    return undefined;
  }
  const out: StatusRange[] = [];
  let ok = true;
  for (const item of items) {
    const v = item.value;
    const raw: unknown = isScalar(v) ? v.value : undefined;
    const text = typeof raw === 'number' ? String(raw) : typeof raw === 'string' ? raw.trim() : undefined;
    const m = text === undefined ? null : /^(\d{3})(?:\s*-\s*(\d{3}))?$/.exec(text);
    const lo = m === null ? NaN : Number(m[1]);
    const hi = m === null ? NaN : Number(m[2] ?? m[1]);
    if (m === null || !(lo >= 100 && hi <= 599 && lo <= hi)) {
      ck.issue(item.offset, item.path, `a status must be an HTTP code 100..599 or a range such as 200-299 (low <= high); got ${describe(v)}`);
      ok = false;
      continue;
    }
    out.push([lo, hi]);
  }
  return ok ? out : undefined;
}

/** `md5:<32 hex>`, `sha256:<64 hex>`, or bare 32 hex digits (MD5, as keepalived's `digest`). */
function readDigest(ck: Checker, e: Entry): { algorithm: 'md5' | 'sha256'; hex: string } | undefined {
  const s = stringOf(e.value)?.trim().toLowerCase();
  const m = s === undefined ? null : /^(?:(md5|sha256):)?([0-9a-f]+)$/.exec(s);
  const algorithm = (m?.[1] ?? 'md5') as 'md5' | 'sha256';
  const hex = m?.[2] ?? '';
  if (m === null || hex.length !== (algorithm === 'md5' ? 32 : 64)) {
    ck.issue(e.offset, e.path, `digest must be \`md5:<32 hex digits>\`, \`sha256:<64 hex digits>\` or 32 hex digits (MD5, as keepalived's digest); got ${describe(e.value)}`);
    return undefined;
  }
  return { algorithm, hex };
}

/** `body`, or `header:<Name>`. */
function readWeightFrom(ck: Checker, e: Entry): HttpWeightSource | undefined {
  const s = stringOf(e.value)?.trim();
  if (s === 'body') return { from: 'body' };
  const m = s === undefined ? null : /^header:\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)$/.exec(s);
  if (m?.[1] !== undefined) return { from: 'header', name: m[1] };
  ck.issue(e.offset, e.path, `weight_from must be \`body\` or \`header:<Name>\` (e.g. \`header:X-Weight\`): where the reply carries \`N\` (a weight) or \`N%\` (of the configured weight); got ${describe(e.value)}`);
  return undefined;
}

/** A mapping of text to text (headers, env). */
function readStringMap(ck: Checker, e: Entry, key: string, nameRe: RegExp, nameWhat: string): Array<[string, string]> | undefined {
  const o = readMapAny(ck, e, key);
  if (o === undefined) return undefined;
  const out: Array<[string, string]> = [];
  let ok = true;
  for (const [name, entry] of o) {
    if (!nameRe.test(name)) {
      ck.issue(entry.offset, entry.path, `${JSON.stringify(name)} is not a valid ${nameWhat}`);
      ok = false;
      continue;
    }
    const raw: unknown = isScalar(entry.value) ? entry.value.value : undefined;
    const text = typeof raw === 'string' ? raw : typeof raw === 'number' || typeof raw === 'boolean' ? String(raw) : undefined;
    if (text === undefined || /[\x00-\x08\x0a-\x1f\x7f]/.test(text)) {
      ck.issue(entry.offset, entry.path, `${key}.${name} must be text on one line; got ${describe(entry.value)}`);
      ok = false;
      continue;
    }
    out.push([name, text]);
  }
  return ok ? out : undefined;
}

/** The entries of a mapping whose keys are free names (headers, env), in order. */
function readMapAny(ck: Checker, e: Entry, key: string): Array<[string, Entry]> | undefined {
  const v = e.value;
  if (!isMap(v)) {
    ck.issue(e.offset, e.path, `${key} must be a mapping of name: value pairs; got ${describe(v)}`);
    return undefined;
  }
  const out: Array<[string, Entry]> = [];
  for (const pair of v.items) {
    const keyNode = ck.peek(pair.key);
    const name = isScalar(keyNode) ? String(keyNode.value) : '';
    const path = `${e.path}.${name}`;
    const offset = offsetOfNode(pair.value, offsetOfNode(pair.key, e.offset));
    out.push([name, { value: ck.resolve(pair.value, offset, path), offset, path }]);
  }
  return out;
}

/** The start offset of a YAML node, or `fallback`. */
function offsetOfNode(node: unknown, fallback: number): number {
  if (typeof node === 'object' && node !== null && 'range' in node && Array.isArray(node.range) && typeof node.range[0] === 'number') return node.range[0];
  return fallback;
}

/** `dynamic_weight`: how reported weights are smoothed and bounded. */
function readDynamicWeight(ck: Checker, e: Entry): Partial<WeightPolicy> | undefined {
  const o = readMap(ck, e, '`dynamic_weight`', DYNAMIC_WEIGHT_KEYS);
  if (o === undefined) return undefined;
  const p: Partial<WeightPolicy> = {};
  let ok = true;
  const int = (key: (typeof DYNAMIC_WEIGHT_KEYS)[number], field: 'min' | 'max' | 'maxStep' | 'minChange', min: number): void => {
    const x = o.optional(key);
    if (x === undefined) return;
    const n = readInt(ck, x, key, min, 65_535);
    if (n === undefined) ok = false;
    else p[field] = n;
  };
  int('min', 'min', 0);
  int('max', 'max', 0);
  int('max_step', 'maxStep', 1);
  int('min_change', 'minChange', 1);
  const sE = o.optional('smoothing');
  if (sE !== undefined) {
    const n = readNumber(ck, sE, 'smoothing', 0.001, 1);
    if (n === undefined) ok = false;
    else p.smoothing = n;
  }
  if (p.min !== undefined && p.max !== undefined && p.min > p.max) {
    const at = o.optional('min') ?? e;
    ck.issue(at.offset, at.path, `min ${p.min} is above max ${p.max}; the applied weight is kept within min..max`);
    ok = false;
  }
  return ok ? p : undefined;
}

/** The `expect` of a UDP check: exactly one of exact, prefix, exact_hex, prefix_hex, regex. */
function readUdpExpect(ck: Checker, e: Entry): UdpExpect | undefined {
  const o = readMap(ck, e, 'a UDP `expect`', UDP_EXPECT_KEYS);
  if (o === undefined) return undefined;
  const present = UDP_EXPECT_KEYS.filter((k) => o.optional(k) !== undefined);
  if (present.length !== 1) {
    ck.issue(o.offset, e.path, `a UDP \`expect\` takes exactly one of ${UDP_EXPECT_KEYS.map((k) => `\`${k}\``).join(', ')}; got ${present.length === 0 ? 'none' : present.join(' and ')}`);
    return undefined;
  }
  const key = present[0] as (typeof UDP_EXPECT_KEYS)[number];
  const x = o.optional(key) as Entry;
  if (key === 'regex') {
    const pattern = readText(ck, x, 'regex');
    if (pattern === undefined) return undefined;
    const c = compilePattern(pattern);
    if (!c.ok) {
      ck.issue(x.offset, x.path, `regex is not a valid JavaScript regular expression: ${c.reason}`);
      return undefined;
    }
    return { match: 'regex', pattern };
  }
  const match = key.startsWith('exact') ? 'exact' : 'prefix';
  const bytes = key.endsWith('_hex') ? readHex(ck, x, key) : textBytes(readText(ck, x, key, { multiline: true }));
  return bytes === undefined ? undefined : { match, bytes };
}

function textBytes(s: string | undefined): Uint8Array | undefined {
  return s === undefined ? undefined : new Uint8Array(Buffer.from(s, 'utf8'));
}

/**
 * Reads one `health_check` mapping. `inherited` is the virtual server's check (for a real server's override):
 * its type is the default type, and the allowed keys follow the effective type.
 */
function readCheckFields(ck: Checker, e: Entry, inherited: CheckFields | undefined): CheckFields | undefined {
  // The type decides which keys are allowed: peek at it first.
  let type: CheckType | undefined = inherited?.type;
  const v = e.value;
  let typeEntry: Entry | undefined;
  if (isMap(v)) {
    for (const pair of v.items) {
      const k = ck.peek(pair.key);
      if (isScalar(k) && k.value === 'type') {
        const offset = offsetOfNode(pair.value, offsetOfNode(pair.key, e.offset));
        typeEntry = { value: ck.peek(pair.value), offset, path: `${e.path}.type` };
      }
    }
  }
  if (typeEntry !== undefined) {
    type = readChoice(ck, typeEntry, 'type', TYPES);
    if (type === undefined) return undefined;
  } else if (type === undefined) {
    ck.issue(e.offset, `${e.path}.type`, `missing required key \`type\`: one of ${TYPES.join(', ')}, e.g. \`health_check: { type: http, path: /healthz }\``);
    if (!isMap(v)) readMap(ck, e, '`health_check`', HEALTH_COMMON_KEYS);
    return undefined;
  }
  const t: CheckType = type;
  const allowedAnywhere = new Set<string>(Object.values(HEALTH_TYPE_KEYS).flat());
  const o = readMap(ck, e, `a \`${t}\` health_check`, [...HEALTH_COMMON_KEYS, ...HEALTH_TYPE_KEYS[t]], (key) => {
    if (!allowedAnywhere.has(key)) return undefined;
    const owners = TYPES.filter((x) => HEALTH_TYPE_KEYS[x].includes(key));
    return `\`${key}\` applies to ${owners.join('/')} checks; this check is \`type: ${t}\``;
  });
  if (o === undefined) return undefined;
  const f: CheckFields = { type: t, values: {}, caFile: undefined, dynamicWeight: undefined, entry: e };
  let ok = true;
  const set = (field: string, value: unknown): void => {
    if (value === undefined) ok = false;
    else f.values[field] = value;
  };
  const opt = (key: string, read: (x: Entry) => unknown, field = key): void => {
    const x = o.optional(key);
    if (x !== undefined) set(field, read(x));
  };

  // shared keys
  opt('interval', (x) => readDuration(ck, x, 'interval', { min: HEALTH_LIMITS.intervalMinMs, max: HEALTH_LIMITS.intervalMaxMs }), 'intervalMs');
  for (const key of ['timeout', 'connect_timeout', 'read_timeout'] as const) {
    opt(key, (x) => readDuration(ck, x, key, { min: HEALTH_LIMITS.timeoutMinMs, max: HEALTH_LIMITS.timeoutMaxMs }), COMMON_FIELD[key]);
  }
  opt('retry', (x) => readInt(ck, x, 'retry', 0, HEALTH_LIMITS.retryMax, ' (further attempts within one check)'));
  opt('delay_before_retry', (x) => readDuration(ck, x, 'delay_before_retry', { min: 0, max: HEALTH_LIMITS.delayBeforeRetryMaxMs }), 'delayBeforeRetryMs');
  opt('jitter', (x) => readNumber(ck, x, 'jitter', 0, HEALTH_LIMITS.jitterMax));
  opt('rise', (x) => readInt(ck, x, 'rise', 1, HEALTH_LIMITS.riseFallMax, ' (passing checks in a row that bring a server up)'));
  opt('fall', (x) => readInt(ck, x, 'fall', 1, HEALTH_LIMITS.riseFallMax, ' (failing checks in a row that take a server down)'));
  opt('connect_ip', (x) => readIp(ck, x, 'connect_ip', 'unicast')?.text, 'connectAddress');
  opt('connect_port', (x) => readInt(ck, x, 'connect_port', 1, 65_535), 'connectPort');
  opt('bind_to', (x) => readIp(ck, x, 'bind_to', 'unicast')?.text, 'bindTo');
  const dwE = o.optional('dynamic_weight');
  if (dwE !== undefined) {
    f.dynamicWeight = readDynamicWeight(ck, dwE);
    if (f.dynamicWeight === undefined) ok = false;
  }

  switch (t) {
    case 'tcp':
      break;
    case 'http':
    case 'https': {
      opt('method', (x) => readText(ck, x, 'method'));
      opt('path', (x) => readText(ck, x, 'path'));
      opt('host', (x) => readText(ck, x, 'host'));
      opt('headers', (x) => readStringMap(ck, x, 'headers', /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'HTTP header name'));
      opt('status', (x) => readStatus(ck, x));
      opt('body_contains', (x) => readText(ck, x, 'body_contains', { multiline: true }), 'bodyContains');
      opt(
        'body_regex',
        (x) => {
          const p = readText(ck, x, 'body_regex');
          if (p === undefined) return undefined;
          const c = compilePattern(p);
          if (c.ok) return p;
          ck.issue(x.offset, x.path, `body_regex is not a valid JavaScript regular expression: ${c.reason}`);
          return undefined;
        },
        'bodyRegex',
      );
      opt('digest', (x) => readDigest(ck, x));
      opt('max_body_bytes', (x) => readInt(ck, x, 'max_body_bytes', 1, HEALTH_LIMITS.bytesMax), 'maxBodyBytes');
      opt('max_match_bytes', (x) => readInt(ck, x, 'max_match_bytes', 1, HEALTH_LIMITS.bytesMax), 'maxMatchBytes');
      opt('regex_timeout', (x) => readDuration(ck, x, 'regex_timeout', { min: HEALTH_LIMITS.regexTimeoutMinMs, max: HEALTH_LIMITS.regexTimeoutMaxMs }), 'regexTimeoutMs');
      opt('weight_from', (x) => readWeightFrom(ck, x), 'weightFrom');
      if (t === 'https') {
        opt('sni', (x) => readText(ck, x, 'sni'));
        opt('tls_verify', (x) => readBool(ck, x, 'tls_verify'), 'tlsVerify');
        const caE = o.optional('ca_file');
        if (caE !== undefined) {
          f.caFile = readAbsolutePath(ck, caE, 'ca_file', '/etc/tandem/ca.pem');
          if (f.caFile === undefined) ok = false;
        }
      }
      break;
    }
    case 'script': {
      opt('script', (x) => readAbsolutePath(ck, x, 'script', '/usr/local/bin/check-web'));
      opt('args', (x) => {
        const items = readList(ck, x, 'args', '["--port", "80"]');
        if (items === undefined) return undefined;
        const out: string[] = [];
        for (const item of items) {
          const raw: unknown = isScalar(item.value) ? item.value.value : undefined;
          if (typeof raw === 'string' || typeof raw === 'number') out.push(String(raw));
          else {
            ck.issue(item.offset, item.path, `an argument must be text or a number; got ${describe(item.value)}`);
            return undefined;
          }
        }
        return out;
      });
      opt('dynamic', (x) => readBool(ck, x, 'dynamic'));
      opt('kill_grace', (x) => readDuration(ck, x, 'kill_grace', { min: 0, max: HEALTH_LIMITS.killGraceMaxMs }), 'killGraceMs');
      opt('max_output_bytes', (x) => readInt(ck, x, 'max_output_bytes', 0, HEALTH_LIMITS.bytesMax), 'maxOutputBytes');
      opt('env', (x) => {
        const pairs = readStringMap(ck, x, 'env', /^[A-Za-z_][A-Za-z0-9_]*$/, 'environment variable name');
        return pairs === undefined ? undefined : Object.fromEntries(pairs);
      });
      break;
    }
    case 'dns': {
      opt('name', (x) => {
        const s = readText(ck, x, 'name');
        if (s === undefined) return undefined;
        const name = s.endsWith('.') ? s.slice(0, -1) : s;
        if (!/^[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*$/.test(name) || name.length > 253) {
          ck.issue(x.offset, x.path, `name must be a DNS name such as www.example.com; got ${describe(x.value)}`);
          return undefined;
        }
        return name;
      });
      opt('query_type', (x) => readChoice(ck, x, 'query_type', Object.keys(DNS_QUERY_TYPES) as DnsQueryType[]), 'queryType');
      opt('expect', (x) => {
        const items = readList(ck, x, 'expect', '[10.99.0.21]');
        if (items === undefined) return undefined;
        const out: string[] = [];
        for (const item of items) {
          const s = readText(ck, item, 'an expected answer');
          if (s === undefined) return undefined;
          out.push(s);
        }
        return out;
      });
      break;
    }
    case 'udp': {
      const pE = o.optional('payload');
      const phE = o.optional('payload_hex');
      if (pE !== undefined && phE !== undefined) {
        ck.issue(phE.offset, phE.path, 'give `payload` (text) or `payload_hex` (bytes in hex), not both');
        ok = false;
      } else if (pE !== undefined) set('payload', textBytes(readText(ck, pE, 'payload', { allowEmpty: true, multiline: true })));
      else if (phE !== undefined) set('payload', readHex(ck, phE, 'payload_hex'));
      opt('expect', (x) => readUdpExpect(ck, x), 'udpExpect');
      opt('require_reply', (x) => readBool(ck, x, 'require_reply'), 'requireReply');
      opt('regex_timeout', (x) => readDuration(ck, x, 'regex_timeout', { min: HEALTH_LIMITS.regexTimeoutMinMs, max: HEALTH_LIMITS.regexTimeoutMaxMs }), 'regexTimeoutMs');
      break;
    }
    case 'smtp':
      opt('helo', (x) => {
        const s = readText(ck, x, 'helo');
        if (s !== undefined && /\s/.test(s)) {
          ck.issue(x.offset, x.path, `helo must be one word (a host name); got ${describe(x.value)}`);
          return undefined;
        }
        return s;
      });
      break;
    case 'agent':
      opt('send', (x) => readText(ck, x, 'send', { allowEmpty: true, multiline: true }));
      break;
  }
  return ok ? f : undefined;
}

/** The keys of `inherited` that apply to a check of type `type` (the merge rule in the module header). */
function inheritedFor(inherited: CheckFields | undefined, type: CheckType): { values: Record<string, unknown>; caFile: string | undefined; dynamicWeight: Partial<WeightPolicy> | undefined } {
  if (inherited === undefined) return { values: {}, caFile: undefined, dynamicWeight: undefined };
  if (inherited.type === type) return { values: inherited.values, caFile: inherited.caFile, dynamicWeight: inherited.dynamicWeight };
  const shared = new Set(Object.values(COMMON_FIELD));
  return { values: Object.fromEntries(Object.entries(inherited.values).filter(([k]) => shared.has(k))), caFile: undefined, dynamicWeight: inherited.dynamicWeight };
}

/**
 * Builds the complete spec of `own` merged over `inherited` (either may be absent, not both), reporting what
 * is still missing or inconsistent at `at`.
 */
function buildCheck(ck: Checker, fields: CheckFields, inherited: CheckFields | undefined, alpha: boolean, family: AddressFamily | undefined): HealthCheckConfig | undefined {
  const base = inheritedFor(inherited, fields.type);
  const v: Record<string, unknown> = { ...base.values, ...fields.values };
  const at = fields.entry;
  const missing = (key: string, hint: string): undefined => {
    ck.issue(at.offset, `${at.path}.${key}`, `missing required key \`${key}\` for a \`${fields.type}\` check: ${hint}`);
    return undefined;
  };
  let input: HealthCheckInput;
  const common = { ...v, alpha };
  switch (fields.type) {
    case 'script': {
      const script = v['script'];
      if (typeof script !== 'string') return missing('script', 'the program to run, e.g. `script: /usr/local/bin/check-web` (exit 0 = up)');
      const args = Array.isArray(v['args']) ? (v['args'] as string[]) : [];
      input = { ...common, type: 'script', command: [script, ...args] } as HealthCheckInput;
      break;
    }
    case 'dns':
      if (typeof v['name'] !== 'string') return missing('name', 'the name to ask for, e.g. `name: www.example.com`');
      input = { ...common, type: 'dns', name: v['name'] } as HealthCheckInput;
      break;
    case 'udp': {
      if (!(v['payload'] instanceof Uint8Array)) return missing('payload', 'what to send, as text (`payload: "ping"`) or hex (`payload_hex: "0a1b"`)');
      const udpExpect = v['udpExpect'];
      input = { ...common, type: 'udp', payload: v['payload'], ...(udpExpect === undefined ? {} : { expect: udpExpect }) } as HealthCheckInput;
      break;
    }
    default:
      input = { ...common, type: fields.type } as HealthCheckInput;
  }
  // Strip internal names that are not spec fields.
  const spec = withDefaults(input as HealthCheckInput & { type: CheckType }) as HealthCheckSpec & Record<string, unknown>;
  delete spec['script'];
  delete spec['args'];
  delete spec['udpExpect'];
  if (spec.type === 'http' || spec.type === 'https') {
    const problem = httpSpecProblem(spec);
    if (problem !== undefined) {
      ck.issue(at.offset, at.path, `this HTTP check cannot be sent: ${problem}`);
      return undefined;
    }
  }
  const target = spec.connectAddress;
  if (spec.bindTo !== undefined && (target !== undefined || family !== undefined)) {
    const tf = target === undefined ? family : target.includes(':') ? 6 : 4;
    const bf = spec.bindTo.includes(':') ? 6 : 4;
    if (tf !== bf) {
      ck.issue(at.offset, `${at.path}.bind_to`, `bind_to ${spec.bindTo} is ${familyName(bf)} but the check connects to an ${familyName(tf ?? bf)} address; use a local address of the same family`);
      return undefined;
    }
  }
  return { spec: spec as HealthCheckSpec, caFile: fields.caFile ?? base.caFile, dynamicWeight: fields.dynamicWeight ?? base.dynamicWeight };
}

/** The validated keys of a virtual server's `health_check`, for `resolveServerCheck`. */
export type VsCheckFields = CheckFields;

/** Reads a virtual server's `health_check` (its completeness is checked for each server that inherits it). */
export function readVsHealthCheck(ck: Checker, e: Entry): VsCheckFields | undefined {
  return readCheckFields(ck, e, undefined);
}

/** The check of one real server: its own `health_check` over the virtual server's; undefined result = invalid. */
export function resolveServerCheck(
  ck: Checker,
  own: Entry | undefined,
  vs: VsCheckFields | undefined,
  alpha: boolean,
  family: AddressFamily | undefined,
): { ok: true; check: HealthCheckConfig | undefined } | { ok: false } {
  if (own === undefined) {
    if (vs === undefined) return { ok: true, check: undefined };
    const c = buildCheck(ck, vs, undefined, alpha, family);
    return c === undefined ? { ok: false } : { ok: true, check: c };
  }
  const fields = readCheckFields(ck, own, vs);
  if (fields === undefined) return { ok: false };
  const c = buildCheck(ck, fields, vs, alpha, family);
  return c === undefined ? { ok: false } : { ok: true, check: c };
}

/** `quorum: { min, hysteresis }` (keepalived `quorum` / `hysteresis`). */
export function readQuorum(ck: Checker, e: Entry): VsQuorumConfig | undefined {
  const o: Obj | undefined = readMap(ck, e, '`quorum`', QUORUM_KEYS);
  if (o === undefined) return undefined;
  const minE = o.optional('min');
  const hE = o.optional('hysteresis');
  const min = minE === undefined ? DEFAULT_QUORUM.min : readInt(ck, minE, 'min', 0, HEALTH_LIMITS.quorumMax, ' (weight of the up real servers below which the quorum is lost; 0 = never lost)');
  const hysteresis = hE === undefined ? DEFAULT_QUORUM.hysteresis : readInt(ck, hE, 'hysteresis', 0, HEALTH_LIMITS.quorumMax, ' (lost below min - hysteresis, regained at min + hysteresis)');
  if (min === undefined || hysteresis === undefined) return undefined;
  if (hE !== undefined && min > 0 && hysteresis >= min) {
    ck.issue(hE.offset, hE.path, `hysteresis ${hysteresis} must be below min ${min}: the quorum is lost below min - hysteresis, which would never happen before every server is down`);
    return undefined;
  }
  return { min, hysteresis };
}
