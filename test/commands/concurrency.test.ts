import test from 'ava';
import { replaceNode } from '../../src/commands/replace-node.js';
import { unlock, update } from '../../src/commands/update.js';
import { fakeApp, OLD } from '../helpers/fake-app.js';
import { answerSetupScripts, fakeDeploy, NODESET } from '../helpers/fake-nodes.js';
import { readBackupsRecord, recordBackups } from '../../src/backup/record.js';
import { maintenance } from '../../src/commands/maintenance.js';
import { applyMode } from '../../src/deploy/modes.js';
import { Session } from '../../src/deploy/session.js';
import { SharedState, newestOf } from '../../src/deploy/shared-state.js';
import { Remote } from '../../src/remote/executor.js';

// Two silver commands against one nodeset at once (two operators, or CI and a human): each pair
// that can overlap ends in one consistent state. The nodes are simulated.

const A1 = 'app1.shop.test';

/** A promise a test opens when it wants (a step of one command held until another's is done). */
function gate(): { wait: Promise<void>; open: () => void } {
  let open: () => void = () => undefined;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}
const B = 'balancer.shop.test';
const DB = 'db.shop.test';

test('replace-node of the database node while an app gets its first database there (CI deploys it as the question waits): nothing is destroyed, the command says to run again', async (t) => {
  const d = await fakeDeploy(NODESET.replace('locations = http://shop.test/ hello', 'locations =\n    http://shop.test/ hello\n    http://blog.shop.test/ blog'));
  const { ns, rt, nodes } = d;
  const a = nodes.app(A1, 'hello');
  a.instances.set(OLD, { port: 20001, running: true, healthy: true });
  a.active = OLD;
  nodes.database(DB, 'hello', { 'public.hello': 3 });
  const destroyed: string[] = [];
  const destroy = d.provider.destroy.bind(d.provider);
  d.provider.destroy = async (n) => {
    destroyed.push(n.name);
    return destroy(n);
  };
  rt.confirm = async () => {
    const u = await update(ns, { ...fakeApp(), name: 'blog' }, rt, { graceMs: 5 });
    if (!u.ok) throw new Error(JSON.stringify(u.failure));
    nodes.database(DB, 'blog', { 'public.blog': 7 });
    return true;
  };
  await t.throwsAsync(replaceNode(ns, rt, { node: DB, yes: false, force: true }), { message: /^db\.shop\.test: its apps \(hello, blog\) or an earlier replacement changed while the question waited .*: nothing done; run the command again$/ });
  t.deepEqual(destroyed, [], 'the database node stands');
  t.true(nodes.dbs.get(DB)?.has('blog'), "blog's database is there");
  t.false(nodes.verbs(B, 'silver-balancer').some((v) => / maintenance/.test(v)), 'no app was held');
});

test('silver unlock under a running holder: refused without --force; with it, the holder learns at its next heartbeat that the lock was broken (it does not silently take it again)', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  const all = [A1, 'app2.shop.test', DB, B];
  const mk = () => new SharedState(new Remote(nodes), { nodeset: 'shop', total: 4, nodes: all, say: () => undefined });
  const a = await mk().lock('alice@x pid 1 (machine m): update hello since now');
  await t.throwsAsync(unlock(ns, rt), { message: /^the deploy lock is held by alice@x pid 1 .*whose last heartbeat was 1s ago: it is running .*silver unlock --force breaks it all the same$/ });
  t.true(all.every((n) => nodes.state.get(n)!.get('lock')!.startsWith(a.token)), 'the lock stays');
  t.deepEqual(await unlock(ns, rt, { force: true }), ['alice@x pid 1 (machine m): update hello since now']);
  await a.beat();
  t.regex(a.lost ?? '', /the deploy lock was broken \(silver unlock\) while this run held it/);
  t.true(all.every((n) => !nodes.state.get(n)!.has('lock')), 'the holder gave back what its beat took: the lock is free, as the unlock meant');
  // One node's replica lapsed and taken over by a run that then gave up (a majority still renews): not broken.
  const c = await mk().lock('carol@z pid 3 (machine o): update hello since now');
  nodes.state.get(B)!.set('lock', `${'f'.repeat(32)} other`);
  nodes.state.get(B)!.delete('lock');
  await c.beat();
  t.is(c.lost, null);
  await c.release();
  // (a node that never had the lock — down when it was taken — taking it at a heartbeat is no sign of that)
  for (const n of all) nodes.state.get(n)!.delete('lock');
  const b = await mk().lock('bob@y pid 2 (machine n): update hello since now');
  nodes.state.get(B)!.delete('lock');
  (b as unknown as { holding: Set<string> }).holding.delete(B);
  await b.beat();
  t.is(b.lost, null);
  await b.release();
});

test('silver maintenance on during an update\'s migration (migrate_mode = read-only): the operator\'s word stays after the update (the update put back only what it set itself)', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  for (const n of [A1, 'app2.shop.test']) {
    const a = nodes.app(n, 'hello');
    a.instances.set(OLD, { port: 20001, running: true, healthy: true });
    a.active = OLD;
  }
  const exec = nodes.exec.bind(nodes);
  let other: Promise<unknown> | null = null;
  nodes.exec = async (node, command, stdin, ms, on) => {
    if (/ migrate hello /.test(command) && !other) await (other = maintenance(ns, rt, 'on', { app: 'hello' }));
    return exec(node, command, stdin, ms, on);
  };
  const r = await update(ns, { ...fakeApp(), migrate: { kind: 'script', command: 'x' }, migrateMode: 'read-only' }, rt, { graceMs: 5 });
  t.true(r.ok, JSON.stringify(r.failure));
  t.truthy(other);
  t.is(nodes.modes.get(B)!.modes['hello']?.mode, 'maintenance', 'the operator\'s maintenance, given last, stays');
  t.is(JSON.parse(nodes.state.get(B)!.get('maintenance')!).modes.hello.mode, 'maintenance');
  // Without an operator in between, the update's read-only goes as before.
  nodes.exec = exec;
  await maintenance(ns, rt, 'off', { app: 'hello' });
  const again = await update(ns, { ...fakeApp(), migrate: { kind: 'script', command: 'x' }, migrateMode: 'read-only' }, rt, { graceMs: 5 });
  t.true(again.ok);
  t.deepEqual(nodes.modes.get(B)!.modes, {});
});

test('two mode changes at once (two operators): both are in the nodes\' record, not only on the balancer; a failed verify and a backup at once keep the failure', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  const [s1, s2] = [await Session.open(ns, rt), await Session.open(ns, rt)];
  await Promise.all([applyMode(s1, { app: null, mode: 'maintenance' }), applyMode(s2, { app: 'hello', mode: 'read-only' })]);
  t.deepEqual(Object.keys(nodes.modes.get(B)!.modes).sort(), ['*', 'hello']);
  for (const n of [A1, 'app2.shop.test', DB, B]) t.deepEqual(Object.keys(JSON.parse(nodes.state.get(n)!.get('maintenance')!).modes).sort(), ['*', 'hello'], n);
  await Promise.all([recordBackups(s1, { hello: { verifyOk: false, lastVerified: '2026-12-07T10:00:00.000Z' } }), recordBackups(s2, { hello: { lastBackup: '2026-12-07T10:00:01.000Z' } })]);
  const rec = (await readBackupsRecord(s1)).apps['hello']!;
  t.is(rec.verifyOk, false);
  t.is(rec.lastBackup, '2026-12-07T10:00:01.000Z');
  await Promise.all([s1.close(), s2.close()]);
});

test('nodes whose silver-state is older than this silver (no SEQ): the record\'s change says to run setup-node', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  const exec = nodes.exec.bind(nodes);
  nodes.exec = async (node, command, stdin, ms, on) =>
    /silver-state put \S+ \d+$/.test(command) ? { code: 1, stdout: '', stderr: 'silver-state: usage: silver-state put KEY\n' } : exec(node, command, stdin, ms, on);
  const s = await Session.open(ns, rt);
  await t.throwsAsync(recordBackups(s, { hello: { lastBackup: '2026-12-07T10:00:00.000Z' } }), { message: "the nodes' silver-state is older than this silver (4 of 4): run silver setup-node first" });
  await s.close();
});

test('copies of one seq that differ (two writers raced): every reader takes the one more replicas hold, then one fixed choice', async (t) => {
  const get = (v: object) => `== maintenance\n${JSON.stringify(v)}\n`;
  const w1 = { seq: 1, modes: { a: 1 } };
  const w2 = { seq: 1, modes: { b: 1 } };
  t.deepEqual(newestOf([get(w2), get(w1), get(w1), get(w1)], 4).get('maintenance'), w1);
  t.deepEqual(newestOf([get(w1), get(w1), get(w1), get(w2)], 4).get('maintenance'), w1);
  const one = newestOf([get(w1), get(w2)], 2).get('maintenance');
  t.deepEqual(newestOf([get(w2), get(w1)], 2).get('maintenance'), one, 'the same whatever the order');
  t.deepEqual(newestOf([get(w1), get({ seq: 2, modes: {} })], 2).get('maintenance'), { seq: 2, modes: {} });
});

test('two mode changes whose balancer steps cross (the older one reaches the balancer last): the balancer ends on the newest record, whole', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  const exec = nodes.exec.bind(nodes);
  const later = gate();
  nodes.exec = async (node, command, stdin, ms, on) => {
    // (the first change's step to the balancer waits until the second change is done)
    if (node === B && / mode set '?\*'? maintenance /.test(command)) await later.wait;
    return exec(node, command, stdin, ms, on);
  };
  const [s1, s2] = [await Session.open(ns, rt), await Session.open(ns, rt)];
  const first = applyMode(s1, { app: null, mode: 'maintenance' });
  await new Promise((r) => setTimeout(r, 50));
  await applyMode(s2, { app: null, mode: 'read-only' });
  later.open();
  await first;
  const rec = JSON.parse(nodes.state.get(B)!.get('maintenance')!);
  t.is(rec.modes['*'].mode, 'read-only', 'the record: the later change');
  t.is(nodes.modes.get(B)!.modes['*']?.mode, 'read-only', 'the balancer: the same');
  await Promise.all([s1.close(), s2.close()]);
});

test('a third change made while an overtaken change catches the balancers up: the balancers end on the newest record all the same', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  const exec = nodes.exec.bind(nodes);
  const [gate1, gate2, catching] = [gate(), gate(), gate()];
  let caught = false;
  nodes.exec = async (node, command, stdin, ms, on) => {
    if (node === B && / mode set '?\*'? maintenance /.test(command)) await gate1.wait;
    if (node === B && / mode allow/.test(command) && !caught) {
      caught = true;
      catching.open();
      await gate2.wait;
    }
    return exec(node, command, stdin, ms, on);
  };
  const [sa, sb, sc] = [await Session.open(ns, rt), await Session.open(ns, rt), await Session.open(ns, rt)];
  const a = applyMode(sa, { app: null, mode: 'maintenance' });
  await new Promise((r) => setTimeout(r, 50));
  await applyMode(sb, { app: 'hello', mode: 'read-only' });
  gate1.open();
  await catching.wait;
  await applyMode(sc, { app: 'hello', mode: 'online' });
  gate2.open();
  await a;
  const rec = JSON.parse(nodes.state.get(B)!.get('maintenance')!);
  t.is(rec.modes.hello.mode, 'online');
  t.is(nodes.modes.get(B)!.modes['hello']?.mode, 'online', 'the balancer too');
  t.is(nodes.modes.get(B)!.modes['*']?.mode, 'maintenance');
  await Promise.all([sa.close(), sb.close(), sc.close()]);
});

test('delete-node --orphans of an app server (scale-down) under the deploy lock: refused while an update holds it, nothing drained or deleted; else drained, deleted and rewired under one lock', async (t) => {
  const d = await fakeDeploy();
  const { rt, nodes, provider } = d;
  const { loadNodeset } = await import('../../src/nodeset/resolve.js');
  const { memoryHost } = await import('../../src/config/host.js');
  const { deleteNodes } = await import('../../src/commands/nodes.js');
  const small = loadNodeset('/n/shop.conf', memoryHost({ '/n/shop.conf': NODESET.replace('nodes = 2', 'nodes = 1') }));
  const scripts: string[] = [];
  answerSetupScripts(nodes, (node, text) => scripts.push(`${node} ${nodes.state.get(node)?.get('lock')?.split(' ')[0] ?? '-'} ${/^SILVER_LOCK_TOKEN='?([0-9a-f]+)/m.exec(text)?.[1] ?? '-'}`));
  const lockArgs = (verb: string, from = 0) => nodes.calls.slice(from).filter((c) => c.argv[2]?.endsWith('/silver-state') && c.argv[3] === verb);
  // An update holds the lock: the scale-down stops before it drains anything.
  const s = await Session.open(small, rt);
  const lease = await s.state.lock('ops@ci pid 1: update hello since then');
  await t.throwsAsync(deleteNodes(small, rt, { nodes: [], orphans: true, yes: true, concurrency: 2 }), { message: /nodeset shop is locked by ops@ci pid 1: update hello/ });
  t.deepEqual(nodes.verbs(B, 'silver-balancer'), [], 'nothing drained');
  t.deepEqual((await provider.list('shop')).map((n) => n.name).sort(), ['app1.shop.test', 'app2.shop.test', B, DB].sort(), 'nothing deleted');
  await lease.release();
  await s.close();

  const before = nodes.calls.length;
  const r = await deleteNodes(small, rt, { nodes: [], orphans: true, yes: true, concurrency: 2 });
  t.deepEqual(r, { deleted: ['app2.shop.test'], failed: [] });
  t.deepEqual(nodes.verbs(B, 'silver-balancer').slice(0, 2), ['drain app2.shop.test', 'disable app2.shop.test']);
  // (one lock, the scale-down's: the rewiring takes none of its own, and its scripts name it)
  t.is(new Set(lockArgs('lock', before).map((c) => c.argv[4])).size, 1);
  t.true(scripts.length >= 3);
  for (const line of scripts) {
    const [, held, named] = line.split(' ');
    t.is(held, named, line);
    t.not(held, '-', line);
  }
  for (const n of [A1, B, DB]) t.is(nodes.state.get(n)?.get('lock'), undefined, `${n}: let go`);
});
