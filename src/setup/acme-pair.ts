import type { Nodeset } from '../nodeset/types.js';
import type { KeyPair } from '../provider.js';
import { vrrpPeer } from './keepalived.js';
import type { AddressedNode } from './plan.js';
import { fileVars } from './render.js';

/**
 * tls = acme: what a balancer's layer takes besides its configuration. The bundle silver kept
 * (one for the nodeset: a pair shares one certificate), whether this balancer orders a missing
 * certificate at setup (a single balancer; of a pair only the first, the other receives it from
 * silver right after), and for a pair the hand-over: the pair's key (both hold it), the other's
 * address and pinned host key; the other may log in with it as silver-acme, from this balancer's
 * address only, to run `silver-acme receive` and nothing else.
 */
export interface TlsWiring {
  state: string | null;
  order: boolean;
  peer: { address: string; key: KeyPair; hostKey: string | null; from: string[] } | null;
}

/** The forced command of the pair's key: root's receive (a strict import), through the one sudo rule. */
export const ACME_RECEIVE = 'sudo -n /usr/local/lib/silverlining/bin/silver-acme receive';

/** The wiring of `node` (null: not a balancer, or not tls = acme). */
export function tlsWiring(ns: Nodeset, node: AddressedNode, all: readonly AddressedNode[], state: string | null, pairKey: () => KeyPair, hostKeys: ReadonlyMap<string, string>): TlsWiring | null {
  if (ns.tls?.mode !== 'acme' || node.role !== 'balancer') return null;
  const address = vrrpPeer(ns, node, all);
  const peer = all.find((n) => n.role === 'balancer' && n.name !== node.name && n.address === address);
  const first = all.find((n) => n.role === 'balancer');
  return {
    state,
    order: !peer || first?.name === node.name,
    // (from its own address, or the virtual one should the kernel pick it as the source)
    peer: peer ? { address, key: pairKey(), hostKey: hostKeys.get(peer.name) ?? null, from: [address, ns.virtualAddress!] } : null,
  };
}

/** The layer's variables of the wiring (see setup-layers/balancer/setup.sh). */
export function tlsWiringVars(w: TlsWiring | null): Record<string, string> {
  if (!w) return {};
  const p = w.peer;
  const priv = p ? (p.key.private.endsWith('\n') ? p.key.private : `${p.key.private}\n`) : '';
  return {
    SILVER_TLS_STATE: w.state ?? '',
    SILVER_ACME_ORDER: w.order ? '1' : '0',
    SILVER_ACME_PEER: p?.address ?? '',
    ...fileVars('SILVER_ACME_PEER_KEY', priv),
    ...fileVars('SILVER_ACME_PEER_KNOWN', p?.hostKey ? `${p.address} ${p.hostKey}\n` : ''),
    ...fileVars('SILVER_ACME_RECEIVE_KEYS', p ? `restrict,from="${p.from.join(',')}",command="${ACME_RECEIVE}" ${p.key.public}\n` : ''),
  };
}
