/**
 * CURVE key pairs of the sync channel: generate a pair into files (`tandem sync keygen`), load and validate
 * them. Keys are Z85 text (ZeroMQ RFC 32), 40 characters for 32 bytes, exactly what zeromq's `curveKeyPair()`
 * produces; a pair is an X25519 key pair (CurveZMQ uses libsodium's crypto_box keys), so node:crypto can
 * generate one and derive the public key of a secret without loading zeromq here.
 *
 * Files: `NAME.key` holds the secret key and must not be readable by group or others (mode 0600 or 0400; a
 * looser mode is refused with the chmod to run); `NAME.pub` holds the public key that goes onto the peer's
 * allowlist. Both are one key per file; lines starting with `#` are comments.
 */

import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { closeSync, constants, fchmodSync, fstatSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { messageOf } from '../lib/errors.ts';
import { SyncError } from './errors.ts';

/** A CURVE key pair as Z85 text. */
export interface CurveKeyPair {
  publicKey: string;
  secretKey: string;
}

/** The Z85 alphabet (ZeroMQ RFC 32). */
export const Z85_ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';
const Z85_VALUE = new Int16Array(128).fill(-1);
for (let i = 0; i < Z85_ALPHABET.length; i++) Z85_VALUE[Z85_ALPHABET.charCodeAt(i)] = i;

/** Z85 length of a 32-byte CURVE key. */
export const CURVE_KEY_Z85_LENGTH = 40;

/** Z85-encodes bytes whose length is a multiple of 4. Throws RangeError otherwise. */
export function z85Encode(bytes: Uint8Array): string {
  if (bytes.length % 4 !== 0) throw new RangeError(`Z85 encodes multiples of 4 bytes, got ${bytes.length}`);
  let out = '';
  for (let i = 0; i < bytes.length; i += 4) {
    let v = ((bytes[i]! << 24) | (bytes[i + 1]! << 16) | (bytes[i + 2]! << 8) | bytes[i + 3]!) >>> 0;
    const chunk: string[] = [];
    for (let j = 0; j < 5; j++) {
      chunk.unshift(Z85_ALPHABET[v % 85]!);
      v = Math.floor(v / 85);
    }
    out += chunk.join('');
  }
  return out;
}

/** Decodes Z85 text (length a multiple of 5); undefined when it is not valid Z85. */
export function z85Decode(text: string): Buffer | undefined {
  if (text.length % 5 !== 0) return undefined;
  const out = Buffer.alloc((text.length / 5) * 4);
  for (let i = 0; i < text.length; i += 5) {
    let v = 0;
    for (let j = 0; j < 5; j++) {
      const c = text.charCodeAt(i + j);
      const d = c < 128 ? Z85_VALUE[c]! : -1;
      if (d < 0) return undefined;
      v = v * 85 + d;
    }
    if (v > 0xffff_ffff) return undefined;
    out.writeUInt32BE(v, (i / 5) * 4);
  }
  return out;
}

/** True when `text` is a Z85 CURVE key (40 characters decoding to 32 bytes). */
export function isCurveKey(text: string): boolean {
  return text.length === CURVE_KEY_Z85_LENGTH && z85Decode(text) !== undefined;
}

// PKCS#8 / SPKI DER prefixes of an X25519 key (RFC 8410): the raw 32 bytes follow.
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** A new random key pair (X25519, as libsodium's crypto_box_keypair makes them). */
export function generateKeyPair(): CurveKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('x25519');
  const pub = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  const sec = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(-32);
  return { publicKey: z85Encode(pub), secretKey: z85Encode(sec) };
}

/** The public key of a Z85 secret key. Throws SyncError ('key_invalid') when `secretKey` is not a key. */
export function publicKeyOf(secretKey: string): string {
  const raw = isCurveKey(secretKey) ? z85Decode(secretKey) : undefined;
  if (raw === undefined) throw new SyncError('key_invalid', `not a Z85 CURVE secret key (want ${CURVE_KEY_Z85_LENGTH} Z85 characters)`);
  const priv = createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' });
  return z85Encode(createPublicKey(priv).export({ format: 'der', type: 'spki' }).subarray(-32));
}

/** The one key in a key file's text (comments and blank lines skipped); a problem description otherwise. */
export function parseKeyText(text: string): string | { problem: string } {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  if (lines.length !== 1) return { problem: `expected exactly one key line, found ${lines.length}` };
  const key = lines[0]!;
  if (!isCurveKey(key)) return { problem: `the key line is not a ${CURVE_KEY_Z85_LENGTH}-character Z85 CURVE key` };
  return key;
}

const KEYGEN_HINT = 'generate a pair with `tandem sync keygen`';

/** Reads a file that must exist; `check` sees its mode before the content is read. */
function readKeyFile(path: string, what: string, check?: (mode: number) => void): string {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    throw new SyncError('key_file', `${path}: cannot open the ${what}: ${messageOf(e)}; ${KEYGEN_HINT}`, { cause: e });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new SyncError('key_file', `${path}: the ${what} is not a regular file`);
    check?.(st.mode);
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * Loads a secret key file and derives its public key. Refuses (SyncError 'key_permissions') a file that group
 * or others may read or write, before reading it; 'key_file' when it cannot be read, 'key_invalid' when it
 * does not hold exactly one Z85 key.
 */
export function loadSecretKeyFile(path: string): CurveKeyPair {
  const text = readKeyFile(path, 'secret key file', (mode) => {
    if ((mode & 0o077) !== 0) {
      const m = (mode & 0o777).toString(8).padStart(4, '0');
      throw new SyncError('key_permissions', `${path}: the secret key file has mode ${m}, which lets group or others read it; run \`chmod 600 ${path}\` (and check who could have copied it)`);
    }
  });
  const key = parseKeyText(text);
  if (typeof key !== 'string') throw new SyncError('key_invalid', `${path}: ${key.problem}; ${KEYGEN_HINT}`);
  return { secretKey: key, publicKey: publicKeyOf(key) };
}

/** Loads a public key file (a peer's key for the allowlist, or the server key a client connects to). */
export function loadPublicKeyFile(path: string): string {
  const key = parseKeyText(readKeyFile(path, 'public key file'));
  if (typeof key !== 'string') throw new SyncError('key_invalid', `${path}: ${key.problem}; copy the peer's NAME.pub made by \`tandem sync keygen\``);
  return key;
}

/** Where writeKeyPairFiles put a pair. */
export interface KeyFiles {
  secretPath: string;
  publicPath: string;
  publicKey: string;
}

function writeNew(path: string, text: string, mode: number, force: boolean): void {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | (force ? constants.O_TRUNC : constants.O_EXCL);
  let fd: number;
  try {
    fd = openSync(path, flags, mode);
  } catch (e) {
    const exists = (e as NodeJS.ErrnoException).code === 'EEXIST';
    throw new SyncError('key_file', `${path}: ${exists ? 'already exists; move it away or pass force to replace the pair' : `cannot create: ${messageOf(e)}`}`, { cause: e });
  }
  try {
    // The mode given to open applies only to a new file (and through the umask): set it on replaced files too.
    fchmodSync(fd, mode);
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

/**
 * Generates a key pair into `dir/NAME.key` (mode 0600) and `dir/NAME.pub` (0644); `dir` is created (0700) if
 * missing. Existing files are kept (SyncError 'key_file') unless `force`.
 */
export function writeKeyPairFiles(dir: string, name: string, options: { force?: boolean; pair?: CurveKeyPair } = {}): KeyFiles {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(name) || name.startsWith('.')) {
    throw new SyncError('key_file', `key name ${JSON.stringify(name)} must be 1..64 of A-Z a-z 0-9 . _ - and not start with a dot`);
  }
  const pair = options.pair ?? generateKeyPair();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const secretPath = join(dir, `${name}.key`);
  const publicPath = join(dir, `${name}.pub`);
  const force = options.force ?? false;
  writeNew(secretPath, `# tandem sync CURVE secret key of ${name} (Z85). Keep it mode 0600; never copy it off this director.\n${pair.secretKey}\n`, 0o600, force);
  writeNew(publicPath, `# tandem sync CURVE public key of ${name} (Z85). Put it on the peer's allowlist.\n${pair.publicKey}\n`, 0o644, force);
  return { secretPath, publicPath, publicKey: pair.publicKey };
}

/** What a channel end needs from its key files. */
export interface SyncKeys {
  /** This node's pair (from its secret key file). */
  keys: CurveKeyPair;
  /** The peers' public keys: the server's allowlist, or (one key) the server a client connects to. */
  peers: string[];
}

/**
 * Loads this node's secret key file (mode checked, see loadSecretKeyFile) and the peers' public key files.
 * Refuses a peer key equal to this node's own (a copied key pair would let either director impersonate the
 * other). Throws SyncError naming the file.
 */
export function loadSyncKeys(secretKeyFile: string, peerPublicKeyFiles: readonly string[]): SyncKeys {
  const keys = loadSecretKeyFile(secretKeyFile);
  const peers = peerPublicKeyFiles.map((path) => {
    const key = loadPublicKeyFile(path);
    if (key === keys.publicKey) {
      throw new SyncError('key_invalid', `${path}: this is this node's own public key (from ${secretKeyFile}); each director needs its own pair, run \`tandem sync keygen\` on the other one`);
    }
    return key;
  });
  return { keys, peers };
}
