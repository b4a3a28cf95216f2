import test from 'ava';
import { replaceNode } from '../../src/commands/replace-node.js';
import { exportInstance, parseExport } from '../../src/deploy/replicate.js';
import { Remote } from '../../src/remote/executor.js';
import { fakeDeploy } from '../helpers/fake-nodes.js';

// replace-node without machines: what it refuses, what it does before anything is destroyed,
// and that the app's environment (its secrets) never reaches an error or the output.

const b = (s: string) => Buffer.from(s).toString('base64');
const SUM = 'a'.repeat(64);
const exported = (over: Record<string, string> = {}) =>
  Object.entries({ instance: 'hello.2026-12-01_001', port: '20001', health: '/health', runner: b('python3 app.py'), packages: 'libpq5 curl', code: SUM, static: '-', env: b("CONFIG_PG_PASSWORD='s3cret'\n"), app: b('tar'), ...over })
    .map(([k, v]) => `${k} ${v}`)
    .join('\n');

test('parseExport reads every key of silver-deploy export; bad values are named by key, never shown', (t) => {
  const x = parseExport('hello', exported());
  t.is(x.instance, 'hello.2026-12-01_001');
  t.is(x.port, 20001);
  t.is(x.runner, 'python3 app.py');
  t.deepEqual(x.packages, ['libpq5', 'curl']);
  t.is(x.code, SUM);
  t.is(x.static, null);
  t.is(x.env.toString(), "CONFIG_PG_PASSWORD='s3cret'\n");
  t.is(x.tarball.toString(), 'tar');
  for (const [over, why] of [
    [{ instance: 'other.2026-12-01_001' }, /bad instance/],
    [{ port: '99999' }, /bad port/],
    [{ code: 'x' }, /bad code sum/],
    [{ static: SUM }, /no files for its static version/],
  ] as const) {
    const e = t.throws(() => parseExport('hello', exported(over)));
    t.regex(e!.message, why);
    t.false(e!.message.includes('s3cret') || e!.message.includes(b("CONFIG_PG_PASSWORD='s3cret'\n")));
  }
  t.throws(() => parseExport('hello', 'instance hello.2026-12-01_001\n'), { message: /has no port/ });
});

test("a failing export's error holds only its stderr: the environment it printed never shows", async (t) => {
  const remote = new Remote({ exec: async () => ({ code: 1, stdout: exported(), stderr: '' }), close: async () => undefined });
  const e = await t.throwsAsync(exportInstance(remote, 'app1', 'hello'));
  t.is(e!.message, 'app1: exporting hello: exit 1');
  const argv: string[] = [];
  const ok = new Remote({ exec: async (_n, command) => (argv.push(command), { code: 0, stdout: exported(), stderr: '' }), close: async () => undefined });
  await exportInstance(ok, 'app1', 'hello');
  t.deepEqual(argv, ['sudo -n /usr/local/lib/silverlining/bin/silver-deploy export hello']);
});

test('replace-node refuses an unknown node (exit 2), and without a yes destroys nothing', async (t) => {
  const { ns, rt, provider, nodes } = await fakeDeploy();
  await t.throwsAsync(replaceNode(ns, rt, { node: 'nope.shop.test', yes: true }), { message: /no node nope\.shop\.test in nodeset shop/ });
  await t.throwsAsync(replaceNode(ns, rt, { node: 'app2.shop.test', yes: false }), { message: /nothing replaced \(answer y, or pass -y\)/ });
  t.is((await provider.list(ns.name)).length, ns.nodes.length);
  t.deepEqual(nodes.calls, []);
});

test('an app that cannot be copied from another app server stops the replacement before anything is destroyed or taken out of rotation', async (t) => {
  const { ns, rt, provider, nodes } = await fakeDeploy();
  const a = nodes.app('app1.shop.test', 'hello');
  a.instances.set('hello.2026-12-01_001', { port: 20001, running: true, healthy: true });
  a.active = 'hello.2026-12-01_001';
  nodes.failWhen = (c) => (c.argv[3] === 'export' ? 'silver-deploy: tar: app: Cannot open' : null);
  const r = await replaceNode(ns, rt, { node: 'app2.shop.test', yes: true, drainMs: 1 });
  t.false(r.ok);
  t.regex(r.error!, /app1\.shop\.test: exporting hello: silver-deploy: tar: app: Cannot open/);
  t.is((await provider.list(ns.name)).length, ns.nodes.length, 'nothing destroyed');
  t.deepEqual(nodes.verbs('balancer.shop.test', 'silver-balancer'), [], 'never out of rotation');
  t.false(nodes.state.get('app1.shop.test')?.has('lock') ?? false, 'the deploy lock is released');
});

test('an interrupt during the drain puts the app server back in rotation and destroys nothing (exit 130)', async (t) => {
  const { ns, rt, provider, nodes, signal } = await fakeDeploy();
  nodes.onCall = (c) => {
    if (c.argv[3] === 'drain') signal('SIGINT');
  };
  const r = await replaceNode(ns, rt, { node: 'app2.shop.test', yes: true, drainMs: 1 });
  t.false(r.ok);
  t.is(r.interrupted, 'SIGINT');
  t.regex(r.error!, /interrupted before anything was destroyed: app2\.shop\.test is back in rotation/);
  t.deepEqual(nodes.verbs('balancer.shop.test', 'silver-balancer'), ['drain app2.shop.test', 'disable app2.shop.test', 'enable app2.shop.test']);
  t.is((await provider.list(ns.name)).length, ns.nodes.length);
});

test('a service node is refused without a backup verified by a restore within 7 days (or --force); nothing is destroyed, no mode changes', async (t) => {
  const { ns, rt, provider, nodes, io } = await fakeDeploy();
  const a = nodes.app('app1.shop.test', 'hello');
  a.instances.set('hello.2026-12-01_001', { port: 20001, running: true, healthy: true });
  a.active = 'hello.2026-12-01_001';
  const e = await t.throwsAsync(replaceNode(ns, rt, { node: 'db.shop.test', yes: true }));
  t.regex(e!.message, /db\.shop\.test: no backup verified by a restore in the last 7 days for hello: run silver backup \/n\/shop\.conf && silver backup --verify \/n\/shop\.conf first \(or --force\)/);
  t.is((e as { exitCode?: number }).exitCode, 1);
  t.is((await provider.list(ns.name)).length, ns.nodes.length);
  t.deepEqual(nodes.verbs('balancer.shop.test', 'silver-balancer'), []);
  t.false([...io.stdout, ...io.stderr].join('\n').includes('s3cretpassword'), 'the password read from the app server is never shown');
  // An old verification is not enough.
  const old = new Date(Date.parse('2026-12-02T10:00:00Z') - 8 * 86400_000).toISOString();
  for (const n of ns.nodes) nodes.state.set(n.name, new Map([['backups', JSON.stringify({ seq: 1, apps: { hello: { lastBackup: old, lastBackupStamp: 's', lastVerified: old, verifiedStamp: 's', verifyOk: true, verifySeconds: 1 } } })]]));
  await t.throwsAsync(replaceNode(ns, rt, { node: 'db.shop.test', yes: true }), { message: /no backup verified by a restore in the last 7 days for hello/ });
});
