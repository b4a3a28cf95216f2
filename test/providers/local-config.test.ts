import test from 'ava';
import { allocateAddress, aptMirrors, configValue, containerName, macFor, nodeConfig, parseLabels, parseSubnet } from '../../providers/local/config.js';
import { proxyConfig } from '../../providers/local/network.js';
import { templateWithRetry } from '../../providers/local/golden.js';

const labels = { nodeset: 'demo', role: 'appserver' as const, name: 'app1.demo.test', index: 1 };

test('a clone config keeps the golden lines, replaces network and identity, and carries the labels', (t) => {
  const golden = [
    'lxc.include = /usr/share/lxc/config/debian.common.conf',
    'lxc.rootfs.path = overlay:/var/lib/lxc/g/rootfs:/var/lib/lxc/x/overlay/delta',
    'lxc.uts.name = golden',
    'lxc.net.0.type = veth',
    'lxc.net.0.link = otherbr',
    'lxc.net.0.hwaddr = 00:16:3e:00:00:01',
    'lxc.net.0.flags = up',
  ].join('\n');
  const out = nodeConfig(golden, { labels, bridge: 'silverbr0', address: '10.213.0.10', memoryMb: 256, cgroup: 2 });
  t.is(configValue(out, 'lxc.uts.name'), 'app1.demo.test');
  t.is(configValue(out, 'lxc.net.0.link'), 'silverbr0');
  t.is(configValue(out, 'lxc.net.0.ipv4.address'), '10.213.0.10/24');
  t.is(configValue(out, 'lxc.net.0.type'), 'veth');
  t.is(configValue(out, 'lxc.cgroup2.memory.max'), '256M');
  t.is(configValue(out, 'lxc.net.0.hwaddr'), macFor('10.213.0.10'));
  t.true(out.includes('lxc.rootfs.path = overlay:'));
  t.false(out.includes('otherbr'));
  t.false(out.includes('lxc.net.0.ipv4.gateway'), 'no gateway: no route off the machine');
  t.deepEqual(parseLabels(out), labels);
  // Rewriting an already labelled config gives one label line, not two.
  const again = nodeConfig(out, { labels, bridge: 'silverbr0', address: '10.213.0.10', memoryMb: 512, cgroup: 1 });
  t.is(again.split('\n').filter((l) => l.startsWith('# silver-label')).length, 1);
  t.is(configValue(again, 'lxc.cgroup.memory.limit_in_bytes'), '512M');
  t.is(configValue(again, 'lxc.cgroup2.memory.max'), null);
});

test('configs without labels are not ours', (t) => {
  t.is(parseLabels('lxc.uts.name = x\n'), null);
  t.is(parseLabels('# silver-label {broken\n'), null);
});

test('addresses: lowest free from .10, never the host, none when full', (t) => {
  t.is(allocateAddress('10.1.2', new Set()), '10.1.2.10');
  t.is(allocateAddress('10.1.2', new Set(['10.1.2.10', '10.1.2.12'])), '10.1.2.11');
  const full = new Set(Array.from({ length: 241 }, (_, i) => `10.1.2.${i + 10}`));
  t.is(allocateAddress('10.1.2', full), null);
});

test('the subnet must be a private /24', (t) => {
  t.is(parseSubnet('10.213.0.0/24'), '10.213.0');
  t.is(parseSubnet('192.168.77.0/24'), '192.168.77');
  t.throws(() => parseSubnet('8.8.8.0/24'), { message: /not a private range/ });
  t.throws(() => parseSubnet('10.0.0.0/16'), { message: /private \/24/ });
});

test('container names are derived from nodeset and node name', (t) => {
  t.is(containerName('demo', 'app1.demo.test'), 's-demo-app1-demo-test');
});

test('the mirror comes from the host apt sources, deb822 or one-line', (t) => {
  const deb822 = aptMirrors([{ name: '/etc/apt/sources.list.d/debian.sources', text: 'Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm\n\nTypes: deb\nURIs: http://mirror.invalid/debian-security\n' }]);
  t.deepEqual(deb822, { mirror: 'http://mirror.invalid/debian', security: 'http://mirror.invalid/debian-security' });
  const oneLine = aptMirrors([{ name: '/etc/apt/sources.list', text: '# deb http://commented.invalid/x\ndeb [arch=amd64] https://m.invalid/debian bookworm main\n' }]);
  t.deepEqual(oneLine, { mirror: 'https://m.invalid/debian', security: null });
});

test('the package proxy listens on the bridge address, allows the subnet only and forwards to the mirrors only', (t) => {
  const { conf, filter } = proxyConfig({ lxcPath: '/x/lxc', bridge: 'b0', prefix: '10.9.8', proxyPort: 8899, mirror: null }, '/x/net/b0', ['mirror.invalid']);
  t.regex(conf, /^Listen 10\.9\.8\.1$/m);
  t.regex(conf, /^Allow 10\.9\.8\.0\/24$/m);
  t.is(conf.match(/^Allow /gm)?.length, 1);
  t.regex(conf, /^FilterDefaultDeny Yes$/m);
  t.is(filter, '^mirror\\.invalid$\n');
});

test('local: a balancer pair\'s virtual address is one nodeset\'s on a bridge: another nodeset naming it is refused while the first has nodes there; the claim moves with the nodeset and goes with its last node', async (t) => {
  const { claimAddress, releaseClaims } = await import('../../providers/local/address-claims.js');
  const { mkdtempSync, rmSync, readFileSync, existsSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const lxc = mkdtempSync(join(tmpdir(), 'silver-claims-'));
  t.teardown(() => rmSync(lxc, { recursive: true, force: true }));
  claimAddress(lxc, 'silverbr0', 'shop', '10.213.0.5', new Set());
  t.is(readFileSync(join(lxc, '.claims', 'silverbr0', '10.213.0.5'), 'utf8'), 'shop\n');
  claimAddress(lxc, 'silverbr0', 'shop', '10.213.0.5', new Set(['shop']));
  t.throws(() => claimAddress(lxc, 'silverbr0', 'blog', '10.213.0.5', new Set(['shop'])), { message: /virtual_address 10\.213\.0\.5 is nodeset shop's on bridge silverbr0: choose another address/ });
  claimAddress(lxc, 'silverbr1', 'blog', '10.213.0.5', new Set(['shop']));
  t.true(existsSync(join(lxc, '.claims', 'silverbr1', '10.213.0.5')), 'another bridge is another segment');
  // (shop's containers gone without a release — deleted by hand: the claim is stale)
  claimAddress(lxc, 'silverbr0', 'blog', '10.213.0.5', new Set(['blog']));
  t.is(readFileSync(join(lxc, '.claims', 'silverbr0', '10.213.0.5'), 'utf8'), 'blog\n');
  // A nodeset that moved its address gives up the old one.
  claimAddress(lxc, 'silverbr0', 'blog', '10.213.0.6', new Set(['blog']));
  t.false(existsSync(join(lxc, '.claims', 'silverbr0', '10.213.0.5')));
  claimAddress(lxc, 'silverbr0', 'shop', '10.213.0.5', new Set(['blog', 'shop']));
  releaseClaims(lxc, 'silverbr0', 'blog');
  t.false(existsSync(join(lxc, '.claims', 'silverbr0', '10.213.0.6')));
  t.true(existsSync(join(lxc, '.claims', 'silverbr0', '10.213.0.5')), "another nodeset's claim stays");
});

test('the golden image: a template run that left packages out (a failed download) is removed and run once more; twice is an error naming them', async (t) => {
  const said: string[] = [];
  let removed = 0;
  const answers = [['postgresql', 'dehydrated'], []];
  await templateWithRetry(async () => answers.shift()!, async () => void removed++, (m) => said.push(m));
  t.is(removed, 1, 'the half-made container removed before the second run');
  t.deepEqual(said, ['local: the golden image lacks postgresql dehydrated after lxc-create: building it once more']);
  t.deepEqual(answers, [], 'run twice');
  await t.throwsAsync(templateWithRetry(async () => ['postgresql'], async () => undefined, () => undefined), { message: 'local: the golden image lacks postgresql after lxc-create (2 attempts)' });
  let once = 0;
  await templateWithRetry(async () => (once++, []), async () => t.fail('nothing to remove'), () => t.fail('nothing to say'));
  t.is(once, 1);
});
