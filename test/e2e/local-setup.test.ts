import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { containerName } from '../../providers/local/config.js';
import { routeId } from '../../src/setup/render.js';
import { onNode, silver } from '../helpers/cli.js';
import { httpGet } from '../helpers/load.js';
import { canRunLxc, cleanLeftovers, testProviderConfig } from '../helpers/lxc.js';

const exec = promisify(execFile);
const NODESET = 'silvertest-setup';
const config = testProviderConfig('silvert2', 252);
const run = canRunLxc ? test.serial : test.serial.skip;

const dir = mkdtempSync(join(tmpdir(), 'silver-setup-'));
const env = { SILVER_HOME: join(dir, 'home') };
const file = join(dir, 'setup.conf');
writeFileSync(file, `[general]
name = ${NODESET}
base_domain = setup.test

[provider]
provider = local
bridge = silvert2
subnet = 10.213.252.0/24
proxy_port = ${config.settings['proxy_port']}

[appserver]
nodes = 2
size = ram 256MB
locations =
    http://setup.test/ hello
    http://setup.test/blog/ blog

[service:postgresql]
node_name = db.setup.test
size = ram 512MB

[balancer]
hostnames = setup.test
`);

const on = (node: string, command: string) => onNode(file, env, node, command);

test.before(async () => {
  if (canRunLxc) await cleanLeftovers(config, [NODESET]);
});
test.after.always(async () => {
  // (a keeper a failed test left ends before its nodes go)
  if (canRunLxc) await silver(['disconnect', file], env);
  if (canRunLxc) await cleanLeftovers(config, [NODESET]);
});

run('setup-node on real LXC: 4 wired nodes, the balancer answers, PostgreSQL only for app servers, a no-op re-run', async (t) => {
  const created = await silver(['create-node', file], env);
  t.is(created.code, 0, created.stderr);
  const first = await silver(['setup-node', file], env);
  t.is(first.code, 0, first.stderr + first.stdout);
  t.regex(first.stdout, /4 changed, 0 unchanged, 0 failed/);
  t.regex(first.stderr, /db\.setup\.test: service\/postgresql: changed: /);

  const nodes = JSON.parse((await silver(['list-nodes', file, '--json'], env)).stdout) as { name: string; address: string }[];
  const addr = Object.fromEntries(nodes.map((n) => [n.name, n.address]));
  const expectedConf = [
    `appserver = app1.setup.test ${addr['app1.setup.test']}`,
    `appserver = app2.setup.test ${addr['app2.setup.test']}`,
    `service.postgresql = db.setup.test ${addr['db.setup.test']}`,
    `balancer = balancer.setup.test ${addr['balancer.setup.test']}`,
  ].join('\n');
  for (const n of nodes) {
    t.is((await on(n.name, 'cat /etc/silverlining/nodeset.conf')).out.trim(), expectedConf, `${n.name}: nodeset.conf`);
    const hosts = (await on(n.name, 'cat /etc/hosts')).out;
    t.regex(hosts, /^127\.0\.0\.1 localhost$/m, `${n.name}: other lines of /etc/hosts stay`);
    for (const m of nodes) t.true(hosts.includes(`${m.address} ${m.name}`), `${n.name} resolves ${m.name}`);
    t.is((await on(n.name, `getent hosts db.setup.test | head -1 | cut -d' ' -f1`)).out.trim(), addr['db.setup.test']!);
  }

  // The balancer answers on port 80, for its host names: a backend per location, each app
  // server checked with its app's health path under the location. No app is deployed yet, so
  // every check fails (nginx answers 502) and the servers go down.
  const health = await fetch(`http://${addr['balancer.setup.test']}/.silver/balancer-health`);
  t.is(health.status, 200);
  const viaBalancer = await httpGet(addr['balancer.setup.test']!, 'other.test');
  t.is(viaBalancer.status, 404, 'an unknown host name is refused');
  const checks = (await on('balancer.setup.test', "grep 'http-check send' /etc/haproxy/haproxy.cfg")).out;
  t.deepEqual(
    checks.split('\n').map((l) => l.trim()).filter(Boolean),
    [`http-check send meth GET uri / ver HTTP/1.1 hdr Host setup.test hdr X-Silver-Backend ${routeId({ host: 'setup.test', path: '/' })}`, `http-check send meth GET uri /blog/ ver HTTP/1.1 hdr Host setup.test hdr X-Silver-Backend ${routeId({ host: 'setup.test', path: '/blog/' })}`],
    'no health_check known yet: each location is checked at its root',
  );
  const balancerStatus = async () => (await on('balancer.setup.test', '/usr/local/lib/silverlining/bin/silver-balancer status')).out;
  // (rows: BACKEND NODE ADDRESS STATE ADMIN, sorted)
  const rows = (out: string) => out.trim().split('\n').sort().map((l) => l.split(' '));
  let status = await balancerStatus();
  for (let i = 0; i < 20 && / up /.test(status); i++) {
    await new Promise((r) => setTimeout(r, 500));
    status = await balancerStatus();
  }
  const backendServers = ['app_blog_1 app1.setup.test', 'app_blog_1 app2.setup.test', 'app_hello_1 app1.setup.test', 'app_hello_1 app2.setup.test'];
  t.deepEqual(rows(status).map((r) => `${r[0]} ${r[1]}`), backendServers, status);
  t.true(rows(status).every((r) => r[2] === addr[r[1]!] && r[3] === 'stopped' && r[4] === 'ready'), status);
  const known = await httpGet(addr['balancer.setup.test']!, 'setup.test');
  t.is(known.status, 503, 'a known host name reaches its location\'s backend, whose servers fail the check (no app deployed yet)');
  t.is((await httpGet(addr['balancer.setup.test']!, 'setup.test', '/blog/x')).status, 503);
  // One app server out of rotation in every backend, and back.
  t.is((await on('balancer.setup.test', '/usr/local/lib/silverlining/bin/silver-balancer disable app1.setup.test')).code, 0);
  const disabled = rows(await balancerStatus());
  t.deepEqual(disabled.filter((r) => r[4] === 'maint').map((r) => `${r[0]} ${r[1]}`), ['app_blog_1 app1.setup.test', 'app_hello_1 app1.setup.test']);
  t.true(disabled.filter((r) => r[1] === 'app2.setup.test').every((r) => r[4] === 'ready'));
  t.is((await on('balancer.setup.test', '/usr/local/lib/silverlining/bin/silver-balancer enable app1.setup.test')).code, 0);
  t.true(rows(await balancerStatus()).every((r) => r[4] === 'ready'), 'enabled again in every backend');
  t.not((await on('balancer.setup.test', '/usr/local/lib/silverlining/bin/silver-balancer disable nosuch.setup.test')).code, 0, 'a node in no backend is an error');

  // Each app server's front proxy answers on port 80 (to the nodeset's nodes: asked from the balancer).
  t.is((await on('balancer.setup.test', `curl -s -o /dev/null -m 5 -w '%{http_code}' http://${addr['app1.setup.test']}/.silver/health`)).out, '200');

  // PostgreSQL: reachable from an app server, refused from the balancer.
  const probe = `timeout 3 python3 -c "import socket; socket.create_connection(('db.setup.test', 5432), 2)" && echo open || echo closed`;
  t.is((await on('app1.setup.test', probe)).out.trim(), 'open');
  t.is((await on('balancer.setup.test', probe)).out.trim(), 'closed');

  // Attack: the cloud's metadata address is root's alone (it hands out user data and role
  // credentials). Played inside each node: the address on its own loopback, a listener of root's
  // on it; root connects, an app's user — or nobody — is refused by the node's firewall.
  const metadata = [
    'ip addr add 169.254.169.254/32 dev lo',
    '(timeout 20 python3 -m http.server --bind 169.254.169.254 80 > /dev/null 2>&1 &)',
    'for i in $(seq 50); do (exec 3<> /dev/tcp/169.254.169.254/80) 2> /dev/null && break; sleep 0.1; done',
    'c() { if timeout 3 runuser -u "$1" -- bash -c "exec 3<> /dev/tcp/169.254.169.254/80" 2> /dev/null; then echo "$1 open"; else echo "$1 refused"; fi; }',
    'c root; c nobody; for a in app-hello app-blog; do if id -u "$a" > /dev/null 2>&1; then c "$a"; fi; done',
    'pkill -f "http.server --bind 169.254.169.254" || true; ip addr del 169.254.169.254/32 dev lo',
  ].join('\n');
  for (const node of ['app1.setup.test', 'balancer.setup.test', 'db.setup.test']) {
    const lines = (await on(node, metadata)).out.trim().split('\n');
    t.deepEqual(lines.slice(0, 2), ['root open', 'nobody refused'], node);
    t.true(lines.slice(2).every((l) => l.endsWith(' refused')), `${node}: ${lines.join(', ')}`);
  }

  // Attack: behind the balancer an app's code reaches no app server's front proxy — its own
  // (loopback, its address) nor another's — with another app's Host: root and nginx may.
  const fronts = ['127.0.0.1', addr['app1.setup.test']!, addr['app2.setup.test']!];
  const front = [
    'c() { if timeout 3 runuser -u "$1" -- bash -c "exec 3<> /dev/tcp/$2/80" 2> /dev/null; then echo "$1 $2 open"; else echo "$1 $2 refused"; fi; }',
    `for h in ${fronts.join(' ')}; do c root $h; c www-data $h; c app-hello $h; c nobody $h; done`,
  ].join('\n');
  t.deepEqual((await on('app1.setup.test', front)).out.trim().split('\n'), fronts.flatMap((h) => [`root ${h} open`, `www-data ${h} open`, `app-hello ${h} refused`, `nobody ${h} refused`]));

  // Services run only where they belong.
  const active = async (node: string, unit: string) => (await on(node, `systemctl is-active ${unit} || true`)).out.trim();
  t.is(await active('balancer.setup.test', 'haproxy'), 'active');
  t.is(await active('balancer.setup.test', 'nginx'), 'inactive');
  t.is(await active('balancer.setup.test', 'postgresql@15-main'), 'inactive');
  t.is(await active('app1.setup.test', 'nginx'), 'active');
  t.is(await active('app1.setup.test', 'haproxy'), 'inactive');
  t.is(await active('db.setup.test', 'postgresql@15-main'), 'active');
  t.is(await active('db.setup.test', 'mariadb'), 'inactive');
  // The deploy user may run silver's helpers as root and nothing else.
  t.regex((await on('app1.setup.test', 'sudo -l -U silver')).out, /\(root\) NOPASSWD: \/usr\/local\/lib\/silverlining\/bin\/\s*$/);

  const second = await silver(['setup-node', file], env);
  t.is(second.code, 0, second.stderr);
  t.regex(second.stdout, /0 changed, 4 unchanged, 0 failed/);
  t.regex(second.stdout, /no changes/);

  // Drift on one app server: its proxy stopped, another role's service running and enabled, a
  // helper's mode and the rendered proxy configuration edited. The next run finds and fixes
  // each (the no-op checks read states and sums without asking each tool), then converges.
  await on('app1.setup.test', 'systemctl stop nginx && systemctl enable -q --now haproxy && chmod 700 /usr/local/lib/silverlining/bin/silver-deploy && echo "# edited" >> /etc/nginx/conf.d/silver.conf');
  const drift = await silver(['setup-node', file], env);
  t.is(drift.code, 0, drift.stderr);
  for (const change of [
    'base: changed: stop haproxy',
    'base: changed: disable haproxy',
    'appserver: changed: /usr/local/lib/silverlining/bin/silver-deploy: mode 755, owner root:root',
    'appserver: changed: /etc/nginx/conf.d/silver.conf',
    'appserver: changed: start nginx',
  ]) {
    t.true(drift.stderr.includes(`app1.setup.test: ${change}`), `${change}\n${drift.stderr}`);
  }
  t.regex(drift.stdout, /1 changed, 3 unchanged, 0 failed/);
  t.is(await active('app1.setup.test', 'nginx'), 'active');
  t.is(await active('app1.setup.test', 'haproxy'), 'inactive');
  t.is((await on('app1.setup.test', 'systemctl is-enabled haproxy || true')).out.trim(), 'disabled');
  t.notRegex((await on('app1.setup.test', 'cat /etc/nginx/conf.d/silver.conf')).out, /# edited/);
  const converged = await silver(['setup-node', file], env);
  t.regex(converged.stdout, /0 changed, 4 unchanged, 0 failed/);

  // --dry-run shows what would change and changes nothing.
  await on('app2.setup.test', 'rm /etc/silverlining/nodeset.conf');
  const dry = await silver(['setup-node', file, '--dry-run'], env);
  t.regex(dry.stderr, /app2\.setup\.test: wire: would change: \/etc\/silverlining\/nodeset\.conf/);
  t.regex(dry.stdout, /dry run: 1 would change, 3 unchanged/);
  t.is((await on('app2.setup.test', 'test -e /etc/silverlining/nodeset.conf && echo yes || echo no')).out.trim(), 'no');
});

run('the fast path: a no-op is the probe alone; each kind of drift, made alone, is still found and fixed (the fingerprint misses it, or the probe fixes it)', async (t) => {
  type Report = { nodes: { name: string; status: string; checked?: string; layers: { layer: string; changes: string[] }[] }[] };
  const app1 = async (args: string[] = [], node = 'app1.setup.test') => {
    const t1 = Date.now();
    const r = await silver(['setup-node', file, '--json', ...args], env);
    if (Date.now() - t1 > 10000) t.log(`a setup-node of ${((Date.now() - t1) / 1000).toFixed(1)}s: ${r.stderr.split('\n').filter((l) => !/unchanged \(/.test(l)).join(' | ')}`);
    t.is(r.code, 0, r.stderr);
    const n = (JSON.parse(r.stdout) as Report).nodes.find((x) => x.name === node)!;
    return { ...n, changes: n.layers.flatMap((l) => l.changes.map((c) => `${l.layer}: ${c}`)) };
  };
  /** Runs until the node takes the fast path (a run after changes is a full one: it sees its own changes). */
  const settled = async (node = 'app1.setup.test') => {
    for (let i = 0; i < 4; i++) if ((await app1([], node)).checked === 'fingerprint') return true;
    return false;
  };
  const t0 = Date.now();
  const log = (what: string) => t.log(`${((Date.now() - t0) / 1000).toFixed(1)}s ${what}`);
  t.true(await settled(), 'a no-op run is the probe alone');
  // (the watcher stands for the walk of /etc and the helpers' folder: each drift there below is
  // still found, by its ending)
  t.is((await on('app1.setup.test', 'grep -x FP_WATCH=1 /var/lib/silverlining/setup/fingerprint; systemctl is-active silver-setup-watch.service; stat -c %s /run/silverlining/setup-watch.out; systemctl is-active silver-nft-watch.service; stat -c %s /run/silverlining/nftwatch.out; wc -w < /var/lib/silverlining/setup/nftwatch.rec')).out.trim(), 'FP_WATCH=1\nactive\n0\nactive\n0\n4', "both watchers run, silent; the firewall's records the boot, its process, its start and silver's table");
  t.is((await app1(['--full'])).checked, 'full', '--full checks everything');
  t.true(await settled());

  // [drift made on app1 (or NODE: first), the change the next run reports (null: none, a full
  // check only), by the probe]
  const cases: [string, RegExp | null, boolean][] = [
    ['db.setup.test: systemctl stop postgresql@15-main', /^service\/postgresql: start postgresql@15-main$/, false],
    ['db.setup.test: su postgres -s /bin/sh -c "echo \'host all all 0.0.0.0/0 trust\' >> /etc/postgresql/15/main/pg_hba.conf"', /^service\/postgresql: \/etc\/postgresql\/15\/main\/pg_hba\.conf$/, false],
    ['rm /etc/silverlining/nodeset.conf', /^wire: \/etc\/silverlining\/nodeset\.conf$/, false],
    ['echo "# edited" >> /etc/nginx/conf.d/silver.conf', /^appserver: \/etc\/nginx\/conf\.d\/silver\.conf$/, false],
    ['chmod 700 /usr/local/lib/silverlining/bin/silver-state', /^base: \/usr\/local\/lib\/silverlining\/bin\/silver-state: mode 755, owner root:root$/, false],
    ['systemctl stop nginx', /^appserver: start nginx$/, false],
    ['systemctl start haproxy', /^base: stop haproxy/, false],
    ['chmod 777 /var/log/silverlining/hello', /^base: \/var\/log\/silverlining\/hello: mode 750, owner app-hello:app-hello$/, false],
    ['mkdir -p /var/lib/systemd/linger && touch /var/lib/systemd/linger/silver', /^base: remove \/var\/lib\/systemd\/linger\/silver$/, false],
    // (what a deployer would leave in the deploy user's home to run at a later login: the home is root's, emptied)
    ['mkdir -p /home/silver/.config/systemd/user && touch /home/silver/.profile && chown -R silver /home/silver', /^base: emptied the deploy user's home$/, false],
    ['chmod 755 /var/lib/silverlining/home/blog', /^base: \/var\/lib\/silverlining\/home\/blog: mode 700, owner app-blog:app-blog$/, false],
    ['userdel app-blog', /^base: user app-blog$/, false],
    ['touch /var/lib/dpkg/status', null, false],
    // (the watcher gone: the probe walks /etc and the rest again, and finds nothing)
    ['systemctl stop silver-setup-watch.service', null, true],
    ['nft flush ruleset', /^base: load firewall rules$/, true],
  ];
  for (const [what, change, byProbe] of cases) {
    const [node, drift] = /^\S+: /.test(what) ? [what.split(': ')[0]!, what.slice(what.indexOf(': ') + 2)] : ['app1.setup.test', what];
    t.true(await settled(node), `${node}: settled before ${drift}`);
    t.is((await on(node, drift)).code, 0, drift);
    const r = await app1([], node);
    t.is(r.checked, byProbe ? 'fingerprint' : 'full', drift);
    if (change) t.true(r.changes.some((c) => change.test(c)), `${drift}: ${r.changes.join(' | ')}`);
    else t.deepEqual(r.changes, [], drift);
    t.true(await settled(node), `${drift}: converged`);
    log(drift);
  }
  t.is((await on('app1.setup.test', 'systemctl is-active nginx; systemctl is-active haproxy || true; id -u app-blog > /dev/null && echo user; nft list tables')).out.trim(), 'active\ninactive\nuser\ntable inet silver');
  // The deploy user's home is root's and empty; it cannot write there. An app's home is its own alone.
  t.is((await on('app1.setup.test', 'stat -c "%U %a" /home/silver; ls -A /home/silver | wc -l; su -s /bin/sh silver -c "mkdir /home/silver/.config" 2>/dev/null && echo wrote || echo refused; stat -c "%U %a" /var/lib/silverlining/home/blog')).out.trim(), 'root 755\n0\nrefused\napp-blog 700');
  t.is((await on('db.setup.test', 'grep -c trust /etc/postgresql/15/main/pg_hba.conf; stat -c "%U %a" /etc/postgresql/15/main/pg_hba.conf')).out.trim(), '0\npostgres 640', 'pg_hba.conf as silver writes it, the postgres user\'s');
});

run('setup-node: a node whose sshd is down is reported failed, the others succeed, and a re-run converges', async (t) => {
  const app2 = containerName(NODESET, 'app2.setup.test');
  await on('app2.setup.test', 'rm -f /etc/silverlining/nodeset.conf');
  await exec('lxc-attach', ['-P', '/var/lib/silverlining/lxc', '-n', app2, '--', 'systemctl', 'stop', 'ssh.service', 'ssh.socket']);
  const r = await silver(['setup-node', file, '--json'], env);
  t.is(r.code, 1);
  const report = JSON.parse(r.stdout) as { nodes: { name: string; status: string; error?: string }[] };
  const by = Object.fromEntries(report.nodes.map((n) => [n.name, n]));
  t.is(by['app2.setup.test']!.status, 'failed');
  t.regex(by['app2.setup.test']!.error!, /ECONNREFUSED|connect|closed/i);
  t.is(by['app1.setup.test']!.status, 'unchanged');
  t.not(by['db.setup.test']!.status, 'failed');
  t.not(by['balancer.setup.test']!.status, 'failed');

  await exec('lxc-attach', ['-P', '/var/lib/silverlining/lxc', '-n', app2, '--', 'systemctl', 'start', 'ssh.service']);
  const again = await silver(['setup-node', file], env);
  t.is(again.code, 0, again.stderr);
  t.regex(again.stdout, /0 failed/);
  t.regex(again.stderr, /app2\.setup\.test: wire: changed: \/etc\/silverlining\/nodeset\.conf/);
  const last = await silver(['setup-node', file], env);
  t.regex(last.stdout, /0 changed, 4 unchanged, 0 failed/);
});

run('kept connections: a re-run logs in nowhere anew, a changed pinned key is not served over a kept connection, disconnect and idle end the keeper', async (t) => {
  const keep = { ...env, SILVER_PERSIST: '30' };
  const logins = async () => {
    let n = 0;
    for (const node of ['app1.setup.test', 'app2.setup.test', 'db.setup.test', 'balancer.setup.test']) {
      const r = await exec('lxc-attach', ['-P', '/var/lib/silverlining/lxc', '-n', containerName(NODESET, node), '--', 'sh', '-c', 'journalctl -u ssh --no-pager -o cat | grep -c "Accepted publickey" || true']);
      n += Number(r.stdout.trim());
    }
    return n;
  };
  const keeperRunning = async () => (await exec('sh', ['-c', `ls ${env.SILVER_HOME}/keep/*.sock 2>/dev/null | wc -l`])).stdout.trim() !== '0';
  try {
    // The first run connects itself and leaves a keeper, which connects in the background.
    t.is((await silver(['setup-node', file], keep)).code, 0);
    for (let i = 0; i < 50 && !(await keeperRunning()); i++) await new Promise((r) => setTimeout(r, 100));
    t.true(await keeperRunning(), 'a keeper was started');
    await new Promise((r) => setTimeout(r, 2000)); // its connections are made
    const before = await logins();
    const second = await silver(['setup-node', file], keep);
    t.regex(second.stdout, /0 changed, 4 unchanged, 0 failed/);
    const out = await silver(['exec', file, '--', 'hostname'], keep);
    t.regex(out.stdout, /app1\.setup\.test: app1/);
    t.is(await logins(), before, 'the re-runs logged in nowhere anew');

    // A pinned key that no longer matches: the kept connection (made with the old key) is not
    // used; the new connection checks the pin and fails, as without a keeper.
    const pins = join(env.SILVER_HOME, 'nodesets', NODESET, 'known_hosts');
    const original = readFileSync(pins, 'utf8');
    const other = 'AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl';
    writeFileSync(pins, original.replace(/^(app1\.setup\.test\S* ssh-ed25519 )\S+/m, `$1${other}`));
    const bad = await silver(['exec', file, '--node', 'app1.setup.test', '--', 'true'], keep);
    writeFileSync(pins, original);
    t.is(bad.code, 1);
    t.regex(bad.stdout, /host key/i);

    const d = await silver(['disconnect', file], keep);
    t.regex(d.stdout, /closed the kept connections/);
    t.false(await keeperRunning(), 'disconnect ended the keeper');

    // An idle keeper ends by itself.
    await silver(['exec', file, '--', 'true'], { ...env, SILVER_PERSIST: '1' });
    for (let i = 0; i < 50 && !(await keeperRunning()); i++) await new Promise((r) => setTimeout(r, 100));
    t.true(await keeperRunning(), 'a keeper was started again');
    for (let i = 0; i < 50 && (await keeperRunning()); i++) await new Promise((r) => setTimeout(r, 200));
    t.false(await keeperRunning(), 'an idle keeper ended');
  } finally {
    await silver(['disconnect', file], env);
  }
});


run('a setup-node killed partway (silver dies while a node is between writing nginx\'s configuration and reloading it) is finished by the next run: the reload happens though the file already matches', async (t) => {
  const app1 = containerName(NODESET, 'app1.setup.test');
  const attach = (command: string) => exec('lxc-attach', ['-P', '/var/lib/silverlining/lxc', '-n', app1, '--', 'sh', '-c', command]);
  const served = async (host: string) => (await on('app1.setup.test', `curl -s -o /dev/null -m 5 -w '%{http_code}' -H 'Host: ${host}' http://127.0.0.1/`)).out;
  t.is((await silver(['setup-node', file], env)).code, 0);
  t.is(await served('alias.setup.test'), '404', 'an unknown host name: nginx\'s default server');
  // On app1, nginx -t marks that it began, then takes 3 s: silver is killed meanwhile, after the
  // node wrote the new configuration and before it could reload nginx.
  await attach('mv /usr/sbin/nginx /usr/sbin/nginx.real && printf \'%s\\n\' \'#!/bin/sh\' \'case " $* " in *" -t "*) touch /run/nginx-t-began; sleep 3 ;; esac\' \'exec /usr/sbin/nginx.real "$@"\' > /usr/sbin/nginx && chmod 755 /usr/sbin/nginx');
  const original = readFileSync(file, 'utf8');
  try {
    writeFileSync(file, original.replace('    http://setup.test/ hello\n', '    http://setup.test/ hello\n    http://alias.setup.test/ hello\n').replace('hostnames = setup.test\n', 'hostnames = setup.test alias.setup.test\n'));
    const child = spawn(process.execPath, [join(process.cwd(), 'bin/silver.js'), 'setup-node', file], { env: { ...process.env, SILVER_PERSIST: '0', ...env }, stdio: 'ignore' });
    const ended = new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_code, signal) => resolve(signal)));
    let began = false;
    for (let i = 0; i < 600 && !began; i++) {
      began = (await attach('test -e /run/nginx-t-began && echo yes || true')).stdout.trim() === 'yes';
      if (!began) await new Promise((r) => setTimeout(r, 100));
    }
    child.kill('SIGKILL');
    t.is(await ended, 'SIGKILL');
    t.true(began, 'app1 reached nginx -t');
    // The node's run ends at its next line of output (the connection is gone), before the reload:
    // its lock is free once it has.
    for (let i = 0; i < 100 && (await attach('flock -n /var/lib/silverlining/setup/lock true && echo free || true')).stdout.trim() !== 'free'; i++) await new Promise((r) => setTimeout(r, 200));
    t.regex((await on('app1.setup.test', 'cat /etc/nginx/conf.d/silver.conf')).out, /server_name alias\.setup\.test;/, 'the new configuration was written');
    t.is(await served('alias.setup.test'), '404', 'and never loaded: nginx runs the old one');
    t.is((await attach('test -s /var/lib/silverlining/setup/dirty.appserver && echo listed || true')).stdout.trim(), 'listed', 'the change is on the layer\'s list');
  } finally {
    await attach('if [ -e /usr/sbin/nginx.real ]; then mv -f /usr/sbin/nginx.real /usr/sbin/nginx; fi; rm -f /run/nginx-t-began');
  }
  // The next run: the file matches already, the follow-up happens all the same.
  const next = await silver(['setup-node', file], env);
  t.is(next.code, 0, next.stderr);
  t.true(next.stderr.includes('app1.setup.test: appserver: changed: reload nginx'), next.stderr);
  t.false(next.stderr.includes('app1.setup.test: appserver: changed: /etc/nginx/conf.d/silver.conf'), 'the file was already written');
  t.is(await served('alias.setup.test'), '502', 'nginx runs the new configuration: the host reaches its app (none deployed)');
  t.is((await attach('test -e /var/lib/silverlining/setup/dirty.appserver && echo listed || true')).stdout.trim(), '');
  const last = await silver(['setup-node', file], env);
  t.regex(last.stdout, /0 changed, 4 unchanged, 0 failed/);
  writeFileSync(file, original);
});
