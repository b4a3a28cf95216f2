import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rollback, rollbackTarget, update } from '../../src/commands/update.js';
import { parseStatus } from '../../src/deploy/remote.js';
import { contentSums } from '../../src/deploy/content.js';
import { fakeApp, NEW, OLD } from '../helpers/fake-app.js';
import { fakeDeploy, type FakeNodes } from '../helpers/fake-nodes.js';

// The rollout without machines: the nodes are simulated (test/helpers/fake-nodes.ts), every
// remote call is recorded as argv, and each step is failed in turn.

const app = fakeApp();
const dir = app.dir;
const A1 = 'app1.shop.test';
const A2 = 'app2.shop.test';
const opts = { graceMs: 5 };

/** Both app servers serve OLD (previous: none), as after a first update. */
function deployed(nodes: FakeNodes, active = OLD): void {
  for (const n of [A1, A2]) {
    const a = nodes.app(n, 'hello');
    a.instances.set(active, { port: 20001, running: true, healthy: true });
    a.active = active;
  }
}

const actives = (nodes: FakeNodes) => [A1, A2].map((n) => nodes.app(n, 'hello').active);
/** The instances running on the node once its stop timers have run. */
const running = async (nodes: FakeNodes, node: string) => {
  await nodes.stopsDone();
  return [...nodes.app(node, 'hello').instances].filter(([, s]) => s.running).map(([i]) => i);
};
/** A switch of silver-deploy's (with or without the replaced instance's stop). */
const isSwitch = (argv: readonly string[]) => argv[3] === 'switch' || argv[3] === 'switch-stop';
const record = (nodes: FakeNodes) => JSON.parse(nodes.state.get(A1)!.get('rollout')!) as { state: string; instance: string; outcome?: string; before: Record<string, { active: string | null }> };
const locked = (nodes: FakeNodes) => [...nodes.state.values()].some((s) => s.has('lock'));

test('an update runs the steps in order on each app server, records its intent before the first switch, and closes it', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  deployed(nodes);
  const r = await update(ns, app, rt, opts);
  t.true(r.ok, JSON.stringify(r.failure));
  t.is(r.instance, NEW);
  t.deepEqual(r.activated, [A1, A2]);
  t.deepEqual(nodes.verbs(A1), [
    // (the settings are asked for with the services, before the status answers)
    'env-get hello',
    'pending get hello',
    'status',
    `stage hello ${NEW} 20002 /health ${Buffer.from('python3 app.py').toString('base64')}`,
    `env hello ${NEW}`,
    `mark hello ${NEW} ${contentSums(dir, null).code} - -`,
    // (start, and wait until it listens: one call)
    `up hello ${NEW} 60`,
    `fetch hello ${NEW} /setup primary`,
    `wait hello ${NEW} /health 30 2xx`,
    // (the switch sets the replaced instance's stop after its grace, by a timer on the node)
    `switch-stop hello ${NEW} 5`,
    'prune hello 3',
  ]);
  t.true(nodes.verbs(A2).includes(`fetch hello ${NEW} /setup secondary`));
  // The second app server starts the new instance once the primary's update_fetch is done, not after its switch.
  const at = (node: string, v: string) => nodes.calls.findIndex((c) => c.node === node && c.argv.slice(3).join(' ') === v);
  t.true(at(A2, `up hello ${NEW} 60`) > at(A1, `fetch hello ${NEW} /setup primary`));
  t.true(at(A2, `up hello ${NEW} 60`) < at(A1, `switch-stop hello ${NEW} 5`), 'warm before the primary switched');
  // The record went to every node before the first switch, and says `done` at the end.
  const firstSwitch = nodes.calls.findIndex((c) => isSwitch(c.argv));
  const intents = nodes.calls.slice(0, firstSwitch).filter((c) => c.argv.includes('put') && c.argv.includes('rollout'));
  t.deepEqual(intents.map((c) => c.node).sort(), ['app1.shop.test', 'app2.shop.test', 'balancer.shop.test', 'db.shop.test']);
  t.is(record(nodes).state, 'done');
  t.is(record(nodes).outcome, 'activated');
  t.deepEqual(record(nodes).before[A1], { active: OLD, previous: null, static: null });
  t.false(locked(nodes), 'the lock is released on every node');
  t.deepEqual(actives(nodes), [NEW, NEW]);
  t.deepEqual(await running(nodes, A1), [NEW]);
});

// Each step of the activation, failed on each app server in turn.
const STEPS: [string, string, (argv: string[]) => boolean][] = [
  ['stage', 'stage', (a) => a[3] === 'stage'],
  ['env', 'stage', (a) => a[3] === 'env'],
  ['start', 'start', (a) => a[3] === 'up' && a[5] === NEW],
  ['update_fetch /setup', 'update_fetch /setup', (a) => a[3] === 'fetch'],
  ['health_check /health', 'health_check /health', (a) => a[3] === 'wait' && a[6] === '/health'],
  ['switch', 'switch', (a) => isSwitch(a) && a[5] === NEW],
];

for (const [verb, step, match] of STEPS) {
  for (const node of [A1, A2]) {
    test(`a failure at "${verb}" on ${node} leaves every app server on the old instance, the new one stopped, the lock free`, async (t) => {
      const { ns, rt, nodes } = await fakeDeploy();
      deployed(nodes);
      nodes.failWhen = (c) => (c.node === node && match(c.argv) ? 'injected failure' : null);
      const r = await update(ns, app, rt, opts);
      t.false(r.ok);
      t.is(r.failure?.node, node);
      t.is(r.failure?.step, step);
      t.regex(r.failure!.error, /injected failure/);
      t.deepEqual(actives(nodes), [OLD, OLD]);
      for (const n of [A1, A2]) t.deepEqual(await running(nodes, n), [OLD], `${n} runs only the old instance`);
      // The intent is written after staging: a failure there leaves no record; any later one closes it.
      if (verb === 'stage' || verb === 'env') t.false(nodes.state.get(A1)?.has('rollout') ?? false);
      else t.is(record(nodes).state, 'done');
      t.false(locked(nodes));
    });
  }
}

test('after a failure on the second app server, the first switches back with exactly its old state, and its old instance is never stopped after that', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  deployed(nodes);
  nodes.app(A1, 'hello').previous = 'hello.2026-11-30_001';
  nodes.app(A1, 'hello').instances.set('hello.2026-11-30_001', { port: 20000, running: false, healthy: true });
  nodes.failWhen = (c) => (c.node === A2 && c.argv[3] === 'wait' && c.argv[6] === '/health' ? 'unhealthy' : null);
  const r = await update(ns, app, { ...rt }, { graceMs: 50 });
  t.false(r.ok);
  t.deepEqual(r.rolledBack, [A1]);
  const after = nodes.verbs(A1).slice(nodes.verbs(A1).indexOf(`switch-stop hello ${NEW} 50`) + 1);
  t.deepEqual(after, [`start hello ${OLD}`, `wait hello ${OLD} - 60 2xx`, `switch hello ${OLD} hello.2026-11-30_001`, `stop-after hello ${NEW} 50`]);
  t.deepEqual(await running(nodes, A1), [OLD], "the old instance's stop was called off by its start; the new one stopped");
  t.is(nodes.app(A1, 'hello').previous, 'hello.2026-11-30_001');
  t.deepEqual(nodes.verbs(A2).filter((v) => v.startsWith('stop')), [`stop hello ${NEW}`], 'the started, unswitched instance stopped at once');
});

test('SIGINT during the first switch: no new step starts, the switched node goes back, the lock is released, the report says interrupted', async (t) => {
  const { ns, rt, nodes, signal } = await fakeDeploy();
  deployed(nodes);
  nodes.onCall = (c) => {
    if (c.node === A1 && isSwitch(c.argv) && c.argv[5] === NEW) signal('SIGINT');
  };
  const r = await update(ns, app, rt, opts);
  t.false(r.ok);
  t.is(r.interrupted, 'SIGINT');
  t.is(r.failure?.step, 'interrupt');
  t.deepEqual(r.rolledBack, [A1]);
  t.false(nodes.verbs(A2).some((v) => /^switch(-stop)? /.test(v) && v.includes(NEW)), 'app2 never switched');
  t.deepEqual(await running(nodes, A2), [OLD], 'the new instance it had started ahead of its turn is stopped');
  t.deepEqual(actives(nodes), [OLD, OLD]);
  t.false(locked(nodes));
  t.regex(record(nodes).outcome ?? '', /interrupted/);
});

test('a first deploy that fails on the second app server switches the first one off again', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  nodes.failWhen = (c) => (c.node === A2 && isSwitch(c.argv) ? 'nginx rejected' : null);
  const r = await update(ns, app, rt, opts);
  t.false(r.ok);
  t.deepEqual(actives(nodes), [null, null]);
  t.true(nodes.verbs(A1).includes('unswitch hello'));
  t.deepEqual(await running(nodes, A1), []);
  t.deepEqual(await running(nodes, A2), []);
});

test('after a crash (a record still running, one node switched) the next update first rolls the nodes back, then deploys', async (t) => {
  const { ns, rt, nodes, io } = await fakeDeploy();
  deployed(nodes);
  // The crashed run: NEW staged on both, app1 switched, then silver died.
  for (const n of [A1, A2]) nodes.app(n, 'hello').instances.set(NEW, { port: 20002, running: true, healthy: true });
  nodes.app(A1, 'hello').active = NEW;
  nodes.app(A1, 'hello').previous = OLD;
  const rec = { seq: 4, state: 'running', kind: 'update', app: 'hello', instance: NEW, holder: 'ann@box pid 1: update hello since x', started: 'x', before: { [A1]: { active: OLD, previous: null }, [A2]: { active: OLD, previous: null } } };
  for (const n of ['app1.shop.test', 'db.shop.test']) nodes.state.set(n, new Map([['rollout', JSON.stringify(rec)]]));
  const r = await update(ns, app, rt, opts);
  t.true(r.ok, JSON.stringify(r.failure));
  t.deepEqual(r.converged, { kind: 'update', app: 'hello', instance: NEW, holder: rec.holder, action: 'rolled back', nodes: [A1, A2] });
  t.true(io.stderr.some((l) => l.includes(`found an interrupted update of hello to ${NEW}`)));
  // app1 went back to OLD before anything else; app2 stopped the leftover NEW.
  const v1 = nodes.verbs(A1);
  t.true(v1.indexOf(`switch hello ${OLD} -`) < v1.indexOf('stage hello hello.2026-12-02_002 20003 /health cHl0aG9uMyBhcHAucHk='));
  t.true(nodes.verbs(A2).includes(`stop hello ${NEW}`));
  t.is(r.instance, 'hello.2026-12-02_002');
  t.deepEqual(actives(nodes), [r.instance, r.instance]);
});

test('after a crash during a migration that still runs on the primary, the next update puts nothing back and starts nothing beside it: it stops, naming the migration', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  deployed(nodes);
  for (const n of [A1, A2]) nodes.app(n, 'hello').instances.set(NEW, { port: 20002, running: false, healthy: true });
  const rec = { seq: 4, state: 'running', kind: 'update', app: 'hello', instance: NEW, holder: 'ann@box pid 1: update hello since x', started: 'x', before: { [A1]: { active: OLD, previous: null }, [A2]: { active: OLD, previous: null } }, hold: { mode: 'read-only', previous: null } };
  for (const n of [A1, 'db.shop.test']) nodes.state.set(n, new Map([['rollout', JSON.stringify(rec)]]));
  nodes.migrating.add(`${A1} hello`);
  const before = nodes.calls.length;
  const stopped = await update(ns, app, rt, opts);
  t.false(stopped.ok);
  t.regex(stopped.failure?.error ?? '', /app1\.shop\.test: the migration the interrupted update of hello started still runs \(silver-migrate-hello\.service\): run the update again once it has ended/);
  const verbs = nodes.calls.slice(before).map((c) => c.argv.slice(3).join(' '));
  t.false(verbs.some((v) => /^(mode|stop|switch|stage|migrate)\b/.test(v)), verbs.join(' | '));
  t.is(record(nodes).state, 'running', 'the record stays open for the run after the migration');
  t.false(locked(nodes), 'the lock is released');
  // Once it has ended, the next update converges and deploys.
  nodes.migrating.clear();
  const r = await update(ns, app, rt, opts);
  t.true(r.ok, JSON.stringify(r.failure));
  t.is(r.converged?.action, 'rolled back');
});

test('after a crash with every node already switched, the next command rolls forward (stops the old instances)', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  deployed(nodes);
  for (const n of [A1, A2]) {
    const a = nodes.app(n, 'hello');
    a.instances.set(NEW, { port: 20002, running: true, healthy: true });
    a.active = NEW;
    a.previous = OLD;
  }
  const rec = { seq: 1, state: 'running', kind: 'update', app: 'hello', instance: NEW, holder: 'h', started: 'x', before: { [A1]: { active: OLD, previous: null }, [A2]: { active: OLD, previous: null } } };
  nodes.state.set(A2, new Map([['rollout', JSON.stringify(rec)]]));
  const r = await rollback(ns, 'hello', rt, opts);
  t.is(r.converged?.action, 'rolled forward');
  // Then the rollback itself: one target (OLD) for both.
  t.is(r.target, OLD);
  t.true(r.ok);
  t.deepEqual(actives(nodes), [OLD, OLD]);
});

test('rollback with mixed active instances moves every app server to one target', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  deployed(nodes);
  const a1 = nodes.app(A1, 'hello');
  a1.instances.set(NEW, { port: 20002, running: true, healthy: true });
  a1.active = NEW;
  a1.previous = OLD;
  nodes.app(A1, 'hello').instances.get(OLD)!.running = false;
  const r = await rollback(ns, 'hello', rt, opts);
  t.true(r.ok);
  t.is(r.target, OLD);
  t.deepEqual(actives(nodes), [OLD, OLD]);
  t.deepEqual(nodes.verbs(A2).filter((v) => v.startsWith('switch')), [], 'app2 already served the target');
});

test('rollbackTarget: the common previous; refuses naming the nodes that lack the target', (t) => {
  const st = (line: string) => parseStatus(line);
  const both = new Map([
    [A1, st(`app hello active ${NEW} previous ${OLD} health ok instances ${OLD}:1:inactive ${NEW}:2:active`)],
    [A2, st(`app hello active ${NEW} previous ${OLD} health ok instances ${OLD}:1:inactive ${NEW}:2:active`)],
  ]);
  t.deepEqual(rollbackTarget('hello', both), { target: OLD });
  const lacking = new Map([...both, [A2, st(`app hello active ${NEW} previous - health ok instances ${NEW}:2:active`)]]);
  t.deepEqual(rollbackTarget('hello', lacking), { error: `${A2}: ${OLD} is not staged there (it was pruned or never deployed); deploy the version you want with silver update` });
});

test('a live lock of another run refuses, naming its holder; a gone local holder is taken over, and said so', async (t) => {
  const { ns, rt, nodes, io } = await fakeDeploy();
  deployed(nodes);
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const other = 'bob@elsewhere pid 42: update hello since 2026-12-02T09:59:00.000Z';
  for (const n of [A1, A2, 'db.shop.test', 'balancer.shop.test']) nodes.state.set(n, new Map([['lock', `tokentokenother1 ${b64(other)}`]]));
  const refused = await update(ns, app, rt, opts).catch((e: Error) => e);
  t.regex((refused as Error).message, /nodeset shop is locked by bob@elsewhere pid 42: update hello since/);
  t.deepEqual(nodes.verbs(A1).filter((v) => v.startsWith('stage')), []);

  const { hostname } = await import('node:os');
  const { machineId } = await import('../../src/deploy/shared-state.js');
  const gone = `ann@${hostname()} pid 999999 (machine ${machineId()}): update hello since 2026-12-02T09:59:00.000Z`;
  for (const n of [A1, A2, 'db.shop.test', 'balancer.shop.test']) nodes.state.set(n, new Map([['lock', `tokentokengone01 ${b64(gone)}`]]));
  const r = await update(ns, app, rt, opts);
  t.true(r.ok);
  t.true(io.stderr.some((l) => l === `took over the deploy lock of ${gone} (its holder is gone)`));
});

test('the lock needs a majority of the nodes: with two of four unreachable, nothing is deployed', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  deployed(nodes);
  nodes.down = new Set(['db.shop.test', 'balancer.shop.test']);
  nodes.failWhen = (c) => (c.argv[0] === 'sha256sum' ? null : null);
  const e = await update(ns, { ...app, services: [] }, rt, opts).catch((x: Error) => x);
  t.regex((e as Error).message, /the deploy lock needs 3 of 4 nodes; 2 took it/);
  t.false(locked(nodes));
});

test('the shared state survives the loss or replacement of any single node: the newest copy wins, writes reach every node', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  deployed(nodes);
  const first = await update(ns, app, rt, opts);
  t.true(first.ok);
  // app1 is replaced by a fresh node (empty state); the others keep theirs.
  nodes.state.delete(A1);
  nodes.down = new Set(['db.shop.test']);
  const st = await (await import('../../src/commands/status.js')).status(ns, rt);
  t.is(st.rollout, null, 'the closed rollout record was read from the remaining nodes');
  const r = await update(ns, { ...app, services: [] }, rt, opts);
  t.true(r.ok, JSON.stringify(r.failure));
  t.is(record(nodes).state, 'done', 'the fresh node got the record again');
  t.is(nodes.state.get(A1)!.get('rollout'), nodes.state.get(A2)!.get('rollout'));
  t.true(JSON.parse(nodes.state.get(A1)!.get('rollout')!).seq > JSON.parse(nodes.state.get('db.shop.test')!.get('rollout')!).seq, 'the node that was down holds an older copy, which loses');
});

test('a stop of the replaced instance that fails does not fail the update; status shows the leftover', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  deployed(nodes);
  nodes.noStopTimer.add(A1);
  const r = await update(ns, app, rt, opts);
  t.true(r.ok);
  const st = await (await import('../../src/commands/status.js')).status(ns, rt);
  t.deepEqual(st.apps.find((a) => a.node === A1)!.leftovers, [OLD]);
  t.deepEqual(st.apps.find((a) => a.node === A2)!.leftovers, []);
});

test("an app that prints its database password in a failing update_fetch does not get it into silver's output or report", async (t) => {
  const { ns, rt, nodes, io } = await fakeDeploy();
  deployed(nodes);
  nodes.failWhen = (c) => (c.argv[3] === 'fetch' ? 'silver-deploy: update_fetch /setup answered 500: CONFIG_PG_PASSWORD=s3cretpassword' : null);
  const r = await update(ns, app, rt, opts);
  t.false(r.ok);
  t.regex(r.failure!.error, /CONFIG_PG_PASSWORD=\[REDACTED\]/);
  t.false(JSON.stringify(r).includes('s3cretpassword'));
  t.false(io.stderr.join('\n').includes('s3cretpassword'));
  t.true(io.stderr.join('\n').includes('[REDACTED]'));
});

test('a switch that took effect but reported a failure is switched back too', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  deployed(nodes);
  nodes.failAfter = (c) => (c.node === A2 && isSwitch(c.argv) && c.argv[5] === NEW ? 'connection lost' : null);
  const r = await update(ns, app, rt, opts);
  t.false(r.ok);
  t.deepEqual(r.rolledBack, [A2, A1]);
  t.deepEqual(actives(nodes), [OLD, OLD]);
  t.is(record(nodes).state, 'done');
});

test('a signal that arrives while a rollback is still converging is not lost', async (t) => {
  const { ns, rt, nodes, signal } = await fakeDeploy();
  deployed(nodes);
  for (const n of [A1, A2]) nodes.app(n, 'hello').instances.set('hello.2026-11-30_001', { port: 20000, running: false, healthy: true });
  for (const n of [A1, A2]) nodes.app(n, 'hello').previous = 'hello.2026-11-30_001';
  let sent = false;
  nodes.onCall = (c) => {
    if (!sent && c.argv[3] === 'status') {
      sent = true;
      signal('SIGTERM');
    }
  };
  const r = await rollback(ns, 'hello', rt, opts);
  t.is(r.interrupted, 'SIGTERM');
  t.false(r.ok);
  t.deepEqual(actives(nodes), [OLD, OLD], 'nothing moved');
  t.false(locked(nodes));
});

test('the intent written after a convergence has a higher seq than the convergence\'s own record', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  deployed(nodes);
  const rec = { seq: 4, state: 'running', kind: 'update', app: 'hello', instance: 'hello.2026-12-01_009', holder: 'h', started: 'x', before: { [A1]: { active: OLD, previous: null }, [A2]: { active: OLD, previous: null } } };
  for (const n of [A1, A2, 'db.shop.test', 'balancer.shop.test']) nodes.state.set(n, new Map([['rollout', JSON.stringify(rec)]]));
  const seqs: number[] = [];
  nodes.onCall = (c) => {
    if (c.node === A1 && c.argv[3] === 'put' && c.argv[4] === 'rollout') queueMicrotask(() => seqs.push(JSON.parse(nodes.state.get(A1)!.get('rollout')!).seq));
  };
  const r = await update(ns, app, rt, opts);
  t.true(r.ok);
  t.deepEqual(seqs, [5, 6, 7], 'converged (5), intent (6), closed (7)');
});

test('a migration runs once, on the primary, after the half-deploy and before the first switch; its output streams', async (t) => {
  const { ns, rt, nodes, io } = await fakeDeploy();
  deployed(nodes);
  const r = await update(ns, { ...app, migrate: { kind: 'script', command: 'python3 migrate.py' } }, rt, opts);
  t.true(r.ok, JSON.stringify(r.failure));
  const migrations = nodes.calls.filter((c) => c.argv[3] === 'migrate');
  t.deepEqual(migrations.map((c) => [c.node, ...c.argv.slice(4)]), [[A1, 'hello', NEW, Buffer.from('python3 migrate.py').toString('base64')]]);
  const at = nodes.calls.indexOf(migrations[0]!);
  t.true(nodes.calls.slice(0, at).filter((c) => c.argv[3] === 'stage').length === 2, 'after both stages');
  t.false(nodes.calls.slice(0, at).some((c) => isSwitch(c.argv)), 'before any switch');
  t.true(io.stderr.includes(`${A1}: migrate: migrated 1 table`));
});

test('a failing migration stops the update with nothing switched, and says so', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  deployed(nodes);
  nodes.failWhen = (c) => (c.argv[3] === 'migrate' ? 'relation "x" already exists' : null);
  const r = await update(ns, { ...app, migrate: { kind: 'script', command: 'python3 migrate.py' } }, rt, opts);
  t.false(r.ok);
  t.is(r.failure?.step, 'migrate');
  t.is(r.failure?.node, A1);
  t.false(nodes.calls.some((c) => isSwitch(c.argv) || ((c.argv[3] === 'start' || c.argv[3] === 'up') && c.argv[5] === NEW)));
  t.deepEqual(actives(nodes), [OLD, OLD]);
});

test('static-only: only the static folder changed, so every app server switches its files and no process starts; rollback restores them', async (t) => {
  const { mkdirSync } = await import('node:fs');
  const { contentSums } = await import('../../src/deploy/content.js');
  const sdir = mkdtempSync(join(tmpdir(), 'silver-static-'));
  writeFileSync(join(sdir, 'app.py'), 'print(1)\n');
  mkdirSync(join(sdir, 'static'));
  writeFileSync(join(sdir, 'static/site.css'), 'body { color: red }\n');
  const sapp = { ...app, dir: sdir, static: 'static/' };
  const { ns, rt, nodes } = await fakeDeploy();
  const first = await update(ns, sapp, rt, opts);
  t.true(first.ok);
  t.false(first.staticOnly);
  const v1 = contentSums(sdir, 'static/');
  writeFileSync(join(sdir, 'static/site.css'), 'body { color: blue }\n');
  const v2 = contentSums(sdir, 'static/');
  t.is(v2.code, v1.code, 'the code did not change');
  t.not(v2.static, v1.static);
  const callsBefore = nodes.calls.length;
  const r = await update(ns, sapp, rt, opts);
  t.true(r.ok, JSON.stringify(r.failure));
  t.true(r.staticOnly);
  t.is(r.instance, first.instance, 'the same instance serves on');
  const after = nodes.calls.slice(callsBefore).map((c) => c.argv[3]);
  t.false(['stage', 'start', 'up', 'switch', 'switch-stop'].some((v) => after.includes(v)), `no stage, start or switch: ${after.join(' ')}`);
  for (const n of [A1, A2]) t.is(nodes.app(n, 'hello').instances.get(first.instance)!.static, v2.static!);
  const back = await rollback(ns, 'hello', rt, opts);
  t.true(back.ok, JSON.stringify(back));
  for (const n of [A1, A2]) t.is(nodes.app(n, 'hello').instances.get(first.instance)!.static, v1.static!, 'the old files are back');
  t.deepEqual(actives(nodes), [first.instance, first.instance]);
});

test('static-only: a failure on the second app server puts the first back to its old files', async (t) => {
  const { mkdirSync } = await import('node:fs');
  const sdir = mkdtempSync(join(tmpdir(), 'silver-static-'));
  writeFileSync(join(sdir, 'app.py'), 'print(1)\n');
  mkdirSync(join(sdir, 'static'));
  writeFileSync(join(sdir, 'static/a.txt'), 'one\n');
  const sapp = { ...app, dir: sdir, static: 'static/' };
  const { ns, rt, nodes } = await fakeDeploy();
  const first = await update(ns, sapp, rt, opts);
  const old = nodes.app(A1, 'hello').instances.get(first.instance)!.static;
  writeFileSync(join(sdir, 'static/a.txt'), 'two\n');
  let failures = 0;
  nodes.failWhen = (c) => (c.node === A2 && c.argv[3] === 'static-switch' && failures++ === 0 ? 'disk full' : null);
  const r = await update(ns, sapp, rt, opts);
  t.false(r.ok);
  t.true(r.staticOnly);
  t.is(r.failure?.step, 'switch static');
  t.is(nodes.app(A1, 'hello').instances.get(first.instance)!.static, old);
  t.is(record(nodes).state, 'done');
});

test('migrate_mode = read-only: the balancers hold writes back from before the migration until every app server is switched, then serve normally', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  deployed(nodes);
  const B = 'balancer.shop.test';
  const seen: string[] = [];
  nodes.onCall = (c) => {
    if (c.argv[3] === 'migrate') seen.push(`migrate while ${nodes.modes.get(B)?.modes['hello']?.mode ?? 'online'}`);
    if (isSwitch(c.argv)) seen.push(`switch ${c.node} while ${nodes.modes.get(B)?.modes['hello']?.mode ?? 'online'}`);
  };
  const r = await update(ns, { ...app, migrate: { kind: 'script', command: 'python3 migrate.py' }, migrateMode: 'read-only' }, rt, opts);
  t.true(r.ok, JSON.stringify(r.failure));
  t.deepEqual(seen, ['migrate while read-only', `switch ${A1} while read-only`, `switch ${A2} while read-only`]);
  t.deepEqual(nodes.modes.get(B)!.modes, {}, 'back to normal');
});

test('migrate_mode: a failing migration puts the balancers back as they were (a maintenance set by hand stays)', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  deployed(nodes);
  const B = 'balancer.shop.test';
  nodes.modes.set(B, { modes: { '*': { mode: 'maintenance', retryAfter: 60, message: 'by hand' } }, allow: [] });
  nodes.failWhen = (c) => (c.argv[3] === 'migrate' ? 'migration failed' : null);
  const r = await update(ns, { ...app, migrate: { kind: 'script', command: 'x' }, migrateMode: 'maintenance' }, rt, opts);
  t.false(r.ok);
  t.deepEqual(nodes.modes.get(B)!.modes, { '*': { mode: 'maintenance', retryAfter: 60, message: 'by hand' } });
  t.is(record(nodes).state, 'done');
});

test('migrate_mode: a migration whose command failed here (a dropped connection) but still runs on the node: nothing is put back or rolled back, the record stays open for the next update', async (t) => {
  const { ns, rt, nodes, io } = await fakeDeploy();
  deployed(nodes);
  const B = 'balancer.shop.test';
  nodes.failWhen = (c) => {
    if (c.argv[3] !== 'migrate') return null;
    nodes.migrating.add(`${A1} hello`);
    return 'the connection dropped';
  };
  const r = await update(ns, { ...app, migrate: { kind: 'script', command: 'x' }, migrateMode: 'read-only' }, rt, opts);
  t.false(r.ok);
  t.is(nodes.modes.get(B)!.modes['hello']?.mode, 'read-only', 'writes stay held while it runs');
  t.is(record(nodes).state, 'running');
  t.true(io.stderr.some((l) => /the migration still runs \(silver-migrate-hello\.service\): nothing is put back while it does/.test(l)), io.stderr.join('\n'));
  t.false(locked(nodes), 'the lock is released');
  // Once it has ended: the next update converges (the mode put back) and deploys.
  nodes.migrating.clear();
  nodes.failWhen = () => null;
  const next = await update(ns, { ...app, migrate: { kind: 'script', command: 'x' }, migrateMode: 'read-only' }, rt, opts);
  t.true(next.ok, JSON.stringify(next.failure));
  t.deepEqual(nodes.modes.get(B)!.modes, {});
});

test('migrate_mode over a maintenance silver holds (a restore\'s that was cut short): the hold outlives the update, which puts that maintenance back', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  deployed(nodes);
  const B = 'balancer.shop.test';
  const held = { mode: 'maintenance', retryAfter: 30, message: 'restoring' };
  const rec = { seq: 3, modes: { hello: held }, allow: [], holds: { hello: { by: 'restore', previous: null } } };
  for (const n of [A1, A2, 'db.shop.test', B]) nodes.state.set(n, new Map([['maintenance', JSON.stringify(rec)]]));
  nodes.modes.set(B, { modes: { hello: held }, allow: [] });
  const r = await update(ns, { ...app, migrate: { kind: 'script', command: 'x' }, migrateMode: 'read-only' }, rt, opts);
  t.true(r.ok, JSON.stringify(r.failure));
  t.deepEqual(nodes.modes.get(B)!.modes['hello'], held, 'the restore\'s maintenance is back');
  const after = JSON.parse(nodes.state.get(B)!.get('maintenance')!) as { holds?: Record<string, unknown> };
  t.deepEqual(after.holds, { hello: { by: 'restore', previous: null } }, 'and its hold with the mode from before it');
});

test('a health_check the balancer would send to another location of the host (a longer prefix serves it) is refused before anything is asked (exit 2)', async (t) => {
  const { NODESET } = await import('../helpers/fake-nodes.js');
  const { ns, rt, nodes } = await fakeDeploy(NODESET.replace('locations = http://shop.test/ hello', 'locations =\n    http://shop.test/ hello\n    http://shop.test/status/ other'));
  deployed(nodes);
  const e = await t.throwsAsync(update(ns, { ...app, healthCheck: '/status/ok' }, rt, opts));
  t.regex(e!.message, /health_check \/status\/ok under http:\/\/shop\.test\/ is \/status\/ok, which http:\/\/shop\.test\/status\/ \(other\) serves/);
  t.is(nodes.calls.length, 0);
  t.true((await update(ns, { ...app, healthCheck: '/health' }, rt, opts)).ok, 'a path outside it is fine');
});

test('update --dry-run reads the nodes, says what would happen, and changes nothing', async (t) => {
  const { planUpdate, renderUpdatePlan } = await import('../../src/commands/update.js');
  const { ns, rt, nodes } = await fakeDeploy();
  deployed(nodes);
  const plan = await planUpdate(ns, { ...app, migrate: { kind: 'script', command: 'python3 migrate.py' }, migrateMode: 'read-only', packages: ['python3-psycopg2'] }, rt);
  t.is(plan.instance, NEW);
  t.false(plan.staticOnly);
  t.is(plan.migrate, 'script:python3 migrate.py');
  t.deepEqual(plan.appservers, [{ node: A1, active: OLD }, { node: A2, active: OLD }]);
  t.regex(renderUpdatePlan(plan), /run the migration once on app1\.shop\.test: script:python3 migrate\.py \(balancers in read-only meanwhile\)/);
  const changing = nodes.calls.filter((c) => !['status', 'get', 'lockinfo'].includes(c.argv[3] ?? '') && c.argv[0] !== 'sha256sum');
  t.deepEqual(changing, [], 'only reads');
});

test('lock races: a majority wins over a racing minority; a tie backs off and tries again before it refuses', async (t) => {
  const b64 = (x: string) => Buffer.from(x).toString('base64');
  const other = 'bob@elsewhere pid 42 (machine abc): update hello since x';
  {
    const { ns, rt, nodes } = await fakeDeploy();
    deployed(nodes);
    nodes.state.set('balancer.shop.test', new Map([['lock', `tokentokenother1 ${b64(other)}`]]));
    const r = await update(ns, app, rt, opts);
    t.true(r.ok, 'three of four nodes are a majority');
  }
  {
    const { ns, rt, nodes } = await fakeDeploy();
    deployed(nodes);
    for (const n of ['db.shop.test', 'balancer.shop.test']) nodes.state.set(n, new Map([['lock', `tokentokenother1 ${b64(other)}`]]));
    const e = await update(ns, app, rt, opts).catch((x: Error) => x);
    t.regex((e as Error).message, /is locked by bob@elsewhere/);
    t.is(nodes.calls.filter((c) => c.node === A1 && c.argv[3] === 'lock').length, 5, 'tried five times');
    t.false(nodes.state.get(A1)?.has('lock') ?? false, 'gave back what it took');
  }
  {
    // Another run holds a majority and has not taken the rest yet: no backing off, refused at once.
    const { ns, rt, nodes } = await fakeDeploy();
    deployed(nodes);
    for (const n of [A2, 'db.shop.test', 'balancer.shop.test']) nodes.state.set(n, new Map([['lock', `tokentokenother1 ${b64(other)}`]]));
    const e = await update(ns, app, rt, opts).catch((x: Error) => x);
    t.regex((e as Error).message, /is locked by bob@elsewhere/);
    t.is(nodes.calls.filter((c) => c.node === A1 && c.argv[3] === 'lock').length, 1, 'tried once');
    t.false(nodes.state.get(A1)?.has('lock') ?? false, 'gave back what it took');
  }
});

test('after every app server switched, a failing prune is said and rolls nothing back', async (t) => {
  const { ns, rt, nodes, io } = await fakeDeploy();
  deployed(nodes);
  nodes.failWhen = (c) => (c.node === A2 && c.argv[3] === 'prune' ? 'disk busy' : null);
  const r = await update(ns, app, rt, opts);
  t.true(r.ok);
  t.deepEqual(r.rolledBack, []);
  t.deepEqual(actives(nodes), [NEW, NEW]);
  t.true(io.stderr.some((l) => l.startsWith(`${A2}: pruning old instances failed`)));
  t.is(record(nodes).state, 'done');
});

test('migrate_mode: the hold is on the record before any balancer changes; a crash after it lets the next run put the mode back', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  deployed(nodes);
  const B = 'balancer.shop.test';
  let recordAtSet: { hold?: unknown } | null = null;
  nodes.onCall = (c) => {
    if (c.node === B && c.argv[3] === 'mode' && c.argv[4] === 'set') recordAtSet = JSON.parse(nodes.state.get(A1)!.get('rollout')!);
  };
  // The migration "crashes" silver: the run ends with the record open (a node cannot switch back).
  nodes.failWhen = (c) => (c.argv[3] === 'migrate' ? 'killed' : null);
  nodes.down = new Set();
  const r = await update(ns, { ...app, migrate: { kind: 'script', command: 'x' }, migrateMode: 'read-only' }, rt, opts);
  t.false(r.ok);
  t.deepEqual((recordAtSet as { hold?: unknown } | null)?.hold, { mode: 'read-only', previous: null });
});

test('migrate_mode with the balancer unreachable refuses to migrate (writes could not be held back)', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  deployed(nodes);
  nodes.down = new Set(['balancer.shop.test']);
  const r = await update(ns, { ...app, migrate: { kind: 'script', command: 'x' }, migrateMode: 'read-only' }, rt, opts);
  t.false(r.ok);
  t.regex(r.failure!.error, /balancer\.shop\.test: connection refused|a balancer cannot be reached/);
  t.false(nodes.calls.some((c) => c.argv[3] === 'migrate'));
  t.deepEqual(actives(nodes), [OLD, OLD]);
});

test("the app's maintenance.html goes to every balancer before anything switches; an app without one gets the message page back", async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  deployed(nodes);
  const B = 'balancer.shop.test';
  const page = '<!DOCTYPE html><p>Wartung — "bald"</p>\n';
  const order: string[] = [];
  nodes.onCall = (c) => {
    if (c.argv[3] === 'page' || isSwitch(c.argv)) order.push(`${c.argv[3] === 'page' ? 'page' : 'switch'} ${c.node}`);
  };
  const r = await update(ns, { ...app, maintenancePage: page }, rt, opts);
  t.true(r.ok, JSON.stringify(r.failure));
  t.deepEqual(nodes.verbs(B, 'silver-balancer').filter((v) => v.startsWith('page')), [`page set hello ${Buffer.from(page, 'utf8').toString('base64')}`]);
  t.deepEqual(order, [`page ${B}`, `switch ${A1}`, `switch ${A2}`]);
  nodes.calls.length = 0;
  t.true((await update(ns, app, rt, opts)).ok);
  t.deepEqual(nodes.verbs(B, 'silver-balancer').filter((v) => v.startsWith('page')), ['page clear hello']);
});

test('a balancer that refuses the page stops the update before anything switches', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  deployed(nodes);
  nodes.failWhen = (c) => (c.argv[3] === 'page' ? 'silver-balancer: refused' : null);
  const r = await update(ns, { ...app, maintenancePage: '<p>x</p>' }, rt, opts);
  t.false(r.ok);
  t.is(r.failure?.step, 'maintenance page');
  t.deepEqual(r.activated, []);
  t.is(nodes.app(A1, 'hello').active, OLD);
  t.is(nodes.app(A2, 'hello').active, OLD);
  t.false(nodes.verbs(undefined).some((v) => / switch /.test(v)));
});

test('a lease counts as lost when no renewal was confirmed for its TTL less a margin (a paused silver, nodes that do not answer), and a rollout that lost its lock puts nothing back', async (t) => {
  const { Lease, BEAT_TIMEOUT_MS } = await import('../../src/deploy/shared-state.js');
  const { Remote } = await import('../../src/remote/executor.js');
  const { Rollout } = await import('../../src/deploy/rollout.js');
  let answer: 'renewed' | 'none' = 'renewed';
  const timeouts: (number | undefined)[] = [];
  const remote = new Remote({
    exec: async (_node: string, _cmd: string, _stdin: unknown, timeoutMs?: number) => {
      timeouts.push(timeoutMs);
      return answer === 'renewed' ? { code: 0, stdout: 'renewed\n', stderr: '' } : Promise.reject(new Error('timed out'));
    },
  } as unknown as ConstructorParameters<typeof Remote>[0]);
  let now = 1_000_000;
  const lease = new Lease(remote, ['a', 'b', 'c'], 'tokentoken1', 'me', 3, 0, () => now);
  now += 20_000;
  t.is(lease.lost, null, '20 s after the lock was taken: still ours');
  now += 6_000;
  t.regex(lease.lost ?? '', /^no renewal was confirmed for 26s \(the lock lapses after 30s\): another run may hold it$/);
  // A renewal a majority confirms: ours again (the nodes had it still, or took it again while free).
  await lease.beat();
  t.is(lease.lost, null);
  t.true(timeouts.every((x) => x === BEAT_TIMEOUT_MS), 'each node\'s answer is waited for a bounded time');
  // A node slow to answer does not hold up the renewal: a majority's answers confirm it.
  let release: () => void = () => undefined;
  const slow = new Lease(
    new Remote({
      exec: (node: string) => (node === 'c' ? new Promise((resolve) => (release = () => resolve({ code: 0, stdout: 'renewed\n', stderr: '' }))) : Promise.resolve({ code: 0, stdout: 'renewed\n', stderr: '' })),
    } as unknown as ConstructorParameters<typeof Remote>[0]),
    ['a', 'b', 'c'], 'tokentoken2', 'me', 3, 0, () => now,
  );
  const t0 = now;
  now = t0 + 20_000;
  const beating = slow.beat();
  await new Promise((r) => setImmediate(r));
  now = t0 + 40_000;
  t.is(slow.lost, null, 'confirmed at 20 s by a and b, while c has not answered yet');
  release();
  await beating;
  // Renewals that no node answers: lost once the time is up, though no heartbeat said so.
  answer = 'none';
  await lease.beat();
  t.regex(lease.lost ?? '', /renewed on only 0 nodes/);
  // A rollout whose lock is lost moves no node back.
  const said: string[] = [];
  const r = new Rollout({ rt: { io: { err: (x: string) => said.push(x) } } } as never, 'hello', lease, { graceMs: 5 });
  t.false(await r.restore('hello.2026-01-01_001', new Map(), 'a'));
  t.regex(said.join('\n'), /nothing is put back: the deploy lock was lost/);
});

test('a lease in a nodeset of two keeps its lock while replace-node sets the rebuilt node aside; without that, the first beat loses it', async (t) => {
  const { Lease } = await import('../../src/deploy/shared-state.js');
  const { Remote } = await import('../../src/remote/executor.js');
  // (one node answers the heartbeat; the other is being destroyed and built again)
  const remote = new Remote({
    exec: async (node: string) => (node === 'a' ? { code: 0, stdout: 'renewed\n', stderr: '' } : Promise.reject(new Error('b: no route'))),
  } as unknown as ConstructorParameters<typeof Remote>[0]);
  const plain = new Lease(remote, ['a', 'b'], 'tokentoken1', 'me', 2, 0);
  await plain.beat();
  t.is(plain.lost, 'the lock is renewed on only 1 nodes');
  const aside = new Lease(remote, ['a', 'b'], 'tokentoken1', 'me', 2, 0);
  aside.setAside('b');
  await aside.beat();
  t.is(aside.lost, null);
  aside.setAside('zzz');
  await aside.beat();
  t.is(aside.lost, null, 'a name it does not hold changes nothing');
});
