/**
 * A small, strict HTTP/1.1 response parser (RFC 9112) for health checks: a byte-level state machine fed
 * whatever chunks the socket delivers, with no I/O. Health-check replies are untrusted input (keepalived
 * CVE-2018-19115 was an overflow on a crafted reply), so every quantity is bounded:
 *
 * - the status line plus header block of one response: `maxHeadBytes` (default 16 KiB), at most 100 header
 *   lines; a line without LF is never buffered beyond that;
 * - the body: `maxBodyBytes`; a Content-Length above it fails at once, a chunked or close-delimited body fails
 *   as soon as it passes it (`too_large`) - the parser never waits for a 1 GB body to end;
 * - chunk-size lines (at most 12 hex digits, i.e. < 2^48) and trailers share the same line bound;
 * - at most 8 interim (1xx) responses before the final one.
 *
 * Only the headers the checker asked for (plus Content-Length and Transfer-Encoding) are kept; body bytes are
 * handed to `onBody` and not retained. Malformed input is a result (`{ state: 'error' }`), never an exception.
 */

/** Parser bounds and what to keep. */
export interface HttpParserOptions {
  /** The request was HEAD: no body follows whatever the headers say. */
  head: boolean;
  maxBodyBytes: number;
  /** Bytes of status line + header block of one response. */
  maxHeadBytes?: number;
  /** Lowercase names of headers whose (first) value to keep. */
  keepHeaders?: readonly string[];
  /** Receives the decoded body (chunked framing removed), never more than `maxBodyBytes` in total. */
  onBody?: (bytes: Uint8Array) => void;
}

/** Default bound of one status line + header block. */
export const DEFAULT_MAX_HEAD_BYTES = 16 * 1024;
/** Header lines of one response beyond which the reply is refused. */
export const MAX_HEADER_LINES = 100;
/** Interim 1xx responses tolerated before the final one. */
export const MAX_INTERIM_RESPONSES = 8;
/** Longest chunk-size number: 12 hex digits (256 TiB) is more than any bound and stays exact in a double. */
const MAX_CHUNK_SIZE_DIGITS = 12;

/** Where parsing stands after `push` or `end`. */
export type HttpParseStatus =
  | { state: 'more' }
  | { state: 'done' }
  | { state: 'error'; reason: 'bad_reply' | 'too_large'; detail: string };

type Phase = 'status' | 'headers' | 'length' | 'chunk_size' | 'chunk_data' | 'chunk_crlf' | 'trailers' | 'close' | 'done' | 'error';

const STATUS_LINE = /^HTTP\/1\.[01] ([1-9]\d\d)(?: ([^\r\n]*))?$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const DIGITS = /^\d{1,15}$/;
const HEX = /^[0-9a-fA-F]+$/;
const MORE = { state: 'more' } as const;
const DONE = { state: 'done' } as const;

/** Parses one HTTP/1.x response from a byte stream. */
export class HttpResponseParser {
  /** Status code of the final response, once its status line has been read. */
  status: number | undefined;
  /** Reason phrase (untrusted; sanitise before logging). */
  statusText = '';
  /** Kept headers of the final response, lowercase names. */
  readonly headers = new Map<string, string>();
  /** Body bytes delivered so far. */
  bodyBytes = 0;
  /** Content-Length of the final response, when it had one. */
  contentLength: number | undefined;

  private phase: Phase = 'status';
  private partial: Buffer | undefined;
  private headBytes = 0;
  private headerLines = 0;
  private interim = 0;
  private chunked = false;
  /** A Transfer-Encoding other than chunked: the body runs until the connection closes (RFC 9112 6.3). */
  private otherCoding = false;
  private remaining = 0;
  private errorStatus: HttpParseStatus | undefined;
  private readonly maxHead: number;
  private readonly keep: ReadonlySet<string>;

  constructor(private readonly opts: HttpParserOptions) {
    this.maxHead = opts.maxHeadBytes ?? DEFAULT_MAX_HEAD_BYTES;
    this.keep = new Set(opts.keepHeaders ?? []);
  }

  /** True once a complete response has been parsed. */
  get complete(): boolean {
    return this.phase === 'done';
  }

  /** Feeds bytes. Bytes after a complete response are ignored. */
  push(chunk: Uint8Array): HttpParseStatus {
    if (this.phase === 'done') return DONE;
    if (this.phase === 'error') return this.errorStatus ?? MORE;
    let data: Buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    while (data.length > 0) {
      // Read through a widened local: the handlers below change `this.phase`, which TypeScript cannot see.
      const phase: Phase = this.phase as Phase;
      switch (phase) {
        case 'length': {
          const n = Math.min(this.remaining, data.length);
          const r = this.deliver(data.subarray(0, n));
          if (r !== undefined) return r;
          this.remaining -= n;
          data = data.subarray(n);
          if (this.remaining === 0) return this.setDone();
          break;
        }
        case 'chunk_data': {
          const n = Math.min(this.remaining, data.length);
          const r = this.deliver(data.subarray(0, n));
          if (r !== undefined) return r;
          this.remaining -= n;
          data = data.subarray(n);
          if (this.remaining === 0) this.phase = 'chunk_crlf';
          break;
        }
        case 'close': {
          const r = this.deliver(data);
          if (r !== undefined) return r;
          data = data.subarray(data.length);
          break;
        }
        case 'done':
          return DONE;
        case 'error':
          return this.errorStatus ?? MORE;
        default: {
          // A line-oriented phase: status, headers, chunk size, chunk CRLF, trailers.
          const nl = data.indexOf(0x0a);
          if (nl < 0) {
            const pending = (this.partial?.length ?? 0) + data.length;
            if (this.headBytes + pending > this.maxHead) return this.tooLongLine();
            this.partial = this.partial === undefined ? Buffer.from(data) : Buffer.concat([this.partial, data]);
            return MORE;
          }
          let line: Buffer = data.subarray(0, nl);
          if (this.partial !== undefined) {
            line = Buffer.concat([this.partial, line]);
            this.partial = undefined;
          }
          data = data.subarray(nl + 1);
          this.headBytes += line.length + 1;
          if (this.headBytes > this.maxHead) return this.tooLongLine();
          const end = line.length > 0 && line[line.length - 1] === 0x0d ? line.length - 1 : line.length;
          const r = this.onLine(line.toString('latin1', 0, end));
          if (r !== undefined) return r;
        }
      }
    }
    return (this.phase as Phase) === 'done' ? DONE : MORE;
  }

  /** The peer closed the connection: completes a close-delimited body, fails anything else unfinished. */
  end(): HttpParseStatus {
    switch (this.phase) {
      case 'done':
        return DONE;
      case 'error':
        return this.errorStatus ?? MORE;
      case 'close':
        return this.setDone();
      case 'status':
        return this.fail('bad_reply', this.interim === 0 && this.headBytes === 0 && this.partial === undefined ? 'connection closed without a response' : 'connection closed before the status line ended');
      case 'headers':
        return this.fail('bad_reply', 'connection closed in the header block');
      case 'length':
        return this.fail('bad_reply', `connection closed after ${this.bodyBytes} of ${this.contentLength ?? 0} body bytes`);
      default:
        return this.fail('bad_reply', `connection closed in a chunked body after ${this.bodyBytes} bytes`);
    }
  }

  private tooLongLine(): HttpParseStatus {
    const where = this.phase === 'status' || this.phase === 'headers' ? 'status line and headers' : this.phase === 'trailers' ? 'trailers' : 'chunk-size line';
    return this.fail('too_large', `${where} over ${this.maxHead} bytes`);
  }

  private onLine(line: string): HttpParseStatus | undefined {
    switch (this.phase) {
      case 'status':
        return this.onStatusLine(line);
      case 'headers':
        return this.onHeaderLine(line);
      case 'chunk_size':
        return this.onChunkSize(line);
      case 'chunk_crlf':
        if (line !== '') return this.fail('bad_reply', 'chunk data not followed by CRLF');
        this.headBytes = 0;
        this.phase = 'chunk_size';
        return undefined;
      case 'trailers':
        if (line === '') return this.setDone();
        if (++this.headerLines > MAX_HEADER_LINES) return this.fail('too_large', `more than ${MAX_HEADER_LINES} trailer lines`);
        return undefined;
      default:
        return undefined;
    }
  }

  private onStatusLine(line: string): HttpParseStatus | undefined {
    const m = STATUS_LINE.exec(line);
    if (m === null) return this.fail('bad_reply', line.startsWith('HTTP/') ? 'malformed status line' : 'not an HTTP/1.x response');
    this.status = Number(m[1]);
    this.statusText = m[2] ?? '';
    this.headers.clear();
    this.contentLength = undefined;
    this.chunked = false;
    this.otherCoding = false;
    this.headerLines = 0;
    this.phase = 'headers';
    return undefined;
  }

  private onHeaderLine(line: string): HttpParseStatus | undefined {
    if (line === '') return this.onHeadEnd();
    if (++this.headerLines > MAX_HEADER_LINES) return this.fail('too_large', `more than ${MAX_HEADER_LINES} header lines`);
    // RFC 9112 section 5.2: obs-fold is refused rather than guessed at.
    if (line.startsWith(' ') || line.startsWith('\t')) return this.fail('bad_reply', 'folded header line');
    const colon = line.indexOf(':');
    if (colon <= 0) return this.fail('bad_reply', 'header line without a name');
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return this.fail('bad_reply', 'invalid header name');
    const lower = name.toLowerCase();
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (lower === 'content-length') {
      // RFC 9110 section 8.6: a list of identical values is one value; differing values are an error.
      for (const v of value.split(',')) {
        const t = v.trim();
        if (!DIGITS.test(t)) return this.fail('bad_reply', 'invalid Content-Length');
        const n = Number(t);
        if (this.contentLength !== undefined && this.contentLength !== n) return this.fail('bad_reply', 'conflicting Content-Length values');
        this.contentLength = n;
      }
    } else if (lower === 'transfer-encoding') {
      const codings = value.split(',').map((c) => c.trim().toLowerCase()).filter((c) => c !== '');
      this.chunked = codings[codings.length - 1] === 'chunked';
      this.otherCoding = !this.chunked;
    }
    if (this.keep.has(lower) && !this.headers.has(lower)) this.headers.set(lower, value);
    return undefined;
  }

  private onHeadEnd(): HttpParseStatus | undefined {
    const status = this.status ?? 0;
    this.headBytes = 0;
    if (status >= 100 && status < 200 && status !== 101) {
      if (++this.interim > MAX_INTERIM_RESPONSES) return this.fail('bad_reply', `more than ${MAX_INTERIM_RESPONSES} interim responses`);
      this.status = undefined;
      this.phase = 'status';
      return undefined;
    }
    // RFC 9112 section 6.3: no body after HEAD, 1xx, 204, 304.
    if (this.opts.head || status < 200 || status === 204 || status === 304) return this.setDone();
    if (this.chunked) {
      this.phase = 'chunk_size';
      return undefined;
    }
    if (this.otherCoding) {
      this.phase = 'close';
      return undefined;
    }
    if (this.contentLength !== undefined) {
      if (this.contentLength > this.opts.maxBodyBytes) {
        return this.fail('too_large', `Content-Length ${this.contentLength} over the ${this.opts.maxBodyBytes}-byte limit`);
      }
      if (this.contentLength === 0) return this.setDone();
      this.remaining = this.contentLength;
      this.phase = 'length';
      return undefined;
    }
    this.phase = 'close';
    return undefined;
  }

  private onChunkSize(line: string): HttpParseStatus | undefined {
    const semi = line.indexOf(';');
    const digits = (semi < 0 ? line : line.slice(0, semi)).replace(/[ \t]+$/, '');
    if (digits.length === 0 || digits.length > MAX_CHUNK_SIZE_DIGITS || !HEX.test(digits)) return this.fail('bad_reply', 'invalid chunk size');
    const size = parseInt(digits, 16);
    this.headBytes = 0;
    if (size === 0) {
      this.headerLines = 0;
      this.phase = 'trailers';
      return undefined;
    }
    if (this.bodyBytes + size > this.opts.maxBodyBytes) {
      return this.fail('too_large', `body over the ${this.opts.maxBodyBytes}-byte limit`);
    }
    this.remaining = size;
    this.phase = 'chunk_data';
    return undefined;
  }

  private deliver(bytes: Buffer): HttpParseStatus | undefined {
    if (this.bodyBytes + bytes.length > this.opts.maxBodyBytes) {
      return this.fail('too_large', `body over the ${this.opts.maxBodyBytes}-byte limit`);
    }
    this.bodyBytes += bytes.length;
    if (bytes.length > 0) this.opts.onBody?.(bytes);
    return undefined;
  }

  private setDone(): HttpParseStatus {
    this.phase = 'done';
    this.partial = undefined;
    return DONE;
  }

  private fail(reason: 'bad_reply' | 'too_large', detail: string): HttpParseStatus {
    this.phase = 'error';
    this.partial = undefined;
    this.errorStatus = { state: 'error', reason, detail };
    return this.errorStatus;
  }
}
