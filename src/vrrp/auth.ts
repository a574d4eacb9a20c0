/**
 * Advert authentication, after keepalived 2.4's auth_hmac but with monotonic sequence numbers: shared keys
 * from a key file, HMAC-SHA256 signing, constant-time verification, and per-boot sequence numbers.
 *
 * RFC 5798 (VRRPv3) dropped authentication (section 9 explains why); tandem carries it in a trailer after
 * the VRRP part and marks it with flag 0x01 in byte 9. Trailer layout (big-endian), at offset vrrpLength:
 *
 * ```
 * 0   1   trailer type 0xA1
 * 1   1   key id
 * 2   2   trailer length = 48
 * 4   4   sender id (u32; senderIdOf(node name))
 * 8   8   sequence (u64) = epoch (u32, high half) << 32 | counter (u32, low half)
 * 16  32  HMAC-SHA256(key, datagram bytes [0, total - 32))
 * ```
 *
 * The MAC covers the whole VRRP part, the flag, the checksum, the key id, the sender id and the sequence.
 * The VRRP checksum covers the flags byte, so `AdvertSigner.sign` sets the flag and then recomputes the
 * checksum before appending the trailer; decodeAdvert verifies the checksum with the flag set.
 *
 * The verifier reads the flag and the trailer at fixed offsets only (the trailer is the last 48 bytes), so
 * no field of an unauthenticated frame is parsed before its MAC has been checked.
 */

import { createHash, createHmac, createSecretKey, timingSafeEqual } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { CodecError, ERROR_CODES, TandemError, messageOf } from '../lib/errors.ts';
import { WIRE, asBuffer, decodeAdvert, internetChecksum } from './codec.ts';

/** A shared key: the id carried in the trailer and the secret bytes. */
export interface AuthKey {
  id: number;
  secret: Buffer;
}

/** Shortest secret accepted, in bytes. */
export const MIN_SECRET_BYTES = 16;
/** Shortest hex secret accepted, in hex digits (32 bytes, what KEYGEN_HINT produces). */
export const MIN_HEX_SECRET_CHARS = 64;
/** How to make a good secret; error messages quote it. */
export const KEYGEN_HINT = 'generate one with: head -c 32 /dev/urandom | xxd -p -c 64';

/** A key file or signing setup that cannot be used (code ERR_AUTH). */
export class AuthError extends TandemError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ERROR_CODES.auth, message, options);
  }
}

const ID_RE = /^(0|[1-9]\d{0,2})$/;
const HEX_RE = /^[0-9a-fA-F]+$/;
const B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function parseSecret(token: string, where: string): Buffer {
  if (token.startsWith('base64:')) {
    const b64 = token.slice('base64:'.length);
    if (b64 === '' || !B64_RE.test(b64)) {
      throw new AuthError(`${where}: secret after "base64:" is not valid base64 (standard alphabet, padded); ${KEYGEN_HINT}`);
    }
    const secret = Buffer.from(b64, 'base64');
    if (secret.length < MIN_SECRET_BYTES) {
      throw new AuthError(`${where}: secret is ${secret.length} bytes, need at least ${MIN_SECRET_BYTES}; ${KEYGEN_HINT}`);
    }
    return secret;
  }
  if (!HEX_RE.test(token)) {
    throw new AuthError(`${where}: secret is neither hex nor "base64:..." (bad hex); ${KEYGEN_HINT}`);
  }
  if (token.length % 2 !== 0) {
    throw new AuthError(`${where}: hex secret has an odd number of digits (${token.length}); ${KEYGEN_HINT}`);
  }
  if (token.length < MIN_HEX_SECRET_CHARS) {
    throw new AuthError(
      `${where}: hex secret is ${token.length / 2} bytes (${token.length} hex digits), need at least ${MIN_HEX_SECRET_CHARS} hex digits; ${KEYGEN_HINT}`,
    );
  }
  return Buffer.from(token, 'hex');
}

/**
 * Parses a key file. Each non-blank, non-comment (`#`) line is `ID SECRET`, ID 0..255, SECRET hex (at least
 * 64 hex digits) or `base64:...` (at least 16 bytes). A file whose only key line is a bare SECRET means key
 * id 1. Duplicate ids and files without keys are rejected. Throws AuthError naming `file:line` and the fix.
 */
export function parseKeyFile(text: string, file: string): AuthKey[] {
  const keys: AuthKey[] = [];
  const seen = new Map<number, number>();
  let bareLine: number | undefined;
  let keyLines = 0;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const where = `${file}:${lineNo}`;
    const hash = (lines[i] ?? '').indexOf('#');
    const content = (hash === -1 ? (lines[i] ?? '') : (lines[i] ?? '').slice(0, hash)).trim();
    if (content === '') continue;
    keyLines++;
    const tokens = content.split(/\s+/);
    let id: number;
    let secretToken: string;
    if (tokens.length === 1) {
      bareLine = lineNo;
      id = 1;
      secretToken = tokens[0] ?? '';
    } else if (tokens.length === 2) {
      const idText = tokens[0] ?? '';
      if (!ID_RE.test(idText) || Number(idText) > 255) {
        throw new AuthError(`${where}: key id ${JSON.stringify(idText)} is not an integer 0..255; write lines as "ID SECRET", e.g. "1 <64 hex digits>"`);
      }
      id = Number(idText);
      secretToken = tokens[1] ?? '';
    } else {
      throw new AuthError(`${where}: expected "ID SECRET" (2 fields), found ${tokens.length}; put comments after "#"`);
    }
    if (bareLine !== undefined && keyLines > 1) {
      throw new AuthError(
        `${file}:${bareLine}: a line with only a secret (key id 1) is allowed only when it is the file's single key; write "ID SECRET" on every line`,
      );
    }
    const secret = parseSecret(secretToken, where);
    const prev = seen.get(id);
    if (prev !== undefined) {
      throw new AuthError(`${where}: duplicate key id ${id} (first defined at ${file}:${prev}); give each key its own id`);
    }
    seen.set(id, lineNo);
    keys.push({ id, secret });
  }
  if (keys.length === 0) throw new AuthError(`${file}: no keys found; add a line "1 SECRET", ${KEYGEN_HINT}`);
  return keys;
}

/** Reads and parses a key file (see parseKeyFile); I/O failures throw AuthError with the cause. */
export function loadKeyFile(path: string): AuthKey[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new AuthError(`${path}: cannot read key file: ${messageOf(e)}; check vrrp.auth.key_file and that the file is readable by tandem`, {
      cause: e,
    });
  }
  return parseKeyFile(text, path);
}

/** A node's sender id: the first 4 bytes of SHA-256(nodeName) as a big-endian u32. */
export function senderIdOf(nodeName: string): number {
  return createHash('sha256').update(nodeName, 'utf8').digest().readUInt32BE(0);
}

const U32_MAX = 0xffff_ffff;

/** Splits a sequence number into its epoch (high 32 bits) and counter (low 32 bits). */
export function splitSequence(seq: bigint): { epoch: number; counter: number } {
  return { epoch: Number((seq >> 32n) & 0xffff_ffffn), counter: Number(seq & 0xffff_ffffn) };
}

/** Formats a sequence for messages: `epoch:counter`. */
export function formatSequence(seq: bigint): string {
  const { epoch, counter } = splitSequence(seq);
  return `${epoch}:${counter}`;
}

/**
 * Strictly increasing 64-bit sequence numbers: `epoch << 32 | counter`. The epoch is the persisted boot epoch
 * (epoch.ts), so a restarted node continues above everything it sent before without reading any clock. When
 * the 32-bit counter would wrap, `renewEpoch()` is called for a new, higher epoch (a returned value that is
 * not higher is raised to current + 1). Throws AuthError only when the 64-bit space is exhausted.
 */
export class SequenceSource {
  private currentEpoch: number;
  private counter: number;

  /**
   * `epoch`: the boot epoch (u32, from loadAndBumpEpoch). `renewEpoch`: returns a new, higher epoch (persisting
   * it) when the counter would wrap. `startCounter`: the first counter value, 0 normally (tests use it to reach
   * the wrap quickly). Throws AuthError when `epoch` or `startCounter` is not a u32.
   */
  constructor(epoch: number, private readonly renewEpoch: () => number, startCounter = 0) {
    if (!Number.isInteger(epoch) || epoch < 0 || epoch > U32_MAX) throw new AuthError(`boot epoch ${epoch} is not a u32`);
    if (!Number.isInteger(startCounter) || startCounter < 0 || startCounter > U32_MAX) throw new AuthError(`start counter ${startCounter} is not a u32`);
    this.currentEpoch = epoch;
    this.counter = startCounter;
  }

  /** The epoch now in use. */
  get epoch(): number {
    return this.currentEpoch;
  }

  /** The next sequence number; every call returns a larger value than the previous one. */
  next(): bigint {
    if (this.counter > U32_MAX) {
      if (this.currentEpoch >= U32_MAX) throw new AuthError('authentication sequence space exhausted (epoch 4294967295); remove the auth-epoch file and rotate keys');
      const renewed = this.renewEpoch();
      const candidate = Number.isInteger(renewed) && renewed <= U32_MAX ? renewed : this.currentEpoch + 1;
      this.currentEpoch = Math.max(candidate, this.currentEpoch + 1);
      this.counter = 0;
    }
    const seq = (BigInt(this.currentEpoch) << 32n) | BigInt(this.counter);
    this.counter++;
    return seq;
  }
}

/** Signs frames: sets flag 0x01, recomputes the checksum, appends the 48-byte trailer with the MAC. */
export class AdvertSigner {
  /** The key id the signer uses. */
  readonly keyId: number;
  private readonly key: KeyObject;

  /**
   * `sendKeyId` undefined = the first key. Throws AuthError when there is no key or `sendKeyId` is not among
   * them, and when `senderId` is not a u32.
   */
  constructor(keys: readonly AuthKey[], sendKeyId: number | undefined, private readonly senderId: number, private readonly sequence: SequenceSource) {
    const k = sendKeyId === undefined ? keys[0] : keys.find((x) => x.id === sendKeyId);
    if (k === undefined) {
      throw new AuthError(
        sendKeyId === undefined
          ? 'no authentication key to sign with; add one to the key file'
          : `send key id ${sendKeyId} is not in the key file (ids: ${keys.map((x) => x.id).join(', ') || 'none'}); set vrrp.auth.send_key_id to one of them`,
      );
    }
    if (!Number.isInteger(senderId) || senderId < 0 || senderId > U32_MAX) throw new AuthError(`sender id ${senderId} is not a u32`);
    this.keyId = k.id;
    this.key = createSecretKey(k.secret);
  }

  /**
   * Returns a new buffer: `frame` (an unsigned frame from encodeAdvert) with flag 0x01 set, its checksum
   * recomputed over [0, frame.length), and the trailer appended. Each call consumes one sequence number.
   * Throws CodecError when `frame` is not a valid unsigned frame.
   */
  sign(frame: Buffer): Buffer {
    const d = decodeAdvert(frame);
    if (!d.ok) throw new CodecError(`cannot sign an invalid frame: ${d.reason}: ${d.detail}`);
    if (d.value.signed) throw new CodecError('cannot sign a frame that already carries an auth trailer');
    const vlen = frame.length;
    const total = vlen + WIRE.trailerLength;
    const out = Buffer.alloc(total);
    frame.copy(out, 0);
    out[WIRE.offsetFlags] = (out[WIRE.offsetFlags] ?? 0) | WIRE.flagAuth;
    out.writeUInt16BE(internetChecksum(out, 0, vlen, WIRE.offsetChecksum), WIRE.offsetChecksum);
    out[vlen] = WIRE.trailerType;
    out[vlen + 1] = this.keyId;
    out.writeUInt16BE(WIRE.trailerLength, vlen + 2);
    out.writeUInt32BE(this.senderId, vlen + 4);
    out.writeBigUInt64BE(this.sequence.next(), vlen + 8);
    createHmac('sha256', this.key)
      .update(out.subarray(0, total - WIRE.macLength))
      .digest()
      .copy(out, total - WIRE.macLength);
    return out;
  }
}

/** The authenticated (or, before verification, claimed) fields of a trailer. */
export interface AuthTrailer {
  keyId: number;
  senderId: number;
  sequence: bigint;
}

/** Smallest signed datagram: the 12-byte header plus the trailer. */
const MIN_SIGNED_LENGTH = WIRE.headerLength + WIRE.trailerLength;

/** True when the datagram's flags byte (offset 9) has the auth flag; shorter datagrams are unsigned. */
export function isSigned(datagram: Uint8Array): boolean {
  return datagram instanceof Uint8Array && datagram.length > WIRE.offsetFlags && ((datagram[WIRE.offsetFlags] ?? 0) & WIRE.flagAuth) !== 0;
}

/**
 * Reads the trailer at its fixed position (the last 48 bytes) WITHOUT verifying it; undefined when the
 * datagram is unsigned, too short, or the trailer's type/length bytes are wrong. The values are claims until
 * AdvertVerifier.verify has succeeded.
 */
export function readTrailer(bytes: Buffer): AuthTrailer | undefined {
  const datagram = asBuffer(bytes);
  if (datagram === undefined || !isSigned(datagram) || datagram.length < MIN_SIGNED_LENGTH) return undefined;
  const t = datagram.length - WIRE.trailerLength;
  if (datagram[t] !== WIRE.trailerType || datagram.readUInt16BE(t + 2) !== WIRE.trailerLength) return undefined;
  return { keyId: datagram[t + 1] ?? 0, senderId: datagram.readUInt32BE(t + 4), sequence: datagram.readBigUInt64BE(t + 8) };
}

/** Why verification failed. */
export const VERIFY_FAILURES = ['unsigned', 'unknown_key', 'bad_mac'] as const;
/** One of VERIFY_FAILURES. */
export type VerifyFailure = (typeof VERIFY_FAILURES)[number];

/** Outcome of AdvertVerifier.verify. */
export type VerifyResult = { ok: true; trailer: AuthTrailer } | { ok: false; reason: VerifyFailure; detail: string };

/** Verifies trailers against a key set, in constant time, without parsing the VRRP part. */
export class AdvertVerifier {
  private readonly keys = new Map<number, KeyObject>();
  private macs = 0;

  /** Throws AuthError on duplicate key ids (parseKeyFile already rejects them). */
  constructor(keys: readonly AuthKey[]) {
    for (const k of keys) {
      if (this.keys.has(k.id)) throw new AuthError(`duplicate key id ${k.id}`);
      this.keys.set(k.id, createSecretKey(k.secret));
    }
  }

  /** How many HMACs this verifier has computed (for tests and metrics: proves cheap checks run first). */
  get macComputations(): number {
    return this.macs;
  }

  /**
   * Checks a datagram's trailer: 'unsigned' when flag 0x01 is clear (or the datagram has no flags byte);
   * 'bad_mac' when the trailer is truncated or its type/length bytes are wrong; 'unknown_key' when the key id is
   * not configured (no HMAC computed); 'bad_mac' when the MAC differs. Never throws.
   */
  verify(bytes: Buffer): VerifyResult {
    const datagram = asBuffer(bytes);
    if (datagram === undefined || !isSigned(datagram)) return { ok: false, reason: 'unsigned', detail: 'no auth trailer (flag 0x01 clear)' };
    if (datagram.length < MIN_SIGNED_LENGTH) {
      return { ok: false, reason: 'bad_mac', detail: `auth flag set but the ${datagram.length}-byte datagram cannot hold header + 48-byte trailer (truncated)` };
    }
    const t = datagram.length - WIRE.trailerLength;
    const type = datagram[t] ?? 0;
    const tlen = datagram.readUInt16BE(t + 2);
    if (type !== WIRE.trailerType || tlen !== WIRE.trailerLength) {
      return { ok: false, reason: 'bad_mac', detail: `auth trailer type 0x${type.toString(16)} length ${tlen}, want type 0xa1 length 48 (truncated or corrupt)` };
    }
    const keyId = datagram[t + 1] ?? 0;
    const key = this.keys.get(keyId);
    if (key === undefined) {
      return { ok: false, reason: 'unknown_key', detail: `key id ${keyId} is not in the key file (known: ${[...this.keys.keys()].join(', ')})` };
    }
    const macAt = datagram.length - WIRE.macLength;
    this.macs++;
    const expected = createHmac('sha256', key).update(datagram.subarray(0, macAt)).digest();
    if (!timingSafeEqual(expected, datagram.subarray(macAt))) {
      return { ok: false, reason: 'bad_mac', detail: `HMAC-SHA256 mismatch with key id ${keyId}` };
    }
    return { ok: true, trailer: { keyId, senderId: datagram.readUInt32BE(t + 4), sequence: datagram.readBigUInt64BE(t + 8) } };
  }
}
