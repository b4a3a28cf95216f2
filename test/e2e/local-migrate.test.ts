import test from 'ava';
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onNode, silver } from '../helpers/cli.js';
import { httpGet, startLoad } from '../helpers/load.js';
import { bringUp } from '../helpers/nodeset.js';
import { helloNodeset } from '../helpers/hello.js';
import { canRunLxc, cleanLeftovers, testProviderConfig } from '../helpers/lxc.js';

// Schema changes on real containers with examples/notes: a migration runs once, on the primary,
// before the first switch, with writes held back (503 + Retry-After) and reads served; a failing
// migration leaves every app server as it was; a change only in static/ starts no process.

const NODESET = 'silvertest-migrate';
const config = testProviderConfig('silvert7', 247);
const run = canRunLxc ? test.serial : test.serial.skip;
const dir = mkdtempSync(join(tmpdir(), 'silver-migrate-'));
const env = { SILVER_HOME: join(dir, 'home') };
const file = join(dir, 'migrate.conf');
writeFileSync(file, helloNodeset(NODESET, 'migrate.test', config, 'notes'));
const A1 = 'app1.migrate.test';
const A2 = 'app2.migrate.test';
let addr: Record<string, string> = {};

/** A copy of examples/notes at version v, with extra files (e.g. a migration). */
function notes(v: string, extra: Record<string, string> = {}): string {
  const d = join(dir, `notes-v${v}`);
  cpSync(join(process.cwd(), 'examples/notes'), d, { recursive: true });
  writeFileSync(join(d, 'VERSION'), `${v}\n`);
  for (const [name, text] of Object.entries(extra)) writeFileSync(join(d, name), text);
  return d;
}
const AUTHOR = { 'migrations/002_author.sql': 'ALTER TABLE notes ADD COLUMN author text;\n' };
const versionOf = (body: string) => /version (\S+),/.exec(body)?.[1] ?? body.slice(0, 40);
const on = async (node: string, command: string) => (await onNode(file, env, node, command)).out;
const psql = (sql: string) => on('db.migrate.test', `runuser -u postgres -- psql -d notes -tAc "${sql}"`);
const retryAfter = (status: number, h: Record<string, string | string[] | undefined>) => status === 503 && !!h['retry-after'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test.before(async () => {
  if (!canRunLxc) return;
  await cleanLeftovers(config, [NODESET]);
  addr = await bringUp(file, env);
  const v1 = await silver(['update', notes('1'), file], env);
  if (v1.code !== 0) throw new Error(v1.stderr);
});
test.after.always(async () => {
  if (canRunLxc) await cleanLeftovers(config, [NODESET]);
});

run('the migration runs once, on the primary, before the first switch; writes get 503 + Retry-After meanwhile, reads are served', async (t) => {
  const dry = await silver(['update', notes('2', AUTHOR), file, '--dry-run'], env);
  t.is(dry.code, 0, dry.stderr);
  t.regex(dry.stdout, /run the migration once on app1\.migrate\.test: script:python3 migrate\.py \(balancers in read-only meanwhile\)/);
  t.regex(dry.stdout, /nothing was changed/);
  const reads = startLoad(addr['balancer.migrate.test']!, 'migrate.test', { classify: versionOf, maxSeconds: 120 });
  const writes = startLoad(addr['balancer.migrate.test']!, 'migrate.test', { method: 'POST', concurrency: 2, maxSeconds: 120, accept: (st, h) => st === 200 || retryAfter(st, h) });
  await sleep(1000);
  const r = await silver(['update', notes('2', AUTHOR), file], env);
  await sleep(1000);
  const [read, wrote] = [await reads.stop(), await writes.stop()];
  t.is(r.code, 0, r.stderr);
  t.is(read.failed, 0, `reads failed: ${read.failures.join(' | ')}`);
  t.is(wrote.failed, 0, `writes got something else than the app or 503 + Retry-After: ${wrote.failures.join(' | ')}`);
  t.true((wrote.bodies.get('503') ?? 0) > 0, 'some writes were held back');
  t.true([...wrote.bodies.keys()].some((k) => k !== '503'), 'writes were served before and after');
  // Once, on the primary, and before the first switch.
  t.is((await psql("SELECT node || ' ' || instance FROM schema_migrations WHERE name = '002_author.sql'")).trim().split('\n').length, 1);
  t.regex(await psql("SELECT node FROM schema_migrations WHERE name = '002_author.sql'"), /^app1\.migrate\.test$/m);
  const lines = r.stderr.split('\n');
  const migrated = lines.findIndex((l) => l.includes(`${A1}: migrate: applied 002_author.sql`));
  const firstSwitch = lines.findIndex((l) => /switching traffic to/.test(l));
  t.true(migrated >= 0 && migrated < firstSwitch, r.stderr);
  t.is((await psql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'notes' AND column_name = 'author'")).trim(), '1');
  // And the balancers are back to normal: a write is served.
  const after = await httpGet(addr['balancer.migrate.test']!, 'migrate.test', '/', 'POST', 'after');
  t.is(after.status, 200, after.body);
  t.regex(after.body, /^noted by app\d\.migrate\.test: version 2/);
});

run('a failing migration leaves every app server on the old version, with zero failed requests', async (t) => {
  const before = JSON.parse((await silver(['status', file, '--json'], env)).stdout) as { apps: { active: string }[] };
  const load = startLoad(addr['balancer.migrate.test']!, 'migrate.test', { classify: versionOf, maxSeconds: 120 });
  const r = await silver(['update', notes('3', { ...AUTHOR, 'migrations/003_broken.sql': 'ALTER TABLE no_such_table ADD COLUMN x int;\n' }), file, '--json'], env);
  await sleep(1000);
  const result = await load.stop();
  t.is(r.code, 1);
  const report = JSON.parse(r.stdout) as { failure: { step: string; node: string }; activated: string[] };
  t.is(report.failure.step, 'migrate');
  t.is(report.failure.node, A1);
  t.is(result.failed, 0, result.failures.join(' | '));
  t.deepEqual([...result.bodies.keys()], ['2'], 'only the old version answered');
  const after = JSON.parse((await silver(['status', file, '--json'], env)).stdout) as { apps: { active: string }[] };
  t.deepEqual(after.apps.map((a) => a.active), before.apps.map((a) => a.active));
  t.is((await psql("SELECT count(*) FROM schema_migrations WHERE name = '003_broken.sql'")).trim(), '0');
});

run('a change only in static/ switches the files on every app server and starts no process; rollback brings the old files back', async (t) => {
  const pids = async () => Promise.all([A1, A2].map(async (n) => (await on(n, 'systemctl show -p MainPID --value "silver-$(basename "$(readlink /var/lib/silverlining/apps/notes/active)").service"')).trim()));
  const served = async () => Promise.all([A1, A2].map(async (n) => (await on('balancer.migrate.test', `curl -s -H 'Host: migrate.test' http://${addr[n]}/style.css`)).trim()));
  const pidsBefore = await pids();
  t.deepEqual(await served(), ['body { font-family: sans-serif; }', 'body { font-family: sans-serif; }']);
  const d = notes('2', AUTHOR);
  writeFileSync(join(d, 'static/style.css'), 'body { font-family: serif; }\n');
  const load = startLoad(addr['balancer.migrate.test']!, 'migrate.test', { classify: versionOf, maxSeconds: 60 });
  const r = await silver(['update', d, file], env);
  const result = await load.stop();
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /static-only update: new static files served by notes\.\S+ on 2 app servers \(no process started\)/);
  t.deepEqual(await served(), ['body { font-family: serif; }', 'body { font-family: serif; }']);
  t.deepEqual(await pids(), pidsBefore, 'the main PID of each instance is unchanged');
  t.is(result.failed, 0, result.failures.join(' | '));
  const back = await silver(['rollback', 'notes', file], env);
  t.is(back.code, 0, back.stderr);
  t.deepEqual(await served(), ['body { font-family: sans-serif; }', 'body { font-family: sans-serif; }']);
  t.deepEqual(await pids(), pidsBefore);
  // Through the balancer too, and the app still answers what is not a static file.
  t.is((await httpGet(addr['balancer.migrate.test']!, 'migrate.test', '/style.css')).body.trim(), 'body { font-family: sans-serif; }');
  t.is(versionOf((await httpGet(addr['balancer.migrate.test']!, 'migrate.test')).body), '2');
});
