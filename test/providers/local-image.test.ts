import test from 'ava';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { memoryHost } from '../../src/config/host.js';
import { imageName, STRIP } from '../../src/image/strip.js';
import { loadNodeset } from '../../src/nodeset/resolve.js';
import { strip } from '../../providers/local/image.js';

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
