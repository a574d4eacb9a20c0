/**
 * One error family for tandem. Every error has a stable `code` (for logs, metrics and tests) and an optional
 * `cause`. Messages say what went wrong, where, and how to fix it.
 */

export const ERROR_CODES = {
  config: 'ERR_CONFIG',
  codec: 'ERR_CODEC',
  netlink: 'ERR_NETLINK',
  vip: 'ERR_VIP',
  transport: 'ERR_TRANSPORT',
  auth: 'ERR_AUTH',
  usage: 'ERR_USAGE',
  lab: 'ERR_LAB',
  sync: 'ERR_SYNC',
} as const;
export type ErrorCode = (typeof ERROR_CODES)[keyof typeof ERROR_CODES];

/** Base class of every error tandem throws on purpose. */
export class TandemError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** One problem found in a configuration file. */
export interface ConfigIssue {
  file: string;
  line: number;
  column: number;
  /** Path in the document, e.g. `vrrp.instances[0].priority`. */
  path: string;
  message: string;
}

/** A configuration that cannot be used; carries every issue found, each with file:line:column and path. */
export class ConfigError extends TandemError {
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[]) {
    super(ERROR_CODES.config, issues.map(formatConfigIssue).join('\n'));
    this.issues = issues;
  }
}

/** `file:line:column: path: message`, the format editors and CI logs link to. */
export function formatConfigIssue(i: ConfigIssue): string {
  return `${i.file}:${i.line}:${i.column}: ${i.path === '' ? '(document)' : i.path}: ${i.message}`;
}

/** Bytes that could not be encoded (decoders return results instead, see lib/result.ts). */
export class CodecError extends TandemError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ERROR_CODES.codec, message, options);
  }
}

/** A kernel netlink request that failed: errno, the operation and the object it was about. */
export class NetlinkError extends TandemError {
  readonly errno: number;
  readonly operation: string;
  readonly object: string;
  constructor(errno: number, operation: string, object: string, options?: { cause?: unknown }) {
    super(ERROR_CODES.netlink, `${operation} ${object}: ${errnoName(errno)} (errno ${errno})`, options);
    this.errno = errno;
    this.operation = operation;
    this.object = object;
  }
}

/** A VIP could not be added, removed or announced. */
export class VipError extends TandemError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ERROR_CODES.vip, message, options);
  }
}

/** Command-line misuse. */
export class UsageError extends TandemError {
  constructor(message: string) {
    super(ERROR_CODES.usage, message);
  }
}

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 3: 'ESRCH', 12: 'ENOMEM', 13: 'EACCES', 16: 'EBUSY', 17: 'EEXIST', 19: 'ENODEV',
  22: 'EINVAL', 34: 'ERANGE', 92: 'ENOPROTOOPT', 95: 'EOPNOTSUPP', 97: 'EAFNOSUPPORT', 99: 'EADDRNOTAVAIL',
  105: 'ENOBUFS',
};

/** The symbolic name of a positive errno, e.g. 17 -> EEXIST. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES[Math.abs(errno)] ?? `errno ${Math.abs(errno)}`;
}

/** The message of anything thrown. */
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
