import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { layersRoot } from '../../src/layers.js';

// silver-acme's export and import (silver's state of the ACME account and certificates) in a
// temporary tree: what one balancer exports another imports whole; a hostile archive (a member
// out of its folders, a link out of its folder, a certificate of another host) is refused and
// writes nothing.

function tree() {
  const dir = mkdtempSync(join(tmpdir(), 'silver-acme-'));
  const p = { dir, base: join(dir, 'acme'), certs: join(dir, 'certs'), conf: join(dir, 'acme.conf'), script: join(dir, 'silver-acme') };
  mkdirSync(p.certs);
  writeFileSync(p.conf, 'directory https://acme.test/dir\nemail -\nca -\nhost secure.test\n');
  let text = readFileSync(join(layersRoot(), 'balancer/bin/silver-acme'), 'utf8');
  for (const [name, value] of [['CONF', p.conf], ['BASE', p.base], ['CERTS', p.certs]] as const) text = text.replace(new RegExp(`^${name} = ".*"$`, 'm'), `${name} = ${JSON.stringify(value)}`);
  writeFileSync(p.script, text, { mode: 0o755 });
  return p;
}
const acme = (p: ReturnType<typeof tree>, verb: string, input?: string) => spawnSync('python3', [p.script, verb], { input, encoding: 'utf8' });

test('export then import on a new balancer: the account and the certificate come back, root-only', (t) => {
  const a = tree();
  const b = tree();
  t.teardown(() => [a, b].forEach((p) => rmSync(p.dir, { recursive: true, force: true })));
  mkdirSync(join(a.base, 'accounts/abc'), { recursive: true });
  writeFileSync(join(a.base, 'accounts/abc/account_key.pem'), 'ACCOUNT KEY');
  mkdirSync(join(a.base, 'certs/secure.test'), { recursive: true });
  writeFileSync(join(a.base, 'certs/secure.test/cert-1.pem'), 'CERT');
  execFileSync('ln', ['-s', 'cert-1.pem', join(a.base, 'certs/secure.test/cert.pem')]);
  writeFileSync(join(a.certs, 'secure.test.pem'), 'CHAIN AND KEY');
  const out = acme(a, 'export');
  t.is(out.status, 0, out.stderr);
  const r = acme(b, 'import', out.stdout);
  t.is(r.status, 0, r.stderr);
  t.is(readFileSync(join(b.certs, 'secure.test.pem'), 'utf8'), 'CHAIN AND KEY');
  t.is(readFileSync(join(b.base, 'accounts/abc/account_key.pem'), 'utf8'), 'ACCOUNT KEY');
  t.is(readFileSync(join(b.base, 'certs/secure.test/cert.pem'), 'utf8'), 'CERT', 'the link inside its folder is kept');
  t.is(spawnSync('stat', ['-c', '%a', join(b.certs, 'secure.test.pem')], { encoding: 'utf8' }).stdout.trim(), '600');
});

test('a hostile archive is refused: members out of their folders, links that leave them, certificates of other hosts', (t) => {
  const p = tree();
  t.teardown(() => rmSync(p.dir, { recursive: true, force: true }));
  const make = (script: string) => {
    const d = mkdtempSync(join(tmpdir(), 'silver-acme-tar-'));
    execFileSync('sh', ['-c', script], { cwd: d });
    const b64 = execFileSync('sh', ['-c', 'cd content && tar -czf - * | base64 -w0'], { cwd: d, encoding: 'utf8' });
    rmSync(d, { recursive: true, force: true });
    return b64;
  };
  for (const [what, script, re] of [
    ['a link out of its folder', 'mkdir -p content/certs/x && ln -s /etc/shadow content/certs/x/cert.pem', /link 'certs\/x\/cert\.pem' leaves its folder/],
    ['a certificate of another host', 'mkdir -p content/haproxy && echo x > content/haproxy/evil.test.pem', /'haproxy\/evil\.test\.pem' is not a certificate of this balancer/],
    ['a member outside the three folders', 'mkdir -p content/etc && echo x > content/etc/passwd', /bad member 'etc'/],
    ['a link to the folder above', 'mkdir -p content/certs && ln -s .. content/certs/a', /link 'certs\/a' leaves its folder/],
  ] as const) {
    const r = acme(p, 'import', make(script));
    t.not(r.status, 0, what);
    t.regex(r.stderr, re, what);
  }
  // A member below a link of the archive (certs/a -> b, then certs/a/x: tar writes it wherever a leads).
  const below = execFileSync('python3', ['-c', `
import base64, io, sys, tarfile
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode='w:gz') as tf:
    link = tarfile.TarInfo('certs/a'); link.type = tarfile.SYMTYPE; link.linkname = 'b'; tf.addfile(link)
    data = b'x'; f = tarfile.TarInfo('certs/a/x'); f.size = len(data); tf.addfile(f, io.BytesIO(data))
sys.stdout.write(base64.b64encode(buf.getvalue()).decode())
`], { encoding: 'utf8' });
  const r = acme(p, 'import', below);
  t.not(r.status, 0);
  t.regex(r.stderr, /'certs\/a\/x' lies below a link/);
  t.false(existsSync(join(p.base, 'certs/a')), 'nothing written');
  t.false(existsSync(join(p.certs, 'evil.test.pem')));
  t.false(existsSync(join(p.dir, 'etc')));
});
