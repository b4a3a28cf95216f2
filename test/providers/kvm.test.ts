import test from 'ava';
import { builderName } from '../../src/image/builder.js';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { metaData, networkConfig, userData, type SeedInput } from '../../providers/kvm/cloud-init.js';
import { DEFAULTS, KVM_FLAVORS, kvmSettings } from '../../providers/kvm/config.js';
import { parseMetadata, parseVolume } from '../../providers/kvm/domain.js';
import { createProvider, type KvmProvider } from '../../providers/kvm/index.js';
import { seedImageCommand } from '../../providers/kvm/seed.js';
import { Virsh } from '../../providers/kvm/virsh.js';
import type { Nodeset, ProviderConfig } from '../../src/nodeset/types.js';
import { pickFlavor, type CreateRequest } from '../../src/provider.js';
import { sshConnect, sshExec } from '../../src/ssh/connect.js';
import { StateDir } from '../../src/state.js';
import { CommandFailed, run } from '../../src/util/exec.js';
import { bakeImage } from '../../src/commands/image.js';
import { stripArgv } from '../../src/image/builder.js';
import type { ImageRecord } from '../../src/image/strip.js';
import { answerBuilder } from '../helpers/bake.js';
import { fakeDeploy } from '../helpers/fake-nodes.js';
import { providerContract } from './contract.js';

/**
 * The kvm provider against real `virsh` and libvirt's `test:///default` driver (no daemon, no
 * guest). That driver keeps its state inside one connection only, which the provider's single
 * virsh session gives. What the driver cannot do is stood in for, through the provider's options:
 * `vol-upload` (the seed ISO is kept here for inspection instead) and a guest answering on port 22
 * (reachable = the domain is running). Needs the Debian packages libvirt-clients and genisoimage.
 */

const NAME = 'kvm contract test (libvirt test:///default)';
const title = (s: string) => `${NAME}: ${s}`;
const POOL = 'default-pool';
const BASE = 'debian-12-base.qcow2';

const has = async (argv: string[]) => (await run(argv, { allowFailure: true })).code !== 127;
const tools = (await has(['virsh', '--version'])) && (await has(['genisoimage', '-version']));

const state = new StateDir(mkdtempSync(join(tmpdir(), 'silver-kvm-test-')));

function config(settings: Record<string, string> = {}): ProviderConfig {
  return { type: 'kvm', name: null, settings: { uri: 'test:///default', pool: POOL, base_image: BASE, ...settings } };
}

function fakeNodeset(name: string): Nodeset {
  return {
    name, file: `${name}.conf`, baseDomain: 'kvm.test', setEtcHosts: true, provider: config(),
    loadBalancer: false, nodes: [], locations: [], hostnames: [], services: [],
  };
}

/** A provider on a fresh `test:///default` connection, with a base image in its pool; keeps each seed ISO. */
async function makeProvider(seeds = new Map<string, Buffer>(), settings: Record<string, string> = {}): Promise<KvmProvider> {
  const p = createProvider(config(settings), state, {
    reachable: async (node, provider) => (await provider.domainState(node)) === 'running',
    uploadSeed: async (iso, volume) => {
      seeds.set(volume, readFileSync(iso));
    },
  });
  await p.virsh.run(['vol-create-as', POOL, BASE, '2G', '--format', 'qcow2']);
  return p;
}

function request(nodeset: string, name: string, ramMb = 256, index = 1): CreateRequest & { hostKey: { public: string; private: string } } {
  const flavor = KVM_FLAVORS.find((f) => f.ramMb === ramMb)!;
  return {
    labels: { nodeset, role: 'appserver', name, index },
    flavor: { id: flavor.id, ramMb: flavor.ramMb },
    image: BASE,
    authorizedKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDeployKeyForTest silver-deploy',
    hostKey: ssh2.utils.generateKeyPairSync('ed25519', { comment: `root@${name}` }),
  };
}

/** A file of a seed ISO, read back with isoinfo (Rock Ridge names). */
async function isoFile(iso: Buffer, file: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'silver-kvm-iso-'));
  writeFileSync(join(dir, 'seed.iso'), iso);
  return (await run(['isoinfo', '-i', join(dir, 'seed.iso'), '-R', '-x', `/${file}`])).stdout;
}

const seedInput: SeedInput = {
  name: 'app1.example.com',
  instanceId: 'silver_demo_app1.example.com-1234',
  adminUser: 'debian',
  authorizedKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDeployKeyForTest silver-deploy\n',
  hostKey: { public: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyPublic root@app1', private: '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n' },
  address: '10.214.0.12',
  gateway: '10.214.0.1',
  mac: '02:5f:0a:d6:00:0c',
};

// Pure parts: these need no tool.

test(title('the cloud-init user-data pins the host key and sets the hostname and the deploy key for debian'), (t) => {
  const text = userData(seedInput);
  t.true(text.startsWith('#cloud-config\n'));
  const cfg = JSON.parse(text.slice('#cloud-config\n'.length)) as Record<string, unknown> & {
    users: { name: string; ssh_authorized_keys: string[]; sudo: string }[];
    ssh_keys: { ed25519_private: string; ed25519_public: string };
    write_files: { path: string; content: string }[];
  };
  t.is(cfg['hostname'], 'app1');
  t.is(cfg['fqdn'], 'app1.example.com');
  t.is(cfg.ssh_keys.ed25519_public, seedInput.hostKey.public);
  t.is(cfg.ssh_keys.ed25519_private, seedInput.hostKey.private);
  t.deepEqual(cfg['ssh_genkeytypes'], [], 'no other host key type is generated');
  t.true(cfg['ssh_deletekeys']);
  t.is(cfg.users[0]!.name, 'debian');
  t.deepEqual(cfg.users[0]!.ssh_authorized_keys, [seedInput.authorizedKey.trim()]);
  t.is(cfg.users[0]!.sudo, 'ALL=(ALL) NOPASSWD:ALL');
  t.false(cfg['ssh_pwauth']);
  t.true(cfg.write_files.some((f) => f.path === '/etc/hosts' && f.content.includes('10.214.0.12 app1.example.com app1')));
});

test(title('the seed network-config gives the fixed address on the subnet, the meta-data the name'), (t) => {
  const net = JSON.parse(networkConfig(seedInput)) as { version: number; ethernets: Record<string, { match: { macaddress: string }; addresses: string[]; gateway4: string; nameservers: { addresses: string[] } }> };
  t.is(net.version, 2);
  const eth = net.ethernets['eth0']!;
  t.is(eth.match.macaddress, seedInput.mac);
  t.deepEqual(eth.addresses, ['10.214.0.12/24']);
  t.is(eth.gateway4, '10.214.0.1');
  t.deepEqual(eth.nameservers.addresses, ['10.214.0.1']);
  t.deepEqual(JSON.parse(metaData(seedInput)), { 'instance-id': seedInput.instanceId, 'local-hostname': 'app1.example.com' });
  t.deepEqual(seedImageCommand('/tmp/s.iso', ['/tmp/user-data']), ['genisoimage', '-quiet', '-output', '/tmp/s.iso', '-volid', 'cidata', '-joliet', '-rock', '/tmp/user-data']);
});

test(title('settings: defaults, subnet, network or bridge, and memory flavors like the local provider'), (t) => {
  const d = kvmSettings({ type: 'kvm', name: null, settings: {} });
  t.like(d, { uri: 'qemu:///system', pool: 'default', prefix: '10.214.0', attachment: { kind: 'managed', network: 'silver' } });
  t.like(kvmSettings({ type: 'kvm', name: null, settings: { uri: 'qemu+ssh://root@vm1/system', bridge: 'br0', subnet: '192.168.50.0/24' } }), {
    uri: 'qemu+ssh://root@vm1/system', prefix: '192.168.50', attachment: { kind: 'bridge', bridge: 'br0' },
  });
  t.like(kvmSettings({ type: 'kvm', name: null, settings: { network: 'lan' } }), { prefix: null, attachment: { kind: 'network', network: 'lan' } });
  t.throws(() => kvmSettings({ type: 'kvm', name: null, settings: { network: 'a', bridge: 'b' } }), { message: /either network .* or bridge/ });
  t.throws(() => kvmSettings({ type: 'kvm', name: null, settings: { subnet: '10.0.0.0/16' } }), { message: /\/24/ });
  t.deepEqual(KVM_FLAVORS.map((f) => f.id), ['128M', '256M', '512M', '1G', '2G', '4G', '8G', '16G']);
  const picked = pickFlavor(KVM_FLAVORS, { kind: 'ram', mb: 256 }, KVM_FLAVORS[0]!);
  t.like(picked, { id: '256M', ramMb: 256, vcpus: 1 });
  t.like(pickFlavor(KVM_FLAVORS, { kind: 'ram', mb: 3000 }, KVM_FLAVORS[0]!), { id: '4G', vcpus: 2 });
});

test(title('domain metadata parses from virsh metadata (no prefix) and from dumpxml (prefixed)'), (t) => {
  const plain = '<node>\n  <nodeset>demo</nodeset>\n  <role>service:mysql</role>\n  <name>db1.x</name>\n  <index>2</index>\n  <address>10.214.0.11</address>\n  <hostkey>ssh-ed25519 AAAA</hostkey>\n</node>\n';
  t.deepEqual(parseMetadata(plain), { nodeset: 'demo', role: 'service:mysql', name: 'db1.x', index: 2, address: '10.214.0.11', hostKey: 'ssh-ed25519 AAAA' });
  t.is(parseMetadata('<node><nodeset>x</nodeset></node>'), null);
  t.is(parseMetadata('<other:node xmlns:other="urn:x"><other:nodeset>a</other:nodeset></other:node>'), null);
  t.deepEqual(parseVolume("<volume><capacity unit='bytes'>2147483648</capacity><target><path>/p/a.qcow2</path></target><backingStore><path>/p/b.qcow2</path></backingStore></volume>"), {
    capacity: 2147483648, path: '/p/a.qcow2', backing: '/p/b.qcow2',
  });
});

if (!tools) {
  if (process.env['CI']) test(title('needs virsh and genisoimage'), (t) => t.fail('install libvirt-clients and genisoimage for the kvm provider tests'));
  else test.skip(title('skipped: needs virsh and genisoimage (Debian packages libvirt-clients, genisoimage)'), () => undefined);
} else {
  providerContract(test, { name: NAME, make: () => makeProvider(), nodeset: 'contract-kvm', authorizedKey: 'ssh-ed25519 AAAA... test' });

  test(title('one virsh session: quoting, failures, output kept apart, state kept between commands'), async (t) => {
    const v = new Virsh('test:///default');
    try {
      t.is((await v.run(['echo', "it's", 'a;b', '#c', 'x"y', ''])).stdout, `it's a;b #c x"y `);
      const failed = await t.throwsAsync(v.run(['domstate', 'no-such-domain']), { instanceOf: CommandFailed });
      t.regex(failed!.message, /failed to get domain 'no-such-domain'/);
      const soft = await v.run(['domstate', 'no-such-domain'], { allowFailure: true });
      t.is(soft.code, 1);
      // Many commands at once: each gets its own output, in order.
      const outs = await Promise.all(Array.from({ length: 20 }, (_, i) => v.run(['echo', `n${i}`])));
      t.deepEqual(outs.map((o) => o.stdout), Array.from({ length: 20 }, (_, i) => `n${i}`));
      await v.run(['vol-create-as', POOL, 'kept.qcow2', '1M', '--format', 'qcow2']);
      t.regex((await v.run(['vol-list', POOL])).stdout, /kept\.qcow2/, 'the test driver keeps state within the session');
      const xml = (await v.run(['pool-dumpxml', POOL])).stdout;
      t.true(xml.startsWith('<pool') && xml.trimEnd().endsWith('</pool>'), 'multi-line output has no prompt or marker in it');
    } finally {
      await v.close();
    }
  });

  test(title('the domain XML carries the labels in its metadata, memory from the size, and a disk backed by the base image'), async (t) => {
    const seeds = new Map<string, Buffer>();
    const p = await makeProvider(seeds);
    try {
      await p.prepare(fakeNodeset('kvm-xml'), () => undefined);
      const req = request('kvm-xml', 'app1.kvm.test', 2048, 3);
      const created = await p.create(req);
      t.is(created.hostKey, req.hostKey.public);
      const xml = (await p.virsh.run(['dumpxml', created.node.id])).stdout;
      t.regex(xml, /<silver:node xmlns:silver="https:\/\/silverlining\.invalid\/xmlns\/libvirt\/node\/1">/);
      t.deepEqual(parseMetadata(xml), { nodeset: 'kvm-xml', role: 'appserver', name: 'app1.kvm.test', index: 3, address: '10.214.0.10', hostKey: req.hostKey.public });
      t.regex(xml, /<memory unit='KiB'>2097152<\/memory>/, '2G of memory');
      t.regex(xml, /<vcpu placement='static'>2<\/vcpu>/);
      t.regex(xml, /<source pool='default-pool' volume='silver_kvm-xml_app1\.kvm\.test\.qcow2'\/>/);
      t.regex(xml, /<source pool='default-pool' volume='silver_kvm-xml_app1\.kvm\.test-seed\.iso'\/>/);
      t.regex(xml, /<source network='silver'\/>/);
      t.regex(xml, /<mac address='02:5f:0a:d6:00:0a'\/>/);
      const disk = parseVolume((await p.virsh.run(['vol-dumpxml', '--pool', POOL, 'silver_kvm-xml_app1.kvm.test.qcow2'])).stdout);
      t.is(disk.backing, `/${POOL}/${BASE}`);
      t.is(disk.capacity, 10 * 1024 ** 3, 'at least 10 GiB, grown from the 2G base');
      t.regex((await p.virsh.run(['vol-dumpxml', '--pool', POOL, 'silver_kvm-xml_app1.kvm.test.qcow2'])).stdout, /<format type='qcow2'\/>/);
      t.regex((await p.virsh.run(['net-dumpxml', 'silver'])).stdout, /<ip address='10\.214\.0\.1' netmask='255\.255\.255\.0'/);
      // The seed that was uploaded: a cidata ISO with the node's user-data and network-config.
      const iso = seeds.get('silver_kvm-xml_app1.kvm.test-seed.iso');
      t.truthy(iso);
      t.is(iso!.subarray(32808, 32814).toString(), 'cidata');
      const ud = await isoFile(iso!, 'user-data');
      t.true(ud.includes(JSON.stringify(req.hostKey.public)));
      t.true(ud.includes(JSON.stringify(req.authorizedKey)));
      t.true(ud.includes('"fqdn": "app1.kvm.test"'));
      t.true((await isoFile(iso!, 'network-config')).includes('"10.214.0.10/24"'));
      t.is(await p.hostKey(created.node), req.hostKey.public, 'the host key is told again from the metadata');
    } finally {
      await p.close();
    }
  });

  test(title('two nodes get different addresses, the lowest free first'), async (t) => {
    const p = await makeProvider();
    try {
      await p.prepare(fakeNodeset('kvm-addr'), () => undefined);
      const [a, b] = await Promise.all([p.create(request('kvm-addr', 'app1.kvm.test')), p.create(request('kvm-addr', 'app2.kvm.test', 256, 2))]);
      t.not(a.node.privateAddress, b.node.privateAddress);
      t.deepEqual([a.node.privateAddress, b.node.privateAddress].sort(), ['10.214.0.10', '10.214.0.11']);
      const other = await p.create(request('kvm-addr-other', 'lb.kvm.test'));
      t.is(other.node.privateAddress, '10.214.0.12', 'addresses are unique across nodesets on one libvirt');
      const listed = await p.list('kvm-addr');
      t.deepEqual(listed.map((n) => n.privateAddress).sort(), ['10.214.0.10', '10.214.0.11']);
      await p.destroy(a.node);
      const again = await p.create(request('kvm-addr', 'app3.kvm.test', 256, 3));
      t.is(again.node.privateAddress, a.node.privateAddress, 'a freed address is given again');
    } finally {
      await p.close();
    }
  });

  test(title('destroy removes the domain and its volumes, not the base image; release removes silver\'s network'), async (t) => {
    const p = await makeProvider();
    try {
      await p.prepare(fakeNodeset('kvm-destroy'), () => undefined);
      const keep = await p.create(request('kvm-destroy', 'keep.kvm.test'));
      const gone = await p.create(request('kvm-destroy', 'gone.kvm.test', 256, 2));
      const vols = async () => (await p.virsh.run(['vol-list', POOL])).stdout;
      t.regex(await vols(), /silver_kvm-destroy_gone\.kvm\.test\.qcow2/);
      await p.destroy(gone.node);
      t.deepEqual((await p.list('kvm-destroy')).map((n) => n.name), ['keep.kvm.test']);
      t.is((await p.virsh.run(['domstate', gone.node.id], { allowFailure: true })).code, 1, 'the domain is undefined');
      t.notRegex(await vols(), /gone\.kvm\.test/, 'disk and seed volumes are deleted');
      t.regex(await vols(), /silver_kvm-destroy_keep\.kvm\.test\.qcow2/);
      t.regex(await vols(), new RegExp(BASE.replaceAll('.', '\\.')), 'the base image stays');
      await p.release('kvm-destroy');
      t.is((await p.virsh.run(['net-info', 'silver'], { allowFailure: true })).code, 0, 'the network stays while a node uses it');
      await p.destroy(keep.node);
      await p.release('kvm-destroy');
      t.is((await p.virsh.run(['net-info', 'silver'], { allowFailure: true })).code, 1, 'the network goes with the last node');
      t.deepEqual(await p.listImages(), [BASE]);
    } finally {
      await p.close();
    }
  });

  test(title('listing another nodeset finds nothing, nor domains silver did not label'), async (t) => {
    const p = await makeProvider();
    try {
      await p.prepare(fakeNodeset('kvm-list'), () => undefined);
      await p.create(request('kvm-list', 'app1.kvm.test'));
      t.deepEqual(await p.list('kvm-list-other'), []);
      t.deepEqual(await p.list('kvm'), [], 'no prefix match');
      t.regex((await p.virsh.run(['list', '--all', '--name'])).stdout, /^test$/m, "the driver's own domain exists");
      t.deepEqual((await p.list('kvm-list')).map((n) => n.name), ['app1.kvm.test']);
      await t.throwsAsync(p.resolveImage('missing.qcow2'), { message: /no volume "missing\.qcow2" in pool default-pool/ });
    } finally {
      await p.close();
    }
  });

  const RECORD: ImageRecord = {
    name: 'silver-image-kvm-bake-appserver-20261202T1000Z', nodeset: 'kvm-bake', role: 'appserver', from: 'silver-builder-appserver.invalid',
    built: '2026-12-02T10:00:00.000Z', packages: ['nginx 1.22.1-9'],
  };

  test(title('a bake shuts the builder down and converts its disk into a pool volume with no backing file; image = NAME finds it'), async (t) => {
    const p = await makeProvider();
    try {
      await p.prepare(fakeNodeset('kvm-bake'), () => undefined);
      const b = await p.create(request('kvm-bake', 'silver-builder-appserver.invalid', 1024));
      const seen: string[][] = [];
      const run = p.virsh.run.bind(p.virsh);
      p.virsh.run = (args, o) => {
        seen.push([...args]);
        return run(args, o);
      };
      const said: string[] = [];
      const volume = await p.snapshotImage(b.node, RECORD, (m) => said.push(m));
      p.virsh.run = run;
      t.is(volume, `${RECORD.name}.qcow2`);
      const disk = 'silver_kvm-bake_silver-builder-appserver.invalid.qcow2';
      t.deepEqual(seen.map((a) => (a[0] === 'vol-create-from' ? [...a.slice(0, 2), 'FILE', ...a.slice(3)] : a)), [
        ['vol-info', '--pool', POOL, volume],
        ['shutdown', b.node.id],
        ['domstate', b.node.id],
        ['vol-dumpxml', '--pool', POOL, disk],
        ['vol-create-from', POOL, 'FILE', disk, '--inputpool', POOL],
      ]);
      t.deepEqual(said, [`kvm: converting ${disk} into ${volume} (pool ${POOL})`]);
      t.is(await p.domainState(b.node), 'stopped');
      const xml = (await p.virsh.run(['vol-dumpxml', '--pool', POOL, volume])).stdout;
      t.like(parseVolume(xml), { backing: null, capacity: 10 * 1024 ** 3 }, 'flattened, as large as the builder\'s disk');
      t.regex(xml, /<format type='qcow2'\/>/);
      t.is(await p.resolveImage(RECORD.name), volume);
      t.is(await p.resolveImage(volume), volume);
      t.deepEqual(await p.imageRecord(volume), { name: RECORD.name, nodeset: 'kvm-bake', role: 'appserver', built: '2026-12-02T10:00:00.000Z' });
      t.is(await p.imageRecord(BASE), null);
      await p.destroy(b.node);
      t.deepEqual(await p.listImages(), [BASE, volume], 'the image outlives its builder');
      const n = await p.create({ ...request('kvm-bake', 'app1.kvm.test'), image: volume });
      t.is(parseVolume((await p.virsh.run(['vol-dumpxml', '--pool', POOL, 'silver_kvm-bake_app1.kvm.test.qcow2'])).stdout).backing, `/${POOL}/${volume}`, 'new nodes are overlays of the image');
      await t.throwsAsync(p.snapshotImage(n.node, RECORD, () => undefined), { message: /a volume silver-image-kvm-bake-appserver-20261202T1000Z\.qcow2 exists already/ });
      await t.throwsAsync(p.resolveImage('silver-image-kvm-bake-appserver-20251202T1000Z'), { message: /no baked image "silver-image-kvm-bake-appserver-20251202T1000Z" in pool default-pool/ });
      await p.destroy(n.node);
    } finally {
      await p.close();
    }
  });

  test(title('silver image bake on kvm: the builder is defined from the base image, set up, stripped, converted, and undefined with its volumes even when the conversion fails'), async (t) => {
    for (const fails of [false, true]) {
      const d = await fakeDeploy();
      answerBuilder(d.nodes);
      const p = await makeProvider();
      try {
        d.rt.providerFor = async () => p;
        const image = 'silver-image-shop-appserver-20261202T1000Z.qcow2';
        if (fails) await p.virsh.run(['vol-create-as', POOL, image, '1M', '--format', 'qcow2']);
        const bake = bakeImage(d.ns, d.rt, { role: 'appserver' });
        if (fails) await t.throwsAsync(bake, { message: /^image bake: kvm provider: a volume silver-image-shop-appserver-20261202T1000Z\.qcow2 exists already in pool default-pool \(no image made\)$/ });
        else t.like(await bake, { name: 'silver-image-shop-appserver-20261202T1000Z', id: image, packages: ['haproxy 2.6.12-1', 'nginx 1.22.1-9'] });
        t.deepEqual(await p.list('shop'), [], 'the builder is gone');
        t.notRegex((await p.virsh.run(['list', '--all', '--name'])).stdout, /silver-builder/);
        t.notRegex((await p.virsh.run(['vol-list', POOL])).stdout, /silver-builder/, 'its disk and seed went with it');
        const vol = parseVolume((await p.virsh.run(['vol-dumpxml', '--pool', POOL, image])).stdout);
        t.is(vol.capacity, fails ? 1024 ** 2 : 10 * 1024 ** 3, fails ? 'the volume that was there is left alone' : 'the new image');
        t.deepEqual(d.nodes.calls.filter((c) => c.node === builderName('appserver')).map((c) => c.argv.slice(0, 4)), [
          ['sudo', '-n', 'sh', '-s'], ['dpkg-query', '-W', '-f', '${Package} ${Version}\\n'], ['sudo', '-n', 'tee', '/etc/silverlining/silver-image.json'], ['sudo', '-n', 'sh', '-s'],
        ]);
        t.deepEqual(d.nodes.calls.at(-1)!.argv, stripArgv('debian'));
      } finally {
        await p.close();
      }
    }
  });
}

/**
 * Opt-in (SILVER_KVM_REAL=1): a real guest under libvirt. Needs a running libvirtd with KVM, a
 * pool (SILVER_KVM_POOL, default `default`) holding a Debian cloud image with cloud-init
 * (SILVER_KVM_BASE, default debian-12-genericcloud-amd64.qcow2), and this machine able to reach
 * the nodes' subnet (true for the default NAT network on a local qemu:///system).
 * SILVER_KVM_TCG=1 runs the guests without acceleration, where nested KVM fails.
 */
if (process.env['SILVER_KVM_REAL'] === '1') {
  const realName = 'kvm contract test (real libvirt, SILVER_KVM_REAL=1)';
  const realConfig: ProviderConfig = {
    type: 'kvm', name: null,
    settings: {
      uri: process.env['SILVER_KVM_URI'] ?? DEFAULTS.uri,
      pool: process.env['SILVER_KVM_POOL'] ?? DEFAULTS.pool,
      base_image: process.env['SILVER_KVM_BASE'] ?? DEFAULTS.baseImage,
      ...(process.env['SILVER_KVM_SUBNET'] ? { subnet: process.env['SILVER_KVM_SUBNET'] } : {}),
    },
  };
  const deploy = state.deployKey();
  const realOptions = process.env['SILVER_KVM_TCG'] === '1' ? { domainType: 'qemu' as const } : {};
  // One guest only (the shared contract's smallest flavor, 128M, is too small for Debian with cloud-init).
  test.serial(`${realName}: the guest boots with silver's host key, address and hostname, and debian logs in with the deploy key`, async (t) => {
    const p = createProvider(realConfig, state, realOptions);
    const nodeset = 'kvm-real-ssh';
    try {
      await p.prepare(fakeNodeset(nodeset), () => undefined);
      for (const n of await p.list(nodeset)) await p.destroy(n);
      const req = { ...request(nodeset, 'app1.kvm.test', 1024), image: await p.resolveImage(null), authorizedKey: deploy.public };
      const created = await p.create(req);
      const up = await p.waitReachable(created.node, 600_000);
      // sshd may answer before cloud-init has written the key: retry until the login works.
      const deadline = Date.now() + 300_000;
      let client: Awaited<ReturnType<typeof sshConnect>> | null = null;
      while (!client) {
        try {
          client = await sshConnect({ name: up.name, host: up.privateAddress!, username: p.adminUser, privateKey: deploy.private, hostKey: created.hostKey!, timeoutMs: 10_000 });
        } catch (e) {
          if (Date.now() > deadline || /host key changed/.test((e as Error).message)) throw e;
          await new Promise((r) => setTimeout(r, 2000));
        }
      }
      try {
        const r = await sshExec(client, 'hostname; hostname -f; id -un; ip -4 -o addr show eth0; sudo -n true && echo sudo-ok; sudo -n cat /etc/ssh/ssh_host_ed25519_key.pub; ls /etc/ssh; ip -4 route show default');
        t.is(r.code, 0, r.stderr);
        t.log(r.stdout);
        const lines = r.stdout.split('\n');
        t.is(lines[0], 'app1');
        t.is(lines[1], 'app1.kvm.test');
        t.is(lines[2], 'debian');
        t.regex(r.stdout, new RegExp(`inet ${up.privateAddress!.replaceAll('.', '\\.')}/24`));
        t.regex(r.stdout, /^sudo-ok$/m);
        t.true(r.stdout.includes(req.hostKey.public.split(' ').slice(0, 2).join(' ')));
        t.notRegex(r.stdout, /ssh_host_(rsa|ecdsa)_key/, 'no other host key');
        t.regex(r.stdout, new RegExp(`^default via ${up.privateAddress!.split('.').slice(0, 3).join('\\.')}\\.1 `, 'm'));
      } finally {
        client.end();
      }
      await p.destroy(up);
      t.deepEqual(await p.list(nodeset), []);
    } finally {
      for (const n of await p.list(nodeset)) await p.destroy(n);
      await p.release(nodeset);
      await p.close();
    }
  });
}
