import test from 'ava';
import { bakeImage, renderBake } from '../../src/commands/image.js';
import { createNodes } from '../../src/commands/create-node.js';
import { deleteNodes, listNodes, renderNodeList } from '../../src/commands/nodes.js';
import { builderName, stripScript } from '../../src/image/builder.js';
import { STRIP } from '../../src/image/strip.js';
import { MemoryProvider } from '../../providers/memory/index.js';
import { answerBuilder, BUILDER_PACKAGES } from '../helpers/bake.js';
import { fakeDeploy, type Call } from '../helpers/fake-nodes.js';

// The cloud bake's orchestration without machines (the memory provider, the fake nodes): the
// builder is created, set up, stripped and snapshotted, and destroyed after a success, a failed
// step or an interrupt; the nodeset's own nodes are never touched.

const BUILDER = builderName('appserver');
const BALANCER_BUILDER = builderName('balancer');
const esc = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const IMAGE = 'silver-image-shop-appserver-20261202T1000Z';

/** A nodeset on a memory provider whose builder answers setup, dpkg-query, tee and the strip. */
async function bakeable(opts: { failSnapshot?: string; layerCode?: (layer: string) => number } = {}) {
  const d = await fakeDeploy();
  const provider = new MemoryProvider(opts.failSnapshot ? { failSnapshot: opts.failSnapshot } : {});
  // The nodeset's nodes, as fakeDeploy made them, on this provider (with its snapshot option).
  for (const [id, n] of (d.provider as MemoryProvider).nodes) provider.nodes.set(id, n);
  d.rt.providerFor = async () => provider;
  const stdins = answerBuilder(d.nodes, opts.layerCode ? { layerCode: opts.layerCode } : {});
  provider.calls.length = 0;
  return { ...d, provider, stdins };
}

const builderCalls = (calls: Call[]) => calls.filter((c) => c.node === BUILDER).map((c) => c.argv);
const providerSteps = (p: MemoryProvider) => p.calls.filter((c) => !c.startsWith('list '));

test('a cloud bake creates a builder of the role, sets it up, strips it over SSH and snapshots it, then destroys it', async (t) => {
  const { ns, rt, nodes, provider, stdins, io } = await bakeable();
  const r = await bakeImage(ns, rt, { role: 'appserver' });
  t.deepEqual(providerSteps(provider), [`create ${BUILDER} small`, `snapshot ${BUILDER} ${IMAGE}`, `destroy ${BUILDER}`]);
  t.deepEqual(builderCalls(nodes.calls), [
    ['sh', '-s'],
    ['dpkg-query', '-W', '-f', '${Package} ${Version}\\n'],
    ['tee', '/etc/silverlining/silver-image.json'],
    ['sh', '-s', '--', '/', ...STRIP],
  ], 'setup, the packages, the record, the strip (as root: the memory provider logs in as root)');
  t.deepEqual(nodes.calls.filter((c) => c.node !== BUILDER), [], "the nodeset's own nodes are not touched");
  t.is(stdins.get('strip'), stripScript(), 'the strip script goes on standard input');
  const record = { name: IMAGE, nodeset: 'shop', role: 'appserver', from: BUILDER, built: '2026-12-02T10:00:00.000Z', packages: BUILDER_PACKAGES };
  t.deepEqual(JSON.parse(stdins.get('record')!), record, 'the record goes into the image');
  t.deepEqual(provider.images.get(IMAGE), record, 'and to the provider');
  t.like(r, record);
  t.is(r.id, undefined, "the memory provider's id is the name");
  t.deepEqual(await provider.list(ns.name).then((l) => l.map((n) => n.name).sort()), ns.nodes.map((n) => n.name).sort(), 'only the nodeset\'s nodes are left');
  t.false(rt.state.pinnedKeys(ns.name).has(BUILDER), "the builder's host key is forgotten");
  t.regex(io.stderr.join('\n'), new RegExp(`${BUILDER.replaceAll('.', '\\.')}: destroyed`));
  t.regex(renderBake(r), /^image silver-image-shop-appserver-20261202T1000Z: baked from silver-builder-appserver-[0-9a-z]+-\d+\.invalid in 0\.0 s \(2 packages, 2026-12-02T10:00:00\.000Z\)\nuse it: image = silver-image-shop-appserver-20261202T1000Z/);
  // The new image is what `image =` finds; create-node warns once it is older than 30 days.
  t.is(await provider.resolveImage(IMAGE), IMAGE);
  const later = { ...rt, now: () => Date.parse('2027-01-05T10:00:00Z'), io };
  const tier = { ...ns, nodes: ns.nodes.map((n) => (n.role === 'appserver' ? { ...n, name: `new-${n.name}`, image: IMAGE } : n)) };
  await createNodes(tier, later, { concurrency: 2, sshTimeoutMs: 1000 });
  t.true(io.stderr.includes(`silver: image ${IMAGE} was baked 34 days ago: it lacks the security updates since; bake a new one (silver image bake /n/shop.conf --role appserver)`));
});

test('a balancer bake: the builder is set up as setup-node sets up a balancer; TLS, a virtual address and backups are left out', async (t) => {
  const { ns, rt, nodes, provider, stdins } = await bakeable();
  const r = await bakeImage({ ...ns, virtualAddress: '10.0.0.200', tls: { mode: 'acme', hosts: ['shop.test'], hsts: null, acme: { directory: 'https://acme.test/dir', email: null, ca: null }, pem: null } }, rt, { role: 'balancer' });
  t.is(r.name, 'silver-image-shop-balancer-20261202T1000Z');
  t.deepEqual(providerSteps(provider), [`create ${BALANCER_BUILDER} small`, `snapshot ${BALANCER_BUILDER} silver-image-shop-balancer-20261202T1000Z`, `destroy ${BALANCER_BUILDER}`]);
  t.deepEqual(nodes.calls.filter((c) => c.node === BALANCER_BUILDER).map((c) => c.argv[0] === 'sudo' ? c.argv.slice(2, 4).join(' ') : c.argv[0]), [
    '/usr/local/lib/silverlining/bin/silver-state get', 'sh', 'dpkg-query', 'tee', 'sh',
  ], "setup-node's path: the balancer's modes read from the (empty) shared state, then the layers");
  const script = stdins.get('setup')!;
  t.regex(script, /^echo "silver-layer-begin: balancer"$/m);
  t.regex(script, /^SILVER_TLS=off$/m, 'no certificate is ordered');
  t.regex(script, /^SILVER_VRRP=0$/m, 'no shared address is claimed');
  t.notRegex(script, /10\.0\.0\.200/);
  t.regex(script, new RegExp(`^SILVER_NODE=${esc(BALANCER_BUILDER)}$`, 'm'));
});

test('a failed setup: no strip, no snapshot, the builder destroyed, the step named (exit 1)', async (t) => {
  const { ns, rt, nodes, provider } = await bakeable({ layerCode: (l) => (l === 'appserver' ? 100 : 0) });
  const e = await t.throwsAsync(bakeImage(ns, rt, { role: 'appserver' }));
  t.is((e as { exitCode?: number }).exitCode, 1);
  t.regex(e!.message, /^image bake: setting up the builder failed: appserver: exited 100: appserver: apt-get failed \(no image made\)$/);
  t.deepEqual(providerSteps(provider), [`create ${BUILDER} small`, `destroy ${BUILDER}`]);
  t.deepEqual(builderCalls(nodes.calls), [['sh', '-s']]);
  t.deepEqual(provider.images.size, 0);
});

test('a failed snapshot: the builder is destroyed all the same', async (t) => {
  const { ns, rt, provider } = await bakeable({ failSnapshot: 'ec2 CreateImage failed: InvalidAMIName.Duplicate' });
  const e = await t.throwsAsync(bakeImage(ns, rt, { role: 'appserver' }));
  t.regex(e!.message, /^image bake: ec2 CreateImage failed: InvalidAMIName\.Duplicate \(no image made\)$/);
  t.deepEqual(providerSteps(provider), [`create ${BUILDER} small`, `snapshot ${BUILDER} ${IMAGE}`, `destroy ${BUILDER}`]);
  t.deepEqual(await provider.list(ns.name).then((l) => l.filter((n) => n.name === BUILDER)), []);
});

test('a failed strip: no snapshot, the builder destroyed', async (t) => {
  const { ns, rt, nodes, provider } = await bakeable();
  nodes.failWhen = (c) => (c.node === BUILDER && c.argv[0] === 'sh' && c.argv[1] === '-s' && c.argv[2] === '--' ? 'rm: cannot remove: Read-only file system' : null);
  const e = await t.throwsAsync(bakeImage(ns, rt, { role: 'appserver' }));
  t.regex(e!.message, new RegExp(`${esc(BUILDER)}: stripping: rm: cannot remove: Read-only file system \\(no image made\\)$`));
  t.deepEqual(providerSteps(provider), [`create ${BUILDER} small`, `destroy ${BUILDER}`]);
});

test('SIGINT during the setup: the bake stops after that step, destroys the builder, and exits 130', async (t) => {
  const { ns, rt, nodes, provider, signal, io } = await bakeable();
  nodes.onCall = (c) => {
    if (c.node === BUILDER && c.argv.join(' ') === 'sh -s') signal('SIGINT');
  };
  const e = await t.throwsAsync(bakeImage(ns, rt, { role: 'appserver' }));
  t.is((e as { exitCode?: number }).exitCode, 130);
  t.is(e!.message, 'interrupted (SIGINT): no image made');
  t.deepEqual(providerSteps(provider), [`create ${BUILDER} small`, `destroy ${BUILDER}`]);
  t.deepEqual(builderCalls(nodes.calls), [['sh', '-s']], 'nothing after the step');
  t.true(io.stderr.some((l) => l.startsWith('silver: SIGINT: the builder is destroyed after the current step')));
});

test('two bakes of one role at once each have a builder of their own: another bake\'s (another machine, a live process) is left alone; this machine\'s of a gone process, and an earlier release\'s, are removed', async (t) => {
  const { ns, rt, provider, io } = await bakeable();
  const { machineId } = await import('../../src/deploy/shared-state.js');
  const make = (name: string) => provider.create({ labels: { nodeset: ns.name, role: 'appserver', name, index: 1 }, flavor: { id: 'small', ramMb: 256 }, image: 'debian-12', authorizedKey: '', hostKey: { public: 'ssh-ed25519 X', private: '' } });
  const otherMachine = builderName('appserver', { machine: 'feedfacecafe', pid: 4242 });
  const liveHere = builderName('appserver', { machine: machineId(), pid: process.ppid });
  const goneHere = builderName('appserver', { machine: machineId(), pid: 2 ** 22 + 17 });
  const earlier = 'silver-builder-appserver.invalid';
  for (const name of [otherMachine, liveHere, goneHere, earlier]) await make(name);
  t.not(BUILDER, liveHere);
  provider.calls.length = 0;
  await bakeImage(ns, rt, { role: 'appserver' });
  const steps = providerSteps(provider);
  t.deepEqual(steps.filter((l) => l.startsWith('destroy ')).sort(), [`destroy ${BUILDER}`, `destroy ${earlier}`, `destroy ${goneHere}`].sort());
  t.deepEqual(steps.filter((l) => !l.startsWith('destroy ')), [`create ${BUILDER} small`, `snapshot ${BUILDER} ${IMAGE}`]);
  t.true(io.stderr.includes(`${otherMachine}: another bake's builder (it may be running): left alone; silver delete-node ${ns.file} --orphans removes it once no bake runs`));
  t.true(io.stderr.some((l) => l.startsWith(`${liveHere}: another bake's builder`)));
  t.deepEqual((await provider.list(ns.name)).map((n) => n.name).filter((n) => n.startsWith('silver-builder-')).sort(), [liveHere, otherMachine].sort());
});

test('a builder an interrupted bake left is destroyed before a new one is made; a node of the file by a builder\'s name is refused', async (t) => {
  const { ns, rt, provider, io } = await bakeable();
  await provider.create({ labels: { nodeset: ns.name, role: 'appserver', name: BUILDER, index: 1 }, flavor: { id: 'small', ramMb: 256 }, image: 'debian-12', authorizedKey: '', hostKey: { public: 'ssh-ed25519 OLD', private: '' } });
  await provider.create({ labels: { nodeset: ns.name, role: 'balancer', name: 'silver-builder-balancer.invalid', index: 1 }, flavor: { id: 'small', ramMb: 256 }, image: 'debian-12', authorizedKey: '', hostKey: { public: 'ssh-ed25519 RUNNING', private: '' } });
  rt.state.pin(ns.name, BUILDER, '10.0.0.99', 'ssh-ed25519 OLD');
  provider.calls.length = 0;
  await bakeImage(ns, rt, { role: 'appserver' });
  t.deepEqual(providerSteps(provider), [`destroy ${BUILDER}`, `create ${BUILDER} small`, `snapshot ${BUILDER} ${IMAGE}`, `destroy ${BUILDER}`], "the balancer's builder is left alone: its bake may be running");
  t.true(io.stderr.includes(`${BUILDER}: left by an interrupted bake: destroyed`));

  provider.calls.length = 0;
  const mine = { ...ns, nodes: ns.nodes.map((n, i) => (i === 0 ? { ...n, name: BUILDER } : n)) };
  const e = await t.throwsAsync(bakeImage(mine, rt, { role: 'appserver' }));
  t.is((e as { exitCode?: number }).exitCode, 2);
  t.regex(e!.message, new RegExp(`${esc(BUILDER)}: nodeset shop names a node as silver names its image builders`));
  t.deepEqual(providerSteps(provider), []);
});

test('the cloud bake refuses --node (it never bakes a node of the nodeset) and service roles, before anything is made', async (t) => {
  const { ns, rt, provider } = await bakeable();
  const e = await t.throwsAsync(bakeImage(ns, rt, { role: 'appserver', node: 'app1.shop.test' }));
  t.is((e as { exitCode?: number }).exitCode, 2);
  t.regex(e!.message, /--node app1\.shop\.test: the memory provider bakes on a builder node of its own/);
  await t.throwsAsync(bakeImage(ns, rt, { role: 'service:postgresql' }), { message: /--role service:postgresql: images are baked from appserver or balancer nodes/ });
  t.deepEqual(providerSteps(provider), []);
});

test('a builder an interrupted bake left: list-nodes says what it is, delete-node --orphans removes it without draining it from the balancers', async (t) => {
  const { ns, rt, provider, nodes } = await bakeable();
  await provider.create({ labels: { nodeset: ns.name, role: 'appserver', name: BUILDER, index: 1 }, flavor: { id: 'small', ramMb: 256 }, image: 'debian-12', authorizedKey: '', hostKey: { public: 'ssh-ed25519 OLD', private: '' } });
  const listed = await listNodes(ns, rt);
  t.regex(renderNodeList(ns, listed), new RegExp(`${esc(BUILDER)}\\s+appserver\\s+running\\s+\\S+\\s+image builder of a bake under way, or one an interrupted bake left \\(orphan\\)`));
  const d = await deleteNodes(ns, rt, { nodes: [], orphans: true, yes: true, concurrency: 2 });
  t.deepEqual(d.deleted, [BUILDER]);
  t.deepEqual(nodes.verbs('balancer.shop.test', 'silver-balancer'), [], 'never in rotation: not drained');
  t.deepEqual(nodes.calls, [], 'no node is set up again');
});

test('a local bake interrupted (SIGINT) during the copy: the copy is ended through its signal (the provider unfreezes the node and removes it), exit 130, no image', async (t) => {
  const { ns, rt, provider, signal, io } = await bakeable();
  let seen: AbortSignal | undefined;
  (provider as unknown as { bakeImage: unknown }).bakeImage = (_node: unknown, _name: string, _report: unknown, s?: AbortSignal) =>
    new Promise((_resolve, reject) => {
      seen = s;
      s?.addEventListener('abort', () => reject(new Error('rsync ended by a signal')));
      signal('SIGINT');
    });
  const e = await t.throwsAsync(bakeImage(ns, rt, { role: 'appserver' }));
  t.is((e as { exitCode?: number }).exitCode, 130);
  t.is(e!.message, 'interrupted (SIGINT): no image made');
  t.true(seen?.aborted, 'the provider was told');
  t.true(io.stderr.some((l) => /^silver: SIGINT: app1\.shop\.test is unfrozen and the copy removed/.test(l)), io.stderr.join(' | '));
});

test('a cloud bake interrupted while the provider makes the image says which image may still be made (not "no image made")', async (t) => {
  const { ns, rt, provider, signal } = await bakeable();
  (provider as unknown as { snapshotImage: unknown }).snapshotImage = (_b: unknown, record: { name: string }, _r: unknown, s?: AbortSignal) =>
    new Promise((_resolve, reject) => {
      s?.addEventListener('abort', () => reject(new Error(`ec2: stopped waiting for image ami-1 (${record.name}, state: pending); EC2 may still complete it`)));
      signal('SIGINT');
    });
  const e = await t.throwsAsync(bakeImage(ns, rt, { role: 'appserver' }));
  t.is((e as { exitCode?: number }).exitCode, 130);
  t.is(e!.message, `interrupted (SIGINT) while ${IMAGE} was being made: ec2: stopped waiting for image ami-1 (${IMAGE}, state: pending); EC2 may still complete it`);
  t.true(providerSteps(provider).includes(`destroy ${BUILDER}`), 'the builder destroyed all the same');
});
