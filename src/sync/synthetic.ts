/**
 * Synthetic connection tables for benchmarks, tests and lab load: a deterministic stream of plausible entries
 * (mostly ESTABLISHED TCP over a few VIPs and real servers, some UDP, some persistence templates, a few IPv6),
 * and the same table as /proc/net/ip_vs_conn text. Generated lazily, so a 1M-entry table never has to exist in
 * memory at once. Pure code, no I/O.
 */

import { formatAddress } from '../lib/address.ts';
import { IPPROTO, TCP_STATE, fwmarkVaddr, protocolName, stateName } from './conn.ts';
import type { ConnEntry } from './conn.ts';

/** Entry `i` of the synthetic table (the same `i` always gives the same entry; all keys are distinct). */
export function syntheticEntry(i: number): ConnEntry {
  // Client address and port from i: 2^16 ports x 2^16 hosts in 198.18.0.0/15 (RFC 2544 benchmark range).
  const host = (i >>> 12) & 0xffff;
  const cport = 1024 + (i & 0xfff);
  const kind = i % 20;
  if (kind === 19) {
    // An IPv6 TCP connection.
    const c = Buffer.from('20010db8000100000000000000000000', 'hex');
    c.writeUInt32BE(i >>> 0, 12);
    return {
      family: 6, protocol: IPPROTO.TCP, caddr: formatAddress(c, 0, 6), cport, vaddr: '2001:db8:99::100', vport: 443,
      daddr: `2001:db8:1::${(i % 8) + 1}`, dport: 443, fwmark: 0, fwd: 'droute', template: false, flags: 0,
      state: TCP_STATE.ESTABLISHED, timeoutS: 900,
    };
  }
  const caddr = `198.${18 + (host >>> 15)}.${(host >>> 8) & 0x7f}.${host & 0xff}`;
  const daddr = `10.99.1.${(i % 8) + 1}`;
  if (kind === 18) {
    // A fwmark persistence template (vaddr = the mark); its own client range so template keys stay distinct.
    return {
      family: 4, protocol: IPPROTO.IP, caddr: `100.${64 + ((i >>> 16) & 63)}.${(i >>> 8) & 255}.${i & 255}`, cport: 0, vaddr: fwmarkVaddr(4, 7), vport: 0, daddr, dport: 0,
      fwmark: 7, fwd: 'droute', template: true, flags: 0, state: 1, timeoutS: 300,
    };
  }
  if (kind === 17) {
    return {
      family: 4, protocol: IPPROTO.UDP, caddr, cport, vaddr: '10.99.0.53', vport: 53, daddr, dport: 53, fwmark: 0,
      fwd: 'droute', template: false, flags: 0, state: 0, timeoutS: 300,
    };
  }
  return {
    family: 4, protocol: IPPROTO.TCP, caddr, cport, vaddr: `10.99.0.${100 + (i % 4)}`, vport: 80, daddr, dport: 80,
    fwmark: 0, fwd: 'droute', template: false, flags: 0, state: kind === 16 ? TCP_STATE.FIN_WAIT : TCP_STATE.ESTABLISHED,
    timeoutS: kind === 16 ? 120 : 900,
  };
}

/** Entries 0 .. n-1 of the synthetic table, lazily. */
export function* syntheticEntries(n: number, start = 0): Generator<ConnEntry, void, undefined> {
  for (let i = start; i < start + n; i++) yield syntheticEntry(i);
}

function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}

function procAddr(e: ConnEntry, text: string): string {
  if (e.family === 4) {
    const [a = 0, b = 0, c = 0, d = 0] = text.split('.').map(Number);
    return (((a << 24) | (b << 16) | (c << 8) | d) >>> 0).toString(16).toUpperCase().padStart(8, '0');
  }
  // %pI6: 8 groups of 4 lowercase hex digits.
  const groups: string[] = [];
  const full = text.includes('::') ? expandIPv6(text) : text.split(':');
  for (const g of full) groups.push(g.padStart(4, '0'));
  return groups.join(':');
}

function expandIPv6(text: string): string[] {
  const [head = '', tail = ''] = text.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === '' ? [] : tail.split(':');
  return [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
}

/** One /proc/net/ip_vs_conn row for an entry (as ip_vs_conn_seq_show prints it), `expiresS` seconds left. */
export function procConnLine(e: ConnEntry, expiresS = e.timeoutS): string {
  const proto = protocolName(e.protocol).padEnd(3, ' ');
  const state = stateName(e.protocol, e.template, e.state).padEnd(11, ' ');
  const pe = e.pe === undefined ? '' : ` ${e.pe.name} ${e.pe.data.toString('latin1')}`;
  return `${proto} ${procAddr(e, e.caddr)} ${hex4(e.cport)} ${procAddr(e, e.vaddr)} ${hex4(e.vport)} ${procAddr(e, e.daddr)} ${hex4(e.dport)} ${state} ${String(expiresS).padStart(7, ' ')}${pe}`;
}

/** The synthetic table as /proc/net/ip_vs_conn text (header first), in chunks of about `chunkLines` lines. */
export function* syntheticProcText(n: number, chunkLines = 4096): Generator<string, void, undefined> {
  let chunk = 'Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n';
  let lines = 0;
  for (let i = 0; i < n; i++) {
    const e = syntheticEntry(i);
    chunk += procConnLine(e, e.timeoutS - (i % 60)) + '\n';
    if (++lines === chunkLines) {
      yield chunk;
      chunk = '';
      lines = 0;
    }
  }
  if (chunk !== '') yield chunk;
}
