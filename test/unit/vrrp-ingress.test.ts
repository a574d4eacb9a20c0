/**
 * Ingress filter (src/vrrp/ingress.ts): a table of every drop reason in every authentication mode, the
 * mandatory check order (proved by counting HMACs and by replay-window behaviour), the bounded per-source
 * tables, and a property that random bytes never throw.
 */

import { createHmac } from 'node:crypto';
import test from 'ava';
import fc from 'fast-check';
import type { AuthMode } from '../../src/config/types.ts';
import { AdvertSigner, SequenceSource } from '../../src/vrrp/auth.ts';
import type { AuthKey } from '../../src/vrrp/auth.ts';
import { encodeAdvert, internetChecksum } from '../../src/vrrp/codec.ts';
import { AdvertIngress, DROP_REASONS } from '../../src/vrrp/ingress.ts';
import type { AdvertIngressOptions, DropReason, IngressResult } from '../../src/vrrp/ingress.ts';
import type { Advert } from '../../src/vrrp/types.ts';

const KEY: AuthKey = { id: 1, secret: Buffer.alloc(32, 0x11) };
const OTHER_KEY: AuthKey = { id: 2, secret: Buffer.alloc(32, 0x22) };
const PEER_ID = 0x0000_0002;
const OWN_ID = 0x0000_0001;
const PEER_SRC = '192.0.2.2';
const OWN_ADDR = '192.0.2.1';
const VRID = 10;
const ADVERT: Advert = { vrid: VRID, priority: 100, advertIntervalCs: 100, family: 4, sender: PEER_SRC, addresses: ['192.0.2.100'] };

type ModeName = 'none' | AuthMode;
const MODES: readonly ModeName[] = ['none', 'receive-only', 'permissive', 'enforce'];

function ingress(mode: ModeName, over: Partial<AdvertIngressOptions> = {}): AdvertIngress {
  return new AdvertIngress({
    auth: mode === 'none' ? undefined : { mode, keys: [KEY] },
    ownSenderId: OWN_ID,
    ownAddresses: [OWN_ADDR, '2001:db8::1'],
    knownVrids: new Set([VRID]),
    maxPeerPriority: 254,
    rateLimit: { perSecond: 1000, burst: 1000 },
    ...over,
  });
}

/** Builds a signed datagram by hand over arbitrary bytes (so signed-but-garbage frames can be made). */
function signRaw(vrrp: Buffer, opts: { key?: AuthKey; keyId?: number; senderId?: number; seq: bigint }): Buffer {
  const key = opts.key ?? KEY;
  const trailer = Buffer.alloc(48);
  trailer[0] = 0xa1;
  trailer[1] = opts.keyId ?? key.id;
  trailer.writeUInt16BE(48, 2);
  trailer.writeUInt32BE(opts.senderId ?? PEER_ID, 4);
  trailer.writeBigUInt64BE(opts.seq, 8);
  const out = Buffer.concat([vrrp, trailer]);
  createHmac('sha256', key.secret).update(out.subarray(0, out.length - 32)).digest().copy(out, out.length - 32);
  return out;
}

/** An encoded frame with the auth flag set, then `patch`ed, then (unless `reseal` is false) its checksum fixed. */
function flagged(a: Advert = ADVERT, patch: (b: Buffer) => void = () => {}, reseal = true): Buffer {
  const b = encodeAdvert(a);
  b[9] = 1;
  b.writeUInt16BE(internetChecksum(b, 0, b.length, 6), 6);
  patch(b);
  if (reseal) b.writeUInt16BE(internetChecksum(b, 0, b.length, 6), 6);
  return b;
}

const seqOf = (epoch: number, counter: number): bigint => (BigInt(epoch) << 32n) | BigInt(counter);
const good = (counter = 1, a: Advert = ADVERT, senderId = PEER_ID): Buffer => signRaw(flagged(a), { seq: seqOf(100, counter), senderId });

/** What a mode does with a case: accept (with details) or drop with a reason. */
type Expect = DropReason | { accept: true; authenticated: boolean; wouldDrop?: DropReason; unsigned?: true };
const ACC = (authenticated: boolean, extra: { wouldDrop?: DropReason; unsigned?: true } = {}): Expect => ({ accept: true, authenticated, ...extra });
const all = (e: Expect): Record<ModeName, Expect> => ({ none: e, 'receive-only': e, permissive: e, enforce: e });

interface Case {
  name: string;
  /** Datagrams sent (and accepted or not) before the one under test. */
  before?: () => Buffer[];
  frame: () => Buffer;
  source?: string;
  options?: Partial<AdvertIngressOptions>;
  expect: Record<ModeName, Expect>;
}

const CASES: Case[] = [
  {
    name: 'valid signed advert',
    frame: () => good(),
    expect: { none: ACC(false), 'receive-only': ACC(true), permissive: ACC(true), enforce: ACC(true) },
  },
  {
    name: 'valid unsigned advert',
    frame: () => encodeAdvert(ADVERT),
    expect: {
      none: ACC(false, { unsigned: true }),
      'receive-only': ACC(false, { wouldDrop: 'unsigned', unsigned: true }),
      permissive: ACC(false, { unsigned: true }),
      enforce: 'unsigned',
    },
  },
  {
    name: 'rate_limit: second datagram within the burst of 1',
    options: { rateLimit: { perSecond: 1, burst: 1 } },
    before: () => [good(1)],
    frame: () => good(2),
    expect: all('rate_limit'),
  },
  {
    name: 'unknown_key: key id 2 is not configured',
    frame: () => signRaw(flagged(), { key: OTHER_KEY, seq: seqOf(100, 1) }),
    expect: { none: ACC(false), 'receive-only': ACC(false, { wouldDrop: 'unknown_key' }), permissive: 'unknown_key', enforce: 'unknown_key' },
  },
  {
    name: 'bad_mac: key id 1 with the wrong secret',
    frame: () => signRaw(flagged(), { key: { id: 1, secret: OTHER_KEY.secret }, seq: seqOf(100, 1) }),
    expect: { none: ACC(false), 'receive-only': ACC(false, { wouldDrop: 'bad_mac' }), permissive: 'bad_mac', enforce: 'bad_mac' },
  },
  {
    name: 'bad_mac: trailer truncated by 10 bytes',
    frame: () => good().subarray(0, 20 + 38),
    expect: { none: 'bad_length', 'receive-only': 'bad_length', permissive: 'bad_mac', enforce: 'bad_mac' },
  },
  {
    name: 'replay: the same valid frame twice',
    before: () => [good(5)],
    frame: () => good(5),
    expect: { none: ACC(false), 'receive-only': ACC(false, { wouldDrop: 'replay' }), permissive: 'replay', enforce: 'replay' },
  },
  {
    name: 'replay: an older sequence after a newer one, from another source address',
    before: () => [good(5)],
    frame: () => good(4),
    source: '198.51.100.7',
    expect: { none: ACC(false), 'receive-only': ACC(false, { wouldDrop: 'replay' }), permissive: 'replay', enforce: 'replay' },
  },
  {
    name: 'bad_length: signed (valid MAC) with an extra byte before the trailer',
    frame: () => signRaw(Buffer.concat([flagged(), Buffer.alloc(1)]), { seq: seqOf(100, 1) }),
    expect: all('bad_length'),
  },
  {
    name: 'bad_length: unsigned with an extra byte',
    frame: () => Buffer.concat([encodeAdvert(ADVERT), Buffer.alloc(1)]),
    expect: { none: 'bad_length', 'receive-only': 'bad_length', permissive: 'bad_length', enforce: 'unsigned' },
  },
  {
    name: 'bad_version: signed (valid MAC) version 2',
    frame: () => signRaw(flagged(ADVERT, (b) => (b[0] = 0x21)), { seq: seqOf(100, 1) }),
    expect: all('bad_version'),
  },
  {
    name: 'bad_checksum: signed (valid MAC) with a wrong checksum',
    frame: () => signRaw(flagged(ADVERT, (b) => (b[7] = (b[7] ?? 0) ^ 0xff), false), { seq: seqOf(100, 1) }),
    expect: all('bad_checksum'),
  },
  {
    name: 'malformed: signed (valid MAC) vrid 0',
    frame: () => signRaw(flagged(ADVERT, (b) => (b[1] = 0)), { seq: seqOf(100, 1) }),
    expect: all('malformed'),
  },
  {
    name: 'own: signed with our sender id',
    frame: () => good(1, ADVERT, OWN_ID),
    expect: all('own'),
  },
  {
    name: 'own: unsigned with our address as sender',
    frame: () => encodeAdvert({ ...ADVERT, sender: OWN_ADDR }),
    expect: { none: 'own', 'receive-only': 'own', permissive: 'own', enforce: 'unsigned' },
  },
  {
    name: 'own: IPv6 sender matching a configured address written differently',
    frame: () => good(1, { ...ADVERT, family: 6, sender: '2001:db8::1', addresses: [] }),
    options: { ownAddresses: ['2001:DB8:0:0:0:0:0:0001'] },
    expect: all('own'),
  },
  {
    name: 'wrong_vrid',
    frame: () => good(1, { ...ADVERT, vrid: 11 }),
    expect: all('wrong_vrid'),
  },
  {
    name: 'priority_not_allowed: 255 with max_peer_priority 254',
    frame: () => good(1, { ...ADVERT, priority: 255 }),
    expect: all('priority_not_allowed'),
  },
  {
    name: 'priority_not_allowed: 201 with max_peer_priority 200',
    frame: () => good(1, { ...ADVERT, priority: 201 }),
    options: { maxPeerPriority: 200 },
    expect: all('priority_not_allowed'),
  },
  {
    name: 'priority 255 accepted when max_peer_priority is 255',
    frame: () => good(1, { ...ADVERT, priority: 255 }),
    options: { maxPeerPriority: 255 },
    expect: { none: ACC(false), 'receive-only': ACC(true), permissive: ACC(true), enforce: ACC(true) },
  },
];

for (const c of CASES) {
  for (const mode of MODES) {
    test(`[${mode}] ${c.name}`, (t) => {
      const ing = ingress(mode, c.options);
      for (const b of c.before?.() ?? []) ing.accept(b, PEER_SRC, 0);
      const frame = c.frame();
      const r = ing.accept(frame, c.source ?? PEER_SRC, 0);
      const want = c.expect[mode];
      if (typeof want === 'string') {
        t.false(r.ok, `accepted: ${JSON.stringify(r, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`);
        if (!r.ok) {
          t.is(r.reason, want, r.detail);
          t.true(r.detail.includes(c.source ?? PEER_SRC), `detail names the source: ${r.detail}`);
        }
      } else {
        t.true(r.ok, r.ok ? '' : `${r.reason}: ${r.detail}`);
        if (r.ok) {
          t.is(r.authenticated, want.authenticated);
          t.is(r.senderId, want.authenticated ? PEER_ID : undefined);
          t.is(r.wouldDrop, want.wouldDrop);
          t.is(r.unsigned, want.unsigned);
          t.is(r.advert.vrid, frame[1] ?? -1);
        }
      }
    });
  }
}

test('the table covers every drop reason', (t) => {
  const seen = new Set<DropReason>();
  for (const c of CASES) {
    for (const e of Object.values(c.expect)) {
      if (typeof e === 'string') seen.add(e);
      else if (e.wouldDrop !== undefined) seen.add(e.wouldDrop);
    }
  }
  t.deepEqual([...seen].sort(), [...DROP_REASONS].sort());
});

// ---------------------------------------------------------------------------------------------------------
// Check order

test('order: a flood from one source is rate-limited before any HMAC work', (t) => {
  const ing = ingress('enforce', { rateLimit: { perSecond: 1, burst: 5 } });
  const frame = good(1);
  const counts = new Map<string, number>();
  for (let i = 0; i < 1000; i++) {
    const r = ing.accept(frame, PEER_SRC, 0);
    const k = r.ok ? 'ok' : r.reason;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  t.deepEqual(Object.fromEntries(counts), { ok: 1, replay: 4, rate_limit: 995 });
  t.is(ing.macComputations, 5, 'only the 5 datagrams within the burst were MAC-checked');
  // Forged frames from the same source cost nothing either.
  const forged = signRaw(flagged(), { key: { id: 1, secret: OTHER_KEY.secret }, seq: seqOf(100, 9) });
  t.is((ing.accept(forged, PEER_SRC, 0) as { reason?: string }).reason, 'rate_limit');
  t.is(ing.macComputations, 5);
  // Another source has its own bucket.
  t.true(ing.accept(good(2), '192.0.2.3', 0).ok);
});

test('order: the bucket refills at perSecond', (t) => {
  const ing = ingress('none', { rateLimit: { perSecond: 10, burst: 2 } });
  const u = encodeAdvert(ADVERT);
  const ok = (now: number): boolean => ing.accept(u, PEER_SRC, now).ok;
  t.deepEqual([ok(0), ok(0), ok(0)], [true, true, false]);
  t.false(ok(99), '0.99 token after 99 ms');
  t.true(ok(100));
  t.true(ok(10_000));
  t.true(ok(10_000));
  t.false(ok(10_000), 'refill is capped at burst');
  t.false(ok(5_000), 'time going backwards neither throws nor refills');
});

test('order: a forged frame with a wrong key is bad_mac and does not advance the replay window', (t) => {
  const ing = ingress('enforce');
  t.true(ing.accept(good(1), PEER_SRC, 0).ok);
  const forged = signRaw(flagged(), { key: { id: 1, secret: OTHER_KEY.secret }, seq: seqOf(999, 0) });
  t.like(ing.accept(forged, PEER_SRC, 0), { ok: false, reason: 'bad_mac' });
  t.true(ing.accept(good(2), PEER_SRC, 0).ok, 'the genuine next sequence is still accepted');
});

test('order: replay is checked before parsing; the window advances only once the frame parses', (t) => {
  const ing = ingress('enforce');
  t.true(ing.accept(good(10), PEER_SRC, 0).ok);
  // A validly signed but unparsable frame with an old sequence is a replay (not bad_version).
  const oldGarbage = signRaw(flagged(ADVERT, (b) => (b[0] = 0x21)), { seq: seqOf(100, 3) });
  t.like(ing.accept(oldGarbage, PEER_SRC, 0), { ok: false, reason: 'replay' });
  // A validly signed garbage frame with a much higher sequence fails parsing and burns nothing.
  const newGarbage = signRaw(flagged(ADVERT, (b) => (b[0] = 0x21)), { seq: seqOf(200, 0) });
  t.like(ing.accept(newGarbage, PEER_SRC, 0), { ok: false, reason: 'bad_version' });
  t.true(ing.accept(good(11), PEER_SRC, 0).ok);
  // A frame that parses advances the window even if a later filter drops it.
  t.like(ing.accept(good(20, { ...ADVERT, vrid: 99 }), PEER_SRC, 0), { ok: false, reason: 'wrong_vrid' });
  t.like(ing.accept(good(12), PEER_SRC, 0), { ok: false, reason: 'replay' });
  t.true(ing.accept(good(21), PEER_SRC, 0).ok);
});

test('order: replay windows are per sender id, not per source address', (t) => {
  const ing = ingress('permissive');
  t.true(ing.accept(good(7, ADVERT, 0xaaaa), '192.0.2.50', 0).ok);
  t.true(ing.accept(good(3, ADVERT, 0xbbbb), '192.0.2.50', 0).ok, 'another sender id has its own window');
  const replay = ing.accept(good(7, ADVERT, 0xaaaa), '203.0.113.9', 0);
  t.like(replay, { ok: false, reason: 'replay' });
  if (!replay.ok) {
    t.true(replay.detail.includes('203.0.113.9'));
    t.true(replay.detail.includes('100:7'), replay.detail);
  }
});

test('order: an epoch bump (restart of the peer) continues above the old window', (t) => {
  const ing = ingress('enforce');
  const peer1 = new AdvertSigner([KEY], 1, PEER_ID, new SequenceSource(100, () => 101));
  for (let i = 0; i < 3; i++) t.true(ing.accept(peer1.sign(encodeAdvert(ADVERT)), PEER_SRC, 0).ok);
  const peer2 = new AdvertSigner([KEY], 1, PEER_ID, new SequenceSource(101, () => 102));
  t.true(ing.accept(peer2.sign(encodeAdvert(ADVERT)), PEER_SRC, 0).ok);
  const stale = new AdvertSigner([KEY], 1, PEER_ID, new SequenceSource(100, () => 101, 500));
  t.like(ing.accept(stale.sign(encodeAdvert(ADVERT)), PEER_SRC, 0), { ok: false, reason: 'replay' });
});

test('order: MAC before parse, parse before own, own before vrid, vrid before priority', (t) => {
  const ing = ingress('enforce');
  const badMacAndMalformed = signRaw(flagged(ADVERT, (b) => (b[1] = 0)), { key: { id: 1, secret: OTHER_KEY.secret }, seq: seqOf(100, 1) });
  t.like(ing.accept(badMacAndMalformed, PEER_SRC, 0), { reason: 'bad_mac' });
  const ownBadChecksum = signRaw(flagged({ ...ADVERT, sender: OWN_ADDR }, (b) => (b[7] = (b[7] ?? 0) ^ 1), false), { seq: seqOf(100, 2) });
  t.like(ing.accept(ownBadChecksum, PEER_SRC, 0), { reason: 'bad_checksum' });
  t.like(ing.accept(good(3, { ...ADVERT, vrid: 99, priority: 255 }, OWN_ID), PEER_SRC, 0), { reason: 'own' });
  t.like(ing.accept(good(4, { ...ADVERT, vrid: 99, priority: 255 }), PEER_SRC, 0), { reason: 'wrong_vrid' });
  t.like(ing.accept(good(5, { ...ADVERT, priority: 255 }), PEER_SRC, 0), { reason: 'priority_not_allowed' });
});

test('no auth configured: signed frames are accepted unverified, without replay checks or HMACs', (t) => {
  const ing = ingress('none');
  const forged = signRaw(flagged(), { key: OTHER_KEY, seq: seqOf(1, 1) });
  const r1 = ing.accept(forged, PEER_SRC, 0);
  const r2 = ing.accept(forged, PEER_SRC, 0);
  t.like(r1, { ok: true, authenticated: false, senderId: undefined });
  t.like(r2, { ok: true, authenticated: false });
  t.is(ing.macComputations, 0);
});

test('an unknown key id costs no HMAC', (t) => {
  const ing = ingress('enforce');
  t.like(ing.accept(signRaw(flagged(), { key: OTHER_KEY, seq: 1n }), PEER_SRC, 0), { reason: 'unknown_key' });
  t.is(ing.macComputations, 0);
});

test('details name the source, vrid and sequence numbers', (t) => {
  const ing = ingress('enforce');
  ing.accept(good(8), PEER_SRC, 0);
  const r = ing.accept(good(8), PEER_SRC, 0) as Extract<IngressResult, { ok: false }>;
  t.regex(r.detail, /192\.0\.2\.2.*sender id 0x00000002 sequence 100:8 is not above the highest accepted 100:8/);
  const v = ing.accept(good(9, { ...ADVERT, vrid: 77 }), PEER_SRC, 0) as Extract<IngressResult, { ok: false }>;
  t.regex(v.detail, /vrid 77/);
});

// ---------------------------------------------------------------------------------------------------------
// Bounded tables and robustness

test('rate-limit table is bounded: least recently seen sources are evicted', (t) => {
  const ing = ingress('none', { rateLimit: { perSecond: 1, burst: 1 }, maxTrackedSources: 3 });
  const u = encodeAdvert(ADVERT);
  t.true(ing.accept(u, 'a', 0).ok);
  t.like(ing.accept(u, 'a', 0), { reason: 'rate_limit' });
  for (const s of ['b', 'c', 'd']) t.true(ing.accept(u, s, 0).ok);
  t.is(ing.trackedSources, 3);
  t.true(ing.accept(u, 'a', 0).ok, 'a was evicted and starts with a fresh bucket');
  const big = ingress('none');
  for (let i = 0; i < 5000; i++) big.accept(u, `10.1.${i >> 8}.${i & 255}`, i);
  t.is(big.trackedSources, 1024, 'default bound');
});

test('constructor rejects unusable rate limits', (t) => {
  t.throws(() => ingress('none', { rateLimit: { perSecond: 0, burst: 1 } }), { message: /perSecond/ });
  t.throws(() => ingress('none', { rateLimit: { perSecond: 1, burst: 0.5 } }), { message: /burst/ });
  t.throws(() => ingress('none', { maxTrackedSources: 0 }), { message: /maxTrackedSources/ });
});

test('property: accept never throws for random bytes, sources and times, in every mode', (t) => {
  const ings = MODES.map((m) => ingress(m, { rateLimit: { perSecond: 1e9, burst: 1e9 } }));
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), fc.string(), fc.double(), (bytes, source, now) => {
      for (const ing of ings) {
        const r = ing.accept(Buffer.from(bytes), source, now);
        if (r.ok ? r.advert === undefined : !DROP_REASONS.includes(r.reason)) return false;
      }
      return true;
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

test('property: mutated signed frames never throw and are accepted as authenticated only when intact', (t) => {
  const base = good(1);
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }), fc.nat({ max: 80 }), (edits, cut) => {
      const ing = ingress('enforce');
      const b = Buffer.from(base.subarray(0, Math.max(0, base.length - (cut % 3 === 0 ? cut : 0))));
      for (const [pos, v] of edits) if (b.length > 0) b[pos % b.length] = v;
      const r = ing.accept(b, PEER_SRC, 0);
      return !r.ok || (r.authenticated && b.equals(base));
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

test('accept never throws for values that are not byte buffers', (t) => {
  for (const mode of MODES) {
    const ing = ingress(mode);
    for (const junk of [undefined, null, 'x', 42, {}, [1, 2]]) {
      t.like(ing.accept(junk as unknown as Buffer, PEER_SRC, 0), { ok: false, reason: 'malformed' });
    }
    t.true(ing.accept(new Uint8Array(good(1, ADVERT, 0x1234)) as Buffer, PEER_SRC, 0).ok, mode);
  }
});
