import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onNode, silver } from '../helpers/cli.js';
import { httpGet } from '../helpers/load.js';
import { canRunLxc, cleanLeftovers, testProviderConfig } from '../helpers/lxc.js';

const NODESET = 'silvertest-mysql';
const config = testProviderConfig('silvert4', 254);
const run = canRunLxc ? test.serial : test.serial.skip;
const dir = mkdtempSync(join(tmpdir(), 'silver-mysql-'));
const env = { SILVER_HOME: join(dir, 'home') };
const file = join(dir, 'mysql.conf');
writeFileSync(file, `[general]
name = ${NODESET}
base_domain = mysql.test
[provider]
provider = local
bridge = silvert4
subnet = 10.213.254.0/24
proxy_port = ${config.settings['proxy_port']}
[appserver]
locations = http://counter.test/ counter
[service:mysql]
`);

const on = async (node: string, command: string) => (await onNode(file, env, node, command)).out;

test.before(async () => {
  if (canRunLxc) await cleanLeftovers(config, [NODESET]);
});
test.after.always(async () => {
  if (canRunLxc) await cleanLeftovers(config, [NODESET]);
});

run('MariaDB for real: one app server, a MySQL node, an app whose update_fetch is a script, a user confined to its database', async (t) => {
  t.is((await silver(['create-node', file], env)).code, 0);
  const setup = await silver(['setup-node', file], env);
  t.is(setup.code, 0, setup.stdout + setup.stderr);
  t.regex(setup.stderr, /mysql\.mysql\.test: service\/mysql: changed: \/etc\/mysql\/mariadb\.conf\.d\/60-silver\.cnf/);
  t.is((await on('mysql.mysql.test', 'systemctl is-active mariadb')).trim(), 'active');
  t.regex(await on('mysql.mysql.test', 'ss -ltn'), /10\.213\.254\.\d+:3306/, 'MariaDB listens on the private address');

  const u = await silver(['update', 'test/fixtures/apps/counter-mysql', file], env);
  t.is(u.code, 0, u.stderr);
  t.regex(u.stderr, /update_fetch script:python3 migrate\.py \(primary\) ok/);
  const nodes = JSON.parse((await silver(['list-nodes', file, '--json'], env)).stdout) as { name: string; address: string }[];
  const app = nodes.find((n) => n.name === 'app1.mysql.test')!.address;
  const r = await httpGet(app, 'counter.test');
  t.is(r.status, 200);
  t.regex(r.body, /primary=1 visit=1/);

  // The app's user reaches its own database and no other.
  const pw = (await on('mysql.mysql.test', 'cat /var/lib/silverlining/services/mysql/counter.password')).trim();
  t.false(u.stdout.includes(pw) || u.stderr.includes(pw), 'the password is not in the output');
  const query = (db: string) => `python3 -c "import pymysql; c = pymysql.connect(host='mysql.mysql.test', user='counter', password='${pw}', database='${db}'); print('connected')" 2>&1 | tail -1`;
  t.is((await on('app1.mysql.test', query('counter'))).trim(), 'connected');
  t.regex(await on('app1.mysql.test', query('mysql')), /Access denied/);
});


run('MariaDB: renewing the grants drops users of addresses that are no longer app servers', async (t) => {
  await on('mysql.mysql.test', `mariadb -u root -e "CREATE USER 'counter'@'10.213.254.99' IDENTIFIED BY 'x'"`);
  t.regex(await on('mysql.mysql.test', `mariadb -u root -N -e "SELECT Host FROM mysql.user WHERE User = 'counter'"`), /10\.213\.254\.99/);
  const u = await silver(['update', 'test/fixtures/apps/counter-mysql', file], env);
  t.is(u.code, 0, u.stderr);
  const hosts = (await on('mysql.mysql.test', `mariadb -u root -N -e "SELECT Host FROM mysql.user WHERE User = 'counter'"`)).trim().split('\n');
  const nodes = JSON.parse((await silver(['list-nodes', file, '--json'], env)).stdout) as { name: string; address: string }[];
  t.deepEqual(hosts, [nodes.find((n) => n.name === 'app1.mysql.test')!.address]);
});

run('replace-node of the MariaDB node: a fresh dump, a new node, the same password, every row back', async (t) => {
  const nodes = JSON.parse((await silver(['list-nodes', file, '--json'], env)).stdout) as { name: string; address: string }[];
  const app = nodes.find((n) => n.name === 'app1.mysql.test')!.address;
  const visit = async () => Number(/visit=(\d+)/.exec((await httpGet(app, 'counter.test')).body)?.[1]);
  const before = await visit();
  t.true(before > 0);
  t.is((await silver(['backup', file], env)).code, 0);
  t.is((await silver(['backup', '--verify', file], env)).code, 0);
  const pw = (await on('mysql.mysql.test', 'cat /var/lib/silverlining/services/mysql/counter.password')).trim();
  await on('mysql.mysql.test', 'touch /root/old-node-marker');
  const r = await silver(['replace-node', file, '--node', 'mysql.mysql.test', '-y'], env);
  t.is(r.code, 0, r.stderr.slice(-3000));
  t.regex(r.stdout, /counter: its database restored from \S+ \(\d+ rows, as in the manifest\)/);
  t.regex(r.stdout, /the nodeset has no balancer: the apps kept answering/);
  t.false(r.stdout.includes(pw) || r.stderr.includes(pw));
  t.is((await on('mysql.mysql.test', 'test -e /root/old-node-marker && echo old || echo new')).trim(), 'new');
  t.is((await on('mysql.mysql.test', 'cat /var/lib/silverlining/services/mysql/counter.password')).trim(), pw);
  t.is(await visit(), before + 1, 'every visit is there, and the app writes the next one');
});
