import test from 'ava';
import ssh2 from 'ssh2';
import { inspect } from 'node:util';
import type { Tuning } from '../../providers/openstack/index.js';
import { createProvider } from '../../providers/rackspace/index.js';
import type { ProviderConfig } from '../../src/nodeset/types.js';
import type { Provider } from '../../src/provider.js';
import { Secret } from '../../src/secret.js';
import { StateDir } from '../../src/state.js';
import { FakeNova } from '../fixtures/nova/server.js';
import { providerContract } from './contract.js';

// Everything here talks to the fake on 127.0.0.1 only, even where a proxy is configured.
process.env['NO_PROXY'] = '127.0.0.1';
process.env['no_proxy'] = '127.0.0.1';

const API_KEY = '0123456789abcdef0123456789abcdef';
const fake = new FakeNova({ identity: 'rackspace', username: 'bob', secret: API_KEY, region: 'DFW' });
const ready = fake.start();
const FAST: Tuning = { callTimeoutMs: 3000, retries: 3, retryMinMs: 5, pollMs: 5, destroyTimeoutMs: 3000 };

function config(settings: Record<string, string | Secret | undefined> = {}, url = fake.url): ProviderConfig {
  const all: Record<string, string | Secret | undefined> = { auth_url: url, username: 'bob', api_key: new Secret(API_KEY), region: 'DFW', image: 'debian-12', ...settings };
  return { type: 'rackspace', name: null, settings: Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined)) as Record<string, string | Secret> };
}

async function make(settings: Record<string, string | Secret | undefined> = {}, tuning: Tuning = FAST): Promise<Provider> {
  await ready;
  return createProvider(config(settings), new StateDir('/nonexistent-silver-home'), tuning);
}

providerContract(test, {
  name: 'rackspace contract test (identity v2.0 + Nova fixture)',
  make: () => make(),
  nodeset: 'contract-rax',
  authorizedKey: 'ssh-ed25519 AAAA... test',
  timeoutMs: 5000,
  installsHostKey: true,
});

test.serial('rackspace contract test: authenticates with username and API key on /v2.0/tokens and uses the region\'s compute endpoint', async (t) => {
  const p = await make();
  await p.listSizes();
  const auth = fake.requests.find((r) => r.path === '/v2.0/tokens');
  t.deepEqual(auth?.body, { auth: { 'RAX-KSKEY:apiKeyCredentials': { username: 'bob', apiKey: API_KEY } } });
  t.true(fake.requests.some((r) => r.path === '/compute/v2/987654/flavors/detail'), 'DFW, not ORD or first-generation Cloud Servers');
  t.is(p.adminUser, 'root');
  t.is(p.type, 'rackspace');
});

test.serial('rackspace contract test: a server gets the labels and user data with the host key and root login; addresses come from public/private', async (t) => {
  const p = await make();
  const ns = 'rax-create';
  const hostKey = ssh2.utils.generateKeyPairSync('ed25519', { comment: 'root@web1.rax.test' });
  const authorizedKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIraxdeploykey silver-deploy';
  const created = await p.create({ labels: { nodeset: ns, role: 'service:mysql', name: 'db.rax.test', index: 1 }, flavor: { id: '3', ramMb: 4096 }, image: 'img-deb12', authorizedKey, hostKey });
  const server = fake.servers.get(created.node.id)!;
  t.deepEqual(server.metadata, { 'silver-nodeset': ns, 'silver-role': 'service:mysql', 'silver-index': '1', 'silver-hostkey': hostKey.public.split(' ').slice(0, 2).join(' ') });
  t.is(server.keyName, `silver-${ns}`);
  t.true(server.userData!.includes(hostKey.private.trim().split('\n').map((l) => `    ${l}`).join('\n')));
  t.true(server.userData!.includes('\nssh_deletekeys: true\n'));
  t.true(server.userData!.includes('\ndisable_root: false\n'), 'rackspace logs in as root');
  const up = await p.waitReachable(created.node, 5000);
  t.like(up, { state: 'running', role: 'service:mysql' });
  t.regex(up.privateAddress ?? '', /^10\.176\.0\.\d+$/);
  t.regex(up.publicAddress ?? '', /^203\.0\.113\.\d+$/, 'IPv4 before the IPv6 address of the public network');
  for (const n of await p.list(ns)) await p.destroy(n);
  await p.release(ns);
  t.deepEqual(await p.list(ns), []);
  t.false(fake.keypairs.has(`silver-${ns}`));
});

test.serial('rackspace contract test: a 503 is retried, a 403 is reported at once', async (t) => {
  const p = await make();
  const before = fake.count('GET', /\/images\/detail$/);
  fake.fail('GET', /\/images\/detail$/, 503, 2);
  t.deepEqual(await p.listImages(), ['debian-11', 'debian-12']);
  t.is(fake.count('GET', /\/images\/detail$/) - before, 3);
  fake.fail('GET', /\/images\/detail$/, 403, 1);
  await t.throwsAsync(p.listImages(), { message: 'rackspace: getImages failed: HTTP 403 Forbidden: injected fault 403' });
  t.is(fake.count('GET', /\/images\/detail$/) - before, 4);
});

test.serial('rackspace contract test: a call that never answers ends in a timeout error', async (t) => {
  const p = await make({}, { ...FAST, callTimeoutMs: 250 });
  await p.listSizes();
  fake.hang('GET', /\/flavors\/detail$/, 1);
  await t.throwsAsync(p.listSizes(), { message: 'rackspace: getFlavors got no answer within 250ms' });
  t.is((await p.listSizes()).length, 6);
});

test.serial('rackspace contract test: the API key never appears in error messages', async (t) => {
  const careless = new FakeNova({ identity: 'rackspace', username: 'bob', secret: 'another-key', region: 'DFW', echoCredentials: true });
  const url = await careless.start();
  try {
    const p = createProvider(config({}, url), new StateDir('/x'), FAST);
    const e = await t.throwsAsync(p.list('anything'));
    t.regex(e!.message, /^rackspace: authentication at http:\/\/127\.0\.0\.1:\d+ failed: HTTP 401 Unauthorized: Username or api key is invalid: .*\[REDACTED\]/);
    t.true(JSON.stringify(careless.requests[0]!.body).includes(API_KEY));
    for (const text of [e!.message, e!.stack ?? '', inspect(e)]) t.false(text.includes(API_KEY));
  } finally {
    await careless.close();
  }
});

test.serial('rackspace contract test: missing settings are configuration errors; secret stands for api_key; auth_url has a default', (t) => {
  t.throws(() => createProvider(config({ region: undefined }), new StateDir('/x')), { message: /^rackspace provider: set region \(e\.g\. DFW/ });
  t.throws(() => createProvider(config({ api_key: undefined }), new StateDir('/x')), { message: /^rackspace provider: set api_key \(or secret \/ secret_file\)/ });
  t.throws(() => createProvider(config({ username: undefined }), new StateDir('/x')), { message: /set username/ });
  t.notThrows(() => createProvider(config({ api_key: undefined, secret: new Secret(API_KEY), auth_url: undefined }), new StateDir('/x')));
});

test.serial('rackspace contract test: a bake\'s createImage goes to the region\'s Cloud Servers endpoint, the image followed and polled there until ACTIVE', async (t) => {
  const p = await make();
  const ns = 'rax-bake';
  const hostKey = ssh2.utils.generateKeyPairSync('ed25519');
  const b = await p.create({ labels: { nodeset: ns, role: 'balancer', name: 'silver-builder-balancer.invalid', index: 1 }, flavor: { id: '2', ramMb: 2048 }, image: 'img-deb12', authorizedKey: 'ssh-ed25519 AAAA test', hostKey });
  await p.waitReachable(b.node, 5000);
  const name = 'silver-image-rax-bake-balancer-20261202T1000Z';
  const id = await p.snapshotImage!(b.node, { name, nodeset: ns, role: 'balancer', from: b.node.name, built: '2026-12-02T10:00:00.000Z', packages: ['haproxy 2.6.12-1'] }, () => undefined);
  const action = fake.requests.find((r) => r.method === 'POST' && r.path === `/compute/v2/987654/servers/${b.node.id}/action`);
  t.deepEqual(action?.body, { createImage: { name, metadata: { 'silver-nodeset': ns, 'silver-role': 'balancer', 'silver-baked': '2026-12-02T10:00:00.000Z', 'silver-packages': '1' } } });
  t.is(fake.count('GET', new RegExp(`^/compute/v2/987654/images/${id}$`)), 2);
  t.is(await p.resolveImage(name), id);
  t.deepEqual(await p.imageRecord!(id), { name, nodeset: ns, role: 'balancer', built: '2026-12-02T10:05:00.000Z' });
  await p.destroy(b.node);
});

test.serial.after.always(async () => {
  await fake.close();
});
