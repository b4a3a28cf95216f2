import test from 'ava';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { leftovers, runDirectory } from './run.js';

test('the test launcher makes a sticky run directory with its pid, and finds only dead runs\' directories', (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'silver-run-'));
  t.teardown(() => rmSync(parent, { recursive: true, force: true }));
  const mine = runDirectory(parent, 111);
  t.is(statSync(mine).mode & 0o7777, 0o1777);
  t.is(readFileSync(join(mine, '.silver-test-pid'), 'utf8'), '111');
  const dead = runDirectory(parent, 222);
  mkdirSync(join(parent, 'silver-test-nopid'));
  mkdirSync(join(parent, 'silver-state-x'));
  writeFileSync(join(parent, 'silver-state-x', '.silver-test-pid'), '222');
  t.deepEqual(leftovers(parent, (pid) => pid === 111), [dead]);
  // (another user's leftover, or a link by that name, is not this run's to remove)
  symlinkSync(dead, join(parent, 'silver-test-link'));
  if (process.getuid?.() === 0) chownSync(runDirectory(parent, 333), 65534, 65534);
  t.deepEqual(leftovers(parent, (pid) => pid === 111), [dead]);
  t.true(existsSync(join(parent, 'silver-test-nopid')));
});

const launched = /\/silver-test-[^/]+$/.test(process.env.TMPDIR ?? '');
(launched ? test : test.skip)('the tests run with TMPDIR on the launcher\'s own directory (skipped when AVA is started without test/run.ts)', (t) => {
  t.true(existsSync(join(process.env.TMPDIR!, '.silver-test-pid')));
  t.true(tmpdir().startsWith(process.env.TMPDIR!));
});
