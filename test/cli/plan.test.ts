import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const BIN = join(process.cwd(), 'bin/silver.js');

async function silver(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

test('silver --help lists the commands', async (t) => {
  const r = await silver(['--help']);
  t.is(r.code, 0);
  t.regex(r.stdout, /Usage: silver/);
  t.regex(r.stdout, /plan \[options\] <nodeset>/);
});

test('silver plan shows every node of the design notes nodeset', async (t) => {
  const r = await silver(['plan', 'nodesets/foobar.conf']);
  t.is(r.code, 0, r.stderr);
  for (const name of ['app1.foobar.com', 'app2.foobar.com', 'app3.foobar.com', 'mysql.foobar.com', 'db.foobar.com', 'balancer.foobar.com']) {
    t.regex(r.stdout, new RegExp(`^${name.replaceAll('.', '\\.')}\\s+\\S+`, 'm'));
  }
  t.regex(r.stdout, /^app2\.foobar\.com\s+appserver\s+2\s+ram 256MB$/m);
  t.regex(r.stdout, /http:\/\/foobar\.com\/wiki\/\s+->\s+wiki/);
  t.regex(r.stdout, /balancer hostnames: foobar\.com, baz\.com/);
  t.regex(r.stdout, /^rollout = 1, 50%: app1\.foobar\.com; then app2\.foobar\.com, app3\.foobar\.com$/m);
});

test('silver plan --json has the documented shape', async (t) => {
  const r = await silver(['plan', '--json', 'nodesets/demo.conf']);
  t.is(r.code, 0, r.stderr);
  const plan = JSON.parse(r.stdout);
  t.is(plan.name, 'demo');
  t.is(plan.rollout, null, 'no rollout key: one app server at a time');
  t.deepEqual(plan.batches, [['app1.demo.test'], ['app2.demo.test']]);
  t.deepEqual(plan.nodes, [
    { name: 'app1.demo.test', role: 'appserver', index: 1, size: 'ram 256MB' },
    { name: 'app2.demo.test', role: 'appserver', index: 2, size: 'ram 256MB' },
    { name: 'db.demo.test', role: 'service:postgresql', index: 1, size: 'ram 512MB' },
    { name: 'balancer.demo.test', role: 'balancer', index: 1, size: null },
  ]);
  t.deepEqual(plan.locations, [{ url: 'http://demo.test/', app: 'hello' }]);
  t.deepEqual(plan.hostnames, ['demo.test']);
});

test('secrets never appear in plan output, human or JSON', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'silver-plan-'));
  writeFileSync(join(dir, 'secret.txt'), 'sup3r-s3cret-value\n');
  writeFileSync(join(dir, 'user.conf'), `[provider:cloud]\nprovider = openstack\nusername = ops\npassword = pa55-w0rd-value\nsecret_file = ${join(dir, 'secret.txt')}\n`);
  writeFileSync(join(dir, 'set.conf'), '[general]\nname = s\nbase_domain = s.com\n[provider]\nname = cloud\n[appserver]\n');
  for (const args of [['plan', join(dir, 'set.conf')], ['plan', '--json', join(dir, 'set.conf')]]) {
    const r = await silver(args, { SILVERLINING_CONFIG: join(dir, 'user.conf') });
    t.is(r.code, 0, r.stderr);
    t.false(r.stdout.includes('sup3r-s3cret-value'));
    t.false(r.stdout.includes('pa55-w0rd-value'));
    t.regex(r.stdout, /\[REDACTED\]/);
  }
});

test('a bad nodeset exits 2 with one located line per error and no stack trace', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'silver-plan-'));
  writeFileSync(join(dir, 'bad.conf'), '[general]\nname = bad\nbase_domain = b.com\n[appserver]\nnodes = -1\nsize = huge\n');
  const r = await silver(['plan', join(dir, 'bad.conf')]);
  t.is(r.code, 2);
  t.is(r.stdout, '');
  const lines = r.stderr.trim().split('\n');
  t.regex(lines[0]!, /bad\.conf:5: nodes: must not be negative, got -1$/);
  t.regex(lines[1]!, /bad\.conf:6: size: must be "ram <N>MB"/);
  t.regex(lines[2]!, /^silver: 2 errors in /);
  t.is(lines.length, 3);
  t.false(r.stderr.includes('    at '));
  const verbose = await silver(['plan', '--verbose', join(dir, 'bad.conf')]);
  t.is(verbose.code, 2);
  t.true(verbose.stderr.includes('    at '));
});

test('a missing nodeset file and an unknown command exit 2', async (t) => {
  const missing = await silver(['plan', 'nodesets/no-such.conf']);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /^nodesets\/no-such\.conf: cannot read this nodeset file/);
  const unknown = await silver(['frobnicate']);
  t.is(unknown.code, 2);
  t.regex(unknown.stderr, /unknown command 'frobnicate'/);
});

test('silver plan warns about a baked image older than 30 days from its name alone (no provider call), and exits 0', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'silver-plan-'));
  writeFileSync(join(dir, 'old.conf'), '[general]\nname = old\nbase_domain = o.test\n[provider]\nprovider = ec2\nregion = eu-west-1\n[appserver]\nimage = silver-image-old-appserver-20200101T0000Z\nlocations = http://o.test/ a\n[balancer]\nimage = ami-0123456789abcdef0\n');
  const r = await silver(['plan', join(dir, 'old.conf')], { AWS_EC2_METADATA_DISABLED: 'true' });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /^silver: image silver-image-old-appserver-20200101T0000Z was baked \d+ days ago: it lacks the security updates since; bake a new one \(silver image bake \S+old\.conf --role appserver\)\n$/);
  t.regex(r.stdout, /^app1\.o\.test\s+appserver/m);
});

test("silver plan warns when apps share a host name (one browser origin: each reads the other's cookies), and only then", async (t) => {
  const r = await silver(['plan', 'nodesets/foobar.conf']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /^nodesets\/foobar\.conf: warning: apps blog \(\/\), wiki \(\/wiki\/\) share the host foobar\.com: .*cookies/m);
  t.notRegex(r.stderr, /share the host baz\.com/, 'a host of one app alone');
  const dir = mkdtempSync(join(tmpdir(), 'silver-plan-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'own.conf');
  writeFileSync(file, '[general]\nname = own\nbase_domain = own.test\n[provider]\nprovider = local\n[appserver]\nlocations =\n  http://blog.own.test/ blog\n  http://blog.own.test/admin/ blog\n  http://wiki.own.test/ wiki\n');
  const own = await silver(['plan', file]);
  t.is(own.code, 0, own.stderr);
  t.is(own.stderr, '', 'one app a host (at two paths of it): nothing to say');
});
