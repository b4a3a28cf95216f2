import test from 'ava';
import { memoryHost } from '../../src/config/host.js';
import { ConfigError, formatDiagnostic } from '../../src/diagnostics.js';
import { loadNodeset } from '../../src/nodeset/resolve.js';
import { DEFAULT_ACME_DIRECTORY, formatSize } from '../../src/nodeset/types.js';

const F = '/t/set.conf';
const base = '[general]\nname = shop\nbase_domain = shop.com\n';

function load(text: string, files: Record<string, string> = {}, env: Record<string, string> = {}) {
  return loadNodeset(F, memoryHost({ [F]: text, ...files }, env));
}

function errors(text: string, files: Record<string, string> = {}, env: Record<string, string> = {}): string[] {
  try {
    load(text, files, env);
  } catch (e) {
    if (e instanceof ConfigError) return e.diagnostics.map(formatDiagnostic);
    throw e;
  }
  throw new Error('expected a ConfigError');
}

test('the design notes nodeset resolves to every node it implies', (t) => {
  const ns = load(`${base}
[appserver]
locations =
    http://shop.com/ blog
    http://shop.com/wiki wiki
nodes = 3
size = ram 1GB
node_name = app{{n}}.\${general:base_domain}
[service:mysql]
[balancer]
node_name = lb.shop.com
hostnames =
    shop.com
    baz.com
`);
  t.deepEqual(ns.nodes.map((n) => [n.name, n.role, n.index, formatSize(n.size)]), [
    ['app1.shop.com', 'appserver', 1, 'ram 1024MB'],
    ['app2.shop.com', 'appserver', 2, 'ram 1024MB'],
    ['app3.shop.com', 'appserver', 3, 'ram 1024MB'],
    ['mysql.shop.com', 'service:mysql', 1, null],
    ['lb.shop.com', 'balancer', 1, null],
  ]);
  t.deepEqual(ns.locations.map((l) => [l.url, l.app]), [
    ['http://shop.com/', 'blog'],
    ['http://shop.com/wiki/', 'wiki'],
  ]);
  t.deepEqual(ns.hostnames, ['shop.com', 'baz.com']);
  t.true(ns.loadBalancer);
  t.true(ns.setEtcHosts);
  t.is(ns.provider.type, 'local');
});

test('names derive from base_domain: app{{n}} always, a single service or balancer without index', (t) => {
  const ns = load(`${base}[appserver]\n[service:postgresql]\nnodes = 2\n[service:mysql]\n[balancer]\n`);
  t.deepEqual(ns.nodes.map((n) => n.name), ['app1.shop.com', 'postgresql1.shop.com', 'postgresql2.shop.com', 'mysql.shop.com', 'balancer.shop.com']);
});

test('load_balancer: off for one app server, on for several, implied balancer answers for the locations\' hosts', (t) => {
  const one = load(`${base}[appserver]\nlocations = http://a.shop.com/ x\n`);
  t.false(one.loadBalancer);
  t.false(one.nodes.some((n) => n.role === 'balancer'));
  const two = load(`${base}[appserver]\nnodes = 2\nlocations = http://a.shop.com/ x\n`);
  t.true(two.loadBalancer);
  t.deepEqual(two.nodes.filter((n) => n.role === 'balancer').map((n) => n.name), ['balancer.shop.com']);
  t.deepEqual(two.hostnames, ['a.shop.com']);
  const explicitOff = load(`${base}[appserver]\nnodes = 2\nload_balancer = false\n`);
  t.false(explicitOff.loadBalancer);
  t.is(explicitOff.nodes.length, 2);
  const withSection = load(`${base}[appserver]\n[balancer]\n`);
  t.true(withSection.loadBalancer);
});

test('sizes: ram in MB or GB, plain numbers are MB, id names a flavor, provider size is the default', (t) => {
  const ns = load(`${base}[provider]\nprovider = local\nsize = ram 2GB\n[appserver]\nsize = ram 512\n[service:mysql]\nsize = id m1.small\n[service:postgresql]\n`);
  t.deepEqual(ns.nodes.map((n) => formatSize(n.size)), ['ram 512MB', 'id m1.small', 'ram 2048MB']);
});

test('{{n}} works in size too, and nodes = 0 turns a tier off', (t) => {
  const ns = load(`${base}[appserver]\nnodes = 2\nload_balancer = false\nsize = ram {{n}}GB\n[service:mysql]\nnodes = 0\n`);
  t.deepEqual(ns.nodes.map((n) => formatSize(n.size)), ['ram 1024MB', 'ram 2048MB']);
});

test('provider from ~/.silverlining.conf, inline keys win, secret_file read and redacted', (t) => {
  const ns = load(
    `${base}[provider]\nname = rs\nregion = ORD\n[appserver]\n`,
    {
      '/home/user/.silverlining.conf': '[provider:rs]\nprovider = rackspace\nusername = bob\nregion = DFW\nsecret_file = ~/.rs-secret\n',
      '/home/user/.rs-secret': 'hunter2\n',
    },
  );
  t.is(ns.provider.type, 'rackspace');
  t.is(ns.provider.name, 'rs');
  t.is(ns.provider.settings['region'], 'ORD');
  t.is(ns.provider.settings['username'], 'bob');
  const secret = ns.provider.settings['secret'];
  t.is(typeof secret === 'object' ? secret.reveal() : secret, 'hunter2');
  t.false(JSON.stringify(ns).includes('hunter2'));
  t.false(`${String(secret)}`.includes('hunter2'));
});

test('$SILVERLINING_CONFIG points at another user config', (t) => {
  const ns = load(`${base}[provider]\nname = k\n[appserver]\n`, { '/etc/silver.conf': '[provider:k]\nprovider = kvm\nuri = qemu:///system\n' }, { SILVERLINING_CONFIG: '/etc/silver.conf' });
  t.is(ns.provider.type, 'kvm');
  t.is(ns.provider.settings['uri'], 'qemu:///system');
});

test('a [vars] section holds free variables for interpolation', (t) => {
  const ns = load(`${base}[vars]\ncount = 2\n[appserver]\nnodes = \${vars:count}\nload_balancer = no\n`);
  t.is(ns.nodes.length, 2);
});

// Every malformed input of SPEC §1: one located line each, `FILE:LINE: key: what is wrong`.
const cases: [string, string, Record<string, string>, RegExp][] = [
  ['undefined variable', `${base}[appserver]\nnode_name = \${NOT_SET_ANYWHERE}{{n}}.x.com\n`, {}, /^\/t\/set\.conf:5: node_name: \$\{NOT_SET_ANYWHERE\}: environment variable NOT_SET_ANYWHERE is not set$/],
  ['undefined key', `${base}[appserver]\nnode_name = app{{n}}.\${general:domain}\n`, {}, /^\/t\/set\.conf:5: node_name: \$\{general:domain\}: no key domain in \[general\]$/],
  ['reference to an unknown section', `${base}[appserver]\nsize = \${sizes:app}\n`, {}, /^\/t\/set\.conf:5: size: \$\{sizes:app\}: no section \[sizes\]$/],
  ['cycle', `${base}[appserver]\nnodes = \${balancer:size}\n[balancer]\nsize = \${appserver:nodes}\n`, {}, /^\/t\/set\.conf:5: nodes: interpolation cycle: \[appserver\] nodes -> \[balancer\] size -> \[appserver\] nodes$/],
  ['unknown section', `${base}[appservers]\n`, {}, /^\/t\/set\.conf:4: \[appservers\]: unknown section/],
  ['unknown key', `${base}[appserver]\nnode = 3\n`, {}, /^\/t\/set\.conf:5: node: unknown key in \[appserver\]/],
  ['non-numeric nodes', `${base}[appserver]\nnodes = three\n`, {}, /^\/t\/set\.conf:5: nodes: must be a whole number, got "three"$/],
  ['negative nodes', `${base}[appserver]\nnodes = -2\n`, {}, /^\/t\/set\.conf:5: nodes: must not be negative, got -2$/],
  ['bad size', `${base}[appserver]\nsize = 256MB\n`, {}, /^\/t\/set\.conf:5: size: must be "ram <N>MB", "ram <N>GB" or "id <flavor>", got "256MB"$/],
  ['bad size unit', `${base}[appserver]\nsize = ram 2TB\n`, {}, /^\/t\/set\.conf:5: size: unknown unit "TB"/],
  ['duplicate node names', `${base}[appserver]\nnodes = 2\nnode_name = app.shop.com\n`, {}, /^\/t\/set\.conf:6: node_name: duplicate node name app\.shop\.com/],
  ['duplicate names across tiers', `${base}[appserver]\nnode_name = db.shop.com\n[service:postgresql]\nnode_name = db.shop.com\n`, {}, /^\/t\/set\.conf:7: node_name: duplicate node name db\.shop\.com \(service:postgresql 1 and appserver 1/],
  ['invalid node hostname', `${base}[appserver]\nnode_name = app_{{n}}.shop.com\n`, {}, /^\/t\/set\.conf:5: node_name: node 1: "app_1\.shop\.com" is not a valid host name$/],
  ['invalid balancer hostname', `${base}[appserver]\n[balancer]\nhostnames =\n    good.com\n    -bad.com\n`, {}, /^\/t\/set\.conf:8: hostnames: "-bad\.com" is not a valid host name$/],
  ['invalid base_domain', `[general]\nname = x\nbase_domain = foo..com\n[appserver]\n`, {}, /^\/t\/set\.conf:3: base_domain: "foo\.\.com" is not a valid host name$/],
  ['continuation line with no key', `${base}[appserver]\n   http://shop.test/ blog\n`, {}, /^\/t\/set\.conf:5: \(continuation\): continuation line with no key/],
  ['missing extends file', `[general]\nextends = ../base/common.conf\nname = x\n[appserver]\nnode_name = a.b.com\n`, {}, /^\/t\/set\.conf:2: extends: \.\.\/base\/common\.conf: no such file/],
  ['missing secret_file', `${base}[provider]\nprovider = rackspace\nsecret_file = \${HOME}/.nope\n[appserver]\n`, {}, /^\/t\/set\.conf:6: secret_file: cannot read \/home\/user\/\.nope$/],
  ['unknown provider', `${base}[provider]\nprovider = azure\n[appserver]\n`, {}, /^\/t\/set\.conf:5: provider: unknown provider "azure"/],
  ['unknown provider key', `${base}[provider]\nprovider = local\nflavour = big\n[appserver]\n`, {}, /^\/t\/set\.conf:6: flavour: unknown key for provider local/],
  ['named provider missing from the user config', `${base}[provider]\nname = nope\n[appserver]\n`, { '/home/user/.silverlining.conf': '[provider:other]\nprovider = local\n' }, /^\/t\/set\.conf:5: name: no \[provider:nope\] section in \/home\/user\/\.silverlining\.conf$/],
  ['bad boolean', `${base}set_etc_hosts = maybe\n[appserver]\n`, {}, /^\/t\/set\.conf:4: set_etc_hosts: must be true or false, got "maybe"$/],
  ['bad location', `${base}[appserver]\nlocations = ftp://shop.com/ blog\n`, {}, /^\/t\/set\.conf:5: locations: "ftp:\/\/shop\.com\/" must start with http/],
  ['location without app', `${base}[appserver]\nlocations =\n    http://shop.com/\n`, {}, /^\/t\/set\.conf:6: locations: expected "URL APP_NAME"/],
  ['duplicate location', `${base}[appserver]\nlocations =\n    http://shop.test/ a\n    http://shop.test ab\n`, {}, /^\/t\/set\.conf:7: locations: http:\/\/shop\.test\/: host shop\.test and path \/ are already mapped on line 6 \(a scheme or a port does not tell locations apart/],
  ['locations apart only by scheme', `${base}[appserver]\nlocations =\n    http://shop.test/ a\n    https://shop.test/ b\n`, {}, /^\/t\/set\.conf:7: locations: https:\/\/shop\.test\/: host shop\.test and path \/ are already mapped on line 6/],
  ['locations apart only by port', `${base}[appserver]\nlocations =\n    http://shop.test/x/ a\n    http://shop.test:8080/x b\n`, {}, /^\/t\/set\.conf:7: locations: http:\/\/shop\.test:8080\/x\/: host shop\.test and path \/x\/ are already mapped on line 6/],
  ['port 0', `${base}[appserver]\nlocations = http://shop.test:0/ a\n`, {}, /^\/t\/set\.conf:5: locations: "http:\/\/shop\.test:0\/": port 0 is no port/],
  ['missing name', `[general]\nbase_domain = x.com\n[appserver]\n`, {}, /^\/t\/set\.conf:1: name: \[general\] name is required$/],
  ['{{n}} outside a tier', `[general]\nname = x{{n}}\nbase_domain = x.com\n[appserver]\n`, {}, /^\/t\/set\.conf:2: name: \{\{n\}\} is only defined/],
  ['unknown placeholder', `${base}[appserver]\nnode_name = app{{i}}.x.com\n`, {}, /^\/t\/set\.conf:5: node_name: unknown placeholder \{\{i\}\}/],
  ['no base_domain to derive names', `[general]\nname = x\n[appserver]\n`, {}, /^\/t\/set\.conf:3: node_name: \[appserver\] needs node_name, or base_domain/],
  ['location path with a quote', `${base}[appserver]\nlocations = http://shop.com/a'b/ blog\n`, {}, /^\/t\/set\.conf:5: locations: the path of "http:\/\/shop\.com\/a'b\/" may hold only/],
  ['location path with ; and $(', `${base}[appserver]\nlocations = http://shop.com/x;$(id)/ blog\n`, {}, /^\/t\/set\.conf:5: locations: the path of .* may hold only/],
  ['location without a host', `${base}[appserver]\nlocations = http:///blog/ blog\n`, {}, /^\/t\/set\.conf:5: locations: /],
  ['reserved app name', `${base}[appserver]\nlocations = http://shop.com/ postgres\n`, {}, /^\/t\/set\.conf:5: locations: app name "postgres" is reserved/],
  ['two apps, one database name', `${base}[appserver]\nlocations =\n    http://shop.com/ a-b\n    http://shop.com/x/ a_b\n`, {}, /^\/t\/set\.conf:7: locations: apps "a-b" and "a_b" would share one database name \(a_b\)$/],
  ['bad local bridge', `${base}[provider]\nprovider = local\nbridge = br;rm\n[appserver]\n`, {}, /^\/t\/set\.conf:6: bridge: must be an interface name/],
  ['bad local subnet', `${base}[provider]\nprovider = local\nsubnet = 8.8.8.0/24\n[appserver]\n`, {}, /^\/t\/set\.conf:6: subnet: subnet 8\.8\.8\.0\/24 is not a private range/],
  ['bad lxc_path', `${base}[provider]\nprovider = local\nlxc_path = ../x\n[appserver]\n`, {}, /^\/t\/set\.conf:6: lxc_path: must be an absolute path/],
  ['image with ..', `${base}[appserver]\nimage = silver-image-x/../../etc\n`, {}, /^\/t\/set\.conf:5: image: "silver-image-x\/\.\.\/\.\.\/etc" is not an image name$/],
  ['mirror without a scheme', `${base}[provider]\nprovider = local\nmirror = deb.mirror.test/debian\n[appserver]\n`, {}, /^\/t\/set\.conf:6: mirror: must be an http or https URL of a Debian mirror \(scheme, host and path\), got "deb\.mirror\.test\/debian"$/],
  ['mirror of another scheme', `${base}[provider]\nprovider = local\nmirror = ftp://deb.mirror.test/debian\n[appserver]\n`, {}, /^\/t\/set\.conf:6: mirror: must be an http or https URL/],
  ['more nodes than the local subnet holds', `${base}[appserver]\nnodes = 300\n`, {}, /^\/t\/set\.conf:4: \[appserver\]: the nodeset has 301 nodes; the local provider's \/24 holds 241$/],
  ['balancer with load_balancer = false', `${base}[appserver]\nload_balancer = false\n[balancer]\n`, {}, /^\/t\/set\.conf:5: load_balancer: is false but the nodeset has a \[balancer\] section$/],
];

for (const [name, text, files, expected] of cases) {
  test(`bad input is a located error: ${name}`, (t) => {
    const lines = errors(text, files);
    t.true(lines.some((l) => expected.test(l)), `got:\n${lines.join('\n')}`);
  });
}

test('a UTF-8 byte order mark at the start of a nodeset is not an error', (t) => {
  t.is(load(`\uFEFF${base}[appserver]\n`).name, 'shop');
});

test('every error of a file is reported at once', (t) => {
  const lines = errors(`${base}colour = red\n[appserver]\nnodes = x\nsize = big\n[service:redis]\n`);
  t.is(lines.length, 4, lines.join('\n'));
  t.deepEqual(lines.map((l) => Number(l.split(':')[1])), [4, 6, 7, 8]);
});

test('an error in an extended file names that file', (t) => {
  const lines = errors('[general]\nextends = base.conf\n[appserver]\n', { '/t/base.conf': '[general]\nname = x\nbase_domain = x.com\nnodez = 2\n' });
  t.true(lines.some((l) => /^\/t\/base\.conf:4: nodez: unknown key in \[general\]/.test(l)), lines.join('\n'));
});

test('tls = acme | FILE on the balancer: ACME settings (Let\'s Encrypt by default) or a PEM kept as a secret, hsts, for every host name; checked and located', (t) => {
  const apps = `${base}[appserver]\nnodes = 2\nlocations =\n    https://shop.com/ blog\n    http://plain.com/ blog\n`;
  const ns = load(`${apps}[balancer]\ntls = acme\nhsts = 300\nacme_email = ops@shop.com\nacme_ca_bundle = ca.pem\n`, { '/t/ca.pem': '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n' });
  t.deepEqual(ns.tls, { mode: 'acme', hosts: ['shop.com', 'plain.com'], hsts: 300, acme: { directory: DEFAULT_ACME_DIRECTORY, email: 'ops@shop.com', ca: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n' }, pem: null });
  const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nsecretkeybody\n-----END PRIVATE KEY-----\n';
  const given = load(`${apps}[balancer]\ntls = site.pem\n`, { '/t/site.pem': pem });
  t.is(given.tls?.mode, 'file');
  t.is(given.tls?.pem?.reveal(), pem);
  t.false(JSON.stringify(given).includes('secretkeybody'), 'the key never prints');
  t.is(load(`${base}[appserver]\nlocations = http://shop.com/ blog\n`).tls, undefined);
  t.deepEqual(errors(`${apps}[balancer]\ntls = acme\nacme_directory = http://insecure/dir\nacme_email = nope\nacme_ca_bundle = missing.pem\nhsts = -1\n`), [
    '/t/set.conf:11: acme_directory: "http://insecure/dir" must be an https:// URL of an ACME directory',
    '/t/set.conf:12: acme_email: "nope" is not an e-mail address',
    '/t/set.conf:13: acme_ca_bundle: cannot read missing.pem',
    '/t/set.conf:14: hsts: must be a whole number of seconds from 0 to 63072000, got "-1"',
  ]);
  t.deepEqual(errors(`${apps}[balancer]\n`), ['/t/set.conf:6: locations: https://shop.com/ needs HTTPS on the balancer: tls = acme (or tls = FILE) in [balancer]']);
  t.deepEqual(errors(`${apps}[balancer]\ntls = nothere.pem\n`), ['/t/set.conf:10: tls: must be acme, off, or a PEM file with the chain and the key: cannot read nothere.pem']);
  t.deepEqual(errors(`${base}[appserver]\nlocations = http://shop.com/ blog\n[balancer]\nacme_email = ops@shop.com\n`), ['/t/set.conf:7: acme_email: is only meaningful with tls = acme']);
  // A wildcard host name and tls = acme: HTTP-01 gives it no certificate (the balancer's client
  // would refuse its configuration on every run): refused at plan, nothing created.
  t.deepEqual(errors(`${apps}[balancer]\nhostnames = shop.com *.shop.com plain.com\ntls = acme\n`), ['/t/set.conf:11: tls: acme cannot get a certificate for *.shop.com (a wildcard needs a DNS challenge): name the hosts, or use tls = FILE']);
});

test('a balancer pair: nodes = 2 with virtual_address in the local subnet, outside the nodes\' range; anything else is a located error', (t) => {
  const apps = `${base}[provider]\nprovider = local\nsubnet = 10.213.9.0/24\n[appserver]\nnodes = 2\nlocations = http://shop.com/ blog\n`;
  const ns = load(`${apps}[balancer]\nnodes = 2\nvirtual_address = 10.213.9.5\n`);
  t.is(ns.virtualAddress, '10.213.9.5');
  t.deepEqual(ns.nodes.filter((n) => n.role === 'balancer').map((n) => n.name), ['balancer1.shop.com', 'balancer2.shop.com']);
  t.is(load(`${apps}[balancer]\n`).virtualAddress, undefined);
  t.deepEqual(errors(`${apps}[balancer]\nnodes = 2\n`), ['/t/set.conf:11: nodes: a balancer pair needs virtual_address = ADDRESS (the address both hold in turn)']);
  t.deepEqual(errors(`${apps}[balancer]\nnodes = 2\nvirtual_address = 10.213.9.20\n`), ['/t/set.conf:12: virtual_address: 10.213.9.20 must be in the local subnet 10.213.9.0/24, outside the range it gives nodes (.10-.250) and not the host\'s .1: 10.213.9.2-.9 or .251-.254']);
  t.deepEqual(errors(`${apps}[balancer]\nnodes = 3\n`), ['/t/set.conf:11: nodes: a balancer tier has 1 node or a pair of 2']);
  t.deepEqual(errors(`${apps}[balancer]\nvirtual_address = 10.213.9.5\n`), ['/t/set.conf:11: virtual_address: is only meaningful with nodes = 2']);
  // tls = acme with a pair: each balancer its own ACME client (the validation forwarded to the
  // peer when the holder has no answer); the pair's own checks still apply with it.
  const acme = load(`${apps}[balancer]\nnodes = 2\nvirtual_address = 10.213.9.5\ntls = acme\n`);
  t.is(acme.tls?.mode, 'acme');
  t.is(acme.virtualAddress, '10.213.9.5');
  t.is(acme.nodes.filter((n) => n.role === 'balancer').length, 2);
  t.deepEqual(errors(`${apps}[balancer]\nnodes = 2\ntls = acme\n`), ['/t/set.conf:11: nodes: a balancer pair needs virtual_address = ADDRESS (the address both hold in turn)']);
  t.deepEqual(errors(`${apps}[balancer]\nnodes = 2\nvirtual_address = 10.213.9.20\ntls = acme\n`), ['/t/set.conf:12: virtual_address: 10.213.9.20 must be in the local subnet 10.213.9.0/24, outside the range it gives nodes (.10-.250) and not the host\'s .1: 10.213.9.2-.9 or .251-.254']);
  t.deepEqual(errors(`${apps}[balancer]\nnodes = 3\ntls = acme\n`), ['/t/set.conf:11: nodes: a balancer tier has 1 node or a pair of 2']);
  t.deepEqual(errors(`${apps}[balancer]\nnodes = 2\nvirtual_address = 10.213.9.5\ntls = acme\nacme_directory = http://insecure.test/dir\n`), ['/t/set.conf:14: acme_directory: "http://insecure.test/dir" must be an https:// URL of an ACME directory']);
  t.is(load(`${apps}[balancer]\nnodes = 2\nvirtual_address = 10.213.9.5\ntls = pair.pem\n`, { '/t/pair.pem': '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nk\n-----END PRIVATE KEY-----\n' }).tls?.mode, 'file', 'tls = FILE with a pair still works');
});

test('extends: a staging file may replace a whole section (inherit = false), and a [provider] naming another provider replaces the inherited one', (t) => {
  const prod = `${base}[provider]\nprovider = rackspace\nusername = bob\nregion = DFW\n[appserver]\nnodes = 3\nsize = ram 1GB\nlocations = http://shop.test/ blog\n`;
  const files = { '/t/prod.conf': prod };
  // Before: the inherited rackspace keys were unknown keys for the local provider.
  const staging = load('[general]\nextends = prod.conf\nname = shop-staging\n[provider]\nprovider = local\n', files);
  t.is(staging.provider.type, 'local');
  t.is(staging.nodes.filter((n) => n.role === 'appserver').length, 3, 'other sections still merge key by key');
  const small = load('[general]\nextends = prod.conf\n[appserver]\ninherit = false\nlocations = http://shop.test/ blog\n[provider]\nprovider = local\n', files);
  t.deepEqual(small.nodes.filter((n) => n.role === 'appserver').map((n) => n.name), ['app1.shop.com'], 'nodes and size are not inherited');
  t.is(load('[general]\nextends = prod.conf\n[provider]\nprovider = rackspace\nregion = ORD\nsecret = x\n', files).provider.settings['username'], 'bob', 'the same provider merges');
  t.deepEqual(errors('[general]\nextends = prod.conf\n[appserver]\ninherit = maybe\n', files), ['/t/set.conf:4: inherit: must be true or false (false: this section replaces the inherited one whole), not "maybe"']);
});

const ANN = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMNnKzeC4M3adUFEj9YU9NqiwVEEwfTVezDQV6bIxRWi ann@laptop';
const BOB = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH41KDNr81I70bEItdX0o303sSf2St6/SMse1ef0KJtz bob';

test('[access]: deployers and admins are public key files, read relative to the nodeset; anything else is located', (t) => {
  const text = `${base}[appserver]\n[access]\ndeployers = keys/ann.pub keys/team.pub\nadmins = /etc/silver/bob.pub\n`;
  const files = { '/t/keys/ann.pub': `${ANN}\n`, '/t/keys/team.pub': `# the team\n${ANN}\n${BOB}\n`, '/etc/silver/bob.pub': BOB };
  const ns = load(text, files);
  t.deepEqual(ns.access, { deployers: [ANN, BOB], admins: [BOB] }, 'one line a key, duplicates once');
  t.is(load(`${base}[appserver]\n`).access, undefined);
  t.deepEqual(errors(`${base}[appserver]\n[access]\ndeployers = none.pub\nadmins = priv\n`, { '/t/priv': '-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n' }), [
    '/t/set.conf:6: deployers: cannot read none.pub',
    '/t/set.conf:7: admins: priv is a private key: name the .pub file',
  ]);
  const bad = errors(`${base}[appserver]\n[access]\ndeployers = k.pub\n`, { '/t/k.pub': `command="id" ${ANN}\n` });
  t.regex(bad[0]!, /^\/t\/set\.conf:6: deployers: k\.pub: not an SSH public key/);
  const forged = errors(`${base}[appserver]\n[access]\ndeployers = k.pub\n`, { '/t/k.pub': 'ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQ\n' });
  t.regex(forged[0]!, /the key's data is not a ssh-ed25519 key/);
  t.deepEqual(errors(`${base}[appserver]\n[access]\nusers = k.pub\n`), ['/t/set.conf:6: users: unknown key in [access] (known: deployers, admins)']);
});

test('[appserver] rollout: the activation batches; absent, one app server at a time', (t) => {
  const ns = load(`${base}[appserver]\nnodes = 8\nrollout = 1, 25%\n`);
  t.deepEqual(ns.rollout, [{ count: 1 }, { percent: 25 }]);
  t.is(load(`${base}[appserver]\nnodes = 8\n`).rollout, undefined);
  t.deepEqual(load(`${base}[vars]\nfirst = 2\n[appserver]\nrollout = \${vars:first} 50%\n`).rollout, [{ count: 2 }, { percent: 50 }]);
});

for (const bad of ['0', '0%', '150%', 'abc', '-1', '', '1,,25%']) {
  test(`[appserver] rollout = "${bad}" is a located error`, (t) => {
    const lines = errors(`${base}[appserver]\nnodes = 4\nrollout = ${bad}\n`);
    t.is(lines.length, 1, lines.join('\n'));
    t.regex(lines[0]!, /^\/t\/set\.conf:6: rollout: (entry "|is empty|has an empty entry)/);
  });
}

test('careless names and paths: an app name that ends in - or holds -- (systemd refuses its slice), longer than 28 (app-NAME past useradd\'s 32), a reserved role; a %-escape in a location path (nginx and HAProxy would disagree)', (t) => {
  const at = (loc: string) => errors(`${base}[appserver]\nlocations = ${loc}\n`);
  for (const name of ['blog-', 'my--app', 'a'.repeat(29), 'none', 'current_user']) t.true(at(`http://shop.test/ ${name}`).some((e) => /set\.conf:5: locations: .*app name/.test(e)), name);
  t.is(load(`${base}[appserver]\nlocations = http://shop.test/ ${'a'.repeat(28)}\n`).locations[0]!.app, 'a'.repeat(28));
  t.is(load(`${base}[appserver]\nlocations = http://shop.test/ my-blog_2\n`).locations[0]!.app, 'my-blog_2');
  for (const path of ['/%62log/', '/a%20b/', '/caf%C3%A9/']) t.true(at(`http://shop.test${path} blog`).some((e) => /may hold only letters, digits and \. _ ~ \/ - \(.*no %-escapes\)/.test(e)), path);
  t.true(at('http://shop.test/{x}/ blog').some((e) => /no %-escapes/.test(e)), 'braces, which the URL parser escapes');
});

test('hostnames must cover every location\'s host (else it answers 404 for ever and gets no certificate); a wildcard covers one level down', (t) => {
  const text = (hostnames: string) => `${base}[appserver]\nlocations =\n  http://www.site.test/ site\n  http://shop.site.test/ shop\n[balancer]\nhostnames = ${hostnames}\n`;
  t.deepEqual(errors(text('api.site.test www.site.test')), ['/t/set.conf:9: hostnames: shop.site.test (the host of a location) is not among them: the balancer would answer it 404']);
  t.deepEqual(load(text('*.site.test api.site.test')).hostnames, ['*.site.test', 'api.site.test']);
  t.deepEqual(errors(text('*.shop.site.test www.site.test')), ['/t/set.conf:9: hostnames: shop.site.test (the host of a location) is not among them: the balancer would answer it 404']);
});
