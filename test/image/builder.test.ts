import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { memoryHost } from '../../src/config/host.js';
import { namedImageWarnings, oldImageWarning } from '../../src/image/age.js';
import { asRoot, builderName, builderNodeset, builderOf, isBuilder, leftBehind, recordArgv, stripArgv, stripScript } from '../../src/image/builder.js';
import { imageName, parseImageName, STRIP, stripPatterns } from '../../src/image/strip.js';
import { loadNodeset } from '../../src/nodeset/resolve.js';
import { strip } from '../../providers/local/image.js';

// The pieces of a cloud bake: the builder's name and nodeset, the commands it gets, the strip
// script (the same outcome as the local provider's strip, on one tree), and image names and ages.

const FILES: Record<string, string> = {
  'etc/ssh/ssh_host_ed25519_key': 'k', 'etc/ssh/ssh_host_rsa_key.pub': 'p', 'etc/ssh/sshd_config': 'keep',
  'root/.ssh/authorized_keys': 'a', 'home/silver/.ssh/authorized_keys': 'a', 'home/admin/.ssh/authorized_keys': 'a',
  'home/admin/.profile': 'keep', 'home/debian/.ssh/authorized_keys': 'keep',
  'var/lib/silverlining/apps/hello/instances/hello.2026-12-01_001/env': "CONFIG_PG_PASSWORD='x'",
  'var/lib/silverlining/state/lock': 'l', 'etc/silverlining/backup.key': 'k', 'etc/silverlining/nodeset.conf': 'keep',
  'etc/silverlining/authorized_keys/silver': 'a', 'etc/silverlining/silver-image.json': 'keep',
  'etc/systemd/system/silver-hello.2026-12-01_001.service': 'u', 'etc/systemd/system/nginx.service.d/x.conf': 'keep',
  'var/log/journal/abc/system.journal': 'j', 'var/log/dpkg.log': 'l', 'var/log/cloud-init.log': 'l', 'var/log/apt/history.log': 'keep',
  'var/lib/cloud/instances/i-0abc/user-data.txt': 'ed25519_private', 'var/lib/cloud/instance': 'l',
  'etc/haproxy/silver-modes.map': 'm', 'etc/haproxy/haproxy.cfg': 'keep', 'etc/haproxy/certs/shop.test.pem': 'k', 'etc/haproxy/silver-default.pem': 'k',
  'usr/local/lib/silverlining/bin/silver-deploy': 'keep', 'tmp/x': 'x', 'var/tmp/y z': 'x', 'etc/machine-id': 'abcdef',
};

function tree(): string {
  const root = mkdtempSync(join(tmpdir(), 'silver-strip-'));
  for (const [rel, text] of Object.entries(FILES)) {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), text);
  }
  return root;
}

/** Every file and folder under root, with the content of files. */
function contents(root: string, rel = ''): string[] {
  return readdirSync(join(root, rel), { withFileTypes: true }).flatMap((e) => {
    const path = rel ? `${rel}/${e.name}` : e.name;
    return e.isDirectory() ? [`${path}/`, ...contents(root, path)] : [`${path} ${readFileSync(join(root, path), 'utf8')}`];
  });
}

test('the strip script leaves a tree as the local provider\'s strip does, plus the admin user\'s keys', (t) => {
  const local = tree();
  const remote = tree();
  t.teardown(() => [local, remote].forEach((d) => rmSync(d, { recursive: true, force: true })));
  strip(local);
  rmSync(join(local, 'home/admin/.ssh/authorized_keys'));
  const script = join(remote, '..', `${remote.split('/').pop()}.sh`);
  writeFileSync(script, stripScript());
  t.teardown(() => rmSync(script, { force: true }));
  execFileSync('sh', [script, remote, ...stripPatterns('admin')]);
  t.deepEqual(contents(remote), contents(local));
  for (const [rel, text] of Object.entries(FILES)) if (rel !== 'etc/machine-id') t.is(existsSync(join(remote, rel)), text === 'keep', rel);
  t.is(readFileSync(join(remote, 'etc/machine-id'), 'utf8'), '');
  for (const kept of ['var/lib/silverlining/apps', 'var/lib/cloud', 'var/log/journal', 'tmp', 'var/tmp', 'etc/haproxy/certs']) t.deepEqual(readdirSync(join(remote, kept)), [], `${kept} stays, empty`);
});

test('the strip script refuses absolute and .. patterns, and does not follow a folder that is a link', (t) => {
  const root = tree();
  const outside = mkdtempSync(join(tmpdir(), 'silver-strip-outside-'));
  t.teardown(() => [root, outside].forEach((d) => rmSync(d, { recursive: true, force: true })));
  writeFileSync(join(outside, 'precious'), 'keep');
  rmSync(join(root, 'tmp'), { recursive: true });
  symlinkSync(outside, join(root, 'tmp'));
  const run = (...patterns: string[]) => {
    try {
      execFileSync('sh', ['-s', '--', root, ...patterns], { input: stripScript(), stdio: ['pipe', 'pipe', 'pipe'] });
      return 0;
    } catch (e) {
      return (e as { status: number }).status;
    }
  };
  t.is(run('tmp/'), 0);
  t.true(existsSync(join(outside, 'precious')), 'a linked folder is not emptied');
  t.is(run('/etc/ssh/ssh_host_*'), 2);
  t.is(run('etc/../../x'), 2);
  t.true(existsSync(join(root, 'etc/ssh/ssh_host_ed25519_key')), 'a refused pattern stops the strip before anything');
});

test('the builder\'s commands: exact argv, through sudo for a cloud admin user, as root otherwise', (t) => {
  t.deepEqual(stripArgv('debian'), ['sudo', '-n', 'sh', '-s', '--', '/', ...STRIP, 'home/debian/.ssh/authorized_keys']);
  t.deepEqual(stripArgv('root'), ['sh', '-s', '--', '/', ...STRIP]);
  t.deepEqual(recordArgv('admin'), ['sudo', '-n', 'tee', '/etc/silverlining/silver-image.json']);
  t.deepEqual(asRoot('root', ['true']), ['true']);
  t.true(STRIP.includes('var/lib/cloud/'), "cloud-init's record of the builder (its user data holds the host key) goes");
});

test('the builder: a node of the nodeset by a reserved name, the tier\'s size, no image, TLS, virtual address or backups of the nodeset', (t) => {
  const ns = loadNodeset('/n/b.conf', memoryHost({
    '/n/b.conf': '[general]\nname = b\nbase_domain = b.test\n[appserver]\nnodes = 2\nsize = ram 1GB\nimage = silver-image-b-appserver-20261202T1510Z\nlocations = http://b.test/ a\n[service:postgresql]\nbackup = daily\n[balancer]\nnodes = 2\nvirtual_address = 10.213.0.5\n',
  }));
  ns.tls = { mode: 'acme', hosts: ['b.test'], hsts: null, acme: { directory: 'https://acme.test/dir', email: null, ca: null }, pem: null };
  t.truthy(ns.virtualAddress && ns.tls && ns.backupSchedules);
  const b = builderNodeset(ns, 'appserver');
  t.deepEqual(b.nodes, [{ name: builderName('appserver'), role: 'appserver', index: 1, size: { kind: 'ram', mb: 1024 } }]);
  t.regex(builderName('appserver'), /^silver-builder-appserver-[0-9a-z]+-\d+\.invalid$/);
  t.is(builderName('balancer', { machine: 'c0ffee', pid: 42 }), 'silver-builder-balancer-c0ffee-42.invalid');
  t.is(b.virtualAddress, undefined);
  t.is(b.tls, undefined);
  t.is(b.backupSchedules, undefined);
  t.is(b.name, 'b');
  t.deepEqual(b.locations, ns.locations);
  t.deepEqual(b.provider, ns.provider);
  t.is(builderNodeset(ns, 'balancer').nodes[0]!.name, builderName('balancer'));
  t.true(isBuilder(builderName('balancer')));
  t.true(isBuilder('silver-builder-balancer.invalid'), "an earlier release's name");
  t.deepEqual(builderOf('silver-builder-balancer-c0ffee-42.invalid'), { role: 'balancer', owner: { machine: 'c0ffee', pid: 42 } });
  t.deepEqual(builderOf('silver-builder-appserver.invalid'), { role: 'appserver', owner: null });
  t.is(builderOf('app1.b.test'), null);
  const alive = (pid: number) => pid === 42;
  t.true(leftBehind('silver-builder-appserver-c0ffee-43.invalid', alive, 'c0ffee'), "this machine's, its process gone");
  t.false(leftBehind('silver-builder-appserver-c0ffee-42.invalid', alive, 'c0ffee'), "this machine's, its process alive");
  t.false(leftBehind('silver-builder-appserver-beef-43.invalid', alive, 'c0ffee'), "another machine's");
  t.false(leftBehind('silver-builder-appserver-unknown-43.invalid', alive, 'unknown'), 'no machine id: nothing is known');
  t.true(leftBehind('silver-builder-appserver.invalid', alive, 'c0ffee'), "an earlier release's");
  t.false(isBuilder('app1.b.test'));
  t.false(isBuilder('silver-builder-appserver.invalid.example.com'));
});

test('image names give back their nodeset, role and bake time; other names are not baked images', (t) => {
  const name = imageName('my-shop', 'balancer', new Date('2026-12-02T15:10:42Z'));
  t.deepEqual(parseImageName(name), { name, nodeset: 'my-shop', role: 'balancer', built: '2026-12-02T15:10:00.000Z' });
  t.deepEqual(parseImageName(`${name}.qcow2`), { name, nodeset: 'my-shop', role: 'balancer', built: '2026-12-02T15:10:00.000Z' });
  for (const other of ['debian-12', 'ami-0123456789abcdef0', 'silver-image-x-service:mysql-20261202T1510Z', 'silver-image-x-appserver-20261302T1510Z']) t.is(parseImageName(other), null, other);
});

test('plan\'s image warnings come from the names alone: a baked image older than 30 days, of the provider or a tier', (t) => {
  const now = Date.parse('2027-01-10T00:00:00Z');
  const ns = loadNodeset('/n/p.conf', memoryHost({
    '/n/p.conf': '[general]\nname = p\nbase_domain = p.test\n[provider]\nprovider = ec2\nimage = silver-image-p-balancer-20261201T0000Z\n[appserver]\nnodes = 2\nimage = silver-image-p-appserver-20261225T0000Z\nlocations = http://p.test/ a\n[balancer]\n',
  }));
  t.deepEqual(namedImageWarnings(ns, now), ['silver: image silver-image-p-balancer-20261201T0000Z was baked 40 days ago: it lacks the security updates since; bake a new one (silver image bake /n/p.conf --role balancer)']);
  t.is(oldImageWarning('x', { name: 'x', nodeset: 'p', role: 'appserver', built: '2026-12-11T00:00:00Z' }, now, '/n/p.conf'), null, '30 days is not old yet');
});
