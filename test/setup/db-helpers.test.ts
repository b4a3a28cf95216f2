import test from 'ava';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { layersRoot } from '../../src/layers.js';

// The database helpers silver-db-postgresql and silver-db-mysql run by a real `sh` against a
// temporary tree: their `PREFIX=` line rewritten to point into it, fakes first in PATH for the
// database programs (runuser, psql, pg_dump, pg_restore, mariadb, mariadb-dump; python3 ones
// keep the databases of a fake server in a file), each appending its argv to calls.log and the
// SQL it got to sql.log. grep, sed, sha256sum, base64, stat, head, tail, find are the real ones.

const trees: string[] = [];
test.after.always(() => {
  for (const dir of trees) rmSync(dir, { recursive: true, force: true });
});

interface Tree {
  dir: string;
  bin: string;
  script: string;
  /** <prefix>/var/lib/silverlining/services/NAME */
  svc: string;
  staged: string;
}

const PY = `#!/usr/bin/env python3
import json, os, re, subprocess, sys
T = os.environ['FAKE_T']
def lines(name):
    p = os.path.join(T, name)
    return [l for l in open(p).read().split('\\n') if l] if os.path.exists(p) else []
def save(name, items):
    open(os.path.join(T, name), 'w').write(''.join(i + '\\n' for i in items))
`;

/** The psql of a fake server: databases in `dbs`, roles in `roles`, row counts in `counts`. */
const PSQL = `${PY}
with open(os.path.join(T, 'calls.log'), 'a') as f: f.write('psql ' + ' '.join(sys.argv[1:]) + '\\n')
sql = sys.stdin.read()
with open(os.path.join(T, 'sql.log'), 'a') as f: f.write(sql + '--\\n')
if os.environ.get('PGPASSFILE'):
    st = os.stat(os.environ['PGPASSFILE'])
    with open(os.path.join(T, 'pgpass.psql.seen'), 'w') as f: f.write(open(os.environ['PGPASSFILE']).read() + '%o\\n' % (st.st_mode & 0o777))
    if os.path.exists(os.path.join(T, 'settings.fail')) and 'silver_settings' in sql:
        sys.stderr.write('ERROR:  permission denied to set parameter "x"\\n')
        sys.exit(3)
    if 'FROM silver_refused' in sql: print('refused 1 of 3' if os.path.exists(os.path.join(T, 'settings.partial')) else 'restored')
if os.path.exists(os.path.join(T, 'psql.fail')):
    sys.stderr.write('psql: error: connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed: No such file or directory\\n')
    sys.exit(2)
dbs = lines('dbs')
for line in sql.split('\\n'):
    m = re.match(r"SELECT 1 FROM pg_database WHERE datname = '(.*)';", line)
    if m: print('1' if m.group(1) in dbs else '')
    m = re.match(r"SELECT format\\('DROP DATABASE %I WITH \\(FORCE\\)', datname\\) FROM pg_database WHERE datname ~ '(.*)' \\\\gexec", line)
    if m:
        for d in [d for d in dbs if re.match(m.group(1), d)]:
            dbs.remove(d)
            with open(os.path.join(T, 'sql.log'), 'a') as f: f.write('DROP DATABASE "%s" WITH (FORCE)\\n' % d)
    m = re.match(r"SELECT format\\('ALTER DATABASE %I ALLOW_CONNECTIONS true', datname\\) FROM pg_database WHERE datname = '(.*)' \\\\gexec", line)
    if m and m.group(1) in dbs:
        with open(os.path.join(T, 'sql.log'), 'a') as f: f.write('ALTER DATABASE "%s" ALLOW_CONNECTIONS true\\n' % m.group(1))
    m = re.match(r"SELECT 1 FROM pg_roles WHERE rolname = '(.*)';", line)
    if m: print('1' if m.group(1) in lines('roles') else '')
    if line.startswith('SELECT rolsuper'): print('f')
    if line.startswith("SELECT 'ensure '"):
        app = re.search(r"rolname = '([a-z0-9_-]*)'", line).group(1)
        role = open(os.path.join(T, 'rolsuper')).read().strip() if os.path.exists(os.path.join(T, 'rolsuper')) else ('false' if app in lines('roles') else 'none')
        print('ensure %s %d' % (role, 1 if app in dbs else 0))
    m = re.match(r'CREATE DATABASE "(.*?)"', line)
    if m: dbs.append(m.group(1))
    m = re.match(r'DROP DATABASE IF EXISTS "(.*?)"', line) or re.match(r'DROP DATABASE "(.*?)"', line)
    if m and m.group(1) in dbs: dbs.remove(m.group(1))
    m = re.match(r'ALTER DATABASE "(.*?)" RENAME TO "(.*?)"', line)
    if m: dbs[dbs.index(m.group(1))] = m.group(2)
    if line.startswith("SELECT 'counts ' ||"): print('counts ' + (open(os.path.join(T, 'counts')).read().strip() if os.path.exists(os.path.join(T, 'counts')) else '{}'))
    if line.startswith("SELECT 'server ' ||"): print('server 15.6 (fake)')
    if line.startswith('\\\\! '):
        # as psql does: a shell, the descriptors it was given, the variable \\setenv set
        subprocess.run(['sh', '-c', line[3:]], env={**os.environ, 'SILVER_SNAPSHOT': '00000003-0000001B-1'}, close_fds=False)
save('dbs', dbs)
`;

/** The mariadb client of a fake server: databases in `dbs`; `mariadb DB < dump` loads. */
const MARIADB = `${PY}
with open(os.path.join(T, 'calls.log'), 'a') as f: f.write('mariadb ' + ' '.join(sys.argv[1:]) + '\\n')
sql = sys.stdin.read()
with open(os.path.join(T, 'sql.log'), 'a') as f: f.write(sql + '--\\n')
args = [a for a in sys.argv[1:] if not a.startswith('-') and a != 'root']
if args:
    # (a load: the option file it was given, as it was then, and its mode)
    for a in sys.argv[1:]:
        if a.startswith('--defaults-file='):
            p = a.split('=', 1)[1]
            with open(os.path.join(T, 'loader.seen'), 'a') as f: f.write(p + '\\n' + open(p).read() + '%o\\n' % (os.stat(p).st_mode & 0o777))
    if os.path.exists(os.path.join(T, 'load.fail')): sys.stderr.write('ERROR 1064 at line 3\\n'); sys.exit(1)
    sys.exit(0)
dbs = lines('dbs')
for line in sql.split('\\n'):
    m = re.match(r"SELECT COUNT\\(\\*\\) FROM information_schema.schemata WHERE schema_name = '(.*)';", line)
    if m: print('1' if m.group(1) in dbs else '0')
    for m in re.finditer(r'CREATE DATABASE (?:IF NOT EXISTS )?\`(.*?)\`', line):
        if m.group(1) not in dbs: dbs.append(m.group(1))
    m = re.match(r'DROP DATABASE IF EXISTS \`(.*?)\`', line)
    if m and m.group(1) in dbs: dbs.remove(m.group(1))
    if line.startswith('SELECT VERSION()'): print('10.11.6-MariaDB (fake)')
    if 'information_schema.SCHEMATA' in line and os.path.exists(os.path.join(T, 'defaults')): print(open(os.path.join(T, 'defaults')).read().strip())
    if line.startswith('SELECT COUNT(*) FROM mysql.global_priv'): print('0')
    if line.startswith('SELECT DEFINER FROM information_schema.TRIGGERS'):
        if os.path.exists(os.path.join(T, 'definers.fail')): sys.stderr.write('ERROR 2013: Lost connection\\n'); sys.exit(1)
        # (LOADER: the account of the last load, as its option file named it)
        seen = [l[5:] for l in lines('loader.seen') if l.startswith('user=')]
        for d in lines('definers'): print(d.replace('LOADER', seen[-1] if seen else 'LOADER'))
    if line.startswith('SELECT Host FROM mysql.db WHERE User = '):
        for h in lines('legacy-hosts'): print(h)
    if line.startswith("SELECT User FROM mysql.user WHERE Host = 'localhost' AND User LIKE 'silver\\\\_load\\\\_%'"):
        for u in lines('loaders'): print(u)
    m = re.match(r"SELECT CONCAT\\('GRANT ALL PRIVILEGES ON \`(.*?)\`", line)
    if m: print("GRANT ALL PRIVILEGES ON \`%s\`.* TO 'x'@'10.0.0.2';" % m.group(1))
if 'JSON_OBJECTAGG' in sql: print('counts ' + (open(os.path.join(T, 'counts')).read().strip() if os.path.exists(os.path.join(T, 'counts')) else '{}'))
save('dbs', dbs)
`;

const fake = (t: Tree, name: string, body: string) => writeFileSync(join(t.bin, name), body.startsWith('#!') ? body : `#!/bin/sh\nT='${t.dir}'\necho "${name} $*" >> "$T/calls.log"\n${body}\n`, { mode: 0o755 });

function tree(service: 'postgresql' | 'mysql'): Tree {
  const dir = mkdtempSync(join(tmpdir(), 'silver-dbh-'));
  trees.push(dir);
  const prefix = join(dir, 'root');
  const svc = join(prefix, 'var/lib/silverlining/services', service);
  const t: Tree = { dir, bin: join(dir, 'bin'), script: join(dir, `silver-db-${service}`), svc, staged: join(svc, 'staged') };
  mkdirSync(t.bin, { recursive: true });
  mkdirSync(svc, { recursive: true, mode: 0o700 });
  const text = readFileSync(join(layersRoot(), `service/${service}/bin/silver-db-${service}`), 'utf8');
  if ((text.match(/^PREFIX=$/gm) ?? []).length !== 1) throw new Error('no single line PREFIX=');
  writeFileSync(t.script, text.replace(/^PREFIX=$/m, `PREFIX=${prefix}`));
  // runuser -u USER -- CMD...: runs CMD (as this user).
  fake(t, 'runuser', 'while [ "$1" != -- ]; do shift; done\nshift\nexec "$@"');
  fake(t, 'psql', PSQL);
  fake(t, 'chown', 'exit 0');
  mkdirSync(join(prefix, 'run'), { recursive: true });
  // pg_dump: an archive on its stdout (pg_dump.fail: fails; pg_dump.empty: writes nothing).
  fake(t, 'pg_dump', `[ "$1" = --version ] && { echo 'pg_dump (PostgreSQL) 15.6'; exit 0; }
[ -e "$T/pg_dump.fail" ] && { echo 'pg_dump: error: query failed' >&2; exit 1; }
[ -e "$T/pg_dump.empty" ] && exit 0
printf 'PGDMP\\001\\016 fake archive\\n'`);
  // pg_restore --list FILE reads a PGDMP file (list.fail: it cannot); otherwise it restores stdin (pg_restore.rc).
  // (--list reads its standard input; a restore records the password file it was given, and what it holds)
  // pg_restore --create --list: the entries, with the database's own in props.list; --create
  // --use-list=FILE --file=-: props.sql (what pg_restore writes of the listed entries), the list it got in list.seen.
  fake(t, 'pg_restore', `if [ "$1" = --create ] && [ "$2" = --list ]; then cat > /dev/null; cat "$T/props.list" 2> /dev/null; echo '216; 1259 16394 TABLE public visits hello'; exit 0; fi
if [ "$1" = --create ]; then cat > /dev/null; cat "\${2#--use-list=}" > "$T/list.seen"; cat "$T/props.sql" 2> /dev/null; exit 0; fi
if [ "$1" = --list ]; then [ ! -e "$T/list.fail" ] && [ "$(head -c 5)" = PGDMP ] || { echo 'pg_restore: error: could not read input file' >&2; exit 1; }; exit 0; fi
[ -z "\${PGPASSFILE:-}" ] || { cat "$PGPASSFILE" > "$T/pgpass.seen"; stat -c '%a' "$PGPASSFILE" >> "$T/pgpass.seen"; }
cat > /dev/null
rc=$(cat "$T/pg_restore.rc" 2> /dev/null || echo 0)
[ "$rc" = 0 ] || echo 'pg_restore: error: could not execute query' >&2
exit "$rc"`);
  fake(t, 'mariadb', MARIADB);
  // mariadb-dump DB: a dump that ends with its completed line (dump.truncated: it does not).
  fake(t, 'mariadb-dump', `[ "$1" = --version ] && { echo 'mariadb-dump  Ver 10.19 Distrib 10.11.6-MariaDB'; exit 0; }
printf -- '-- MariaDB dump\\nCREATE TABLE \`hits\` (n int);\\nLOCK TABLES \`hits\` WRITE;\\nINSERT INTO \`hits\` VALUES\\n(1);\\nUNLOCK TABLES;\\n'
[ -e "$T/dump.truncated" ] || printf -- '-- Dump completed on 2026-12-02 10:00:00\\n'`);
  return t;
}

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** sh SCRIPT ARGS with the fakes first in PATH, `input` on stdin (a file, as sshd hands sudo a pipe or file). */
function sh(t: Tree, args: string[], input: string | Buffer = ''): Promise<Result> {
  const file = join(t.dir, 'input');
  writeFileSync(file, input);
  const fd = openSync(file, 'r');
  return new Promise((resolve, reject) => {
    const child = spawn('sh', [t.script, ...args], { env: { PATH: `${t.bin}:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`, LC_ALL: 'C', HOME: t.dir, FAKE_T: t.dir }, stdio: [fd, 'pipe', 'pipe'] });
    closeSync(fd);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const read = (t: Tree, name: string) => (existsSync(join(t.dir, name)) ? readFileSync(join(t.dir, name), 'utf8') : '');
const calls = (t: Tree) => read(t, 'calls.log').split('\n').filter(Boolean);
const dbs = (t: Tree) => read(t, 'dbs').split('\n').filter(Boolean);
const sha = (b: string | Buffer) => createHash('sha256').update(b).digest('hex');
const stagedFiles = (t: Tree) => (existsSync(t.staged) ? readdirSync(t.staged).sort() : []);
const ID = '0123456789ab';
const SHA = 'ab'.repeat(32);

const HOSTILE_PG: [string[], RegExp][] = [
  [[], /usage/],
  [['frobnicate'], /usage/],
  [['dump', 'a b', ID], /bad app name: a b/],
  [['dump', 'x;rm -rf /', ID], /bad app name/],
  [['dump', 'postgres', ID], /app name postgres is reserved/],
  [['dump', 'pg_monitor', ID], /reserved/],
  // (an app named as silver's scratch databases would have its database dropped as one)
  [['ensure', 'silver_old_hello_abcdefgh'], /app name silver_old_hello_abcdefgh is reserved/],
  [['dump', 'silver-verify', ID], /reserved/],
  [['dump', 'hello\nx', ID], /bad app name/],
  [['dump', 'hello', '../../etc/x'], /bad staged file id/],
  [['dump', 'hello', 'ABCDEF012345'], /bad staged file id/],
  [['dump', 'hello', ID, 'extra'], /usage/],
  [['get', ID, '-1', '10'], /bad offset: -1/],
  [['get', ID, '0', '99999999'], /at most 64 MiB/],
  [['get', ID, '01', '1'], /bad offset: 01/],
  [['get', '*', '0', '1'], /bad staged file id/],
  [['put', ID, '1e3'], /bad offset/],
  [['load', 'hello', ID, 'hello', SHA], /bad database hello: only silver_verify_hello_X or silver_restore_hello_X/],
  [['load', 'hello', ID, 'postgres', SHA], /bad database postgres/],
  [['load', 'hello', ID, 'silver_verify_wiki_12345678', SHA], /bad database silver_verify_wiki_12345678/],
  [['load', 'hello', ID, 'silver_verify_hello_1234567', SHA], /bad database/],
  [['load', 'hello', ID, 'silver_verify_hello_12345678\nx', SHA], /bad database/],
  [['load', 'hello', ID, 'silver_old_hello_12345678', SHA], /bad database/],
  [['load', 'hello', ID, 'silver_verify_hello_12345678', 'nope'], /bad sha256/],
  [['load', 'hello', ID, 'silver_verify_hello_12345678', SHA.toUpperCase()], /bad sha256/],
  [['restore', 'hello', ID, 'template1'], /bad database template1/],
  [['restore', 'hello', ID, 'silver_verify_hello_1234567x;'], /bad database/],
  [['drop', 'hello', 'hello'], /bad database hello/],
  [['drop', 'hello', 'template0'], /bad database/],
  [['drop', 'hello', 'silver_verify_hello_12345678" OR 1'], /bad database/],
  [['drop', 'template1', 'silver_verify_template1_12345678'], /reserved/],
  [['forget', '../staged'], /bad staged file id/],
  [['ensure', 'Hello'], /bad app name/],
];

test('silver-db-postgresql refuses hostile names, ids, databases, offsets and sums before it runs anything', async (t) => {
  const tr = tree('postgresql');
  writeFileSync(join(tr.dir, 'dbs'), 'hello\npostgres\ntemplate1\nsilver_verify_hello_12345678\n');
  for (const [args, why] of HOSTILE_PG) {
    const r = await sh(tr, args);
    t.is(r.code, 1, JSON.stringify(args));
    t.regex(r.stderr, why, JSON.stringify(args));
  }
  t.deepEqual(calls(tr), [], 'no database program ran');
  t.deepEqual(dbs(tr), ['hello', 'postgres', 'template1', 'silver_verify_hello_12345678']);
  t.deepEqual(stagedFiles(tr), []);
});

test('silver-db-mysql refuses hostile names, ids and databases before it runs anything', async (t) => {
  const tr = tree('mysql');
  for (const [args, why] of [
    [['dump', 'my-blog', ID], /bad app name for MySQL: my-blog/],
    [['dump', 'mysql', ID], /app name mysql is reserved/],
    [['dump', 'information_schema', ID], /reserved/],
    [['ensure', 'silver_old_counter_abcdefgh'], /app name silver_old_counter_abcdefgh is reserved/],
    [['dump', 'blog`; DROP', ID], /bad app name/],
    [['load', 'counter', ID, 'silver_restore_counter_1234567A', SHA], /bad database/],
    [['load', 'counter', ID, 'mysql', SHA], /bad database mysql/],
    [['restore', 'counter', ID, 'counter'], /bad database counter/],
    [['drop', 'counter', 'mysql'], /bad database mysql/],
    [['drop', 'counter', 'silver_verify_other_12345678'], /bad database/],
    [['get', ID, '0', 'x'], /bad length/],
    [['forget', 'a'], /bad staged file id/],
    [['ensure', 'counter', '10.0.0.2; DROP'], /bad address/],
  ] as [string[], RegExp][]) {
    const r = await sh(tr, args);
    t.is(r.code, 1, JSON.stringify(args));
    t.regex(r.stderr, why, JSON.stringify(args));
  }
  t.deepEqual(calls(tr).filter((c) => !c.startsWith('mariadb -u root -N')), [], 'nothing but the ensure check ran');
});

test('PostgreSQL dump: one session of the app\'s own role exports the snapshot, counts the rows in it and runs pg_dump (postgres\'s) on it; the archive is checked and staged root-only', async (t) => {
  const tr = tree('postgresql');
  writeFileSync(join(tr.svc, 'hello.password'), 's3cretpassw0rdXYZ');
  writeFileSync(join(tr.dir, 'counts'), '{ "public.visits" : 5, "public.we|ird\\nname" : 1 }');
  const r = await sh(tr, ['dump', 'hello', ID]);
  t.is(r.code, 0, r.stderr);
  const archive = Buffer.from('PGDMP\x01\x0e fake archive\n', 'latin1');
  t.is(r.stdout, `file ${archive.length} ${sha(archive)}\nserver 15.6 (fake)\ntool pg_dump (PostgreSQL) 15.6\ncounts { "public.visits" : 5, "public.we|ird\\nname" : 1 }\n`);
  t.deepEqual(stagedFiles(tr), [ID], 'only the archive stays');
  t.deepEqual(readFileSync(join(tr.staged, ID)), archive);
  t.is(statSync(tr.staged).mode & 0o777, 0o700);
  t.is(statSync(join(tr.staged, ID)).mode & 0o777, 0o600);
  // pg_dump joins the exported snapshot, on the app's database only, custom format.
  t.true(calls(tr).includes('pg_dump -Fc --snapshot=00000003-0000001B-1 -d hello'), calls(tr).join('\n'));
  t.true(calls(tr).includes('runuser -u nobody -- pg_restore --list'), calls(tr).join('\n'));
  const sql = read(tr, 'sql.log');
  const order = ['BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;', 'SELECT pg_export_snapshot() AS silver_snapshot \\gset', '\\setenv SILVER_SNAPSHOT :silver_snapshot', "SELECT 'counts ' ||", '\\! pg_dump -Fc --snapshot="$SILVER_SNAPSHOT" -d hello >&4 && echo ok >&5', 'COMMIT;'].map((s) => sql.indexOf(s));
  t.false(order.includes(-1), sql);
  t.deepEqual([...order].sort((a, b) => a - b), order, 'in one session, in this order');
  // (the session is the app's role's, over the loopback address: never a superuser's, whose
  // planning of count(*) would call the app's functions)
  t.true(calls(tr).some((c) => c === 'psql -X -v ON_ERROR_STOP=1 -qAt -h 127.0.0.1 -U hello -d hello'), calls(tr).join('\n'));
  t.false(calls(tr).some((c) => c.startsWith('psql') && c.includes('SELECT') ), 'no SQL on a command line');
});

test('PostgreSQL dump of a stopped database, a failing pg_dump, an empty or unreadable archive: exit 1, nothing staged', async (t) => {
  for (const [flag, why] of [
    ['psql.fail', /connection to server .* failed[\s\S]*silver-db-postgresql: the dump of hello failed/],
    ['pg_dump.fail', /pg_dump: error[\s\S]*pg_dump of hello failed/],
    ['pg_dump.empty', /the dump is empty/],
    ['list.fail', /pg_restore cannot read the dump: it is damaged or truncated/],
  ] as [string, RegExp][]) {
    const tr = tree('postgresql');
    writeFileSync(join(tr.svc, 'hello.password'), 's3cretpassw0rdXYZ');
    writeFileSync(join(tr.dir, flag), '');
    const r = await sh(tr, ['dump', 'hello', ID]);
    t.is(r.code, 1, flag);
    t.regex(r.stderr, why, flag);
    t.is(r.stdout, '', flag);
    t.deepEqual(stagedFiles(tr), [], flag);
  }
});

test('staged files: put appends at the offset it is told (else refuses), get reads any part as base64, forget removes', async (t) => {
  for (const service of ['postgresql', 'mysql'] as const) {
    const tr = tree(service);
    const data = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 31) % 256));
    t.is((await sh(tr, ['put', ID, '0'], data.subarray(0, 100))).code, 0);
    const wrong = await sh(tr, ['put', ID, '50'], data.subarray(100));
    t.is(wrong.code, 1);
    t.regex(wrong.stderr, /staged file 0123456789ab holds 100 bytes, not 50/);
    t.is((await sh(tr, ['put', ID, '100'], data.subarray(100))).code, 0);
    const again = await sh(tr, ['put', ID, '0'], 'x');
    t.regex(again.stderr, /staged file 0123456789ab exists/);
    t.deepEqual(readFileSync(join(tr.staged, ID)), data);
    const part = await sh(tr, ['get', ID, '250', '100']);
    t.is(part.code, 0);
    t.deepEqual(Buffer.from(part.stdout, 'base64'), data.subarray(250));
    t.deepEqual(Buffer.from((await sh(tr, ['get', ID, '0', '300'])).stdout, 'base64'), data);
    t.regex((await sh(tr, ['get', 'aaaaaaaaaaaa', '0', '1'])).stderr, /no staged file aaaaaaaaaaaa/);
    t.is((await sh(tr, ['forget', ID])).code, 0);
    t.deepEqual(stagedFiles(tr), []);
    t.deepEqual(calls(tr), [], 'no database program ran');
  }
});

test('attack: put appends only to a file put began and no load has checked (never to a dump the schedule keeps, linked into the staged folder); a MariaDB restore reloads only the dump its load checked', async (t) => {
  for (const service of ['postgresql', 'mysql'] as const) {
    const tr = tree(service);
    mkdirSync(tr.staged, { recursive: true, mode: 0o700 });
    // (a file put did not begin: as silver-backup stage links a kept scheduled dump)
    writeFileSync(join(tr.staged, ID), 'kept dump');
    const linked = await sh(tr, ['put', ID, '9'], 'appended');
    t.is(linked.code, 1);
    t.regex(linked.stderr, /staged file 0123456789ab is not one put is writing: nothing appended/);
    t.is(readFileSync(join(tr.staged, ID), 'utf8'), 'kept dump', service);
  }
  const { tr, dump, target } = await stagedCounter();
  t.is((await sh(tr, ['load', 'counter', ID, target, sha(dump)])).code, 0);
  const after = await sh(tr, ['put', ID, String(dump.length)], 'DROP DATABASE mysql;\n');
  t.is(after.code, 1, 'no byte after the load checked the sum');
  t.regex(after.stderr, /not one put is writing/);
  // (changed behind put's back all the same: the restore refuses)
  writeFileSync(join(tr.staged, ID), `${dump}-- more\n-- Dump completed on 2026-12-02\n`);
  const r = await sh(tr, ['restore', 'counter', ID, target]);
  t.is(r.code, 1);
  t.regex(r.stderr, /staged file 0123456789ab is not the dump load checked: nothing restored/);
  t.false(read(tr, 'sql.log').includes('DROP DATABASE IF EXISTS `counter`'), 'the app\'s database untouched');
});

test('PostgreSQL load: the sum checked first (a mismatch creates nothing), then a new database owned by the app, restored as the app\'s role; a failure drops it', async (t) => {
  const tr = tree('postgresql');
  writeFileSync(join(tr.dir, 'dbs'), 'postgres\nhello\n');
  writeFileSync(join(tr.dir, 'roles'), 'postgres\nhello\n');
  writeFileSync(join(tr.dir, 'counts'), '{"public.visits": 5}');
  writeFileSync(join(tr.svc, 'hello.password'), 's3cretpassw0rdXYZ');
  const archive = Buffer.from('PGDMP\x01\x0e an archive\n', 'latin1');
  await sh(tr, ['put', ID, '0'], archive);
  const target = 'silver_verify_hello_0a1b2c3d';
  const bad = await sh(tr, ['load', 'hello', ID, target, SHA]);
  t.is(bad.code, 1);
  t.regex(bad.stderr, new RegExp(`the dump's sha256 is ${sha(archive)}, not ${SHA}: nothing restored`));
  t.deepEqual(calls(tr), []);
  const ok = await sh(tr, ['load', 'hello', ID, target, sha(archive)]);
  t.is(ok.code, 0, ok.stderr);
  t.is(ok.stdout, 'counts {"public.visits": 5}\n');
  t.deepEqual(dbs(tr), ['postgres', 'hello', target]);
  t.regex(read(tr, 'sql.log'), /CREATE DATABASE "silver_verify_hello_0a1b2c3d" OWNER "hello";\nREVOKE ALL ON DATABASE "silver_verify_hello_0a1b2c3d" FROM PUBLIC;/);
  // As the app's own role over the loopback address, never a superuser session; its password in a file postgres alone reads, gone after.
  t.true(calls(tr).includes(`pg_restore --no-owner --no-privileges --exit-on-error -h 127.0.0.1 -U hello -d ${target}`), calls(tr).join('\n'));
  // (the archive read by pg_restore as an account of its own — it came from outside: neither root nor postgres)
  t.true(calls(tr).some((c) => /^runuser -u silver-pgload -- env PGPASSFILE=\S+ PGOPTIONS=.* pg_restore --no-owner /.test(c)), calls(tr).join('\n'));
  t.is(read(tr, 'pgpass.seen'), `127.0.0.1:*:${target}:hello:s3cretpassw0rdXYZ\n600\n`);
  t.false(calls(tr).some((c) => c.includes('s3cretpassw0rdXYZ')), 'the password on no command line');
  t.deepEqual(readdirSync(join(tr.dir, 'root/run')), [], 'the password file removed');
  t.regex(read(tr, 'sql.log'), /BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\nSELECT 'counts ' \|\|/);
  // It exists now: a second load into it is refused and leaves it alone.
  const twice = await sh(tr, ['load', 'hello', ID, target, sha(archive)]);
  t.regex(twice.stderr, /database silver_verify_hello_0a1b2c3d exists/);
  t.deepEqual(dbs(tr), ['postgres', 'hello', target]);
  // A restore that fails: the new database goes.
  writeFileSync(join(tr.dir, 'pg_restore.rc'), '1');
  const failed = await sh(tr, ['load', 'hello', ID, 'silver_restore_hello_ffffffff', sha(archive)]);
  t.is(failed.code, 1);
  t.regex(failed.stderr, /pg_restore into silver_restore_hello_ffffffff failed/);
  t.deepEqual(dbs(tr), ['postgres', 'hello', target]);
  t.regex(read(tr, 'sql.log'), /DROP DATABASE IF EXISTS "silver_restore_hello_ffffffff" WITH \(FORCE\);/);
  // A role the app never got: refused.
  const none = await sh(tr, ['load', 'wiki', ID, 'silver_verify_wiki_00000000', sha(archive)]);
  t.regex(none.stderr, /no role wiki here/);
});

test('PostgreSQL restore: the loaded copy counted, connections to the app\'s database closed, both renamed in one transaction, owner and grants set, the old one dropped', async (t) => {
  const tr = tree('postgresql');
  const target = 'silver_restore_hello_0a1b2c3d';
  writeFileSync(join(tr.dir, 'dbs'), `postgres\nhello\n${target}\n`);
  writeFileSync(join(tr.dir, 'counts'), '{"public.visits": 5}');
  writeFileSync(join(tr.svc, 'hello.password'), 's3cretpassw0rdXYZ');
  const r = await sh(tr, ['restore', 'hello', ID, target]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'counts {"public.visits": 5}\n');
  t.deepEqual(dbs(tr), ['postgres', 'hello']);
  const sql = read(tr, 'sql.log');
  const steps = [
    'ALTER DATABASE "hello" ALLOW_CONNECTIONS false;',
    "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity WHERE datname = 'hello' AND pid <> pg_backend_pid();",
    'BEGIN;\nALTER DATABASE "hello" RENAME TO "silver_old_hello_0a1b2c3d";\nALTER DATABASE "silver_restore_hello_0a1b2c3d" RENAME TO "hello";\nCOMMIT;',
    'ALTER DATABASE "hello" OWNER TO "hello";\nREVOKE ALL ON DATABASE "hello" FROM PUBLIC;\nALTER DATABASE "hello" ALLOW_CONNECTIONS true;',
    'DROP DATABASE IF EXISTS "silver_old_hello_0a1b2c3d" WITH (FORCE);',
  ].map((s) => sql.indexOf(s));
  t.false(steps.includes(-1), sql);
  t.deepEqual([...steps].sort((a, b) => a - b), steps);
  const missing = await sh(tr, ['restore', 'hello', ID, target]);
  t.regex(missing.stderr, /no database silver_restore_hello_0a1b2c3d: load it first/);
  t.is((await sh(tr, ['drop', 'hello', 'silver_verify_hello_0a1b2c3d'])).code, 0);
  t.regex(read(tr, 'sql.log'), /DROP DATABASE IF EXISTS "silver_verify_hello_0a1b2c3d" WITH \(FORCE\);/);
  // What a restore killed after its swap (or while connections were held off) leaves: the next
  // restore (and every update's ensure) removes the database from before it and lets connections
  // in again; another app's is left alone. A verification's drop touches neither (it could meet a
  // restore in its swap: it runs outside the deploy lock).
  writeFileSync(join(tr.dir, 'dbs'), `postgres\nhello\nsilver_old_hello_deadbeef\nsilver_old_hello_x_deadbeef\n${target}\n`);
  writeFileSync(join(tr.dir, 'sql.log'), '');
  t.is((await sh(tr, ['drop', 'hello', 'silver_verify_hello_0a1b2c3d'])).code, 0);
  t.notRegex(read(tr, 'sql.log'), /silver_old_hello_deadbeef|ALLOW_CONNECTIONS/);
  const again = await sh(tr, ['restore', 'hello', ID, target]);
  t.is(again.code, 0, again.stderr);
  t.false(dbs(tr).includes('silver_old_hello_deadbeef'));
  t.true(dbs(tr).includes('silver_old_hello_x_deadbeef'), "another app's is left alone");
  const log = read(tr, 'sql.log');
  t.true(log.indexOf('DROP DATABASE "silver_old_hello_deadbeef" WITH (FORCE)') < log.indexOf('ALTER DATABASE "hello" ALLOW_CONNECTIONS false;'), 'before its own swap');
});

test('PostgreSQL restore: the database-level settings the dump kept (DATABASE PROPERTIES, the comment) are made again by the app\'s own role, read by psql as data only; refused ones are said, never shown', async (t) => {
  const tr = tree('postgresql');
  const target = 'silver_restore_hello_0a1b2c3d';
  const setup = () => {
    writeFileSync(join(tr.dir, 'dbs'), `postgres\nhello\n${target}\n`);
    writeFileSync(join(tr.dir, 'sql.log'), '');
    writeFileSync(join(tr.dir, 'calls.log'), '');
  };
  setup();
  writeFileSync(join(tr.dir, 'counts'), '{"public.visits": 5}');
  writeFileSync(join(tr.svc, 'hello.password'), 's3cretpassw0rdXYZ');
  const archive = Buffer.from('PGDMP\x01\x0e an archive\n', 'latin1');
  await sh(tr, ['put', ID, '0'], archive);
  // (the sum load recorded: the settings come from the archive it checked alone)
  writeFileSync(join(tr.staged, `${ID}.loaded`), `${sha(archive)}\n`);
  // (what pg_restore --create writes of the entries: the database's comment and properties, each
  // after its header; a value with a line break, a tab, a backslash and what psql would take for
  // its own commands at a line's start)
  writeFileSync(join(tr.dir, 'props.list'), '3358; 0 0 COMMENT - DATABASE hello hello\n3359; 0 0 ACL - DATABASE hello hello\n3360; 0 0 DATABASE PROPERTIES - hello hello\n');
  writeFileSync(
    join(tr.dir, 'props.sql'),
    [
      "SET statement_timeout = 0;", '', '--', '-- Name: hello; Type: DATABASE; Schema: -; Owner: hello', '--', '', 'CREATE DATABASE hello WITH TEMPLATE = template0;', '', '\\connect hello', '',
      '--', '-- Name: DATABASE hello; Type: COMMENT; Schema: -; Owner: hello', '--', '', "COMMENT ON DATABASE hello IS 'the hello", '--', "db';", '', '',
      '--', '-- Name: hello; Type: DATABASE PROPERTIES; Schema: -; Owner: hello', '--', '',
      "ALTER DATABASE hello SET work_mem TO '8MB';",
      "ALTER DATABASE hello SET \"app.note\" TO E'a\\\\b\tc\n\\\\! touch /pwned\n\\\\.';",
      "ALTER ROLE hello IN DATABASE hello SET search_path TO 'app', 'public';", '', '', '\\unrestrict x', '\\connect hello', "SET lock_timeout = 0;", '',
    ].join('\n'),
  );
  const r = await sh(tr, ['restore', 'hello', ID, target]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'settings restored\ncounts {"public.visits": 5}\n');
  t.is(read(tr, 'list.seen'), '3358; 0 0 COMMENT - DATABASE hello hello\n3360; 0 0 DATABASE PROPERTIES - hello hello\n', 'the database\'s comment and properties alone');
  // After the swap, in a session of the app's role in its database (never a superuser's), its
  // password in a file postgres alone reads, gone after; the statements one row of COPY's text
  // format (every backslash, tab and line break escaped: nothing psql could run as a command of
  // its own), run by EXECUTE in one statement.
  // (the copy's rows counted first, in a session of the app's role in the copy)
  const session = calls(tr).filter((c) => c.startsWith('psql ') && c.includes('-U hello'));
  t.deepEqual(session, [`psql -X -v ON_ERROR_STOP=1 -qAt -h 127.0.0.1 -U hello -d ${target}`, 'psql -X -v ON_ERROR_STOP=1 -qAt -h 127.0.0.1 -U hello -d hello']);
  t.regex(calls(tr).find((c) => c.startsWith('runuser') && c.includes('-U hello'))!, /^runuser -u postgres -- env PGPASSFILE=\S+ PGOPTIONS=/, 'run as postgres, not root');
  t.is(read(tr, 'pgpass.psql.seen'), '127.0.0.1:*:hello:hello:s3cretpassw0rdXYZ\n600\n');
  const sql = read(tr, 'sql.log');
  const row =
    "\\nCOMMENT ON DATABASE hello IS 'the hello\\n--\\ndb';\\n\\n\\n\\nALTER DATABASE hello SET work_mem TO '8MB';\\nALTER DATABASE hello SET \"app.note\" TO E'a\\\\\\\\b\\tc\\n\\\\\\\\! touch /pwned\\n\\\\\\\\.';\\nALTER ROLE hello IN DATABASE hello SET search_path TO 'app', 'public';";
  t.true(sql.includes(`CREATE TEMP TABLE silver_settings (sql text);\nCREATE TEMP TABLE silver_refused (n int);\nCOPY silver_settings FROM STDIN;\n${row}\n\\.\nDO $silver$ DECLARE`), sql);
  // (each statement on its own — split before each one's start — a refusal caught and counted)
  t.true(sql.includes("regexp_split_to_table(sql, $r$\\n(?=ALTER DATABASE |ALTER ROLE |COMMENT ON DATABASE )$r$)") && sql.includes('BEGIN EXECUTE s; EXCEPTION WHEN OTHERS THEN n := n + 1; END;'), sql);
  // The app's sessions opened since the swap, before the settings, end (they begin again with them).
  t.true(sql.indexOf("pg_terminate_backend(pid, 5000)) FROM pg_stat_activity WHERE datname = 'hello' AND usename = 'hello' AND backend_start < now();") > sql.indexOf('FROM silver_refused'), sql);
  t.true(sql.indexOf('DROP DATABASE IF EXISTS "silver_old_hello_0a1b2c3d" WITH (FORCE);') < sql.indexOf('COPY silver_settings'), 'after the swap: they name the database that is the app\'s now');
  t.false(sql.includes('CREATE DATABASE hello') || sql.includes('\\connect') || sql.includes('\\unrestrict'), 'nothing of the other entries');
  t.deepEqual(readdirSync(join(tr.dir, 'root/run')), [], 'the password file and the input removed');

  // Some refused (a setting only a superuser may make, another role's): counted, no value shown.
  setup();
  writeFileSync(join(tr.dir, 'settings.partial'), '');
  const partly = await sh(tr, ['restore', 'hello', ID, target]);
  t.is(partly.stdout, 'settings refused 1 of 3\ncounts {"public.visits": 5}\n');
  rmSync(join(tr.dir, 'settings.partial'));
  // The session refused whole: said, no value shown; the rows stay restored.
  setup();
  writeFileSync(join(tr.dir, 'settings.fail'), '');
  const refused = await sh(tr, ['restore', 'hello', ID, target]);
  t.is(refused.code, 0, refused.stderr);
  t.is(refused.stdout, 'settings refused\ncounts {"public.visits": 5}\n');
  t.notRegex(refused.stdout + refused.stderr, /8MB|pwned|permission denied/);
  t.deepEqual(dbs(tr), ['postgres', 'hello']);

  // A staged file changed since load checked it: its settings are not taken.
  setup();
  writeFileSync(join(tr.staged, ID), Buffer.concat([archive, Buffer.from('x')]));
  const changed = await sh(tr, ['restore', 'hello', ID, target]);
  t.is(changed.stdout, 'counts {"public.visits": 5}\n');
  t.false(read(tr, 'sql.log').includes('silver_settings'));
  writeFileSync(join(tr.staged, ID), archive);

  // An archive without them: no settings session (the count's alone), no line.
  setup();
  rmSync(join(tr.dir, 'props.list'));
  const none = await sh(tr, ['restore', 'hello', ID, target]);
  t.is(none.stdout, 'counts {"public.visits": 5}\n');
  t.deepEqual(calls(tr).filter((c) => c.startsWith('psql ') && c.includes('-U hello')), [`psql -X -v ON_ERROR_STOP=1 -qAt -h 127.0.0.1 -U hello -d ${target}`]);
});

test('MariaDB dump: mariadb-dump of the app\'s database in one transaction, with routines and triggers; a truncated dump fails and is not kept', async (t) => {
  const tr = tree('mysql');
  writeFileSync(join(tr.dir, 'dbs'), 'counter\n');
  const r = await sh(tr, ['dump', 'counter', ID]);
  t.is(r.code, 0, r.stderr);
  const dump = readFileSync(join(tr.staged, ID));
  t.regex(dump.toString(), /-- Dump completed on/);
  t.is(r.stdout, `file ${dump.length} ${sha(dump)}\nserver 10.11.6-MariaDB (fake)\ntool mariadb-dump  Ver 10.19 Distrib 10.11.6-MariaDB\n`);
  t.true(calls(tr).includes('mariadb-dump --single-transaction --routines --triggers --events --hex-blob counter'), calls(tr).join('\n'));
  t.is(statSync(join(tr.staged, ID)).mode & 0o777, 0o600);

  const tr2 = tree('mysql');
  writeFileSync(join(tr2.dir, 'dbs'), 'counter\n');
  writeFileSync(join(tr2.dir, 'dump.truncated'), '');
  const bad = await sh(tr2, ['dump', 'counter', ID]);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /does not end with its "-- Dump completed" line: it is truncated/);
  t.deepEqual(stagedFiles(tr2), []);
  const none = await sh(tr2, ['dump', 'other', ID]);
  t.regex(none.stderr, /no database other here/);
});

test('MariaDB: the database\'s own defaults (character set, collation) travel in the dump\'s first line and make the database again with them; a dump without it, or with a line of another shape, takes the server\'s', async (t) => {
  const tr = tree('mysql');
  writeFileSync(join(tr.dir, 'dbs'), 'counter\n');
  writeFileSync(join(tr.dir, 'defaults'), 'utf8mb4 utf8mb4_unicode_ci');
  const r = await sh(tr, ['dump', 'counter', ID]);
  t.is(r.code, 0, r.stderr);
  const dump = readFileSync(join(tr.staged, ID), 'utf8');
  t.true(dump.startsWith('-- silver-database-defaults: utf8mb4 utf8mb4_unicode_ci\n-- MariaDB dump'), dump.slice(0, 120));
  t.regex(read(tr, 'sql.log'), /SELECT CONCAT\(DEFAULT_CHARACTER_SET_NAME, ' ', DEFAULT_COLLATION_NAME\) FROM information_schema\.SCHEMATA WHERE SCHEMA_NAME = 'counter';/);
  for (const [first, create] of [
    ['-- silver-database-defaults: utf8mb4 utf8mb4_unicode_ci', ' CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci'],
    ['-- MariaDB dump', ''],
    ["-- silver-database-defaults: utf8mb4; DROP DATABASE mysql; -- x", ''],
    ['-- silver-database-defaults: utf8mb4 utf8mb4_unicode_ci extra', ''],
  ] as const) {
    const tl = tree('mysql');
    writeFileSync(join(tl.dir, 'dbs'), 'counter\n');
    writeFileSync(join(tl.dir, 'counts'), '{"hits": 1}');
    const text = `${first}\n-- MariaDB dump\nINSERT INTO \`hits\` VALUES (1);\n-- Dump completed on 2026-12-02\n`;
    await sh(tl, ['put', ID, '0'], text);
    const target = 'silver_restore_counter_0a1b2c3d';
    t.is((await sh(tl, ['load', 'counter', ID, target, sha(Buffer.from(text))])).code, 0, first);
    t.is((await sh(tl, ['restore', 'counter', ID, target])).code, 0, first);
    const sql = read(tl, 'sql.log');
    t.true(sql.includes(`CREATE DATABASE \`${target}\`${create};`), `${first}: ${sql}`);
    t.true(sql.includes(`DROP DATABASE IF EXISTS \`counter\`;\nCREATE DATABASE \`counter\`${create};`), `${first}: ${sql}`);
  }
});

/** A MariaDB node with the app counter's database (1 row), a dump of it staged as ID, and the restore's scratch name. */
async function stagedCounter() {
  const tr = tree('mysql');
  writeFileSync(join(tr.dir, 'dbs'), 'counter\n');
  writeFileSync(join(tr.dir, 'counts'), '{"hits": 1}');
  const dump = '-- MariaDB dump\nINSERT INTO `hits` VALUES (1);\n-- Dump completed on 2026-12-02\n';
  await sh(tr, ['put', ID, '0'], dump);
  return { tr, dump, target: 'silver_restore_counter_0a1b2c3d' };
}

test('MariaDB load and restore: the sum and the completed line checked, a new database loaded; restore makes the app\'s again from the dump, grants given again, the copy dropped', async (t) => {
  const { tr, dump, target } = await stagedCounter();
  t.regex((await sh(tr, ['load', 'counter', ID, target, SHA])).stderr, /nothing restored/);
  t.deepEqual(calls(tr), []);
  const ok = await sh(tr, ['load', 'counter', ID, target, sha(dump)]);
  t.is(ok.code, 0, ok.stderr);
  t.is(ok.stdout, 'counts {"hits": 1}\n');
  t.deepEqual(dbs(tr), ['counter', target]);
  // (--sandbox: a dump's \\! or \\. is refused; loaded by an account of the load's own, never root,
  // with its option file alone and LOAD DATA LOCAL off)
  t.true(calls(tr).some((c) => new RegExp(`^mariadb --defaults-file=\\S+/loader-silver_load_[a-z0-9]{8}\\.cnf --local-infile=0 --sandbox ${target}$`).test(c)), calls(tr).join('\n'));
  t.false(calls(tr).some((c) => c.includes(`-u root ${target}`) || c.includes(`root ${target}`)), 'never root');
  t.regex(read(tr, 'sql.log'), /START TRANSACTION WITH CONSISTENT SNAPSHOT;/);
  const r = await sh(tr, ['restore', 'counter', ID, target]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'counts {"hits": 1}\n');
  t.deepEqual(dbs(tr), ['counter']);
  const sql = read(tr, 'sql.log');
  t.regex(sql, /DROP DATABASE IF EXISTS `counter`;\nCREATE DATABASE `counter`;/);
  t.regex(sql, /GRANT ALL PRIVILEGES ON `counter`\.\* TO 'x'@'10\.0\.0\.2';/);
  t.regex(sql, /DROP DATABASE IF EXISTS `silver_restore_counter_0a1b2c3d`;/);
  t.true(calls(tr).some((c) => /^mariadb --defaults-file=\S+\/loader-counter\.cnf --local-infile=0 --sandbox counter$/.test(c)), calls(tr).join('\n'));
  // A load that fails leaves no database behind.
  writeFileSync(join(tr.dir, 'load.fail'), '');
  const failed = await sh(tr, ['load', 'counter', ID, 'silver_verify_counter_00000000', sha(dump)]);
  t.is(failed.code, 1);
  t.regex(failed.stderr, /loading the dump into silver_verify_counter_00000000 failed/);
  t.deepEqual(dbs(tr), ['counter']);
});

test('MariaDB: a restore cut short (its load fails, as a kill or a reboot would leave it) marks the database incomplete: no dump of it is taken until a restore completes', async (t) => {
  const { tr, dump, target } = await stagedCounter();
  t.is((await sh(tr, ['load', 'counter', ID, target, sha(dump)])).code, 0);
  writeFileSync(join(tr.dir, 'load.fail'), '');
  const cut = await sh(tr, ['restore', 'counter', ID, target]);
  t.is(cut.code, 1);
  t.regex(cut.stderr, /counter is incomplete/);
  t.is(readFileSync(join(tr.svc, 'incomplete-counter'), 'utf8'), `${ID}\n`);
  const refused = await sh(tr, ['dump', 'counter', 'bbbbbbbbbbbb']);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /counter is incomplete: a restore of it was cut short \(killed, a reboot, a load that failed\); restore it again \(silver restore\) before it is dumped/);
  t.false(existsSync(join(tr.staged, 'bbbbbbbbbbbb')), 'nothing staged');
  rmSync(join(tr.dir, 'load.fail'));
  const again = await sh(tr, ['restore', 'counter', ID, target]);
  t.is(again.code, 0, again.stderr);
  t.false(existsSync(join(tr.svc, 'incomplete-counter')));
  t.is((await sh(tr, ['dump', 'counter', 'cccccccccccc'])).code, 0);
});

test('MariaDB: a dump of an app\'s database waits while a restore of it runs (a dump of the half-loaded database would pass for a good backup)', async (t) => {
  const tr = tree('mysql');
  writeFileSync(join(tr.dir, 'dbs'), 'counter\n');
  mkdirSync(tr.staged, { recursive: true, mode: 0o700 });
  // (a restore under way: it holds the database's lock, then its load ends — the marker)
  const marker = join(tr.dir, 'restore-done');
  const holder = spawn('flock', ['-x', join(tr.svc, 'lock-counter'), '-c', `sleep 1; touch '${marker}'`], { stdio: 'ignore' });
  const held = new Promise((r) => holder.on('exit', r));
  for (let i = 0; i < 100 && !existsSync(join(tr.svc, 'lock-counter')); i++) await new Promise((r) => setTimeout(r, 10));
  fake(tr, 'mariadb-dump', `[ "$1" = --version ] && { echo 'mariadb-dump  Ver 10.19'; exit 0; }
[ -e '${marker}' ] && echo after >> "$T/order" || echo during >> "$T/order"
printf -- '-- MariaDB dump\\n-- Dump completed on 2026-12-02 10:00:00\\n'`);
  const r = await sh(tr, ['dump', 'counter', ID]);
  await held;
  t.is(r.code, 0, r.stderr);
  t.is(read(tr, 'order'), 'after\n', 'the dump ran once the restore was done');
  t.true(readFileSync(join(layersRoot(), 'service/mysql/bin/silver-db-mysql'), 'utf8').includes('db_lock "$db" exclusive'), 'a restore takes it alone');
});

test('ensure still hands out the password on stdout only: never on a command line', async (t) => {
  for (const service of ['postgresql', 'mysql'] as const) {
    const tr = tree(service);
    const r = await sh(tr, service === 'mysql' ? ['ensure', 'counter', '10.0.0.2'] : ['ensure', 'hello']);
    t.is(r.code, 0, r.stderr);
    const pw = r.stdout.trim();
    t.regex(pw, /^[A-Za-z0-9]{20,}$/);
    t.false(read(tr, 'calls.log').includes(pw), 'not in any argv');
    if (service === 'mysql') t.true(read(tr, 'sql.log').includes(pw), 'on standard input');
    else {
      // PostgreSQL is given the SCRAM verifier of it, never the password (a failing statement,
      // or a server that logs statements, logs what the server keeps anyway)
      t.false(read(tr, 'sql.log').includes(pw), 'no password in any statement');
      const m = /PASSWORD 'SCRAM-SHA-256\$4096:([^$']+)\$([^:']+):([^']+)'/.exec(read(tr, 'sql.log'));
      t.truthy(m, read(tr, 'sql.log'));
      const salted = pbkdf2Sync(pw, Buffer.from(m![1]!, 'base64'), 4096, 32, 'sha256');
      const key = (name: string) => createHmac('sha256', salted).update(name).digest();
      t.is(createHash('sha256').update(key('Client Key')).digest('base64'), m![2]!, 'the stored key of this password');
      t.is(key('Server Key').toString('base64'), m![3]!, 'the server key of this password');
    }
    t.is(readFileSync(join(tr.svc, `${service === 'mysql' ? 'counter' : 'hello'}.password`), 'utf8').trim(), pw);
    const list = await sh(tr, ['list']);
    t.is(list.stdout, `db ${service === 'mysql' ? 'counter' : 'hello'}\n`);
  }
});

test('PostgreSQL ensure: two sessions whatever there is (what exists, then what is missing and the password); a role with rights beyond its database is refused', async (t) => {
  const tr = tree('postgresql');
  const first = await sh(tr, ['ensure', 'hello']);
  t.is(first.code, 0, first.stderr);
  t.regex(first.stderr, /created role hello\ncreated database hello/);
  t.is(calls(tr).filter((c) => c.startsWith('psql')).length, 2);
  const sql = read(tr, 'sql.log');
  t.regex(sql, /CREATE ROLE "hello" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD 'SCRAM-SHA-256\$4096:[^']+';\nCREATE DATABASE "hello" OWNER "hello";\nREVOKE ALL ON DATABASE "hello" FROM PUBLIC;/);
  // Again, with both there: the password set again, nothing created.
  writeFileSync(join(tr.dir, 'roles'), 'postgres\nhello\n');
  writeFileSync(join(tr.dir, 'sql.log'), '');
  writeFileSync(join(tr.dir, 'calls.log'), '');
  const again = await sh(tr, ['ensure', 'hello']);
  t.is(again.code, 0, again.stderr);
  t.is(again.stdout, first.stdout, 'the same password');
  t.is(again.stderr, '');
  t.is(calls(tr).filter((c) => c.startsWith('psql')).length, 2);
  t.regex(read(tr, 'sql.log'), /ALTER ROLE "hello" LOGIN PASSWORD 'SCRAM-SHA-256\$4096:[^']+';\nREVOKE ALL ON DATABASE "hello" FROM PUBLIC;\n/);
  t.regex(read(tr, 'sql.log'), /ALTER DATABASE "hello" ALLOW_CONNECTIONS true/, 'connections allowed again (a restore killed while it held them off), in the same session');
  t.notRegex(read(tr, 'sql.log'), /CREATE/);
  // A role with superuser (or createrole, createdb, replication, bypassrls) rights: refused, nothing changed.
  writeFileSync(join(tr.dir, 'rolsuper'), 'true');
  writeFileSync(join(tr.dir, 'sql.log'), '');
  const bad = await sh(tr, ['ensure', 'hello']);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /role hello has superuser, createrole, createdb, replication or bypassrls rights, or is a member of another role: refusing/);
  t.notRegex(read(tr, 'sql.log'), /ALTER|CREATE|REVOKE/);
});

test('attack: a MariaDB dump is loaded by an account with rights on the one database it fills and nothing ON *.*, its password in an option file of root\'s read alone (--defaults-file), LOAD DATA LOCAL off; a copy\'s account is dropped, the app\'s local one (a restore) locked, whatever ends the load', async (t) => {
  const { tr, dump, target } = await stagedCounter();
  const ok = await sh(tr, ['load', 'counter', ID, target, sha(dump)]);
  t.is(ok.code, 0, ok.stderr);
  const [path, , user, password, mode] = read(tr, 'loader.seen').split('\n');
  const name = /^user=(silver_load_[a-z0-9]{8})$/.exec(user!)?.[1];
  t.truthy(name, user);
  t.regex(password!, /^password=[A-Za-z0-9]{32}$/);
  t.is(mode, '600');
  t.is(path, join(tr.svc, `loader-${name}.cnf`));
  const pw = password!.slice('password='.length);
  t.false(calls(tr).some((c) => c.includes(pw)), 'the password is on no command line');
  const sql = read(tr, 'sql.log');
  // (the target's name taken literally: _ is a pattern in a database-level grant)
  t.true(sql.includes(`CREATE USER IF NOT EXISTS '${name}'@'localhost' IDENTIFIED BY '${pw}';\nALTER USER '${name}'@'localhost' IDENTIFIED BY '${pw}' ACCOUNT UNLOCK;\nGRANT ALL PRIVILEGES ON \`silver\\_restore\\_counter\\_0a1b2c3d\`.* TO '${name}'@'localhost';\n--`), sql);
  t.false(/ON \*\.\*/.test(sql), 'no global right (SET USER would let a dump CALL a procedure of root\'s)');
  t.true(sql.includes(`DROP USER IF EXISTS '${name}'@'localhost';`), 'the account is dropped');
  t.false(existsSync(path!), 'its option file is removed');
  // A restore loads the app's database by the app's local account, locked (a new password) after.
  const r = await sh(tr, ['restore', 'counter', ID, target]);
  t.is(r.code, 0, r.stderr);
  const restoreSql = read(tr, 'sql.log').slice(sql.length);
  t.regex(restoreSql, /CREATE USER IF NOT EXISTS 'counter'@'localhost' IDENTIFIED BY '[A-Za-z0-9]{32}';\nALTER USER 'counter'@'localhost' IDENTIFIED BY '[A-Za-z0-9]{32}' ACCOUNT UNLOCK;\nGRANT ALL PRIVILEGES ON `counter`\.\* TO 'counter'@'localhost';/);
  t.regex(restoreSql, /ALTER USER 'counter'@'localhost' IDENTIFIED BY '[A-Za-z0-9]{32}' ACCOUNT LOCK;/);
  t.false(/DROP USER IF EXISTS 'counter'/.test(restoreSql), 'the app\'s local account stays: its objects\' definer');
  // A load that fails drops the account and its file all the same.
  writeFileSync(join(tr.dir, 'load.fail'), '');
  rmSync(join(tr.dir, 'loader.seen'));
  await sh(tr, ['put', 'bbbbbbbbbbbb', '0'], dump);
  t.is((await sh(tr, ['load', 'counter', 'bbbbbbbbbbbb', 'silver_verify_counter_00000000', sha(dump)])).code, 1);
  const failed = read(tr, 'loader.seen').split('\n');
  t.false(existsSync(failed[0]!));
  t.true(read(tr, 'sql.log').includes(`DROP USER IF EXISTS '${/^user=(.*)$/.exec(failed[2]!)![1]}'@'localhost';`));
  t.deepEqual(readdirSync(tr.svc).filter((f) => f.endsWith('.cnf')), []);
});

test('attack: the definers a MariaDB dump names for its objects: the app\'s own user (at an address, or local) becomes the loading account, any other stays and MariaDB refuses it; a load whose objects run as anyone else, or whose definers cannot be read, is refused and leaves nothing', async (t) => {
  const tr = tree('mysql');
  writeFileSync(join(tr.dir, 'dbs'), 'counter\n');
  writeFileSync(join(tr.dir, 'counts'), '{"hits": 1}');
  const lines = [
    '/*!50003 CREATE*/ /*!50017 DEFINER=`counter`@`10.0.0.2`*/ /*!50003 TRIGGER t1 BEFORE INSERT ON hits FOR EACH ROW SET NEW.n = 1 */;;',
    'CREATE DEFINER=`counter`@`localhost` PROCEDURE `p1`()',
    '/*!50013 DEFINER=`counter`@`10.213.246.17` SQL SECURITY DEFINER */',
    '/*!50106 CREATE*/ /*!50117 DEFINER=`counter`@`10.0.0.2`*/ /*!50106 EVENT `e1` ON SCHEDULE EVERY 1 DAY DO SELECT 1 */ ;;',
    'CREATE DEFINER=`root`@`localhost` PROCEDURE `p2`()',
    'CREATE DEFINER=`counter`@`%` PROCEDURE `p3`()',
    'CREATE DEFINER=`counter_x`@`10.0.0.2` PROCEDURE `p4`()',
    "INSERT INTO `hits` VALUES ('CREATE DEFINER=`counter`@`10.0.0.2`');",
  ];
  const dump = `-- MariaDB dump\n${lines.join('\n')}\n-- Dump completed on 2026-12-02\n`;
  await sh(tr, ['put', ID, '0'], dump);
  const target = 'silver_verify_counter_0a1b2c3d';
  t.is((await sh(tr, ['load', 'counter', ID, target, sha(dump)])).code, 0);
  const loaded = read(tr, 'sql.log').split('--\n').find((x) => x.startsWith('-- MariaDB dump'))!.split('\n');
  t.deepEqual(loaded.slice(1, 9), [
    '/*!50003 CREATE*/ /*!50017 DEFINER=CURRENT_USER*/ /*!50003 TRIGGER t1 BEFORE INSERT ON hits FOR EACH ROW SET NEW.n = 1 */;;',
    'CREATE DEFINER=CURRENT_USER PROCEDURE `p1`()',
    '/*!50013 DEFINER=CURRENT_USER SQL SECURITY DEFINER */',
    '/*!50106 CREATE*/ /*!50117 DEFINER=CURRENT_USER*/ /*!50106 EVENT `e1` ON SCHEDULE EVERY 1 DAY DO SELECT 1 */ ;;',
    // (any other definer is left as it is: the loading account may not name it, and MariaDB refuses the load)
    'CREATE DEFINER=`root`@`localhost` PROCEDURE `p2`()',
    'CREATE DEFINER=`counter`@`%` PROCEDURE `p3`()',
    'CREATE DEFINER=`counter_x`@`10.0.0.2` PROCEDURE `p4`()',
    "INSERT INTO `hits` VALUES ('CREATE DEFINER=`counter`@`10.0.0.2`');",
  ]);
  // What the database holds afterwards is checked all the same: only the loading account.
  t.is((await sh(tr, ['drop', 'counter', target])).code, 0);
  writeFileSync(join(tr.dir, 'definers'), 'LOADER@localhost\n');
  t.is((await sh(tr, ['load', 'counter', ID, target, sha(dump)])).code, 0);
  t.is((await sh(tr, ['drop', 'counter', target])).code, 0);
  for (const other of ['root@localhost', 'counter@10.0.0.2', 'counter@localhost', 'LOADER@%']) {
    writeFileSync(join(tr.dir, 'definers'), `LOADER@localhost\n${other}\n`);
    const r = await sh(tr, ['load', 'counter', ID, target, sha(dump)]);
    t.is(r.code, 1, other);
    t.regex(r.stderr, /the dump makes triggers, views, routines or events that run as another user than the app's \(.+\): refused, nothing restored/);
    t.deepEqual(dbs(tr), ['counter'], 'the throw-away database is dropped');
  }
  rmSync(join(tr.dir, 'definers'));
  writeFileSync(join(tr.dir, 'definers.fail'), '');
  const blind = await sh(tr, ['load', 'counter', ID, target, sha(dump)]);
  t.is(blind.code, 1);
  t.regex(blind.stderr, /the definers of silver_verify_counter_0a1b2c3d's triggers, views, routines and events could not be read: refused/);
  t.deepEqual(dbs(tr), ['counter']);
  // restore: the same check on the app's database, which is dropped when it fails (still marked incomplete).
  rmSync(join(tr.dir, 'definers.fail'));
  t.is((await sh(tr, ['load', 'counter', ID, 'silver_restore_counter_0a1b2c3d', sha(dump)])).code, 0);
  writeFileSync(join(tr.dir, 'definers'), 'root@localhost\n');
  const rr = await sh(tr, ['restore', 'counter', ID, 'silver_restore_counter_0a1b2c3d']);
  t.is(rr.code, 1);
  t.regex(rr.stderr, /run as another user than the app's \(root@localhost\)/);
  t.false(dbs(tr).includes('counter'), 'none of the refused dump stays');
  t.is(readFileSync(join(tr.svc, 'incomplete-counter'), 'utf8'), `${ID}\n`);
});

test('attack: a database-level grant names the app\'s database literally (_ is a pattern there: my_app\'s users reached my1app); ensure takes back an earlier release\'s pattern grants; the loaders\' grants and a restore\'s grants given again are literal too', async (t) => {
  const tr = tree('mysql');
  writeFileSync(join(tr.dir, 'dbs'), 'my_app\nmy1app\n');
  writeFileSync(join(tr.dir, 'counts'), '{"hits": 1}');
  writeFileSync(join(tr.dir, 'legacy-hosts'), '10.0.0.2\n10.0.0.9\n');
  const e = await sh(tr, ['ensure', 'my_app', '10.0.0.2']);
  t.is(e.code, 0, e.stderr);
  const sql = read(tr, 'sql.log');
  t.true(sql.includes("GRANT ALL PRIVILEGES ON `my\\_app`.* TO 'my_app'@'10.0.0.2';"), sql);
  t.false(sql.includes('ON `my_app`.* TO'), 'no pattern grant');
  t.true(sql.includes("REVOKE ALL PRIVILEGES ON `my_app`.* FROM 'my_app'@'10.0.0.2';"));
  t.true(sql.includes("REVOKE ALL PRIVILEGES ON `my_app`.* FROM 'my_app'@'10.0.0.9';"));
  // (a name without _ or % grants as before and revokes nothing)
  const plain = tree('mysql');
  writeFileSync(join(plain.dir, 'legacy-hosts'), '10.0.0.2\n');
  t.is((await sh(plain, ['ensure', 'counter', '10.0.0.2'])).code, 0);
  t.false(read(plain, 'sql.log').includes('REVOKE'));
  const dump = '-- MariaDB dump\nINSERT INTO `hits` VALUES (1);\n-- Dump completed on 2026-12-02\n';
  await sh(tr, ['put', ID, '0'], dump);
  const target = 'silver_restore_my_app_0a1b2c3d';
  t.is((await sh(tr, ['load', 'my_app', ID, target, sha(dump)])).code, 0);
  t.is((await sh(tr, ['restore', 'my_app', ID, target])).code, 0);
  const grants = [...read(tr, 'sql.log').matchAll(/^GRANT ALL PRIVILEGES ON `(.*?)`\.\* TO /gm)].map((m) => m[1]);
  // (the copy's loader, the app's local account, and the grants given again as the node lists them)
  t.deepEqual(grants, ['silver\\_restore\\_my\\_app\\_0a1b2c3d', 'my\\_app', 'my\\_app']);
  t.true(read(tr, 'sql.log').includes("SELECT CONCAT('GRANT ALL PRIVILEGES ON `my\\_app`.* TO ', QUOTE(User)"));
});

test('MariaDB: a loading account a kill left behind goes with the next load (its option file gone or a day old); one a load running now made stays', async (t) => {
  const { tr, dump, target } = await stagedCounter();
  writeFileSync(join(tr.dir, 'loaders'), 'silver_load_aaaaaaaa\nsilver_load_bbbbbbbb\nsilver_load_cccccccc\n');
  writeFileSync(join(tr.svc, 'loader-silver_load_bbbbbbbb.cnf'), '[client]\n');
  writeFileSync(join(tr.svc, 'loader-silver_load_cccccccc.cnf'), '[client]\n');
  execFileSync('touch', ['-d', '2 days ago', join(tr.svc, 'loader-silver_load_cccccccc.cnf')]);
  writeFileSync(join(tr.svc, 'loader-shop.cnf'), '[client]\n');
  execFileSync('touch', ['-d', '2 days ago', join(tr.svc, 'loader-shop.cnf')]);
  t.is((await sh(tr, ['load', 'counter', ID, target, sha(dump)])).code, 0);
  const sql = read(tr, 'sql.log');
  t.true(sql.includes("DROP USER IF EXISTS 'silver_load_aaaaaaaa'@'localhost';"));
  t.true(sql.includes("DROP USER IF EXISTS 'silver_load_cccccccc'@'localhost';"));
  t.false(sql.includes("DROP USER IF EXISTS 'silver_load_bbbbbbbb'@'localhost';"), 'a fresh one is another load\'s');
  t.true(sql.includes("ALTER USER IF EXISTS 'shop'@'localhost' ACCOUNT LOCK;"));
  t.deepEqual(readdirSync(tr.svc).filter((f) => f.endsWith('.cnf')), ['loader-silver_load_bbbbbbbb.cnf']);
});

test('MariaDB: a dump\'s ALTER DATABASE lines (its collation switched around a routine) name the database it is loaded into, never the app\'s own while a copy loads', async (t) => {
  const tr = tree('mysql');
  writeFileSync(join(tr.dir, 'dbs'), 'counter\n');
  const dump = '-- MariaDB dump\nALTER DATABASE `counter` CHARACTER SET latin1 COLLATE latin1_swedish_ci ;\nDELIMITER ;;\nALTER DATABASE `counter` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci ;;\nDELIMITER ;\nINSERT INTO `t` VALUES (\'ALTER DATABASE `counter` x\');\n-- Dump completed on 2026-12-02\n';
  await sh(tr, ['put', ID, '0'], dump);
  const target = 'silver_verify_counter_0a1b2c3d';
  t.is((await sh(tr, ['load', 'counter', ID, target, sha(dump)])).code, 0);
  const loaded = read(tr, 'sql.log').split('--\n').find((x) => x.startsWith('-- MariaDB dump'))!;
  t.is(loaded, dump.replace('ALTER DATABASE `counter` CHARACTER SET latin1', `ALTER DATABASE \`${target}\` CHARACTER SET latin1`).replace('ALTER DATABASE `counter` CHARACTER SET utf8mb4', `ALTER DATABASE \`${target}\` CHARACTER SET utf8mb4`));
});

test('attack: PostgreSQL rows are counted in a session of the app\'s own role — the dump\'s, a copy\'s load, a restore\'s — never a superuser\'s (planning count(*) runs the IMMUTABLE functions of a table\'s index expressions as whoever counts)', async (t) => {
  const tr = tree('postgresql');
  writeFileSync(join(tr.svc, 'hello.password'), 's3cretpassw0rdXYZ');
  writeFileSync(join(tr.dir, 'counts'), '{"public.visits": 5}');
  renameSync(join(tr.bin, 'psql'), join(tr.bin, 'psql.real'));
  writeFileSync(join(tr.bin, 'psql'), `#!/bin/sh\nsql=$(cat)\ncase "$sql" in *"SELECT 'counts ' ||"*) echo "$*" >> '${tr.dir}/counted.log' ;; esac\nprintf '%s\\n' "$sql" | '${tr.bin}/psql.real' "$@"\n`, { mode: 0o755 });
  t.is((await sh(tr, ['dump', 'hello', ID])).code, 0);
  t.is((await sh(tr, ['forget', ID])).code, 0);
  const archive = Buffer.from('PGDMP\x01\x0e an archive\n', 'latin1');
  await sh(tr, ['put', ID, '0'], archive);
  const target = 'silver_restore_hello_0a1b2c3d';
  writeFileSync(join(tr.dir, 'roles'), 'hello\n');
  writeFileSync(join(tr.dir, 'dbs'), 'postgres\nhello\n');
  const load = await sh(tr, ['load', 'hello', ID, target, sha(archive)]);
  t.is(load.code, 0, load.stderr);
  const restore = await sh(tr, ['restore', 'hello', ID, target]);
  t.is(restore.code, 0, restore.stderr);
  const counted = read(tr, 'counted.log').split('\n').filter(Boolean);
  t.is(counted.length, 3, counted.join('\n'));
  for (const argv of counted) t.regex(argv, new RegExp(`^-X -v ON_ERROR_STOP=1 -qAt -h 127\\.0\\.0\\.1 -U hello -d (hello|${target})$`));
});
