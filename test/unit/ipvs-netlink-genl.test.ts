/**
 * Generic netlink framing (src/ipvs/netlink/genl.ts): hand-computed bytes for headers, attributes (alignment,
 * nesting, NLA_F_NESTED masking), datagram splitting, NLMSG_ERROR / NLMSG_DONE and the ctrl family lookup;
 * every decode failure reason; properties: decoders never throw on any bytes, encode/decode round-trips.
 */

import test from 'ava';
import fc from 'fast-check';
import { CodecError } from '../../src/lib/errors.ts';
import {
  CTRL_ATTR,
  DECODE_REASONS,
  NLA_F_NESTED,
  NLMSG,
  NLM_F,
  align4,
  decodeAttrs,
  decodeDone,
  decodeFamily,
  decodeGenlPayload,
  decodeNlError,
  encodeAttr,
  encodeAttrs,
  encodeGenlMsg,
  encodeGetFamily,
  parseAttrs,
  splitDatagram,
} from '../../src/ipvs/netlink/genl.ts';
import type { AttrValues, DecodeReason } from '../../src/ipvs/netlink/genl.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/[\s|]/g, ''), 'hex');

/** A layout exercising every attribute kind. */
const KINDS = {
  A8: { type: 1, kind: 'u8' },
  A16: { type: 2, kind: 'u16' },
  A32: { type: 3, kind: 'u32' },
  A64: { type: 4, kind: 'u64' },
  B16: { type: 5, kind: 'be16' },
  B32: { type: 6, kind: 'be32' },
  STR: { type: 7, kind: 'string', maxLen: 5 },
  BIN: { type: 8, kind: 'binary', maxLen: 3 },
  FL: { type: 9, kind: 'flags' },
  NEST: { type: 10, kind: 'nested', name: 'INNER', table: { X: { type: 1, kind: 'u16' }, P: { type: 2, kind: 'pad' } } },
} as const;

// Every kind once, in table order; lengths and padding worked out by hand:
//   u8 len 5 + 3 pad, u16 len 6 + 2, u32 len 8, u64 len 12, be16 len 6 + 2, be32 len 8,
//   string "ab\0" len 7 + 1, binary 3 bytes len 7 + 1, flags len 12, nested {X=0x0102} len 4+8 = 12.
const ALL_VALUES: AttrValues<typeof KINDS> = {
  A8: 0xab,
  A16: 0x1234,
  A32: 0xdeadbeef,
  A64: 0x0102030405060708n,
  B16: 0x1234,
  B32: 0xc0a80001,
  STR: 'ab',
  BIN: Buffer.from([1, 2, 3]),
  FL: { flags: 0x19, mask: 0xffffffff },
  NEST: { X: 0x0102 },
};
const ALL_HEX = `
  0500 0100 ab 000000
  0600 0200 3412 0000
  0800 0300 efbeadde
  0c00 0400 0807060504030201
  0600 0500 1234 0000
  0800 0600 c0a80001
  0700 0700 616200 00
  0700 0800 010203 00
  0c00 0900 19000000 ffffffff
  0c00 0a00 | 0600 0100 0201 0000`;

test('encodeAttrs: every kind, host order for uN, network order for beN, 4-byte padding, table order', (t) => {
  t.deepEqual(encodeAttrs(KINDS, ALL_VALUES, 'T'), hex(ALL_HEX));
  // Values given in another order still come out in table order; absent values are skipped.
  t.deepEqual(encodeAttrs(KINDS, { B32: 1, A8: 2 }, 'T'), hex('0500 0100 02 000000 | 0800 0600 00000001'));
  t.deepEqual(encodeAttrs(KINDS, {}, 'T'), Buffer.alloc(0));
});

test('decodeAttrs: every kind back, unknown types skipped, a repeated type keeps the last value', (t) => {
  const d = decodeAttrs(KINDS, hex(ALL_HEX), 'T');
  t.deepEqual(d, { ok: true, value: ALL_VALUES });
  const extra = hex(`${ALL_HEX} | 0800 6300 01020304 | 0600 0200 ffff 0000`);
  const e = decodeAttrs(KINDS, extra, 'T');
  t.true(e.ok);
  if (e.ok) t.is(e.value.A16, 0xffff);
});

test('decodeAttrs: NLA_F_NESTED and NLA_F_NET_BYTEORDER are masked off the type; zero-length PAD skipped', (t) => {
  // NEST with NLA_F_NESTED (0x800a) and without (0x000a) decode alike; PAD (type 2, length 4) is skipped.
  const flagged = decodeAttrs(KINDS, hex('1000 0a80 | 0400 0200 | 0600 0100 0500 0000'), 'T');
  const plain = decodeAttrs(KINDS, hex('1000 0a00 | 0400 0200 | 0600 0100 0500 0000'), 'T');
  t.deepEqual(flagged, { ok: true, value: { NEST: { X: 5 } } });
  t.deepEqual(plain, flagged);
  t.deepEqual(decodeAttrs(KINDS, hex('0600 0240 3412 0000'), 'T'), { ok: true, value: { A16: 0x1234 } }, 'NLA_F_NET_BYTEORDER masked');
  t.is(NLA_F_NESTED, 0x8000);
});

test('decodeAttrs: strings stop at the first NUL and may lack one; binary up to maxLen', (t) => {
  t.deepEqual(decodeAttrs(KINDS, hex('0800 0700 61006200'), 'T'), { ok: true, value: { STR: 'a' } });
  t.deepEqual(decodeAttrs(KINDS, hex('0600 0700 6162 0000'), 'T'), { ok: true, value: { STR: 'ab' } });
  t.deepEqual(decodeAttrs(KINDS, hex('0400 0800'), 'T'), { ok: true, value: { BIN: Buffer.alloc(0) } });
});

test('decode failures name the attribute and the reason', (t) => {
  const cases: Array<[string, DecodeReason, string]> = [
    ['0700 0300 010203 00', 'bad_attr', 'T_A32: 3 bytes, expected 4'],
    ['0800 0800 01020304', 'bad_attr', 'T_BIN: 4 bytes, at most 3 expected'],
    ['0300 0100', 'bad_length', 'length 3 is below the 4-byte header'],
    ['0c00 0300 01020304', 'truncated', 'runs past the end'],
    ['0800 03', 'truncated', 'attribute header at offset 0: 3 bytes left'],
    ['0c00 0a00 | 0500 0100 01 000000', 'bad_attr', 'INNER_X: 1 bytes, expected 2'],
  ];
  for (const [bytes, reason, detail] of cases) {
    const d = decodeAttrs(KINDS, hex(bytes), 'T');
    t.false(d.ok, bytes);
    if (!d.ok) {
      t.is(d.reason, reason, bytes);
      t.true(d.detail.includes(detail), `${bytes}: ${d.detail}`);
      t.true((DECODE_REASONS as readonly string[]).includes(d.reason));
    }
  }
});

test('encodeAttrs throws CodecError naming the attribute for values the layout cannot carry', (t) => {
  const bad: Array<[AttrValues<typeof KINDS>, RegExp]> = [
    [{ A8: 256 }, /T_A8: 256 is not an integer 0\.\.255/],
    [{ A16: -1 }, /T_A16: -1 is not an integer 0\.\.65535/],
    [{ A32: 2 ** 32 }, /T_A32/],
    [{ A32: 1.5 }, /T_A32/],
    [{ B16: 65536 }, /T_B16/],
    [{ A64: -1n }, /T_A64/],
    [{ A64: 2n ** 64n }, /T_A64/],
    [{ STR: 'abcdef' }, /T_STR: "abcdef" is 6 bytes long, at most 5 fit/],
    [{ STR: 'a\0b' }, /T_STR: .* contains a NUL/],
    [{ BIN: Buffer.alloc(4) }, /T_BIN: 4 bytes, at most 3 fit/],
    [{ FL: { flags: -1, mask: 0 } }, /T_FL: flags -1/],
    [{ NEST: { X: 70000 } }, /INNER_X: 70000/],
  ];
  for (const [values, message] of bad) t.throws(() => encodeAttrs(KINDS, values, 'T'), { instanceOf: CodecError, message }, JSON.stringify(values, (_k, v) => (typeof v === 'bigint' ? String(v) : v)));
  t.throws(() => encodeAttr(1, Buffer.alloc(0xffff)), { instanceOf: CodecError });
});

test('parseAttrs and align4: lengths exclude padding, the next attribute starts aligned', (t) => {
  t.deepEqual([0, 1, 2, 3, 4, 5, 8].map(align4), [0, 4, 4, 4, 4, 8, 8]);
  const p = parseAttrs(hex('0500 0100 aa 000000 | 0500 0200 bb'));
  t.deepEqual(p, { ok: true, value: [{ type: 1, data: hex('aa') }, { type: 2, data: hex('bb') }] }, 'the last attribute may lack its padding');
});

test('encodeGenlMsg: nlmsghdr (length, family id, flags, seq, pid 0) + genlmsghdr + attributes', (t) => {
  // len 0x1c (16 + 4 + 8) | type 0x20 | REQUEST|ACK | seq 7 | pid 0 | cmd 17 version 1 | one u32 attribute.
  const bytes = encodeGenlMsg({ family: 0x20, cmd: 17, version: 1, flags: NLM_F.REQUEST | NLM_F.ACK, seq: 7 }, hex('0800 0100 01000000'));
  t.deepEqual(bytes, hex('1c000000 2000 0500 07000000 00000000 | 11 01 0000 | 0800 0100 01000000'));
  t.is(NLM_F.DUMP, 0x300);
  const g = decodeGenlPayload(bytes.subarray(16));
  t.deepEqual(g, { ok: true, value: { cmd: 17, version: 1, attrs: hex('0800 0100 01000000') } });
  t.deepEqual(decodeGenlPayload(hex('1101')), { ok: false, reason: 'truncated', detail: 'generic netlink header: 2 bytes, need 4' });
});

test('encodeGetFamily: CTRL_CMD_GETFAMILY for "IPVS" to GENL_ID_CTRL (the bytes the real kernel accepted)', (t) => {
  // Sent by the client inside the VM (trace), identical to this hand computation:
  // len 32 | type 0x10 | REQUEST | seq 1 | pid 0 | cmd 3 version 1 | FAMILY_NAME "IPVS\0" (len 9, padded to 12).
  t.deepEqual(encodeGetFamily('IPVS', 1), hex('20000000 1000 0100 01000000 00000000 | 03 01 0000 | 0900 0200 49505653 00 000000'));
});

test('decodeFamily: id, name, version, maxattr from CTRL_CMD_NEWFAMILY; other commands and missing ids fail', (t) => {
  const payload = hex(`01 02 0000
    0900 0200 49505653 00 000000
    0600 0100 2000 0000
    0800 0300 01000000
    0800 0400 00000000
    0800 0500 06000000
    0800 0600 00000000`); // an OPS attribute (type 6) is not in the layout and is skipped
  t.deepEqual(decodeFamily(payload), { ok: true, value: { id: 0x20, name: 'IPVS', version: 1, hdrSize: 0, maxAttr: 6 } });
  const wrongCmd = Buffer.from(payload);
  wrongCmd[0] = 3;
  t.like(decodeFamily(wrongCmd), { ok: false, reason: 'unexpected_message' });
  t.like(decodeFamily(hex('01020000 | 0900 0200 49505653 00 000000')), { ok: false, reason: 'missing_attr' });
  t.like(decodeFamily(hex('01020000 | 0600 0100 2000 0000')), { ok: false, reason: 'missing_attr' });
});

test('splitDatagram: several messages in one datagram, each with its header fields', (t) => {
  // A dump part (type 0x20, MULTI, seq 9) then NLMSG_DONE (MULTI, seq 9, status 0) then an ACK for seq 10.
  const dgram = hex(`
    1c000000 2000 0200 09000000 39300000 | 05 01 0000 | 0800 0100 01000000
    14000000 0300 0200 09000000 39300000 | 00000000
    24000000 0200 0001 0a000000 39300000 | 00000000 | 14000000 2000 0500 0a000000 00000000`);
  const s = splitDatagram(dgram);
  t.true(s.ok);
  if (!s.ok) return;
  t.deepEqual(
    s.value.map((m) => [m.type, m.flags, m.seq, m.pid, m.payload.length]),
    [
      [0x20, NLM_F.MULTI, 9, 12345, 12],
      [NLMSG.DONE, NLM_F.MULTI, 9, 12345, 4],
      [NLMSG.ERROR, NLM_F.CAPPED, 10, 12345, 20],
    ],
  );
  t.deepEqual(decodeDone(s.value[1]?.payload ?? Buffer.alloc(0)), { ok: true, value: 0 });
  const ack = decodeNlError(s.value[2]?.payload ?? Buffer.alloc(0));
  t.deepEqual(ack, { ok: true, value: { errno: 0, request: { len: 20, type: 0x20, flags: 5, seq: 10, pid: 0 } } });
});

test('splitDatagram failures: short header, length below 16, length past the end', (t) => {
  t.like(splitDatagram(hex('1000 0000 0200')), { ok: false, reason: 'truncated' });
  t.like(splitDatagram(hex('0f000000 0200 0000 01000000 00000000')), { ok: false, reason: 'bad_length' });
  t.like(splitDatagram(hex('30000000 0200 0000 01000000 00000000')), { ok: false, reason: 'truncated' });
  t.deepEqual(splitDatagram(Buffer.alloc(0)), { ok: true, value: [] });
});

test('decodeNlError: negative errno with the echoed request; positive codes and short payloads fail', (t) => {
  // -17 (EEXIST) = 0xffffffef, then the whole 68-byte request header the kernel echoes.
  t.deepEqual(decodeNlError(hex('efffffff | 44000000 2000 0500 03000000 00000000')), {
    ok: true,
    value: { errno: 17, request: { len: 0x44, type: 0x20, flags: 5, seq: 3, pid: 0 } },
  });
  t.deepEqual(decodeNlError(hex('feffffff')), { ok: true, value: { errno: 2, request: undefined } });
  t.like(decodeNlError(hex('01000000')), { ok: false, reason: 'bad_value' });
  t.like(decodeNlError(hex('ffff')), { ok: false, reason: 'truncated' });
});

test('decodeDone: status 0, a negative dump error, or no payload at all', (t) => {
  t.deepEqual(decodeDone(hex('00000000')), { ok: true, value: 0 });
  t.deepEqual(decodeDone(hex('f0ffffff')), { ok: true, value: 16 });
  t.deepEqual(decodeDone(Buffer.alloc(0)), { ok: true, value: 0 });
  t.like(decodeDone(hex('0000')), { ok: false, reason: 'truncated' });
});

test('property: no decoder throws on arbitrary bytes', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (arr) => {
      const b = Buffer.from(arr);
      splitDatagram(b);
      parseAttrs(b);
      decodeAttrs(KINDS, b, 'T');
      decodeAttrs(CTRL_ATTR, b, 'CTRL_ATTR');
      decodeGenlPayload(b);
      decodeNlError(b);
      decodeDone(b);
      decodeFamily(b);
    }),
    { numRuns: 3000 },
  );
  t.pass();
});

/** Well-framed attributes with random types and payloads: reaches the per-kind checks, not just framing. */
const attrRun: fc.Arbitrary<Buffer> = fc.letrec<{ run: Buffer }>((tie) => ({
  run: fc
    .array(
      fc.oneof(
        fc.tuple(fc.integer({ min: 0, max: 12 }), fc.uint8Array({ maxLength: 20 })).map(([type, data]) => encodeAttr(type, data)),
        fc.tuple(fc.integer({ min: 0, max: 12 }), tie('run')).map(([type, inner]) => encodeAttr(type | NLA_F_NESTED, inner)),
      ),
      { maxLength: 6 },
    )
    .map((parts) => Buffer.concat(parts)),
})).run;

test('property: decodeAttrs never throws on well-framed attributes of random types and sizes', (t) => {
  fc.assert(
    fc.property(attrRun, (b) => {
      const d = decodeAttrs(KINDS, b, 'T');
      if (!d.ok) t.true((DECODE_REASONS as readonly string[]).includes(d.reason));
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

test('property: whatever encodeAttrs accepts, decodeAttrs returns unchanged', (t) => {
  const values = fc.record(
    {
      A8: fc.integer({ min: 0, max: 255 }),
      A16: fc.integer({ min: 0, max: 0xffff }),
      A32: fc.integer({ min: 0, max: 0xffffffff }),
      A64: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      B16: fc.integer({ min: 0, max: 0xffff }),
      B32: fc.integer({ min: 0, max: 0xffffffff }),
      STR: fc.string({ maxLength: 5 }).filter((s) => !s.includes('\0') && Buffer.byteLength(s) <= 5),
      BIN: fc.uint8Array({ maxLength: 3 }).map((a) => Buffer.from(a)),
      FL: fc.record({ flags: fc.integer({ min: 0, max: 0xffffffff }), mask: fc.integer({ min: 0, max: 0xffffffff }) }),
      NEST: fc.record({ X: fc.integer({ min: 0, max: 0xffff }) }, { requiredKeys: [] }),
    },
    { requiredKeys: [] },
  );
  fc.assert(
    fc.property(values, (v) => {
      t.deepEqual(decodeAttrs(KINDS, encodeAttrs(KINDS, v as AttrValues<typeof KINDS>, 'T'), 'T'), { ok: true, value: v });
    }),
    { numRuns: 500 },
  );
});
