/**
 * JSON-lines logging to stdout (journald keeps one record per line). Each record has the wall-clock `ts`
 * (display only), `level`, `msg` and structured fields. A Logger is passed in, never imported as a global,
 * so tests can capture records.
 */

export const LOG_LEVELS = { debug: 10, info: 20, warn: 30, error: 40 } as const;
export type LogLevel = keyof typeof LOG_LEVELS;
export type LogFields = Record<string, unknown>;

export interface Logger {
  log(level: LogLevel, msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

/** Writes JSON lines to a stream. */
export class JsonLogger implements Logger {
  constructor(
    private readonly write: (line: string) => void = (l) => process.stdout.write(l),
    private readonly minLevel: LogLevel = 'info',
    private readonly base: LogFields = {},
  ) {}

  log(level: LogLevel, msg: string, fields: LogFields = {}): void {
    if (LOG_LEVELS[level] < LOG_LEVELS[this.minLevel]) return;
    const rec = { ts: new Date().toISOString(), level, msg, ...this.base, ...fields };
    this.write(JSON.stringify(rec, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) + '\n');
  }

  child(fields: LogFields): Logger {
    return new JsonLogger(this.write, this.minLevel, { ...this.base, ...fields });
  }
}

/** Keeps records in memory (tests). */
export class MemoryLogger implements Logger {
  readonly records: Array<{ level: LogLevel; msg: string } & LogFields> = [];
  constructor(private readonly base: LogFields = {}, private readonly sink?: MemoryLogger) {}
  log(level: LogLevel, msg: string, fields: LogFields = {}): void {
    (this.sink ?? this).records.push({ level, msg, ...this.base, ...fields });
  }
  child(fields: LogFields): Logger {
    return new MemoryLogger({ ...this.base, ...fields }, this.sink ?? this);
  }
}

/** Logs at most once per `windowMs` per key; counts what it suppressed (bad-input floods must not flood logs). */
export class RateLimitedLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();
  constructor(private readonly logger: Logger, private readonly now: () => number, private readonly windowMs = 10_000) {}

  log(key: string, level: LogLevel, msg: string, fields: LogFields = {}): void {
    const t = this.now();
    const prev = this.last.get(key);
    if (prev !== undefined && t - prev.at < this.windowMs) {
      prev.suppressed++;
      return;
    }
    if (this.last.size > 4096) this.last.clear();
    this.last.set(key, { at: t, suppressed: 0 });
    this.logger.log(level, msg, prev !== undefined && prev.suppressed > 0 ? { ...fields, suppressed: prev.suppressed } : fields);
  }
}
