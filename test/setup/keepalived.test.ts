import test from 'ava';
import { memoryHost } from '../../src/config/host.js';
import { loadNodeset } from '../../src/nodeset/resolve.js';
import { DEFAULT_ACME_DIRECTORY } from '../../src/nodeset/types.js';
import { keepalivedConf, vrrpPeer } from '../../src/setup/keepalived.js';
import { layerVars, type AddressedNode } from '../../src/setup/plan.js';
import { tlsWiring } from '../../src/setup/acme-pair.js';

// The balancer pair's keepalived configuration as silver renders it for each balancer, and with
// tls = acme each balancer's HAProxy forwarding to the other.

const ns = loadNodeset('/n/p.conf', memoryHost({ '/n/p.conf': '[general]\nname = p\nbase_domain = p.test\n[provider]\nprovider = local\nsubnet = 10.213.9.0/24\n[appserver]\nlocations = http://p.test/ a\n[balancer]\nnodes = 2\nvirtual_address = 10.213.9.5\n' }));
const nodes: AddressedNode[] = [
  { name: 'app1.p.test', role: 'appserver', address: '10.213.9.10' },
  { name: 'balancer1.p.test', role: 'balancer', address: '10.213.9.11' },
  { name: 'balancer2.p.test', role: 'balancer', address: '10.213.9.12' },
];

test('each balancer: VRRP v3 unicast to the other, the virtual address, its HAProxy checked, both backup with nopreempt, balancer 1 preferred', (t) => {
  const one = keepalivedConf(ns, nodes[1]!, nodes)!;
  const two = keepalivedConf(ns, nodes[2]!, nodes)!;
  t.regex(one, /^\tvrrp_version 3$/m);
  t.regex(one, /^\tstate BACKUP\n\tnopreempt$/m);
  t.regex(one, /^\tpriority 150$/m);
  t.regex(two, /^\tpriority 100$/m);
  t.regex(one, /^\tunicast_src_ip 10\.213\.9\.11\n\tunicast_peer \{\n\t\t10\.213\.9\.12\n\t\}\n(\t\/\/.*\n)*\tcheck_unicast_src$/m, 'an advert from any other source is dropped');
  t.regex(two, /^\tunicast_src_ip 10\.213\.9\.12\n\tunicast_peer \{\n\t\t10\.213\.9\.11\n\t\}$/m);
  t.regex(one, /^\t\t10\.213\.9\.5\/24 dev eth0$/m);
  t.regex(one, /script "\/usr\/bin\/systemctl is-active --quiet haproxy"/);
  t.is(one.match(/virtual_router_id (\d+)/)![1], two.match(/virtual_router_id (\d+)/)![1], 'one router id for the pair');
  t.is(vrrpPeer(ns, nodes[1]!, nodes), '10.213.9.12');
  t.is(vrrpPeer(ns, nodes[0]!, nodes), '', 'app servers take no VRRP');
  const single = loadNodeset('/n/s.conf', memoryHost({ '/n/s.conf': '[general]\nname = s\nbase_domain = s.test\n[appserver]\nlocations = http://s.test/ a\n[balancer]\n' }));
  t.is(keepalivedConf(single, nodes[1]!, nodes), null);
});

test('tls = acme on a pair: each balancer passes the validation requests it cannot answer to the other; acme.conf names the virtual address and the peer; one state, the first orders, both hold the pair\'s key; tls = FILE forwards nothing', (t) => {
  const conf = (tls: string) => `[general]\nname = p\nbase_domain = p.test\n[provider]\nprovider = local\nsubnet = 10.213.9.0/24\n[appserver]\nlocations = https://p.test/ a\n[balancer]\nnodes = 2\nvirtual_address = 10.213.9.5\ntls = ${tls}\n`;
  const acme = loadNodeset('/n/p.conf', memoryHost({ '/n/p.conf': conf('acme') }));
  const key = { private: 'PRIVATE', public: 'ssh-ed25519 PAIR' };
  const hostKeys = new Map([['balancer1.p.test', 'ssh-ed25519 HOST1'], ['balancer2.p.test', 'ssh-ed25519 HOST2']]);
  const wiring = (n: AddressedNode) => tlsWiring(acme, n, nodes, 'STATE', () => key, hostKeys);
  t.is(wiring(nodes[0]!), null, 'an app server has none');
  const v1 = layerVars(acme, nodes[1]!, nodes, 'balancer', 'k', false, new Map(), null, null, wiring(nodes[1]!));
  const v2 = layerVars(acme, nodes[2]!, nodes, 'balancer', 'k', false, new Map(), null, null, wiring(nodes[2]!));
  t.regex(v1['SILVER_HAPROXY_CFG']!, /\nbackend acme_peer\n\thttp-request set-header X-Silver-Acme-Peer 1\n\tserver peer 10\.213\.9\.12:80\n/);
  t.regex(v2['SILVER_HAPROXY_CFG']!, /\nbackend acme_peer\n\thttp-request set-header X-Silver-Acme-Peer 1\n\tserver peer 10\.213\.9\.11:80\n/);
  t.is(v1['SILVER_ACME_CONF'], `directory ${DEFAULT_ACME_DIRECTORY}\nemail -\nca -\nvia 10.213.9.5\npeer 10.213.9.12\nhost p.test\n`);
  t.is(v2['SILVER_ACME_CONF'], v1['SILVER_ACME_CONF']!.replace('peer 10.213.9.12', 'peer 10.213.9.11'), 'the same acme.conf but for the peer');
  for (const v of [v1, v2]) {
    t.is(v['SILVER_TLS_STATE'], 'STATE', 'the one state of the pair');
    t.is(v['SILVER_ACME_PEER_KEY'], 'PRIVATE\n');
  }
  t.is(v1['SILVER_ACME_ORDER'], '1', 'the first orders at setup');
  t.is(v2['SILVER_ACME_ORDER'], '0', 'the other gets the same certificate from silver');
  t.is(v1['SILVER_ACME_PEER'], '10.213.9.12');
  t.is(v1['SILVER_ACME_PEER_KNOWN'], '10.213.9.12 ssh-ed25519 HOST2\n');
  t.is(v2['SILVER_ACME_PEER_KNOWN'], '10.213.9.11 ssh-ed25519 HOST1\n');
  t.is(v1['SILVER_ACME_RECEIVE_KEYS'], 'restrict,from="10.213.9.12,10.213.9.5",command="sudo -n /usr/local/lib/silverlining/bin/silver-acme receive" ssh-ed25519 PAIR\n', 'the other may run the receive, from its addresses, nothing else');
  const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nk\n-----END PRIVATE KEY-----\n';
  const given = loadNodeset('/n/p.conf', memoryHost({ '/n/p.conf': conf('site.pem'), '/n/site.pem': pem }));
  const g = layerVars(given, nodes[1]!, nodes, 'balancer', 'k', false);
  t.false(g['SILVER_HAPROXY_CFG']!.includes('acme_peer'));
  t.is(g['SILVER_TLS'], 'file');
  const single = loadNodeset('/n/s.conf', memoryHost({ '/n/s.conf': '[general]\nname = s\nbase_domain = s.test\n[appserver]\nlocations = https://s.test/ a\n[balancer]\ntls = acme\n' }));
  const one: AddressedNode[] = [nodes[0]!, { name: 'balancer.s.test', role: 'balancer', address: '10.213.9.11' }];
  const s = layerVars(single, one[1]!, one, 'balancer', 'k', false);
  t.false(s['SILVER_HAPROXY_CFG']!.includes('acme_peer'));
  t.false(s['SILVER_ACME_CONF']!.includes('via'));
  const sw = tlsWiring(single, one[1]!, one, null, () => key, hostKeys);
  t.deepEqual(sw, { state: null, order: true, peer: null }, 'a single balancer orders, hands nothing over');
  const sv = layerVars(single, one[1]!, one, 'balancer', 'k', false, new Map(), null, null, sw);
  t.is(sv['SILVER_ACME_PEER'], '');
  t.is(sv['SILVER_ACME_RECEIVE_KEYS'], '');
  t.is(sv['SILVER_ACME_PEER_KEY'], '');
});
