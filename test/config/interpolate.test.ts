import test from 'ava';
import { memoryHost } from '../../src/config/host.js';
import { loadLayered } from '../../src/config/load.js';
import { InterpolationError, Interpolator } from '../../src/config/interpolate.js';
import { parseIni } from '../../src/ini/parse.js';
import { formatDiagnostic } from '../../src/diagnostics.js';

function interp(text: string, env: Record<string, string> = {}) {
  const { doc } = parseIni(text, 'i.conf');
  const values = new Interpolator(doc, env);
  return (section: string, key: string) => values.value(section, doc.sections.get(section)!.entries.get(key)!);
}

test('environment variables, references and $$', (t) => {
  const get = interp('[a]\nx = ${HOME}/y\nz = ${a:x}/z\nq = ${b:service:w}\nm = $$5\n[b:service]\nw = deep\n', { HOME: '/h' });
  t.is(get('a', 'x'), '/h/y');
  t.is(get('a', 'z'), '/h/y/z');
  t.is(get('a', 'q'), 'deep');
  t.is(get('a', 'm'), '$5');
});

test('references resolve lazily: order in the file does not matter', (t) => {
  const get = interp('[a]\nfirst = ${b:later}\n[b]\nlater = ${a:base}!\n[a]\nbase = end\n');
  t.is(get('a', 'first'), 'end!');
});

test('{{n}} is left for the node expansion', (t) => {
  const get = interp('[a]\nd = foo.com\nname = app{{n}}.${a:d}\n');
  t.is(get('a', 'name'), 'app{{n}}.foo.com');
});

test('a cycle names its whole chain and the line where it starts', (t) => {
  const get = interp('[a]\nx = ${a:y}\ny = ${b:z}\n[b]\nz = ${a:x}\n');
  const e = t.throws(() => get('a', 'x'), { instanceOf: InterpolationError }) as InterpolationError;
  t.regex(e.diagnostic.message, /cycle: \[a\] x -> \[a\] y -> \[b\] z -> \[a\] x/);
});

test('undefined variable, key and section are located at the referring key', (t) => {
  const get = interp('[a]\nx = ${NOPE}\ny = ${a:missing}\nz = ${nosuch:k}\n');
  const diag = (key: string) => (t.throws(() => get('a', key)) as InterpolationError).diagnostic;
  t.deepEqual([diag('x').line, diag('x').key], [2, 'x']);
  t.regex(diag('x').message, /environment variable NOPE is not set/);
  t.regex(diag('y').message, /no key missing in \[a\]/);
  t.regex(diag('z').message, /no section \[nosuch\]/);
});

test('extends merges recursively, relative to the extending file, and the extending file wins', (t) => {
  const host = memoryHost({
    '/p/site.conf': '[general]\nextends = base/mid.conf\nname = site\n[appserver]\nnodes = 5\n',
    '/p/base/mid.conf': '[general]\nextends = ../root.conf\nbase_domain = mid.com\n[appserver]\nnodes = 2\n',
    '/p/root.conf': '[general]\nname = root\nbase_domain = root.com\nset_etc_hosts = false\n',
  });
  const { doc, diagnostics, files } = loadLayered('/p/site.conf', host, 'site.conf');
  t.deepEqual(diagnostics, []);
  t.deepEqual(files, ['site.conf', 'base/mid.conf', 'root.conf']);
  const g = doc.sections.get('general')!.entries;
  t.is(g.get('name')!.value, 'site');
  t.is(g.get('base_domain')!.value, 'mid.com');
  t.is(g.get('set_etc_hosts')!.value, 'false');
  t.is(g.get('set_etc_hosts')!.file, 'root.conf');
  t.is(doc.sections.get('appserver')!.entries.get('nodes')!.value, '5');
});

test('a base file sees the extending file\'s values through references', (t) => {
  const host = memoryHost({
    '/p/site.conf': '[general]\nextends = base.conf\nbase_domain = site.com\n',
    '/p/base.conf': '[general]\nname = x\n[balancer]\nnode_name = lb.${general:base_domain}\n',
  });
  const { doc } = loadLayered('/p/site.conf', host);
  const values = new Interpolator(doc, {});
  t.is(values.value('balancer', doc.sections.get('balancer')!.entries.get('node_name')!), 'lb.site.com');
});

test('a missing extends file and an extends cycle are located errors', (t) => {
  const host = memoryHost({
    '/p/a.conf': '[general]\nname = a\nextends =\n    b.conf\n    gone.conf\n',
    '/p/b.conf': '[general]\nextends = a.conf\n',
  });
  const { diagnostics } = loadLayered('/p/a.conf', host, 'a.conf');
  const text = diagnostics.map((d) => `${d.file}:${d.line}: ${d.key}: ${d.message}`);
  t.true(text.some((l) => /^b\.conf:2: extends: a\.conf: extends cycle/.test(l)), text.join('\n'));
  t.true(text.some((l) => /^a\.conf:5: extends: gone\.conf: no such file/.test(l)), text.join('\n'));
});

test('attack: a ${...} whose text is no name (part of a secret) is never shown in the error; a name is', (t) => {
  const fails = (text: string) => {
    const { doc } = parseIni(text, 'i.conf');
    const values = new Interpolator(doc, {});
    const e = t.throws(() => values.value('a', doc.sections.get('a')!.entries.get('k')!), { instanceOf: InterpolationError });
    return formatDiagnostic((e as InterpolationError).diagnostic);
  };
  for (const secret of ['abc/${bPx/RfiCY+q}x', 'p${w0rd s3cr3t}', '${b:s3cr3t/x}', '${no such:key}']) {
    const m = fails(`[a]\nk = ${secret}\n`);
    t.false(/RfiCY|s3cr3t|such/.test(m), m);
    t.regex(m, /i\.conf:2: k: a \$\{\.\.\.\} reference that names no variable, section or key/);
  }
  t.regex(fails('[a]\nk = ${NOPE_VAR}\n'), /environment variable NOPE_VAR is not set/);
  t.regex(fails('[a]\nk = ${b:x}\n'), /\$\{b:x\}: no section \[b\]/);
});

test('attack: references that each double the one before stop at 1 MiB with a located error, not an exhausted memory', (t) => {
  const lines = ['[vars]', 'v0 = xxxxxxxxxxxxxxxx', ...Array.from({ length: 40 }, (_, i) => `v${i + 1} = \${vars:v${i}}\${vars:v${i}}`)];
  const { doc } = parseIni(`${lines.join('\n')}\n`, 'i.conf');
  const values = new Interpolator(doc, {});
  const e = t.throws(() => values.value('vars', doc.sections.get('vars')!.entries.get('v40')!), { instanceOf: InterpolationError });
  t.regex(formatDiagnostic((e as InterpolationError).diagnostic), /^i\.conf:\d+: v\d+: the value grows past 1 MiB when its references are filled in$/);
});
