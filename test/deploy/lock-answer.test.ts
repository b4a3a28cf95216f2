import test from 'ava';
import { parseLockAnswer } from '../../src/deploy/shared-state.js';

// How a node's answer to `silver-state lock` is read: a node that never got silver-state is
// `absent` (it counts in no majority), whatever language its sudo speaks; anything else unknown
// is an error.

const HELPER = '/usr/local/lib/silverlining/bin/silver-state';

test('no silver-state on the node: absent, by the shell\'s 127 or by sudo\'s "command not found" in any language', (t) => {
  for (const stderr of [
    `sudo: ${HELPER}: command not found`,
    `sudo: ${HELPER}: Befehl nicht gefunden`,
    `sudo: ${HELPER} : commande introuvable`,
  ]) {
    t.is(parseLockAnswer('n1', 1, '', `${stderr}\n`).outcome, 'absent', stderr);
  }
  t.is(parseLockAnswer('n1', 127, '', 'sh: 1: silver-state: not found\n').outcome, 'absent');
});

test('what is not the helper missing stays an error: sudo refusing, another program missing, a failing helper', (t) => {
  for (const [code, stderr] of [
    [1, 'sudo: a password is required'],
    [1, 'Sorry, user silver is not allowed to execute /usr/local/lib/silverlining/bin/silver-state lock as root.'],
    [1, 'sudo: /usr/bin/other: command not found'],
    [1, 'sudo: /tmp/silver-state: command not found'],
    [1, `sudo: ${HELPER}/x: Too many levels of symbolic links`],
    [1, `sudo: ${HELPER}: Too many levels of symbolic links`],
    [1, `sudo: ${HELPER}: command not found\nsilver-state: and then something else`],
    [1, 'silver-state: the state folder is not root\'s'],
  ] as const) {
    const a = parseLockAnswer('n1', code, '', `${stderr}\n`);
    t.is(a.outcome, 'error', stderr);
    t.is(a.error, stderr);
  }
  t.is(parseLockAnswer('n1', 0, 'taken\n', '').outcome, 'taken');
});
