/**
 * Boot-epoch persistence for authentication sequence numbers (auth.ts SequenceSource): the high 32 bits of
 * every sequence are an epoch that grows on every start, so a restarted node's sequences stay above everything
 * its peers have already accepted. The epoch lives in `<stateDir>/auth-epoch` as a decimal number. This is the
 * only file of the election that does I/O; it never throws for I/O problems, it reports them.
 */

import { closeSync, fchmodSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { messageOf } from '../lib/errors.ts';

/** Name of the epoch file inside the state directory. */
export const EPOCH_FILE = 'auth-epoch';

const U32_MAX = 0xffff_ffff;

/** Outcome of loadAndBumpEpoch. */
export interface EpochResult {
  /** The epoch to use for this boot (u32). */
  epoch: number;
  /** False when the new epoch could not be written (the next boot may then reuse it; see `warning`). */
  persisted: boolean;
  /** Set when something needs an operator's attention (corrupt or unwritable file, exhausted epoch). */
  warning?: string;
}

function errnoCode(e: unknown): string | undefined {
  if (typeof e === 'object' && e !== null && 'code' in e) {
    const c = (e as { code: unknown }).code;
    return typeof c === 'string' ? c : undefined;
  }
  return undefined;
}

/**
 * Reads `<stateDir>/auth-epoch`, picks epoch = max(stored + 1, wallSeconds) clamped to u32, and writes it
 * back atomically (temp file with mode 0600, fsync, rename, directory fsync), creating `stateDir` with mode
 * 0700 if missing. `wallSeconds` (the wall clock in whole seconds) is only a floor for when the file is lost;
 * sequence counters never read a clock. A missing file is normal on first boot; a corrupt or unreadable file
 * is treated as missing, with a warning. Never throws for I/O: a failed write yields `persisted: false`.
 */
export function loadAndBumpEpoch(stateDir: string, wallSeconds: number): EpochResult {
  const warnings: string[] = [];
  const path = join(stateDir, EPOCH_FILE);
  let stored: number | undefined;
  try {
    const text = readFileSync(path, 'utf8').trim();
    if (/^\d{1,10}$/.test(text) && Number(text) <= U32_MAX) {
      stored = Number(text);
    } else {
      warnings.push(`${path} is corrupt (${JSON.stringify(text.slice(0, 32))} is not a decimal u32); ignoring it and starting from the wall clock`);
    }
  } catch (e) {
    if (errnoCode(e) !== 'ENOENT') warnings.push(`cannot read ${path}: ${messageOf(e)}; starting from the wall clock`);
  }

  const floor = Number.isFinite(wallSeconds) ? Math.min(U32_MAX, Math.max(0, Math.floor(wallSeconds))) : 0;
  let epoch = floor;
  if (stored !== undefined) {
    if (stored >= U32_MAX) {
      warnings.push(`${path} holds the largest epoch (${U32_MAX}); sequences can no longer grow across restarts: rotate the keys and delete the file`);
      epoch = U32_MAX;
    } else {
      epoch = Math.max(stored + 1, floor);
    }
  }

  let persisted = false;
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const fd = openSync(tmp, 'w', 0o600);
    try {
      fchmodSync(fd, 0o600); // a stale temp file from a crash keeps its old mode otherwise
      writeSync(fd, `${epoch}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    persisted = true;
    try {
      const dfd = openSync(stateDir, 'r');
      try {
        fsyncSync(dfd);
      } finally {
        closeSync(dfd);
      }
    } catch {
      // Directory fsync is best effort (not supported everywhere); the rename itself has happened.
    }
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // Nothing to clean up.
    }
    warnings.push(
      `cannot persist the authentication epoch to ${path}: ${messageOf(e)}; a restart may reuse sequence numbers and peers would drop them as replays until this is fixed (check node.state_dir)`,
    );
  }

  const result: EpochResult = { epoch, persisted };
  if (warnings.length > 0) result.warning = warnings.join('; ');
  return result;
}
