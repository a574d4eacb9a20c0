/**
 * SMTP check (keepalived SMTP_CHECK): read the 220 greeting, send `HELO <helo>`, expect 250, send QUIT. Replies
 * may be multi-line (`250-...` continues, `250 ...` ends; RFC 5321 section 4.2.1). Lines are bounded to
 * MAX_LINE_BYTES (RFC 5321 section 4.5.3.1.5 allows 512) and a reply to MAX_REPLY_LINES lines.
 */

import type { CheckResult, CheckTarget, SmtpCheckSpec } from '../types.ts';
import { LineReader, failure, finishResult, pass, runStream, sanitize } from './common.ts';
import type { Outcome } from './common.ts';

/** Twice RFC 5321's 512-byte reply line, for servers that pad their greeting. */
export const MAX_LINE_BYTES = 1024;
/** Lines of one multi-line reply. */
export const MAX_REPLY_LINES = 64;

const REPLY_LINE = /^([2-5]\d\d)([ -]|$)(.*)$/;

/** One SMTP dialogue. Never throws. */
export function checkSmtp(target: CheckTarget, spec: Pick<SmtpCheckSpec, 'helo' | 'connectTimeoutMs' | 'readTimeoutMs' | 'timeoutMs'>, signal: AbortSignal): Promise<CheckResult> {
  if (!/^[\x21-\x7e]{1,255}$/.test(spec.helo)) return Promise.resolve(finishResult(failure('error', 'invalid HELO name'), performance.now()));
  const reader = new LineReader(MAX_LINE_BYTES);
  let stage: 'banner' | 'helo' | 'quit' = 'banner';
  let lines = 0;
  let banner = '';
  /** Handles one complete reply (its code and first line of text). */
  const onReply = (code: number, text: string, write: (s: string, then?: () => void) => void, finish: (o: Outcome) => void): Outcome | undefined => {
    if (stage === 'banner') {
      if (code !== 220) return failure('status', `greeting ${code} ${sanitize(text, 100)}`);
      banner = sanitize(text, 100);
      stage = 'helo';
      write(`HELO ${spec.helo}\r\n`);
      return undefined;
    }
    if (stage === 'helo') {
      if (code !== 250) return failure('status', `HELO answered ${code} ${sanitize(text, 100)}`);
      stage = 'quit';
      // Up once QUIT is on its way; the server's 221 adds nothing.
      write('QUIT\r\n', () => finish(pass(`220 ${banner}`.trimEnd())));
      return undefined;
    }
    return undefined;
  };
  return runStream(target, spec, signal, {
    onConnect: () => undefined,
    onData(chunk, io) {
      const r = reader.push(chunk);
      if ('tooLarge' in r) return failure('too_large', `reply line over ${MAX_LINE_BYTES} bytes`);
      for (const line of r.lines) {
        const m = REPLY_LINE.exec(line);
        if (m === null) return failure('bad_reply', `not an SMTP reply: ${sanitize(line, 80)}`);
        if (++lines > MAX_REPLY_LINES) return failure('too_large', `reply over ${MAX_REPLY_LINES} lines`);
        if (m[2] === '-') continue;
        lines = 0;
        const o = onReply(Number(m[1]), m[3] ?? '', io.write, io.finish);
        if (o !== undefined) return o;
      }
      return undefined;
    },
    onEnd: () => (stage === 'quit' ? pass('closed after HELO') : failure('bad_reply', `connection closed while waiting for the ${stage === 'banner' ? 'greeting' : 'HELO reply'}`)),
  });
}
