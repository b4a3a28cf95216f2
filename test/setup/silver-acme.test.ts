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

/** A self-signed certificate for `host` ending in `days` days, with its key: as HAProxy takes it (chain, then key). */
function pem(host: string, days: number, key?: string): string {
  const d = mkdtempSync(join(tmpdir(), 'silver-acme-pem-'));
  try {
    if (key) writeFileSync(join(d, 'k'), key);
    else execFileSync('openssl', ['genpkey', '-algorithm', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', join(d, 'k')], { stdio: 'ignore' });
    execFileSync('openssl', ['req', '-x509', '-key', join(d, 'k'), '-days', String(days), '-subj', `/CN=${host}`, '-addext', `subjectAltName=DNS:${host}`, '-out', join(d, 'c')], { stdio: 'ignore' });
    return readFileSync(join(d, 'c'), 'utf8') + readFileSync(join(d, 'k'), 'utf8');
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
}
const keyOf = (chainAndKey: string) => chainAndKey.slice(chainAndKey.indexOf('-----BEGIN PRIVATE KEY-----'));

test('export then import on a new balancer: the account and the certificate come back, root-only', (t) => {
  const a = tree();
  const b = tree();
  t.teardown(() => [a, b].forEach((p) => rmSync(p.dir, { recursive: true, force: true })));
  mkdirSync(join(a.base, 'accounts/abc'), { recursive: true });
  writeFileSync(join(a.base, 'accounts/abc/account_key.pem'), 'ACCOUNT KEY');
  mkdirSync(join(a.base, 'certs/secure.test'), { recursive: true });
  writeFileSync(join(a.base, 'certs/secure.test/cert-1.pem'), 'CERT');
  execFileSync('ln', ['-s', 'cert-1.pem', join(a.base, 'certs/secure.test/cert.pem')]);
  const cert = pem('secure.test', 80);
  writeFileSync(join(a.certs, 'secure.test.pem'), cert);
  const out = acme(a, 'export');
  t.is(out.status, 0, out.stderr);
  const [head, body] = out.stdout.trim().split('\n');
  const st = JSON.parse(head!)['secure.test'];
  t.true(Math.abs(st.end - (Date.now() / 1000 + 80 * 86400)) < 3600, 'the status line: when it ends');
  t.regex(st.sha256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  t.regex(body!, /^[A-Za-z0-9+/=]+$/);
  const r = acme(b, 'import', out.stdout);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /certificates installed for secure\.test/);
  t.is(readFileSync(join(b.certs, 'secure.test.pem'), 'utf8'), cert);
  t.is(readFileSync(join(b.base, 'accounts/abc/account_key.pem'), 'utf8'), 'ACCOUNT KEY');
  t.false(existsSync(join(b.base, 'certs')), "dehydrated's own copies are not handed on");
  t.is(spawnSync('stat', ['-c', '%a', join(b.certs, 'secure.test.pem')], { encoding: 'utf8' }).stdout.trim(), '600');
});

test('import (the hand-over of a pair): a newer certificate replaces the one here, an older one, one for another name or with a key not its own never does', (t) => {
  const a = tree();
  const b = tree();
  t.teardown(() => [a, b].forEach((p) => rmSync(p.dir, { recursive: true, force: true })));
  const here = pem('secure.test', 40);
  writeFileSync(join(b.certs, 'secure.test.pem'), here);
  const give = (content: string) => {
    writeFileSync(join(a.certs, 'secure.test.pem'), content);
    return acme(b, 'import', acme(a, 'export').stdout);
  };
  const older = give(pem('secure.test', 20));
  t.is(older.status, 0, older.stderr);
  t.regex(older.stdout, /secure\.test: kept the one here \(not newer than the one here\)/);
  t.is(readFileSync(join(b.certs, 'secure.test.pem'), 'utf8'), here);
  const other = pem('other.test', 90);
  const wrongName = give(other);
  t.regex(wrongName.stdout, /kept the one here \(not a certificate for secure\.test\)/);
  const newer = pem('secure.test', 90);
  const wrongKey = give(newer.slice(0, newer.indexOf('-----BEGIN PRIVATE KEY-----')) + keyOf(other));
  t.regex(wrongKey.stdout, /kept the one here \(its key does not match it\)/);
  t.is(readFileSync(join(b.certs, 'secure.test.pem'), 'utf8'), here, 'none of them replaced it');
  const ok = give(newer);
  t.is(ok.status, 0, ok.stderr);
  t.regex(ok.stdout, /certificates installed for secure\.test/);
  t.is(readFileSync(join(b.certs, 'secure.test.pem'), 'utf8'), newer);
  // A balancer with none refuses a bad one outright (nothing to keep).
  const c = tree();
  t.teardown(() => rmSync(c.dir, { recursive: true, force: true }));
  writeFileSync(join(a.certs, 'secure.test.pem'), other);
  const none = acme(c, 'import', acme(a, 'export').stdout);
  t.not(none.status, 0);
  t.regex(none.stderr, /haproxy\/secure\.test\.pem: not a certificate for secure\.test/);
  t.false(existsSync(join(c.certs, 'secure.test.pem')));
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
  // Not a bundle at all (what a shell command sent with the pair's key amounts to).
  for (const input of ['id\n', 'aWQK\n', '']) {
    const r = acme(p, 'import', input);
    t.is(r.status, 1, input);
    t.regex(r.stderr, /^silver-acme: import: standard input holds no bundle of silver-acme export\n$/, input);
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
