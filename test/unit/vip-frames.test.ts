/**
 * Golden bytes for the VIP announcement frames. The expected frames were captured (AF_PACKET, on the peer of a
 * veth inside throw-away namespaces) from the Linux kernel itself announcing the same address and MAC
 * (`arp_notify` / `ndisc_notify` = 1, then a MAC change), so they check our layout and ICMPv6 checksum against an
 * independent implementation; the checksum is also recomputed here from scratch.
 */

import test from 'ava';
import fc from 'fast-check';
import { formatAddress } from '../../src/lib/address.ts';
import { CodecError } from '../../src/lib/errors.ts';
import {
  GARP_FRAME_LENGTH,
  NA_FRAME_LENGTH,
  formatMac,
  garpFrame,
  icmpv6Checksum,
  parseIpv4,
  parseIpv6,
  parseMac,
  unsolicitedNaFrame,
} from '../../src/vip/frames.ts';

/** Hex with spaces and newlines (for annotated goldens) to bytes. */
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// Kernel 6.18 GARP for 10.99.0.100 from 02:11:22:33:44:55 (arp_notify on NETDEV_CHANGEADDR).
const KERNEL_GARP = hex(`
  ffffffffffff 021122334455 0806
  0001 0800 06 04 0001
  021122334455 0a630064
  000000000000 0a630064`);

// Kernel 6.18 unsolicited NA for fd00:99::100 from 02:11:22:33:44:55 (ndisc_notify on NETDEV_CHANGEADDR).
const KERNEL_NA_GLOBAL = hex(`
  333300000001 021122334455 86dd
  60000000 0020 3a ff
  fd000099000000000000000000000100
  ff020000000000000000000000000001
  88 00 f0d2 20000000
  fd000099000000000000000000000100
  02 01 021122334455`);

// Kernel 6.18 unsolicited NA for the link-local fe80::ff:fe00:a from 02:00:00:00:00:0a (ndisc_notify after DAD).
const KERNEL_NA_LINK_LOCAL = hex(`
  333300000001 02000000000a 86dd
  60000000 0020 3a ff
  fe80000000000000000000fffe00000a
  ff020000000000000000000000000001
  88 00 5980 20000000
  fe80000000000000000000fffe00000a
  02 01 02000000000a`);

/** ICMPv6 checksum computed independently: 32-bit words of pseudo-header + message, folded at the end. */
function referenceChecksum(frame: Buffer): number {
  const ip = frame.subarray(14, 54);
  const icmp = Buffer.from(frame.subarray(54));
  icmp.writeUInt16BE(0, 2);
  const pseudo = Buffer.concat([ip.subarray(8, 40), Buffer.from([0, 0, 0, icmp.length, 0, 0, 0, 58])]);
  const all = Buffer.concat([pseudo, icmp, Buffer.alloc(icmp.length % 4 === 0 ? 0 : 4 - (icmp.length % 4))]);
  let sum = 0n;
  for (let i = 0; i < all.length; i += 4) sum += BigInt(all.readUInt32BE(i));
  while (sum > 0xffffn) sum = (sum & 0xffffn) + (sum >> 16n);
  return Number(~sum & 0xffffn);
}

test('garpFrame matches the gratuitous ARP the kernel sends', (t) => {
  const f = garpFrame('02:11:22:33:44:55', '10.99.0.100');
  t.is(f.length, GARP_FRAME_LENGTH);
  t.deepEqual(f, KERNEL_GARP);
});

test('garpFrame fields: broadcast ARP request, sender = target = VIP, target MAC zero', (t) => {
  const f = garpFrame('02:AA:bb:cc:dd:ee', '192.0.2.7');
  t.is(f.subarray(0, 6).toString('hex'), 'ffffffffffff');
  t.is(f.subarray(6, 12).toString('hex'), '02aabbccddee');
  t.is(f.readUInt16BE(12), 0x0806);
  t.is(f.readUInt16BE(20), 1, 'opcode REQUEST, like arping -U');
  t.is(f.subarray(22, 28).toString('hex'), '02aabbccddee');
  t.deepEqual(f.subarray(28, 32), Buffer.from([192, 0, 2, 7]));
  t.is(f.subarray(32, 38).toString('hex'), '000000000000');
  t.deepEqual(f.subarray(38, 42), Buffer.from([192, 0, 2, 7]));
});

test('unsolicitedNaFrame matches the unsolicited NA the kernel sends (global address)', (t) => {
  const f = unsolicitedNaFrame('02:11:22:33:44:55', 'fd00:99::100');
  t.is(f.length, NA_FRAME_LENGTH);
  t.deepEqual(f, KERNEL_NA_GLOBAL);
});

test('unsolicitedNaFrame matches the unsolicited NA the kernel sends (link-local address)', (t) => {
  t.deepEqual(unsolicitedNaFrame('02:00:00:00:00:0a', 'fe80::ff:fe00:a'), KERNEL_NA_LINK_LOCAL);
});

test('unsolicitedNaFrame fields: hop limit 255, Override only, target and option carry VIP and MAC', (t) => {
  const f = unsolicitedNaFrame('02:00:00:00:00:01', '2001:db8:1::42');
  t.is(f.subarray(0, 6).toString('hex'), '333300000001');
  t.is(f.readUInt16BE(12), 0x86dd);
  t.is(f[14]! >> 4, 6, 'IPv6');
  t.is(f.readUInt16BE(18), 32, 'payload length');
  t.is(f[20], 58, 'next header ICMPv6');
  t.is(f[21], 255, 'hop limit 255 or receivers drop it');
  t.deepEqual(f.subarray(22, 38), parseIpv6('2001:db8:1::42'), 'source = VIP');
  t.deepEqual(f.subarray(38, 54), parseIpv6('ff02::1'));
  t.is(f[54], 136);
  t.is(f[55], 0);
  t.is(f.readUInt32BE(58), 0x20000000, 'Override set, Solicited and Router clear');
  t.deepEqual(f.subarray(62, 78), parseIpv6('2001:db8:1::42'));
  t.deepEqual([f[78], f[79]], [2, 1], 'target link-layer address option, 8 bytes');
  t.is(f.subarray(80, 86).toString('hex'), '020000000001');
});

test('ICMPv6 checksum agrees with an independent computation and verifies to zero', (t) => {
  for (const [mac, vip] of [
    ['02:11:22:33:44:55', 'fd00:99::100'],
    ['02:00:00:00:00:0a', 'fe80::ff:fe00:a'],
    ['fe:ff:ff:ff:ff:ff', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe'],
    ['00:00:00:00:00:00', '::1'],
  ] as const) {
    const f = unsolicitedNaFrame(mac, vip);
    t.is(f.readUInt16BE(56), referenceChecksum(f), `${vip} ${mac}`);
    // Receiver's view: summing everything including the checksum gives 0xffff (one's-complement zero).
    t.is(icmpv6Checksum(f.subarray(22, 38), f.subarray(38, 54), f.subarray(54)), 0, `${vip} verifies`);
  }
});

test('ICMPv6 checksum property: any VIP and MAC', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ minLength: 6, maxLength: 6 }), (addr, mac) => {
      const f = unsolicitedNaFrame(formatMac(mac), formatAddress(addr));
      return f.readUInt16BE(56) === referenceChecksum(f) && f.subarray(62, 78).equals(addr);
    }),
  );
  t.pass();
});

test('parseMac accepts colon hex in either case; formatMac writes lower case', (t) => {
  t.deepEqual(parseMac('02:AB:cd:EF:00:ff'), Buffer.from([0x02, 0xab, 0xcd, 0xef, 0x00, 0xff]));
  t.is(formatMac(parseMac('02:AB:cd:EF:00:ff')), '02:ab:cd:ef:00:ff');
});

test('parseMac rejects malformed addresses with CodecError', (t) => {
  for (const bad of ['', '02:00:00:00:00', '02:00:00:00:00:00:00', '02-00-00-00-00-01', '0200.0000.0001', 'g2:00:00:00:00:01', '2:0:0:0:0:1', ' 02:00:00:00:00:01']) {
    const e = t.throws(() => parseMac(bad), { instanceOf: CodecError }, JSON.stringify(bad));
    t.true(e?.message.includes(`'${bad}'`) ?? false);
  }
  t.throws(() => formatMac(new Uint8Array(5)), { instanceOf: CodecError });
});

test('frame builders reject the wrong address family and bad MACs', (t) => {
  t.throws(() => garpFrame('02:00:00:00:00:01', 'fd00::1'), { instanceOf: CodecError });
  t.throws(() => garpFrame('02:00:00:00:00:01', '10.0.0.256'), { instanceOf: CodecError });
  t.throws(() => unsolicitedNaFrame('02:00:00:00:00:01', '10.0.0.1'), { instanceOf: CodecError });
  t.throws(() => unsolicitedNaFrame('02:00:00:00:00:01', 'fe80::1%eth0'), { instanceOf: CodecError });
  t.throws(() => garpFrame('nonsense', '10.0.0.1'), { instanceOf: CodecError });
  t.throws(() => parseIpv4('1.2.3'), { instanceOf: CodecError });
});

test('parseIpv6 / formatAddress round-trip and print as the WHATWG (RFC 5952) serializer does', (t) => {
  t.is(formatAddress(parseIpv6('2001:DB8:0:0:1::1')), '2001:db8::1:0:0:1');
  t.is(formatAddress(parseIpv6('::ffff:192.0.2.1')), '::ffff:192.0.2.1');
  t.deepEqual(parseIpv6('::192.0.2.1'), hex('000000000000000000000000c0000201'));
  t.deepEqual(parseIpv6('64:ff9b::192.0.2.1'), hex('0064ff9b0000000000000000c0000201'));
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 }),
      (groups) => {
        const bytes = Buffer.alloc(16);
        groups.forEach((g, i) => bytes.writeUInt16BE(g, i * 2));
        const text = formatAddress(bytes);
        if (!parseIpv6(text).equals(bytes)) return false;
        // WHATWG prints embedded IPv4 in hex; inet_ntop (ip addr, node:net) writes ::ffff:a.b.c.d and ::a.b.c.d.
        if (text.includes('.')) return /^::(ffff:)?\d+\.\d+\.\d+\.\d+$/.test(text);
        return `[${text}]` === new URL(`http://[${text}]/`).hostname;
      },
    ),
  );
  t.pass();
});
