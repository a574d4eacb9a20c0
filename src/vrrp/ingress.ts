/**
 * The receive pipeline of the election: every datagram read from the advert socket goes through
 * `AdvertIngress.accept` before the state machine sees it. Pure code: time is injected, no sockets.
 *
 * Checks run in this order, cheapest and least trusting first:
 *
 * 1. per-source token-bucket rate limit (keyed by the datagram's source address)      -> 'rate_limit'
 * 2. MAC, reading only the flags byte and the trailer at fixed offsets (auth.ts)       -> 'unknown_key',
 *    'bad_mac', 'unsigned'
 * 3. anti-replay per authenticated sender id: the sequence must exceed the highest one accepted from that
 *    sender (whatever source address carried it)                                      -> 'replay'
 * 4. parse (codec.ts; RFC 5798 section 7.1 checks)     -> 'bad_length', 'bad_version', 'bad_checksum', 'malformed'
 *    (the replay high-water mark is raised only once the frame has parsed)
 * 5. own frames (our sender id, or a sender address that is ours; multicast loopback) -> 'own'
 * 6. vrid we run no instance for (RFC 5798 section 7.1)                               -> 'wrong_vrid'
 * 7. priority above vrrp.max_peer_priority (255, RFC 5798 section 5.2.4, is refused
 *    unless the limit is 255)                                                          -> 'priority_not_allowed'
 *
 * Authentication modes (the rollout path is receive-only -> permissive -> enforce):
 * - no auth configured: no MAC or replay checks; signed frames are parsed and accepted unverified.
 * - 'receive-only': verify, but never drop for authentication; the result carries `wouldDrop` (what
 *   'enforce' would have done, including 'unsigned').
 * - 'permissive': drop bad MAC, unknown key and replay; accept unsigned frames (`unsigned: true`).
 * - 'enforce': also drop unsigned frames.
 * Non-authentication checks (1, 4-7) drop in every mode.
 *
 * The anti-replay window lives in memory: after a restart of this node the first frame of each sender is
 * accepted whatever its sequence. `accept` never throws.
 */

import type { AuthMode } from '../config/types.ts';
import { canonicalAddress } from '../lib/address.ts';
import { ERROR_CODES, TandemError, messageOf } from '../lib/errors.ts';
import { AdvertVerifier, formatSequence, readTrailer } from './auth.ts';
import type { AuthKey } from './auth.ts';
import { asBuffer, decodeAdvert } from './codec.ts';
import type { Advert } from './types.ts';

/** Every reason the ingress filter drops a datagram (or, in receive-only mode, would drop it). */
export const DROP_REASONS = [
  'rate_limit',
  'unknown_key',
  'bad_mac',
  'unsigned',
  'replay',
  'bad_length',
  'bad_version',
  'bad_checksum',
  'malformed',
  'own',
  'wrong_vrid',
  'priority_not_allowed',
] as const;
/** One of DROP_REASONS. */
export type DropReason = (typeof DROP_REASONS)[number];

/** Outcome of AdvertIngress.accept. */
export type IngressResult =
  | {
      ok: true;
      advert: Advert;
      /** The authenticated sender id; defined exactly when `authenticated` is true. */
      senderId: number | undefined;
      /** True when the MAC was verified and the sequence was fresh. */
      authenticated: boolean;
      /** receive-only mode: the authentication check that 'enforce' would have failed. */
      wouldDrop?: DropReason;
      /** Set when the datagram carried no auth trailer. */
      unsigned?: true;
    }
  | { ok: false; reason: DropReason; detail: string };

/** Options of AdvertIngress. */
export interface AdvertIngressOptions {
  /** undefined = authentication not configured. */
  auth: { mode: AuthMode; keys: AuthKey[] } | undefined;
  /** senderIdOf(this node's name). */
  ownSenderId: number;
  /** This node's addresses (any text form); adverts whose sender is one of them are dropped as 'own'. */
  ownAddresses: string[];
  /** The vrids this node runs instances for. */
  knownVrids: ReadonlySet<number>;
  /** Highest priority accepted from a peer, 0..255. */
  maxPeerPriority: number;
  /** Token bucket per source address: refill rate and capacity. */
  rateLimit: { perSecond: number; burst: number };
  /** Bound on the rate-limit and replay tables (least recently seen entries are evicted); default 1024. */
  maxTrackedSources?: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** A Map bounded to `max` entries that evicts the least recently touched entry. */
class BoundedMap<K, V> {
  private readonly m = new Map<K, V>();
  constructor(private readonly max: number) {}
  get size(): number {
    return this.m.size;
  }
  /** Gets and marks as most recently used. */
  touch(k: K): V | undefined {
    const v = this.m.get(k);
    if (v !== undefined) {
      this.m.delete(k);
      this.m.set(k, v);
    }
    return v;
  }
  set(k: K, v: V): void {
    this.m.delete(k);
    while (this.m.size >= this.max) {
      const oldest = this.m.keys().next();
      if (oldest.done === true) break;
      this.m.delete(oldest.value);
    }
    this.m.set(k, v);
  }
}

function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

/** The receive pipeline: rate limit, MAC, anti-replay, parse, own/vrid/priority filters. */
export class AdvertIngress {
  private readonly mode: AuthMode | undefined;
  private readonly verifier: AdvertVerifier | undefined;
  private readonly ownAddresses: Set<string>;
  private readonly buckets: BoundedMap<string, Bucket>;
  private readonly highWater: BoundedMap<number, bigint>;
  private readonly perMs: number;
  private readonly burst: number;

  /** Throws TandemError (ERR_CONFIG) on unusable options: non-positive rate or burst, bad table bound. */
  constructor(private readonly opts: AdvertIngressOptions) {
    const { perSecond, burst } = opts.rateLimit;
    const max = opts.maxTrackedSources ?? 1024;
    if (!(perSecond > 0) || !Number.isFinite(perSecond)) throw new TandemError(ERROR_CODES.config, `ingress rate limit perSecond must be > 0, got ${perSecond}`);
    if (!(burst >= 1) || !Number.isFinite(burst)) throw new TandemError(ERROR_CODES.config, `ingress rate limit burst must be >= 1, got ${burst}`);
    if (!Number.isInteger(max) || max < 1) throw new TandemError(ERROR_CODES.config, `ingress maxTrackedSources must be an integer >= 1, got ${max}`);
    this.perMs = perSecond / 1000;
    this.burst = burst;
    this.buckets = new BoundedMap(max);
    this.highWater = new BoundedMap(max);
    this.mode = opts.auth?.mode;
    this.verifier = opts.auth === undefined ? undefined : new AdvertVerifier(opts.auth.keys);
    this.ownAddresses = new Set(opts.ownAddresses.map((a) => canonicalAddress(a) ?? a));
  }

  /** HMACs computed so far (0 without auth); tests use it to prove the rate limit runs first. */
  get macComputations(): number {
    return this.verifier?.macComputations ?? 0;
  }

  /** Entries in the per-source rate-limit table (bounded by maxTrackedSources). */
  get trackedSources(): number {
    return this.buckets.size;
  }

  /**
   * Runs one datagram through the pipeline. `source` is the sender's address as the socket reported it (the
   * rate-limit key), `now` monotonic milliseconds. Never throws.
   */
  accept(datagram: Buffer, source: string, now: number): IngressResult {
    try {
      return this.run(datagram, source, now);
    } catch (e) {
      return { ok: false, reason: 'malformed', detail: `from ${source}: internal error while checking the datagram: ${messageOf(e)}` };
    }
  }

  private takeToken(source: string, now: number): boolean {
    const t = Number.isFinite(now) ? now : 0;
    const b = this.buckets.touch(source);
    if (b === undefined) {
      this.buckets.set(source, { tokens: this.burst - 1, at: t });
      return true;
    }
    const elapsed = Math.max(0, t - b.at);
    b.tokens = Math.min(this.burst, b.tokens + elapsed * this.perMs);
    b.at = Math.max(b.at, t);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  private run(datagram: Buffer, source: string, now: number): IngressResult {
    const bytes = asBuffer(datagram);
    const len = bytes?.length ?? 0;
    // (1) Rate limit, before any other work.
    if (!this.takeToken(source, now)) {
      return { ok: false, reason: 'rate_limit', detail: `from ${source}: more than ${this.opts.rateLimit.perSecond}/s (burst ${this.burst}), ${len}-byte datagram dropped` };
    }
    if (bytes === undefined) return { ok: false, reason: 'malformed', detail: `from ${source}: datagram is not a byte buffer` };

    // (2) MAC, from fixed offsets only; (3) anti-replay on the authenticated sender id.
    let wouldDrop: DropReason | undefined;
    let authenticated = false;
    let senderId: number | undefined;
    let freshSequence: bigint | undefined;
    if (this.verifier !== undefined) {
      const v = this.verifier.verify(bytes);
      if (!v.ok) {
        const detail = `from ${source}: ${v.detail}`;
        const dropsHere = this.mode === 'enforce' || (this.mode === 'permissive' && v.reason !== 'unsigned');
        if (dropsHere) return { ok: false, reason: v.reason, detail };
        if (this.mode === 'receive-only') wouldDrop = v.reason;
      } else {
        const { senderId: sid, sequence } = v.trailer;
        const high = this.highWater.touch(sid);
        if (high !== undefined && sequence <= high) {
          const detail = `from ${source}: sender id ${hex32(sid)} sequence ${formatSequence(sequence)} is not above the highest accepted ${formatSequence(high)}`;
          if (this.mode !== 'receive-only') return { ok: false, reason: 'replay', detail };
          wouldDrop = 'replay';
        } else {
          authenticated = true;
          senderId = sid;
          freshSequence = sequence;
        }
      }
    }

    // (4) Parse.
    const d = decodeAdvert(bytes);
    if (!d.ok) return { ok: false, reason: d.reason, detail: `from ${source}: ${d.detail}` };
    if (senderId !== undefined && freshSequence !== undefined) this.highWater.set(senderId, freshSequence);
    const advert = d.value.advert;

    // (5) Own frames: the (claimed, if unverified) sender id, or one of our addresses as sender.
    const claimedId = senderId ?? readTrailer(bytes)?.senderId;
    if (claimedId === this.opts.ownSenderId || this.ownAddresses.has(advert.sender)) {
      return { ok: false, reason: 'own', detail: `from ${source}: vrid ${advert.vrid} advert is our own (sender ${advert.sender}${claimedId === undefined ? '' : `, sender id ${hex32(claimedId)}`})` };
    }
    // (6) Known vrid.
    if (!this.opts.knownVrids.has(advert.vrid)) {
      return { ok: false, reason: 'wrong_vrid', detail: `from ${source}: vrid ${advert.vrid} (sender ${advert.sender}) is not one of ours (${[...this.opts.knownVrids].join(', ')})` };
    }
    // (7) Priority ceiling.
    if (advert.priority > this.opts.maxPeerPriority) {
      return {
        ok: false,
        reason: 'priority_not_allowed',
        detail: `from ${source}: vrid ${advert.vrid} sender ${advert.sender} priority ${advert.priority} exceeds max_peer_priority ${this.opts.maxPeerPriority}`,
      };
    }

    const result: IngressResult = { ok: true, advert, senderId, authenticated };
    if (wouldDrop !== undefined) result.wouldDrop = wouldDrop;
    if (!d.value.signed) result.unsigned = true;
    return result;
  }
}
