import test from 'ava';
import { memoryHost } from '../../src/config/host.js';
import { loadNodeset } from '../../src/nodeset/resolve.js';
import { keepalivedConf, vrrpPeer } from '../../src/setup/keepalived.js';
import { layerVars, type AddressedNode } from '../../src/setup/plan.js';

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
  t.regex(one, /^\tunicast_src_ip 10\.213\.9\.11\n\tunicast_peer \{\n\t\t10\.213\.9\.12\n\t\}$/m);
  t.regex(two, /^\tunicast_src_ip 10\.213\.9\.12\n\tunicast_peer \{\n\t\t10\.213\.9\.11\n\t\}$/m);
  t.regex(one, /^\t\t10\.213\.9\.5\/24 dev eth0$/m);
  t.regex(one, /script "\/usr\/bin\/systemctl is-active --quiet haproxy"/);
  t.is(one.match(/virtual_router_id (\d+)/)![1], two.match(/virtual_router_id (\d+)/)![1], 'one router id for the pair');
  t.is(vrrpPeer(ns, nodes[1]!, nodes), '10.213.9.12');
  t.is(vrrpPeer(ns, nodes[0]!, nodes), '', 'app servers take no VRRP');
  const single = loadNodeset('/n/s.conf', memoryHost({ '/n/s.conf': '[general]\nname = s\nbase_domain = s.test\n[appserver]\nlocations = http://s.test/ a\n[balancer]\n' }));
  t.is(keepalivedConf(single, nodes[1]!, nodes), null);
});

test('tls = acme on a pair: each balancer passes the validation requests it cannot answer to the other; acme.conf names the virtual address; tls = FILE forwards nothing', (t) => {
  const conf = (tls: string) => `[general]\nname = p\nbase_domain = p.test\n[provider]\nprovider = local\nsubnet = 10.213.9.0/24\n[appserver]\nlocations = https://p.test/ a\n[balancer]\nnodes = 2\nvirtual_address = 10.213.9.5\ntls = ${tls}\n`;
  const acme = loadNodeset('/n/p.conf', memoryHost({ '/n/p.conf': conf('acme') }));
  const v1 = layerVars(acme, nodes[1]!, nodes, 'balancer', 'k', false, new Map(), null, null, 'STATE-OF-1');
  const v2 = layerVars(acme, nodes[2]!, nodes, 'balancer', 'k', false, new Map(), null, null, null);
  t.regex(v1['SILVER_HAPROXY_CFG']!, /\nbackend acme_peer\n\thttp-request set-header X-Silver-Acme-Peer 1\n\tserver peer 10\.213\.9\.12:80\n/);
  t.regex(v2['SILVER_HAPROXY_CFG']!, /\nbackend acme_peer\n\thttp-request set-header X-Silver-Acme-Peer 1\n\tserver peer 10\.213\.9\.11:80\n/);
  t.is(v1['SILVER_ACME_CONF'], 'directory https://acme-v02.api.letsencrypt.org/directory\nemail -\nca -\nvia 10.213.9.5\nhost p.test\n');
  t.is(v1['SILVER_ACME_CONF'], v2['SILVER_ACME_CONF'], 'one acme.conf for both');
  t.is(v1['SILVER_TLS_STATE'], 'STATE-OF-1', "each balancer its own kept state");
  t.is(v2['SILVER_TLS_STATE'], '');
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
});
