import type { Nodeset } from '../nodeset/types.js';
import type { Runtime } from '../runtime.js';
import { createNodes, failedCount } from './create-node.js';
import { setupNodes } from './setup-node.js';
import type { Lease } from '../deploy/shared-state.js';

/**
 * The two halves of a phoenix rebuild (replace-node): the node destroyed (its pinned host key
 * dropped; one that is gone already is said), then created again from the image and every node
 * set up, so that all of them are rewired to it. Either throws, naming what failed.
 */
export async function destroyNode(ns: Nodeset, rt: Runtime, name: string, say: (text: string) => void): Promise<void> {
  const provider = await rt.providerFor(ns.provider);
  const node = (await provider.list(ns.name)).find((n) => n.name === name);
  if (node) await provider.destroy(node);
  rt.state.unpin(ns.name, [name]);
  say(node ? 'destroyed' : 'already gone');
}

/** Whether the provider has the node (by its name in the nodeset). */
export async function nodeExists(ns: Nodeset, rt: Runtime, name: string): Promise<boolean> {
  const provider = await rt.providerFor(ns.provider);
  return (await provider.list(ns.name)).some((n) => n.name === name);
}

/** `lease`: the deploy lock the replacement holds (the setup takes none of its own). */
export async function createAndSetUp(ns: Nodeset, rt: Runtime, sshTimeoutMs: number, say: (text: string) => void, lease: Lease): Promise<void> {
  const created = await createNodes(ns, rt, { concurrency: 4, sshTimeoutMs });
  if (failedCount(created) > 0) throw new Error(`creating it again failed: ${created.outcomes.filter((o) => o.status === 'failed').map((o) => `${o.name}: ${o.error}`).join('; ')}`);
  say('created again');
  const setup = await setupNodes(ns, rt, { dryRun: false, concurrency: 32, lease });
  const failed = setup.nodes.filter((n) => n.status === 'failed');
  if (failed.length > 0) throw new Error(`setting up failed on ${failed.map((n) => `${n.name} (${n.error ?? n.layers.find((l) => l.error)?.error ?? 'failed'})`).join('; ')}`);
  say('set up, every node rewired');
}
