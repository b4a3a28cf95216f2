import pLimit from 'p-limit';
import { ExitError } from '../diagnostics.js';
import { isBuilder } from '../image/builder.js';
import type { Nodeset } from '../nodeset/types.js';
import { table } from '../output/table.js';
import type { ProviderNode } from '../provider.js';
import type { Runtime } from '../runtime.js';
import type { Session } from '../deploy/session.js';
import type { Lease } from '../deploy/shared-state.js';

export interface ListedNode {
  name: string;
  role: string;
  /** Provider state, or `missing` for a node the file implies that does not exist. */
  state: string;
  address: string | null;
  /** False for a node the provider has that the file no longer implies. */
  inNodeset: boolean;
}

/** The nodes of a nodeset as the provider sees them, plus the ones the file implies that are missing. */
export async function listNodes(ns: Nodeset, rt: Runtime): Promise<ListedNode[]> {
  const provider = await rt.providerFor(ns.provider);
  const found = new Map((await provider.list(ns.name)).map((n) => [n.name, n]));
  const out: ListedNode[] = ns.nodes.map((spec) => {
    const n = found.get(spec.name);
    return { name: spec.name, role: spec.role, state: n?.state ?? 'missing', address: n?.privateAddress ?? null, inNodeset: true };
  });
  const wanted = new Set(ns.nodes.map((n) => n.name));
  for (const n of found.values()) {
    if (!wanted.has(n.name)) out.push({ name: n.name, role: n.role, state: n.state, address: n.privateAddress, inNodeset: false });
  }
  return out;
}

export function renderNodeList(ns: Nodeset, nodes: ListedNode[]): string {
  const rows = nodes.map((n) => [n.name, n.role, n.state, n.address ?? '-', n.inNodeset ? '' : isBuilder(n.name) ? 'image builder of a bake under way, or one an interrupted bake left (orphan)' : 'not in the file (orphan)']);
  const lines = [table(['NODE', 'ROLE', 'STATE', 'ADDRESS', 'NOTE'], rows)];
  const orphans = nodes.filter((n) => !n.inNodeset).length;
  if (orphans > 0) lines.push(`${orphans} orphan${orphans === 1 ? '' : 's'}: remove with silver delete-node ${ns.file} --orphans`);
  return lines.join('\n');
}

export interface DeleteOptions {
  nodes: string[];
  orphans: boolean;
  yes: boolean;
  concurrency: number;
}

/** Deletes the chosen nodes of this nodeset (all of them by default), after asking. */
export async function deleteNodes(ns: Nodeset, rt: Runtime, opts: DeleteOptions): Promise<{ deleted: string[]; failed: { name: string; error: string }[] }> {
  const provider = await rt.providerFor(ns.provider);
  const all = await provider.list(ns.name);
  const wanted = new Set(ns.nodes.map((n) => n.name));
  let targets: ProviderNode[];
  // (a node of the file, or one still pinned, that the provider no longer has is already gone —
  // its delete killed after the destroy, say: deleted again at no cost, its pin removed)
  let gone: string[] = [];
  if (opts.orphans) {
    targets = all.filter((n) => !wanted.has(n.name));
  } else if (opts.nodes.length > 0) {
    const missing = opts.nodes.filter((name) => !all.some((n) => n.name === name));
    const pinned = rt.state.pinnedKeys(ns.name);
    gone = missing.filter((name) => wanted.has(name) || pinned.has(name));
    const unknown = missing.filter((name) => !gone.includes(name));
    if (unknown.length > 0) throw new ExitError(`no node ${unknown.join(', ')} in nodeset ${ns.name} (it has: ${all.map((n) => n.name).join(', ') || 'none'})`, 2);
    targets = all.filter((n) => opts.nodes.includes(n.name));
  } else {
    targets = all;
  }
  for (const name of gone) rt.io.err(`${name}: already gone`);
  rt.state.unpin(ns.name, gone);
  if (targets.length === 0) {
    if (gone.length === 0) rt.io.err(`nodeset ${ns.name}: nothing to delete`);
    if (all.length === 0) await provider.release(ns.name);
    return { deleted: gone, failed: [] };
  }
  const question = `Delete ${targets.length} node${targets.length === 1 ? '' : 's'} of nodeset ${ns.name} (${targets.map((n) => n.name).join(', ')})? This destroys their disks.`;
  if (!opts.yes && !(await rt.confirm(question))) throw new ExitError('nothing deleted (answer y, or pass -y)', 1);

  // Scaling down: an orphaned app server leaves every balancer's rotation (drained, then
  // disabled) before it goes, and the rest is rewired after (the balancers forget it), all under
  // the deploy lock (an update meanwhile could put it back, a setup-node rewire with it). An
  // image builder was never in rotation.
  const draining = opts.orphans ? targets.filter((n) => n.role === 'appserver' && !isBuilder(n.name)).map((n) => n.name) : [];
  const balanced = draining.length > 0 && ns.nodes.some((n) => n.role === 'balancer');
  const destroyAll = async () => {
    const limit = pLimit(opts.concurrency);
    const deleted: string[] = [];
    const failed: { name: string; error: string }[] = [];
    await Promise.all(
      targets.map((n) =>
        limit(async () => {
          try {
            await provider.destroy(n);
            // (its pin goes with it at once: a run killed after this line leaves none behind)
            rt.state.unpin(ns.name, [n.name]);
            deleted.push(n.name);
            rt.io.err(`${n.name}: deleted`);
          } catch (e) {
            failed.push({ name: n.name, error: (e as Error).message });
            rt.io.err(`${n.name}: delete failed: ${(e as Error).message}`);
          }
        }),
      ),
    );
    if (deleted.length === all.length) await provider.release(ns.name);
    return { deleted, failed };
  };
  if (!balanced) {
    const { deleted, failed } = await destroyAll();
    return { deleted: [...gone, ...deleted], failed };
  }
  const { Session } = await import('../deploy/session.js');
  const { underDeployLock } = await import('../backup/lock.js');
  const s = await Session.open(ns, rt, ['balancer']);
  try {
    return await underDeployLock(s, `delete-node ${draining.join(' ')}`, async (steps, lease) => {
      const { drain } = await import('./drain.js');
      await drain(s, draining, 2000, (n, text) => rt.io.err(`${n}: ${text}`));
      steps.check();
      const { deleted, failed } = await destroyAll();
      if (deleted.length > 0) await rewire(ns, rt, s, lease, deleted, failed);
      return { deleted: [...gone, ...deleted], failed };
    });
  } finally {
    await s.close();
  }
}

/** After a scale-down, the other nodes set up without the deleted ones and the grants renewed (under the caller's lock). */
async function rewire(ns: Nodeset, rt: Runtime, s: Session, lease: Lease, deleted: readonly string[], failed: { name: string; error: string }[]): Promise<void> {
  const { setupNodes } = await import('./setup-node.js');
  const setup = await setupNodes(ns, rt, { dryRun: false, concurrency: 32, lease });
  const bad = setup.nodes.filter((n) => n.status === 'failed');
  if (bad.length > 0) {
    failed.push(...bad.map((n) => ({ name: n.name, error: `rewiring after the scale-down failed: ${n.error ?? 'see above'}; run silver setup-node ${ns.file}` })));
    return;
  }
  rt.io.err(`nodeset ${ns.name}: the other nodes rewired without ${deleted.join(', ')}`);
  try {
    await (await import('../deploy/grants.js')).regrant(s, (t) => rt.io.err(`nodeset ${ns.name}: ${t}`));
  } catch (e) {
    failed.push({ name: ns.name, error: `the database grants were not renewed: ${(e as Error).message}; the next silver update renews them` });
  }
}
