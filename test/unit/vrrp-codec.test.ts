/**
 * Advert codec (src/vrrp/codec.ts): golden bytes computed by hand (and cross-checked with an independent
 * Python script using ipaddress/hmac), round trips, every decode reason, and properties: decode never throws,
 * valid adverts round-trip, truncations fail cleanly, addresses match node:net's canonical text.
 */

import { SocketAddress } from 'node:net';
import test from 'ava';
import fc from 'fast-check';
import { canonicalAddress } from '../../src/lib/address.ts';
import { CodecError } from '../../src/lib/errors.ts';
import { AdvertSigner, SequenceSource } from '../../src/vrrp/auth.ts';
import { DECODE_REASONS, WIRE, decodeAdvert, encodeAdvert, internetChecksum } from '../../src/vrrp/codec.ts';
import type { Advert } from '../../src/vrrp/types.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/[\s|]/g, ''), 'hex');

/** Recomputes the checksum of the VRRP part (everything before a trailer, if the flag is set). */
function reseal(buf: Buffer): Buffer {
  const family = buf[8] === 6 ? 6 : 4;
  const vlen = 12 + ((buf[3] ?? 0) + 1) * (family === 4 ? 4 : 16);
  buf.writeUInt16BE(internetChecksum(buf, 0, Math.min(vlen, buf.length), 6), 6);
  return buf;
}

// IPv4, vrid 51, priority 100, interval 100 cs (1 s), sender 10.0.0.1, one VIP 10.99.0.100.
// Checksum by hand, 16-bit words with the checksum field zeroed:
//   3133 + 6401 + 0064 + 0000 + 0400 + 0000 + 0a00 + 0001 + 0a63 + 0064 = ae60 (no carry) -> ~ae60 = 519f
const V4_ADVERT: Advert = { vrid: 51, priority: 100, advertIntervalCs: 100, family: 4, sender: '10.0.0.1', addresses: ['10.99.0.100'] };
const V4_HEX = '31 33 64 01 | 00 64 | 51 9f | 04 00 00 00 | 0a 00 00 01 | 0a 63 00 64';

// IPv6, vrid 7, priority 200, interval 25 cs, sender fe80::1, VIPs 2001:db8::10 and 2001:db8::11 (60 bytes).
// Non-zero words: 3107 + c802 + 0019 + 0600 + fe80 + 0001 + 2001 + 0db8 + 0010 + 2001 + 0db8 + 0011
//   = 2 5936 -> end-around carry 5936 + 2 = 5938 -> ~5938 = a6c7
const V6_ADVERT: Advert = { vrid: 7, priority: 200, advertIntervalCs: 25, family: 6, sender: 'fe80::1', addresses: ['2001:db8::10', '2001:db8::11'] };
const V6_HEX = `31 07 c8 02 | 00 19 | a6 c7 | 06 00 00 00
  fe80 0000 0000 0000 0000 0000 0000 0001
  2001 0db8 0000 0000 0000 0000 0000 0010
  2001 0db8 0000 0000 0000 0000 0000 0011`;

// The IPv4 advert signed with key id 1 = bytes 00..1f, sender id senderIdOf('alpha') = 0x8ed3f6ad,
// sequence epoch 1700000000 (0x6553f100) counter 5. Flag 0x01 set -> word 0400 becomes 0401 -> checksum 519e.
// MAC = HMAC-SHA256(key, first 36 bytes), computed with Python's hmac module.
const SIGNED_HEX = `31 33 64 01 | 00 64 | 51 9e | 04 01 00 00 | 0a 00 00 01 | 0a 63 00 64
  a1 01 0030 | 8ed3f6ad | 6553f100 00000005
  d0bf808eea4fe5d4e1f05b8cf6d8f87fc8b724a9abd30cb69c065703b360ff99`;
const GOLDEN_KEY = { id: 1, secret: Buffer.from(Array.from({ length: 32 }, (_, i) => i)) };

test('internetChecksum: RFC 1071 section 3 example, odd length, all zero', (t) => {
  // RFC 1071 3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2; the checksum is its complement.
  t.is(internetChecksum(hex('0001f203f4f5f6f7')), 0x220d);
  // Odd length: the last byte is padded with a zero byte.
  t.is(internetChecksum(hex('0001f203f4f5f6')), internetChecksum(hex('0001f203f4f5f600')));
  t.is(internetChecksum(Buffer.alloc(10)), 0xffff);
  t.is(internetChecksum(Buffer.alloc(0)), 0xffff);
  // Carries are folded: ffff + 0001 = 1 0000 -> 0001 -> fffe.
  t.is(internetChecksum(hex('ffff0001')), 0xfffe);
  // A buffer including its correct checksum sums to ffff, i.e. checksums to 0.
  t.is(internetChecksum(hex(V4_HEX)), 0);
});

test('golden IPv4 advert with one VIP: encode and decode', (t) => {
  const bytes = encodeAdvert(V4_ADVERT);
  t.is(bytes.toString('hex'), hex(V4_HEX).toString('hex'));
  t.deepEqual(decodeAdvert(hex(V4_HEX)), { ok: true, value: { advert: V4_ADVERT, signed: false, frameLength: 20 } });
});

test('golden IPv6 advert with two VIPs: encode and decode', (t) => {
  const bytes = encodeAdvert(V6_ADVERT);
  t.is(bytes.length, 60);
  t.is(bytes.toString('hex'), hex(V6_HEX).toString('hex'));
  t.deepEqual(decodeAdvert(hex(V6_HEX)), { ok: true, value: { advert: V6_ADVERT, signed: false, frameLength: 60 } });
});

test('golden signed advert: AdvertSigner output and decode', (t) => {
  const seq = new SequenceSource(1_700_000_000, () => 1_700_000_001, 5);
  const signed = new AdvertSigner([GOLDEN_KEY], 1, 0x8ed3f6ad, seq).sign(encodeAdvert(V4_ADVERT));
  t.is(signed.length, 20 + 48);
  t.is(signed.toString('hex'), hex(SIGNED_HEX).toString('hex'));
  t.deepEqual(decodeAdvert(signed), { ok: true, value: { advert: V4_ADVERT, signed: true, frameLength: 20 } });
});

test('encodeAdvert: adverts with 0 and 64 addresses, priority 0 and 255, interval 1 and 4095', (t) => {
  for (const a of [
    { ...V4_ADVERT, addresses: [] },
    { ...V4_ADVERT, priority: 0, advertIntervalCs: 1 },
    { ...V4_ADVERT, priority: 255, advertIntervalCs: 4095, vrid: 255 },
    { ...V4_ADVERT, addresses: Array.from({ length: 64 }, (_, i) => `10.0.1.${i}`) },
    { ...V6_ADVERT, addresses: Array.from({ length: 64 }, (_, i) => `2001:db8::${(i + 1).toString(16)}`) },
  ] satisfies Advert[]) {
    const b = encodeAdvert(a);
    t.is(b.length, 12 + (a.addresses.length + 1) * (a.family === 4 ? 4 : 16));
    t.deepEqual(decodeAdvert(b), { ok: true, value: { advert: a, signed: false, frameLength: b.length } });
  }
});

test('encodeAdvert throws CodecError for values out of range', (t) => {
  const bad: Array<[string, Advert]> = [
    ['vrid', { ...V4_ADVERT, vrid: 0 }],
    ['vrid', { ...V4_ADVERT, vrid: 256 }],
    ['vrid', { ...V4_ADVERT, vrid: 1.5 }],
    ['priority', { ...V4_ADVERT, priority: -1 }],
    ['priority', { ...V4_ADVERT, priority: 256 }],
    ['priority', { ...V4_ADVERT, priority: Number.NaN }],
    ['advertIntervalCs', { ...V4_ADVERT, advertIntervalCs: 0 }],
    ['advertIntervalCs', { ...V4_ADVERT, advertIntervalCs: 4096 }],
    ['at most 64', { ...V4_ADVERT, addresses: Array.from({ length: 65 }, () => '10.0.0.9') }],
    ['family', { ...V4_ADVERT, family: 5 as unknown as 4 }],
    ['sender', { ...V4_ADVERT, sender: 'fe80::1' }],
    ['sender', { ...V6_ADVERT, sender: '10.0.0.1' }],
    ['sender', { ...V6_ADVERT, sender: 'fe80::1%eth0' }],
    ['sender', { ...V4_ADVERT, sender: '10.0.0.256' }],
    ['sender', { ...V4_ADVERT, sender: '10.0.0.01' }],
    ['sender', { ...V4_ADVERT, sender: 'host.example' }],
    ['address[1]', { ...V4_ADVERT, addresses: ['10.0.0.2', '10.0.0'] }],
    ['address[0]', { ...V6_ADVERT, addresses: ['2001:db8::1::2'] }],
    ['address[0]', { ...V6_ADVERT, addresses: ['1:2:3:4:5:6:7:8:9'] }],
    ['address[0]', { ...V6_ADVERT, addresses: ['1:2:3:4:5:6:7'] }],
    ['address[0]', { ...V6_ADVERT, addresses: ['12345::'] }],
  ];
  for (const [what, a] of bad) {
    const e = t.throws(() => encodeAdvert(a), { instanceOf: CodecError }, `${what}: ${JSON.stringify(a)}`);
    t.is(e?.code, 'ERR_CODEC');
    t.true(e?.message.includes(what), e?.message);
  }
});

test('addresses: input forms are canonicalized like node:net (lowercase, compressed, mapped IPv4)', (t) => {
  const cases: Array<[string, string]> = [
    ['FE80:0:0:0:0:0:0:0001', 'fe80::1'],
    ['2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1'],
    ['0:0:0:0:0:ffff:c000:0201', '::ffff:192.0.2.1'],
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
  ];
  for (const [input, want] of cases) {
    const d = decodeAdvert(encodeAdvert({ ...V6_ADVERT, sender: input, addresses: [input] }));
    t.true(d.ok);
    if (d.ok) t.deepEqual([d.value.advert.sender, ...d.value.advert.addresses], [want, want], input);
    t.is(canonicalAddress(input), want);
    t.is(new SocketAddress({ address: input, family: 'ipv6' }).address, want);
  }
  t.is(canonicalAddress('10.0.0.1'), '10.0.0.1');
  t.is(canonicalAddress('10.0.0.01'), undefined);
  t.is(canonicalAddress('fe80::1%eth0'), undefined);
  t.is(canonicalAddress(''), undefined);
});

test('property: decoded IPv6 text equals node:net SocketAddress for any 16 bytes', (t) => {
  // Bias towards zero words so that compression and the IPv4-compatible/mapped forms are exercised.
  const word = fc.oneof(fc.constant(0), fc.constant(0), fc.constant(0xffff), fc.integer({ min: 0, max: 0xffff }));
  fc.assert(
    fc.property(fc.array(word, { minLength: 8, maxLength: 8 }), (words) => {
      const buf = Buffer.alloc(28);
      buf.set([0x31, 1, 100, 0, 0, 100, 0, 0, 6, 0, 0, 0]);
      words.forEach((w, i) => buf.writeUInt16BE(w, 12 + 2 * i));
      const d = decodeAdvert(reseal(buf));
      if (!d.ok) return false;
      const viaNode = new SocketAddress({ address: words.map((w) => w.toString(16)).join(':'), family: 'ipv6' }).address;
      return d.value.advert.sender === viaNode && encodeAdvert(d.value.advert).equals(buf);
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

test('property: canonicalAddress agrees with node:net for generated IPv4/IPv6 text', (t) => {
  fc.assert(
    fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (addr) => {
      const family = addr.includes(':') ? 'ipv6' : 'ipv4';
      return canonicalAddress(addr) === new SocketAddress({ address: addr, family }).address;
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

/** Every decode reason, with a frame that triggers it. */
const BAD_FRAMES: Array<[string, () => Buffer, (typeof DECODE_REASONS)[number]]> = [
  ['empty', () => Buffer.alloc(0), 'bad_length'],
  ['11 bytes', () => encodeAdvert(V4_ADVERT).subarray(0, 11), 'bad_length'],
  ['one byte short', () => encodeAdvert(V4_ADVERT).subarray(0, 19), 'bad_length'],
  ['one byte extra', () => Buffer.concat([encodeAdvert(V4_ADVERT), Buffer.alloc(1)]), 'bad_length'],
  ['count larger than the frame', () => reseal(Object.assign(encodeAdvert(V4_ADVERT), { 3: 2 })), 'bad_length'],
  ['auth flag without trailer', () => reseal(Object.assign(encodeAdvert(V4_ADVERT), { 9: 1 })), 'bad_length'],
  ['trailer without auth flag', () => Object.assign(hex(SIGNED_HEX), { 9: 0 }), 'bad_length'],
  ['version 2', () => reseal(Object.assign(encodeAdvert(V4_ADVERT), { 0: 0x21 })), 'bad_version'],
  ['type 2', () => reseal(Object.assign(encodeAdvert(V4_ADVERT), { 0: 0x32 })), 'bad_version'],
  ['zero byte 0 (short)', () => Buffer.alloc(12), 'bad_version'],
  ['checksum off by one', () => Object.assign(encodeAdvert(V4_ADVERT), { 7: 0xa0 }), 'bad_checksum'],
  ['payload bit flip', () => Object.assign(encodeAdvert(V4_ADVERT), { 19: 0x65 }), 'bad_checksum'],
  ['checksum 0xffff (negative zero) for a 0x0000 sum', () => negativeZeroChecksumFrame(), 'bad_checksum'],
  ['family 5', () => reseal(Object.assign(encodeAdvert(V4_ADVERT), { 8: 5 })), 'malformed'],
  ['count 65', () => reseal(Object.assign(encodeAdvert(V4_ADVERT), { 3: 65 })), 'malformed'],
  ['vrid 0', () => reseal(Object.assign(encodeAdvert(V4_ADVERT), { 1: 0 })), 'malformed'],
  ['interval 0', () => reseal(Object.assign(encodeAdvert(V4_ADVERT), { 4: 0, 5: 0 })), 'malformed'],
  ['reserved bits set', () => reseal(Object.assign(encodeAdvert(V4_ADVERT), { 4: 0x10 })), 'malformed'],
  ['unknown flag 0x02', () => reseal(Object.assign(encodeAdvert(V4_ADVERT), { 9: 0x02 })), 'malformed'],
  ['reserved byte 11', () => reseal(Object.assign(encodeAdvert(V4_ADVERT), { 11: 1 })), 'malformed'],
  ['trailer type 0xa2', () => Object.assign(hex(SIGNED_HEX), { 20: 0xa2 }), 'malformed'],
  ['trailer length 47', () => Object.assign(hex(SIGNED_HEX), { 23: 47 }), 'malformed'],
];

/** A frame whose correct checksum is 0x0000, stored as the other one's-complement zero 0xffff. */
function negativeZeroChecksumFrame(): Buffer {
  // Pick the sender's low word so that the word sum is exactly ffff (checksum 0000), then store ffff instead.
  const b = encodeAdvert({ ...V4_ADVERT, addresses: [] });
  b.writeUInt16BE(0, 14);
  const sumWithoutWord = 0xffff ^ internetChecksum(b, 0, b.length, 6);
  b.writeUInt16BE(0xffff - sumWithoutWord, 14);
  if (internetChecksum(b, 0, b.length, 6) !== 0) throw new Error('test setup: checksum is not 0x0000');
  b.writeUInt16BE(0xffff, 6);
  return b;
}

for (const [name, make, reason] of BAD_FRAMES) {
  test(`decodeAdvert -> ${reason}: ${name}`, (t) => {
    const r = decodeAdvert(make());
    t.false(r.ok);
    if (!r.ok) {
      t.is(r.reason, reason, r.detail);
      t.true(r.detail.length > 0);
    }
  });
}

test('every decode reason is covered by the table', (t) => {
  t.deepEqual(new Set(BAD_FRAMES.map(([, , r]) => r)), new Set(DECODE_REASONS));
});

test('truncating a valid frame byte by byte always fails without throwing', (t) => {
  for (const frame of [hex(V4_HEX), hex(V6_HEX), hex(SIGNED_HEX)]) {
    for (let n = 0; n < frame.length; n++) {
      const r = decodeAdvert(frame.subarray(0, n));
      t.false(r.ok, `prefix of ${n} bytes`);
      if (!r.ok) t.true(DECODE_REASONS.includes(r.reason));
    }
  }
});

test('property: decodeAdvert never throws for random bytes', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 1200 }), (bytes) => {
      const r = decodeAdvert(Buffer.from(bytes));
      return r.ok || DECODE_REASONS.includes(r.reason);
    }),
    { numRuns: 3000 },
  );
  t.pass();
});

test('property: mutated valid frames never throw, and any unsigned frame that decodes re-encodes identically', (t) => {
  const base = fc.constantFrom(hex(V4_HEX), hex(V6_HEX), hex(SIGNED_HEX));
  const edit = fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }));
  fc.assert(
    fc.property(base, fc.array(edit, { maxLength: 4 }), fc.boolean(), (frame, edits, fix) => {
      const b = Buffer.from(frame);
      for (const [pos, v] of edits) b[pos % b.length] = v;
      if (fix && b.length >= 12) reseal(b);
      const r = decodeAdvert(b);
      if (!r.ok) return DECODE_REASONS.includes(r.reason);
      if (r.value.signed) return r.value.frameLength === b.length - 48;
      return encodeAdvert(r.value.advert).equals(b);
    }),
    { numRuns: 5000 },
  );
  t.pass();
});

/** Canonical adverts: addresses in the text form decodeAdvert produces (node:net's). */
const canonicalAdvert: fc.Arbitrary<Advert> = fc.constantFrom<4 | 6>(4, 6).chain((family) => {
  const addr = (family === 4 ? fc.ipV4() : fc.ipV6()).map((a) => new SocketAddress({ address: a, family: family === 4 ? 'ipv4' : 'ipv6' }).address);
  return fc.record({
    vrid: fc.integer({ min: 1, max: 255 }),
    priority: fc.integer({ min: 0, max: 255 }),
    advertIntervalCs: fc.integer({ min: 1, max: 4095 }),
    family: fc.constant(family),
    sender: addr,
    addresses: fc.array(addr, { maxLength: 64 }),
  });
});

test('property: random valid adverts round-trip (decode(encode(a)) = a, encode(decode(x)) = x)', (t) => {
  fc.assert(
    fc.property(canonicalAdvert, (a) => {
      const bytes = encodeAdvert(a);
      const d = decodeAdvert(bytes);
      if (!d.ok || d.value.signed || d.value.frameLength !== bytes.length) return false;
      t.deepEqual(d.value.advert, a);
      return encodeAdvert(d.value.advert).equals(bytes);
    }),
    { numRuns: 500 },
  );
});

test('WIRE constants match the documented layout', (t) => {
  t.is(WIRE.versionType, 0x31);
  t.is(WIRE.offsetFlags, 9);
  t.is(WIRE.trailerLength, 48);
  t.is(WIRE.trailerType, 0xa1);
});

test('decodeAdvert accepts a plain Uint8Array and reports non-bytes as malformed', (t) => {
  const u8 = new Uint8Array(hex(V4_HEX));
  t.like(decodeAdvert(u8 as Buffer), { ok: true, value: { advert: V4_ADVERT } });
  for (const junk of [undefined, null, 'x', 42, {}, [1, 2]]) t.like(decodeAdvert(junk as unknown as Buffer), { ok: false, reason: 'malformed' });
});
