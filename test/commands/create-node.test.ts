import test from 'ava';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryProvider } from '../../providers/memory/index.js';
import { memoryHost } from '../../src/config/host.js';
import { createNodes, renderCreateReport } from '../../src/commands/create-node.js';
import { deleteNodes, listNodes } from '../../src/commands/nodes.js';
import { loadNodeset } from '../../src/nodeset/resolve.js';
import { memoryIo } from '../../src/output/io.js';
import type { Runtime } from '../../src/runtime.js';
import { StateDir } from '../../src/state.js';

function setup(nodes: number, provider = new MemoryProvider()) {
  const text = `[general]\nname = shop\nbase_domain = shop.test\n[appserver]\nnodes = ${nodes}\nsize = ram 300MB\nload_balancer = false\n[service:postgresql]\n`;
  const host = memoryHost({ '/n/shop.conf': text });
  const io = memoryIo();
  const probes: string[] = [];
  const state = new StateDir(mkdtempSync(join(tmpdir(), 'silver-state-')));
  const rt: Runtime = {
    io,
    host,
    state,
    providerFor: async () => provider,
    attach: () => { throw new Error('no attach here'); },
    sshProbe: async (target) => {
      probes.push(`${target.name} ${target.host} ${target.hostKey.split(' ')[0]}`);
    },
    now: () => Date.now(),
    confirm: async () => false,
    executor: async () => {
      throw new Error("create-node opens no executor");
    },
    onInterrupt: () => () => undefined,
  };
  return { ns: loadNodeset('/n/shop.conf', host), rt, io, provider, probes, state };
}

const opts = { concurrency: 4, sshTimeoutMs: 1000 };

/**
 * A provider that cannot tell a new node's key (as EC2 before its console shows it): the key is
 * pinned on first contact; a probe with another key fails as SSH would. Each node's real key, by name.
 */
function keyBlind(provider: MemoryProvider, rt: Runtime): Map<string, string> {
  const real = new Map<string, string>();
  const create = provider.create.bind(provider);
  provider.create = async (o) => {
    const made = await create(o);
    real.set(o.labels.name, o.hostKey!.public.split(' ').slice(0, 2).join(' '));
    return { ...made, hostKey: null };
  };
  provider.hostKey = async () => null;
  rt.sshProbe = async (target) => {
    const key = real.get(target.name)!;
    if (!target.hostKey) return target.onFirstKey?.(key);
    if (target.hostKey !== key) throw new Error(`${target.name}: host key mismatch`);
  };
  return real;
}

test('create-node creates the missing nodes with the smallest fitting flavor, pins keys, probes SSH', async (t) => {
  const { ns, rt, provider, probes, state } = setup(2);
  const r = await createNodes(ns, rt, opts);
  t.deepEqual(r.outcomes.map((o) => [o.name, o.status]), [
    ['app1.shop.test', 'created'],
    ['app2.shop.test', 'created'],
    ['postgresql.shop.test', 'created'],
  ]);
  t.true(provider.calls.includes('create app1.shop.test medium'), 'ram 300MB -> the 1024 MB flavor');
  t.true(provider.calls.includes('create postgresql.shop.test small'), 'no size -> the smallest flavor');
  t.is(probes.length, 3);
  t.is(state.pinnedKeys('shop').size, 3);
  t.regex(renderCreateReport(r), /created 3, started 0, already there 0, failed 0/);
});

test('a re-run creates nothing; raising nodes creates only the new ones', async (t) => {
  const { ns, rt, provider } = setup(2);
  await createNodes(ns, rt, opts);
  const again = await createNodes(ns, rt, opts);
  t.deepEqual(again.outcomes.map((o) => o.status), ['existing', 'existing', 'existing']);
  const bigger = setup(3, provider);
  bigger.rt.state = rt.state;
  const r = await createNodes(bigger.ns, bigger.rt, opts);
  t.deepEqual(r.outcomes.filter((o) => o.status === 'created').map((o) => o.name), ['app3.shop.test']);
  t.is(provider.calls.filter((c) => c.startsWith('create')).length, 4);
});

test('a failing node is reported and the others finish', async (t) => {
  const { ns, rt } = setup(2, new MemoryProvider({ failOn: new Set(['app1.shop.test']) }));
  const r = await createNodes(ns, rt, opts);
  t.deepEqual(r.outcomes.map((o) => o.status), ['failed', 'created', 'created']);
  t.regex(r.outcomes[0]!.error!, /simulated failure/);
  t.regex(renderCreateReport(r), /failed: app1\.shop\.test: simulated failure/);
});

test('scaling down: orphans are named by create-node and list-nodes, and --orphans deletes only them', async (t) => {
  const big = setup(3);
  await createNodes(big.ns, big.rt, opts);
  const small = setup(1, big.provider);
  small.rt.state = big.rt.state;
  const r = await createNodes(small.ns, small.rt, opts);
  t.deepEqual(r.orphans.map((o) => o.name), ['app2.shop.test', 'app3.shop.test']);
  t.regex(renderCreateReport(r), /not in the nodeset file any more: app2\.shop\.test, app3\.shop\.test/);
  const listed = await listNodes(small.ns, small.rt);
  t.deepEqual(listed.filter((n) => !n.inNodeset).map((n) => n.name), ['app2.shop.test', 'app3.shop.test']);
  const d = await deleteNodes(small.ns, small.rt, { nodes: [], orphans: true, yes: true, concurrency: 2 });
  t.deepEqual(d.deleted.sort(), ['app2.shop.test', 'app3.shop.test']);
  t.deepEqual((await big.provider.list('shop')).map((n) => n.name).sort(), ['app1.shop.test', 'postgresql.shop.test']);
  t.is(big.provider.released, 0, 'nodes remain: shared resources stay');
});

test('delete-node asks first and deletes nothing without a yes', async (t) => {
  const { ns, rt, provider } = setup(1);
  await createNodes(ns, rt, opts);
  await t.throwsAsync(deleteNodes(ns, rt, { nodes: [], orphans: false, yes: false, concurrency: 2 }), { message: /nothing deleted/ });
  t.is((await provider.list('shop')).length, 2);
  const d = await deleteNodes(ns, rt, { nodes: [], orphans: false, yes: true, concurrency: 2 });
  t.is(d.deleted.length, 2);
  t.is(provider.released, 1, 'the last node gone: the provider releases what it shared');
  t.is(rt.state.pinnedKeys('shop').size, 0);
});

test('delete-node --node refuses a name the nodeset does not have', async (t) => {
  const { ns, rt } = setup(1);
  await createNodes(ns, rt, opts);
  await t.throwsAsync(deleteNodes(ns, rt, { nodes: ['nope.shop.test'], orphans: false, yes: true, concurrency: 2 }), { message: /no node nope\.shop\.test in nodeset shop/ });
});

test('only the nodes of this nodeset are listed and deleted', async (t) => {
  const provider = new MemoryProvider();
  const a = setup(1, provider);
  await createNodes(a.ns, a.rt, opts);
  const otherHost = memoryHost({ '/n/other.conf': '[general]\nname = other\nbase_domain = o.test\n[appserver]\n' });
  const other = loadNodeset('/n/other.conf', otherHost);
  await createNodes(other, a.rt, opts);
  await deleteNodes(a.ns, a.rt, { nodes: [], orphans: false, yes: true, concurrency: 2 });
  t.deepEqual((await provider.list('other')).map((n) => n.name), ['app1.o.test']);
});

test('a new node that never answers SSH is destroyed and made again once (fresh host key); a second failure is reported', async (t) => {
  class Flaky extends MemoryProvider {
    failures = new Map<string, number>();
    destroyed: string[] = [];
    override async waitReachable(node: Parameters<MemoryProvider['waitReachable']>[0]) {
      const left = this.failures.get(node.name) ?? 0;
      if (left > 0) {
        this.failures.set(node.name, left - 1);
        throw new Error(`${node.name}: port 22 did not answer`);
      }
      return super.waitReachable(node);
    }
    override async destroy(node: Parameters<MemoryProvider['destroy']>[0]) {
      this.destroyed.push(node.name);
      return super.destroy(node);
    }
  }
  const provider = new Flaky();
  provider.failures.set('app1.shop.test', 1);
  const { ns, rt, io, state } = setup(1, provider);
  const first = await createNodes(ns, rt, opts);
  t.deepEqual(first.outcomes.map((o) => [o.name, o.status]), [['app1.shop.test', 'created'], ['postgresql.shop.test', 'created']]);
  t.deepEqual(provider.destroyed, ['app1.shop.test']);
  t.true(io.stderr.some((l) => l === 'app1.shop.test: port 22 did not answer; destroying it and creating it again'));
  t.is((await provider.list('shop')).length, 2, 'no leftover of the bad one');
  t.true(state.pinnedKeys('shop').has('app1.shop.test'));

  const again = new Flaky();
  again.failures.set('app1.shop.test', 2);
  const s2 = setup(1, again);
  const r = await createNodes(s2.ns, s2.rt, opts);
  t.is(r.outcomes.find((o) => o.name === 'app1.shop.test')!.status, 'failed');
});

test('up stops at a failing create-node: no node is set up, no app deployed; the summary says where', async (t) => {
  const { ns, rt } = setup(2, new MemoryProvider({ failOn: new Set(['app2.shop.test']) }));
  const { renderUpSummary, up } = await import('../../src/commands/up.js');
  const steps: string[] = [];
  // (the runtime's executor throws: a setup or an update would fail this test)
  const r = await up(ns, [], rt, { concurrency: 4, sshTimeoutMs: 1000, clearCache: false, onStep: (s) => steps.push(s) });
  t.false(r.ok);
  t.is(r.stoppedAt, 'create-node');
  t.is(r.setup, null);
  t.deepEqual(r.updates, []);
  t.is(steps.length, 1, 'only the create step reported');
  t.regex(renderUpSummary(r), /^silver up shop: stopped at create-node — 2 created \(/);
});

test('delete-node of a node of the file the provider no longer has (a delete killed after the destroy): already gone, its pin removed, exit 0; each pin goes with its node', async (t) => {
  const { ns, rt, provider, io } = setup(2);
  await createNodes(ns, rt, opts);
  // A delete killed between the destroy and the unpin, as it was: the node gone, its pin left.
  await provider.destroy((await provider.list('shop')).find((n) => n.name === 'app2.shop.test')!);
  t.true(rt.state.pinnedKeys('shop').has('app2.shop.test'));
  const d = await deleteNodes(ns, rt, { nodes: ['app2.shop.test'], orphans: false, yes: true, concurrency: 2 });
  t.deepEqual(d, { deleted: ['app2.shop.test'], failed: [] });
  t.false(rt.state.pinnedKeys('shop').has('app2.shop.test'));
  t.true(io.stderr.join('\n').includes('app2.shop.test: already gone'));
  // A name neither in the file nor pinned is still refused.
  await t.throwsAsync(deleteNodes(ns, rt, { nodes: ['app9.shop.test'], orphans: false, yes: true, concurrency: 2 }), { message: /no node app9\.shop\.test in nodeset shop/ });
  // Each node's pin is removed as its destroy succeeds, not after all of them.
  const destroy = provider.destroy.bind(provider);
  provider.destroy = async (n) => {
    if (n.name === 'postgresql.shop.test') throw new Error('quota');
    return destroy(n);
  };
  const r = await deleteNodes(ns, rt, { nodes: [], orphans: false, yes: true, concurrency: 1 });
  t.deepEqual(r.deleted, ['app1.shop.test']);
  t.deepEqual([...rt.state.pinnedKeys('shop').keys()], ['postgresql.shop.test'], 'the one whose destroy failed keeps its pin');
});

test('a node made anew never inherits the pin of an earlier node of its name (destroyed outside silver): the new node is probed with its own key, not destroyed as an impostor', async (t) => {
  const { ns, rt, provider } = setup(1);
  const real = keyBlind(provider, rt);
  let destroyed = 0;
  const destroy = provider.destroy.bind(provider);
  provider.destroy = async (n) => (destroyed++, destroy(n));
  await createNodes(ns, rt, opts);
  const before = rt.state.pinnedKeys('shop').get('app1.shop.test');
  t.is(before, real.get('app1.shop.test'));
  await destroy((await provider.list('shop')).find((n) => n.name === 'app1.shop.test')!);
  const r = await createNodes(ns, rt, opts);
  t.is(r.outcomes.find((o) => o.name === 'app1.shop.test')!.status, 'created');
  t.is(destroyed, 0, 'the new node was never destroyed as an impostor');
  t.is(rt.state.pinnedKeys('shop').get('app1.shop.test'), real.get('app1.shop.test'));
  t.not(real.get('app1.shop.test'), before);
});

test('a size no flavor of the provider meets is the nodeset\'s error (exit 2) before anything is prepared or made: no node of it is created', async (t) => {
  const provider = new MemoryProvider();
  const { rt } = setup(2, provider);
  const text = '[general]\nname = shop\nbase_domain = shop.test\n[appserver]\nnodes = 2\nload_balancer = false\n[service:postgresql]\nsize = ram 64GB\n';
  const host = memoryHost({ '/n/shop.conf': text });
  let prepared = 0;
  const prepare = provider.prepare.bind(provider);
  provider.prepare = async (...a) => (prepared++, prepare(...a));
  const e = await t.throwsAsync(createNodes(loadNodeset('/n/shop.conf', host), rt, opts));
  t.is((e as { exitCode?: number }).exitCode, 2);
  t.regex(e!.message, /^\/n\/shop\.conf: postgresql\.shop\.test: size ram 65536MB: no flavor has 65536 MB of memory or more \(largest: 4096 MB\) \(the local provider; nothing was created\)$/);
  t.is(prepared, 0);
  t.deepEqual(await provider.list('shop'), []);
});

test('a running node left unpinned (silver killed right after making it, its key not yet known) is reached as a new one: its key pinned on first contact, said so', async (t) => {
  const { ns, rt, provider, io } = setup(1);
  const real = keyBlind(provider, rt);
  await createNodes(ns, rt, opts);
  // The kill: the pin never written.
  rt.state.unpin(ns.name, ['app1.shop.test']);
  const r = await createNodes(ns, rt, opts);
  t.is(r.outcomes.find((o) => o.name === 'app1.shop.test')!.status, 'existing');
  t.is(rt.state.pinnedKeys('shop').get('app1.shop.test'), real.get('app1.shop.test'));
  t.regex(io.stderr.join('\n'), /app1\.shop\.test: host key SHA256:\S+ pinned on first contact/);
});
