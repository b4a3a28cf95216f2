import type { Nodeset } from '../nodeset/types.js';
import type { Runtime } from '../runtime.js';
import type { AddressedNode } from '../setup/plan.js';
import type { SshTarget } from './connect.js';

export interface NodeTargets {
  /** One SSH target per node that exists and is running. */
  targets: SshTarget[];
  addressed: AddressedNode[];
  /** Nodes the file implies that cannot be reached, and why (`gone`: the provider has no such node). */
  missing: { name: string; role: string; error: string; gone?: true }[];
}

/**
 * Finds the nodeset's nodes at the provider and pairs each with its address and pinned host key.
 * `user`: the login (default: the provider's admin user; `silver`, the deploy user, for deploys).
 */
export async function connectNodes(ns: Nodeset, rt: Runtime, user?: string): Promise<NodeTargets> {
  const provider = await rt.providerFor(ns.provider);
  const found = new Map((await provider.list(ns.name)).map((n) => [n.name, n]));
  const pins = rt.state.pinnedKeys(ns.name);
  const key = rt.state.deployKey();
  const targets: SshTarget[] = [];
  const addressed: AddressedNode[] = [];
  const missing: NodeTargets['missing'] = [];
  for (const spec of ns.nodes) {
    const node = found.get(spec.name);
    // Nodes talk to each other on private addresses; silver reaches them on the public one if any.
    const address = node?.privateAddress ?? node?.publicAddress;
    const sshHost = node?.publicAddress ?? address;
    if (!node) {
      missing.push({ name: spec.name, role: spec.role, error: 'the node does not exist: run silver create-node first', gone: true });
      continue;
    }
    if (node.state !== 'running' || !address) {
      missing.push({ name: spec.name, role: spec.role, error: `the node is ${node.state}: run silver create-node to start it` });
      continue;
    }
    let hostKey = pins.get(spec.name);
    if (!hostKey) {
      const fromProvider = await provider.hostKey(node);
      if (!fromProvider) {
        missing.push({ name: spec.name, role: spec.role, error: 'no pinned host key for this node (run silver create-node)' });
        continue;
      }
      rt.state.pin(ns.name, spec.name, sshHost!, fromProvider);
      hostKey = fromProvider;
    }
    targets.push({ name: spec.name, host: sshHost!, username: user ?? provider.adminUser, privateKey: key.private, hostKey, timeoutMs: 20_000 });
    addressed.push({ name: spec.name, role: spec.role, address });
  }
  return { targets, addressed, missing };
}
