import test from 'ava';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onNode, silver } from '../helpers/cli.js';
import { httpGet } from '../helpers/load.js';
import { canRunLxc, cleanLeftovers, testProviderConfig } from '../helpers/lxc.js';

// Backups on real containers: an app server serving examples/hello (PostgreSQL) and the
// counter fixture (MariaDB), both service nodes and a balancer. Back up, lose rows and tables,
// restore, and the rows are back; a dump from a stopped database fails loudly and lists
// nothing; verification restores for real and catches a changed dump and edited row counts;
// status shows the ages.

const NODESET = 'silvertest-backup';
const config = testProviderConfig('silvert8', 246);
const run = canRunLxc ? test.serial : test.serial.skip;
const dir = mkdtempSync(join(tmpdir(), 'silver-backup-'));
const env = { SILVER_HOME: join(dir, 'home') };
const file = join(dir, 'backup.conf');
const DB = 'db.backup.test';
const MY = 'mysql.backup.test';
writeFileSync(file, `[general]
name = ${NODESET}
base_domain = backup.test
[provider]
provider = local
bridge = ${config.settings['bridge']}
subnet = ${config.settings['subnet']}
proxy_port = ${config.settings['proxy_port']}
[appserver]
nodes = 1
size = ram 256MB
locations =
    http://backup.test/ hello
    http://counter.backup.test/ counter
[service:postgresql]
node_name = ${DB}
[service:mysql]
node_name = ${MY}
[balancer]
`);
const backups = join(env.SILVER_HOME, 'backups', NODESET);
let balancer = '';

const on = async (node: string, command: string) => {
  const r = await onNode(file, env, node, command);
  if (r.code !== 0) throw new Error(`${node}: ${command}: exit ${r.code}: ${r.out}`);
  return r.out;
};
// (SQL goes base64-encoded, so that no shell on the way reads its quotes and backslashes)
const b64 = (sql: string) => Buffer.from(sql).toString('base64');
const pg = async (sql: string, db = 'hello') => (await on(DB, `cd / && printf %s ${b64(sql)} | base64 -d | runuser -u postgres -- psql -X -v ON_ERROR_STOP=1 -d ${db} -tA`)).trim();
const my = async (sql: string) => (await on(MY, `printf %s ${b64(sql)} | base64 -d | mariadb -N -B counter`)).trim();

interface Listing {
  app: string;
  stamp: string;
  path: string;
  verified: { ok: boolean } | null;
}
const listing = async () => JSON.parse((await silver(['backups', file, '--json'], env)).stdout) as Listing[];
const latest = async (app: string) => (await listing()).filter((b) => b.app === app).at(-1)!;
const manifestOf = (b: Listing) => JSON.parse(readFileSync(join(b.path, 'manifest.json'), 'utf8')) as { rowCounts: Record<string, number>; file: string; sha256: string; size: number; rowCountsFrom: string; serverVersion: string };

test.before(async () => {
  if (!canRunLxc) return;
  await cleanLeftovers(config, [NODESET]);
  const c = await silver(['create-node', file], env);
  if (c.code !== 0) throw new Error(c.stderr);
  const s = await silver(['setup-node', file], env);
  if (s.code !== 0) throw new Error(s.stdout + s.stderr);
  for (const app of ['examples/hello', 'test/fixtures/apps/counter-mysql']) {
    const u = await silver(['update', app, file], env);
    if (u.code !== 0) throw new Error(u.stdout + u.stderr);
  }
  const nodes = JSON.parse((await silver(['list-nodes', file, '--json'], env)).stdout) as { name: string; address: string }[];
  balancer = nodes.find((n) => n.name === 'balancer.backup.test')!.address;
});
test.after.always(async () => {
  if (canRunLxc) await cleanLeftovers(config, [NODESET]);
  rmSync(dir, { recursive: true, force: true });
});

run('PostgreSQL: back up, drop a table and delete rows, restore: the rows are back and the app serves them', async (t) => {
  for (let i = 0; i < 7; i++) t.is((await httpGet(balancer, 'backup.test')).status, 200);
  const visits = Number(await pg('SELECT count(*) FROM visits'));
  const fetches = Number(await pg('SELECT count(*) FROM fetches'));
  t.true(visits >= 7);
  // Database-level settings the app made as its own role (kept by pg_dump --create only).
  await pg("SET ROLE hello; ALTER DATABASE hello SET work_mem = '7MB'; ALTER ROLE hello IN DATABASE hello SET statement_timeout = '42s'; COMMENT ON DATABASE hello IS E'the hello db\\nit''s ok'");
  const settings = "SELECT string_agg(setrole::regrole || ' ' || array_to_string(setconfig, ','), '; ' ORDER BY setrole) FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = 'hello')";
  const comment = "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'hello'";
  const kept = [await pg(settings, 'postgres'), await pg(comment, 'postgres')];
  t.deepEqual(kept, ['- work_mem=7MB; hello statement_timeout=42s', "the hello db\nit's ok"]);

  const b = await silver(['backup', file, '--app', 'hello', '--json'], env);
  t.is(b.code, 0, b.stdout + b.stderr);
  const report = JSON.parse(b.stdout) as { ok: boolean; backups: { app: string; path: string; rowCounts: Record<string, number> }[] };
  t.true(report.ok);
  const path = report.backups[0]!.path;
  t.true(path.startsWith(join(backups, 'hello')));
  t.deepEqual(readdirSync(path).sort(), ['hello.pgdump', 'manifest.json']);
  const m = manifestOf((await latest('hello'))!);
  t.deepEqual(m.rowCounts, { 'public.fetches': fetches, 'public.visits': visits }, 'counted in the dump\'s snapshot');
  t.is(m.rowCountsFrom, 'snapshot');
  t.regex(m.serverVersion, /^1\d\.\d+/);
  t.is(readFileSync(join(path, 'hello.pgdump')).subarray(0, 5).toString(), 'PGDMP');
  t.is(readFileSync(join(path, 'hello.pgdump')).length, m.size);
  t.deepEqual(await on(DB, 'ls -A /var/lib/silverlining/services/postgresql/staged'), '', 'nothing stays staged on the node');

  // Lose data: rows, a whole table; add one the backup does not have.
  await pg('DELETE FROM visits WHERE n > 2');
  await pg('DROP TABLE fetches');
  await pg('SET ROLE hello; CREATE TABLE junk (x int)');
  await pg('ALTER DATABASE hello RESET ALL; ALTER ROLE hello IN DATABASE hello RESET ALL; COMMENT ON DATABASE hello IS NULL');

  // Without a terminal and without -y: refused, nothing changed.
  const refused = await silver(['restore', 'hello', file, 'latest'], env);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /nothing restored \(answer y, or pass -y\)/);
  t.is(await pg('SELECT count(*) FROM visits'), '2');

  const r = await silver(['restore', 'hello', file, 'latest', '-y', '--json'], env);
  t.is(r.code, 0, r.stdout + r.stderr);
  const rr = JSON.parse(r.stdout) as { ok: boolean; rowCounts: Record<string, number>; maintenance: string };
  t.true(rr.ok);
  t.deepEqual(rr.rowCounts, m.rowCounts);
  t.is(rr.maintenance, 'maintenance while restoring, then serving normally again');
  t.regex(r.stderr, /balancer\.backup\.test: hello in maintenance while it is restored/);
  t.is(Number(await pg('SELECT count(*) FROM visits')), visits, 'the rows are back');
  t.is(Number(await pg('SELECT count(*) FROM fetches')), fetches, 'the table is back');
  t.is(await pg("SELECT count(*) FROM pg_tables WHERE tablename = 'junk'"), '0', 'what came after the backup is gone');
  t.is(await pg("SELECT string_agg(DISTINCT tableowner, ',') FROM pg_tables WHERE schemaname = 'public'"), 'hello', 'the app owns its tables');
  t.is(await pg("SELECT count(*) FROM pg_database WHERE datname LIKE 'silver_%'", 'postgres'), '0', 'no throw-away database is left');
  t.deepEqual([await pg(settings, 'postgres'), await pg(comment, 'postgres')], kept, 'its database-level settings and comment are back');
  t.regex(r.stderr, /db\.backup\.test: hello: its database-level settings \(ALTER DATABASE\/ROLE \.\.\. SET, its comment\) made again as the dump kept them/);
  // The app, through the balancer, writes again (the sequence came back too).
  const after = await httpGet(balancer, 'backup.test');
  t.is(after.status, 200, after.body);
  t.regex(after.body, new RegExp(`visit ${visits + 1}$`, 'm'));
  const st = JSON.parse((await silver(['status', file, '--json'], env)).stdout) as { modes: { record: { modes: Record<string, unknown> } } };
  t.deepEqual(st.modes.record.modes, {}, 'the balancers serve normally again');
});

run('MariaDB: rows with quotes, parentheses, semicolons and backslashes are counted in the dump, deleted, and restored', async (t) => {
  await my(String.raw`INSERT INTO hits (role) VALUES ('it''s'), ('a (b), c; d'), ('back\\slash'), ('two\nlines'), ('x\'); DROP hits;--')`);
  t.is((await httpGet(balancer, 'counter.backup.test')).status, 200);
  const hits = Number(await my('SELECT COUNT(*) FROM hits'));
  // (the database's own defaults, which a dump of its tables does not carry: silver's first line does)
  await my('ALTER DATABASE counter CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci');
  const defaults = "SELECT CONCAT(DEFAULT_CHARACTER_SET_NAME, ' ', DEFAULT_COLLATION_NAME) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'counter'";
  t.is(await my(defaults), 'utf8mb4 utf8mb4_unicode_ci');
  const b = await silver(['backup', file, '--app', 'counter'], env);
  t.is(b.code, 0, b.stdout + b.stderr);
  const m = manifestOf(await latest('counter'));
  t.deepEqual(m.rowCounts, { hits }, 'the rows counted in the dump are the table\'s');
  t.is(m.rowCountsFrom, 'dump');
  t.regex(readFileSync(join((await latest('counter')).path, m.file), 'utf8'), /-- Dump completed on/);

  const v = await silver(['backup', '--verify', file, '--app', 'counter'], env);
  t.is(v.code, 0, v.stdout + v.stderr);
  t.regex(v.stdout, /^counter: backup \S+ verified: restored into a throw-away database/m);

  await my('DELETE FROM hits WHERE n > 1');
  await my('ALTER DATABASE counter CHARACTER SET latin1 COLLATE latin1_swedish_ci');
  const r = await silver(['restore', 'counter', file, 'latest', '-y'], env);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.regex(r.stdout, new RegExp(`^counter: mysql database counter restored from \\S+; 1 tables, ${hits} rows, as in the manifest`, 'm'));
  t.is(Number(await my('SELECT COUNT(*) FROM hits')), hits);
  t.is(await my("SELECT role FROM hits WHERE role LIKE 'x%'"), "x'); DROP hits;--");
  t.is(await my(defaults), 'utf8mb4 utf8mb4_unicode_ci', 'the database made again with its own defaults');
  t.is(await my("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name LIKE 'silver\\_%'"), '0');
  const after = await httpGet(balancer, 'counter.backup.test');
  t.is(after.status, 200, after.body);
  t.regex(after.body, /visit=\d+/);
});

run('a dump from a stopped database fails loudly: exit 1, named, no backup listed, nothing half-written', async (t) => {
  const before = (await listing()).length;
  await on(DB, 'systemctl stop postgresql');
  try {
    const r = await silver(['backup', file, '--app', 'hello'], env);
    t.is(r.code, 1);
    t.regex(r.stdout, /^hello: backup of postgresql database hello FAILED: db\.backup\.test: the dump of hello: .*(connection to server|Is the server running)/m);
    t.is((await listing()).length, before);
    t.false(readdirSync(join(backups, 'hello')).some((d) => d.endsWith('.partial')));
    t.is(await on(DB, 'ls -A /var/lib/silverlining/services/postgresql/staged'), '');
  } finally {
    await on(DB, 'systemctl start postgresql');
  }
});

run('verify restores for real: a changed byte fails on the sha256 (nothing sent); edited row counts fail after the restore; the throw-away database is dropped', async (t) => {
  const ok = await silver(['backup', '--verify', file, '--app', 'hello', '--json'], env);
  t.is(ok.code, 0, ok.stdout + ok.stderr);
  const good = JSON.parse(ok.stdout) as { results: { ok: boolean; scratch: string; restoreSeconds: number; dropped: boolean }[] };
  t.true(good.results[0]!.ok);
  t.regex(good.results[0]!.scratch, /^silver_verify_hello_[a-f0-9]{8}$/);
  t.true(good.results[0]!.dropped);

  const b = await latest('hello');
  const m = manifestOf(b);
  const dump = join(b.path, m.file);
  const keep = join(dir, 'kept');
  cpSync(b.path, keep, { recursive: true });
  try {
    const data = readFileSync(dump);
    data[Math.floor(data.length / 2)] = data[Math.floor(data.length / 2)]! ^ 0xff;
    writeFileSync(dump, data);
    const bad = await silver(['backup', '--verify', file, '--app', 'hello'], env);
    t.is(bad.code, 1);
    t.regex(bad.stdout, /verification FAILED: sha256 mismatch: hello\.pgdump has [0-9a-f]{64}, the manifest says [0-9a-f]{64}/);
    t.regex((await silver(['backups', file], env)).stdout, new RegExp(`^hello\\s+${b.stamp}\\s+postgresql\\s+\\d+\\s+\\d+\\s+FAILED`, 'm'));
    const refused = await silver(['restore', 'hello', file, b.stamp, '-y'], env);
    t.is(refused.code, 1);
    t.regex(refused.stderr, /sha256 mismatch.*nothing was sent, nothing restored/);

    cpSync(join(keep, m.file), dump);
    const visits = m.rowCounts['public.visits']!;
    writeFileSync(join(b.path, 'manifest.json'), readFileSync(join(keep, 'manifest.json'), 'utf8').replace(`"public.visits": ${visits}`, `"public.visits": ${visits + 1}`));
    const edited = await silver(['backup', '--verify', file, b.stamp, '--app', 'hello'], env);
    t.is(edited.code, 1);
    t.regex(edited.stdout, new RegExp(`verification FAILED: public\\.visits: ${visits} rows, expected ${visits + 1}`));
    t.is(await pg("SELECT count(*) FROM pg_database WHERE datname LIKE 'silver_%'", 'postgres'), '0', 'dropped in every case');
  } finally {
    rmSync(b.path, { recursive: true, force: true });
    cpSync(keep, b.path, { recursive: true });
  }
  const again = await silver(['backup', '--verify', file, b.path], env);
  t.is(again.code, 0, again.stdout + again.stderr);
  t.true(existsSync(join(b.path, 'verify.json')));
});

run('status shows per app the age of the last backup and of the last verified restore; --keep prunes', async (t) => {
  const s = await silver(['status', file], env);
  t.is(s.code, 0, s.stderr);
  t.regex(s.stdout, /^backups: hello last \d+[smh] ago, restore verified \d+[smh] ago; counter last \d+[smh] ago, restore verified \d+[smh] ago$/m);
  const j = JSON.parse((await silver(['status', file, '--json'], env)).stdout) as { backups: { app: string; lastBackupStamp: string; verifyOk: boolean; verifySeconds: number }[] };
  t.deepEqual(j.backups.map((b) => [b.app, b.verifyOk]), [['hello', true], ['counter', true]]);
  t.true(j.backups[0]!.verifySeconds > 0);
  const k = await silver(['backup', file, '--keep', '1'], env);
  t.is(k.code, 0, k.stdout + k.stderr);
  t.deepEqual((await listing()).map((b) => b.app), ['counter', 'hello']);
});

run("attack: an app that sets its database's search_path to put its own count() first gets nothing from the next backup's row counts: no shell command as postgres, no superuser", async (t) => {
  // The app owns its database: as its own role it adds an aggregate count(*) whose step function
  // tries to make the app a superuser, and puts that schema first in the database's search_path.
  const trap = [
    'SET ROLE hello;',
    'CREATE SCHEMA trap;',
    // (run as the superuser, the step would run a shell command as the postgres user — the row
    // counts' transaction is read-only, so ALTER ROLE would not do, but COPY TO PROGRAM does)
    "CREATE FUNCTION trap.step(bigint) RETURNS bigint LANGUAGE plpgsql AS $f$ BEGIN BEGIN EXECUTE 'COPY (SELECT current_user) TO PROGRAM ''cat > /var/lib/postgresql/pwned'''; EXCEPTION WHEN others THEN NULL; END; BEGIN EXECUTE 'ALTER ROLE hello SUPERUSER'; EXCEPTION WHEN others THEN NULL; END; RETURN $1 + 10; END $f$;",
    "CREATE AGGREGATE trap.count(*) (sfunc = trap.step, stype = bigint, initcond = '0');",
    'ALTER DATABASE hello SET search_path = trap, pg_catalog, public;',
  ].join('\n');
  await pg(trap);
  t.is(await pg("SELECT rolsuper FROM pg_roles WHERE rolname = 'hello';"), 'f');
  // (the trap works: a session with the database's own settings counts with it — 10 a row)
  t.is((await pg('SET ROLE hello; SELECT count(*) FROM (VALUES (1), (2)) v;')).split('\n').pop(), '20');
  const b = await silver(['backup', file, '--app', 'hello'], env);
  t.is(b.code, 0, b.stderr);
  t.is(await pg("SELECT rolsuper FROM pg_roles WHERE rolname = 'hello';"), 'f', 'the backup ran no code of the app as the superuser');
  t.is((await on(DB, 'test -e /var/lib/postgresql/pwned && cat /var/lib/postgresql/pwned || echo none')).trim(), 'none', 'no shell command ran as postgres');
  await pg('ALTER DATABASE hello RESET search_path; DROP SCHEMA trap CASCADE;');
});

run("attack: an app whose index expression calls an IMMUTABLE function of its own (planning a count folds it, in the session that counts) gets nothing from the backup's or the verification's row counts: no shell command as postgres, no superuser", async (t) => {
  const trap = [
    'SET ROLE hello;',
    // (run as the superuser, it would run a shell command as postgres and make the app a superuser)
    "CREATE FUNCTION public.trap_run() RETURNS void LANGUAGE plpgsql AS $f$ BEGIN BEGIN EXECUTE 'COPY (SELECT current_user) TO PROGRAM ''cat > /var/lib/postgresql/pwned2'''; EXCEPTION WHEN others THEN NULL; END; BEGIN EXECUTE 'ALTER ROLE hello SUPERUSER'; EXCEPTION WHEN others THEN NULL; END; END $f$;",
    "CREATE FUNCTION public.trap_fold(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $f$ BEGIN PERFORM public.trap_run(); RETURN $1; END $f$;",
    'CREATE TABLE public.trapped (n int);',
    'INSERT INTO public.trapped VALUES (1), (2);',
    'CREATE INDEX ON public.trapped ((n + public.trap_fold(1)));',
  ].join('\n');
  await pg(trap);
  try {
    const b = await silver(['backup', file, '--app', 'hello'], env);
    t.is(b.code, 0, b.stdout + b.stderr);
    t.is(manifestOf(await latest('hello')).rowCounts['public.trapped'], 2, 'its rows are counted, by the app\'s own role');
    const v = await silver(['backup', '--verify', file, '--app', 'hello'], env);
    t.is(v.code, 0, v.stdout + v.stderr);
    t.is(await pg("SELECT rolsuper FROM pg_roles WHERE rolname = 'hello';"), 'f', 'no code of the app ran as the superuser');
    t.is((await on(DB, 'test -e /var/lib/postgresql/pwned2 && cat /var/lib/postgresql/pwned2 || echo none')).trim(), 'none', 'no shell command ran as postgres');
  } finally {
    await pg('DROP TABLE public.trapped; DROP FUNCTION public.trap_fold(int); DROP FUNCTION public.trap_run();');
  }
});

run('attack: a MariaDB dump changed to reach another database, to run code as root (a procedure of root\'s called during the load, a trigger) or to read a file of root\'s is refused by the account that loads it: nothing changes, nothing is left; the app\'s own trigger comes back, run by its local account', async (t) => {
  const root = async (sql: string) => (await on(MY, `printf %s ${b64(sql)} | base64 -d | mariadb -N -B`)).trim();
  await root('CREATE DATABASE victim; CREATE TABLE victim.t (n int); INSERT INTO victim.t VALUES (1), (2);');
  // (the app's own trigger, as the app's user at its app server's address makes it: in its own
  // database, its names unqualified — mariadb-dump keeps them as written, and a name qualified
  // with the database would point the copy's load at the app's live database, which the loading
  // account may not touch)
  const appHost = (await root("SELECT Host FROM mysql.user WHERE User = 'counter' AND Host <> 'localhost' LIMIT 1"));
  await my(`CREATE DEFINER=\`counter\`@\`${appHost}\` TRIGGER mark BEFORE INSERT ON hits FOR EACH ROW SET NEW.role = CONCAT('t:', NEW.role);`);
  const b0 = await silver(['backup', file, '--app', 'counter'], env);
  t.is(b0.code, 0, b0.stdout + b0.stderr);
  const b = await latest('counter');
  const m = manifestOf(b);
  const dump = join(b.path, m.file);
  const keep = readFileSync(dump, 'utf8');
  const keptManifest = readFileSync(join(b.path, 'manifest.json'), 'utf8');
  const hits = await my('SELECT COUNT(*) FROM hits');
  // (whoever can write the backups folder can write the manifest's sums too)
  const tamper = (extra: string) => {
    const text = keep.replace(/^-- Dump completed/m, `${extra}\n-- Dump completed`);
    writeFileSync(dump, text);
    const sum = createHash('sha256').update(text).digest('hex');
    writeFileSync(join(b.path, 'manifest.json'), keptManifest.replace(/"sha256": "[0-9a-f]{64}"/, `"sha256": "${sum}"`).replace(/"size": \d+/, `"size": ${Buffer.byteLength(text)}`));
  };
  try {
    tamper('DROP DATABASE victim;\nDROP TABLE counter.hits;');
    const r = await silver(['restore', 'counter', file, 'latest', '-y'], env);
    t.is(r.code, 1, r.stdout + r.stderr);
    t.regex(r.stdout, /counter: restore from \S+ FAILED: .*Access denied for user 'silver_load_[a-z0-9]{8}'@'localhost' to database 'victim'.*; counter was not changed/);
    for (const [what, extra, refusal] of [
      ['a procedure of root\'s, called', 'DELIMITER ;;\nCREATE DEFINER=`root`@`localhost` PROCEDURE pwn() SQL SECURITY DEFINER BEGIN DROP DATABASE victim; END ;;\nDELIMITER ;\nCALL pwn();', /SUPER, SET USER privilege|1227/],
      ['a trigger of root\'s', 'DELIMITER ;;\nCREATE DEFINER=`root`@`localhost` TRIGGER pwn BEFORE INSERT ON hits FOR EACH ROW SET NEW.role = CURRENT_USER() ;;\nDELIMITER ;', /SUPER, SET USER privilege|1227/],
      ['a file of root\'s read', "CREATE TABLE leak (s text);\nLOAD DATA LOCAL INFILE '/var/lib/silverlining/services/mysql/counter.password' INTO TABLE leak;", /LOAD DATA LOCAL|4166|used command is not allowed/i],
    ] as const) {
      tamper(extra);
      const v = await silver(['backup', '--verify', file, '--app', 'counter'], env);
      t.is(v.code, 1, `${what}: ${v.stdout}${v.stderr}`);
      t.regex(v.stdout, /counter: backup \S+ verification FAILED: .*loading the dump into silver_verify_counter_[a-z0-9]{8} failed/, what);
      t.regex(v.stdout, refusal, what);
    }
    t.is(await root('SELECT COUNT(*) FROM victim.t'), '2', 'the other database is untouched');
    t.is(await my('SELECT COUNT(*) FROM hits'), hits, 'the app\'s database is untouched');
    t.is(await root("SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_NAME = 'pwn'"), '0');
    t.is(await root("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_NAME = 'pwn'"), '0', 'no trigger of root\'s anywhere');
  } finally {
    writeFileSync(dump, keep);
    writeFileSync(join(b.path, 'manifest.json'), keptManifest);
    await root('DROP DATABASE IF EXISTS victim;');
  }
  // The backup as it was restores: the app's trigger comes back, its definer the app's local
  // account (locked: no one logs in as it), and it runs when the app writes.
  const ok = await silver(['restore', 'counter', file, b.stamp, '-y'], env);
  t.is(ok.code, 0, ok.stdout + ok.stderr);
  t.is(await root("SELECT DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_NAME = 'mark'"), 'counter@localhost');
  t.regex(await root("SELECT JSON_VALUE(Priv, '$.account_locked') FROM mysql.global_priv WHERE User = 'counter' AND Host = 'localhost'"), /^(1|true)$/);
  t.is((await httpGet(balancer, 'counter.backup.test')).status, 200);
  t.regex(await my('SELECT role FROM hits ORDER BY n DESC LIMIT 1'), /^t:/, 'the app\'s trigger ran');
  t.is(await root("SELECT COUNT(*) FROM mysql.user WHERE User LIKE 'silver\\_load\\_%'"), '0', 'no loading account is left');
  t.is(await root("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name LIKE 'silver\\_%'"), '0', 'no throw-away database is left');
  t.is((await on(MY, 'ls /var/lib/silverlining/services/mysql | grep -c cnf || true')).trim(), '0', 'no option file is left');
  await my('DROP TRIGGER mark;');
});
