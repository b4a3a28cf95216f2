import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { memoryHost } from '../../src/config/host.js';
import { modesSummary, parseCidr, restoreEntries, sanitizeModes } from '../../src/deploy/modes.js';
import { layersRoot } from '../../src/layers.js';
import { loadNodeset } from '../../src/nodeset/resolve.js';
import { layerVars, type AddressedNode } from '../../src/setup/plan.js';

// What setup-node hands the layers for the maintenance modes and the app servers' firewall.

const nodes: AddressedNode[] = [
  { name: 'app1.foobar.com', role: 'appserver', address: '10.4.3.2' },
  { name: 'app2.foobar.com', role: 'appserver', address: '10.4.3.3' },
  { name: 'db.foobar.com', role: 'service:postgresql', address: '10.4.3.5' },
  { name: 'balancer.foobar.com', role: 'balancer', address: '10.4.3.6' },
];
const withBalancer = loadNodeset('/n/f.conf', memoryHost({ '/n/f.conf': '[general]\nname = f\nbase_domain = foobar.com\n[appserver]\nnodes = 2\nlocations =\n    http://foobar.com/ blog\n    http://foobar.com/wiki/ wiki\n[service:postgresql]\nnode_name = db.foobar.com\n[balancer]\n' }));
const single = loadNodeset('/n/s.conf', memoryHost({ '/n/s.conf': '[general]\nname = s\nbase_domain = foobar.com\n[appserver]\nlocations = http://foobar.com/ blog\n' }));
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

test('the balancer layer gets the nodeset\'s modes as silver-balancer mode restore takes them, with a summary; other layers get none', (t) => {
  const modes = { modes: { wiki: { mode: 'read-only' as const, retryAfter: 10, message: 'ro' }, '*': { mode: 'maintenance' as const, retryAfter: 30, message: 'Back soon, é' } }, allow: ['10.213.248.1/32', '10.0.0.0/8'] };
  const v = layerVars(withBalancer, nodes[3]!, nodes, 'balancer', 'k', false, new Map(), modes);
  t.is(v['SILVER_MODES'], `*:maintenance:30:${b64('Back soon, é')} wiki:read-only:10:${b64('ro')}`);
  t.deepEqual(v['SILVER_MODES']!.split(' '), restoreEntries(modes));
  t.is(v['SILVER_ALLOW'], '10.213.248.1/32 10.0.0.0/8');
  t.is(v['SILVER_MODES_SUMMARY'], '*: maintenance, wiki: read-only');
  const none = layerVars(withBalancer, nodes[3]!, nodes, 'balancer', 'k', false);
  t.is(none['SILVER_MODES'], '');
  t.is(none['SILVER_ALLOW'], '');
  t.is(none['SILVER_MODES_SUMMARY'], 'no mode');
  t.false('SILVER_MODES' in layerVars(withBalancer, nodes[0]!, nodes, 'appserver', 'k', false, new Map(), modes));
  t.is(modesSummary({ modes: {}, allow: ['10.0.0.0/8'] }), 'no mode');
});

test('the firewall variables: whether the nodeset has a balancer, and every node\'s address', (t) => {
  const v = layerVars(withBalancer, nodes[0]!, nodes, 'base', 'k', false);
  t.is(v['SILVER_BALANCED'], '1');
  t.is(v['SILVER_NODE_ADDRS'], '10.4.3.2 10.4.3.3 10.4.3.5 10.4.3.6');
  const one: AddressedNode[] = [{ name: 'app1.foobar.com', role: 'appserver', address: '10.4.3.2' }];
  t.is(layerVars(single, one[0]!, one, 'base', 'k', false)['SILVER_BALANCED'], '0');
});

/** The nftables.conf the base layer writes for these variables (its firewall part, run in sh). */
function nftablesConf(vars: Record<string, string>): string {
  const text = readFileSync(join(layersRoot(), 'base/setup.sh'), 'utf8');
  const start = text.indexOf('_split_addrs() {');
  const end = text.indexOf('\nEOT\n', start);
  if (start < 0 || end < 0) throw new Error('base/setup.sh: no firewall part found');
  const part = text.slice(start, end + 5).replace('ensure_file /etc/nftables.conf 755 root:root <<EOT', 'cat <<EOT');
  const assignments = Object.entries(vars).map(([k, v]) => `${k}='${v}'`).join('\n');
  return execFileSync('sh', ['-euc', `NL='\n'\n${assignments}\n${part}`]).toString();
}

const fw = (role: string, balanced: string, addrs = '10.4.3.2 10.4.3.3 10.4.3.5 10.4.3.6', peer = '') =>
  nftablesConf({ SILVER_ROLE: role, SILVER_BALANCED: balanced, SILVER_NODE_ADDRS: addrs, SILVER_APPSERVER_ADDRS: '10.4.3.2 10.4.3.3', SILVER_SERVICE_PORT: '5432', SILVER_VRRP_PEER: peer });

test('behind a balancer an app server\'s port 80 accepts only the nodeset\'s nodes; without one, everyone; other roles as before', (t) => {
  const behind = fw('appserver', '1');
  t.regex(behind, /\n\t\tip saddr \{ 10\.4\.3\.2, 10\.4\.3\.3, 10\.4\.3\.5, 10\.4\.3\.6 \} tcp dport 80 accept\n/);
  t.notRegex(behind, /\n\t\ttcp dport 80 accept/);
  t.regex(behind, /\n\t\ttcp dport 22 accept\n/);
  const mixed = fw('appserver', '1', '10.4.3.2 fd00::6');
  t.regex(mixed, /\n\t\tip saddr \{ 10\.4\.3\.2 \} tcp dport 80 accept\n\t\tip6 saddr \{ fd00::6 \} tcp dport 80 accept\n/);
  t.regex(fw('appserver', '0'), /\n\t\ttcp dport 80 accept\n/);
  t.regex(fw('balancer', '1'), /\n\t\ttcp dport \{ 80, 443 \} accept\n/);
  t.regex(fw('service:postgresql', '1'), /\n\t\tip saddr \{ 10\.4\.3\.2, 10\.4\.3\.3 \} tcp dport 5432 accept\n/);
});

test('attack: behind a balancer no app walks around it through an app server\'s own front proxy — this node\'s (loopback, its own addresses: out by lo) or another app server\'s — only root and nginx connect to port 80 there; without a balancer apps may', (t) => {
  const behind = fw('appserver', '1');
  t.regex(behind, /\n\t\toifname "lo" tcp dport 80 meta skuid != \{ root, www-data \} reject with tcp reset\n/);
  t.regex(behind, /\n\t\tip daddr \{ 10\.4\.3\.2, 10\.4\.3\.3 \} tcp dport 80 meta skuid != \{ root, www-data \} reject with tcp reset\n/);
  const v6 = nftablesConf({ SILVER_ROLE: 'appserver', SILVER_BALANCED: '1', SILVER_NODE_ADDRS: '10.4.3.2 fd00::6', SILVER_APPSERVER_ADDRS: '10.4.3.2 fd00::6', SILVER_SERVICE_PORT: '', SILVER_VRRP_PEER: '' });
  t.regex(v6, /\n\t\tip daddr \{ 10\.4\.3\.2 \} tcp dport 80 [^\n]*\n\t\tip6 daddr \{ fd00::6 \} tcp dport 80 meta skuid != \{ root, www-data \} reject with tcp reset\n/);
  t.notRegex(fw('appserver', '0'), /dport 80 meta skuid/, 'without a balancer the app servers are the site');
  t.notRegex(fw('balancer', '1'), /dport 80 meta skuid/);
});

const canNft = process.getuid?.() === 0 && existsSync('/usr/sbin/nft');
test('a balancer of a pair admits VRRP from the other balancer only, and its port 80 from anyone (the peer passes it ACME validation requests)', (t) => {
  const paired = fw('balancer', '1', undefined, '10.4.3.7');
  t.regex(paired, /\n\t\ttcp dport \{ 80, 443 \} accept\n\t\tip saddr 10\.4\.3\.7 ip protocol 112 accept\n/);
  t.notRegex(paired, /saddr [^\n]*dport[^\n]*80/, 'port 80 is limited to no address');
  t.notRegex(fw('balancer', '1'), /protocol 112/);
});

(canNft ? test : test.skip)('nft accepts the app server\'s and a paired balancer\'s rule sets (checked, not loaded)', (t) => {
  for (const conf of [fw('appserver', '1'), fw('appserver', '1', '10.4.3.2 fd00::6'), fw('balancer', '1', undefined, '10.4.3.7')]) {
    t.notThrows(() => execFileSync('nft', ['-c', '-f', '-'], { input: conf, stdio: ['pipe', 'pipe', 'pipe'] }), conf);
  }
});

test('addresses are read as Python\'s ipaddress writes them; host bits, prefixes out of range and other text are refused', (t) => {
  t.is(parseCidr('10.213.248.1'), '10.213.248.1/32');
  t.is(parseCidr('10.0.0.0/8'), '10.0.0.0/8');
  t.is(parseCidr('0.0.0.0/0'), '0.0.0.0/0');
  t.is(parseCidr('2001:DB8:0:0::/64'), '2001:db8::/64');
  t.is(parseCidr('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1/128');
  t.is(parseCidr('::ffff:1.2.3.4'), '::ffff:102:304/128');
  t.is(parseCidr('::/0'), '::/0');
  for (const bad of ['10.0.0.1/24', '10.0.0.0/33', '10.0.0.0/08', '300.1.1.1', '010.0.0.1', '10.0.0.0/8;x', 'fe80::1%eth0', '', 'localhost', '10.0.0.0/8 10.1.0.0/16', '2001:db8::1/64', '::/129', '10.0.0.0/']) {
    t.throws(() => parseCidr(bad), undefined, bad);
  }
});

test('the record from the shared state (the deploy user\'s to write) keeps only what a balancer may apply', (t) => {
  const raw = {
    seq: 4,
    modes: {
      '*': { mode: 'maintenance', retryAfter: 30, message: 'ok' },
      blog: { mode: 'read-only', retryAfter: 5, message: 'line one\nline two' },
      other: { mode: 'maintenance', retryAfter: 30, message: 'not an app of this nodeset' },
      wiki: { mode: 'off', retryAfter: 30, message: 'x' },
      'Bad key': { mode: 'maintenance', retryAfter: 30, message: 'x' },
      '*x': { mode: 'maintenance', retryAfter: 30, message: 'x' },
    },
    allow: ['10.0.0.1', '10.0.0.0/8', '10.0.0.1/24', 'x; rm -rf /', 42, '10.0.0.1/32'],
  };
  t.deepEqual(sanitizeModes(raw, ['blog', 'wiki']), {
    modes: { '*': { mode: 'maintenance', retryAfter: 30, message: 'ok' }, blog: { mode: 'read-only', retryAfter: 5, message: 'line one\nline two' } },
    allow: ['10.0.0.1/32', '10.0.0.0/8'],
  });
  for (const bad of [{ retryAfter: 0 }, { retryAfter: 86401 }, { retryAfter: 1.5 }, { retryAfter: '30' }, { message: '' }, { message: 'x'.repeat(1001) }, { message: 'a\u0000b' }, { message: 'a\u001bb' }, { message: 7 }]) {
    t.deepEqual(sanitizeModes({ modes: { blog: { mode: 'maintenance', retryAfter: 30, message: 'm', ...bad } } }, ['blog']).modes, {}, JSON.stringify(bad));
  }
  t.deepEqual(sanitizeModes(null, ['blog']), { modes: {}, allow: [] });
  t.deepEqual(sanitizeModes({ modes: 'x', allow: 'y' }, ['blog']), { modes: {}, allow: [] });
});
