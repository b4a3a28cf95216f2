import test, { type ExecutionContext } from 'ava';
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

/** A test CA (key and certificate files), made once a name. */
const cas = new Map<string, { key: string; cert: string }>();
function ca(name = 'Test CA'): { key: string; cert: string } {
  let c = cas.get(name);
  if (!c) {
    const d = mkdtempSync(join(tmpdir(), 'silver-acme-ca-'));
    c = { key: join(d, 'ca.key'), cert: join(d, 'ca.crt') };
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '3650', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-keyout', c.key, '-out', c.cert], { stdio: 'ignore' });
    cas.set(name, c);
  }
  return c;
}

/**
 * A certificate for `host` ending in `days` days, with its key, as HAProxy takes it (the server's
 * certificate, the chain, the key): issued by the test CA `issuer`, or self-signed (null).
 */
function pem(host: string, days: number, key?: string, issuer: string | null = 'Test CA'): string {
  const d = mkdtempSync(join(tmpdir(), 'silver-acme-pem-'));
  try {
    if (key) writeFileSync(join(d, 'k'), key);
    else execFileSync('openssl', ['genpkey', '-algorithm', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', join(d, 'k')], { stdio: 'ignore' });
    if (issuer === null) {
      execFileSync('openssl', ['req', '-x509', '-key', join(d, 'k'), '-days', String(days), '-subj', `/CN=${host}`, '-addext', `subjectAltName=DNS:${host}`, '-out', join(d, 'c')], { stdio: 'ignore' });
      return readFileSync(join(d, 'c'), 'utf8') + readFileSync(join(d, 'k'), 'utf8');
    }
    const c = ca(issuer);
    writeFileSync(join(d, 'ext'), `subjectAltName=DNS:${host}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`);
    execFileSync('openssl', ['req', '-new', '-key', join(d, 'k'), '-subj', `/CN=${host}`, '-out', join(d, 'csr')], { stdio: 'ignore' });
    execFileSync('openssl', ['x509', '-req', '-in', join(d, 'csr'), '-CA', c.cert, '-CAkey', c.key, '-CAcreateserial', '-days', String(days), '-extfile', join(d, 'ext'), '-out', join(d, 'c')], { stdio: 'ignore' });
    return readFileSync(join(d, 'c'), 'utf8') + readFileSync(c.cert, 'utf8') + readFileSync(join(d, 'k'), 'utf8');
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
}
/** Two balancers' trees, removed after the test. */
function balancers(t: ExecutionContext): [ReturnType<typeof tree>, ReturnType<typeof tree>] {
  const both: [ReturnType<typeof tree>, ReturnType<typeof tree>] = [tree(), tree()];
  t.teardown(() => both.forEach((p) => rmSync(p.dir, { recursive: true, force: true })));
  return both;
}
/** An ACME account (dehydrated's key file) in a balancer's tree. */
function withAccount(p: ReturnType<typeof tree>): void {
  mkdirSync(join(p.base, 'accounts/abc'), { recursive: true });
  writeFileSync(join(p.base, 'accounts/abc/account_key.pem'), 'ACCOUNT KEY');
}
const keyOf = (chainAndKey: string) => chainAndKey.slice(chainAndKey.indexOf('-----BEGIN PRIVATE KEY-----'));

test('export then import on a new balancer: the account and the certificate come back, root-only', (t) => {
  const [a, b] = balancers(t);
  withAccount(a);
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
  // An export of an earlier release (dehydrated's copies with their links): those are passed over.
  const old = execFileSync('sh', ['-c', `cd ${a.base} && mkdir -p h && cp ${join(a.certs, 'secure.test.pem')} h/ && tar -czf - accounts certs --transform 's,^h,haproxy,' h | base64 -w0`], { encoding: 'utf8' });
  const c = tree();
  t.teardown(() => rmSync(c.dir, { recursive: true, force: true }));
  const r2 = acme(c, 'import', old);
  t.is(r2.status, 0, r2.stderr);
  t.is(readFileSync(join(c.certs, 'secure.test.pem'), 'utf8'), cert);
  t.false(existsSync(join(c.base, 'certs')));
  t.is(spawnSync('stat', ['-c', '%a', join(b.certs, 'secure.test.pem')], { encoding: 'utf8' }).stdout.trim(), '600');
});

test('import (the hand-over of a pair): a newer certificate replaces the one here, an older one, one for another name or with a key not its own never does', (t) => {
  const [a, b] = balancers(t);
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
    ['a link in the account', 'mkdir -p content/accounts/x && ln -s /etc/shadow content/accounts/x/account_key.pem', /'accounts\/x\/account_key\.pem' is neither a file nor a folder/],
    ['a certificate of another host', 'mkdir -p content/haproxy && echo x > content/haproxy/evil.test.pem', /'haproxy\/evil\.test\.pem' is not a certificate of this balancer/],
    ['a member outside the two folders', 'mkdir -p content/etc && echo x > content/etc/passwd', /bad member 'etc'/],
    ['a link to the folder above', 'mkdir -p content && ln -s .. content/accounts', /'accounts' is neither a file nor a folder/],
    ['a file of the account dehydrated has not', 'mkdir -p content/accounts/x && echo x > content/accounts/x/config', /bad member 'accounts\/x\/config'/],
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
  // A member below a link of the archive (accounts/a -> b, then accounts/a/x: tar writes it wherever a leads).
  const below = bundle("link = tarfile.TarInfo('accounts/a'); link.type = tarfile.SYMTYPE; link.linkname = 'b'; tf.addfile(link)\ndata = b'x'; f = tarfile.TarInfo('accounts/a/account_key.pem'); f.size = len(data); tf.addfile(f, io.BytesIO(data))");
  const r = acme(p, 'import', below);
  t.not(r.status, 0);
  t.regex(r.stderr, /'accounts\/a' is neither a file nor a folder/);
  t.false(existsSync(join(p.base, 'accounts')), 'nothing written');
  t.false(existsSync(join(p.certs, 'evil.test.pem')));
  t.false(existsSync(join(p.dir, 'etc')));
});

/** A bundle made by python: `body` adds members to the tarfile `tf` (gzip level 9), base64 on one line. */
function bundle(body: string): string {
  return execFileSync('python3', ['-c', `
import base64, io, sys, tarfile
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode='w:gz', compresslevel=9) as tf:
${body.split('\n').map((l) => `    ${l}`).join('\n')}
sys.stdout.write(base64.b64encode(buf.getvalue()).decode())
`], { encoding: 'utf8', maxBuffer: 64 << 20 });
}

test('a bundle that unpacks to more than 1 MB, or holds too many members, is refused before anything is written', (t) => {
  const p = tree();
  t.teardown(() => rmSync(p.dir, { recursive: true, force: true }));
  // (8 MB of zeros: a few KB packed)
  const bomb = bundle("data = bytes(8 << 20); f = tarfile.TarInfo('accounts/x/account_key.pem'); f.size = len(data); tf.addfile(f, io.BytesIO(data))");
  t.true(bomb.length < 64 << 10);
  const r = acme(p, 'import', bomb);
  t.is(r.status, 1);
  t.regex(r.stderr, /the bundle holds more than 1048576 bytes/);
  const many = bundle("for i in range(100):\n    d = tarfile.TarInfo('accounts/a%d' % i); d.type = tarfile.DIRTYPE; tf.addfile(d)");
  const m = acme(p, 'import', many);
  t.is(m.status, 1);
  t.regex(m.stderr, /more than 64 members/);
  t.false(existsSync(join(p.base, 'accounts')));
});

test('a certificate file with anything but its blocks (a broken block after the key, text around them) is refused: HAProxy would not load it', (t) => {
  const [a, b] = balancers(t);
  const good = pem('secure.test', 60);
  const ecParams = execFileSync('openssl', ['ecparam', '-name', 'prime256v1'], { encoding: 'utf8' });
  // (as dehydrated writes an EC key: its parameters first; taken, the parameters left out)
  writeFileSync(join(a.certs, 'secure.test.pem'), good.replace('-----BEGIN PRIVATE KEY-----', `${ecParams}-----BEGIN PRIVATE KEY-----`));
  const withParams = acme(b, 'import', acme(a, 'export').stdout);
  t.is(withParams.status, 0, withParams.stderr);
  t.is(readFileSync(join(b.certs, 'secure.test.pem'), 'utf8'), good);
  rmSync(join(b.certs, 'secure.test.pem'));
  for (const [what, content] of [
    ['a broken certificate block after the key', `${good}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n`],
    ['text after the key', `${good}# a comment\n`],
    ['two keys', `${good}${keyOf(pem('secure.test', 60))}`],
    ['two EC PARAMETERS blocks', good.replace('-----BEGIN PRIVATE KEY-----', `${ecParams}${ecParams}-----BEGIN PRIVATE KEY-----`)],
  ] as const) {
    writeFileSync(join(a.certs, 'secure.test.pem'), content);
    const r = acme(b, 'import', acme(a, 'export').stdout);
    t.is(r.status, 1, what);
    t.regex(r.stderr, /haproxy\/secure\.test\.pem: not a chain and key as HAProxy takes them/, what);
    t.false(existsSync(join(b.certs, 'secure.test.pem')), what);
  }
});

test("receive (the other balancer's hand-over): only over a certificate here, only from the same CA or a trusted one, never the account", (t) => {
  const [a, b] = balancers(t);
  withAccount(a);
  const give = (content: string) => {
    writeFileSync(join(a.certs, 'secure.test.pem'), content);
    return acme(b, 'receive', acme(a, 'export').stdout);
  };
  const first = give(pem('secure.test', 40));
  t.is(first.status, 1);
  t.regex(first.stderr, /none here yet to renew \(setup-node gives the first one\)/);
  t.false(existsSync(join(b.certs, 'secure.test.pem')));
  const here = pem('secure.test', 40);
  writeFileSync(join(b.certs, 'secure.test.pem'), here);
  for (const [what, content] of [
    ['a self-signed certificate for a hundred years', pem('secure.test', 36500, undefined, null)],
    ['one of another CA', pem('secure.test', 90, undefined, 'Other CA')],
  ] as const) {
    const r = give(content);
    t.is(r.status, 0, what);
    t.regex(r.stdout, /secure\.test: kept the one here \(not issued by the CA of the one here, nor by one this balancer trusts\)/, what);
    t.is(readFileSync(join(b.certs, 'secure.test.pem'), 'utf8'), here, what);
  }
  const renewed = pem('secure.test', 90);
  const ok = give(renewed);
  t.is(ok.status, 0, ok.stderr);
  t.regex(ok.stdout, /certificates installed for secure\.test/);
  t.is(readFileSync(join(b.certs, 'secure.test.pem'), 'utf8'), renewed);
  t.false(existsSync(join(b.base, 'accounts')), 'the account travels with silver only');
  // A session that sends nothing: no bundle, exit 1.
  const none = acme(b, 'receive', '');
  t.is(none.status, 1);
  t.regex(none.stderr, /holds no bundle/);
});

test('attack: the hook events (a validation answer, a certificate to install) are taken only from the dehydrated of a run under way, by its one-time token', (t) => {
  const p = tree();
  t.teardown(() => rmSync(p.dir, { recursive: true, force: true }));
  mkdirSync(p.base, { recursive: true, mode: 0o700 });
  const hook = (env: Record<string, string>, ...args: string[]) => spawnSync('python3', [p.script, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env } });
  const challenge = ['deploy_challenge', 'secure.test', 'tok', 'tok.keyauth'];
  const cert = ['deploy_cert', 'other.test', join(p.base, 'k'), join(p.base, 'c'), join(p.base, 'f')];
  // (a deployer through sudo: no run under way, no token; or a token guessed)
  for (const env of [{}, { SILVER_ACME_HOOK: '' }, { SILVER_ACME_HOOK: 'a'.repeat(32) }] as Record<string, string>[]) {
    for (const args of [challenge, cert]) {
      const r = hook(env, ...args);
      t.is(r.status, 1, args[0]);
      t.regex(r.stderr, /hook events are dehydrated's, from a silver-acme run under way/);
    }
  }
  // A run under way: its token file (root's, in BASE) and the same token in dehydrated's environment.
  const token = 'f'.repeat(32);
  writeFileSync(join(p.base, 'hook-token'), token, { mode: 0o600 });
  t.regex(hook({ SILVER_ACME_HOOK: 'e'.repeat(32) }, ...cert).stderr, /run under way/, 'another token');
  const r = hook({ SILVER_ACME_HOOK: token }, ...cert);
  t.is(r.status, 1);
  t.regex(r.stderr, /bad domain 'other\.test': not a host name of this balancer/, 'past the token, to its own checks');
  t.false(readFileSync(p.script, 'utf8').includes('SUDO_'), 'decided by the token, not by how it was called');
});
