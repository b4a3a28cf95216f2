import test from 'ava';
import { batches, batchSizes, formatRollout, ONE_AT_A_TIME, parseRollout } from '../../src/nodeset/rollout.js';

const spec = (text: string) => {
  const p = parseRollout(text);
  if (!p.ok) throw new Error(p.error);
  return p.value;
};

// app servers × `rollout =` → batch sizes (the primary alone first, the last entry repeating,
// percentages of the app-server count rounded up).
const TABLE: [number, string, number[]][] = [
  [0, '1', []],
  [1, '1', [1]],
  [1, '1, 25%', [1]],
  [4, '1', [1, 1, 1, 1]],
  [8, '1, 25%', [1, 2, 2, 2, 1]],
  [8, '1 25%', [1, 2, 2, 2, 1]],
  [8, '25%', [1, 1, 2, 2, 2]],
  [8, '3', [1, 2, 3, 2]],
  [8, '3, 50%', [1, 2, 4, 1]],
  [10, '1, 2, 50%', [1, 2, 5, 2]],
  [5, '100%', [1, 4]],
  [3, '10', [1, 2]],
  [7, '1, 1%', [1, 1, 1, 1, 1, 1, 1]],
  [9, '1,33%', [1, 3, 3, 2]],
  [4, '1, 3', [1, 3]],
  [20, '1, 10%, 25%', [1, 2, 5, 5, 5, 2]],
];

for (const [nodes, text, sizes] of TABLE) {
  test(`${nodes} app servers, rollout = ${text} → ${sizes.join(' ') || 'none'}`, (t) => {
    t.deepEqual(batchSizes(nodes, spec(text)), sizes);
    t.is(sizes.reduce((a, b) => a + b, 0), nodes, 'every app server once');
  });
}

test('the default is one app server at a time', (t) => {
  t.deepEqual(batchSizes(5, ONE_AT_A_TIME), [1, 1, 1, 1, 1]);
});

test('batches cut the app servers in order, the primary alone first', (t) => {
  t.deepEqual(batches(['a1', 'a2', 'a3', 'a4', 'a5', 'a6'], spec('1, 50%')), [['a1'], ['a2', 'a3', 'a4'], ['a5', 'a6']]);
});

test('parse and format: commas and/or whitespace, counts and percentages', (t) => {
  t.deepEqual(spec(' 1,  2 25% '), [{ count: 1 }, { count: 2 }, { percent: 25 }]);
  t.is(formatRollout(spec('1 2\t25%')), '1, 2, 25%');
});

test('bad entries are refused with what is wrong', (t) => {
  const bad = (text: string) => {
    const p = parseRollout(text);
    return p.ok ? null : p.error;
  };
  t.regex(bad('0')!, /entry "0" must be a number of app servers \(1 or more\) or a percentage of them \(1% to 100%\)/);
  t.regex(bad('1, 0%')!, /entry "0%"/);
  t.regex(bad('150%')!, /entry "150%"/);
  t.regex(bad('abc')!, /entry "abc"/);
  t.regex(bad('-1')!, /entry "-1"/);
  t.regex(bad('2.5')!, /entry "2\.5"/);
  t.regex(bad('')!, /^is empty/);
  t.regex(bad('1,,2')!, /has an empty entry in "1,,2"/);
  t.regex(bad('1, ')!, /has an empty entry/);
});
