import test from 'ava';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onNode, silver } from '../helpers/cli.js';
import { httpGet, startLoad } from '../helpers/load.js';
import { bringUp, eventually } from '../helpers/nodeset.js';
import { canRunLxc, cleanLeftovers, testProviderConfig } from '../helpers/lxc.js';
import { helloNodeset, helloVersion, versionOf } from '../helpers/hello.js';

// Phoenix nodes on real containers: `silver replace-node` destroys an app server under load and
// builds it again (image, setup, rewiring, the active instance copied from the other app server,
// health check, back in rotation) with zero failed requests; the only balancer is replaced with
// its downtime measured and its modes kept; a service node is refused; scaling the app servers
// down drains the one that goes, with zero failed requests.

const NODESET = 'silvertest-replace';
const config = testProviderConfig('silvert9', 245);
const run = canRunLxc ? test.serial : test.serial.skip;
const dir = mkdtempSync(join(tmpdir(), 'silver-replace-'));
const env = { SILVER_HOME: join(dir, 'home') };
const file = join(dir, 'replace.conf');
const base = helloNodeset(NODESET, 'replace.test', config)
  .replace('[appserver]\nnodes = 2', '[appserver]\nnodes = 3')
  .replace('node_name = db.replace.test\n', 'node_name = db.replace.test\nbackup = *-*-* 04:00:00\nbackup_keep = 2\n');
writeFileSync(file, base);
const A2 = 'app2.replace.test';
const BALANCER = 'balancer.replace.test';
let addr: Record<string, string> = {};
let instance = '';
/** Changes setup-node made on a node replaced from the golden image (compared with a baked one). */
let goldenChanges = 0;
const LXC = '/var/lib/silverlining/lxc';
const changesOn = (stderr: string, node: string) => stderr.split('\n').filter((l) => l.startsWith(`${node}: `) && / changed: /.test(l)).length;
/** Images this file baked (not nodes: cleanLeftovers does not see them). */
function removeImages(): void {
  if (!existsSync(LXC)) return;
  for (const n of readdirSync(LXC)) if (n.startsWith(`silver-image-${NODESET}-`)) rmSync(join(LXC, n), { recursive: true, force: true });
}

const on = async (node: string, command: string) => (await onNode(file, env, node, command)).out;

test.before(async () => {
  if (!canRunLxc) return;
  await cleanLeftovers(config, [NODESET]);
  removeImages();
  addr = await bringUp(file, env);
  const u = await silver(['update', helloVersion(dir, '1'), file, '--json'], env);
  if (u.code !== 0) throw new Error(u.stderr);
  instance = (JSON.parse(u.stdout) as { instance: string }).instance;
  await eventually('the app answers through the balancer', async () => (await httpGet(addr[BALANCER]!, 'replace.test')).status === 200);
});
test.after.always(async () => {
  if (canRunLxc) await cleanLeftovers(config, [NODESET]);
  if (canRunLxc) removeImages();
});

run('replace-node of an app server under load: zero failed requests; a new container serving the same instance with its environment, back in rotation', async (t) => {
  await on(A2, 'touch /root/old-node-marker');
  const password = (await on('db.replace.test', 'cat /var/lib/silverlining/services/postgresql/hello.password')).trim();
  const load = startLoad(addr[BALANCER]!, 'replace.test', { classify: versionOf, maxSeconds: 300 });
  await new Promise((r) => setTimeout(r, 1000));
  const r = await silver(['replace-node', file, '--node', A2, '-y', '--json'], env);
  await new Promise((r) => setTimeout(r, 1000));
  const result = await load.stop();
  t.is(r.code, 0, r.stderr.slice(-3000));
  const report = JSON.parse(r.stdout) as { ok: boolean; apps: { app: string; instance: string }[]; downtimeSeconds: number | null };
  t.true(report.ok);
  t.deepEqual(report.apps, [{ app: 'hello', instance }]);
  t.is(report.downtimeSeconds, null, 'two other app servers served meanwhile');
  t.is(result.failed, 0, `failed requests: ${result.failures.join(' | ')}`);
  t.true(result.total > 100, `only ${result.total} requests`);
  t.false(r.stdout.includes(password) || r.stderr.includes(password), 'the database password is not in the output');
  t.regex(r.stderr, /app2\.replace\.test: drained, out of rotation on balancer\.replace\.test/);
  goldenChanges = changesOn(r.stderr, A2);
  // A new container: the marker is gone, and it serves the same instance with its environment.
  t.is((await on(A2, 'test -e /root/old-node-marker && echo old || echo new')).trim(), 'new');
  t.regex(await on(A2, 'cat /var/lib/silverlining/apps/hello/active/env'), /^CONFIG_PG_HOST="db\.replace\.test"$/m);
  t.is((await on(A2, 'stat -c "%a %U" /var/lib/silverlining/apps/hello/active/env')).trim(), '640 root');
  const st = JSON.parse((await silver(['status', file, '--json'], env)).stdout) as { apps: { node: string; active: string }[] };
  t.deepEqual(st.apps.map((a) => [a.node, a.active]).sort(), [['app1.replace.test', instance], [A2, instance], ['app3.replace.test', instance]]);
  const servers = await on(BALANCER, '/usr/local/lib/silverlining/bin/silver-balancer status');
  t.regex(servers, /app_hello_1 app2\.replace\.test \S+ up ready/);
  // The new node serves requests itself (its nginx, the instance, the database).
  t.regex(await on(A2, 'curl -s -H "Host: replace.test" http://127.0.0.1/'), /version 1,/);
});

run('an update after a replacement reaches every app server, the new one included', async (t) => {
  const u = await silver(['update', helloVersion(dir, '2'), file], env);
  t.is(u.code, 0, u.stderr.slice(-2000));
  t.regex(await on(A2, 'curl -s -H "Host: replace.test" http://127.0.0.1/'), /version 2,/);
});

run('replace-node of the only balancer: announced, the downtime measured, its modes back from the nodeset\'s record', async (t) => {
  t.is((await silver(['maintenance', 'on', file, '--read-only', '--retry-after', '9'], env)).code, 0);
  const r = await silver(['replace-node', file, '--node', BALANCER, '-y'], env);
  t.is(r.code, 0, r.stderr.slice(-3000));
  t.regex(r.stderr, /balancer\.replace\.test is the only balancer of silvertest-replace: the site is down while it is replaced/);
  t.regex(r.stdout, /balancer\.replace\.test \(balancer\) replaced in [\d.]+ s\nthe site was down for [\d.]+ s/);
  const post = await httpGet(addr[BALANCER]!, 'replace.test', '/', 'POST', 'x');
  t.is(post.status, 503, 'read-only is back on the new balancer');
  t.is((await httpGet(addr[BALANCER]!, 'replace.test')).status, 200);
  t.is((await silver(['maintenance', 'off', file], env)).code, 0);
  // (the example app answers POST with 501: it reached the app)
  t.is((await httpGet(addr[BALANCER]!, 'replace.test', '/', 'POST', 'x')).status, 501);
});

const DB = 'db.replace.test';
const visits = async () => Number((await on(DB, "runuser -u postgres -- psql -d hello -tAc 'select count(*) from visits'")).trim());

run('replace-node of the database node: refused without a verified backup; with one, the app in maintenance, a fresh dump, a new node, the data intact and the app serving', async (t) => {
  await on(DB, 'touch /root/old-node-marker');
  const refused = await silver(['replace-node', file, '--node', DB, '-y'], env);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /no backup verified by a restore in the last 7 days for hello: run silver backup/);
  t.is((await on(DB, 'test -e /root/old-node-marker && echo old || echo new')).trim(), 'old', 'nothing was replaced');
  t.is((await silver(['backup', file], env)).code, 0);
  const v = await silver(['backup', '--verify', file], env);
  t.is(v.code, 0, v.stderr.slice(-2000));
  // Visits made after the verified backup are in the fresh dump the replacement takes.
  for (let i = 0; i < 5; i++) t.is((await httpGet(addr[BALANCER]!, 'replace.test')).status, 200);
  const before = await visits();
  const password = (await on(DB, 'cat /var/lib/silverlining/services/postgresql/hello.password')).trim();
  const r = await silver(['replace-node', file, '--node', DB, '-y', '--json'], env);
  t.is(r.code, 0, r.stderr.slice(-3000));
  const report = JSON.parse(r.stdout) as { ok: boolean; restored: { app: string; stamp: string; rows: number }[] };
  t.true(report.ok);
  t.deepEqual(report.restored.map((x) => x.app), ['hello']);
  t.regex(r.stderr, /hello in maintenance on balancer\.replace\.test/);
  t.regex(r.stderr, /hello: fresh dump \S+ taken/);
  t.false(r.stdout.includes(password) || r.stderr.includes(password), 'the password is not in the output');
  t.is((await on(DB, 'test -e /root/old-node-marker && echo old || echo new')).trim(), 'new', 'a new container');
  t.is(await visits(), before, 'every visit is there');
  t.is((await on(DB, 'cat /var/lib/silverlining/services/postgresql/hello.password')).trim(), password, 'the same password: the app servers connect as before');
  const after = await httpGet(addr[BALANCER]!, 'replace.test');
  t.is(after.status, 200, 'serving again, out of maintenance');
  t.is(await visits(), before + 1);
});

run('scheduled backups (on the rebuilt database node): a timer, each dump copied to the balancer, the newest 2 kept on both; --pull fetches them and they verify; the copy key runs nothing else', async (t) => {
  const DBN = 'db.replace.test';
  t.is((await on(DBN, 'systemctl is-enabled silver-backup.timer; systemctl is-active silver-backup.timer')).trim(), 'enabled\nactive');
  t.regex(await on(DBN, 'systemctl cat silver-backup.timer'), /^OnCalendar=\*-\*-\* 04:00:00$/m);
  t.is((await on(DBN, 'stat -c "%a %U" /etc/silverlining/backup.key')).trim(), '600 root');
  for (let i = 0; i < 3; i++) {
    const r = await onNode(file, env, DBN, 'systemctl start silver-backup.service && journalctl -u silver-backup.service -n 3 --no-pager -o cat');
    t.is(r.code, 0, r.out);
    await new Promise((r) => setTimeout(r, 1100));
  }
  const here = (await on(DBN, 'cd /var/lib/silverlining/backups/hello && ls && sha256sum *.pgdump')).trim();
  const copied = (await on(BALANCER, 'cd /var/lib/silverlining/backup-copies/db.replace.test/hello && ls && sha256sum *.pgdump')).trim();
  t.is(here.split('\n').filter((l) => /\.pgdump$/.test(l) && !/\s/.test(l)).length, 2, `kept 2: ${here}`);
  t.is(copied, here, 'the copies are the same files, summed alike');
  t.is((await on(BALANCER, 'stat -c "%a %U" /var/lib/silverlining/backup-copies')).trim(), '700 silver-backup');
  // The key may only hand in a file: any other command is refused.
  const other = await onNode(file, env, DBN, `ssh -i /etc/silverlining/backup.key -o IdentitiesOnly=yes -o UserKnownHostsFile=/etc/silverlining/backup.known_hosts -o BatchMode=yes silver-backup@${addr[BALANCER]} id 2>&1; echo "rc=$?"`);
  t.notRegex(other.out, /uid=/);
  t.regex(other.out, /usage: put NODE DB FILE SIZE SHA256 KEEP[\s\S]*rc=1/);

  const pull = await silver(['backup', '--pull', file, '--json'], env);
  t.is(pull.code, 0, pull.stderr);
  const pulled = JSON.parse(pull.stdout) as { backups: { app: string; ok: boolean; stamp: string }[] };
  t.deepEqual(pulled.backups.map((b) => [b.app, b.ok]), [['hello', true], ['hello', true]]);
  t.regex((await silver(['backup', '--pull', file], env)).stdout, /every scheduled backup is here already/);
  const v = await silver(['backup', '--verify', file], env);
  t.is(v.code, 0, v.stderr.slice(-2000));

  // The database node gone: the copies on the balancer are pulled instead, whole and summed.
  const elsewhere = join(dir, 'elsewhere');
  spawnSync('lxc-stop', ['-n', 's-silvertest-replace-db-replace-test', '-P', LXC]);
  try {
    const fromCopies = await silver(['backup', '--pull', file, '--to', elsewhere, '--json'], env);
    t.is(fromCopies.code, 0, fromCopies.stderr);
    const got = JSON.parse(fromCopies.stdout) as { backups: { ok: boolean; sha256: string; stamp: string }[]; notes: string[] };
    t.deepEqual(got.backups.map((b) => b.ok), [true, true]);
    t.true(got.notes.some((n) => /db\.replace\.test cannot be reached: its dumps come from the copies on balancer\.replace\.test/.test(n)), got.notes.join('; '));
    t.deepEqual(got.backups.map((b) => b.stamp).sort(), pulled.backups.map((b) => b.stamp).sort(), 'the same dumps');
    const listed = await silver(['backups', file, '--from', elsewhere], env);
    t.regex(listed.stdout, /hello/);
  } finally {
    t.is((await silver(['create-node', file], env)).code, 0, 'the database node starts again');
  }
});

run('image bake: an app server baked without its identity, keys, apps, state or logs; a node replaced from it needs fewer setup changes and serves', async (t) => {
  const password = (await on('db.replace.test', 'cat /var/lib/silverlining/services/postgresql/hello.password')).trim();
  const b = await silver(['image', 'bake', file, '--role', 'appserver', '--json'], env);
  t.is(b.code, 0, b.stderr);
  const rec = JSON.parse(b.stdout) as { name: string; packages: string[]; built: string; from: string };
  t.regex(rec.name, /^silver-image-silvertest-replace-appserver-\d{8}T\d{4}Z$/);
  t.is(rec.from, 'app1.replace.test');
  t.true(rec.packages.some((p) => /^nginx /.test(p)), 'its packages are recorded');
  const root = join(LXC, rec.name, 'rootfs');
  for (const gone of ['etc/ssh/ssh_host_ed25519_key', 'root/.ssh/authorized_keys', 'home/silver/.ssh/authorized_keys']) t.false(existsSync(join(root, gone)), gone);
  for (const empty of ['var/lib/silverlining/apps', 'var/lib/silverlining/state', 'var/log/journal']) t.deepEqual(existsSync(join(root, empty)) ? readdirSync(join(root, empty)) : [], [], empty);
  t.is(readFileSync(join(root, 'etc/machine-id'), 'utf8'), '');
  t.is(spawnSync('grep', ['-rIlqs', '--', password, root]).status, 1, "the app's database password is nowhere in the image");
  t.true(existsSync(join(root, 'etc/nginx/nginx.conf')) && existsSync(join(root, 'usr/local/lib/silverlining/bin/silver-deploy')), 'what setup made stays');

  writeFileSync(file, readFileSync(file, 'utf8').replace('[appserver]\nnodes = 3\n', `[appserver]\nnodes = 3\nimage = ${rec.name}\n`));
  const r = await silver(['replace-node', file, '--node', 'app1.replace.test', '-y'], env);
  t.is(r.code, 0, r.stderr.slice(-3000));
  const baked = changesOn(r.stderr, 'app1.replace.test');
  t.true(baked < goldenChanges, `setup changes from the baked image ${baked}, from the golden one ${goldenChanges}`);
  t.regex(await on('app1.replace.test', 'curl -s -H "Host: replace.test" http://127.0.0.1/'), /version 2,/);
  t.not((await on('app1.replace.test', 'cat /etc/ssh/ssh_host_ed25519_key.pub')).trim(), '', 'its own host key');
});

run('replace-node refuses an unknown node with exit 2, changing nothing', async (t) => {
  const unknown = await silver(['replace-node', file, '--node', 'nope.replace.test', '-y'], env);
  t.is(unknown.code, 2);
  t.regex(unknown.stderr, /no node nope\.replace\.test in nodeset silvertest-replace/);
});

run('scale down 3 → 2 app servers under load: delete-node --orphans drains the one that goes, rewires the rest; zero failed requests', async (t) => {
  writeFileSync(file, readFileSync(file, 'utf8').replace('[appserver]\nnodes = 3', '[appserver]\nnodes = 2'));
  const load = startLoad(addr[BALANCER]!, 'replace.test', { classify: versionOf, maxSeconds: 300 });
  await new Promise((r) => setTimeout(r, 1000));
  const r = await silver(['delete-node', file, '--orphans', '-y'], env);
  await new Promise((r) => setTimeout(r, 1000));
  const result = await load.stop();
  t.is(r.code, 0, r.stderr.slice(-3000));
  t.regex(r.stderr, /app3\.replace\.test: drained/);
  t.is(result.failed, 0, `failed requests: ${result.failures.join(' | ')}`);
  t.true(result.total > 50, `only ${result.total} requests`);
  const servers = await on(BALANCER, '/usr/local/lib/silverlining/bin/silver-balancer status');
  t.notRegex(servers, /app3/, 'the balancer no longer lists it');
  t.regex(servers, /app2\.replace\.test \S+ up ready/);
});
