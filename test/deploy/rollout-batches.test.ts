import test from 'ava';
import { envChange } from '../../src/commands/env.js';
import { envFile, withSettings } from '../../src/deploy/settings.js';
import { planUpdate, renderUpdatePlan, rollback, update } from '../../src/commands/update.js';
import { fakeApp, NEW, OLD } from '../helpers/fake-app.js';
import { fakeDeploy, NODESET, shellWords, type Call, type FakeNodes } from '../helpers/fake-nodes.js';

// `[appserver] rollout`: the primary alone, then batches whose members activate concurrently,
// on simulated nodes (test/helpers/fake-nodes.ts). Order is asserted on the recorded calls.

const app = fakeApp();
const opts = { graceMs: 5 };
const A = (i: number) => `app${i}.shop.test`;
const appservers = (n: number) => Array.from({ length: n }, (_, i) => A(i + 1));

/** `n` app servers with `rollout = SPEC`, every one serving `active`. */
async function batched(n: number, spec: string, active = OLD) {
  const f = await fakeDeploy(NODESET.replace('nodes = 2', `nodes = ${n}\nrollout = ${spec}`));
  for (const node of appservers(n)) {
    const a = f.nodes.app(node, 'hello');
    a.instances.set(active, { port: 20001, running: true, healthy: true });
    a.active = active;
  }
  return { ...f, all: appservers(n) };
}

const actives = (nodes: FakeNodes, all: string[]) => all.map((n) => nodes.app(n, 'hello').active);
/** The instances running on the node once its stop timers have run. */
const running = async (nodes: FakeNodes, node: string) => {
  await nodes.stopsDone();
  return [...nodes.app(node, 'hello').instances].filter(([, s]) => s.running).map(([i]) => i);
};
const record = (nodes: FakeNodes, node = A(1)) => JSON.parse(nodes.state.get(node)!.get('rollout')!) as { state: string; outcome?: string; before: Record<string, { active: string | null }> };
const locked = (nodes: FakeNodes) => [...nodes.state.values()].some((s) => s.has('lock'));
/** Where in the recorded calls a node got `verb APP INSTANCE` (-1: never). */
/** Where a verb on the node for the instance is in the calls ('switch' takes switch-stop too). */
const at = (nodes: FakeNodes, node: string, verb: string, inst: string) => nodes.calls.findIndex((c) => c.node === node && (c.argv[3] === verb || (verb === 'switch' && c.argv[3] === 'switch-stop')) && c.argv[5] === inst);

/** Holds the calls `hold` picks until `release()`; every other call is answered at once. */
function gate(nodes: FakeNodes, hold: (c: Call) => boolean) {
  const waiting: (() => void)[] = [];
  let open = false;
  const exec = nodes.exec.bind(nodes);
  nodes.exec = async (node, command, ...rest) => {
    if (!open && hold({ node, argv: shellWords(command) })) await new Promise<void>((r) => waiting.push(r));
    return exec(node, command, ...rest);
  };
  return {
    release: () => {
      open = true;
      for (const w of waiting.splice(0)) w();
    },
  };
}

test('rollout = 1, 2 on five app servers: the primary alone first, then each batch concurrently, a batch only after the one before switched; each node\'s intent is on the record before it switches', async (t) => {
  const { ns, rt, nodes, io, all } = await batched(5, '1, 2');
  const recordAtSwitch: string[] = [];
  nodes.onCall = (c) => {
    if ((c.argv[3] !== 'switch' && c.argv[3] !== 'switch-stop') || c.argv[5] !== NEW) return;
    const rec = record(nodes, c.node);
    recordAtSwitch.push(`${c.node} ${rec.state} ${rec.before[c.node]?.active}`);
  };
  const r = await update(ns, app, rt, opts);
  t.true(r.ok, JSON.stringify(r.failure));
  t.deepEqual(actives(nodes, all), all.map(() => NEW));
  const [a1, a2, a3, a4, a5] = all as [string, string, string, string, string];
  const start = (n: string) => at(nodes, n, 'up', NEW);
  const sw = (n: string) => at(nodes, n, 'switch', NEW);
  // The primary alone first: its update_fetch before any other starts the new instance, its switch before any other's.
  t.true([a2, a3, a4, a5].every((n) => at(nodes, a1, 'fetch', NEW) < start(n)), 'the primary alone first');
  t.true([a2, a3, a4, a5].every((n) => sw(a1) < sw(n)), 'the primary switches first');
  // A batch's members all start before either switches (concurrent, not one after the other).
  t.true(Math.max(start(a2), start(a3)) < Math.min(sw(a2), sw(a3)), 'app2 and app3 together');
  t.true(Math.max(start(a4), start(a5)) < Math.min(sw(a4), sw(a5)), 'app4 and app5 together');
  // The next batch begins only when the one before has switched whole.
  const fetch = (n: string) => at(nodes, n, 'fetch', NEW);
  t.true(Math.max(sw(a2), sw(a3)) < Math.min(fetch(a4), fetch(a5)), 'batch 3 after batch 2');
  // Once the primary's update_fetch is done, every other app server starts the new instance ahead of its turn.
  t.true([a2, a3, a4, a5].every((n) => start(n) < Math.min(sw(a2), sw(a3))), 'the later batches warmed up early');
  t.deepEqual(nodes.calls.filter((c) => c.argv[3] === 'fetch').map((c) => `${c.node} ${c.argv[7]}`).sort(), [`${a1} primary`, ...[a2, a3, a4, a5].map((n) => `${n} secondary`)].sort());
  t.deepEqual(recordAtSwitch.sort(), all.map((n) => `${n} running ${OLD}`).sort(), 'every node switched with its intent recorded');
  t.true(io.stderr.includes(`batch 2 of 3 (rollout = 1, 2): ${a2}, ${a3}`));
  t.is(record(nodes).state, 'done');
  t.false(locked(nodes));
});

test('a failing health check on the second app server of a batch of three rolls back every switched node, the batch\'s others included; every node serves the old instance', async (t) => {
  const { ns, rt, nodes, all } = await batched(4, '1, 3');
  const [a1, a2, a3, a4] = all as [string, string, string, string];
  const isHealth = (c: Call) => c.node === a3 && c.argv[3] === 'wait' && c.argv[6] === '/health';
  // app3's health check answers only after app2 and app4 have switched, and then fails.
  const g = gate(nodes, isHealth);
  const switched = new Set<string>();
  nodes.onCall = (c) => {
    if ((c.argv[3] === 'switch' || c.argv[3] === 'switch-stop') && c.argv[5] === NEW && (c.node === a2 || c.node === a4)) switched.add(c.node);
    if (switched.size === 2) g.release();
  };
  nodes.failWhen = (c) => (isHealth(c) ? 'wait failed: answered 500' : null);
  const r = await update(ns, app, rt, opts);
  t.false(r.ok);
  t.deepEqual(r.failure, { node: a3, step: 'health_check /health', error: `${a3}: health_check /health: wait failed: answered 500` });
  t.deepEqual([...r.rolledBack].sort(), [a1, a2, a4]);
  t.is(r.rolledBack.at(-1), a1, 'the last switched goes back first, the primary last');
  t.deepEqual(actives(nodes, all), [OLD, OLD, OLD, OLD]);
  for (const n of all) t.deepEqual(await running(nodes, n), [OLD], `${n} runs only the old instance`);
  t.is(record(nodes).state, 'done');
  t.regex(record(nodes).outcome ?? '', /failed, rolled back/);
  t.false(locked(nodes));
});

test('when a batch member fails, the others finish the step they are in and start no other; none of them switches', async (t) => {
  const { ns, rt, nodes, all } = await batched(4, '1, 3');
  const [a1, a2, a3, a4] = all as [string, string, string, string];
  // app2's and app4's start is held until app3's failed start has been handled.
  const g = gate(nodes, (c) => (c.node === a2 || c.node === a4) && c.argv[3] === 'up');
  nodes.onCall = (c) => {
    if (c.node === a3 && c.argv[3] === 'up' && c.argv[5] === NEW) setTimeout(g.release, 0);
  };
  nodes.failWhen = (c) => (c.node === a3 && c.argv[3] === 'up' && c.argv[5] === NEW ? 'unit failed' : null);
  const r = await update(ns, app, rt, opts);
  t.false(r.ok);
  t.deepEqual(r.failure, { node: a3, step: 'start', error: `${a3}: starting: unit failed` });
  for (const n of [a2, a4]) {
    t.true(nodes.verbs(n).includes(`up hello ${NEW} 60`), `${n} finished its step`);
    t.false(nodes.verbs(n).some((v) => v.startsWith('fetch') || v.startsWith(`switch-stop hello ${NEW}`)), `${n} started no other step`);
    t.true(nodes.verbs(n).includes(`stop hello ${NEW}`), `${n} stopped the new instance it had started`);
  }
  t.deepEqual(r.rolledBack, [a1]);
  t.false(r.steps.some((s) => !s.ok && s.node !== a3), 'only app3 failed');
  t.deepEqual(actives(nodes, all), [OLD, OLD, OLD, OLD]);
  for (const n of all) t.deepEqual(await running(nodes, n), [OLD]);
});

test('several members failing at once: the first is the failure, the others are said and listed; the database password is in none of it', async (t) => {
  const { ns, rt, nodes, io, all } = await batched(4, '1, 3');
  const [, a2, a3, a4] = all as [string, string, string, string];
  const isFetch = (c: Call) => c.node !== all[0] && c.argv[3] === 'fetch';
  // The three fetches are held until all three have begun, then fail together.
  let held = 0;
  const g = gate(nodes, (c) => {
    if (!isFetch(c)) return false;
    if (++held === 3) setTimeout(() => g.release(), 0);
    return true;
  });
  nodes.failWhen = (c) => (isFetch(c) ? 'silver-deploy: update_fetch /setup answered 500: CONFIG_PG_PASSWORD=s3cretpassword' : null);
  const r = await update(ns, app, rt, opts);
  t.false(r.ok);
  t.is(r.failure?.step, 'update_fetch /setup');
  const failed = r.steps.filter((st) => !st.ok).map((st) => st.node).sort();
  t.deepEqual(failed, [a2, a3, a4], 'every failing member is in the report');
  for (const n of [a2, a3, a4].filter((x) => x !== r.failure!.node)) t.true(io.stderr.some((l) => l.startsWith(`${n}: FAILED at update_fetch /setup`)), `${n} is said`);
  t.false(JSON.stringify(r).includes('s3cretpassword'));
  t.false(io.stderr.join('\n').includes('s3cretpassword'));
  t.deepEqual(actives(nodes, all), [OLD, OLD, OLD, OLD]);
});

test('SIGINT during a batch: no new step starts, every switched node goes back, the lock is released, the report says interrupted', async (t) => {
  const { ns, rt, nodes, signal, all } = await batched(4, '1, 3');
  const [a1, , a3] = all as [string, string, string, string];
  nodes.onCall = (c) => {
    if (c.node === a3 && c.argv[3] === 'fetch' && c.argv[5] === NEW) signal('SIGINT');
  };
  const r = await update(ns, app, rt, opts);
  t.false(r.ok);
  t.is(r.interrupted, 'SIGINT');
  t.is(r.failure?.step, 'interrupt');
  t.deepEqual(r.rolledBack, [a1]);
  t.deepEqual(actives(nodes, all), [OLD, OLD, OLD, OLD]);
  for (const n of all) t.deepEqual(await running(nodes, n), [OLD]);
  t.false(locked(nodes));
  t.regex(record(nodes).outcome ?? '', /interrupted/);
});

test('after a crash in the middle of a batch (two switched, one started, one staged), the next update rolls every node back first, then deploys in batches', async (t) => {
  const { ns, rt, nodes, all } = await batched(4, '1, 3');
  const [a1, a2, a3, a4] = all as [string, string, string, string];
  for (const n of all) nodes.app(n, 'hello').instances.set(NEW, { port: 20002, running: n !== a4, healthy: true });
  for (const n of [a1, a2]) Object.assign(nodes.app(n, 'hello'), { active: NEW, previous: OLD });
  const before = Object.fromEntries(all.map((n) => [n, { active: OLD, previous: null }]));
  const rec = { seq: 3, state: 'running', kind: 'update', app: 'hello', instance: NEW, holder: 'ann@box pid 1: update hello since x', started: 'x', before };
  for (const n of [a1, a3]) nodes.state.set(n, new Map([['rollout', JSON.stringify(rec)]]));
  const r = await update(ns, app, rt, opts);
  t.true(r.ok, JSON.stringify(r.failure));
  t.deepEqual(r.converged, { kind: 'update', app: 'hello', instance: NEW, holder: rec.holder, action: 'rolled back', nodes: all });
  for (const n of [a1, a2]) t.true(nodes.verbs(n).includes(`switch hello ${OLD} -`), `${n} switched back`);
  t.true(nodes.verbs(a3).includes(`stop hello ${NEW}`), 'the started, unswitched instance stopped');
  t.is(r.instance, 'hello.2026-12-02_002');
  t.deepEqual(actives(nodes, all), all.map(() => r.instance));
});

test('rollback uses the same batches, and a failure in a batch puts every node back on what it served', async (t) => {
  const { ns, rt, nodes, all } = await batched(4, '1, 3', NEW);
  for (const n of all) {
    nodes.app(n, 'hello').instances.set(OLD, { port: 20001, running: false, healthy: true });
    nodes.app(n, 'hello').previous = OLD;
  }
  const [a1, a2, a3, a4] = all as [string, string, string, string];
  const ok = await rollback(ns, 'hello', rt, opts);
  t.true(ok.ok, JSON.stringify(ok.nodes));
  const start = (n: string) => at(nodes, n, 'start', OLD);
  const sw = (n: string) => at(nodes, n, 'switch', OLD);
  t.true([a2, a3, a4].every((n) => sw(a1) < start(n)), 'the first app server alone first');
  t.true(Math.max(start(a2), start(a3), start(a4)) < Math.min(sw(a2), sw(a3), sw(a4)), 'the others together');
  t.deepEqual(ok.nodes.map((n) => n.node), all);
  t.deepEqual(actives(nodes, all), [OLD, OLD, OLD, OLD]);

  // Back to NEW everywhere, then a rollback whose health check fails on app3.
  const f = await batched(4, '1, 3', NEW);
  for (const n of all) {
    f.nodes.app(n, 'hello').instances.set(OLD, { port: 20001, running: false, healthy: true });
    f.nodes.app(n, 'hello').previous = OLD;
  }
  f.nodes.failWhen = (c) => (c.node === a3 && c.argv[3] === 'wait' && c.argv[5] === OLD ? 'unhealthy' : null);
  const bad = await rollback(f.ns, 'hello', f.rt, opts);
  t.false(bad.ok);
  t.deepEqual(bad.nodes.filter((n) => !n.ok).map((n) => n.node), [a3]);
  t.deepEqual(actives(f.nodes, all), [NEW, NEW, NEW, NEW]);
  for (const n of all) t.deepEqual(await running(f.nodes, n), [NEW]);
});

/** As `batched`, the old instance started with an environment (silver env reads it). */
async function batchedWithEnv(n: number, spec: string) {
  const f = await batched(n, spec);
  for (const node of f.all) f.nodes.app(node, 'hello').instances.get(OLD)!.env = envFile(withSettings({ PORT: '20001', SILVER_INSTANCE_NAME: OLD }, {}));
  return f;
}

test('env set rolls out in the same batches; a failing member puts every switched node back', async (t) => {
  const { ns, rt, nodes, all } = await batchedWithEnv(4, '1, 3');
  const [a1, a2, a3, a4] = all as [string, string, string, string];
  const ok = await envChange(ns, 'hello', [{ key: 'GREETING', value: 'hi' }], rt, { restart: true, graceMs: 5 });
  t.true(ok.ok, JSON.stringify(ok.failure));
  const start = (n: string) => at(nodes, n, 'up', NEW);
  const sw = (n: string) => at(nodes, n, 'switch', NEW);
  t.true([a2, a3, a4].every((n) => sw(a1) < start(n)));
  t.true(Math.max(start(a2), start(a3), start(a4)) < Math.min(sw(a2), sw(a3), sw(a4)));

  const f = await batchedWithEnv(4, '1, 3');
  f.nodes.failWhen = (c) => (c.node === a4 && c.argv[3] === 'switch-stop' && c.argv[5] === NEW ? 'nginx rejected' : null);
  const bad = await envChange(f.ns, 'hello', [{ key: 'GREETING', value: 'hi' }], f.rt, { restart: true, graceMs: 5 });
  t.false(bad.ok);
  t.deepEqual(bad.failure, { node: a4, step: 'switch', error: `${a4}: switching traffic: nginx rejected` });
  t.true(bad.rolledBack.includes(a1));
  t.deepEqual(actives(f.nodes, all), [OLD, OLD, OLD, OLD]);
  for (const n of all) t.deepEqual(await running(f.nodes, n), [OLD]);
});

test('update --dry-run shows the batches (a first entry larger than 1 still activates the primary alone); without the key, one at a time', async (t) => {
  const { ns, rt, all } = await batched(4, '3');
  const plan = await planUpdate(ns, app, rt);
  t.deepEqual(plan.batches, [[all[0]], [all[1], all[2]], [all[3]]]);
  t.is(plan.rollout, '3');
  t.true(renderUpdatePlan(plan).includes(`  activate it in 3 batches (rollout = 3): ${all[0]} (the primary, alone); then ${all[1]}, ${all[2]}; then ${all[3]}\n`));
  const plain = await fakeDeploy();
  const p = await planUpdate(plain.ns, app, plain.rt);
  t.is(p.rollout, null);
  t.deepEqual(p.batches, [[A(1)], [A(2)]]);
  t.true(renderUpdatePlan(p).includes(`  activate it one app server at a time, ${A(1)} first`));
});
