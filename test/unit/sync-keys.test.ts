/**
 * CURVE key files (src/sync/keys.ts): Z85 against the RFC 32 vector, a key pair recorded from zeromq's
 * curveKeyPair() (public derived from secret), generated pairs, key files with their modes, and every refusal:
 * a secret key readable by group or others, a missing file, a symlink, garbage.
 */

import { chmodSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import { SyncError } from '../../src/sync/errors.ts';
import {
  generateKeyPair, isCurveKey, loadPublicKeyFile, loadSecretKeyFile, loadSyncKeys, parseKeyText, publicKeyOf, writeKeyPairFiles, z85Decode, z85Encode,
} from '../../src/sync/keys.ts';

// Recorded from zeromq 6.8.0 curveKeyPair() (libzmq 4.3.5 / libsodium).
const ZMQ_PAIR = { publicKey: 'qQ3GJJq+65)COfMBH?C)3.s3cu&i7MX]T!MynJsU', secretKey: 'vP(N@B$%!(ilnI[VX<q*H*D$!]Oh/Ltpm&lyoMgZ' };

const tmp = () => mkdtempSync(join(tmpdir(), 'tandem-keys-'));

test('Z85: the RFC 32 test vector, round trips, and invalid text', (t) => {
  const bytes = Buffer.from([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b]);
  t.is(z85Encode(bytes), 'HelloWorld');
  t.deepEqual(z85Decode('HelloWorld'), bytes);
  t.is(z85Decode('Hello'.slice(0, 4)), undefined);
  t.is(z85Decode('Hell~'), undefined);
  t.is(z85Decode('%%%%%'), undefined); // > 2^32
  t.throws(() => z85Encode(Buffer.alloc(3)), { instanceOf: RangeError });
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }).filter((b) => b.length % 4 === 0), (b) => Buffer.from(b).equals(z85Decode(z85Encode(b)) ?? Buffer.alloc(1))));
});

test('the public key of a zeromq-made secret key is the one zeromq made', (t) => {
  t.is(publicKeyOf(ZMQ_PAIR.secretKey), ZMQ_PAIR.publicKey);
  t.throws(() => publicKeyOf('short'), { instanceOf: SyncError, message: /Z85 CURVE secret key/ });
});

test('generated pairs are 40-character Z85 keys whose public key derives from the secret', (t) => {
  const a = generateKeyPair();
  const b = generateKeyPair();
  t.true(isCurveKey(a.publicKey) && isCurveKey(a.secretKey));
  t.not(a.secretKey, b.secretKey);
  t.is(publicKeyOf(a.secretKey), a.publicKey);
});

test('parseKeyText: comments and blank lines around one key', (t) => {
  t.is(parseKeyText(`# comment\n\n  ${ZMQ_PAIR.publicKey}  \n`), ZMQ_PAIR.publicKey);
  t.deepEqual(parseKeyText(''), { problem: 'expected exactly one key line, found 0' });
  t.regex((parseKeyText('abc') as { problem: string }).problem, /not a 40-character Z85/);
  t.regex((parseKeyText(`${ZMQ_PAIR.publicKey}\n${ZMQ_PAIR.publicKey}`) as { problem: string }).problem, /found 2/);
});

test('keygen writes NAME.key 0600 and NAME.pub 0644 that load back as the same pair', (t) => {
  const dir = join(tmp(), 'sub');
  const files = writeKeyPairFiles(dir, 'dirA');
  t.is(statSync(files.secretPath).mode & 0o777, 0o600);
  t.is(statSync(files.publicPath).mode & 0o777, 0o644);
  t.is(statSync(dir).mode & 0o777, 0o700);
  const pair = loadSecretKeyFile(files.secretPath);
  t.is(pair.publicKey, files.publicKey);
  t.is(loadPublicKeyFile(files.publicPath), files.publicKey);
  t.regex(readFileSync(files.secretPath, 'utf8'), /^# tandem sync CURVE secret key of dirA/);
});

test('keygen keeps existing files unless forced, and forcing restores the secret file mode', (t) => {
  const dir = tmp();
  const first = writeKeyPairFiles(dir, 'n1');
  t.throws(() => writeKeyPairFiles(dir, 'n1'), { instanceOf: SyncError, message: /already exists/ });
  chmodSync(first.secretPath, 0o644);
  const second = writeKeyPairFiles(dir, 'n1', { force: true });
  t.not(second.publicKey, first.publicKey);
  t.is(statSync(second.secretPath).mode & 0o777, 0o600);
  t.throws(() => writeKeyPairFiles(dir, '../evil'), { instanceOf: SyncError, message: /key name/ });
});

test('a secret key readable by group or others is refused before it is read, with the chmod to run', (t) => {
  const dir = tmp();
  const { secretPath } = writeKeyPairFiles(dir, 'n');
  for (const mode of [0o640, 0o604, 0o660, 0o644]) {
    chmodSync(secretPath, mode);
    const e = t.throws(() => loadSecretKeyFile(secretPath), { instanceOf: SyncError });
    t.is(e?.kind, 'key_permissions');
    t.regex(e?.message ?? '', new RegExp(`mode 0${mode.toString(8)}.*chmod 600 ${secretPath.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
    t.is(e?.code, 'ERR_SYNC');
  }
  chmodSync(secretPath, 0o400);
  t.notThrows(() => loadSecretKeyFile(secretPath));
});

test('missing files, symlinks and garbage are refused with the reason', (t) => {
  const dir = tmp();
  t.is(t.throws(() => loadSecretKeyFile(join(dir, 'none.key')), { instanceOf: SyncError })?.kind, 'key_file');
  const { secretPath } = writeKeyPairFiles(dir, 'n');
  const link = join(dir, 'link.key');
  symlinkSync(secretPath, link);
  t.is(t.throws(() => loadSecretKeyFile(link), { instanceOf: SyncError })?.kind, 'key_file');
  const junk = join(dir, 'junk.key');
  writeFileSync(junk, 'not a key\n', { mode: 0o600 });
  t.is(t.throws(() => loadSecretKeyFile(junk), { instanceOf: SyncError })?.kind, 'key_invalid');
  const junkPub = join(dir, 'junk.pub');
  writeFileSync(junkPub, '');
  t.regex(t.throws(() => loadPublicKeyFile(junkPub), { instanceOf: SyncError })?.message ?? '', /found 0/);
  t.is(t.throws(() => loadPublicKeyFile(dir), { instanceOf: SyncError })?.kind, 'key_file');
});

test('loadSyncKeys: the node pair and the peer keys; the node own public key as a peer is refused', (t) => {
  const dir = tmp();
  const a = writeKeyPairFiles(dir, 'dirA');
  const b = writeKeyPairFiles(dir, 'dirB');
  const loaded = loadSyncKeys(a.secretPath, [b.publicPath]);
  t.is(loaded.keys.publicKey, a.publicKey);
  t.deepEqual(loaded.peers, [b.publicKey]);
  t.regex(t.throws(() => loadSyncKeys(a.secretPath, [a.publicPath]), { instanceOf: SyncError })?.message ?? '', /own public key/);
});
