import test from 'ava';
import { historyEntry, renderHistory } from '../src/deploy/history.js';
import { printable } from '../src/output/printable.js';
import { RemoteError } from '../src/remote/executor.js';
import { redact } from '../src/secret.js';

// What an app wrote reaches the operator's terminal only as text: no escape sequence, no line of
// its own making; a secret in it never whole.

const forged = 'running migrations\n\x1b]0;pwned\x07\x1b[2K\r\x1b[1A2026-12-02 10:00:00Z  alice@laptop  update blog: ok\x1b[8m';

test('printable shows control characters as \\xNN (escape, CR, LF, C1, DEL), keeps tabs and text', (t) => {
  t.is(printable('a\tb\x1b[2K\r\n\x9b\x7fé'), 'a\tb\\x1b[2K\\x0d\\x0a\\x9b\\x7fé');
});

test('attack: an app\'s output in a failed step reaches the history stored and shown without a control character', (t) => {
  const err = new RemoteError('app1.x.test', 'migrate', forged);
  t.false(/[\x00-\x08\x0a-\x1f\x7f-\x9f]/.test(err.message), err.message);
  const entry = historyEntry({ at: '2026-12-02T10:00:00.000Z', kind: 'update', app: 'blog', result: `failed: ${err.message}` });
  t.false(/[\x00-\x1f\x7f-\x9f]/.test(entry.result), 'stored without control characters');
  // An entry written by an older silver, or by a node's root, raw: shown printable all the same.
  const raw = { ...entry, result: `failed: ${forged}`, detail: '\x1b[31mred' };
  const shown = renderHistory([JSON.parse(JSON.stringify(raw))]);
  t.false(/[\x00-\x08\x0a-\x1f\x7f-\x9f]/.test(shown), shown);
  t.is(shown.split('\n').length, 1, 'one entry, one line');
  t.true(shown.includes('\\x1b]0;pwned'));
});

test('redact: the longest value first, so a short secret inside a long one leaves none of it; each line of a value of several lines', (t) => {
  const url = 'postgres://blog:S3cretPw@db1/prod';
  t.is(redact(`connect ${url} failed`, ['prod', url]), 'connect [REDACTED] failed');
  t.is(redact('env prod', ['prod', url]), 'env [REDACTED]');
  const pem = '-----BEGIN KEY-----\nMIIBVwIBADANBgkqhkiG9w0BAQEFAASCAUEwggE9\n-----END KEY-----';
  t.is(redact('line: MIIBVwIBADANBgkqhkiG9w0BAQEFAASCAUEwggE9 |', [pem]), 'line: [REDACTED] |');
  t.is(redact('abc', ['abc']), 'abc', 'values under 4 characters are too common to take out');
});

test('attack: a secret an app prints encoded — JSON-escaped, URL-encoded, as a form, in base64 — is taken out as well as the verbatim one', (t) => {
  const secret = 'p@ss w/rd"&+=\\é';
  const forms = [JSON.stringify({ password: secret }), `https://x.test/cb?token=${encodeURIComponent(secret)}`, new URLSearchParams({ pw: secret }).toString(), `Basic ${Buffer.from(secret).toString('base64')}`, `data ${Buffer.from(secret).toString('base64').replace(/=+$/, '')}`];
  for (const text of forms) {
    const out = redact(text, [secret]);
    t.true(out.includes('[REDACTED]'), `${text} -> ${out}`);
    t.false(out.includes('w/rd') || out.includes('w%2Frd') || out.includes(Buffer.from(secret).toString('base64').slice(0, 12)), out);
  }
  t.is(redact('nothing here', [secret]), 'nothing here');
});

test('attack: a lock holder or a rollout record a deployer wrote (silver-state lock/put) reaches silver status printable', async (t) => {
  const { renderStatus } = await import('../src/commands/status.js');
  const evil = 'ops\x1b[2K\r\x1b]52;c;cm0gLXJmIH4=\x07';
  const out = renderStatus({
    nodeset: 'shop', nodes: [], apps: [], modes: null, backups: null,
    rollout: { kind: 'update', app: 'hello', instance: `hello.2026-12-02_001${evil}`, holder: evil, started: '2026-12-02T10:00:00Z', live: false },
    lock: { holder: evil, ageSeconds: 3, live: true },
  });
  t.false(/[\x00-\x08\x0a-\x1f\x7f-\x9f]/.test(out.replaceAll('\n', '')), JSON.stringify(out));
  t.true(out.includes('ops\\x1b[2K\\x0d\\x1b]52;c;cm0gLXJmIH4=\\x07'));
});

test('attack: what a node prints reaches silver exec\'s report printable; an app\'s output to a terminal (silver run without -i) keeps only its line breaks and tabs', async (t) => {
  const { renderExec } = await import('../src/commands/exec.js');
  const { printableLines } = await import('../src/output/printable.js');
  const osc52 = '\x1b]52;c;cm0gLXJmIH4K\x07';
  const out = renderExec([{ name: 'app1.shop.test', code: 0, stdout: `ok${osc52}\nline two\n`, stderr: `\x1b[2Kwarn\n` } as never]);
  t.false(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/.test(out), JSON.stringify(out));
  t.true(out.includes('app1.shop.test: ok\\x1b]52;c;cm0gLXJmIH4K\\x07'));
  t.is(printableLines(`a\tb\nc${osc52}\r\n`), 'a\tb\nc\\x1b]52;c;cm0gLXJmIH4K\\x07\\x0d\n');
});

test('attack: --json escapes the C1 controls an app\'s log line or history entry may hold (JSON leaves them raw; some terminals act on them): the same strings to a JSON reader', async (t) => {
  const { jsonText } = await import('../src/output/printable.js');
  const value = { message: 'x\u009b2Jy\u0085z\u007f', n: 1 };
  const text = jsonText(value, 2);
  t.false(/[\u007f-\u009f]/.test(text), text);
  t.true(text.includes('x\\u009b2Jy\\u0085z\\u007f'));
  t.deepEqual(JSON.parse(text), value);
  t.is(jsonText({ a: 'é' }), '{"a":"é"}');
});
