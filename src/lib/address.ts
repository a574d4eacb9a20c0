/**
 * IP address text <-> bytes, the one implementation the whole project uses (config canonicalisation, the advert
 * codec, the VIP frames and rtnetlink, the election tie-break). Pure code, no I/O.
 *
 * Parsing accepts exactly what node:net's `isIP` accepts minus zone ids: IPv4 as a dotted quad without leading
 * zeros, IPv6 in any RFC 4291 section 2.2 form (hex groups of 1..4 digits, one `::`, an optional trailing dotted
 * quad). Formatting writes node:net's canonical form, which is what libuv's and glibc's inet_ntop (and so
 * `new net.SocketAddress(...).address` and `ip addr`) write: IPv4 dotted quad; IPv6 lowercase, the longest run of
 * two or more zero groups compressed (the first on a tie), IPv4-mapped as `::ffff:a.b.c.d` and IPv4-compatible as
 * `::a.b.c.d`.
 */

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseIPv4Into(text: string, out: Uint8Array, off: number): boolean {
  // By character code rather than split + regex: this runs for every address of every netlink request.
  let part = 0;
  let digits = 0;
  let value = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 0x2e; // a virtual '.' ends the last part
    if (c === 0x2e) {
      if (digits === 0 || value > 255 || part === 4) return false;
      out[off + part] = value;
      part++;
      digits = 0;
      value = 0;
    } else if (c >= 0x30 && c <= 0x39) {
      if (digits > 0 && value === 0) return false; // a leading zero
      if (++digits > 3) return false;
      value = value * 10 + (c - 0x30);
    } else {
      return false;
    }
  }
  return part === 4;
}

/**
 * Writes the address's bytes (4 for IPv4, 16 for IPv6) into `out` at offset 0; false (and `out` unspecified)
 * when `text` is not an address of `family`. IPv4 allocates nothing: netlink requests use it by the thousand.
 */
export function writeAddressBytes(text: string, family: 4 | 6, out: Uint8Array): boolean {
  if (family === 4) {
    return parseIPv4Into(text, out, 0);
  }
  const b = parseIPv6(text);
  if (b === undefined) return false;
  out.set(b);
  return true;
}

/** IPv4 dotted quad to 4 bytes; undefined when not canonical dotted-quad text (no leading zeros). */
export function parseIPv4(text: string): Buffer | undefined {
  const bytes = Buffer.alloc(4);
  return parseIPv4Into(text, bytes, 0) ? bytes : undefined;
}

/** IPv6 text (any RFC 4291 section 2.2 form, no zone id) to 16 bytes; undefined when invalid. */
export function parseIPv6(text: string): Buffer | undefined {
  if (text.length === 0 || text.length > 45 || text.includes('%')) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groupsOf = (s: string): string[] | undefined => {
    if (s === '') return [];
    const g = s.split(':');
    return g.some((x) => x === '') ? undefined : g;
  };
  const head = groupsOf(halves[0] ?? '');
  const tail = halves.length === 2 ? groupsOf(halves[1] ?? '') : [];
  if (head === undefined || tail === undefined) return undefined;
  const toWords = (groups: string[], allowV4Last: boolean): number[] | undefined => {
    const words: number[] = [];
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i] ?? '';
      if (allowV4Last && i === groups.length - 1 && g.includes('.')) {
        const b = new Uint8Array(4);
        if (!parseIPv4Into(g, b, 0)) return undefined;
        words.push((b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!);
      } else if (HEX_GROUP.test(g)) {
        words.push(parseInt(g, 16));
      } else {
        return undefined;
      }
    }
    return words;
  };
  const compressed = halves.length === 2;
  const headWords = toWords(head, !compressed);
  const tailWords = toWords(tail, compressed);
  if (headWords === undefined || tailWords === undefined) return undefined;
  const n = headWords.length + tailWords.length;
  if (compressed ? n > 7 : n !== 8) return undefined;
  const words = [...headWords, ...new Array<number>(8 - n).fill(0), ...tailWords];
  const out = Buffer.alloc(16);
  words.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  return out;
}

/**
 * The network-order bytes (4 or 16) of an address, or undefined when `text` is not one. With `family`, only an
 * address of that family is accepted; without it, either.
 */
export function addressBytes(text: string, family?: 4 | 6): Buffer | undefined {
  if (family === 4) return parseIPv4(text);
  if (family === 6) return parseIPv6(text);
  return family === undefined ? (parseIPv4(text) ?? parseIPv6(text)) : undefined;
}

function formatIPv4(buf: Uint8Array, off: number): string {
  return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
}

/** 16 bytes to text exactly as libuv's inet_ntop6 (and so node:net) writes it. */
function formatIPv6(buf: Uint8Array, off: number): string {
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push(((buf[off + 2 * i] ?? 0) << 8) | (buf[off + 2 * i + 1] ?? 0));
  // Longest run of zero words (the first one on a tie); runs shorter than 2 are not compressed.
  let bestBase = -1;
  let bestLen = 0;
  let curBase = -1;
  let curLen = 0;
  for (let i = 0; i < 8; i++) {
    if (words[i] === 0) {
      if (curBase === -1) {
        curBase = i;
        curLen = 1;
      } else curLen++;
    } else if (curBase !== -1) {
      if (curLen > bestLen) {
        bestBase = curBase;
        bestLen = curLen;
      }
      curBase = -1;
    }
  }
  if (curBase !== -1 && curLen > bestLen) {
    bestBase = curBase;
    bestLen = curLen;
  }
  if (bestLen < 2) bestBase = -1;
  let s = '';
  for (let i = 0; i < 8; i++) {
    if (bestBase !== -1 && i >= bestBase && i < bestBase + bestLen) {
      if (i === bestBase) s += ':';
      continue;
    }
    if (i !== 0) s += ':';
    // IPv4-compatible (::a.b.c.d, word 6 non-zero) and IPv4-mapped (::ffff:a.b.c.d) use dotted quads.
    if (i === 6 && bestBase === 0 && (bestLen === 6 || (bestLen === 5 && words[5] === 0xffff))) {
      s += formatIPv4(buf, off + 12);
      return s;
    }
    s += (words[i] ?? 0).toString(16);
  }
  if (bestBase !== -1 && bestBase + bestLen === 8) s += ':';
  return s;
}

/**
 * The canonical text of the address whose bytes start at `offset`: 4 bytes for `family` 4, 16 for 6. Without
 * `family`, 4 bytes from `offset` to the end mean IPv4, anything else IPv6. Missing bytes read as zero.
 */
export function formatAddress(bytes: Uint8Array, offset = 0, family?: 4 | 6): string {
  const f = family ?? (bytes.length - offset === 4 ? 4 : 6);
  return f === 4 ? formatIPv4(bytes, offset) : formatIPv6(bytes, offset);
}

/**
 * The canonical text of an address (the form node:net and the advert decoder return), or undefined when `text`
 * is neither an IPv4 dotted quad nor an IPv6 address without zone id. Use it to compare addresses as text.
 */
export function canonicalAddress(text: string): string | undefined {
  const v4 = parseIPv4(text);
  if (v4 !== undefined) return formatIPv4(v4, 0);
  const v6 = parseIPv6(text);
  return v6 === undefined ? undefined : formatIPv6(v6, 0);
}

/**
 * Compares two addresses as unsigned integers in network order (RFC 5798 tie-breaks); IPv4 sorts before IPv6,
 * and text that is not an address before both.
 */
export function compareAddresses(a: string, b: string): number {
  const x = addressBytes(a) ?? Buffer.alloc(0);
  const y = addressBytes(b) ?? Buffer.alloc(0);
  if (x.length !== y.length) return x.length - y.length;
  return Buffer.compare(x, y);
}
