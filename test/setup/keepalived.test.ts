import test from 'ava';
import { memoryHost } from '../../src/config/host.js';
import { loadNodeset } from '../../src/nodeset/resolve.js';
import { keepalivedConf, vrrpPeer } from '../../src/setup/keepalived.js';
import type { AddressedNode } from '../../src/setup/plan.js';

// The balancer pair's keepalived configuration as silver renders it for each balancer.

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
