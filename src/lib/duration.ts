/** Durations in configuration are strings such as `20ms`, `1s`, `1.5s`, `2m`, `1h`. */

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;

/** Parses a duration string into milliseconds, or returns undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION_RE.exec(text.trim());
  if (m === null) return undefined;
  const value = Number(m[1]);
  const unit = m[2] as keyof typeof UNIT_MS;
  const ms = value * UNIT_MS[unit];
  return Number.isFinite(ms) ? Math.round(ms * 1000) / 1000 : undefined;
}

/** Formats milliseconds the way configuration writes them (`1s`, `20ms`, `1.5s`). */
export function formatDuration(ms: number): string {
  if (ms !== 0 && ms % 1000 === 0) return `${ms / 1000}s`;
  if (ms >= 1000) return `${ms / 1000}s`;
  return `${ms}ms`;
}
