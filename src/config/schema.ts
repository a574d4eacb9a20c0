/**
 * The configuration schema: checks a parsed YAML document (the `yaml` package's node tree, so every value keeps
 * its source offset) against tandem's format and converts it into a `TandemConfig` (camelCase keys, durations
 * in milliseconds, addresses in canonical text). It never stops at the first problem: every issue found is
 * returned with the offset it is about, the path in the document (`vrrp.instances[0].priority`) and a message
 * that says what is wrong and how to fix it. load.ts turns offsets into line:column and throws ConfigError.
 *
 * The schema is written by hand with a few small helpers; docs/configuration.md documents every key.
 */

import { isIP } from 'node:net';
import { isAbsolute } from 'node:path';
import { isAlias, isMap, isScalar, isSeq } from 'yaml';
import type { Document, Scalar, YAMLMap, YAMLSeq } from 'yaml';
import { addressBytes, formatAddress } from '../lib/address.ts';
import { formatDuration, parseDuration } from '../lib/duration.ts';
import { DEFAULT_QUORUM, readQuorum, readVsHealthCheck, resolveServerCheck } from './health-schema.ts';
import { AUTH_MODES, IPVS_MANAGE_MODES, SYNC_MASTER_THREAD_MODES, VS_FORWARDING, VS_PERSISTENCE_ENGINES, VS_PROTOCOLS, VS_SCHEDULER_FLAGS, VS_SCHEDULERS, VS_TUNNEL_CHECKSUMS, VS_TUNNEL_TYPES } from './types.ts';
import type {
  AddressFamily,
  AuthConfig,
  AuthMode,
  GarpConfig,
  HealthCheckConfig,
  IpvsConfig,
  IpvsTimeoutsConfig,
  MetricsConfig,
  NodeConfig,
  TandemConfig,
  TransportConfig,
  RealServerConfig,
  SyncConfig,
  VipConfig,
  VirtualServerConfig,
  VirtualServiceId,
  VrrpConfig,
  VrrpInstanceConfig,
  VsForwarding,
  VsPersistenceConfig,
  VsPersistenceEngine,
  VsProtocol,
  VsScheduler,
  VsSchedulerFlag,
  VsTunnelChecksum,
  VsTunnelConfig,
  VsTunnelType,
} from './types.ts';

/** UDP port for advertisements when `vrrp.transport.port` is not given. */
export const DEFAULT_PORT = 5112;
/** Instance priority when `priority` is not given (RFC 5798 section 5.2.4 default). */
export const DEFAULT_PRIORITY = 100;
/** Advertisement interval when `advert_interval` is not given. */
export const DEFAULT_ADVERT_INTERVAL_MS = 1000;
/** Whether a higher-priority backup takes over from a lower-priority master when `preempt` is not given. */
export const DEFAULT_PREEMPT = true;
/** Preemption delay when `preempt_delay` is not given. */
export const DEFAULT_PREEMPT_DELAY_MS = 0;
/** Directory for state kept across restarts when `node.state_dir` is not given. */
export const DEFAULT_STATE_DIR = '/var/lib/tandem';
/** Gratuitous ARP / unsolicited NA settings when `garp` (or one of its keys) is not given. */
export const DEFAULT_GARP: Readonly<GarpConfig> = Object.freeze({ repeat: 5, intervalMs: 200, refreshMs: 0 });
/** Highest priority accepted from a peer when `vrrp.max_peer_priority` is not given (255 = owner, refused). */
export const DEFAULT_MAX_PEER_PRIORITY = 254;
/** IP TTL / hop limit of multicast advertisements when `ttl` is not given (link-local: never routed). */
export const DEFAULT_MULTICAST_TTL = 1;
/** Authentication mode when `vrrp.auth.mode` is not given. */
export const DEFAULT_AUTH_MODE: AuthMode = 'enforce';

/** The `ipvs` section when the file has none (and the defaults of its keys). */
export const DEFAULT_IPVS: Readonly<IpvsConfig> = Object.freeze({ reconcileIntervalMs: 5000, manage: 'owned', timeouts: undefined });
/** The `ipvs` settings of a configuration, with the defaults when the file has no `ipvs` section. */
export function ipvsSettings(config: Pick<TandemConfig, 'ipvs'>): IpvsConfig {
  return config.ipvs ?? { ...DEFAULT_IPVS };
}

/** The virtual servers of a configuration (none when the file has no `virtual_servers`). */
export function virtualServersOf(config: Pick<TandemConfig, 'virtualServers'>): readonly VirtualServerConfig[] {
  return config.virtualServers ?? [];
}

/** Protocol of an address virtual server when `protocol` is not given (keepalived's default too). */
export const DEFAULT_VS_PROTOCOL: VsProtocol = 'tcp';
/** Scheduler when `scheduler` is not given (the kernel's and ipvsadm's default). */
export const DEFAULT_VS_SCHEDULER: VsScheduler = 'wlc';
/** Real server weight when `weight` is not given (keepalived's and ipvsadm's default). */
export const DEFAULT_WEIGHT = 1;
/** Persistence timeout when `persistence` is given without `timeout` (ipvsadm's `-p` default). */
export const DEFAULT_PERSISTENCE_TIMEOUT_MS = 300_000;

/** The ranges the schema enforces (milliseconds for durations), for messages, docs and tests. */
export const CONFIG_LIMITS = {
  nodeNameMaxLength: 64,
  interfaceNameMaxLength: 15,
  portMin: 1,
  portMax: 65535,
  ttlMin: 1,
  ttlMax: 255,
  priorityMin: 1,
  priorityMax: 255,
  vridMin: 1,
  vridMax: 255,
  keyIdMin: 0,
  keyIdMax: 255,
  /** Centiseconds on the wire: 1..4095 cs. */
  advertIntervalMinMs: 10,
  advertIntervalMaxMs: 40_950,
  advertIntervalStepMs: 10,
  preemptDelayMaxMs: 1_000_000,
  garpRepeatMin: 0,
  garpRepeatMax: 100,
  garpIntervalMinMs: 10,
  garpIntervalMaxMs: 10_000,
  /** 0 turns refresh off; otherwise at least this. */
  garpRefreshMinMs: 1_000,
  /** Upper bound keeps the timer well inside setTimeout's range. */
  garpRefreshMaxMs: 86_400_000,
  reconcileIntervalMinMs: 500,
  reconcileIntervalMaxMs: 3_600_000,
  /** The kernel refuses timeouts above INT_MAX / HZ seconds (24.8 days at HZ=1000); 24 days is below for any HZ. */
  ipvsTimeoutMaxMs: 2_073_600_000,
  persistenceTimeoutMaxMs: 2_073_600_000,
  /** ipvsadm's range; the kernel takes any non-negative int, but schedulers multiply weights by connection counts. */
  weightMin: 0,
  weightMax: 65_535,
  /** Connection counts; ipvsadm's range (INT_MAX). */
  thresholdMax: 2_147_483_647,
  fwmarkMin: 1,
  fwmarkMax: 4_294_967_295,
} as const;

/** One problem found by the schema: the source offset it is about, the document path and the message. */
export interface SchemaIssue {
  /** Offset in the source text (characters from the start) of the node the issue is about. */
  offset: number;
  /** Path in the document, e.g. `vrrp.instances[0].priority`; '' for the document itself. */
  path: string;
  message: string;
}

/** The outcome of validateDocument: a config, or every issue found. */
export type SchemaResult = { ok: true; config: TandemConfig } | { ok: false; issues: SchemaIssue[] };

// ---------------------------------------------------------------------------------------------------------
// Node access helpers

/** A resolved YAML value node (aliases followed); null when there is no node at all. */
export type Value = Scalar | YAMLMap | YAMLSeq | null;

/** A value found under a key or at a list index, with the offset to report issues at. */
export interface Entry {
  value: Value;
  offset: number;
  path: string;
}

/** Collects issues and resolves nodes against the document. */
export class Checker {
  readonly issues: SchemaIssue[] = [];
  /** `offset:path` of values that are dangling aliases: already reported, so later checks stay quiet there. */
  private readonly danglingAliases = new Set<string>();
  constructor(private readonly doc: Document) {}

  issue(offset: number, path: string, message: string): void {
    if (this.danglingAliases.has(`${offset}:${path}`)) return;
    this.issues.push({ offset, path, message });
  }

  /** Follows an alias to its anchored node; reports aliases that point nowhere. */
  resolve(node: unknown, fallbackOffset: number, path: string): Value {
    if (isAlias(node)) {
      const target = node.resolve(this.doc);
      if (target === undefined) {
        const offset = offsetOf(node, fallbackOffset);
        this.issue(offset, path, `alias \`*${node.source}\` refers to no anchor \`&${node.source}\` defined before it; define the anchor first or write the value out`);
        this.danglingAliases.add(`${offset}:${path}`);
        return null;
      }
      return target;
    }
    if (isScalar(node) || isMap(node) || isSeq(node)) return node;
    return null;
  }

  /** Like resolve, but reports nothing (for looking ahead at a value that is checked later). */
  peek(node: unknown): Value {
    const target: unknown = isAlias(node) ? node.resolve(this.doc) : node;
    return isScalar(target) || isMap(target) || isSeq(target) ? target : null;
  }
}

/** The start offset of a node, or `fallback` when it has no range. */
function offsetOf(node: unknown, fallback: number): number {
  if (typeof node === 'object' && node !== null && 'range' in node) {
    const range: unknown = node.range;
    if (Array.isArray(range) && typeof range[0] === 'number') return range[0];
  }
  return fallback;
}

/** Describes a value for a `got ...` clause. */
export function describe(v: Value): string {
  if (v === null) return 'nothing (the value is empty)';
  if (isMap(v)) return 'a mapping';
  if (isSeq(v)) return 'a list';
  const x: unknown = v.value;
  if (x === null || x === undefined) return 'nothing (the value is empty)';
  if (typeof x === 'string') return JSON.stringify(x.length > 60 ? `${x.slice(0, 57)}...` : x);
  if (typeof x === 'number' || typeof x === 'boolean' || typeof x === 'bigint') return String(x);
  if (x instanceof Uint8Array) return 'binary data (!!binary)';
  return `a value of type ${typeof x}`;
}

/** The text of a scalar when it is a string. */
export function stringOf(v: Value): string | undefined {
  return isScalar(v) && typeof v.value === 'string' ? v.value : undefined;
}

/** Levenshtein distance, for "did you mean" suggestions. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/** Length of the common prefix of two strings. */
function commonPrefix(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

/** The closest candidate to `word` (typo, prefix, shared stem, camelCase / dash spelling), if any is close enough. */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string): string => s.toLowerCase().replace(/[-_]/g, '');
  const w = norm(word);
  if (w === '') return undefined;
  let best: string | undefined;
  let bestScore = Infinity;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const n = norm(c);
    const distance = editDistance(w, n);
    let score = distance;
    if (w === n) score = 0;
    else if (w.length >= 3 && (n.startsWith(w) || w.startsWith(n))) score = Math.min(score, 1);
    else if (commonPrefix(w, n) >= Math.max(4, Math.ceil(n.length * 0.6))) score = Math.min(score, 2);
    // On equal scores the smaller plain edit distance wins (`tcp_fn` is `tcp_fin` mistyped, not `tcp` extended).
    if (score <= Math.max(1, Math.floor(n.length / 3)) && (score < bestScore || (score === bestScore && distance < bestDistance))) {
      best = c;
      bestScore = score;
      bestDistance = distance;
    }
  }
  return best;
}

/** A checked mapping: its known keys, for typed reads. */
export class Obj {
  constructor(
    private readonly ck: Checker,
    readonly path: string,
    readonly offset: number,
    private readonly entries: ReadonlyMap<string, Entry>,
  ) {}

  /** The path of a key under this mapping. */
  child(key: string): string {
    return this.path === '' ? key : `${this.path}.${key}`;
  }

  /** The entry under `key`, or undefined when the key is absent. */
  optional(key: string): Entry | undefined {
    return this.entries.get(key);
  }

  /** The entry under `key`; when absent, reports at this mapping (the parent) and returns undefined. */
  required(key: string, hint: string): Entry | undefined {
    const e = this.entries.get(key);
    if (e === undefined) this.ck.issue(this.offset, this.child(key), `missing required key \`${key}\`: ${hint}`);
    return e;
  }
}

/**
 * Checks that `e` is a mapping whose keys are all in `allowed` and returns it as an Obj. Unknown keys are
 * reported with a suggestion; `explain` may give a better message for a key that is valid elsewhere.
 */
export function readMap(ck: Checker, e: Entry, what: string, allowed: readonly string[], explain?: (key: string) => string | undefined): Obj | undefined {
  if (!isMap(e.value)) {
    ck.issue(e.offset, e.path, `${what} must be a mapping of key: value pairs (${allowed.map((k) => `\`${k}\``).join(', ')}); got ${describe(e.value)}`);
    return undefined;
  }
  const mapOffset = offsetOf(e.value, e.offset);
  const child = (key: string): string => (e.path === '' ? key : `${e.path}.${key}`);
  const entries = new Map<string, Entry>();
  for (const pair of e.value.items) {
    const keyOffset = offsetOf(pair.key, mapOffset);
    const keyNode = ck.resolve(pair.key, keyOffset, e.path);
    const raw: unknown = isScalar(keyNode) ? keyNode.value : undefined;
    if (typeof raw !== 'string' && typeof raw !== 'number' && typeof raw !== 'boolean') {
      ck.issue(keyOffset, e.path, `keys of ${what} must be plain names; got ${describe(keyNode)} as a key`);
      continue;
    }
    const key = String(raw);
    if (!allowed.includes(key)) {
      const special = explain?.(key);
      const near = suggest(key, allowed);
      const message =
        special ??
        (near !== undefined
          ? `unknown key \`${key}\`; did you mean \`${near}\`?`
          : `unknown key \`${key}\`; ${what} accepts ${allowed.map((k) => `\`${k}\``).join(', ')}`);
      ck.issue(keyOffset, child(key), message);
      continue;
    }
    const valueOffset = offsetOf(pair.value, keyOffset);
    entries.set(key, { value: ck.resolve(pair.value, valueOffset, child(key)), offset: valueOffset, path: child(key) });
  }
  return new Obj(ck, e.path, mapOffset, entries);
}

/** Checks that `e` is a list and returns its items as entries (paths `path[i]`). */
export function readList(ck: Checker, e: Entry, key: string, example: string): Entry[] | undefined {
  if (!isSeq(e.value)) {
    ck.issue(e.offset, e.path, `${key} must be a list, e.g. \`${key}: ${example}\`; got ${describe(e.value)}`);
    return undefined;
  }
  return e.value.items.map((item, i) => {
    const path = `${e.path}[${i}]`;
    const offset = offsetOf(item, offsetOf(e.value, e.offset));
    return { value: ck.resolve(item, offset, path), offset, path };
  });
}

/** An integer in [min, max]; `note` is appended to the range in the message. */
export function readInt(ck: Checker, e: Entry, key: string, min: number, max: number, note = ''): number | undefined {
  const v = e.value;
  if (isScalar(v) && typeof v.value === 'number' && Number.isInteger(v.value) && v.value >= min && v.value <= max) return v.value;
  const quoted = typeof stringOf(v) === 'string' && /^\s*-?\d+\s*$/.test(stringOf(v) ?? '') ? ' (write the number without quotes)' : '';
  ck.issue(e.offset, e.path, `${key} must be an integer ${min}..${max}${note}; got ${describe(v)}${quoted}`);
  return undefined;
}

/** true or false. */
export function readBool(ck: Checker, e: Entry, key: string): boolean | undefined {
  if (isScalar(e.value) && typeof e.value.value === 'boolean') return e.value.value;
  ck.issue(e.offset, e.path, `${key} must be true or false; got ${describe(e.value)}`);
  return undefined;
}

/** A non-empty string (numbers and booleans are refused: they must be quoted to be names). */
export function readString(ck: Checker, e: Entry, key: string, what: string): string | undefined {
  const s = stringOf(e.value);
  if (s !== undefined && s.trim() !== '') return s;
  const hint = isScalar(e.value) && (typeof e.value.value === 'number' || typeof e.value.value === 'boolean') ? ' (quote it to use it as text)' : '';
  ck.issue(e.offset, e.path, `${key} must be ${what}; got ${describe(e.value)}${hint}`);
  return undefined;
}

/** Milliseconds as configuration would write them, using the largest unit that divides evenly. */
function human(ms: number): string {
  if (ms === 0) return '0s';
  if (ms !== 0 && ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms !== 0 && ms % 60_000 === 0 && ms >= 600_000) return `${ms / 60_000}m`;
  return formatDuration(ms);
}

/** Bounds for a duration; `zeroOff` allows exactly 0 below `min` (meaning "off"). */
interface DurationRule {
  min: number;
  max: number;
  step?: number;
  zeroOff?: boolean;
  stepReason?: string;
}

/** A duration string (`20ms`, `1s`, `1.5s`, `2m`) converted to whole milliseconds and checked against `rule`. */
export function readDuration(ck: Checker, e: Entry, key: string, rule: DurationRule): number | undefined {
  const v = e.value;
  const span = `${human(rule.min)}..${human(rule.max)}`;
  const range = rule.zeroOff === true ? `0s (off) or ${span}` : span;
  if (isScalar(v) && typeof v.value === 'number') {
    ck.issue(e.offset, e.path, `${key} must be a duration with a unit, e.g. \`1s\` or \`200ms\`; a bare number (${String(v.value)}) has no unit`);
    return undefined;
  }
  const s = stringOf(v);
  const ms = s === undefined ? undefined : parseDuration(s);
  if (ms === undefined) {
    ck.issue(e.offset, e.path, `${key} must be a duration such as \`20ms\`, \`1s\`, \`1.5s\` or \`2m\` (${range}); got ${describe(v)}`);
    return undefined;
  }
  if (!Number.isInteger(ms)) {
    ck.issue(e.offset, e.path, `${key} must be a whole number of milliseconds; got ${s ?? ''}`);
    return undefined;
  }
  const inRange = (ms >= rule.min && ms <= rule.max) || (rule.zeroOff === true && ms === 0);
  if (!inRange) {
    ck.issue(e.offset, e.path, `${key} must be ${range}; got ${s ?? ''}`);
    return undefined;
  }
  if (rule.step !== undefined && ms % rule.step !== 0) {
    ck.issue(e.offset, e.path, `${key} must be a multiple of ${human(rule.step)}${rule.stepReason ?? ''}; got ${s ?? ''}`);
    return undefined;
  }
  return ms;
}

/** A value read with a default: the default when the key is absent, the checked value, or undefined on error. */
export function withDefault<T>(e: Entry | undefined, fallback: T, read: (e: Entry) => T | undefined): T | undefined {
  return e === undefined ? fallback : read(e);
}

// ---------------------------------------------------------------------------------------------------------
// Addresses

/** A parsed IP address: family, bytes and canonical text (lib/address.ts `canonicalAddress` form). */
export interface Ip {
  family: AddressFamily;
  bytes: Buffer;
  text: string;
}

/** Parses an IPv4 or IPv6 literal (no zone id); undefined when it is not one. */
function parseIp(s: string): Ip | undefined {
  const bytes = addressBytes(s);
  if (bytes === undefined) return undefined;
  return { family: bytes.length === 4 ? 4 : 6, bytes, text: formatAddress(bytes) };
}

function isMulticast(ip: Ip): boolean {
  const first = ip.bytes[0] ?? 0;
  return ip.family === 4 ? first >= 224 && first <= 239 : first === 0xff;
}

function isUnspecified(ip: Ip): boolean {
  return ip.bytes.every((b) => b === 0);
}

export function familyName(f: AddressFamily): string {
  return f === 4 ? 'IPv4' : 'IPv6';
}

/** An IP address literal; `unicast` refuses multicast and unspecified addresses. */
export function readIp(ck: Checker, e: Entry, key: string, kind: 'unicast' | 'multicast'): Ip | undefined {
  const s = stringOf(e.value);
  if (s === undefined) {
    ck.issue(e.offset, e.path, `${key} must be an IPv4 or IPv6 address such as 10.99.0.2 or fd00::2; got ${describe(e.value)}`);
    return undefined;
  }
  if (s.includes('%')) {
    ck.issue(e.offset, e.path, `${key} must be an address without a zone id (\`%...\`); the interface comes from \`interface\`; got ${describe(e.value)}`);
    return undefined;
  }
  if (s.includes('/')) {
    ck.issue(e.offset, e.path, `${key} must be a single address without a prefix length; got ${describe(e.value)}`);
    return undefined;
  }
  const ip = parseIp(s.trim());
  if (ip === undefined) {
    ck.issue(e.offset, e.path, `${key} must be an IPv4 or IPv6 address such as 10.99.0.2 or fd00::2; got ${describe(e.value)}`);
    return undefined;
  }
  if (kind === 'multicast' && !isMulticast(ip)) {
    ck.issue(e.offset, e.path, `${key} must be a multicast address (224.0.0.0/4 or ff00::/8), e.g. 224.0.0.18 or ff02::12; got ${s}`);
    return undefined;
  }
  if (kind === 'unicast' && (isMulticast(ip) || isUnspecified(ip))) {
    ck.issue(e.offset, e.path, `${key} must be a unicast address, not ${isUnspecified(ip) ? 'the unspecified address' : 'a multicast address'}; got ${s}`);
    return undefined;
  }
  return ip;
}

/** A VIP `address[/prefix]`; the prefix defaults to the full length (/32 or /128). */
function readVip(ck: Checker, e: Entry, iface: string): { vip: VipConfig; ip: Ip } | undefined {
  const s = stringOf(e.value)?.trim();
  const example = 'e.g. 10.99.0.100/32 or "fd00::100/128" (the prefix is optional)';
  if (s === undefined) {
    ck.issue(e.offset, e.path, `a VIP must be an address with an optional prefix length, ${example}; got ${describe(e.value)}`);
    return undefined;
  }
  const slash = s.indexOf('/');
  const addrText = slash < 0 ? s : s.slice(0, slash);
  const prefixText = slash < 0 ? undefined : s.slice(slash + 1);
  if (addrText.includes('%')) {
    ck.issue(e.offset, e.path, `a VIP must not carry a zone id (\`%...\`); set the instance's \`interface\` instead; got ${s}`);
    return undefined;
  }
  const ip = parseIp(addrText);
  if (ip === undefined) {
    ck.issue(e.offset, e.path, `a VIP must be an IPv4 or IPv6 address with an optional prefix length, ${example}; got ${describe(e.value)}`);
    return undefined;
  }
  if (isMulticast(ip) || isUnspecified(ip)) {
    ck.issue(e.offset, e.path, `a VIP must be a unicast address, not ${isUnspecified(ip) ? 'the unspecified address' : 'a multicast address'}; got ${s}`);
    return undefined;
  }
  const maxPrefix = ip.family === 4 ? 32 : 128;
  let prefixLength = maxPrefix;
  if (prefixText !== undefined) {
    const p = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
    if (!(p >= 0 && p <= maxPrefix)) {
      ck.issue(e.offset, e.path, `the prefix length of an ${familyName(ip.family)} VIP must be 0..${maxPrefix} (usually /${maxPrefix}); got ${s}`);
      return undefined;
    }
    prefixLength = p;
  }
  return { vip: { address: ip.text, prefixLength, family: ip.family, interface: iface }, ip };
}

// ---------------------------------------------------------------------------------------------------------
// Names and paths

const NODE_NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;

/** A node or instance name: 1..64 of [A-Za-z0-9._-]. */
function readName(ck: Checker, e: Entry, key: string): string | undefined {
  const s = readString(ck, e, key, `a name of 1..${CONFIG_LIMITS.nodeNameMaxLength} characters from A-Z a-z 0-9 . _ -`);
  if (s === undefined) return undefined;
  if (!NODE_NAME_RE.test(s)) {
    ck.issue(e.offset, e.path, `${key} must be 1..${CONFIG_LIMITS.nodeNameMaxLength} characters from A-Z a-z 0-9 . _ - (no spaces); got ${describe(e.value)}`);
    return undefined;
  }
  return s;
}

/** A Linux interface name: 1..15 characters, no '/', ':' or whitespace, not '.' or '..'. */
function readInterface(ck: Checker, e: Entry, key: string): string | undefined {
  const s = readString(ck, e, key, 'a network interface name such as eth0');
  if (s === undefined) return undefined;
  if (s.length > CONFIG_LIMITS.interfaceNameMaxLength || /[/:\s]/.test(s) || s === '.' || s === '..') {
    ck.issue(e.offset, e.path, `${key} must be a Linux interface name: 1..${CONFIG_LIMITS.interfaceNameMaxLength} characters without '/', ':' or spaces (see \`ip link\`); got ${describe(e.value)}`);
    return undefined;
  }
  return s;
}

/** An absolute filesystem path. */
export function readAbsolutePath(ck: Checker, e: Entry, key: string, example: string): string | undefined {
  const s = readString(ck, e, key, `an absolute path such as ${example}`);
  if (s === undefined) return undefined;
  if (!isAbsolute(s)) {
    ck.issue(e.offset, e.path, `${key} must be an absolute path such as ${example} (tandem runs as a daemon; relative paths are ambiguous); got ${describe(e.value)}`);
    return undefined;
  }
  return s;
}

/** `host:port` for a listening socket: IPv4, hostname or [IPv6], and port 1..65535. */
function readListen(ck: Checker, e: Entry, key: string): string | undefined {
  const s = stringOf(e.value);
  const bad = (): undefined => {
    ck.issue(e.offset, e.path, `${key} must be host:port, e.g. "127.0.0.1:9112", "0.0.0.0:9112" or "[::1]:9112"; got ${describe(e.value)}`);
    return undefined;
  };
  if (s === undefined) return bad();
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(s);
  if (m === null) return bad();
  const v6 = m[1];
  const host = m[2];
  const port = Number(m[3]);
  if (v6 !== undefined && isIP(v6) !== 6) return bad();
  const hostname = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
  if (host !== undefined && isIP(host) !== 4 && !hostname.test(host)) return bad();
  if (port < 1 || port > 65535) {
    ck.issue(e.offset, e.path, `the port in ${key} must be 1..65535; got ${s}`);
    return undefined;
  }
  return s;
}

// ---------------------------------------------------------------------------------------------------------
// Sections

const TOP_KEYS = ['node', 'vrrp', 'metrics', 'ipvs', 'virtual_servers', 'sync'] as const;
const NODE_KEYS = ['name', 'interface', 'state_dir'] as const;
const VRRP_KEYS = ['transport', 'auth', 'max_peer_priority', 'instances'] as const;
const UNICAST_KEYS = ['mode', 'port', 'source', 'peers'] as const;
const MULTICAST_KEYS = ['mode', 'port', 'group', 'source', 'ttl'] as const;
const TRANSPORT_MODES = ['unicast', 'multicast'] as const;
const AUTH_KEYS = ['key_file', 'mode', 'send_key_id'] as const;
const INSTANCE_KEYS = ['name', 'vrid', 'priority', 'advert_interval', 'preempt', 'preempt_delay', 'interface', 'vips', 'garp'] as const;
const GARP_KEYS = ['repeat', 'interval', 'refresh'] as const;
const METRICS_KEYS = ['listen'] as const;

/** An enum-like string value with a suggestion when misspelt. */
export function readChoice<T extends string>(ck: Checker, e: Entry, key: string, choices: readonly T[]): T | undefined {
  const s = stringOf(e.value);
  const found = choices.find((c) => c === s);
  if (found !== undefined) return found;
  const near = s === undefined ? undefined : suggest(s, choices);
  ck.issue(e.offset, e.path, `${key} must be one of ${choices.join(', ')}; got ${describe(e.value)}${near === undefined ? '' : `; did you mean \`${near}\`?`}`);
  return undefined;
}

function readNode(ck: Checker, e: Entry): NodeConfig | undefined {
  const o = readMap(ck, e, '`node`', NODE_KEYS);
  if (o === undefined) return undefined;
  const nameE = o.required('name', 'the name of this director, e.g. `name: dirA`');
  const ifE = o.required('interface', 'the interface that carries the VIPs and advertisements, e.g. `interface: eth0`');
  const name = nameE === undefined ? undefined : readName(ck, nameE, 'name');
  const iface = ifE === undefined ? undefined : readInterface(ck, ifE, 'interface');
  const stateDir = withDefault(o.optional('state_dir'), DEFAULT_STATE_DIR, (x) => readAbsolutePath(ck, x, 'state_dir', DEFAULT_STATE_DIR));
  if (name === undefined || iface === undefined || stateDir === undefined) return undefined;
  return { name, interface: iface, stateDir };
}

function readTransport(ck: Checker, e: Entry): TransportConfig | undefined {
  // The mode decides which keys are valid, so look at it before checking the keys.
  let mode: (typeof TRANSPORT_MODES)[number] | undefined;
  if (isMap(e.value)) {
    for (const pair of e.value.items) {
      if (isScalar(pair.key) && pair.key.value === 'mode') {
        const v = ck.peek(pair.value);
        mode = TRANSPORT_MODES.find((m) => isScalar(v) && v.value === m);
      }
    }
  }
  const allowed: readonly string[] = mode === 'unicast' ? UNICAST_KEYS : mode === 'multicast' ? MULTICAST_KEYS : [...new Set([...UNICAST_KEYS, ...MULTICAST_KEYS])];
  const explain = (key: string): string | undefined => {
    if (mode === 'unicast' && (MULTICAST_KEYS as readonly string[]).includes(key)) return `\`${key}\` is only valid with \`mode: multicast\`; remove it or switch the mode`;
    if (mode === 'multicast' && (UNICAST_KEYS as readonly string[]).includes(key)) return `\`${key}\` is only valid with \`mode: unicast\`; remove it or switch the mode`;
    return undefined;
  };
  const o = readMap(ck, e, '`vrrp.transport`', allowed, explain);
  if (o === undefined) return undefined;
  const modeE = o.required('mode', 'how advertisements travel: `mode: unicast` (with `source` and `peers`) or `mode: multicast` (with `group`)');
  const readMode = modeE === undefined ? undefined : readChoice(ck, modeE, 'mode', TRANSPORT_MODES);
  const port = withDefault(o.optional('port'), DEFAULT_PORT, (x) => readInt(ck, x, 'port', CONFIG_LIMITS.portMin, CONFIG_LIMITS.portMax, ' (UDP port of the advertisements)'));
  if (readMode === 'unicast') {
    const srcE = o.required('source', 'the address this node sends from, e.g. `source: 10.99.0.2`');
    const peersE = o.required('peers', 'the addresses of the other directors, e.g. `peers: [10.99.0.3]`');
    const source = srcE === undefined ? undefined : readIp(ck, srcE, 'source', 'unicast');
    const peers = peersE === undefined ? undefined : readList(ck, peersE, 'peers', '[10.99.0.3]');
    const out: string[] = [];
    let peersOk = peers !== undefined;
    if (peers !== undefined && peersE !== undefined && peers.length === 0) {
      ck.issue(peersE.offset, peersE.path, 'peers must list at least one peer address, e.g. `peers: [10.99.0.3]`');
      peersOk = false;
    }
    const seen = new Map<string, string>();
    for (const p of peers ?? []) {
      const ip = readIp(ck, p, 'a peer', 'unicast');
      if (ip === undefined) {
        peersOk = false;
        continue;
      }
      if (source !== undefined && ip.text === source.text) {
        ck.issue(p.offset, p.path, `peers must not include this node's own source address ${source.text}; list only the other directors`);
        peersOk = false;
      } else if (source !== undefined && ip.family !== source.family) {
        ck.issue(p.offset, p.path, `peer ${ip.text} is ${familyName(ip.family)} but source ${source.text} is ${familyName(source.family)}; all peers must be the same family as source`);
        peersOk = false;
      } else if (seen.has(ip.text)) {
        ck.issue(p.offset, p.path, `peer ${ip.text} is listed twice (also at ${seen.get(ip.text) ?? ''}); list each peer once`);
        peersOk = false;
      } else seen.set(ip.text, p.path);
      out.push(ip.text);
    }
    if (source === undefined || !peersOk || port === undefined) return undefined;
    return { mode: 'unicast', port, source: source.text, peers: out };
  }
  if (readMode === 'multicast') {
    const groupE = o.required('group', 'the multicast group, e.g. `group: 224.0.0.18` (IPv4) or `group: ff02::12` (IPv6)');
    const group = groupE === undefined ? undefined : readIp(ck, groupE, 'group', 'multicast');
    const srcE = o.optional('source');
    let source: Ip | undefined;
    let sourceOk = true;
    if (srcE !== undefined) {
      source = readIp(ck, srcE, 'source', 'unicast');
      sourceOk = source !== undefined;
      if (source !== undefined && group !== undefined && source.family !== group.family) {
        ck.issue(srcE.offset, srcE.path, `source ${source.text} is ${familyName(source.family)} but group ${group.text} is ${familyName(group.family)}; use a source of the group's family`);
        sourceOk = false;
      }
    }
    const ttl = withDefault(o.optional('ttl'), DEFAULT_MULTICAST_TTL, (x) => readInt(ck, x, 'ttl', CONFIG_LIMITS.ttlMin, CONFIG_LIMITS.ttlMax, ' (1 keeps advertisements on the local link)'));
    if (group === undefined || !sourceOk || ttl === undefined || port === undefined) return undefined;
    return { mode: 'multicast', port, group: group.text, source: source?.text, ttl };
  }
  return undefined;
}

function readAuth(ck: Checker, e: Entry): AuthConfig | undefined {
  const o = readMap(ck, e, '`vrrp.auth`', AUTH_KEYS);
  if (o === undefined) return undefined;
  const keyE = o.required('key_file', 'the file with the shared keys, e.g. `key_file: /etc/tandem/vrrp.key`');
  const keyFile = keyE === undefined ? undefined : readAbsolutePath(ck, keyE, 'key_file', '/etc/tandem/vrrp.key');
  const mode = withDefault(o.optional('mode'), DEFAULT_AUTH_MODE, (x) => readChoice(ck, x, 'mode', AUTH_MODES));
  const idE = o.optional('send_key_id');
  const sendKeyId = idE === undefined ? undefined : readInt(ck, idE, 'send_key_id', CONFIG_LIMITS.keyIdMin, CONFIG_LIMITS.keyIdMax, ' (a key id from key_file)');
  if (keyFile === undefined || mode === undefined || (idE !== undefined && sendKeyId === undefined)) return undefined;
  return { keyFile, mode, sendKeyId };
}

function readGarp(ck: Checker, e: Entry | undefined): GarpConfig | undefined {
  if (e === undefined) return { ...DEFAULT_GARP };
  const o = readMap(ck, e, '`garp`', GARP_KEYS);
  if (o === undefined) return undefined;
  const repeat = withDefault(o.optional('repeat'), DEFAULT_GARP.repeat, (x) =>
    readInt(ck, x, 'repeat', CONFIG_LIMITS.garpRepeatMin, CONFIG_LIMITS.garpRepeatMax, ' (announcements after the first)'),
  );
  const intervalMs = withDefault(o.optional('interval'), DEFAULT_GARP.intervalMs, (x) =>
    readDuration(ck, x, 'interval', { min: CONFIG_LIMITS.garpIntervalMinMs, max: CONFIG_LIMITS.garpIntervalMaxMs }),
  );
  const refreshMs = withDefault(o.optional('refresh'), DEFAULT_GARP.refreshMs, (x) =>
    readDuration(ck, x, 'refresh', { min: CONFIG_LIMITS.garpRefreshMinMs, max: CONFIG_LIMITS.garpRefreshMaxMs, zeroOff: true }),
  );
  if (repeat === undefined || intervalMs === undefined || refreshMs === undefined) return undefined;
  return { repeat, intervalMs, refreshMs };
}

/** What earlier instances claimed, for uniqueness checks across instances. */
interface Claims {
  names: Map<string, string>;
  vrids: Map<number, string>;
  vips: Map<string, string>;
}

function readInstance(ck: Checker, e: Entry, nodeInterface: string | undefined, claims: Claims): VrrpInstanceConfig | undefined {
  const o = readMap(ck, e, 'an instance', INSTANCE_KEYS);
  if (o === undefined) return undefined;
  const nameE = o.required('name', 'a name for this instance, e.g. `name: VI_1`');
  const vridE = o.required('vrid', 'the virtual router id shared with the peers, e.g. `vrid: 51`');
  const vipsE = o.required('vips', 'the addresses this instance moves, e.g. `vips: [10.99.0.100/32]`');

  let name = nameE === undefined ? undefined : readName(ck, nameE, 'name');
  if (name !== undefined && nameE !== undefined) {
    const prev = claims.names.get(name);
    if (prev !== undefined) {
      ck.issue(nameE.offset, nameE.path, `instance name \`${name}\` is already used by ${prev}; give each instance its own name`);
      name = undefined;
    } else claims.names.set(name, o.path);
  }
  let vrid = vridE === undefined ? undefined : readInt(ck, vridE, 'vrid', CONFIG_LIMITS.vridMin, CONFIG_LIMITS.vridMax, ' (virtual router id, the same on every director)');
  if (vrid !== undefined && vridE !== undefined) {
    const prev = claims.vrids.get(vrid);
    if (prev !== undefined) {
      ck.issue(vridE.offset, vridE.path, `vrid ${vrid} is already used by ${prev}; each instance needs its own vrid`);
      vrid = undefined;
    } else claims.vrids.set(vrid, o.path);
  }
  const priority = withDefault(o.optional('priority'), DEFAULT_PRIORITY, (x) =>
    readInt(ck, x, 'priority', CONFIG_LIMITS.priorityMin, CONFIG_LIMITS.priorityMax, ' (255 = address owner)'),
  );
  const advertIntervalMs = withDefault(o.optional('advert_interval'), DEFAULT_ADVERT_INTERVAL_MS, (x) =>
    readDuration(ck, x, 'advert_interval', {
      min: CONFIG_LIMITS.advertIntervalMinMs,
      max: CONFIG_LIMITS.advertIntervalMaxMs,
      step: CONFIG_LIMITS.advertIntervalStepMs,
      stepReason: ' (it is sent in centiseconds)',
    }),
  );
  const preempt = withDefault(o.optional('preempt'), DEFAULT_PREEMPT, (x) => readBool(ck, x, 'preempt'));
  const preemptDelayMs = withDefault(o.optional('preempt_delay'), DEFAULT_PREEMPT_DELAY_MS, (x) =>
    readDuration(ck, x, 'preempt_delay', { min: 0, max: CONFIG_LIMITS.preemptDelayMaxMs }),
  );
  const ifE = o.optional('interface');
  const iface = ifE === undefined ? nodeInterface : readInterface(ck, ifE, 'interface');
  const garp = readGarp(ck, o.optional('garp'));

  let vipsOk = true;
  const vips: VipConfig[] = [];
  const list = vipsE === undefined ? undefined : readList(ck, vipsE, 'vips', '[10.99.0.100/32]');
  if (list === undefined) vipsOk = false;
  else if (list.length === 0 && vipsE !== undefined) {
    ck.issue(vipsE.offset, vipsE.path, 'vips must list at least one address, e.g. `vips: [10.99.0.100/32]`');
    vipsOk = false;
  }
  for (const item of list ?? []) {
    const r = readVip(ck, item, iface ?? '');
    if (r === undefined) {
      vipsOk = false;
      continue;
    }
    const prev = claims.vips.get(r.ip.text);
    if (prev !== undefined) {
      ck.issue(item.offset, item.path, `VIP ${r.ip.text} is already listed at ${prev}; a VIP can belong to one instance only, once`);
      vipsOk = false;
      continue;
    }
    claims.vips.set(r.ip.text, item.path);
    vips.push(r.vip);
  }

  if (
    name === undefined ||
    vrid === undefined ||
    priority === undefined ||
    advertIntervalMs === undefined ||
    preempt === undefined ||
    preemptDelayMs === undefined ||
    iface === undefined ||
    garp === undefined ||
    !vipsOk
  )
    return undefined;
  return { name, vrid, priority, advertIntervalMs, preempt, preemptDelayMs, interface: iface, vips, garp };
}

function readVrrp(ck: Checker, e: Entry, nodeInterface: string | undefined): VrrpConfig | undefined {
  const o = readMap(ck, e, '`vrrp`', VRRP_KEYS);
  if (o === undefined) return undefined;
  const tE = o.required('transport', 'how advertisements travel, e.g. `transport: { mode: unicast, source: 10.99.0.2, peers: [10.99.0.3] }`');
  const iE = o.required('instances', 'the list of virtual routers, each with `name`, `vrid` and `vips`');
  const transport = tE === undefined ? undefined : readTransport(ck, tE);
  const aE = o.optional('auth');
  const auth = aE === undefined ? undefined : readAuth(ck, aE);
  const maxPeerPriority = withDefault(o.optional('max_peer_priority'), DEFAULT_MAX_PEER_PRIORITY, (x) =>
    readInt(ck, x, 'max_peer_priority', CONFIG_LIMITS.priorityMin, CONFIG_LIMITS.priorityMax, ' (255 accepts address owners)'),
  );
  const list = iE === undefined ? undefined : readList(ck, iE, 'instances', '[{ name: VI_1, vrid: 51, vips: [10.99.0.100/32] }]');
  if (list !== undefined && list.length === 0 && iE !== undefined) {
    ck.issue(iE.offset, iE.path, 'instances must list at least one instance, e.g. `- { name: VI_1, vrid: 51, vips: [10.99.0.100/32] }`');
  }
  const claims: Claims = { names: new Map(), vrids: new Map(), vips: new Map() };
  const instances: VrrpInstanceConfig[] = [];
  let instancesOk = list !== undefined && list.length > 0;
  for (const item of list ?? []) {
    const inst = readInstance(ck, item, nodeInterface, claims);
    if (inst === undefined) instancesOk = false;
    else instances.push(inst);
  }
  if (transport === undefined || (aE !== undefined && auth === undefined) || maxPeerPriority === undefined || !instancesOk) return undefined;
  return { transport, auth, maxPeerPriority, instances };
}

function readMetrics(ck: Checker, e: Entry | undefined): MetricsConfig | undefined {
  if (e === undefined) return { listen: undefined };
  const o = readMap(ck, e, '`metrics`', METRICS_KEYS);
  if (o === undefined) return undefined;
  const lE = o.optional('listen');
  if (lE === undefined) return { listen: undefined };
  const listen = readListen(ck, lE, 'listen');
  return listen === undefined ? undefined : { listen };
}

// ---------------------------------------------------------------------------------------------------------
// IPVS: `ipvs` and `virtual_servers`

const IPVS_KEYS = ['reconcile_interval', 'manage', 'timeouts'] as const;
const IPVS_TIMEOUT_KEYS = ['tcp', 'tcp_fin', 'udp'] as const;
const VS_KEYS = [
  'name',
  'address',
  'fwmark',
  'family',
  'port',
  'protocol',
  'scheduler',
  'scheduler_flags',
  'forwarding',
  'tunnel',
  'persistence',
  'one_packet',
  'fullnat',
  'real_servers',
  'health_check',
  'inhibit_on_failure',
  'quorum',
  'sorry_server',
  'alpha',
] as const;
const VS_TUNNEL_KEYS = ['type', 'port', 'checksum'] as const;
const VS_PERSISTENCE_KEYS = ['timeout', 'netmask', 'pe'] as const;
const VS_FULLNAT_KEYS = ['source'] as const;
const REAL_SERVER_KEYS = ['address', 'port', 'weight', 'upper_threshold', 'lower_threshold', 'health_check'] as const;
/** A sorry server is a real server without a check of its own (it is used only when the others are down). */
const SORRY_SERVER_KEYS = ['address', 'port', 'weight', 'upper_threshold', 'lower_threshold'] as const;
const VS_FAMILIES = ['ipv4', 'ipv6'] as const;

/** IP_VS_SVC_F_SCHED1..3 bit of each scheduler flag (include/uapi/linux/ip_vs.h). */
const SCHEDULER_FLAG_BITS: Readonly<Record<VsSchedulerFlag, number>> = {
  'sh-fallback': 0x8,
  'sh-port': 0x10,
  'mh-fallback': 0x8,
  'mh-port': 0x10,
  'flag-1': 0x8,
  'flag-2': 0x10,
  'flag-3': 0x20,
};

/** Long names operators write for schedulers (keepalived docs, ipvsadm(8)), for did-you-mean. */
const SCHEDULER_ALIASES: Readonly<Record<string, VsScheduler>> = {
  roundrobin: 'rr',
  weightedroundrobin: 'wrr',
  leastconnection: 'lc',
  leastconnections: 'lc',
  weightedleastconnection: 'wlc',
  weightedleastconnections: 'wlc',
  localitybasedleastconnection: 'lblc',
  destinationhashing: 'dh',
  destinationhash: 'dh',
  sourcehashing: 'sh',
  sourcehash: 'sh',
  shortestexpecteddelay: 'sed',
  neverqueue: 'nq',
  weightedfailover: 'fo',
  failover: 'fo',
  weightedoverflow: 'ovf',
  overflow: 'ovf',
  maglev: 'mh',
  maglevhashing: 'mh',
  poweroftwo: 'twos',
  poweroftwochoices: 'twos',
};

/** A scheduler name: exact, or refused with a suggestion (typo, swapped letters, case, or a long name). */
function readScheduler(ck: Checker, e: Entry): VsScheduler | undefined {
  const s = stringOf(e.value);
  const found = VS_SCHEDULERS.find((c) => c === s);
  if (found !== undefined) return found;
  let near: string | undefined;
  if (s !== undefined) {
    const norm = s.toLowerCase().replace(/[^a-z0-9]/g, '');
    near = SCHEDULER_ALIASES[norm] ?? suggest(s, VS_SCHEDULERS);
    // Two swapped letters (`wcl` for `wlc`) are one slip, not two edits.
    near ??= VS_SCHEDULERS.find((c) => c.length === norm.length && c !== norm && [...c].sort().join('') === [...norm].sort().join('') && [...c].filter((ch, i) => ch !== norm[i]).length === 2);
  }
  ck.issue(e.offset, e.path, `scheduler must be one of ${VS_SCHEDULERS.join(', ')}; got ${describe(e.value)}${near === undefined ? '' : `; did you mean \`${near}\`?`}`);
  return undefined;
}

/** A whole number of seconds as a duration (`900s`, `15m`); returns milliseconds. */
function readSeconds(ck: Checker, e: Entry, key: string, minMs: number, maxMs: number): number | undefined {
  const ms = readDuration(ck, e, key, { min: minMs, max: maxMs });
  if (ms === undefined) return undefined;
  if (ms % 1000 !== 0) {
    ck.issue(e.offset, e.path, `${key} must be a whole number of seconds (the kernel counts seconds); got ${stringOf(e.value) ?? ''}`);
    return undefined;
  }
  return ms;
}

function readIpvsTimeouts(ck: Checker, e: Entry): IpvsTimeoutsConfig | undefined {
  const o = readMap(ck, e, '`ipvs.timeouts`', IPVS_TIMEOUT_KEYS);
  if (o === undefined) return undefined;
  let ok = true;
  const one = (key: (typeof IPVS_TIMEOUT_KEYS)[number]): number | undefined => {
    const x = o.optional(key);
    if (x === undefined) return undefined;
    const ms = readSeconds(ck, x, key, 1000, CONFIG_LIMITS.ipvsTimeoutMaxMs);
    if (ms === undefined) ok = false;
    return ms;
  };
  const t: IpvsTimeoutsConfig = { tcpMs: one('tcp'), tcpFinMs: one('tcp_fin'), udpMs: one('udp') };
  return ok ? t : undefined;
}

function readIpvs(ck: Checker, e: Entry): IpvsConfig | undefined {
  const o = readMap(ck, e, '`ipvs`', IPVS_KEYS);
  if (o === undefined) return undefined;
  const reconcileIntervalMs = withDefault(o.optional('reconcile_interval'), DEFAULT_IPVS.reconcileIntervalMs, (x) =>
    readDuration(ck, x, 'reconcile_interval', { min: CONFIG_LIMITS.reconcileIntervalMinMs, max: CONFIG_LIMITS.reconcileIntervalMaxMs }),
  );
  const manage = withDefault(o.optional('manage'), DEFAULT_IPVS.manage, (x) => readChoice(ck, x, 'manage', IPVS_MANAGE_MODES));
  const tE = o.optional('timeouts');
  const timeouts = tE === undefined ? undefined : readIpvsTimeouts(ck, tE);
  if (reconcileIntervalMs === undefined || manage === undefined || (tE !== undefined && timeouts === undefined)) return undefined;
  return { reconcileIntervalMs, manage, timeouts };
}

/** A contiguous IPv4 netmask in dotted form, as a u32; undefined when it is not one. */
function ipv4Netmask(s: string): number | undefined {
  const b = addressBytes(s, 4);
  if (b === undefined) return undefined;
  const n = b.readUInt32BE(0);
  const inverted = ~n >>> 0;
  // Contiguous: the inverted mask is 2^k - 1.
  return (inverted & (inverted + 1)) === 0 ? n : undefined;
}

/** The dotted IPv4 netmask of a prefix length (24 -> 255.255.255.0). */
function dottedMask(prefix: number): string {
  const n = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return formatAddress(Buffer.from([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]));
}

function readPersistence(ck: Checker, e: Entry, family: AddressFamily | undefined, udpCapable: boolean | undefined): VsPersistenceConfig | undefined {
  const o = readMap(ck, e, '`persistence`', VS_PERSISTENCE_KEYS);
  if (o === undefined) return undefined;
  const timeoutMs = withDefault(o.optional('timeout'), DEFAULT_PERSISTENCE_TIMEOUT_MS, (x) =>
    readSeconds(ck, x, 'timeout', 1000, CONFIG_LIMITS.persistenceTimeoutMaxMs),
  );
  let netmask: string | undefined = family === 6 ? '128' : '255.255.255.255';
  let netmaskValue: number | undefined = family === 6 ? 128 : 0xffffffff;
  const mE = o.optional('netmask');
  if (mE !== undefined && family !== undefined) {
    if (family === 4) {
      const s = stringOf(mE.value);
      const n = s === undefined ? undefined : ipv4Netmask(s.trim());
      if (n === undefined) {
        const raw: unknown = isScalar(mE.value) ? mE.value.value : undefined;
        const hint =
          typeof raw === 'number' && Number.isInteger(raw) && raw >= 0 && raw <= 32
            ? ` (an IPv4 service takes a dotted mask: write ${dottedMask(raw)} for /${raw})`
            : '';
        ck.issue(mE.offset, mE.path, `netmask of an IPv4 service must be a contiguous dotted netmask such as 255.255.255.0 (clients in one /24 stick to one real server); got ${describe(mE.value)}${hint}`);
        netmask = undefined;
      } else {
        netmaskValue = n;
        netmask = s?.trim() ?? '';
      }
    } else {
      const v = readInt(ck, mE, 'netmask', 1, 128, ' (an IPv6 service takes a prefix length, e.g. 64)');
      if (v === undefined) netmask = undefined;
      else {
        netmaskValue = v;
        netmask = String(v);
      }
    }
  }
  const pE = o.optional('pe');
  let pe: VsPersistenceEngine | undefined;
  let peOk = true;
  if (pE !== undefined) {
    pe = readChoice(ck, pE, 'pe', VS_PERSISTENCE_ENGINES);
    if (pe === undefined) peOk = false;
    else if (udpCapable === false) {
      ck.issue(pE.offset, pE.path, '`pe: sip` reads SIP Call-IDs from UDP payloads; with TCP or SCTP the kernel would drop every packet: use it with `protocol: udp` (or a fwmark service carrying UDP)');
      peOk = false;
    }
  }
  if (timeoutMs === undefined || netmask === undefined || netmaskValue === undefined || !peOk || family === undefined) return undefined;
  return { timeoutMs, netmask, netmaskValue, pe };
}

function readTunnel(ck: Checker, e: Entry): VsTunnelConfig | undefined {
  const o = readMap(ck, e, '`tunnel`', VS_TUNNEL_KEYS);
  if (o === undefined) return undefined;
  const type = withDefault(o.optional('type'), 'ipip' as VsTunnelType, (x) => readChoice(ck, x, 'type', VS_TUNNEL_TYPES));
  const portE = o.optional('port');
  let port: number | undefined = 0;
  if (type === 'gue') {
    const pE = o.required('port', 'the UDP port the real servers decapsulate GUE on, e.g. `port: 6080` (the kernel refuses GUE without one)');
    port = pE === undefined ? undefined : readInt(ck, pE, 'port', CONFIG_LIMITS.portMin, CONFIG_LIMITS.portMax, ' (UDP port of the GUE tunnel)');
  } else if (portE !== undefined && type !== undefined) {
    ck.issue(portE.offset, portE.path, `\`port\` is only used by \`type: gue\` (UDP encapsulation); ${type} has no port: remove it`);
    port = undefined;
  }
  const cE = o.optional('checksum');
  let checksum: VsTunnelChecksum | undefined = 'nocsum';
  if (cE !== undefined) {
    checksum = readChoice(ck, cE, 'checksum', VS_TUNNEL_CHECKSUMS);
    if (checksum !== undefined && type === 'ipip' && checksum !== 'nocsum') {
      ck.issue(cE.offset, cE.path, `ipip has no checksum option; \`checksum: ${checksum}\` needs \`type: gue\`${checksum === 'csum' ? ' or `type: gre`' : ''}`);
      checksum = undefined;
    } else if (checksum === 'remcsum' && type === 'gre') {
      ck.issue(cE.offset, cE.path, '`checksum: remcsum` (remote checksum offload) exists only for `type: gue`; gre takes nocsum or csum');
      checksum = undefined;
    }
  }
  if (type === undefined || port === undefined || checksum === undefined) return undefined;
  return { type, port, checksum };
}

/** The identity of a service as text, for messages and duplicate checks (`TCP 10.99.0.100:80`, `FWM 7 IPv6`). */
function serviceIdText(id: VirtualServiceId): string {
  if (id.kind === 'fwmark') return `FWM ${id.fwmark}${id.family === 6 ? ' IPv6' : ''}`;
  return `${id.protocol.toUpperCase()} ${id.family === 6 ? `[${id.address}]` : id.address}:${id.port}`;
}

function readRealServer(
  ck: Checker,
  e: Entry,
  svc: { id: VirtualServiceId | undefined; forwarding: VsForwarding | undefined },
  seen: Map<string, string>,
  health?: (own: Entry | undefined, family: AddressFamily) => HealthCheckConfig | undefined | false,
  what = 'a real server',
): RealServerConfig | undefined {
  const o = readMap(ck, e, what, health === undefined ? SORRY_SERVER_KEYS : REAL_SERVER_KEYS);
  if (o === undefined) return undefined;
  const aE = o.required('address', 'the real server\'s address, e.g. `address: 10.99.0.21`');
  const ip = aE === undefined ? undefined : readIp(ck, aE, 'address', 'unicast');
  let ok = ip !== undefined;
  if (ip !== undefined && aE !== undefined && svc.id !== undefined && ip.family !== svc.id.family && svc.forwarding !== undefined && svc.forwarding !== 'tun') {
    ck.issue(
      aE.offset,
      aE.path,
      `real server ${ip.text} is ${familyName(ip.family)} but the service is ${familyName(svc.id.family)}; the kernel allows a real server of the other family only with \`forwarding: tun\``,
    );
    ok = false;
  }
  const defaultPort = svc.id === undefined || svc.id.kind === 'fwmark' ? 0 : svc.id.port;
  const pE = o.optional('port');
  let port = withDefault(pE, defaultPort, (x) => readInt(ck, x, 'port', 0, CONFIG_LIMITS.portMax, ' (0 = the port of each packet; default: the service port)'));
  if (port !== undefined && pE !== undefined && svc.id?.kind === 'addr' && (svc.forwarding === 'dr' || svc.forwarding === 'tun') && port !== svc.id.port) {
    ck.issue(
      pE.offset,
      pE.path,
      `with \`forwarding: ${svc.forwarding}\` packets reach the real server unchanged, so its port is the service port ${svc.id.port}; got ${port}: remove \`port\` or use \`forwarding: nat\` to translate ports`,
    );
    port = undefined;
  }
  const weight = withDefault(o.optional('weight'), DEFAULT_WEIGHT, (x) =>
    readInt(ck, x, 'weight', CONFIG_LIMITS.weightMin, CONFIG_LIMITS.weightMax, ' (0 = quiesced: no new connections)'),
  );
  const upper = withDefault(o.optional('upper_threshold'), 0, (x) => readInt(ck, x, 'upper_threshold', 0, CONFIG_LIMITS.thresholdMax, ' (connections; 0 = no limit)'));
  const lE = o.optional('lower_threshold');
  let lower = withDefault(lE, 0, (x) => readInt(ck, x, 'lower_threshold', 0, CONFIG_LIMITS.thresholdMax, ' (connections; 0 = none)'));
  if (lower !== undefined && upper !== undefined && lE !== undefined && lower > upper) {
    ck.issue(lE.offset, lE.path, `lower_threshold ${lower} is above upper_threshold ${upper}; the kernel refuses that (ERANGE): the lower threshold is where an overloaded server is used again, so it must be <= the upper one${upper === 0 ? ' (upper_threshold defaults to 0)' : ''}`);
    lower = undefined;
  }
  if (ip !== undefined && port !== undefined && aE !== undefined) {
    const key = `${ip.family === 6 ? `[${ip.text}]` : ip.text}:${port}`;
    const prev = seen.get(key);
    if (prev !== undefined) {
      ck.issue(aE.offset, aE.path, `real server ${key} is already listed at ${prev}; list each real server (address and port) once per virtual server`);
      ok = false;
    } else seen.set(key, e.path);
  }
  const check = health === undefined || ip === undefined ? undefined : health(o.optional('health_check'), ip.family);
  if (check === false) ok = false;
  if (!ok || ip === undefined || port === undefined || weight === undefined || upper === undefined || lower === undefined) return undefined;
  const rs: RealServerConfig = { address: ip.text, family: ip.family, port, weight, upperThreshold: upper, lowerThreshold: lower };
  if (check !== undefined && check !== false) rs.healthCheck = check;
  return rs;
}

/** What earlier virtual servers claimed, for uniqueness checks. */
interface VsClaims {
  names: Map<string, string>;
  ids: Map<string, string>;
}

function readVirtualServer(ck: Checker, e: Entry, claims: VsClaims): VirtualServerConfig | undefined {
  const o = readMap(ck, e, 'a virtual server', VS_KEYS);
  if (o === undefined) return undefined;
  let ok = true;
  const fail = (): undefined => {
    ok = false;
    return undefined;
  };

  // name
  const nameE = o.required('name', 'a name for this virtual server, e.g. `name: web`');
  let name = nameE === undefined ? undefined : readName(ck, nameE, 'name');
  if (name !== undefined && nameE !== undefined) {
    const prev = claims.names.get(name);
    if (prev !== undefined) {
      ck.issue(nameE.offset, nameE.path, `virtual server name \`${name}\` is already used by ${prev}; give each virtual server its own name`);
      name = undefined;
    } else claims.names.set(name, o.path);
  }

  // identity: address + port + protocol, or fwmark (+ family)
  const addrE = o.optional('address');
  const markE = o.optional('fwmark');
  const famE = o.optional('family');
  const portE = o.optional('port');
  const protoE = o.optional('protocol');
  let id: VirtualServiceId | undefined;
  if (addrE !== undefined && markE !== undefined) {
    ck.issue(markE.offset, markE.path, 'a virtual server is either `address` (with `port` and `protocol`) or `fwmark`, not both: remove one');
    fail();
  } else if (addrE === undefined && markE === undefined) {
    ck.issue(o.offset, o.child('address'), 'missing required key `address`: the virtual address clients connect to, e.g. `address: 10.99.0.100` with `port: 80` (or `fwmark: 7` for a firewall-mark service)');
    fail();
  } else if (markE !== undefined) {
    const fwmark = readInt(ck, markE, 'fwmark', CONFIG_LIMITS.fwmarkMin, CONFIG_LIMITS.fwmarkMax, ' (the firewall mark your rules set on the packets)');
    const family = withDefault(famE, 'ipv4' as (typeof VS_FAMILIES)[number], (x) => readChoice(ck, x, 'family', VS_FAMILIES));
    for (const [x, key] of [
      [portE, 'port'],
      [protoE, 'protocol'],
    ] as const) {
      if (x !== undefined) {
        ck.issue(x.offset, x.path, `\`${key}\` does not apply to a fwmark service: the mark selects the packets (any protocol and port); remove it`);
        fail();
      }
    }
    if (fwmark !== undefined && family !== undefined) id = { kind: 'fwmark', family: family === 'ipv6' ? 6 : 4, fwmark };
    else fail();
  } else if (addrE !== undefined) {
    const ip = readIp(ck, addrE, 'address', 'unicast');
    if (famE !== undefined) {
      ck.issue(famE.offset, famE.path, '`family` is only for fwmark services; an address service takes its family from `address`: remove it');
      fail();
    }
    const protocol = withDefault(protoE, DEFAULT_VS_PROTOCOL, (x) => readChoice(ck, x, 'protocol', VS_PROTOCOLS));
    let port: number | undefined;
    if (portE === undefined) {
      ck.issue(o.offset, o.child('port'), 'missing required key `port`: the service port, e.g. `port: 80` (0 = every port, only with `persistence`)');
      fail();
    } else {
      port = readInt(ck, portE, 'port', 0, CONFIG_LIMITS.portMax, ' (0 = every port, only with `persistence`)');
      if (port === 0 && o.optional('persistence') === undefined) {
        ck.issue(portE.offset, portE.path, 'port 0 (every port) needs `persistence`: without it the connections of one client could not be kept together; set a port or add `persistence: { timeout: 300s }`');
        port = undefined;
      }
    }
    if (ip !== undefined && protocol !== undefined && port !== undefined) id = { kind: 'addr', family: ip.family, protocol, address: ip.text, port };
    else fail();
  }
  if (id !== undefined) {
    const text = serviceIdText(id);
    const prev = claims.ids.get(text);
    const at = (markE ?? addrE) as Entry;
    if (prev !== undefined) {
      ck.issue(at.offset, at.path, `service ${text} is already defined by ${prev}; each service (address, protocol and port, or fwmark and family) may appear once`);
      fail();
    } else claims.ids.set(text, `${o.path}${name === undefined ? '' : ` (${name})`}`);
  }
  const family = id?.family;
  // UDP payloads can reach the service: one-packet scheduling and the SIP engine make sense.
  const udpCapable = id === undefined ? undefined : id.kind === 'fwmark' || id.protocol === 'udp';

  // scheduling
  const schedE = o.optional('scheduler');
  const scheduler = withDefault(schedE, DEFAULT_VS_SCHEDULER, (x) => readScheduler(ck, x));
  if (scheduler === undefined) fail();
  const flagsE = o.optional('scheduler_flags');
  const schedulerFlags: VsSchedulerFlag[] = [];
  if (flagsE !== undefined) {
    const items = readList(ck, flagsE, 'scheduler_flags', '[sh-fallback, sh-port]');
    if (items === undefined) fail();
    const bits = new Map<number, string>();
    for (const item of items ?? []) {
      const f = readChoice(ck, item, 'a scheduler flag', VS_SCHEDULER_FLAGS);
      if (f === undefined) {
        fail();
        continue;
      }
      const owner = f.startsWith('sh-') ? 'sh' : f.startsWith('mh-') ? 'mh' : undefined;
      if (owner !== undefined && scheduler !== undefined && scheduler !== owner) {
        ck.issue(item.offset, item.path, `\`${f}\` is a flag of the ${owner} scheduler, but this virtual server uses ${scheduler}; remove it (or use \`flag-${f.endsWith('fallback') ? 1 : 2}\` to set the raw bit)`);
        fail();
        continue;
      }
      const bit = SCHEDULER_FLAG_BITS[f];
      const prev = bits.get(bit);
      if (prev !== undefined) {
        ck.issue(item.offset, item.path, prev === f ? `\`${f}\` is listed twice` : `\`${f}\` is the same kernel bit as \`${prev}\` (listed before); keep one`);
        fail();
        continue;
      }
      bits.set(bit, f);
      schedulerFlags.push(f);
    }
  }

  // forwarding and its companions
  const fwdE = o.required('forwarding', 'how packets reach the real servers: nat, dr, tun or fullnat (no default: keepalived defaults to NAT, ipvsadm to DR)');
  const forwarding = fwdE === undefined ? undefined : readChoice(ck, fwdE, 'forwarding', VS_FORWARDING);
  if (forwarding === undefined) fail();
  const tunE = o.optional('tunnel');
  let tunnel: VsTunnelConfig | undefined;
  if (tunE !== undefined && forwarding !== undefined && forwarding !== 'tun') {
    ck.issue(tunE.offset, tunE.path, `\`tunnel\` is only valid with \`forwarding: tun\`; this virtual server uses \`forwarding: ${forwarding}\`: remove it or switch the forwarding`);
    fail();
  } else if (forwarding === 'tun') {
    tunnel = tunE === undefined ? { type: 'ipip', port: 0, checksum: 'nocsum' } : readTunnel(ck, tunE);
    if (tunnel === undefined) fail();
  }
  const fnE = o.optional('fullnat');
  let fullnat: { source: string } | undefined;
  if (fnE !== undefined && forwarding !== undefined && forwarding !== 'fullnat') {
    ck.issue(fnE.offset, fnE.path, `\`fullnat\` is only valid with \`forwarding: fullnat\`; this virtual server uses \`forwarding: ${forwarding}\`: remove it or switch the forwarding`);
    fail();
  } else if (forwarding === 'fullnat') {
    const req = o.required('fullnat', 'with `forwarding: fullnat` the director address the real servers see as the client, e.g. `fullnat: { source: 10.99.0.2 }`');
    const fo = req === undefined ? undefined : readMap(ck, req, '`fullnat`', VS_FULLNAT_KEYS);
    const sE = fo?.required('source', 'the director address the real servers see as the client (they must route it back to the director), e.g. `source: 10.99.0.2`');
    const src = sE === undefined ? undefined : readIp(ck, sE, 'source', 'unicast');
    if (src !== undefined && sE !== undefined && family !== undefined && src.family !== family) {
      ck.issue(sE.offset, sE.path, `source ${src.text} is ${familyName(src.family)} but the service is ${familyName(family)}; use a director address of the service's family`);
      fail();
    } else if (src === undefined) fail();
    else fullnat = { source: src.text };
  }

  const perE = o.optional('persistence');
  const persistence = perE === undefined ? undefined : readPersistence(ck, perE, family, udpCapable);
  if (perE !== undefined && persistence === undefined) fail();
  const opE = o.optional('one_packet');
  let onePacket = withDefault(opE, false, (x) => readBool(ck, x, 'one_packet'));
  if (onePacket === true && opE !== undefined && udpCapable === false) {
    ck.issue(opE.offset, opE.path, '`one_packet` (one-packet scheduling) applies only to UDP; use it with `protocol: udp` or a fwmark service');
    onePacket = undefined;
  }
  if (onePacket === undefined) fail();

  // health checking (before the real servers: they inherit the check)
  const hcE = o.optional('health_check');
  const vsCheck = hcE === undefined ? undefined : readVsHealthCheck(ck, hcE);
  if (hcE !== undefined && vsCheck === undefined) fail();
  const alphaE = o.optional('alpha');
  const alpha = withDefault(alphaE, false, (x) => readBool(ck, x, 'alpha'));
  if (alpha === undefined) fail();
  const inhibitE = o.optional('inhibit_on_failure');
  const inhibitOnFailure = withDefault(inhibitE, false, (x) => readBool(ck, x, 'inhibit_on_failure'));
  if (inhibitOnFailure === undefined) fail();
  const quorumE = o.optional('quorum');
  const quorum = withDefault(quorumE, { ...DEFAULT_QUORUM }, (x) => readQuorum(ck, x));
  if (quorum === undefined) fail();
  /** The inherited check, built once (its problems are reported once, at the virtual server's key). */
  let inheritedCheck: { ok: true; check: HealthCheckConfig | undefined } | { ok: false } | undefined;
  const health = (own: Entry | undefined, rsFamily: AddressFamily): HealthCheckConfig | undefined | false => {
    if (own === undefined && hcE !== undefined && vsCheck === undefined) return undefined;
    const r = own === undefined ? (inheritedCheck ??= resolveServerCheck(ck, undefined, vsCheck, alpha === true, rsFamily)) : resolveServerCheck(ck, own, vsCheck, alpha === true, rsFamily);
    return r.ok ? r.check : false;
  };

  // real servers
  const rsE = o.optional('real_servers');
  const realServers: RealServerConfig[] = [];
  const list = rsE === undefined ? [] : readList(ck, rsE, 'real_servers', '[{ address: 10.99.0.21, port: 80 }]');
  if (list === undefined) fail();
  const seen = new Map<string, string>();
  for (const item of list ?? []) {
    const rs = readRealServer(ck, item, { id, forwarding }, seen, health);
    if (rs === undefined) fail();
    else realServers.push(rs);
  }
  const sorryE = o.optional('sorry_server');
  const sorryServer = sorryE === undefined ? undefined : readRealServer(ck, sorryE, { id, forwarding }, seen, undefined, 'a sorry server');
  if (sorryE !== undefined && sorryServer === undefined) fail();
  if (alphaE !== undefined && alpha === true && !realServers.some((r) => r.healthCheck !== undefined) && hcE === undefined) {
    ck.issue(alphaE.offset, alphaE.path, '`alpha` starts checked real servers down until they pass `rise` checks, but no real server here has a `health_check`; add one or remove `alpha`');
    fail();
  }

  if (!ok || name === undefined || id === undefined || scheduler === undefined || forwarding === undefined || onePacket === undefined) return undefined;
  if (alpha === undefined || inhibitOnFailure === undefined || quorum === undefined) return undefined;
  const vs: VirtualServerConfig = { name, service: id, scheduler, schedulerFlags, forwarding, tunnel, persistence, onePacket, fullnat, realServers };
  const anyHealth = hcE !== undefined || alphaE !== undefined || inhibitE !== undefined || quorumE !== undefined || sorryE !== undefined || realServers.some((r) => r.healthCheck !== undefined);
  if (anyHealth) vs.health = { inhibitOnFailure, quorum, sorryServer, alpha };
  return vs;
}

function readVirtualServers(ck: Checker, e: Entry): VirtualServerConfig[] | undefined {
  const list = readList(ck, e, 'virtual_servers', '[{ name: web, address: 10.99.0.100, port: 80, forwarding: dr, real_servers: [...] }]');
  if (list === undefined) return undefined;
  const claims: VsClaims = { names: new Map(), ids: new Map() };
  const out: VirtualServerConfig[] = [];
  let ok = true;
  for (const item of list) {
    const vs = readVirtualServer(ck, item, claims);
    if (vs === undefined) ok = false;
    else out.push(vs);
  }
  return ok ? out : undefined;
}

/**
 * Validates a parsed YAML document (without syntax errors) and converts it into a TandemConfig; `file` is
 * stored in the result. Returns every issue found when the document is not a valid configuration.
 */
export function validateDocument(doc: Document, file: string): SchemaResult {
  const ck = new Checker(doc);
  const root: Entry = { value: ck.resolve(doc.contents, 0, ''), offset: offsetOf(doc.contents, 0), path: '' };
  if (root.value === null || (isScalar(root.value) && (root.value.value === null || root.value.value === undefined))) {
    ck.issue(0, '', 'the configuration is empty; it needs at least `node` and `vrrp` (see config/tandem.example.yaml)');
    return { ok: false, issues: ck.issues };
  }
  const o = readMap(ck, root, 'the configuration', TOP_KEYS);
  if (o === undefined) return { ok: false, issues: ck.issues };
  const nE = o.required('node', 'this director, e.g. `node: { name: dirA, interface: eth0 }`');
  const vE = o.required('vrrp', 'the election settings: `transport` and `instances`');
  const node = nE === undefined ? undefined : readNode(ck, nE);
  // Instances default to node.interface; when node is broken, instances still get checked (with no default).
  let nodeInterface: string | undefined = node?.interface;
  if (nodeInterface === undefined && nE !== undefined && isMap(nE.value)) {
    const raw = nE.value.get('interface');
    if (typeof raw === 'string') nodeInterface = raw;
  }
  const vrrp = vE === undefined ? undefined : readVrrp(ck, vE, nodeInterface);
  const metrics = readMetrics(ck, o.optional('metrics'));
  const ipvsE = o.optional('ipvs');
  const ipvs = ipvsE === undefined ? undefined : readIpvs(ck, ipvsE);
  const vsE = o.optional('virtual_servers');
  const virtualServers = vsE === undefined ? undefined : readVirtualServers(ck, vsE);
  const syncE = o.optional('sync');
  const sync = syncE === undefined ? undefined : readSync(ck, syncE, nodeInterface);
  if (
    ck.issues.length > 0 ||
    node === undefined ||
    vrrp === undefined ||
    metrics === undefined ||
    (ipvsE !== undefined && ipvs === undefined) ||
    (vsE !== undefined && virtualServers === undefined) ||
    (syncE !== undefined && sync === undefined)
  ) {
    if (ck.issues.length === 0) ck.issue(0, '', 'the configuration is not valid (no further detail; this is a bug in tandem)');
    return { ok: false, issues: ck.issues };
  }
  const config: TandemConfig = { file, node, vrrp, metrics };
  // Optional keys stay absent when the file has no such section, so configurations built in code compare equal.
  if (ipvs !== undefined) config.ipvs = ipvs;
  if (virtualServers !== undefined) config.virtualServers = virtualServers;
  if (sync !== undefined) config.sync = sync;
  return { ok: true, config };
}

// ---------------------------------------------------------------------------------------------------------
// Connection sync: `sync`

const SYNC_KEYS = ['interface', 'sync_id', 'listen', 'peer', 'curve', 'resync_timeout', 'repair_interval', 'group', 'port', 'ttl', 'maxlen', 'master_thread'] as const;
const SYNC_CURVE_KEYS = ['secret_key_file', 'peer_public_key_file'] as const;

/** Defaults of the optional `sync` keys: the kernel's own group and port (ip_vs_sync.c), keepalived's TTL. */
export const DEFAULT_SYNC = Object.freeze({
  syncId: 0,
  group: '224.0.0.81',
  port: 8848,
  ttl: 1,
  maxLen: 0,
  /**
   * 30 s: a 1M-entry table streams and is injected in about 10 s on a healthy pair; three times that before a
   * returning director preempts without its table is the longest a failback should wait.
   */
  resyncTimeoutMs: 30_000,
  /** Once a minute: a digest of 256 buckets is 3 KiB; drift (lost sync datagrams) is repaired within a minute. */
  repairIntervalMs: 60_000,
  masterThread: 'always',
} as const);

/** Limits of the `sync` keys. */
export const SYNC_LIMITS = {
  syncIdMin: 0,
  syncIdMax: 255,
  /** sync_maxlen: 0 (kernel default) or room for the 8-byte header and one IPv4 entry, up to a u16 datagram. */
  maxLenMin: 44,
  maxLenMax: 65_507,
  resyncTimeoutMinMs: 1_000,
  resyncTimeoutMaxMs: 3_600_000,
  repairIntervalMinMs: 1_000,
  repairIntervalMaxMs: 86_400_000,
} as const;

/**
 * A ZeroMQ TCP endpoint `tcp://HOST:PORT`: HOST an IPv4 address, `[IPv6]`, or a host name; for `listen` also
 * `*` (every address). Returns the text as written.
 */
function readZmqEndpoint(ck: Checker, e: Entry, key: string, forBind: boolean): string | undefined {
  const s = stringOf(e.value)?.trim();
  const example = forBind ? '"tcp://10.99.0.2:5113", "tcp://*:5113" or "tcp://[fd00::2]:5113"' : '"tcp://10.99.0.3:5113" or "tcp://[fd00::3]:5113"';
  const bad = (why: string): undefined => {
    ck.issue(e.offset, e.path, `${key} must be a ZeroMQ TCP endpoint such as ${example}${why}; got ${describe(e.value)}`);
    return undefined;
  };
  if (s === undefined) return bad('');
  const m = /^tcp:\/\/(?:\[([^\]]+)\]|([^:[\]/]+)):(\d{1,5})$/.exec(s);
  if (m === null) return bad(s.startsWith('tcp://') ? '' : ' (only tcp:// is supported)');
  const v6 = m[1];
  const host = m[2];
  const port = Number(m[3]);
  if (v6 !== undefined && isIP(v6) !== 6) return bad(` (${v6} is not an IPv6 address)`);
  const hostname = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
  if (host !== undefined && !(host === '*' && forBind) && isIP(host) !== 4 && !hostname.test(host)) return bad('');
  if (port < 1 || port > 65535) {
    ck.issue(e.offset, e.path, `the port in ${key} must be 1..65535; got ${s}`);
    return undefined;
  }
  return s;
}

function readSync(ck: Checker, e: Entry, nodeInterface: string | undefined): SyncConfig | undefined {
  const o = readMap(ck, e, '`sync`', SYNC_KEYS);
  if (o === undefined) return undefined;
  let ok = true;
  const need = <T>(v: T | undefined): T | undefined => {
    if (v === undefined) ok = false;
    return v;
  };
  const ifE = o.optional('interface');
  const iface = ifE === undefined ? nodeInterface : need(readInterface(ck, ifE, 'interface'));
  if (ifE === undefined && nodeInterface === undefined) ok = false; // node.interface is missing and reported there
  const syncId = need(withDefault(o.optional('sync_id'), DEFAULT_SYNC.syncId, (x) => readInt(ck, x, 'sync_id', SYNC_LIMITS.syncIdMin, SYNC_LIMITS.syncIdMax, ' (the same on both directors; 0 = a backup thread accepts any)')));
  const lE = o.required('listen', 'the endpoint this director serves resyncs on, e.g. `listen: tcp://10.99.0.2:5113`');
  const pE = o.required('peer', "the peer director's `listen` endpoint, e.g. `peer: tcp://10.99.0.3:5113`");
  const listen = lE === undefined ? undefined : readZmqEndpoint(ck, lE, 'listen', true);
  const peer = pE === undefined ? undefined : readZmqEndpoint(ck, pE, 'peer', false);
  if (listen === undefined || peer === undefined) ok = false;
  if (listen !== undefined && peer !== undefined && pE !== undefined && listen === peer) {
    ck.issue(pE.offset, pE.path, `peer must be the other director's endpoint, not this director's own \`listen\` (${listen})`);
    ok = false;
  }
  const cE = o.required('curve', 'the CURVE key files, e.g. `curve: { secret_key_file: /etc/tandem/sync.key, peer_public_key_file: /etc/tandem/peer.pub }`');
  let curve: SyncConfig['curve'] | undefined;
  if (cE !== undefined) {
    const co = readMap(ck, cE, '`sync.curve`', SYNC_CURVE_KEYS);
    const sE = co?.required('secret_key_file', "this director's CURVE secret key file, e.g. `secret_key_file: /etc/tandem/sync.key`");
    const ppE = co?.required('peer_public_key_file', "the peer director's CURVE public key file, e.g. `peer_public_key_file: /etc/tandem/peer.pub`");
    const secretKeyFile = sE === undefined ? undefined : readAbsolutePath(ck, sE, 'secret_key_file', '/etc/tandem/sync.key');
    const peerPublicKeyFile = ppE === undefined ? undefined : readAbsolutePath(ck, ppE, 'peer_public_key_file', '/etc/tandem/peer.pub');
    if (secretKeyFile !== undefined && peerPublicKeyFile !== undefined) curve = { secretKeyFile, peerPublicKeyFile };
  }
  if (curve === undefined) ok = false;
  const resyncTimeoutMs = need(
    withDefault(o.optional('resync_timeout'), DEFAULT_SYNC.resyncTimeoutMs, (x) =>
      readDuration(ck, x, 'resync_timeout', { min: SYNC_LIMITS.resyncTimeoutMinMs, max: SYNC_LIMITS.resyncTimeoutMaxMs }),
    ),
  );
  const repairIntervalMs = need(
    withDefault(o.optional('repair_interval'), DEFAULT_SYNC.repairIntervalMs, (x) =>
      readDuration(ck, x, 'repair_interval', { min: SYNC_LIMITS.repairIntervalMinMs, max: SYNC_LIMITS.repairIntervalMaxMs, zeroOff: true }),
    ),
  );
  const gE = o.optional('group');
  const groupIp = gE === undefined ? undefined : readIp(ck, gE, 'group', 'multicast');
  if (gE !== undefined && groupIp === undefined) ok = false;
  const group = groupIp?.text ?? DEFAULT_SYNC.group;
  const port = need(withDefault(o.optional('port'), DEFAULT_SYNC.port, (x) => readInt(ck, x, 'port', CONFIG_LIMITS.portMin, CONFIG_LIMITS.portMax, ' (UDP port of the sync datagrams)')));
  const ttl = need(withDefault(o.optional('ttl'), DEFAULT_SYNC.ttl, (x) => readInt(ck, x, 'ttl', CONFIG_LIMITS.ttlMin, CONFIG_LIMITS.ttlMax, ' (1 keeps sync datagrams on the local link)')));
  const mE = o.optional('maxlen');
  let maxLen: number | undefined = DEFAULT_SYNC.maxLen;
  if (mE !== undefined) {
    const v = mE.value;
    if (isScalar(v) && v.value === 0) maxLen = 0;
    else maxLen = readInt(ck, mE, 'maxlen', SYNC_LIMITS.maxLenMin, SYNC_LIMITS.maxLenMax, ' bytes per sync datagram, or 0 for the kernel default (interface MTU - 28)');
    if (maxLen === undefined) ok = false;
  }
  const masterThread = need(withDefault<SyncConfig['masterThread']>(o.optional('master_thread'), DEFAULT_SYNC.masterThread, (x) => readChoice(ck, x, 'master_thread', SYNC_MASTER_THREAD_MODES)));
  if (!ok || iface === undefined || syncId === undefined || listen === undefined || peer === undefined || curve === undefined) return undefined;
  if (resyncTimeoutMs === undefined || repairIntervalMs === undefined || port === undefined || ttl === undefined || maxLen === undefined || masterThread === undefined) return undefined;
  return { interface: iface, syncId, listen, peer, curve, resyncTimeoutMs, repairIntervalMs, group, port, ttl, maxLen, masterThread };
}
