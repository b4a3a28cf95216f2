import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onNode, silver } from '../helpers/cli.js';
import { httpGet, startLoad } from '../helpers/load.js';
import { canRunLxc, cleanLeftovers, testProviderConfig } from '../helpers/lxc.js';
import { helloNodeset, helloVersion, versionOf } from '../helpers/hello.js';

const NODESET = 'silvertest-update';
const config = testProviderConfig('silvert3', 253);
const run = canRunLxc ? test.serial : test.serial.skip;
const dir = mkdtempSync(join(tmpdir(), 'silver-update-'));
const env = { SILVER_HOME: join(dir, 'home') };
const file = join(dir, 'update.conf');
writeFileSync(file, helloNodeset(NODESET, 'update.test', config));

const version = (v: string, extra: Record<string, string> = {}) => helloVersion(dir, v, extra);
let balancer = '';

const on = async (node: string, command: string) => (await onNode(file, env, node, command)).out;

async function statusJson() {
  const r = await silver(['status', file, '--json'], env);
  return JSON.parse(r.stdout) as { apps: { node: string; app: string; active: string; previous: string }[] };
}

test.before(async () => {
  if (!canRunLxc) return;
  await cleanLeftovers(config, [NODESET]);
  const c = await silver(['create-node', file], env);
  if (c.code !== 0) throw new Error(c.stderr);
  const s = await silver(['setup-node', file], env);
  if (s.code !== 0) throw new Error(s.stdout + s.stderr);
  const nodes = JSON.parse((await silver(['list-nodes', file, '--json'], env)).stdout) as { name: string; address: string }[];
  balancer = nodes.find((n) => n.name === 'balancer.update.test')!.address;
});
test.after.always(async () => {
  if (canRunLxc) await cleanLeftovers(config, [NODESET]);
});

run('an app the nodeset does not list is refused before anything changes', async (t) => {
  const other = version('x');
  writeFileSync(join(other, 'app.ini'), '[production]\napp_name = other\nrunner = python3 app.py\n');
  const r = await silver(['update', other, file], env);
  t.is(r.code, 2);
  t.regex(r.stderr, /app "other" is not in the locations of .*update\.conf \(it serves: hello\)/);
  t.deepEqual((await statusJson()).apps, []);
});

run('update v1, then v2 under load: zero failed requests, every app server on v2, update_fetch primary once and secondary once', async (t) => {
  const v1 = await silver(['update', version('1'), file], env);
  t.is(v1.code, 0, v1.stderr);
  t.regex(v1.stdout, /hello\.\d{4}-\d\d-\d\d_\d{3} active on 2 app servers/);

  // The app's database password: generated, only in the app user's environment file, never printed.
  const password = (await on('db.update.test', 'cat /var/lib/silverlining/services/postgresql/hello.password')).trim();
  t.regex(password, /^[A-Za-z0-9]{20,}$/);
  t.false(v1.stdout.includes(password) || v1.stderr.includes(password), 'the password is not in the output');
  const envStat = await on('app1.update.test', 'stat -c "%a %U" /var/lib/silverlining/apps/hello/active/env');
  t.is(envStat.trim(), '640 root', "root's file: the app reads it, never changes it");
  t.regex(await on('app1.update.test', 'cat /var/lib/silverlining/apps/hello/active/env'), /^CONFIG_PG_HOST="db\.update\.test"$/m);
  // The app's user reaches its own database, and no other one.
  const psql = (db: string) => `PGPASSWORD=${password} psql -h db.update.test -U hello -d ${db} -tAc 'select 42' 2>&1 || true`;
  t.is((await on('app1.update.test', psql('hello'))).trim(), '42');
  t.regex(await on('app1.update.test', psql('postgres')), /no pg_hba\.conf entry/);
  // The app runs as its own unprivileged user.
  t.regex(await on('app1.update.test', 'ps -o user= -C python3'), /^app-hello$/m);

  const load = startLoad(balancer, 'update.test', { classify: versionOf });
  await new Promise((r) => setTimeout(r, 1000));
  const v2 = await silver(['update', version('2'), file, '--json'], env);
  await new Promise((r) => setTimeout(r, 1000));
  const result = await load.stop();
  t.is(v2.code, 0, v2.stderr);
  t.is(result.failed, 0, `failed requests: ${result.failures.join(' | ')}`);
  t.true(result.total > 50, `only ${result.total} requests`);
  t.true((result.bodies.get('1') ?? 0) > 0 && (result.bodies.get('2') ?? 0) > 0, `served: ${[...result.bodies].join(' ')}`);

  const report = JSON.parse(v2.stdout) as { instance: string; activated: string[] };
  const st = await statusJson();
  t.deepEqual(st.apps.map((a) => [a.node, a.active]), [
    ['app1.update.test', report.instance],
    ['app2.update.test', report.instance],
  ]);
  // update_fetch: for the new instance, once as primary (first app server), once as secondary.
  const fetches = (await httpGet(balancer, 'update.test', '/fetches')).body;
  const mine = fetches.split('\n').filter((l) => l.startsWith(report.instance));
  t.deepEqual(mine.sort(), [`${report.instance} app1.update.test primary`, `${report.instance} app2.update.test secondary`]);
});

run('a health check that fails on the second app server leaves every node on v2, with zero failed requests', async (t) => {
  const before = await statusJson();
  const load = startLoad(balancer, 'update.test', { classify: versionOf });
  const bad = await silver(['update', version('3', { 'unhealthy-on-app2.update.test': '' }), file, '--json'], env);
  await new Promise((r) => setTimeout(r, 1000));
  const result = await load.stop();
  t.is(bad.code, 1);
  const report = JSON.parse(bad.stdout) as { ok: boolean; failure: { node: string; step: string }; rolledBack: string[] };
  t.false(report.ok);
  t.is(report.failure.node, 'app2.update.test');
  t.regex(report.failure.step, /health_check \/health/);
  t.deepEqual(report.rolledBack, ['app1.update.test']);
  t.is(result.failed, 0, `failed requests: ${result.failures.join(' | ')}`);
  const after = await statusJson();
  t.deepEqual(after.apps.map((a) => a.active), before.apps.map((a) => a.active));
  // After the rollback every answer is v2 again.
  for (let i = 0; i < 6; i++) {
    const { body } = await httpGet(balancer, 'update.test');
    t.is(versionOf(body), '2');
  }
});

run('rollback activates the previous instance one node at a time, with zero failed requests', async (t) => {
  const load = startLoad(balancer, 'update.test', { classify: versionOf });
  const r = await silver(['rollback', 'hello', file], env);
  await new Promise((r) => setTimeout(r, 1000));
  const result = await load.stop();
  t.is(r.code, 0, r.stderr);
  t.is(result.failed, 0, `failed requests: ${result.failures.join(' | ')}`);
  for (let i = 0; i < 6; i++) {
    const { body } = await httpGet(balancer, 'update.test');
    t.is(versionOf(body), '1');
  }
});

run('a second concurrent update is refused by the deploy lock, naming the holder', async (t) => {
  const app = version('4');
  const [a, b] = await Promise.all([silver(['update', app, file], env), silver(['update', app, file], env)]);
  const refused = [a, b].filter((r) => r.code !== 0);
  t.is(refused.length, 1, `${a.stderr}\n${b.stderr}`);
  t.regex(refused[0]!.stderr, /nodeset silvertest-update is locked by \S+@\S+ pid \d+ \(machine \S+\): update hello since/);
  t.is([a, b].filter((r) => r.code === 0).length, 1);
  // The lock is released by the update that held it.
  const again = await silver(['update', app, file], env);
  t.is(again.code, 0, again.stderr);
});

run('attack: links an app user plants in /tmp get no root write during an update; the password is in no journal', async (t) => {
  // The hostile app's user plants links where root helpers once wrote (fetch answers, apt logs).
  for (const name of ['silver-fetch.out', 'silver-apt.log', 'silver-apt-update.log', 'silver-fetch-hello.out']) {
    await on('app1.update.test', `runuser -u app-hello -- ln -sf /etc/sudoers.d/pwned /tmp/${name}`);
  }
  const r = await silver(['update', version('5'), file], env);
  t.is(r.code, 0, r.stderr);
  t.is((await on('app1.update.test', 'test -e /etc/sudoers.d/pwned && echo pwned || echo safe')).trim(), 'safe');
  // Root's scratch folder is root's alone.
  t.is((await on('app1.update.test', 'stat -c "%U %a" /run/silverlining')).trim(), 'root 700');
  const password = (await on('db.update.test', 'cat /var/lib/silverlining/services/postgresql/hello.password')).trim();
  t.is((await on('db.update.test', `journalctl --no-pager -o cat | grep -c -F ${password} || true`)).trim(), '0', 'the password is not in the journal');
  for (const n of ['app1.update.test', 'app2.update.test']) t.is((await on(n, `journalctl --no-pager -o cat | grep -c -F ${password} || true`)).trim(), '0');
});

run('attack: the database helper never hands an app a built-in or privileged role', async (t) => {
  const helper = 'sudo -n /usr/local/lib/silverlining/bin/silver-db-postgresql';
  const reserved = await onNode(file, env, 'db.update.test', `runuser -u silver -- ${helper} ensure postgres 2>&1; echo "rc=$?"`);
  t.regex(reserved.out, /app name postgres is reserved\s+rc=1/);
  await on('db.update.test', `runuser -u postgres -- psql -qc "CREATE ROLE evil SUPERUSER"`);
  const privileged = await onNode(file, env, 'db.update.test', `runuser -u silver -- ${helper} ensure evil 2>&1; echo "rc=$?"`);
  t.regex(privileged.out, /role evil has superuser.*refusing to hand it to an app\s+rc=1/);
  t.is((await on('db.update.test', `runuser -u postgres -- psql -tAc "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'evil'"`)).trim(), 'f', 'nothing changed on it');
});
