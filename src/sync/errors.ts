/**
 * The error class of connection sync: key files that cannot be used, a peer that stalls or vanishes mid-resync,
 * a channel that cannot bind or connect. Decoders never throw (they return results); encoders throw CodecError.
 */

import { ERROR_CODES, TandemError } from '../lib/errors.ts';

/** Why a sync operation failed; stable strings for logs, metrics and tests. */
export const SYNC_ERROR_KINDS = [
  'key_file',
  'key_permissions',
  'key_invalid',
  'peer_stalled',
  'peer_gone',
  'ack_timeout',
  'closed',
  'bind',
  'connect',
] as const;
/** One of SYNC_ERROR_KINDS. */
export type SyncErrorKind = (typeof SYNC_ERROR_KINDS)[number];

/** A connection-sync failure: `kind` says which, the message says what, where and how to fix it. */
export class SyncError extends TandemError {
  readonly kind: SyncErrorKind;
  constructor(kind: SyncErrorKind, message: string, options?: { cause?: unknown }) {
    super(ERROR_CODES.sync, message, options);
    this.kind = kind;
  }
}
