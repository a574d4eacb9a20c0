/** IP address text <-> bytes, and the unsigned byte-wise comparison RFC 5798 uses for tie-breaks. */

import { isIP } from 'node:net';

/** Network-order bytes of an IPv4 or IPv6 address, or undefined when `text` is not one. */
export function addressBytes(text: string): Buffer | undefined {
  const family = isIP(text);
  if (family === 4) return Buffer.from(text.split('.').map((p) => Number(p)));
  if (family !== 6) return undefined;
  let s = text;
  const pct = s.indexOf('%');
  if (pct >= 0) s = s.slice(0, pct);
  const out = Buffer.alloc(16);
  // An embedded dotted quad (::ffff:1.2.3.4) becomes two groups.
  const lastColon = s.lastIndexOf(':');
  const tail = s.slice(lastColon + 1);
  if (tail.includes('.')) {
    const q = tail.split('.').map((p) => Number(p));
    s = `${s.slice(0, lastColon + 1)}${(((q[0] ?? 0) << 8) | (q[1] ?? 0)).toString(16)}:${(((q[2] ?? 0) << 8) | (q[3] ?? 0)).toString(16)}`;
  }
  const [head = '', rest] = s.split('::');
  const hs = head === '' ? [] : head.split(':');
  const ts = rest === undefined || rest === '' ? [] : rest.split(':');
  const groups = rest === undefined ? hs : [...hs, ...new Array<string>(8 - hs.length - ts.length).fill('0'), ...ts];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** Text form of 4 or 16 network-order bytes (IPv6 compressed, lowercase, RFC 5952). */
export function formatAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Compares two addresses as unsigned integers in network order; IPv4 sorts before IPv6. */
export function compareAddresses(a: string, b: string): number {
  const x = addressBytes(a) ?? Buffer.alloc(0);
  const y = addressBytes(b) ?? Buffer.alloc(0);
  if (x.length !== y.length) return x.length - y.length;
  return Buffer.compare(x, y);
}
