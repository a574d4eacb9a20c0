/** The JSON-lines splitter the labs read their processes' output with (src/lab/json-lines.ts). */

import test from 'ava';
import { jsonLineSplitter } from '../../src/lab/json-lines.ts';

test('values of complete JSON lines, in order, across chunk boundaries; other lines skipped', (t) => {
  const got: unknown[] = [];
  const feed = jsonLineSplitter((v) => got.push(v));
  feed('{"msg":"a"}\nIPVS connection entries\n{"ms');
  t.deepEqual(got, [{ msg: 'a' }]);
  feed(Buffer.from('g":"b","n":2}\n{"unfinished":'));
  t.deepEqual(got, [{ msg: 'a' }, { msg: 'b', n: 2 }], 'a line without its newline waits for the rest');
  feed('true}\n\n');
  t.deepEqual(got, [{ msg: 'a' }, { msg: 'b', n: 2 }, { unfinished: true }]);
});
