/**
 * The set of IPVS services tandem owns, kept across restarts in `<state_dir>/ipvs-owned.json`. With
 * `ipvs.manage: owned` (the default) the reconciler deletes a kernel service that is not in the configuration
 * only when it is in this set, so services made by other tools (or by hand) are never touched.
 *
 * A service becomes owned when tandem creates it, or when the configuration names a service that already
 * exists (tandem then manages it like its own); it stops being owned when tandem deletes it. A lost or corrupt
 * file errs on the safe side: an empty set, so nothing unconfigured is deleted until tandem creates it again.
 *
 * Writes are atomic (temporary file with mode 0600, fsync, rename, directory fsync), as for the auth epoch.
 */

import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { messageOf } from '../lib/errors.ts';
import { serviceKeyString, type ServiceKey } from './model.ts';

/** Name of the owned-services file inside the state directory. */
export const OWNED_FILE = 'ipvs-owned.json';

/** Version of the file format (bump on incompatible changes; other versions are treated as unreadable). */
const FORMAT_VERSION = 1;

/** The owned set: membership by service identity, and persistence. */
export interface OwnedStore {
  has(key: ServiceKey): boolean;
  add(key: ServiceKey): void;
  delete(key: ServiceKey): void;
  /** The owned identities as `serviceKeyString` text, sorted. */
  keys(): string[];
  /**
   * Writes the set when it changed since the last successful write. Never throws: returns a warning when the
   * write failed (the set stays in memory and the next save tries again).
   */
  save(): Promise<string | undefined>;
}

/** An owned set in memory only (tests, dry runs). */
export class MemoryOwnedStore implements OwnedStore {
  protected readonly set: Set<string>;
  constructor(initial: Iterable<string> = []) {
    this.set = new Set(initial);
  }
  has(key: ServiceKey): boolean {
    return this.set.has(serviceKeyString(key));
  }
  add(key: ServiceKey): void {
    this.set.add(serviceKeyString(key));
  }
  delete(key: ServiceKey): void {
    this.set.delete(serviceKeyString(key));
  }
  keys(): string[] {
    return [...this.set].sort();
  }
  async save(): Promise<string | undefined> {
    return undefined;
  }
}

/** Parses the file's text; undefined when it is not a version-1 owned set. */
export function parseOwnedFile(text: string): string[] | undefined {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof data !== 'object' || data === null || !('version' in data) || !('services' in data)) return undefined;
  if (data.version !== FORMAT_VERSION || !Array.isArray(data.services)) return undefined;
  const out: string[] = [];
  for (const s of data.services as unknown[]) {
    if (typeof s !== 'string') return undefined;
    out.push(s);
  }
  return out;
}

/** The file's text for a set of identities (sorted, one per line for readable diffs). */
export function formatOwnedFile(keys: readonly string[]): string {
  return `${JSON.stringify({ version: FORMAT_VERSION, services: [...keys].sort() }, null, 1)}\n`;
}

function errnoCode(e: unknown): string | undefined {
  if (typeof e === 'object' && e !== null && 'code' in e) {
    const c = (e as { code: unknown }).code;
    return typeof c === 'string' ? c : undefined;
  }
  return undefined;
}

/** Writes `text` to `path` atomically; creates the directory (mode 0700) if needed. */
async function writeAtomic(dir: string, path: string, text: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.chmod(0o600); // a stale temp file from a crash keeps its old mode otherwise
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  try {
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    // Directory fsync is best effort (not supported everywhere); the rename itself has happened.
  }
}

/** The owned set kept in `<stateDir>/ipvs-owned.json`. Build it with `FileOwnedStore.load`. */
export class FileOwnedStore extends MemoryOwnedStore {
  /** The text last written (or read); save() writes only when the set's text differs. */
  private persisted: string;

  private constructor(
    readonly path: string,
    private readonly dir: string,
    initial: string[],
    persisted: string,
  ) {
    super(initial);
    this.persisted = persisted;
  }

  /**
   * Reads the owned set of `stateDir`. A missing file is an empty set (first start); an unreadable or corrupt
   * one is an empty set with a warning (so nothing is deleted that tandem cannot prove it created).
   */
  static async load(stateDir: string): Promise<{ store: FileOwnedStore; warning: string | undefined }> {
    const path = join(stateDir, OWNED_FILE);
    let text: string | undefined;
    let warning: string | undefined;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') warning = `cannot read ${path}: ${messageOf(e)}; starting with no owned IPVS services (none will be deleted until tandem creates them again)`;
    }
    let keys: string[] = [];
    if (text !== undefined) {
      const parsed = parseOwnedFile(text);
      if (parsed === undefined) warning = `${path} is not a tandem owned-services file (version ${FORMAT_VERSION}); ignoring it: no unconfigured IPVS service will be deleted until tandem creates it again`;
      else keys = parsed;
    }
    const store = new FileOwnedStore(path, stateDir, keys, text !== undefined && warning === undefined ? formatOwnedFile(keys) : '');
    return { store, warning };
  }

  override async save(): Promise<string | undefined> {
    const text = formatOwnedFile(this.keys());
    if (text === this.persisted) return undefined;
    try {
      await writeAtomic(this.dir, this.path, text);
      this.persisted = text;
      return undefined;
    } catch (e) {
      return `cannot write ${this.path}: ${messageOf(e)}; the owned IPVS services are kept in memory and written on the next run (check node.state_dir)`;
    }
  }
}
