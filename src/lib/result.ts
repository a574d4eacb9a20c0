/** Decoders and validators return results: malformed input is a value, not an exception. */
export type Result<T, R = string> = { ok: true; value: T } | { ok: false; reason: R; detail: string };

export function ok<T>(value: T): { ok: true; value: T } {
  return { ok: true, value };
}

export function fail<R>(reason: R, detail: string): { ok: false; reason: R; detail: string } {
  return { ok: false, reason, detail };
}
