import test from 'ava';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { memoryHost } from '../../src/config/host.js';
import { imageName, STRIP } from '../../src/image/strip.js';
import { loadNodeset } from '../../src/nodeset/resolve.js';
import { installedPackages, strip } from '../../providers/local/image.js';
import { lstatSync, readlinkSync, symlinkSync } from 'node:fs';

// What a baked image keeps and loses (the local provider's strip over a made-up root), and the
// nodeset's per-tier image.

test('strip removes identity, secrets, apps, state and logs, keeps folders it empties and everything setup made', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'silver-strip-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const files = {
    'etc/ssh/ssh_host_ed25519_key': 'k', 'etc/ssh/ssh_host_ed25519_key.pub': 'p', 'etc/ssh/sshd_config': 'keep',
    'root/.ssh/authorized_keys': 'a', 'home/silver/.ssh/authorized_keys': 'a',
    'var/lib/silverlining/apps/hello/instances/hello.2026-12-01_001/env': "CONFIG_PG_PASSWORD='x'",
    'var/lib/silverlining/state/lock': 'l', 'var/lib/silverlining/services/postgresql/hello.password': 'pw',
    'etc/silverlining/backup.key': 'k', 'etc/silverlining/nodeset.conf': 'keep',
    'etc/systemd/system/silver-hello.2026-12-01_001.service': 'u', 'etc/systemd/system/nginx.service.d/x.conf': 'keep',
    'var/log/journal/abc/system.journal': 'j', 'var/log/dpkg.log': 'l', 'var/log/apt/history.log': 'keep',
    'etc/haproxy/silver-modes.map': 'm', 'etc/haproxy/haproxy.cfg': 'keep', 'etc/machine-id': 'abcdef',
    'usr/local/lib/silverlining/bin/silver-deploy': 'keep', 'tmp/x': 'x',
    // (a balancer's ACME account and certificate keys, the pair's key; the apps' and the deploy user's homes)
    'var/lib/silverlining/acme/accounts/aHR0cHM6/account_key.pem': 'k', 'var/lib/silverlining/acme/certs/secure.test/privkey.pem': 'k',
    'etc/silverlining/acme-peer.key': 'k', 'etc/silverlining/acme-peer.known': 'h', 'etc/silverlining/acme.conf': 'c',
    'var/lib/silverlining/home/hello/.netrc': 'machine x password y', 'home/silver/.config/systemd/user/x.service': 'u', 'home/silver/.profile': 'p',
    'etc/keepalived/keepalived.conf': 'k',
  };
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), text);
  }
  strip(root);
  for (const [rel, text] of Object.entries(files)) {
    if (rel === 'etc/machine-id') continue;
    t.is(existsSync(join(root, rel)), text === 'keep', rel);
  }
  t.is(readFileSync(join(root, 'etc/machine-id'), 'utf8'), '');
  for (const kept of ['var/lib/silverlining/apps', 'var/lib/silverlining/state', 'var/log/journal', 'tmp']) t.deepEqual(readdirSync(join(root, kept)), [], `${kept} stays, empty`);
  t.true(STRIP.every((p) => !p.startsWith('/') && !p.includes('..')));
});

test('image names carry the bake time; [appserver] and [balancer] take image =, checked', (t) => {
  t.is(imageName('shop', 'appserver', new Date('2026-12-02T15:10:42Z')), 'silver-image-shop-appserver-20261202T1510Z');
  const ns = loadNodeset('/n/i.conf', memoryHost({ '/n/i.conf': '[general]\nname = i\nbase_domain = i.test\n[appserver]\nnodes = 2\nimage = silver-image-i-appserver-20261202T1510Z\nlocations = http://i.test/ a\n[balancer]\n' }));
  t.deepEqual(ns.nodes.map((n) => [n.name, n.image ?? null]), [['app1.i.test', 'silver-image-i-appserver-20261202T1510Z'], ['app2.i.test', 'silver-image-i-appserver-20261202T1510Z'], ['balancer.i.test', null]]);
  t.throws(() => loadNodeset('/n/j.conf', memoryHost({ '/n/j.conf': '[general]\nname = j\nbase_domain = j.test\n[appserver]\nimage = x; rm -rf /\nlocations = http://j.test/ a\n' })), { message: /\/n\/j\.conf:5: image: "x; rm -rf \/" is not an image name/ });
});

test('attack: the strip runs as this machine\'s root on a node\'s copy and follows no link the node planted; the packages are read from dpkg\'s file, no program of the copy runs', (t) => {
  const base = mkdtempSync(join(tmpdir(), 'silver-strip-'));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  const root = join(base, 'rootfs');
  const host = join(base, 'host'); // (stands for this machine's own files)
  for (const d of ['root/.ssh', 'keep', 'etc', 'tmpdir']) mkdirSync(join(host, d), { recursive: true });
  writeFileSync(join(host, 'root/.ssh/authorized_keys'), 'host root key');
  writeFileSync(join(host, 'keep/file'), 'host file');
  writeFileSync(join(host, 'etc/machine-id'), 'host id');
  writeFileSync(join(host, 'tmpdir/x'), 'host tmp');
  mkdirSync(join(root, 'home/silver'), { recursive: true });
  mkdirSync(join(root, 'etc'), { recursive: true });
  mkdirSync(join(root, 'var/lib/silverlining'), { recursive: true });
  // ~/.ssh -> this machine's /root/.ssh; /tmp -> a folder of this machine; machine-id -> a file;
  // a whole folder of STRIP replaced by a link
  symlinkSync(join(host, 'tmpdir'), join(root, 'tmp'));
  symlinkSync(join(host, 'etc/machine-id'), join(root, 'etc/machine-id'));
  symlinkSync(join(host, 'keep'), join(root, 'var/lib/silverlining/acme'));
  strip(root);
  t.is(readFileSync(join(host, 'root/.ssh/authorized_keys'), 'utf8'), 'host root key');
  t.is(readFileSync(join(host, 'keep/file'), 'utf8'), 'host file');
  t.is(readFileSync(join(host, 'etc/machine-id'), 'utf8'), 'host id');
  t.is(readFileSync(join(host, 'tmpdir/x'), 'utf8'), 'host tmp');
  // (the links themselves are gone; machine-id is an empty file of the copy's own)
  t.false(lstatSync(join(root, 'etc/machine-id')).isSymbolicLink());
  t.is(readFileSync(join(root, 'etc/machine-id'), 'utf8'), '');
  t.throws(() => readlinkSync(join(root, 'var/lib/silverlining/acme')));
  // A folder on the way to what the strip removes that is a link (~/.ssh -> this machine's
  // /root/.ssh; /var/lib/silverlining moved elsewhere, relatively): no image is made at all —
  // neither removing through the link nor leaving the secrets behind it.
  symlinkSync(join(host, 'root/.ssh'), join(root, 'home/silver/.ssh'));
  t.throws(() => strip(root), { message: "the copy's /home/silver/.ssh is a link: no image is made that could keep what the strip removes" });
  t.is(readFileSync(join(host, 'root/.ssh/authorized_keys'), 'utf8'), 'host root key');
  rmSync(join(root, 'home/silver/.ssh'));
  mkdirSync(join(root, 'data/sl/apps/blog'), { recursive: true });
  writeFileSync(join(root, 'data/sl/apps/blog/env'), 'SECRET=1');
  rmSync(join(root, 'var/lib/silverlining'), { recursive: true });
  symlinkSync('../../data/sl', join(root, 'var/lib/silverlining'));
  t.throws(() => strip(root), { message: /the copy's \/var\/lib\/silverlining is a link/ });
  // dpkg's status file of the copy: installed packages only
  mkdirSync(join(root, 'var/lib/dpkg'), { recursive: true });
  writeFileSync(join(root, 'var/lib/dpkg/status'), 'Package: nginx\nStatus: install ok installed\nVersion: 1.22.1-9\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n\nPackage: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b2\nDescription: x\n y\n');
  t.deepEqual(installedPackages(root), ['bash 5.2.15-2+b2', 'nginx 1.22.1-9']);
  rmSync(join(root, 'var/lib/dpkg/status'));
  symlinkSync(join(host, 'keep/file'), join(root, 'var/lib/dpkg/status'));
  t.deepEqual(installedPackages(root), [], 'a status file that is a link is not read');
  t.false(readFileSync(new URL('../../providers/local/image.js', import.meta.url), 'utf8').includes("run(['chroot'"));
});
