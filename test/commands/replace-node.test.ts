import test from 'ava';
import { replaceNode } from '../../src/commands/replace-node.js';
import { exportInstance, parseExport } from '../../src/deploy/replicate.js';
import { Remote } from '../../src/remote/executor.js';
import { answerSetupScripts, fakeDeploy, NODESET, type FakeNodes } from '../helpers/fake-nodes.js';

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

/**
 * A database node's replacement on fakes, whole: the setup scripts answered with their layers'
 * markers (a probe misses), the memory provider destroying and creating; the apps `hello` and
 * `blog` with a database each on db.shop.test, a verified backup each.
 */
async function dbReplacement() {
  const d = await fakeDeploy(NODESET.replace('locations = http://shop.test/ hello', 'locations =\n    http://shop.test/ hello\n    http://blog.shop.test/ blog'));
  const { nodes } = d;
  for (const app of ['hello', 'blog']) {
    const a = nodes.app('app1.shop.test', app);
    a.instances.set(`${app}.2026-12-01_001`, { port: app === 'hello' ? 20001 : 20002, running: true, healthy: true });
    a.active = `${app}.2026-12-01_001`;
    nodes.database(DB, app, { [`public.${app}`]: app === 'hello' ? 3 : 5 });
  }
  answerSetupScripts(nodes);
  return d;
}
const DB = 'db.shop.test';
const replaceRecord = (nodes: FakeNodes) => JSON.parse(nodes.state.get('app1.shop.test')!.get('replace')!) as { backups: Record<string, string> | null; rebuilt?: boolean; restored?: string[] };

test('a database node whose restore fails for one app: every app stays in maintenance, the record open; the same command again builds nothing anew and restores only that app, from the same dump', async (t) => {
  const { ns, rt, provider, nodes } = await dbReplacement();
  const destroyed: string[] = [];
  const destroy = provider.destroy.bind(provider);
  provider.destroy = async (n) => {
    destroyed.push(n.name);
    return destroy(n);
  };
  // (blog's restore on the new node fails once)
  let failBlog = true;
  nodes.failWhen = (c) => (c.node === DB && c.argv[3] === 'restore' && c.argv[4] === 'blog' && failBlog ? 'silver-db-postgresql: restore failed' : null);
  const first = await replaceNode(ns, rt, { node: DB, yes: true, force: true });
  t.false(first.ok, JSON.stringify(first));
  t.deepEqual(destroyed, [DB], 'the node was built anew');
  const rec = replaceRecord(nodes);
  t.truthy(rec.backups, 'the record stays open');
  t.true(rec.rebuilt);
  t.deepEqual(rec.restored, ['hello']);
  t.deepEqual(nodes.verbs('balancer.shop.test', 'silver-balancer').map((v) => v.split(' ').slice(0, 4).join(' ')), ['mode set hello maintenance', 'mode set blog maintenance'], 'both apps held, none put back');
  t.regex(first.error ?? '', /restore failed/);
  const dumps = Object.values(rec.backups!);

  failBlog = false;
  nodes.calls.length = 0;
  const second = await replaceNode(ns, rt, { node: DB, yes: true });
  t.true(second.ok, JSON.stringify(second));
  t.deepEqual(destroyed, [DB], 'not destroyed again');
  t.deepEqual(nodes.verbs(DB, 'silver-db-postgresql').filter((v) => v.startsWith('restore')).map((v) => v.split(' ')[1]), ['blog'], 'only the app left to restore');
  t.false(nodes.verbs(DB, 'silver-db-postgresql').some((v) => v.startsWith('dump')), 'no fresh dump of the new node');
  t.deepEqual(second.restored?.map((r) => r.stamp), [dumps[1]], 'the same dump as the first run chose');
  t.is(replaceRecord(nodes).backups, null, 'closed');
  t.deepEqual(nodes.dbs.get(DB)!.get('blog'), { 'public.blog': 5 });
  t.deepEqual(nodes.dbs.get(DB)!.get('hello'), { 'public.hello': 3 });
  t.deepEqual(nodes.verbs('balancer.shop.test', 'silver-balancer').slice(-2), ['mode clear hello', 'mode clear blog'], 'put back once every app is restored');
});

test('a database node\'s replacement resumed after its new node is gone: the record says so before a node is made, and every app is restored again', async (t) => {
  const { ns, rt, provider, nodes } = await dbReplacement();
  nodes.failWhen = (c) => (c.node === DB && c.argv[3] === 'restore' && c.argv[4] === 'blog' ? 'silver-db-postgresql: restore failed' : null);
  t.false((await replaceNode(ns, rt, { node: DB, yes: true, force: true })).ok);
  t.deepEqual(replaceRecord(nodes).restored, ['hello']);
  nodes.failWhen = () => null;
  // The new node lost (destroyed by hand, or by its cloud): its restores with it.
  await provider.destroy((await provider.list(ns.name)).find((n) => n.name === DB)!);
  nodes.dbs.delete(DB);
  const seen: { rebuilt?: boolean; restored?: string[] }[] = [];
  nodes.onCall = (c) => {
    if (c.argv[3] === 'restore') seen.push(replaceRecord(nodes));
  };
  const r = await replaceNode(ns, rt, { node: DB, yes: true });
  t.true(r.ok, JSON.stringify(r));
  t.deepEqual(nodes.dbs.get(DB)!.get('hello'), { 'public.hello': 3 }, 'hello restored again');
  t.deepEqual(nodes.dbs.get(DB)!.get('blog'), { 'public.blog': 5 });
  t.deepEqual(seen[0], { ...seen[0], rebuilt: true, restored: [] }, 'the new node\'s record lists no restore of the lost one');
  t.is(replaceRecord(nodes).backups, null);
});

test('a database node whose restored rows differ from the manifest: that app is not counted as restored, the others are; maintenance kept until a run restores it with its rows', async (t) => {
  const { ns, rt, nodes } = await dbReplacement();
  // (blog's dump loads one row short once: the restore says so)
  let short = true;
  nodes.onCall = (c) => {
    if (short && c.node === DB && c.argv[3] === 'load' && c.argv[4] === 'blog') {
      short = false;
      const rows = nodes.dbs.get(DB);
      queueMicrotask(() => {
        const staged = [...(rows?.keys() ?? [])].find((k) => k !== 'hello' && k !== 'blog');
        if (staged) rows!.set(staged, { 'public.blog': 4 });
      });
    }
  };
  const first = await replaceNode(ns, rt, { node: DB, yes: true, force: true });
  t.false(first.ok, JSON.stringify(first));
  t.regex(first.error ?? '', /blog: public\.blog: 4 rows, expected 5/);
  t.deepEqual(replaceRecord(nodes).restored, ['hello']);
  t.truthy(replaceRecord(nodes).backups);
  const second = await replaceNode(ns, rt, { node: DB, yes: true });
  t.true(second.ok, JSON.stringify(second));
  t.deepEqual(second.restored?.map((x) => x.app), ['blog']);
  t.deepEqual(nodes.dbs.get(DB)!.get('blog'), { 'public.blog': 5 });
});

/** Every node's replica of a record of the shared state, changed by `edit` (a newer seq). */
function editRecord(nodes: FakeNodes, key: string, edit: (rec: Record<string, unknown>) => void): void {
  for (const [, m] of nodes.state) {
    if (!m.has(key)) continue;
    const rec = JSON.parse(m.get(key)!) as Record<string, unknown> & { seq: number };
    edit(rec);
    rec.seq += 10;
    m.set(key, JSON.stringify(rec));
  }
}
const failBlogOnce = (nodes: FakeNodes) => {
  let once = true;
  nodes.failWhen = (c) => (once && c.node === DB && c.argv[3] === 'restore' && c.argv[4] === 'blog' ? ((once = false), 'silver-db-postgresql: restore failed') : null);
};

test('attack: SIGINT while a resumed replacement writes its record keeps every app in maintenance (the node holds an incomplete restore)', async (t) => {
  const { ns, rt, nodes, signal } = await dbReplacement();
  failBlogOnce(nodes);
  t.false((await replaceNode(ns, rt, { node: DB, yes: true, force: true })).ok);
  let sent = false;
  nodes.onCall = (c) => {
    if (!sent && c.argv[3] === 'put' && c.argv[4] === 'replace') {
      sent = true;
      signal();
    }
  };
  await replaceNode(ns, rt, { node: DB, yes: true }).catch(() => undefined);
  t.true(sent);
  t.deepEqual(Object.keys(nodes.modes.get('balancer.shop.test')?.modes ?? {}).sort(), ['blog', 'hello'], 'both apps still in maintenance');
  t.truthy(replaceRecord(nodes).backups);
});

test('a replacement resumed on a node made again by hand under the same name (another host key): every app restored again, none skipped', async (t) => {
  const { ns, rt, nodes, provider } = await dbReplacement();
  failBlogOnce(nodes);
  t.false((await replaceNode(ns, rt, { node: DB, yes: true, force: true })).ok);
  t.deepEqual(replaceRecord(nodes).restored, ['hello']);
  // delete-node and create-node by hand: a new, empty node, its new key pinned.
  const spec = ns.nodes.find((n) => n.name === DB)!;
  await provider.destroy((await provider.list(ns.name)).find((n) => n.name === DB)!);
  const { node } = await provider.create({ labels: { nodeset: ns.name, name: spec.name, role: spec.role, index: spec.index }, flavor: { id: 'small', ramMb: 256 }, image: 'debian-12', hostKey: { public: 'ssh-ed25519 KEY2', private: '' }, publicKey: '' } as never);
  rt.state.unpin(ns.name, [DB]);
  rt.state.pin(ns.name, DB, node.privateAddress!, 'ssh-ed25519 KEY2');
  nodes.dbs.delete(DB);
  const r = await replaceNode(ns, rt, { node: DB, yes: true });
  t.true(r.ok, JSON.stringify(r));
  t.deepEqual(nodes.dbs.get(DB)!.get('hello'), { 'public.hello': 3 }, 'hello restored again');
  t.deepEqual(nodes.dbs.get(DB)!.get('blog'), { 'public.blog': 5 });
});

test('an app whose hold `silver maintenance` ended is taken as it is by the resumed replacement; with every hold ended, the next replacement begins anew (fresh dumps, a verified backup asked for)', async (t) => {
  const { ns, rt, nodes } = await dbReplacement();
  failBlogOnce(nodes);
  t.false((await replaceNode(ns, rt, { node: DB, yes: true, force: true })).ok);
  const dropHold = (app: string) =>
    editRecord(nodes, 'maintenance', (rec) => {
      delete (rec['holds'] as Record<string, unknown>)[app];
      delete (rec['modes'] as Record<string, unknown>)[app];
    });
  dropHold('blog');
  nodes.calls.length = 0;
  const r = await replaceNode(ns, rt, { node: DB, yes: true });
  t.true(r.ok, JSON.stringify(r));
  t.deepEqual(nodes.verbs(DB, 'silver-db-postgresql').filter((v) => v.startsWith('restore')), [], 'blog taken as it is, hello restored before');
  t.is(replaceRecord(nodes).backups, null);

  // Every hold ended: the earlier replacement is over.
  failBlogOnce(nodes);
  t.false((await replaceNode(ns, rt, { node: DB, yes: true, force: true })).ok);
  dropHold('blog');
  dropHold('hello');
  await t.throwsAsync(replaceNode(ns, rt, { node: DB, yes: true }), { message: /no backup verified by a restore in the last 7 days/ });
  nodes.calls.length = 0;
  t.true((await replaceNode(ns, rt, { node: DB, yes: true, force: true })).ok);
  t.deepEqual(nodes.verbs(DB, 'silver-db-postgresql').filter((v) => v.startsWith('dump')).length, 2, 'fresh dumps of both');
});

test('a hold `silver maintenance` ends while the question waits (it takes no deploy lock): the resumed replacement stops under the lock, restores nothing, holds nothing anew', async (t) => {
  const { ns, rt, nodes } = await dbReplacement();
  failBlogOnce(nodes);
  t.false((await replaceNode(ns, rt, { node: DB, yes: true, force: true })).ok);
  rt.confirm = async () => {
    // (the operator ends blog's hold: blog serves, and writes, on the new node as it is)
    editRecord(nodes, 'maintenance', (rec) => {
      delete (rec['holds'] as Record<string, unknown>)['blog'];
      delete (rec['modes'] as Record<string, unknown>)['blog'];
    });
    return true;
  };
  nodes.calls.length = 0;
  await t.throwsAsync(replaceNode(ns, rt, { node: DB, yes: false }), { message: /db\.shop\.test: silver maintenance ended the hold of blog while the question waited: nothing done; run the command again/ });
  t.deepEqual(nodes.verbs(DB, 'silver-db-postgresql').filter((v) => v.startsWith('restore') || v.startsWith('load')), [], 'blog not restored over what it wrote');
  t.false(nodes.verbs('balancer.shop.test', 'silver-balancer').some((v) => v.startsWith('mode set blog')), 'blog not held again');
});

test('an unfinished replacement of another service node is finished first: replace-node of this one is refused, nothing held or dumped', async (t) => {
  const { ns, rt, nodes } = await dbReplacement();
  for (const n of ns.nodes) nodes.state.set(n.name, new Map([['replace', JSON.stringify({ seq: 3, node: 'mysql.shop.test', backups: { blog: 's' }, started: '2026-12-01T00:00:00Z' })]]));
  await t.throwsAsync(replaceNode(ns, rt, { node: DB, yes: true, force: true }), { message: /the replacement of mysql\.shop\.test begun 2026-12-01T00:00:00Z is unfinished: run silver replace-node \/n\/shop\.conf --node mysql\.shop\.test to finish it first/ });
  t.deepEqual(nodes.verbs('balancer.shop.test', 'silver-balancer'), []);
  t.false(nodes.verbs(DB, 'silver-db-postgresql').some((v) => v.startsWith('dump')));
});

test('replace-node of the only node of a one-node nodeset: its lease, set aside down to no node, is never lost (no node can grant the lock to another run meanwhile)', async (t) => {
  const text = NODESET.replace('[balancer]\n', '').replace('nodes = 2', 'nodes = 1\nload_balancer = false').replace('[service:postgresql]\nnode_name = db.shop.test\n', '');
  const d = await fakeDeploy(text);
  const { ns, rt, provider, nodes } = d;
  t.deepEqual(ns.nodes.map((n) => n.name), ['app1.shop.test']);
  const scripts: string[] = [];
  answerSetupScripts(nodes, (_node, text) => scripts.push(text));
  // (a create that takes a few seconds, as every real one does: one heartbeat passes meanwhile)
  const create = provider.create.bind(provider);
  provider.create = async (req) => {
    await new Promise((r) => setTimeout(r, 5_600));
    return create(req);
  };
  const r = await replaceNode(ns, rt, { node: 'app1.shop.test', yes: true, drainMs: 1 });
  t.true(r.ok, r.error ?? '');
  // The new node took the lock with this run's token as it got silver-state; the new session
  // takes it up there (renewed, then beaten on) while the apps are installed, and lets it go at
  // the end: it never lapses on the one node that holds it.
  const locks = nodes.calls.filter((c) => c.node === 'app1.shop.test' && c.argv[2]?.endsWith('/silver-state') && ['lock', 'unlock'].includes(c.argv[3]!)).map((c) => `${c.argv[3]} ${c.argv[4]}`);
  const token = locks[0]!.split(' ')[1]!;
  t.regex(token, /^[0-9a-f]{32}$/);
  t.true(locks.every((l) => l.endsWith(` ${token}`)), locks.join('\n'));
  const install = nodes.calls.findIndex((c) => c.node === 'app1.shop.test' && c.argv.some((a) => a.endsWith('/silver-deploy')) && c.argv.includes('stage'));
  const renewedAt = nodes.calls.findIndex((c, i) => i > 0 && c.node === 'app1.shop.test' && c.argv[3] === 'lock' && nodes.calls.slice(0, i).some((p) => p.argv.join(' ').includes('silver-fast') || p.argv.includes('sh')));
  t.true(renewedAt >= 0 && (install < 0 || renewedAt < install), 'taken up before the apps are installed');
  t.is(locks.at(-1), `unlock ${token}`);
  t.is(nodes.state.get('app1.shop.test')!.get('lock'), undefined, 'released at the end');
  // No heartbeat reaches the new node until then: it takes the lock for the longest TTL
  // silver-state allows, not the heartbeat's 30 s (a setup longer than that would let it lapse).
  t.is(scripts.length, 1);
  t.regex(scripts[0]!, /^SILVER_LOCK_TTL=300$/m);
});

test('silver backup --keep 1 beside an unfinished replacement of the database node keeps the dumps it restores (for an app not restored yet, the only copy of its data): the next replace-node finishes', async (t) => {
  const { ns, rt, nodes } = await dbReplacement();
  const { backup } = await import('../../src/commands/backup.js');
  failBlogOnce(nodes);
  t.false((await replaceNode(ns, rt, { node: DB, yes: true, force: true })).ok);
  const held = replaceRecord(nodes).backups!;
  // (a nightly backup with pruning, twice: every older backup would go)
  const first = await backup(ns, rt, { keep: 1 });
  const second = await backup(ns, rt, { keep: 1 });
  t.true(first.backups.every((b) => b.ok) && second.backups.every((b) => b.ok));
  for (const [app, stamp] of Object.entries(held)) {
    t.false([...first.pruned, ...second.pruned].some((dir) => dir.endsWith(`/${app}/${stamp}`)), `${app} ${stamp} kept`);
    t.true(second.notes.includes(`${app}: backup ${stamp} kept: the unfinished replace-node restores it`));
  }
  t.true(second.pruned.length > 0, 'the others were pruned');
  const r = await replaceNode(ns, rt, { node: DB, yes: true });
  t.true(r.ok, r.error ?? '');
  t.deepEqual(r.restored!.map((x) => [x.app, x.stamp]), [['blog', held['blog']!]]);
});

test('a database there that no active instance uses (an app whose first deploy failed after its migrations) stops replace-node before anything is held or destroyed: it would go undumped', async (t) => {
  const { ns, rt, nodes, provider } = await dbReplacement();
  nodes.app('app1.shop.test', 'blog').active = null;
  nodes.calls.length = 0;
  await t.throwsAsync(replaceNode(ns, rt, { node: DB, yes: true }), { message: /db\.shop\.test holds databases no app server's active instance uses \(blog\): they would be destroyed undumped; deploy their apps \(silver update\) first, or pass --force to destroy them: nothing done/ });
  t.true((await provider.list(ns.name)).some((n) => n.name === DB), 'not destroyed');
  t.deepEqual(nodes.verbs('balancer.shop.test', 'silver-balancer'), [], 'nothing held');
  t.false(nodes.verbs(DB, 'silver-db-postgresql').some((v) => v.startsWith('dump')));
  // (--force: an app no longer in the nodeset's file has no other way; said in the report)
  const r = await replaceNode(ns, rt, { node: DB, yes: true, force: true });
  t.true(r.ok, r.error ?? '');
  t.true(r.notes!.some((n) => n.startsWith('blog: no app server\'s active instance uses them: destroyed with the node, undumped (--force)')));
});
