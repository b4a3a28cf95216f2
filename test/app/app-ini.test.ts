import test from 'ava';
import { loadApp } from '../../src/app/app-ini.js';
import { memoryHost } from '../../src/config/host.js';
import { ConfigError, formatDiagnostic } from '../../src/diagnostics.js';

const load = (text: string) => loadApp('/a', memoryHost({ '/a/app.ini': text }));
function errors(text: string): string[] {
  try {
    load(text);
  } catch (e) {
    if (e instanceof ConfigError) return e.diagnostics.map(formatDiagnostic);
    throw e;
  }
  throw new Error('expected a ConfigError');
}

test('the design notes app.ini and every key', (t) => {
  const app = load(`[production]
app_name = blog
runner = python3 app.py
service.postgresql =
service.mysql =
update_fetch =
    /setup-stuff
    script:python3 migrate.py --all
health_check = /health
packages = python3-psycopg2 python3-mysqldb
default_location = http://foobar.com/
`);
  t.is(app.name, 'blog');
  t.is(app.runner, 'python3 app.py');
  t.deepEqual(app.services, ['postgresql', 'mysql']);
  t.deepEqual(app.updateFetch, [{ kind: 'path', path: '/setup-stuff' }, { kind: 'script', command: 'python3 migrate.py --all' }]);
  t.is(app.healthCheck, '/health');
  t.deepEqual(app.packages, ['python3-psycopg2', 'python3-mysqldb']);
  t.is(app.defaultLocation, 'http://foobar.com/');
});

test('health_check defaults to /, update_fetch to nothing', (t) => {
  const app = load('[production]\napp_name = x\nrunner = ./run\n');
  t.is(app.healthCheck, '/');
  t.deepEqual(app.updateFetch, []);
});

const cases: [string, string, RegExp][] = [
  ['missing app_name', '[production]\nrunner = x\n', /^\/a\/app\.ini:1: app_name: app_name is required$/],
  ['bad app_name', '[production]\napp_name = Blog\nrunner = x\n', /^\/a\/app\.ini:2: app_name: app name "Blog" must match/],
  ['missing runner', '[production]\napp_name = b\n', /^\/a\/app\.ini:1: runner: runner is required/],
  ['runner with a quote', "[production]\napp_name = b\nrunner = sh -c 'x'\n", /^\/a\/app\.ini:3: runner: must be one line/],
  ['unknown key', '[production]\napp_name = b\nrunner = x\nworkers = 4\n', /^\/a\/app\.ini:4: workers: unknown key in \[production\]/],
  ['unknown service', '[production]\napp_name = b\nrunner = x\nservice.redis =\n', /^\/a\/app\.ini:4: service\.redis: unknown service "redis"/],
  ['bad update_fetch', '[production]\napp_name = b\nrunner = x\nupdate_fetch = setup\n', /^\/a\/app\.ini:4: update_fetch: "setup" must be a path/],
  ['bad health_check', '[production]\napp_name = b\nrunner = x\nhealth_check = health\n', /^\/a\/app\.ini:4: health_check: "health" must be a path/],
  ['bad package', '[production]\napp_name = b\nrunner = x\npackages = Not_A_Package\n', /^\/a\/app\.ini:4: packages: "Not_A_Package" is not a Debian package name/],
  ['no [production]', '[devel]\napp_name = b\n', /^\/a\/app\.ini:1: \[production\]: missing section/],
];
for (const [name, text, expected] of cases) {
  test(`bad app.ini is a located error: ${name}`, (t) => {
    const lines = errors(text);
    t.true(lines.some((l) => expected.test(l)), lines.join('\n'));
  });
}

test('a missing app.ini says so', (t) => {
  t.throws(() => loadApp('/nowhere', memoryHost({})), { message: /cannot read app\.ini/ });
});

test('app names that are, or map to, built-in users, roles or databases are refused, located (exit 2)', (t) => {
  for (const name of ['postgres', 'template1', 'pg_monitor', 'pg-read', 'mysql', 'sys', 'information_schema', 'performance-schema', 'root', 'silver']) {
    t.deepEqual(errors(`[production]\napp_name = ${name}\nrunner = x\n`), [`/a/app.ini:2: app_name: app name "${name}" is reserved: it is (or maps to) a built-in system user, database role or database`], name);
  }  for (const name of ['silver_old_hello_abcdefgh', 'silver-restore']) {
    t.deepEqual(errors(`[production]\napp_name = ${name}\nrunner = x\n`), [`/a/app.ini:2: app_name: app name "${name}" is reserved: silver names its own scratch databases silver_*`], name);
  }
});

test('health_check and update_fetch paths that would break a configuration or a command are refused', (t) => {
  t.regex(errors('[production]\napp_name = blog\nrunner = x\nhealth_check = /h;rm -rf /\n')[0]!, /^\/a\/app\.ini:4: health_check: /);
  t.regex(errors("[production]\napp_name = blog\nrunner = x\nhealth_check = /a'b\n")[0]!, /health_check/);
  t.regex(errors('[production]\napp_name = blog\nrunner = x\nupdate_fetch = /$(id)\n')[0]!, /^\/a\/app\.ini:4: update_fetch: /);
});

test('a UTF-8 byte order mark at the start of app.ini is not an error', (t) => {
  t.is(load('\uFEFF[production]\napp_name = blog\nrunner = x\n').name, 'blog');
});

test('migrate, migrate_mode and static are read and checked', (t) => {
  const app = load('[production]\napp_name = blog\nrunner = x\nmigrate = script:python3 migrate.py --all\nmigrate_mode = read-only\n');
  t.deepEqual(app.migrate, { kind: 'script', command: 'python3 migrate.py --all' });
  t.is(app.migrateMode, 'read-only');
  t.is(app.static, null);
  t.deepEqual(load('[production]\napp_name = blog\nrunner = x\nmigrate = /migrate\n').migrate, { kind: 'path', path: '/migrate' });
  t.is(load('[production]\napp_name = blog\nrunner = x\n').migrateMode, 'online');
  t.is(load('[production]\napp_name = blog\nrunner = x\nstatic = ./static\n').static, 'static/');
  t.deepEqual(errors('[production]\napp_name = blog\nrunner = x\nmigrate = script:x\nmigrate_mode = sometimes\n'), ['/a/app.ini:5: migrate_mode: must be online, read-only or maintenance, got "sometimes"']);
  t.deepEqual(errors('[production]\napp_name = blog\nrunner = x\nmigrate_mode = read-only\n'), ['/a/app.ini:4: migrate_mode: is only meaningful with migrate =']);
  t.deepEqual(errors('[production]\napp_name = blog\nrunner = x\nstatic = ../etc\n'), ['/a/app.ini:4: static: "../etc" must be a folder inside the app, not the app\'s own (letters, digits, . _ -)']);
  // The app's own folder (its code, app.ini) is never served as static files.
  for (const own of ['.', './', './.', 'static/.', 'a/./b']) t.regex(errors(`[production]\napp_name = blog\nrunner = x\nstatic = ${own}\n`)[0] ?? '', /static: .* must be a folder inside the app, not the app's own/, own);
  t.deepEqual(errors('[production]\napp_name = blog\nrunner = x\nmigrate = rm -rf /\n'), ['/a/app.ini:4: migrate: "rm -rf /" must be script:COMMAND or a path starting with /']);
});

test("an app's maintenance.html is read with it; one too big, empty or not UTF-8 is refused, located", (t) => {
  const ini = '[production]\napp_name = hello\nrunner = python3 app.py\n';
  t.is(load(ini).maintenancePage, null);
  t.is(loadApp('/a', memoryHost({ '/a/app.ini': ini, '/a/maintenance.html': '<p>é</p>' })).maintenancePage, '<p>é</p>');
  for (const [text, why] of [['x'.repeat(8193), /has 8193 bytes; a maintenance page must have 1 to 8192/], ['', /has 0 bytes/], ['a\uFFFDb', /not UTF-8/]] as const) {
    const e = t.throws(() => loadApp('/a', memoryHost({ '/a/app.ini': ini, '/a/maintenance.html': text })));
    t.regex(e!.message, /^\/a\/maintenance\.html:1: maintenance\.html: /);
    t.regex(e!.message, why);
  }
});

test('attack: app.ini reads no environment variable of the machine running silver (a hostile runner would carry its secrets to the nodes)', async (t) => {
  const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { realHost } = await import('../../src/config/host.js');
  const dir = mkdtempSync(join(tmpdir(), 'silver-appini-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'app.ini'), '[production]\napp_name = blog\nrunner = app --token=${AWS_SECRET_ACCESS_KEY} --port=${PORT}\n');
  const e = t.throws(() => loadApp(dir, realHost({ AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI', PORT: '3000', HOME: '/root' })));
  const text = (e as ConfigError).diagnostics.map(formatDiagnostic).join('\n');
  t.regex(text, /app\.ini:3: runner: \$\{AWS_SECRET_ACCESS_KEY\}: app\.ini reads no environment variable of the machine running silver \(the app's own, at run time: \$NAME\)/);
  t.false(text.includes('wJalrXUtnFEMI'));
  // The app's own variables at run time, and references within app.ini, as before.
  writeFileSync(join(dir, 'app.ini'), '[production]\napp_name = blog\nrunner = gunicorn -b 127.0.0.1:$PORT app:${production:app_name}\n');
  t.is(loadApp(dir, realHost({ PORT: '3000' })).runner, 'gunicorn -b 127.0.0.1:$PORT app:blog');
});

test('attack: maintenance.html or the static folder as a link out of the app\'s folder is refused (its target would be served to anyone)', async (t) => {
  const { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { realHost } = await import('../../src/config/host.js');
  const base = mkdtempSync(join(tmpdir(), 'silver-appini-'));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  const dir = join(base, 'app');
  const secrets = join(base, 'operator');
  mkdirSync(join(secrets, '.ssh'), { recursive: true });
  writeFileSync(join(secrets, '.ssh', 'id_ed25519'), 'PRIVATE KEY TEXT');
  mkdirSync(join(dir, 'assets'), { recursive: true });
  writeFileSync(join(dir, 'app.ini'), '[production]\napp_name = blog\nrunner = app\nstatic = public\n');
  symlinkSync(join(secrets, '.ssh'), join(dir, 'public'));
  symlinkSync('../operator/.ssh/id_ed25519', join(dir, 'maintenance.html'));
  const e = t.throws(() => loadApp(dir, realHost({})));
  const text = (e as ConfigError).diagnostics.map(formatDiagnostic).join('\n');
  t.regex(text, /app\.ini:4: static: .*\/app\/public\/ leads out of the app's folder \(a link\): its files would be served to anyone/);
  t.regex(text, /maintenance\.html:1: maintenance\.html: leads out of the app's folder \(a link\): it would be served to anyone/);
  t.false(text.includes('PRIVATE KEY TEXT'));
  // Links that stay inside the app's folder are fine.
  rmSync(join(dir, 'public'));
  rmSync(join(dir, 'maintenance.html'));
  symlinkSync('assets', join(dir, 'public'));
  writeFileSync(join(dir, 'page.html'), '<p>back soon</p>');
  symlinkSync('page.html', join(dir, 'maintenance.html'));
  const app = loadApp(dir, realHost({}));
  t.is(app.static, 'public/');
  t.is(app.maintenancePage, '<p>back soon</p>');
});

test('update_fetch is taken as interpolated ($$ a dollar, ${production:KEY} its value), line by line; a later error about the app names its line', async (t) => {
  const app = load('[production]\napp_name = blog\nrunner = app\nupdate_fetch =\n    /a\n    script:echo $$HOME ${production:app_name}\nhealth_check = /health\n');
  t.deepEqual(app.updateFetch, [{ kind: 'path', path: '/a' }, { kind: 'script', command: 'echo $HOME blog' }]);
  t.deepEqual(errors('[production]\napp_name = blog\nrunner = app\nupdate_fetch =\n    /a\n    ${production:app_name}\n'), ['/a/app.ini:6: update_fetch: "blog" must be a path starting with / or script:COMMAND']);
  const { checkAppFitsNodeset } = await import('../../src/commands/update.js');
  const { loadNodeset } = await import('../../src/nodeset/resolve.js');
  const ns = loadNodeset('/n/s.conf', memoryHost({ '/n/s.conf': '[general]\nname = s\nbase_domain = s.test\n[appserver]\nlocations = http://s.test/ other\n' }));
  const e = t.throws(() => checkAppFitsNodeset(ns, app));
  t.deepEqual((e as ConfigError).diagnostics.map(formatDiagnostic), ['/a/app.ini:2: app_name: app "blog" is not in the locations of /n/s.conf (it serves: other)']);
});
