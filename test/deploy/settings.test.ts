import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyChanges, badSettingName, envFile, fingerprint, formatPending, parseEnvFile, parseStaged, settingsOf, valueFromInput, withSettings } from '../../src/deploy/settings.js';

const HARD = ["it's", 'say "hi"', 'a\\b', '$HOME and $(id) and `id`', 'two\nlines\n', 'ünïcödé ✓', '  spaced  ', '\\', 'trailing\\', '#not a comment', ''];

test('the environment file holds any value and reads back the same (double quotes, escapes, line breaks)', (t) => {
  const vars = Object.fromEntries(HARD.map((v, i) => [`K${i}`, v]));
  const text = envFile(vars);
  t.deepEqual(parseEnvFile(text), vars);
  t.is(envFile({ PORT: '20001' }), 'PORT="20001"\n');
  t.throws(() => envFile({ 'a-b': 'x' }), { message: /bad environment variable name/ });
  t.throws(() => envFile({ A: 'x\0y' }), { message: /NUL/ });
});

test('a POSIX shell reads the environment file back as the same values (the format systemd reads too)', (t) => {
  const vars = Object.fromEntries(HARD.map((v, i) => [`K${i}`, v]));
  const d = mkdtempSync(join(tmpdir(), 'silver-env-'));
  writeFileSync(join(d, 'env'), envFile(vars));
  const out = execFileSync('/bin/sh', ['-c', `. ${d}/env; for k in ${Object.keys(vars).join(' ')}; do eval "printf '%s\\0' \\"\\$$k\\""; done`]);
  t.deepEqual(out.toString('utf8').split('\0').slice(0, -1), HARD);
});

test('older instances\' single-quoted files read back too', (t) => {
  t.deepEqual(parseEnvFile("PORT='20001'\nCONFIG_PG_PASSWORD='abc'\n"), { PORT: '20001', CONFIG_PG_PASSWORD: 'abc' });
  t.throws(() => parseEnvFile('A="unterminated\n'), { message: /unterminated value of A/ });
});

test('settings are named by SILVER_SETTINGS; silver\'s own names are not the app\'s', (t) => {
  const env = withSettings({ PORT: '1', CONFIG_PG_PASSWORD: 'p' }, { API_KEY: 'k', MAIL: 'm' });
  t.is(env['SILVER_SETTINGS'], 'API_KEY MAIL');
  t.deepEqual(settingsOf(parseEnvFile(envFile(env))), { API_KEY: 'k', MAIL: 'm' });
  t.deepEqual(withSettings({ PORT: '1' }, { PORT: 'evil' })['PORT'], '1', "silver's variables win");
  for (const k of ['PORT', 'TEMP', 'SILVER_APP_NAME', 'CONFIG_PG_HOST', '1A', 'a-b', 'A B', '']) t.truthy(badSettingName(k), k);
  t.is(badSettingName('API_KEY'), null);
  t.deepEqual(applyChanges({ A: '1', B: '2' }, [{ key: 'A', unset: true }, { key: 'C', value: '3' }]), { B: '2', C: '3' });
});

test('a value from standard input keeps its inner line breaks and drops one trailing one; staged changes round-trip', (t) => {
  t.is(valueFromInput('K', Buffer.from('-----BEGIN-----\nabc\n-----END-----\n')), '-----BEGIN-----\nabc\n-----END-----');
  t.throws(() => valueFromInput('K', Buffer.from([0xff, 0xfe])), { message: /not UTF-8/ });
  const changes = [{ key: 'A', value: 'x\ny "$' }, { key: 'B', unset: true as const }];
  t.deepEqual(parseStaged(formatPending(changes)).changes, changes);
  // (with the time they were staged: of the app servers' copies the newest wins; none: -1)
  t.deepEqual(parseStaged(formatPending(changes, 1796659723123)), { stamp: 1796659723123, changes });
  t.deepEqual(parseStaged(formatPending(changes)), { stamp: 0, changes });
  t.deepEqual(parseStaged(''), { stamp: -1, changes: [] });
  t.throws(() => parseStaged('staged 1 2\n'), { message: /damaged/ });
  t.throws(() => parseStaged('set ../x abc\n'), { message: /damaged/ });
  t.not(fingerprint('a', 'K', 'v1'), fingerprint('a', 'K', 'v2'));
  t.not(fingerprint('a', 'K', 'v'), fingerprint('a', 'L', 'v'), 'one value under two keys does not show as equal');
  t.regex(fingerprint('a', 'K', 'v'), /^[0-9a-f]{12}$/);
});
