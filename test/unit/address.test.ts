/**
 * src/lib/address.ts: IPv4 text parsing agrees with node:net's isIPv4 (no leading zeros, 0..255, four parts),
 * for hand-picked edge cases and for random strings over the characters an address is made of.
 */

import { isIPv4 } from 'node:net';
import test from 'ava';
import fc from 'fast-check';
import { parseIPv4 } from '../../src/lib/address.ts';

const CASES: ReadonlyArray<readonly [string, number[] | undefined]> = [
  ['0.0.0.0', [0, 0, 0, 0]],
  ['10.1.2.3', [10, 1, 2, 3]],
  ['255.255.255.255', [255, 255, 255, 255]],
  ['256.1.1.1', undefined],
  ['01.1.1.1', undefined],
  ['1.1.1', undefined],
  ['1.1.1.1.1', undefined],
  ['1..1.1', undefined],
  ['1.1.1.1.', undefined],
  ['.1.1.1', undefined],
  ['1.1.1.1000', undefined],
  ['', undefined],
  [' 1.1.1.1', undefined],
  ['1.1.1.-1', undefined],
  ['::1', undefined],
];

for (const [text, want] of CASES) {
  test(`parseIPv4(${JSON.stringify(text)}) is ${want === undefined ? 'refused' : want.join(',')}`, (t) => {
    const got = parseIPv4(text);
    t.deepEqual(got === undefined ? undefined : [...got], want);
  });
}

test('parseIPv4 accepts exactly what node:net isIPv4 accepts, and reads the same numbers', (t) => {
  const part = fc.oneof(fc.integer({ min: 0, max: 300 }).map(String), fc.string({ unit: fc.constantFrom('0', '1', '2', '5', '9', '.', 'a', '-'), maxLength: 4 }));
  fc.assert(
    fc.property(fc.array(part, { minLength: 1, maxLength: 6 }), (parts) => {
      const text = parts.join('.');
      const got = parseIPv4(text);
      if (isIPv4(text) !== (got !== undefined)) return false;
      return got === undefined || got.join('.') === text;
    }),
    { numRuns: 20000 },
  );
  t.pass();
});
