import test from 'ava';
import { builderName } from '../../src/image/builder.js';
import ssh2 from 'ssh2';
import { inspect } from 'node:util';
import { createProvider, type Tuning } from '../../providers/openstack/index.js';
import type { ProviderConfig } from '../../src/nodeset/types.js';
import { pickFlavor, type CreateRequest, type Provider } from '../../src/provider.js';
import { Secret } from '../../src/secret.js';
import { StateDir } from '../../src/state.js';
import { FakeNova } from '../fixtures/nova/server.js';
import { bakeImage } from '../../src/commands/image.js';
import { stripArgv } from '../../src/image/builder.js';
import type { ImageRecord } from '../../src/image/strip.js';
import { answerBuilder } from '../helpers/bake.js';
import { fakeDeploy } from '../helpers/fake-nodes.js';
import { providerContract } from './contract.js';

// Everything here talks to the fake on 127.0.0.1 only, even where a proxy is configured.
process.env['NO_PROXY'] = '127.0.0.1';
process.env['no_proxy'] = '127.0.0.1';

const PASSWORD = 'Tr0ub4dor&3-keystone-pw';
const fake = new FakeNova({ identity: 'v3', username: 'alice', secret: PASSWORD, project: 'silver-test', region: 'RegionOne' });
const ready = fake.start();
const FAST: Tuning = { callTimeoutMs: 3000, retries: 3, retryMinMs: 5, pollMs: 5, destroyTimeoutMs: 3000 };

function config(settings: Record<string, string | Secret | undefined> = {}, url = fake.url): ProviderConfig {
  const all: Record<string, string | Secret | undefined> = {
    auth_url: `${url}/v3`, username: 'alice', password: new Secret(PASSWORD), project: 'silver-test', region: 'RegionOne', image: 'debian-12',
    ...settings,
  };
  return { type: 'openstack', name: null, settings: Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined)) as Record<string, string | Secret> };
}

async function make(settings: Record<string, string | Secret | undefined> = {}, tuning: Tuning = FAST): Promise<Provider> {
  await ready;
  return createProvider(config(settings), new StateDir('/nonexistent-silver-home'), tuning);
}

function request(p: Provider, nodeset: string, name: string, index = 1, image = 'img-deb12'): CreateRequest & { hostKey: { public: string; private: string } } {
  return {
    labels: { nodeset, role: 'appserver', name, index },
    flavor: { id: '2', ramMb: 2048 },
    image,
    authorizedKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBdeploykeydeploykeydeploykeydeploykey0 silver-deploy',
    hostKey: ssh2.utils.generateKeyPairSync('ed25519', { comment: `root@${name}` }),
  };
}

async function wipe(p: Provider, nodeset: string): Promise<void> {
  for (const n of await p.list(nodeset)) await p.destroy(n);
  await p.release(nodeset);
}

/** The lines of a YAML block scalar `key: |` (indented by `indent`), unindented. */
function block(yaml: string, key: string, indent: string): string {
  const lines = yaml.split('\n');
  const start = lines.indexOf(`${key}: |`);
  if (start < 0) return '';
  const out: string[] = [];
  for (const l of lines.slice(start + 1)) {
    if (!l.startsWith(indent)) break;
    out.push(l.slice(indent.length));
  }
  return out.join('\n');
}

providerContract(test, {
  name: 'openstack contract test (Keystone v3 + Nova fixture)',
  make: () => make(),
  nodeset: 'contract-os',
  authorizedKey: 'ssh-ed25519 AAAA... test',
  timeoutMs: 5000,
  installsHostKey: true,
});

test.serial('openstack contract test: ram 3GB picks the smallest fitting flavor, sizes come smallest first', async (t) => {
  const p = await make();
  const sizes = await p.listSizes();
  t.deepEqual(sizes.map((s) => s.id), ['1', '2', 'c3', '3', '4', '5']);
  t.deepEqual(sizes.map((s) => s.ramMb), [512, 2048, 3000, 4096, 8192, 16384]);
  const fallback = sizes.find((s) => s.default)!;
  t.is(fallback.id, '2', 'the default size is the smallest with 1 GB or more');
  t.like(pickFlavor(sizes, { kind: 'ram', mb: 3072 }, fallback), { id: '3', ramMb: 4096 }, 'c1.almost3g (3000 MB) is too small for 3 GB');
  t.like(pickFlavor(sizes, { kind: 'ram', mb: 3000 }, fallback), { id: 'c3' });
  t.like(pickFlavor(sizes, { kind: 'id', id: 'c3' }, fallback), { id: 'c3', ramMb: 3000 });
  t.regex(sizes[0]!.description ?? '', /m1\.tiny: 1 vCPU, 512 MB RAM, 1 GB disk/);
});

test.serial('openstack contract test: images resolve by id or by name (the newest active one), and a missing image says to set image', async (t) => {
  const p = await make();
  t.is(await p.resolveImage(null), 'img-deb12', 'the image setting, debian-12, is its newest image');
  t.is(await p.resolveImage('img-deb12-old'), 'img-deb12-old');
  t.is(await p.resolveImage('debian-11'), 'img-deb11');
  t.deepEqual(await p.listImages(), ['debian-11', 'debian-12'], 'images that are not active are left out');
  await t.throwsAsync(p.resolveImage('debian-13'), { message: /no active image "debian-13".*available: debian-11, debian-12/ });
  const noImage = await make({ image: undefined });
  const e = await t.throwsAsync(noImage.resolveImage(null), { message: /set image = NAME-OR-ID/ });
  t.is((e as Error & { exitCode?: number }).exitCode, 2);
});

test.serial('openstack contract test: a server is created with the metadata labels, the keypair, and user data that installs the host key', async (t) => {
  const p = await make();
  const ns = 'os-create';
  await wipe(p, ns);
  const req = request(p, ns, 'app2.create.test', 2);
  const created = await p.create(req);
  t.is(created.hostKey, req.hostKey.public);
  t.like(created.node, { nodeset: ns, role: 'appserver', name: 'app2.create.test', index: 2, state: 'pending' });

  const server = fake.servers.get(created.node.id)!;
  t.truthy(server);
  t.is(server.name, 'app2.create.test');
  t.is(server.flavorRef, '2');
  t.is(server.imageRef, 'img-deb12');
  t.deepEqual(server.metadata, {
    'silver-nodeset': ns,
    'silver-role': 'appserver',
    'silver-index': '2',
    'silver-hostkey': req.hostKey.public.split(' ').slice(0, 2).join(' '),
  });
  t.is(server.keyName, `silver-${ns}`);
  t.is(fake.keypairs.get(`silver-${ns}`)?.public_key, req.authorizedKey, 'the deploy key is imported as the keypair');

  const ud = server.userData!;
  t.true(ud.startsWith('#cloud-config\n'));
  t.true(ud.includes('\nssh_deletekeys: true\n'));
  t.true(ud.includes('\nssh_genkeytypes: []\n'), 'no other host key type is generated');
  t.is(block(ud, '  ed25519_private', '    '), req.hostKey.private.trim(), 'the private host key, verbatim');
  t.true(ud.includes(`\n  ed25519_public: ${JSON.stringify(req.hostKey.public)}\n`));
  t.true(ud.includes(`\nssh_authorized_keys:\n  - ${JSON.stringify(req.authorizedKey)}\n`));
  t.true(ud.includes('\nfqdn: "app2.create.test"\nhostname: "app2"\n'));
  t.false(ud.includes('disable_root'), 'openstack logs in as debian, root stays closed');
  t.is(p.adminUser, 'debian');

  // A second node reuses the keypair; the provider tells the host key from the metadata.
  const before = fake.count('POST', /\/os-keypairs$/);
  const second = await p.create(request(p, ns, 'app3.create.test', 3));
  t.is(fake.count('POST', /\/os-keypairs$/), before, 'the keypair is imported once');
  t.is(fake.servers.get(second.node.id)!.keyName, `silver-${ns}`);
  t.is(await p.hostKey(created.node), req.hostKey.public.split(' ').slice(0, 2).join(' '));

  await wipe(p, ns);
  t.false(fake.keypairs.has(`silver-${ns}`), 'release removes the keypair once the nodeset has no node');
});

test.serial('openstack contract test: key_name uses an existing keypair instead of importing one; a stale silver keypair is replaced', async (t) => {
  const ns = 'os-keyname';
  fake.keypairs.set('my-laptop', { name: 'my-laptop', public_key: 'ssh-ed25519 AAAAmine', fingerprint: 'x' });
  const p = await make({ key_name: 'my-laptop' });
  const posts = fake.count('POST', /\/os-keypairs$/);
  const created = await p.create(request(p, ns, 'k.keyname.test'));
  t.is(fake.servers.get(created.node.id)!.keyName, 'my-laptop');
  t.is(fake.count('POST', /\/os-keypairs$/), posts);
  t.true(fake.servers.get(created.node.id)!.userData!.includes('ssh_authorized_keys:'), 'the deploy key still gets in, through cloud-init');
  await wipe(p, ns);
  t.true(fake.keypairs.has('my-laptop'), 'release leaves a keypair it did not make');

  fake.keypairs.set('silver-os-stale', { name: 'silver-os-stale', public_key: 'ssh-ed25519 AAAAotherkey old', fingerprint: 'x' });
  const q = await make();
  const req = request(q, 'os-stale', 's.stale.test');
  await q.create(req);
  t.is(fake.keypairs.get('silver-os-stale')?.public_key, req.authorizedKey);
  await wipe(q, 'os-stale');
});

test.serial('openstack contract test: waitReachable polls getServer until RUNNING and returns both addresses, without connecting', async (t) => {
  const p = await make();
  const ns = 'os-wait';
  const created = await p.create(request(p, ns, 'w.wait.test'));
  const path = new RegExp(`/servers/${created.node.id}$`);
  const polls = fake.count('GET', path);
  const up = await p.waitReachable(created.node, 5000);
  t.is(fake.count('GET', path) - polls, 2, 'BUILD once, then ACTIVE');
  t.like(up, { name: 'w.wait.test', id: created.node.id, state: 'running' });
  t.regex(up.privateAddress ?? '', /^10\.0\.0\.\d+$/);
  t.regex(up.publicAddress ?? '', /^203\.0\.113\.\d+$/, 'pkgcloud sorts a Neutron network by address range');
  const [listed] = await p.list(ns);
  t.is(listed!.state, 'running');
  await wipe(p, ns);
  await t.throwsAsync(p.waitReachable(created.node, 1000), { message: /does not exist any more/ });
});

test.serial('openstack contract test: a 500 (and a 502, which pkgcloud alone would take for success) is retried until it succeeds', async (t) => {
  const p = await make();
  const said: string[] = [];
  await p.prepare({} as never, (m) => said.push(m));
  const before = fake.count('GET', /\/flavors\/detail$/);
  fake.fail('GET', /\/flavors\/detail$/, 500, 1);
  fake.fail('GET', /\/flavors\/detail$/, 502, 1);
  const sizes = await p.listSizes();
  t.is(sizes.length, 6);
  t.is(fake.count('GET', /\/flavors\/detail$/) - before, 3, 'two failures, then the answer');
  t.is(said.length, 2);
  t.regex(said[0]!, /^openstack: getFlavors failed: HTTP 500 Internal Server Error: injected fault 500; trying getFlavors again$/);
  t.regex(said[1]!, /HTTP 502 Bad Gateway/);
});

test.serial('openstack contract test: a server create that failed with a 5xx is not made twice', async (t) => {
  const p = await make();
  const ns = 'os-create-retry';
  // The first POST reaches the fake and is answered 503 without creating: the retry creates it once.
  fake.fail('POST', /\/servers$/, 503, 1);
  const created = await p.create(request(p, ns, 'r.retry.test'));
  t.is((await p.list(ns)).length, 1);
  t.is((await p.list(ns))[0]!.id, created.node.id);
  await wipe(p, ns);
});

test.serial('openstack contract test: a server Nova made behind a 502 (listed a moment later) is waited for, never made twice', async (t) => {
  const p = await make({}, { ...FAST, createSettleMs: 2000 });
  const ns = 'os-create-502';
  const before = fake.count('POST', /\/servers$/);
  fake.failAfterCreate(502, 2);
  const created = await p.create(request(p, ns, 'r.late.test'));
  t.is(fake.count('POST', /\/servers$/) - before, 1, 'one create');
  t.deepEqual((await p.list(ns)).map((n) => n.id), [created.node.id]);
  await wipe(p, ns);
});

test.serial('openstack contract test: a 403 is reported at once, naming the call', async (t) => {
  const p = await make();
  const before = fake.count('POST', /\/servers$/);
  fake.fail('POST', /\/servers$/, 403, 1);
  const e = await t.throwsAsync(p.create(request(p, 'os-forbidden', 'f.forbidden.test')));
  t.is(e?.message, 'openstack: createServer failed: HTTP 403 Forbidden: injected fault 403');
  t.is(fake.count('POST', /\/servers$/) - before, 1, 'not retried');
  t.deepEqual(await p.list('os-forbidden'), []);
  await wipe(p, 'os-forbidden');
});

test.serial('openstack contract test: a pkgcloud call that never calls back ends in a timeout error', async (t) => {
  const p = await make({}, { ...FAST, callTimeoutMs: 300 });
  await p.listSizes(); // authenticated already
  const before = fake.count('GET', /\/servers\/detail/);
  fake.hang('GET', /\/servers\/detail/, 1);
  const t0 = Date.now();
  await t.throwsAsync(p.list('os-hang'), { message: 'openstack: getServers got no answer within 300ms' });
  t.true(Date.now() - t0 < 2000);
  t.is(fake.count('GET', /\/servers\/detail/) - before, 1, 'a timeout is not retried');
  t.deepEqual(await p.list('os-hang'), [], 'the next call works');
});

test.serial('openstack contract test: the password never appears in error messages', async (t) => {
  const careless = new FakeNova({ identity: 'v3', username: 'alice', secret: 'the-right-one', project: 'silver-test', region: 'RegionOne', echoCredentials: true });
  const url = await careless.start();
  try {
    const p = createProvider(config({}, url), new StateDir('/nonexistent-silver-home'), FAST);
    const e = await t.throwsAsync(p.listSizes());
    t.regex(e!.message, /^openstack: authentication at http:\/\/127\.0\.0\.1:\d+ failed: HTTP 401 Unauthorized: .*\[REDACTED\].*\(check username and credentials\)$/);
    t.is(careless.count('POST', /\/v3\/auth\/tokens$/), 1, 'a 401 is not retried');
    // The fake did send the password back: it is scrubbed from the message, the stack and any printing.
    t.true(JSON.stringify(careless.requests[0]!.body).includes(PASSWORD));
    for (const text of [e!.message, String(e), e!.stack ?? '', inspect(e), JSON.stringify(e)]) t.false(text.includes(PASSWORD));
  } finally {
    await careless.close();
  }
  // Nor in the provider itself, printed.
  const p = await make();
  await p.listSizes();
  t.false(inspect(p, { depth: 8 }).includes(PASSWORD));
  // Configuration errors name the setting, not its value.
  const noProject = t.throws(() => createProvider(config({ project: undefined }), new StateDir('/x'), FAST));
  t.regex(noProject!.message, /^openstack provider: set project/);
});

test.serial('openstack contract test: missing settings are configuration errors that say what to set', (t) => {
  const cases: [Record<string, string | Secret | undefined>, RegExp][] = [
    [{ auth_url: undefined }, /set auth_url/],
    [{ username: undefined }, /set username/],
    [{ password: undefined }, /set password \(or secret \/ secret_file\)/],
    [{ region: undefined }, /set region/],
    [{ project: 'a', tenant: 'b' }, /set only one/],
    [{ auth_url: 'ftp://x' }, /auth_url must be an http\(s\) URL/],
  ];
  for (const [settings, message] of cases) {
    const e = t.throws(() => createProvider(config(settings), new StateDir('/x'), FAST), { message });
    t.is((e as Error & { exitCode?: number }).exitCode, 2);
  }
  // `secret` (or secret_file) stands for the password; `tenant` for the project.
  t.notThrows(() => createProvider(config({ password: undefined, secret: new Secret(PASSWORD), project: undefined, tenant: 'silver-test' }), new StateDir('/x'), FAST));
});

test.serial('openstack contract test: the catalog gives compute for the region; endpoint replaces the catalog', async (t) => {
  const elsewhere = await make({ region: 'Atlantis' });
  await t.throwsAsync(elsewhere.listSizes(), { message: /^openstack: the service catalog of http:\/\/127\.0\.0\.1:\d+ has no public compute endpoint in region "Atlantis" \(check region\)$/ });
  const direct = await make({ region: 'Atlantis', endpoint: `${fake.url}/compute/v2.1/${fake.projectId}` });
  t.is((await direct.listSizes()).length, 6);
});

test.serial('openstack contract test: list pages through servers/detail with a marker', async (t) => {
  const p = await make();
  const ns = 'os-pages';
  fake.pageSize = 2;
  try {
    for (let i = 1; i <= 3; i++) await p.create(request(p, ns, `p${i}.pages.test`, i));
    await p.create(request(p, 'os-pages-other', 'o.pages.test'));
    const before = fake.count('GET', /\/servers\/detail/);
    const found = await p.list(ns);
    t.deepEqual(found.map((n) => n.name).sort(), ['p1.pages.test', 'p2.pages.test', 'p3.pages.test']);
    t.true(fake.count('GET', /\/servers\/detail\?marker=/) > 0);
    t.is(fake.count('GET', /\/servers\/detail/) - before, Math.ceil(fake.servers.size / 2) + 1, 'pages until an empty one');
  } finally {
    fake.pageSize = 1000;
    await wipe(p, ns);
    await wipe(p, 'os-pages-other');
  }
});

test.serial('openstack contract test: a stopped node is started with os-start', async (t) => {
  const p = await make();
  const ns = 'os-start';
  const created = await p.create(request(p, ns, 's.start.test'));
  await p.waitReachable(created.node, 5000);
  fake.servers.get(created.node.id)!.status = 'SHUTOFF';
  const [stopped] = await p.list(ns);
  t.is(stopped!.state, 'stopped');
  await p.start(stopped!);
  t.is(fake.count('POST', new RegExp(`/servers/${created.node.id}/action$`)), 1);
  t.is((await p.waitReachable(stopped!, 5000)).state, 'running');
  await wipe(p, ns);
});

// silver image bake on OpenStack.

const RECORD: ImageRecord = {
  name: 'silver-image-shop-appserver-20261202T1000Z', nodeset: 'shop', role: 'appserver', from: 'silver-builder-appserver.invalid',
  built: '2026-12-02T10:00:00.000Z', packages: ['haproxy 2.6.12-1', 'nginx 1.22.1-9'],
};

test.serial('openstack contract test: a bake is the server action createImage with the bake\'s metadata, polled until ACTIVE; image = NAME then finds it', async (t) => {
  const p = await make();
  const ns = 'os-bake';
  const b = await p.create(request(p, ns, 'silver-builder-appserver.invalid'));
  await p.waitReachable(b.node, 5000);
  const said: string[] = [];
  const id = await p.snapshotImage!(b.node, RECORD, (m) => said.push(m));
  const actions = fake.requests.filter((r) => r.method === 'POST' && r.path.endsWith(`/servers/${b.node.id}/action`));
  t.deepEqual(actions.map((r) => r.body), [{
    createImage: { name: RECORD.name, metadata: { 'silver-nodeset': 'shop', 'silver-role': 'appserver', 'silver-baked': RECORD.built, 'silver-packages': '2' } },
  }]);
  t.is(fake.count('GET', new RegExp(`/images/${id}$`)), 2, 'the Location pkgcloud follows (SAVING), then the poll (ACTIVE)');
  t.like(fake.images.find((i) => i.id === id), { name: RECORD.name, server: b.node.id, status: 'ACTIVE' });
  t.deepEqual(said, [`openstack: image ${id} (${RECORD.name}) is being made from silver-builder-appserver.invalid (${b.node.id})`]);
  t.is(await p.resolveImage(RECORD.name), id);
  t.true((await p.listImages()).includes(RECORD.name));
  t.deepEqual(await p.imageRecord!(id), { name: RECORD.name, nodeset: 'shop', role: 'appserver', built: '2026-12-02T10:05:00.000Z' }, "the bake time is Nova's created");
  t.is(await p.imageRecord!('img-deb12'), null, 'a Debian image is not a baked one');
  await wipe(p, ns);
});

test.serial('openstack contract test: an image that goes into ERROR is an error naming it; an abort stops the polling', async (t) => {
  const p = await make();
  const ns = 'os-bake-error';
  const b = await p.create(request(p, ns, 'silver-builder-appserver.invalid'));
  await p.waitReachable(b.node, 5000);
  fake.imageEnds = 'ERROR';
  try {
    await t.throwsAsync(p.snapshotImage!(b.node, { ...RECORD, name: `${RECORD.name}-e` }, () => undefined), { message: /^openstack: image snap-[\w-]+ \(silver-image-shop-appserver-20261202T1000Z-e\) went into ERROR$/ });
  } finally {
    fake.imageEnds = 'ACTIVE';
  }
  const abort = new AbortController();
  abort.abort();
  await t.throwsAsync(p.snapshotImage!(b.node, { ...RECORD, name: `${RECORD.name}-a` }, () => undefined, abort.signal), { message: /^openstack: stopped waiting for image snap-[\w-]+ \(silver-image-shop-appserver-20261202T1000Z-a\); the cloud may still complete it$/ });
  await wipe(p, ns);
});

test.serial('openstack contract test: silver image bake: the builder server is made from the image setting, stripped over SSH as root through sudo, imaged, and deleted even when createImage fails', async (t) => {
  for (const fails of [false, true]) {
    const d = await fakeDeploy();
    answerBuilder(d.nodes);
    const p = await make();
    d.rt.providerFor = async () => p;
    const before = fake.requests.length;
    if (fails) fake.fail('POST', /\/servers\/[^/]+\/action$/, 403, 1);
    const bake = bakeImage(d.ns, d.rt, { role: 'appserver' });
    if (fails) await t.throwsAsync(bake, { message: /^image bake: openstack: createImage failed: HTTP 403 Forbidden: injected fault 403 \(no image made\)$/ });
    else t.like(await bake, { name: RECORD.name, from: builderName('appserver'), packages: RECORD.packages });
    const mine = fake.requests.slice(before);
    const create = mine.find((r) => r.method === 'POST' && r.path.endsWith('/servers'))!.body as { server: { name: string; imageRef: string; metadata: Record<string, string> } };
    t.like(create.server, { name: builderName('appserver'), imageRef: 'img-deb12', metadata: { 'silver-nodeset': 'shop', 'silver-role': 'appserver', 'silver-index': '1' } });
    const server = mine.find((r) => r.method === 'POST' && /\/servers\/[^/]+\/action$/.test(r.path))!.path.split('/').at(-2)!;
    const calls = mine.map((r) => `${r.method} ${r.path.replace(/^\/compute\/v2\.1\/\w+/, '')}`);
    t.true(calls.indexOf(`POST /servers/${server}/action`) < calls.indexOf(`DELETE /servers/${server}`), 'the builder is deleted after the image call');
    t.false(fake.servers.has(server), 'the builder is gone');
    t.deepEqual(d.nodes.calls.filter((c) => c.node === builderName('appserver')).map((c) => c.argv.slice(0, 4)), [
      ['sudo', '-n', 'sh', '-s'], ['dpkg-query', '-W', '-f', '${Package} ${Version}\\n'], ['sudo', '-n', 'tee', '/etc/silverlining/silver-image.json'], ['sudo', '-n', 'sh', '-s'],
    ]);
    t.deepEqual(d.nodes.calls.at(-1)!.argv, stripArgv('debian'));
  }
  for (const img of fake.images.filter((i) => i.name === RECORD.name)) fake.images.splice(fake.images.indexOf(img), 1);
});

test.serial.after.always(async () => {
  await fake.close();
});
