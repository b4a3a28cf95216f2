import { createHash } from 'node:crypto';
import type { Nodeset } from '../nodeset/types.js';
import type { AddressedNode } from './plan.js';

/**
 * A balancer pair's keepalived: VRRP version 3 with 200 ms adverts over unicast between the two
 * balancers' addresses (no multicast on the bridge; adverts from any other source dropped), the
 * virtual address on eth0 of the one that holds it, each checking its own HAProxy (an instance
 * whose HAProxy is down gives the address up). Both start as BACKUP with nopreempt: the first one up (or the higher priority, balancer 1,
 * when both come up together) takes the address, and one that comes back does not take it away
 * again. The router id comes from the nodeset's name (two nodesets on one segment do not clash).
 */
export function keepalivedConf(ns: Nodeset, node: AddressedNode, all: readonly AddressedNode[]): string | null {
  if (!ns.virtualAddress) return null;
  const balancers = all.filter((n) => n.role === 'balancer');
  const peer = balancers.find((n) => n.name !== node.name);
  if (!peer) return null;
  const index = balancers.findIndex((n) => n.name === node.name);
  const routerId = (createHash('sha256').update(ns.name).digest()[0]! % 254) + 1;
  return [
    '# managed by silver: the balancer pair\'s shared address',
    'global_defs {',
    '\tvrrp_version 3',
    '\tenable_script_security',
    '\tscript_user root',
    '}',
    'vrrp_script silver_haproxy {',
    '\tscript "/usr/bin/systemctl is-active --quiet haproxy"',
    '\tinterval 1',
    '\tfall 2',
    '\trise 2',
    '}',
    'vrrp_instance silver {',
    '\tstate BACKUP',
    '\tnopreempt',
    '\tinterface eth0',
    `\tvirtual_router_id ${routerId}`,
    `\tpriority ${index === 0 ? 150 : 100}`,
    '\tadvert_int 0.2',
    `\tunicast_src_ip ${node.address}`,
    `\tunicast_peer {\n\t\t${peer.address}\n\t}`,
    // (an advert whose source is not the peer is dropped, whatever reaches eth0: the firewall's
    // VRRP rule says the same)
    '\tcheck_unicast_src',
    `\tvirtual_ipaddress {\n\t\t${ns.virtualAddress}/24 dev eth0\n\t}`,
    '\ttrack_script {\n\t\tsilver_haproxy\n\t}',
    '}',
    '',
  ].join('\n');
}

/**
 * The other balancer's address (empty without a pair): for the firewall's VRRP rule, and with
 * tls = acme where HAProxy passes the validation requests it has no answer for.
 */
export function vrrpPeer(ns: Nodeset, node: AddressedNode, all: readonly AddressedNode[]): string {
  if (!ns.virtualAddress || node.role !== 'balancer') return '';
  return all.find((n) => n.role === 'balancer' && n.name !== node.name)?.address ?? '';
}
