import test from 'ava';
import { formatDiagnostic } from '../../src/diagnostics.js';
import { parseIni } from '../../src/ini/parse.js';

const text = `# whole-line comment
; another
[general]
name = demo   # inline comment
base_domain: example.com ; inline too
url = http://example.com/#anchor

[appserver]
locations =
    http://a.com/ blog
    # a comment inside the value is skipped
    http://a.com/wiki/ wiki   # trailing comment

nodes=3
[Appserver]
nodes = 4
`;

test('values keep their file and line; = and : both separate', (t) => {
  const { doc, diagnostics } = parseIni(text, 'x.conf');
  t.deepEqual(diagnostics, []);
  const general = doc.sections.get('general')!;
  t.is(general.entries.get('name')!.value, 'demo');
  t.is(general.entries.get('name')!.line, 4);
  t.is(general.entries.get('base_domain')!.value, 'example.com');
  t.is(general.entries.get('url')!.value, 'http://example.com/#anchor');
});

test('continuation lines join with newlines and keep their own lines', (t) => {
  const { doc } = parseIni(text, 'x.conf');
  const loc = doc.sections.get('appserver')!.entries.get('locations')!;
  t.is(loc.value, 'http://a.com/ blog\nhttp://a.com/wiki/ wiki');
  t.deepEqual(loc.lines.map((l) => l.line), [10, 12]);
  t.is(doc.sections.get('appserver')!.entries.get('nodes')!.value, '3');
});

test('section names are case-sensitive', (t) => {
  const { doc } = parseIni(text, 'x.conf');
  t.is(doc.sections.get('Appserver')!.entries.get('nodes')!.value, '4');
  t.is(doc.sections.get('appserver')!.entries.get('nodes')!.value, '3');
});

test('a key set twice in a section of a file is an error naming both lines (a repeated section header joins the first: its keys too); the first stays', (t) => {
  const { doc, diagnostics } = parseIni('[a]\nsize = id 1\nsize = ram 256MB\n', 'x.conf');
  t.deepEqual(diagnostics.map((d) => formatDiagnostic(d)), ['x.conf:3: size: already set on line 2 of [a] (a key is set once in a section of a file)']);
  t.is(doc.sections.get('a')!.entries.get('size')!.value, 'id 1');
  // A second [appserver] with its own locations: an error, not the first's locations dropped.
  const two = parseIni('[appserver]\nlocations =\n    http://a.test/ blog\n[general]\nname = x\n[appserver]\nlocations =\n    http://a.test/wiki/ wiki\nnodes = 2\n', 'y.conf');
  t.deepEqual(two.diagnostics.map((d) => formatDiagnostic(d)), ['y.conf:7: locations: already set on line 2 of [appserver] (a key is set once in a section of a file)'], 'its continuation lines are its own, no error of their own');
  t.is(two.doc.sections.get('appserver')!.entries.get('nodes')!.value, '2', 'other keys of a repeated header join the first');
});

test('a blank line ends a value: an indented line after it has no key', (t) => {
  const { diagnostics } = parseIni('[a]\nx =\n    one\n\n    two\n', 'x.conf');
  t.is(diagnostics.length, 1);
  t.is(diagnostics[0]!.line, 5);
  t.regex(diagnostics[0]!.message, /continuation line with no key/);
});

test('a continuation line at the top of a section has no key', (t) => {
  const { diagnostics } = parseIni('[a]\n  stray\n', 'x.conf');
  t.is(diagnostics[0]!.line, 2);
});

test('malformed lines are located', (t) => {
  const { diagnostics } = parseIni('key = outside\n[a\n[b]\njust words\n= novalue\n', 'y.conf');
  t.deepEqual(diagnostics.map((d) => [d.file, d.line]), [
    ['y.conf', 1],
    ['y.conf', 2],
    ['y.conf', 4],
    ['y.conf', 5],
  ]);
});

test('CRLF line endings parse like LF', (t) => {
  const { doc } = parseIni('[a]\r\nx = 1\r\n', 'x.conf');
  t.is(doc.sections.get('a')!.entries.get('x')!.value, '1');
});

test('attack: a malformed line, or a continuation without a key, never shows its value (it may be a secret): only a first word that reads as a key', (t) => {
  const { diagnostics } = parseIni('[provider]\naws_secret wJalrXUtnFEMIK7MDENGbPxRfiCY\n   s3cr3t-continued\n[x]\nwJalrXUtnFEMI/K7MDENG/bPx\n', '/u/conf');
  const text = diagnostics.map((d) => formatDiagnostic(d)).join('\n');
  t.false(/wJalr|s3cr3t/.test(text), text);
  t.regex(text, /\/u\/conf:2: aws_secret: expected "key = value"/);
  t.regex(text, /\/u\/conf:5: \(line\): expected "key = value"/);
});
