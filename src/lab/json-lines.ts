/**
 * JSON lines from a lab process (a `tandem run` log, the lab clients' events): a splitter fed text chunks as
 * they arrive, calling back with each line that parses as JSON; other lines (tool output, warnings) are skipped.
 */

import type { Readable } from 'node:stream';

/** A function to feed chunks to; calls `onValue` with every complete line that is JSON. */
export function jsonLineSplitter(onValue: (value: unknown) => void): (chunk: string | Buffer) => void {
  let buf = '';
  return (chunk) => {
    buf += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        continue;
      }
      onValue(value);
    }
  };
}

/** Reads a stream's JSON lines (see jsonLineSplitter). */
export function onJsonLines(stream: Readable | null | undefined, onValue: (value: unknown) => void): void {
  stream?.setEncoding('utf8').on('data', jsonLineSplitter(onValue));
}
