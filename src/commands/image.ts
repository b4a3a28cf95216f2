import { ExitError } from '../diagnostics.js';
import { BAKEABLE_ROLES, imageName, type ImageRecord } from '../image/strip.js';
import type { Nodeset } from '../nodeset/types.js';
import type { Runtime } from '../runtime.js';

/**
 * `silver image bake FILE --role ROLE [--node NAME]`: a provider image from a set-up node of the
 * role (the first one, or --node), stripped of its identity, secrets, apps, data and logs
 * (src/image/strip.ts), named `silver-image-NODESET-ROLE-TIME`; `image = NAME` in the tier's
 * section (or the provider's) makes new nodes from it. Nodes from it are set up with fewer
 * changes: their packages, users, units and files are there already.
 */
export interface BakeReport extends ImageRecord {
  seconds: number;
}

export async function bakeImage(ns: Nodeset, rt: Runtime, opts: { role: string; node?: string }): Promise<BakeReport> {
  if (!(BAKEABLE_ROLES as readonly string[]).includes(opts.role)) {
    throw new ExitError(`--role ${opts.role}: images are baked from ${BAKEABLE_ROLES.join(' or ')} nodes (a service node's disk holds the apps' data: it is rebuilt from a backup instead)`, 2);
  }
  const specs = ns.nodes.filter((n) => n.role === opts.role && (!opts.node || n.name === opts.node));
  if (specs.length === 0) throw new ExitError(opts.node ? `no ${opts.role} node ${opts.node} in nodeset ${ns.name}` : `nodeset ${ns.name} has no ${opts.role} node`, 2);
  const provider = await rt.providerFor(ns.provider);
  if (!provider.bakeImage) throw new ExitError(`the ${provider.type} provider cannot bake images yet`, 1);
  const found = (await provider.list(ns.name)).find((n) => n.name === specs[0]!.name);
  if (!found || found.state !== 'running') throw new ExitError(`${specs[0]!.name} is ${found ? found.state : 'missing'}: bake from a running, set-up node`, 1);
  const t0 = rt.now();
  const record = await provider.bakeImage(found, imageName(ns.name, opts.role, new Date(rt.now())), (m) => rt.io.err(m));
  return { ...record, seconds: (rt.now() - t0) / 1000 };
}

export function renderBake(r: BakeReport): string {
  return [
    `image ${r.name}: baked from ${r.from} in ${r.seconds.toFixed(1)} s (${r.packages.length} packages, ${r.built})`,
    `use it: image = ${r.name}   (in [${r.role}], or in [provider] for every node)`,
  ].join('\n');
}
