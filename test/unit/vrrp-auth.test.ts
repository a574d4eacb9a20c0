/**
 * Authentication (src/vrrp/auth.ts) and boot-epoch persistence (src/vrrp/epoch.ts): key files, sender ids,
 * sequence numbers across epoch renewal, signing and constant-time verification, epoch files in a temp dir.
 */

import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import { CodecError, TandemError } from '../../src/lib/errors.ts';
import {
  AdvertSigner,
  AdvertVerifier,
  AuthError,
  KEYGEN_HINT,
  SequenceSource,
  formatSequence,
  isSigned,
  loadKeyFile,
  parseKeyFile,
  readTrailer,
  senderIdOf,
  splitSequence,
} from '../../src/vrrp/auth.ts';
import type { AuthKey } from '../../src/vrrp/auth.ts';
import { decodeAdvert, encodeAdvert } from '../../src/vrrp/codec.ts';
import { EPOCH_FILE, loadAndBumpEpoch } from '../../src/vrrp/epoch.ts';
import type { Advert } from '../../src/vrrp/types.ts';

const HEX_A = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';
const HEX_B = 'ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100';
const ADVERT: Advert = { vrid: 9, priority: 150, advertIntervalCs: 100, family: 4, sender: '192.0.2.1', addresses: ['192.0.2.100'] };
const KEY_A: AuthKey = { id: 1, secret: Buffer.from(HEX_A, 'hex') };
const KEY_B: AuthKey = { id: 2, secret: Buffer.from(HEX_B, 'hex') };

function signer(keys: AuthKey[], keyId?: number, senderId = 0x01020304, epoch = 100): AdvertSigner {
  return new AdvertSigner(keys, keyId, senderId, new SequenceSource(epoch, () => epoch + 1));
}

// ---------------------------------------------------------------------------------------------------------
// Key files

test('parseKeyFile: ids, hex and base64 secrets, comments, blank lines, CRLF', (t) => {
  const b64 = Buffer.from('0123456789abcdef').toString('base64'); // exactly 16 bytes
  const text = ['# tandem keys', '', `1 ${HEX_A}   # current`, `  0\t${HEX_B.toUpperCase()}`, `255 base64:${b64}`, '   ', '#7 deadbeef'].join('\r\n');
  t.deepEqual(parseKeyFile(text, '/etc/tandem/keys'), [
    { id: 1, secret: Buffer.from(HEX_A, 'hex') },
    { id: 0, secret: Buffer.from(HEX_B, 'hex') },
    { id: 255, secret: Buffer.from('0123456789abcdef') },
  ]);
});

test('parseKeyFile: a single bare secret means key id 1', (t) => {
  t.deepEqual(parseKeyFile(`# only one\n${HEX_A}\n`, 'k'), [{ id: 1, secret: Buffer.from(HEX_A, 'hex') }]);
  t.deepEqual(parseKeyFile(`base64:${Buffer.alloc(32, 7).toString('base64')}`, 'k'), [{ id: 1, secret: Buffer.alloc(32, 7) }]);
});

const BAD_KEY_FILES: Array<[string, string, string, RegExp]> = [
  ['bad hex', `1 ${HEX_A.slice(0, 62)}zz`, 'keys:1', /bad hex/],
  ['odd hex digits', `1 ${HEX_A}0`, 'keys:1', /odd number/],
  ['short hex key', `# x\n1 ${HEX_A.slice(0, 32)}`, 'keys:2', /need at least 64 hex digits/],
  ['short base64 key', `1 base64:${Buffer.alloc(15).toString('base64')}`, 'keys:1', /15 bytes, need at least 16/],
  ['bad base64', '1 base64:not*base64', 'keys:1', /not valid base64/],
  ['empty base64', '1 base64:', 'keys:1', /not valid base64/],
  ['duplicate id', `1 ${HEX_A}\n\n1 ${HEX_B}`, 'keys:3', /duplicate key id 1 \(first defined at keys:1\)/],
  ['id out of range', `256 ${HEX_A}`, 'keys:1', /0\.\.255/],
  ['id not a number', `one ${HEX_A}`, 'keys:1', /0\.\.255/],
  ['id with leading zero', `01 ${HEX_A}`, 'keys:1', /0\.\.255/],
  ['three fields', `1 ${HEX_A} extra`, 'keys:1', /2 fields/],
  ['bare secret among keys', `${HEX_A}\n2 ${HEX_B}`, 'keys:1', /single key/],
  ['keyed line then bare secret', `2 ${HEX_B}\n${HEX_A}`, 'keys:2', /single key/],
  ['no keys', '# nothing\n\n', 'keys', /no keys/],
];

for (const [name, text, where, re] of BAD_KEY_FILES) {
  test(`parseKeyFile rejects: ${name}`, (t) => {
    const e = t.throws(() => parseKeyFile(text, 'keys'), { instanceOf: AuthError });
    t.true(e instanceof TandemError);
    t.is(e?.code, 'ERR_AUTH');
    t.true(e?.message.startsWith(`${where}:`), e?.message);
    t.regex(e?.message ?? '', re);
  });
}

test('parseKeyFile: secret errors say how to generate a key', (t) => {
  const e = t.throws(() => parseKeyFile('1 abcd', 'keys'), { instanceOf: AuthError });
  t.true(e?.message.includes(KEYGEN_HINT));
  t.true(KEYGEN_HINT.includes('head -c 32 /dev/urandom | xxd -p -c 64'));
});

test('loadKeyFile: reads a file; a missing file is an AuthError naming the path', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-keys-'));
  try {
    const path = join(dir, 'keys');
    writeFileSync(path, `3 ${HEX_A}\n`, { mode: 0o600 });
    t.deepEqual(loadKeyFile(path), [{ id: 3, secret: Buffer.from(HEX_A, 'hex') }]);
    const e = t.throws(() => loadKeyFile(join(dir, 'missing')), { instanceOf: AuthError });
    t.true(e?.message.includes(join(dir, 'missing')));
    t.truthy(e?.cause);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------------------
// Sender ids and sequences

test('senderIdOf: first 4 bytes of SHA-256(name), big-endian', (t) => {
  t.is(senderIdOf('alpha'), 0x8ed3f6ad); // python3: hashlib.sha256(b'alpha').digest()[:4]
  t.is(senderIdOf('alpha'), senderIdOf('alpha'));
  t.not(senderIdOf('alpha'), senderIdOf('beta'));
  const id = senderIdOf('');
  t.true(Number.isInteger(id) && id >= 0 && id <= 0xffffffff);
});

test('SequenceSource: epoch in the high half, counter in the low half, strictly increasing', (t) => {
  const s = new SequenceSource(7, () => 8);
  const a = s.next();
  const b = s.next();
  t.is(a, 7n << 32n);
  t.is(b, (7n << 32n) | 1n);
  t.deepEqual(splitSequence(b), { epoch: 7, counter: 1 });
  t.is(formatSequence(b), '7:1');
});

test('SequenceSource: counter wrap renews the epoch once and stays monotonic', (t) => {
  let renewals = 0;
  const s = new SequenceSource(41, () => ++renewals + 41, 0xffff_fffe);
  const seqs = [s.next(), s.next(), s.next(), s.next()];
  t.deepEqual(seqs.map(splitSequence), [
    { epoch: 41, counter: 0xffff_fffe },
    { epoch: 41, counter: 0xffff_ffff },
    { epoch: 42, counter: 0 },
    { epoch: 42, counter: 1 },
  ]);
  t.is(renewals, 1);
  t.is(s.epoch, 42);
  for (let i = 1; i < seqs.length; i++) t.true(seqs[i]! > seqs[i - 1]!);
});

test('SequenceSource: a renewed epoch that is not higher is raised to current + 1', (t) => {
  for (const renewed of [5, 10, Number.NaN, -1, 2 ** 40]) {
    const s = new SequenceSource(10, () => renewed, 0xffff_ffff);
    const a = s.next();
    const b = s.next();
    t.true(b > a);
    t.deepEqual(splitSequence(b), { epoch: 11, counter: 0 }, String(renewed));
  }
  const jump = new SequenceSource(10, () => 500, 0xffff_ffff);
  jump.next();
  t.is(splitSequence(jump.next()).epoch, 500);
});

test('SequenceSource: rejects non-u32 epochs and throws when the 64-bit space is exhausted', (t) => {
  t.throws(() => new SequenceSource(-1, () => 0), { instanceOf: AuthError });
  t.throws(() => new SequenceSource(2 ** 32, () => 0), { instanceOf: AuthError });
  t.throws(() => new SequenceSource(1.5, () => 0), { instanceOf: AuthError });
  const s = new SequenceSource(0xffff_ffff, () => 0, 0xffff_ffff);
  t.is(s.next(), 0xffff_ffff_ffff_ffffn);
  t.throws(() => s.next(), { instanceOf: AuthError, message: /exhausted/ });
});

// ---------------------------------------------------------------------------------------------------------
// Signing and verification

test('sign: sets flag 0x01, recomputes the checksum, appends a 48-byte trailer; verify accepts it', (t) => {
  const frame = encodeAdvert(ADVERT);
  const signed = signer([KEY_A, KEY_B], 2, 0xcafebabe).sign(frame);
  t.is(signed.length, frame.length + 48);
  t.is(signed[9], 0x01);
  t.true(signed.subarray(10, frame.length).equals(frame.subarray(10)));
  t.is(frame[9], 0, 'the input frame is not modified');
  const d = decodeAdvert(signed);
  t.deepEqual(d, { ok: true, value: { advert: ADVERT, signed: true, frameLength: frame.length } });
  t.deepEqual(readTrailer(signed), { keyId: 2, senderId: 0xcafebabe, sequence: 100n << 32n });
  t.true(isSigned(signed));
  t.false(isSigned(frame));
  const v = new AdvertVerifier([KEY_A, KEY_B]);
  t.deepEqual(v.verify(signed), { ok: true, trailer: { keyId: 2, senderId: 0xcafebabe, sequence: 100n << 32n } });
  t.is(v.macComputations, 1);
});

test('sign: each call consumes one sequence number; the default key is the first', (t) => {
  const s = signer([KEY_B, KEY_A]);
  t.is(s.keyId, 2);
  const a = readTrailer(s.sign(encodeAdvert(ADVERT)));
  const b = readTrailer(s.sign(encodeAdvert(ADVERT)));
  t.is(a?.keyId, 2);
  t.is(b!.sequence - a!.sequence, 1n);
});

test('AdvertSigner: refuses a missing send key, no keys, bad sender id, and invalid or signed frames', (t) => {
  t.throws(() => signer([KEY_A], 9), { instanceOf: AuthError, message: /send key id 9 .*ids: 1/ });
  t.throws(() => signer([]), { instanceOf: AuthError });
  t.throws(() => signer([KEY_A], 1, 2 ** 32), { instanceOf: AuthError });
  const s = signer([KEY_A]);
  const signed = s.sign(encodeAdvert(ADVERT));
  t.throws(() => s.sign(signed), { instanceOf: CodecError, message: /already/ });
  t.throws(() => s.sign(Buffer.from('garbage')), { instanceOf: CodecError });
});

test('verify: unsigned, unknown key (no HMAC computed), wrong key, truncated and corrupt trailers', (t) => {
  const v = new AdvertVerifier([KEY_A]);
  const signedA = signer([KEY_A]).sign(encodeAdvert(ADVERT));
  const signedB = signer([KEY_B]).sign(encodeAdvert(ADVERT));
  const forged = signer([{ id: 1, secret: KEY_B.secret }]).sign(encodeAdvert(ADVERT));
  const r = (b: Buffer): string => {
    const x = v.verify(b);
    return x.ok ? 'ok' : x.reason;
  };
  t.is(r(encodeAdvert(ADVERT)), 'unsigned');
  t.is(r(Buffer.alloc(0)), 'unsigned');
  t.is(r(Buffer.alloc(9, 0xff)), 'unsigned');
  t.is(v.macComputations, 0);
  t.is(r(signedB), 'unknown_key');
  t.is(v.macComputations, 0, 'an unknown key id costs no HMAC');
  t.is(r(forged), 'bad_mac');
  t.is(r(signedA.subarray(0, signedA.length - 1)), 'bad_mac');
  t.is(r(signedA.subarray(0, 40)), 'bad_mac');
  t.is(r(Buffer.concat([signedA, Buffer.alloc(1)])), 'bad_mac');
  t.is(r(signedA), 'ok');
});

test('verify: the MAC covers every byte, including sender id and sequence (every single-bit flip fails)', (t) => {
  const v = new AdvertVerifier([KEY_A, { id: 0, secret: KEY_B.secret }]);
  const signed = signer([KEY_A]).sign(encodeAdvert(ADVERT));
  for (let i = 0; i < signed.length; i++) {
    for (let bit = 0; bit < 8; bit++) {
      const b = Buffer.from(signed);
      b[i] = (b[i] ?? 0) ^ (1 << bit);
      t.false(v.verify(b).ok, `byte ${i} bit ${bit}`);
    }
  }
});

test('property: verify never throws and never accepts random bytes', (t) => {
  const v = new AdvertVerifier([KEY_A]);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => !v.verify(Buffer.from(bytes)).ok),
    { numRuns: 2000 },
  );
  t.pass();
});

// ---------------------------------------------------------------------------------------------------------
// Boot epoch persistence

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-epoch-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('epoch: first boot uses the wall clock, creates the dir 0700 and the file 0600', (t) => {
  withDir((dir) => {
    const state = join(dir, 'state', 'nested');
    t.deepEqual(loadAndBumpEpoch(state, 1_700_000_000.9), { epoch: 1_700_000_000, persisted: true });
    t.is(readFileSync(join(state, EPOCH_FILE), 'utf8'), '1700000000\n');
    t.is(statSync(state).mode & 0o777, 0o700);
    t.is(statSync(join(state, EPOCH_FILE)).mode & 0o777, 0o600);
    t.deepEqual(readdirSync(state), [EPOCH_FILE], 'no temp file left behind');
  });
});

test('epoch: every boot bumps the stored epoch, even when the wall clock is behind', (t) => {
  withDir((dir) => {
    writeFileSync(join(dir, EPOCH_FILE), '100\n');
    t.deepEqual(loadAndBumpEpoch(dir, 50), { epoch: 101, persisted: true });
    t.deepEqual(loadAndBumpEpoch(dir, 50), { epoch: 102, persisted: true });
    t.deepEqual(loadAndBumpEpoch(dir, Number.NaN), { epoch: 103, persisted: true });
    t.is(readFileSync(join(dir, EPOCH_FILE), 'utf8'), '103\n');
  });
});

test('epoch: the wall clock is a floor (stored epoch far behind)', (t) => {
  withDir((dir) => {
    writeFileSync(join(dir, EPOCH_FILE), '100');
    t.is(loadAndBumpEpoch(dir, 5000).epoch, 5000);
  });
});

test('epoch: a lost file falls back to the wall seconds', (t) => {
  withDir((dir) => {
    t.is(loadAndBumpEpoch(dir, 1000).epoch, 1000);
    t.is(loadAndBumpEpoch(dir, 1000).epoch, 1001);
    unlinkSync(join(dir, EPOCH_FILE));
    const r = loadAndBumpEpoch(dir, 2000);
    t.deepEqual(r, { epoch: 2000, persisted: true });
  });
});

test('epoch: a corrupt file is treated as missing, with a warning, and rewritten', (t) => {
  for (const junk of ['', 'abc', '12x', '-5', '4294967296', '1e9', '99999999999']) {
    withDir((dir) => {
      writeFileSync(join(dir, EPOCH_FILE), junk);
      const r = loadAndBumpEpoch(dir, 3000);
      t.is(r.epoch, 3000, junk);
      t.true(r.persisted);
      t.regex(r.warning ?? '', /corrupt/, junk);
      t.is(readFileSync(join(dir, EPOCH_FILE), 'utf8'), '3000\n');
    });
  }
});

test('epoch: clamps to u32 and warns when the stored epoch is exhausted', (t) => {
  withDir((dir) => {
    t.is(loadAndBumpEpoch(dir, 2 ** 40).epoch, 0xffff_ffff);
    const r = loadAndBumpEpoch(dir, 0);
    t.is(r.epoch, 0xffff_ffff);
    t.regex(r.warning ?? '', /largest epoch/);
  });
});

test('epoch: cannot persist -> persisted false with a warning, never a throw', (t) => {
  withDir((dir) => {
    const notADir = join(dir, 'file');
    writeFileSync(notADir, 'x');
    const r = loadAndBumpEpoch(join(notADir, 'state'), 1234);
    t.is(r.epoch, 1234);
    t.false(r.persisted);
    t.regex(r.warning ?? '', /cannot persist/);
  });
});
