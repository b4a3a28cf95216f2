import test from 'ava';
import { execFileSync } from 'node:child_process';
import { quoteArg, quoteCommand, withEnv } from '../../src/ssh/quote.js';

test('plain words stay as they are; everything else is single-quoted', (t) => {
  t.is(quoteCommand(['systemctl', 'reload', 'nginx.service']), 'systemctl reload nginx.service');
  t.is(quoteArg(''), "''");
  t.is(quoteArg('a b'), "'a b'");
  t.is(quoteArg("it's"), "'it'\\''s'");
  t.is(quoteArg('$(rm -rf /)'), "'$(rm -rf /)'");
});

test('a real shell gets back exactly the arguments, whatever they hold', (t) => {
  const nasty = ['plain', 'with space', "quote'in", 'dollar $HOME', '`tick`', 'new\nline', '*', '; echo pwned', '', 'ünï'];
  const out = execFileSync('sh', ['-c', `${quoteCommand(['printf', '%s\\0', ...nasty])}`]).toString();
  t.deepEqual(out.split('\0').slice(0, -1), nasty);
});

test('environment assignments are checked and quoted', (t) => {
  t.is(quoteCommand(withEnv({ A: 'x y' }, ['sh', '-s'])), "env 'A=x y' sh -s");
  t.throws(() => withEnv({ 'A;B': 'x' }, ['true']));
});
