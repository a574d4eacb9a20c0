/**
 * Parser of /proc/net/ip_vs_conn, the kernel's whole connection table as text (ip_vs_conn_seq_show in
 * net/netfilter/ipvs/ip_vs_conn.c), into connection entries: the source of a full-table resync on the
 * director that holds the table. Streaming: `ProcConnParser` takes chunks of any size and keeps only the
 * unfinished last line, so a 1M-line table is parsed without holding it; bad lines are counted by reason (with
 * a few samples), never thrown.
 *
 * Format (header, then one row per entry):
 *
 * ```
 * Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
 * "%-3s %08X %04X %08X %04X %s %04X %-11s %7u%s\n"           IPv4: addresses as host-order hex of the BE value
 * "%-3s %pI6 %04X %pI6 %04X %s %04X %-11s %7u%s\n"           IPv6: 8 groups of 4 lowercase hex digits
 * ```
 *
 * DestIP is printed in its own family (`%08X` or `%pI6`); Expires is the seconds left; the optional tail is
 * ` PENAME PEDATA` (the engine's text, e.g. a SIP Call-ID). Protocol names as ip_vs_proto_name prints them,
 * state names from the protocol's table, `NONE`/`ASSURED` for templates.
 *
 * What /proc does not show, and what the entries get instead:
 * - flags and forwarding method: `fwd` from the options (default masq = flags 0); a backup binds a synced
 *   entry to its own matching destination and takes that destination's method (ip_vs_sync.c), so this only
 *   matters for entries with no match there;
 * - the full timeout: `timeoutS` = the seconds left (at least 1: a synced timeout of 0 means "the state's
 *   default", which would revive an entry about to expire);
 * - the template flag: inferred. A row is a template when its state is `ASSURED`, its protocol is IP (fwmark
 *   templates), its protocol is UDP (UDP connections print `UDP`, templates `NONE`/`ASSURED`), or its state is
 *   `NONE` with client port 0 (TCP/SCTP connections in state NONE have a client port; templates have 0). A TCP
 *   connection created with NO_CPORT (FTP data in NAT mode) in state NONE would be misread as a template.
 * - fwmark: the mark of fwmark templates (their first 4 vaddr bytes), otherwise 0.
 * Rows whose DestIP family differs from the client's (a tunnel to another family) are bad lines
 * (`mixed_family`): neither sync v1 nor the resync protocol can carry them.
 */

import { createReadStream } from 'node:fs';
import type { AddressFamily } from '../config/types.ts';
import { formatAddress } from '../lib/address.ts';
import { fail, ok } from '../lib/result.ts';
import type { Result } from '../lib/result.ts';
import { IPPROTO, protocolFromName, stateFromName } from './conn.ts';
import type { ConnEntry, ConnFwd } from './conn.ts';

/** The header line the kernel prints first. */
export const PROC_CONN_HEADER = 'Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData';

/** Why a line was not an entry. */
export const PROC_CONN_BAD_REASONS = ['fields', 'protocol', 'address', 'port', 'state', 'expires', 'mixed_family'] as const;
/** One of PROC_CONN_BAD_REASONS. */
export type ProcConnBadReason = (typeof PROC_CONN_BAD_REASONS)[number];

/** One parsed row. */
export interface ProcConnRow {
  entry: ConnEntry;
  /** Seconds left, as printed. */
  expiresS: number;
  /** The state as printed. */
  stateName: string;
}

/** Options of the parser. */
export interface ProcConnOptions {
  /** Forwarding method given to every entry (/proc does not show it); default masq. */
  fwd?: ConnFwd;
  /** How many bad lines to keep as samples; default 10. */
  maxSamples?: number;
}

/** A bad line kept as a sample. */
export interface ProcConnBadSample {
  /** 1-based line number in the input. */
  line: number;
  reason: ProcConnBadReason;
  detail: string;
  /** The line, cut to 200 characters. */
  text: string;
}

/** Counters of a parse. */
export interface ProcConnStats {
  /** Lines seen (header and empty lines included). */
  lines: number;
  rows: number;
  bad: number;
  badByReason: Record<ProcConnBadReason, number>;
  badSamples: ProcConnBadSample[];
}

const HEX4 = /^[0-9A-Fa-f]{4}$/;
const HEX8 = /^[0-9A-Fa-f]{8}$/;
const PI6 = /^[0-9a-fA-F]{4}(?::[0-9a-fA-F]{4}){7}$/;
const DIGITS = /^\d{1,10}$/;

type Bad = { ok: false; reason: ProcConnBadReason; detail: string };

function parseAddr(text: string, field: string): { family: AddressFamily; address: string } | Bad {
  if (text.length === 8 && HEX8.test(text)) {
    const n = parseInt(text, 16);
    return { family: 4, address: `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}` };
  }
  if (text.length === 39 && PI6.test(text)) {
    const b = Buffer.alloc(16);
    for (let i = 0; i < 8; i++) b.writeUInt16BE(parseInt(text.slice(i * 5, i * 5 + 4), 16), i * 2);
    return { family: 6, address: formatAddress(b, 0, 6) };
  }
  return fail('address', `${field} ${JSON.stringify(text)} is neither %08X nor %pI6`);
}

function parsePort(text: string, field: string): number | Bad {
  return HEX4.test(text) ? parseInt(text, 16) : fail('port', `${field} ${JSON.stringify(text)} is not %04X`);
}

/**
 * Parses one row (without its newline). Never throws. The header line and empty lines are not rows: callers
 * skip them (ProcConnParser does).
 */
export function parseProcConnLine(line: string, options: ProcConnOptions = {}): Result<ProcConnRow, ProcConnBadReason> {
  // Nine space-separated fields, then optionally " PENAME PEDATA" where PEDATA is the rest of the line.
  const fields: string[] = [];
  let i = 0;
  const n = line.length;
  while (fields.length < 10 && i < n) {
    while (i < n && line.charCodeAt(i) === 32) i++;
    if (i >= n) break;
    const start = i;
    while (i < n && line.charCodeAt(i) !== 32) i++;
    fields.push(line.slice(start, i));
  }
  if (fields.length < 9) return fail('fields', `${fields.length} fields, want at least 9`);
  const [protoText, caddrText, cportText, vaddrText, vportText, daddrText, dportText, stateText, expiresText] = fields as [string, string, string, string, string, string, string, string, string];
  const protocol = protocolFromName(protoText);
  if (protocol === undefined) return fail('protocol', `protocol ${JSON.stringify(protoText)}`);
  const caddr = parseAddr(caddrText, 'FromIP');
  if ('ok' in caddr) return caddr;
  const vaddr = parseAddr(vaddrText, 'ToIP');
  if ('ok' in vaddr) return vaddr;
  const daddr = parseAddr(daddrText, 'DestIP');
  if ('ok' in daddr) return daddr;
  if (vaddr.family !== caddr.family) return fail('address', `FromIP is IPv${caddr.family}, ToIP IPv${vaddr.family}`);
  if (daddr.family !== caddr.family) return fail('mixed_family', `IPv${caddr.family} connection to an IPv${daddr.family} real server`);
  const cport = parsePort(cportText, 'FPrt');
  if (typeof cport !== 'number') return cport;
  const vport = parsePort(vportText, 'TPrt');
  if (typeof vport !== 'number') return vport;
  const dport = parsePort(dportText, 'DPrt');
  if (typeof dport !== 'number') return dport;
  if (!DIGITS.test(expiresText) || Number(expiresText) > 0xffff_ffff) return fail('expires', `Expires ${JSON.stringify(expiresText)}`);
  const expiresS = Number(expiresText);
  const template =
    stateText === 'ASSURED' ||
    (stateText === 'NONE' && (protocol === IPPROTO.IP || protocol === IPPROTO.UDP || cport === 0));
  const state = stateFromName(protocol, template, stateText);
  if (state === undefined) return fail('state', `state ${JSON.stringify(stateText)} for ${protoText}${template ? ' template' : ''}`);
  const entry: ConnEntry = {
    family: caddr.family,
    protocol,
    caddr: caddr.address,
    cport,
    vaddr: vaddr.address,
    vport,
    daddr: daddr.address,
    dport,
    fwmark: template && protocol === IPPROTO.IP ? fwmarkOf(vaddrText) : 0,
    fwd: options.fwd ?? 'masq',
    template,
    flags: 0,
    state,
    timeoutS: Math.max(1, expiresS),
  };
  if (fields.length === 10) {
    // The PE tail: one space, the name, one space, the data up to the end of the line.
    const name = fields[9]!;
    const dataStart = i + 1;
    const data = dataStart <= n ? Buffer.from(line.slice(dataStart), 'latin1') : Buffer.alloc(0);
    if (name.length <= 16 && data.length >= 1 && data.length <= 255) entry.pe = { name, data };
  }
  return ok({ entry, expiresS, stateName: stateText });
}

function fwmarkOf(vaddrText: string): number {
  // IPv4: the value itself; IPv6: the first two groups.
  return vaddrText.length === 8 ? parseInt(vaddrText, 16) >>> 0 : parseInt(vaddrText.slice(0, 4) + vaddrText.slice(5, 9), 16) >>> 0;
}

function emptyStats(): ProcConnStats {
  const badByReason = Object.fromEntries(PROC_CONN_BAD_REASONS.map((r) => [r, 0])) as Record<ProcConnBadReason, number>;
  return { lines: 0, rows: 0, bad: 0, badByReason, badSamples: [] };
}

/**
 * Incremental parser: `push` chunks as they are read (split anywhere, even inside a line), `end` at EOF. Each
 * returns the rows its input completed. Bytes are read as latin1, so a chunk boundary inside a multi-byte
 * character cannot corrupt anything and PE data keeps its bytes.
 */
export class ProcConnParser {
  readonly stats: ProcConnStats = emptyStats();
  private rest = '';
  private readonly maxSamples: number;

  constructor(private readonly options: ProcConnOptions = {}) {
    this.maxSamples = options.maxSamples ?? 10;
  }

  /** Parses every line the chunk completes. */
  push(chunk: Uint8Array | string): ProcConnRow[] {
    const text = this.rest + (typeof chunk === 'string' ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('latin1'));
    const out: ProcConnRow[] = [];
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      if (nl === -1) break;
      this.line(text.slice(start, nl), out);
      start = nl + 1;
    }
    this.rest = text.slice(start);
    return out;
  }

  /** Parses the last line if it had no newline. */
  end(): ProcConnRow[] {
    const out: ProcConnRow[] = [];
    if (this.rest !== '') this.line(this.rest, out);
    this.rest = '';
    return out;
  }

  private line(raw: string, out: ProcConnRow[]): void {
    const s = this.stats;
    s.lines++;
    const text = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (text.trim() === '' || text.startsWith('Pro ')) return;
    const r = parseProcConnLine(text, this.options);
    if (r.ok) {
      s.rows++;
      out.push(r.value);
      return;
    }
    s.bad++;
    s.badByReason[r.reason]++;
    if (s.badSamples.length < this.maxSamples) s.badSamples.push({ line: s.lines, reason: r.reason, detail: r.detail, text: text.slice(0, 200) });
  }
}

/** Parses a whole table held in memory (tests, small tables). */
export function parseProcConn(text: string, options: ProcConnOptions = {}): { rows: ProcConnRow[]; stats: ProcConnStats } {
  const p = new ProcConnParser(options);
  const rows = p.push(text);
  rows.push(...p.end());
  return { rows, stats: p.stats };
}

/**
 * Streams the rows of a file (default /proc/net/ip_vs_conn) through `parser`, reading 256 KiB at a time; the
 * parser's `stats` hold the counts when the generator is done. Rejects only when the file cannot be read.
 */
export async function* readProcConn(path = '/proc/net/ip_vs_conn', parser: ProcConnParser = new ProcConnParser()): AsyncGenerator<ProcConnRow, ProcConnStats, undefined> {
  const stream = createReadStream(path, { highWaterMark: 256 * 1024 });
  for await (const chunk of stream) {
    const rows = parser.push(chunk as Buffer);
    for (const r of rows) yield r;
  }
  for (const r of parser.end()) yield r;
  return parser.stats;
}

/**
 * The local kernel table as a sync source: each `entries()` call reads /proc/net/ip_vs_conn (or `path`) afresh.
 * Rows /proc shows but sync cannot carry are skipped (counted in the parser's stats, passed to `onStats`).
 */
export function procConnTable(options: ProcConnOptions & { path?: string; onStats?: (s: ProcConnStats) => void } = {}): { entries(): AsyncIterable<ConnEntry> } {
  return {
    async *entries(): AsyncGenerator<ConnEntry, void, undefined> {
      const parser = new ProcConnParser(options);
      const rows = readProcConn(options.path, parser);
      for await (const r of rows) yield r.entry;
      options.onStats?.(parser.stats);
    },
  };
}
