import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AppConfig } from '../../src/app/app-ini.js';
import { envChange, envList, parseChanges } from '../../src/commands/env.js';
import { history } from '../../src/commands/history.js';
import { rollback, update } from '../../src/commands/update.js';
import { envFile, parseEnvFile, parseStaged, settingsOf, withSettings } from '../../src/deploy/settings.js';
import { ExitError } from '../../src/diagnostics.js';
import { fakeDeploy, type FakeNodes } from '../helpers/fake-nodes.js';

// silver env without machines: the app servers are simulated, every remote call is argv.

const OLD = 'hello.2026-12-01_001';
const NEW = 'hello.2026-12-02_001';
const A1 = 'app1.shop.test';
const A2 = 'app2.shop.test';
const SECRET = 'sk_live_"quoted" $(id)\nline two';
const opts = { restart: true, graceMs: 5 };

const dir = mkdtempSync(join(tmpdir(), 'silver-app-'));
writeFileSync(join(dir, 'app.py'), 'print(1)\n');
writeFileSync(join(dir, 'VERSION'), '1.4.2\n');
const app: AppConfig = {
  dir, file: join(dir, 'app.ini'), name: 'hello', runner: 'python3 app.py', services: ['postgresql'],
  updateFetch: [], healthCheck: '/health', packages: [], defaultLocation: null,
  migrate: null, migrateMode: 'online', static: null, maintenancePage: null,
};

function deployed(nodes: FakeNodes, settings: Record<string, string> = { GREETING: 'hi' }): void {
  for (const n of [A1, A2]) {
    const a = nodes.app(n, 'hello');
    a.instances.set(OLD, { port: 20001, running: true, healthy: true, env: envFile(withSettings({ PORT: '20001', SILVER_INSTANCE_NAME: OLD, CONFIG_PG_PASSWORD: 's3cretpassword' }, settings)) });
    a.active = OLD;
  }
}
/** The changes staged on a node (none once cleared: a clear leaves a stamped empty list). */
const stagedOn = (nodes: FakeNodes, node: string) => parseStaged(nodes.app(node, 'hello').pending ?? '').changes;
const envOf = (nodes: FakeNodes, node: string, inst: string) => parseEnvFile(nodes.app(node, 'hello').instances.get(inst)!.env!);
const everything = (io: { stdout: string[]; stderr: string[] }, extra: unknown) => [...io.stdout, ...io.stderr, JSON.stringify(extra)].join('\n');

test('env set stages a new instance with the active code and the new settings on every app server, then activates one at a time', async (t) => {
  const { ns, rt, nodes, io } = await fakeDeploy();
  deployed(nodes);
  const r = await envChange(ns, 'hello', [{ key: 'API_KEY', value: SECRET }], rt, opts);
  t.true(r.ok, JSON.stringify(r.failure));
  t.is(r.instance, NEW);
  t.deepEqual(r.activated, [A1, A2]);
  t.deepEqual(nodes.verbs(A1), [
    'env-get hello',
    'pending get hello',
    'status',
    `clone hello ${OLD} ${NEW} 20002`,
    `env hello ${NEW}`,
    `up hello ${NEW} 60`,
    `wait hello ${NEW} - 30 2xx`,
    // (the switch sets the replaced instance's stop after its grace, by a timer on the node)
    `switch-stop hello ${NEW} 5`,
    'prune hello 3',
  ]);
  const env = envOf(nodes, A2, NEW);
  t.deepEqual(settingsOf(env), { GREETING: 'hi', API_KEY: SECRET });
  t.is(env['PORT'], '20002');
  t.is(env['SILVER_INSTANCE_NAME'], NEW);
  t.is(env['CONFIG_PG_PASSWORD'], 's3cretpassword', "the services' variables go on");
  t.is(settingsOf(envOf(nodes, A1, OLD))['API_KEY'], undefined, 'the old instance keeps the settings it started with');
  t.false(everything(io, r).includes('sk_live'), 'no value in any output or the report');
  t.false(nodes.calls.some((c) => c.argv.join(' ').includes('sk_live')), 'no value on any command line');
});

test('a value that breaks the health check is rolled back: every app server serves its old instance and settings', async (t) => {
  const { ns, rt, nodes, io } = await fakeDeploy();
  deployed(nodes);
  nodes.unhealthyWhenEnv = (env) => env.includes('GREETING="broken"');
  const r = await envChange(ns, 'hello', [{ key: 'GREETING', value: 'broken' }], rt, opts);
  t.false(r.ok);
  t.is(r.failure?.node, A1);
  t.is(r.failure?.step, 'health_check');
  t.deepEqual([A1, A2].map((n) => nodes.app(n, 'hello').active), [OLD, OLD]);
  t.false(nodes.verbs(A2).some((v) => v.startsWith('switch')), 'the second app server never switched');
  t.is(JSON.parse(nodes.state.get(A1)!.get('rollout')!).outcome, 'failed, rolled back');
  // (the next list still says what serves: the old value)
  const l = await envList(ns, 'hello', rt);
  t.deepEqual(l.settings.map((s) => s.key), ['GREETING']);
  t.false(everything(io, r).includes('broken'));
});

test('--no-restart stages the change on every app server; the next update rolls it out and clears it', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  deployed(nodes);
  const r = await envChange(ns, 'hello', [{ key: 'MAIL_PASSWORD', value: 'hunter22' }, { key: 'GREETING', unset: true }], rt, { restart: false });
  t.true(r.ok && r.staged);
  t.false(nodes.verbs(A1).some((v) => v.startsWith('clone') || v.startsWith('switch')), 'nothing restarts');
  t.truthy(nodes.app(A2, 'hello').pending);
  const l = await envList(ns, 'hello', rt);
  t.deepEqual(l.settings.map((s) => [s.key, s.staged]), [['GREETING', 'unset'], ['MAIL_PASSWORD', 'set']]);
  const u = await update(ns, app, rt, { graceMs: 5 });
  t.true(u.ok, JSON.stringify(u.failure));
  t.deepEqual(settingsOf(envOf(nodes, A1, u.instance)), { MAIL_PASSWORD: 'hunter22' });
  t.deepEqual(stagedOn(nodes, A1), [], 'cleared once rolled out');
});

test('--no-restart killed halfway (or the first app server made anew): the staged settings are read from every app server, the newest copy; the update rolls them out and clears them everywhere', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  deployed(nodes);
  t.true((await envChange(ns, 'hello', [{ key: 'MAIL_PASSWORD', value: 'second' }], rt, { restart: false })).ok);
  t.regex(nodes.app(A2, 'hello').pending!, /^staged \d+\n/);
  // (a later --no-restart reached app2 only: app1, the first app server, keeps an earlier list)
  nodes.app(A1, 'hello').pending = `staged 1\nset MAIL_PASSWORD ${Buffer.from('first').toString('base64')}\n`;
  const u = await update(ns, app, rt, { graceMs: 5 });
  t.true(u.ok, JSON.stringify(u.failure));
  t.is(settingsOf(envOf(nodes, A1, u.instance))['MAIL_PASSWORD'], 'second', 'the newest staged copy, not the first app server\'s');
  t.deepEqual(stagedOn(nodes, A1), []);
  t.deepEqual(stagedOn(nodes, A2), [], 'cleared on every app server');
  // The first app server has no copy at all (made anew, or the write never reached it).
  t.true((await envChange(ns, 'hello', [{ key: 'MAIL_PASSWORD', value: 'third' }], rt, { restart: false })).ok);
  delete nodes.app(A1, 'hello').pending;
  t.deepEqual((await envList(ns, 'hello', rt)).settings.find((x) => x.key === 'MAIL_PASSWORD')?.staged, 'set');
  const v = await update(ns, app, rt, { graceMs: 5 });
  t.true(v.ok, JSON.stringify(v.failure));
  t.is(settingsOf(envOf(nodes, A2, v.instance))['MAIL_PASSWORD'], 'third');
  t.deepEqual(stagedOn(nodes, A2), []);
  // A copy staged by a machine whose clock ran ahead: the next list is stamped after it all the same.
  const ahead = 9_000_000_000_000;
  for (const n of [A1, A2]) nodes.app(n, 'hello').pending = `staged ${ahead}\nset MAIL_PASSWORD ${Buffer.from('ahead').toString('base64')}\n`;
  t.true((await envChange(ns, 'hello', [{ key: 'MAIL_PASSWORD', value: 'fourth' }], rt, { restart: false })).ok);
  t.is(nodes.app(A2, 'hello').pending!.split('\n')[0], `staged ${ahead + 1}`);
  nodes.app(A1, 'hello').pending = `staged ${ahead}\nset MAIL_PASSWORD ${Buffer.from('ahead').toString('base64')}\n`;
  const w = await update(ns, app, rt, { graceMs: 5 });
  t.is(settingsOf(envOf(nodes, A1, w.instance))['MAIL_PASSWORD'], 'fourth');
});

test('an update keeps the settings, the files folder and the cache; --clear-cache starts a new cache', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  const first = await update(ns, app, rt, { graceMs: 5 });
  t.true(first.ok);
  const e1 = envOf(nodes, A1, first.instance);
  t.is(e1['CONFIG_FILES'], '/var/lib/silverlining/files/hello');
  t.is(e1['SILVER_CACHE'], `/var/cache/silverlining/hello/${first.instance}`);
  t.true((await envChange(ns, 'hello', [{ key: 'GREETING', value: 'hello there' }], rt, opts)).ok);
  const second = await update(ns, app, rt, { graceMs: 5 });
  const e2 = envOf(nodes, A2, second.instance);
  t.is(settingsOf(e2)['GREETING'], 'hello there');
  t.is(e2['SILVER_CACHE'], e1['SILVER_CACHE'], 'the cache is kept across instances');
  const third = await update(ns, app, rt, { graceMs: 5, clearCache: true });
  t.is(envOf(nodes, A1, third.instance)['SILVER_CACHE'], `/var/cache/silverlining/hello/${third.instance}`);
});

test('a rollback returns to the settings of the instance it activates', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  deployed(nodes, { GREETING: 'old' });
  t.true((await envChange(ns, 'hello', [{ key: 'GREETING', value: 'new' }], rt, opts)).ok);
  t.is((await envList(ns, 'hello', rt)).settings[0]!.fingerprint.length, 12);
  const before = (await envList(ns, 'hello', rt)).settings[0]!.fingerprint;
  const r = await rollback(ns, 'hello', rt, { graceMs: 5 });
  t.true(r.ok);
  t.not((await envList(ns, 'hello', rt)).settings[0]!.fingerprint, before);
  t.is(nodes.app(A1, 'hello').active, OLD);
  t.is(settingsOf(envOf(nodes, A1, OLD))['GREETING'], 'old');
});

test('the history records updates, env changes and rollbacks with who, what and the result, never a value', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  t.true((await update(ns, app, rt, { graceMs: 5 })).ok);
  t.true((await envChange(ns, 'hello', [{ key: 'API_KEY', value: 'topsecretvalue' }], rt, opts)).ok);
  nodes.unhealthyWhenEnv = (env) => env.includes('broken');
  t.false((await envChange(ns, 'hello', [{ key: 'API_KEY', value: 'broken' }], rt, opts)).ok);
  t.true((await rollback(ns, 'hello', rt, { graceMs: 5 })).ok);
  const h = await history(ns, rt, 'hello');
  t.deepEqual(h.map((e) => [e.kind, e.result.split(' ')[0]]), [['update', 'ok'], ['env', 'ok'], ['env', 'failed'], ['rollback', 'ok']]);
  t.is(h[0]!.version, '1.4.2');
  t.is(h[1]!.detail, 'API_KEY');
  t.regex(h[0]!.who, /^[^@]+@.+$/);
  t.false(JSON.stringify(h).includes('topsecretvalue'));
  // (on every node of the nodeset: any one of them can be lost)
  for (const st of nodes.state.values()) t.is(st.get('history.log')!.trim().split('\n').length, 4);
});

test('bad changes are exit 2 before anything is asked of a node', async (t) => {
  const bad: [string, string[]][] = [['set', ['NOVALUE']], ['set', ['PORT=1']], ['set', ['SILVER_X=1']], ['set', ['a-b=1']], ['unset', []], ['set', ['A=-', 'B=-']], ['set', ['A=1', 'A=2']], ['drop', ['A']]];
  for (const [action, args] of bad) {
    const e = await t.throwsAsync(parseChanges(action, args, async () => Buffer.from('x')));
    t.true(e instanceof ExitError && e.exitCode === 2, `${action} ${args.join(' ')}`);
  }
  t.deepEqual(await parseChanges('set', ['A=-', 'B=x=y'], async () => Buffer.from('from stdin\n')), [{ key: 'A', value: 'from stdin' }, { key: 'B', value: 'x=y' }]);
  // KEY=VALUE given to unset: refused, its value named nowhere.
  const unset = await t.throwsAsync(parseChanges('unset', ['DB_PASSWORD=hunter2xyz'], async () => Buffer.from('x')));
  t.true(unset instanceof ExitError && unset.exitCode === 2);
  t.regex(unset!.message, /give the name alone \(DB_PASSWORD\)/);
  t.false(unset!.message.includes('hunter2xyz'));
  // A value given without its KEY= (a URL with a query holds one =): neither it nor a part of it in the error.
  for (const arg of ['Hunter2Pass', 'postgres://shop:Hunter2Pass@db/shop?sslmode=require']) {
    const e = await t.throwsAsync(parseChanges('set', ['A=1', arg], async () => Buffer.from('x')));
    t.true(e instanceof ExitError && e.exitCode === 2);
    t.regex(e!.message, /^silver env set: argument 2[ ,]/);
    t.false(e!.message.includes('Hunter2'), e!.message);
  }
  const { ns, rt, nodes } = await fakeDeploy();
  await t.throwsAsync(envChange(ns, 'nope', [{ key: 'A', value: '1' }], rt, opts), { message: /not in the locations/ });
  t.is(nodes.calls.length, 0);
});

test('env set refuses (exit 1) while an app server has no active instance, and changes nothing', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  const e = await t.throwsAsync(envChange(ns, 'hello', [{ key: 'A', value: '1' }], rt, opts));
  t.regex(e!.message, /no active instance .*silver update first/);
  t.false(nodes.verbs(A1).some((v) => v.startsWith('clone')));
});

test('env set refuses (exit 1) while the app servers serve different instances (each would clone its own under one name), and changes nothing', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  deployed(nodes);
  const a2 = nodes.app(A2, 'hello');
  a2.instances.set('hello.2026-12-01_002', { ...a2.instances.get(OLD)!, port: 20002 });
  a2.active = 'hello.2026-12-01_002';
  const e = await t.throwsAsync(envChange(ns, 'hello', [{ key: 'A', value: '1' }], rt, opts));
  t.true(e instanceof ExitError && e.exitCode === 1);
  t.regex(e!.message, new RegExp(`serve different instances \\(app1\\.shop\\.test: ${OLD.replaceAll('.', '\\.')}, app2\\.shop\\.test: hello\\.2026-12-01_002\\): bring them to one`));
  t.false(nodes.verbs(undefined).some((v) => v.startsWith('clone')));
});

test('history APP -n N: the app\'s newest N, however many entries of other apps came after them', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  const entry = (id: string, app: string, at: string) => JSON.stringify({ id, at, kind: 'update', app, seconds: 1, result: 'ok' });
  const log = [entry('a1', 'hello', '2026-12-01T10:00:00Z'), ...[1, 2, 3].map((i) => entry(`b${i}`, 'blog', `2026-12-01T1${i}:00:00Z`))].join('\n') + '\n';
  for (const n of ns.nodes) nodes.state.set(n.name, new Map([['history.log', log]]));
  const h = await history(ns, rt, 'hello', 2);
  t.deepEqual(h.map((e) => e.id), ['a1']);
  t.deepEqual((await history(ns, rt, undefined, 2)).map((e) => e.id), ['b2', 'b3']);
});

test('a clear of the staged settings that reaches only some app servers (cut short, killed) does not bring them back: the clear is a list stamped after them, the newest copy', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  deployed(nodes);
  t.true((await envChange(ns, 'hello', [{ key: 'GREETING', value: 'staged' }], rt, { restart: false })).ok);
  // (the change that rolls the staged settings out clears them on app1 only: app2's write fails)
  nodes.failWhen = (c) => (c.node === A2 && c.argv.includes('pending') && (c.argv.includes('set') || c.argv.includes('clear')) ? 'connection lost' : null);
  const r = await envChange(ns, 'hello', [{ key: 'OTHER', value: 'x' }], rt, opts);
  t.true(r.ok, JSON.stringify(r));
  nodes.failWhen = () => null;
  t.deepEqual(stagedOn(nodes, A1), []);
  t.true(stagedOn(nodes, A2).length > 0, 'the old list is left on app2');
  const l = await envList(ns, 'hello', rt);
  t.is(l.settings.find((x) => x.key === 'GREETING')?.staged, undefined, 'GREETING is live, not staged');
  // Rolled back to 'hi', then an update: the rolled-back value does not come back.
  const rb = await rollback(ns, 'hello', rt, { graceMs: 5 });
  t.true(rb.ok, JSON.stringify(rb));
  const u = await update(ns, app, rt, { graceMs: 5 });
  t.true(u.ok, JSON.stringify(u.failure));
  t.is(settingsOf(envOf(nodes, A1, u.instance))['GREETING'], 'hi');
});

test('a value under 4 characters for a key that names a secret is set, with a warning that silver\'s output cannot hide it; other short values and longer secrets get none', async (t) => {
  const { ns, rt, nodes, io } = await fakeDeploy();
  deployed(nodes);
  const r = await envChange(ns, 'hello', [{ key: 'DB_PASSWORD', value: 'abc' }, { key: 'WORKERS', value: '4' }, { key: 'API_TOKEN', value: 'long-enough' }], rt, opts);
  t.true(r.ok, JSON.stringify(r.failure));
  const warnings = io.stderr.filter((l) => l.includes('warning'));
  t.deepEqual(warnings, ["silver env set: warning: DB_PASSWORD looks like a secret and its value is under 4 characters: silver's output cannot hide a value that short (it would hide every match of it in the text); a longer one is hidden everywhere"]);
  t.deepEqual(settingsOf(envOf(nodes, A1, NEW)), { GREETING: 'hi', DB_PASSWORD: 'abc', WORKERS: '4', API_TOKEN: 'long-enough' });
  t.false(everything(io, r).includes('long-enough'));
});
