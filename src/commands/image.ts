import { ExitError } from '../diagnostics.js';
import { builderName, builderNodeset, builderOf, leftBehind, PACKAGES_ARGV, recordArgv, stripArgv, stripScript } from '../image/builder.js';
import { BAKEABLE_ROLES, imageName, type ImageRecord } from '../image/strip.js';
import type { Nodeset } from '../nodeset/types.js';
import type { Provider, ProviderNode } from '../provider.js';
import { Remote } from '../remote/executor.js';
import type { Runtime } from '../runtime.js';
import { connectNodes } from '../ssh/targets.js';
import { processAlive } from '../deploy/shared-state.js';
import { createNodes, failedCount } from './create-node.js';
import { disconnect } from './exec.js';
import { setupNodes } from './setup-node.js';

/**
 * `silver image bake FILE --role ROLE [--node NAME]`: a provider image of a set-up node of the
 * role, stripped of its identity, secrets, apps, data and logs (src/image/strip.ts), named
 * `silver-image-NODESET-ROLE-TIME`; `image = NAME` in the tier's section (or the provider's)
 * makes new nodes from it. Nodes from it are set up with fewer changes: their packages, users,
 * units and files are there already.
 *
 * The local provider copies a node of the nodeset (the first of the role, or --node) and strips
 * the copy. The clouds bake on a builder (src/image/builder.ts): created from the provider's
 * image, set up, stripped over SSH, snapshotted by the provider, and destroyed whatever happens
 * (a failed step, SIGINT or SIGTERM: after the current step; the snapshot's wait stops at once).
 */
export interface BakeReport extends ImageRecord {
  seconds: number;
  /** The provider's id of the image where it is not its name (an AMI id, a Glance id, a volume). */
  id?: string;
}

export interface BakeOptions {
  role: string;
  node?: string;
  /** How long the builder may take to answer SSH (default 5 min). */
  sshTimeoutMs?: number;
}

export async function bakeImage(ns: Nodeset, rt: Runtime, opts: BakeOptions): Promise<BakeReport> {
  if (!(BAKEABLE_ROLES as readonly string[]).includes(opts.role)) {
    throw new ExitError(`--role ${opts.role}: images are baked from ${BAKEABLE_ROLES.join(' or ')} nodes (a service node's disk holds the apps' data: it is rebuilt from a backup instead)`, 2);
  }
  const role = opts.role as (typeof BAKEABLE_ROLES)[number];
  const specs = ns.nodes.filter((n) => n.role === role && (!opts.node || n.name === opts.node));
  if (specs.length === 0) throw new ExitError(opts.node ? `no ${role} node ${opts.node} in nodeset ${ns.name}` : `nodeset ${ns.name} has no ${role} node`, 2);
  const provider = await rt.providerFor(ns.provider);
  if (provider.bakeImage) return bakeFromNode(ns, rt, provider, role, specs[0]!.name);
  if (!provider.snapshotImage) throw new ExitError(`the ${provider.type} provider cannot bake images yet`, 1);
  if (opts.node) throw new ExitError(`--node ${opts.node}: the ${provider.type} provider bakes on a builder node of its own, never on a node of the nodeset (leave --node out)`, 2);
  return bakeOnBuilder(ns, rt, provider, role, opts.sshTimeoutMs ?? 300_000);
}

/** The local provider: a copy of a running node of the nodeset. */
async function bakeFromNode(ns: Nodeset, rt: Runtime, provider: Provider, role: string, name: string): Promise<BakeReport> {
  const found = (await provider.list(ns.name)).find((n) => n.name === name);
  if (!found || found.state !== 'running') throw new ExitError(`${name} is ${found ? found.state : 'missing'}: bake from a running, set-up node`, 1);
  const t0 = rt.now();
  // (interrupted: the copy ends, the node is unfrozen and the half-made copy removed — a node
  // left frozen would serve nothing; a second signal abandons that)
  const stop = interruptible(rt, `${name} is unfrozen and the copy removed (again to abandon it)`);
  try {
    const record = await provider.bakeImage!(found, imageName(ns.name, role, new Date(rt.now())), (m) => rt.io.err(m), stop.signal);
    if (stop.interrupted()) throw new ExitError(`interrupted (${stop.interrupted()}) after the image was made: ${record.name}`, 130);
    return { ...record, seconds: (rt.now() - t0) / 1000 };
  } catch (e) {
    if (stop.interrupted() && !(e instanceof ExitError)) throw new ExitError(`interrupted (${stop.interrupted()}): no image made`, 130);
    throw e;
  } finally {
    stop.dispose();
  }
}

/**
 * A bake's SIGINT/SIGTERM: the first aborts `signal` and says what follows; a second exits at
 * once. `interrupted()` names the signal once one came.
 */
function interruptible(rt: Runtime, then: string): { signal: AbortSignal; interrupted: () => string | null; dispose: () => void } {
  let interrupted: string | null = null;
  const abort = new AbortController();
  const dispose = rt.onInterrupt((sig) => {
    if (interrupted) process.exit(130);
    interrupted = sig;
    abort.abort();
    rt.io.err(`silver: ${sig}: ${then}`);
  });
  return { signal: abort.signal, interrupted: () => interrupted, dispose };
}

/** The clouds: create the builder, set it up, strip it, snapshot it; destroy it in any case. */
async function bakeOnBuilder(ns: Nodeset, rt: Runtime, provider: Provider, role: 'appserver' | 'balancer', sshTimeoutMs: number): Promise<BakeReport> {
  const t0 = rt.now();
  const name = builderName(role);
  const say = (text: string) => rt.io.err(`${name}: ${text}`);
  // (a node of the file by that name would be set up, stripped and destroyed as the builder)
  if (ns.nodes.some((n) => n.name === name)) throw new ExitError(`${name}: nodeset ${ns.name} names a node as silver names its image builders: rename that node`, 2);
  const bns = builderNodeset(ns, role);
  await removeLeftovers(ns, rt, provider, role, name);

  const stop = interruptible(rt, 'the builder is destroyed after the current step (again to abandon it; the next bake removes it)');
  const check = () => {
    if (stop.interrupted()) throw new ExitError(`interrupted (${stop.interrupted()}): no image made`, 130);
  };
  try {
    say(`creating a builder ${role} from the provider's image`);
    const created = await createNodes(bns, rt, { concurrency: 1, sshTimeoutMs });
    if (failedCount(created) > 0) throw new Error(`creating the builder failed: ${created.outcomes.find((o) => o.status === 'failed')?.error}`);
    check();
    const setup = await setupNodes(bns, rt, { dryRun: false, concurrency: 1, fast: 'none' });
    const failed = setup.nodes.find((n) => n.status === 'failed');
    if (failed) throw new Error(`setting up the builder failed: ${failed.error ?? 'failed'}`);
    check();
    const record = await stripBuilder(bns, rt, provider, { name: imageName(ns.name, role, new Date(t0)), nodeset: ns.name, role, from: name, built: new Date(t0).toISOString(), packages: [] });
    check();
    const builder = (await provider.list(ns.name)).find((n) => n.name === name);
    if (!builder) throw new Error('the builder is gone');
    say(`stripped (${record.packages.length} packages); making the image ${record.name}`);
    let id: string;
    try {
      id = await provider.snapshotImage!(builder, record, (m) => rt.io.err(m), stop.signal);
    } catch (e) {
      // (asked for already, the image may still be made by the provider: said, not "no image")
      if (stop.interrupted()) throw new ExitError(`interrupted (${stop.interrupted()}) while ${record.name} was being made: ${(e as Error).message}`, 130);
      throw e;
    }
    return { ...record, ...(id !== record.name ? { id } : {}), seconds: (rt.now() - t0) / 1000 };
  } catch (e) {
    if (e instanceof ExitError) throw e;
    throw new ExitError(`image bake: ${(e as Error).message} (no image made)`, 1);
  } finally {
    try {
      await removeBuilder(ns, rt, provider, name, 'destroyed');
    } catch (e) {
      rt.io.err(`silver: the builder ${name} could not be destroyed: ${(e as Error).message}; the next bake removes it, or silver delete-node ${ns.file} --orphans`);
    }
    stop.dispose();
  }
}

/**
 * The builders of the role that interrupted bakes left (builder.ts: this machine's whose process
 * is gone, an earlier release's, one of this bake's own name) destroyed; another bake's, which
 * may be running, left alone and named. The other role's are never touched.
 */
async function removeLeftovers(ns: Nodeset, rt: Runtime, provider: Provider, role: 'appserver' | 'balancer', own: string): Promise<void> {
  const left = [];
  for (const n of await provider.list(ns.name)) {
    if (builderOf(n.name)?.role !== role) continue;
    if (n.name === own || leftBehind(n.name, processAlive)) left.push(n);
    else rt.io.err(`${n.name}: another bake's builder (it may be running): left alone; silver delete-node ${ns.file} --orphans removes it once no bake runs`);
  }
  await destroyBuilders(ns, rt, provider, left, 'left by an interrupted bake: destroyed');
}

/** The builder destroyed, its pinned host key dropped, connections kept to it ended. */
async function removeBuilder(ns: Nodeset, rt: Runtime, provider: Provider, name: string, done: string): Promise<void> {
  await destroyBuilders(ns, rt, provider, (await provider.list(ns.name)).filter((n) => n.name === name), done);
}

/** Builders destroyed, their pins dropped, each said; the kept connections ended once. */
async function destroyBuilders(ns: Nodeset, rt: Runtime, provider: Provider, builders: readonly ProviderNode[], done: string): Promise<void> {
  for (const b of builders) {
    await provider.destroy(b);
    rt.state.unpin(ns.name, [b.name]);
    rt.io.err(`${b.name}: ${done}`);
  }
  if (builders.length > 0) await disconnect(ns, rt);
}

/**
 * On the set-up builder, over SSH: its packages read, the record written where a node made from
 * the image finds it, then the strip as root (after which no new SSH connection can be made:
 * the host keys and authorized keys are gone). Resolves with the record.
 */
async function stripBuilder(bns: Nodeset, rt: Runtime, provider: Provider, draft: ImageRecord): Promise<ImageRecord> {
  const { targets, missing } = await connectNodes(bns, rt);
  if (missing.length > 0) throw new Error(`the builder cannot be reached: ${missing[0]!.error}`);
  const name = targets[0]!.name;
  const remote = new Remote(await rt.executor(bns.name, targets));
  try {
    const packages = (await remote.run(name, 'listing the packages', PACKAGES_ARGV)).split('\n').filter(Boolean);
    const record: ImageRecord = { ...draft, packages };
    await remote.run(name, 'writing the image record', recordArgv(provider.adminUser), `${JSON.stringify(record, null, 2)}\n`);
    await remote.run(name, 'stripping', stripArgv(provider.adminUser), stripScript(), 10 * 60_000);
    return record;
  } finally {
    await remote.close();
  }
}

export function renderBake(r: BakeReport): string {
  return [
    `image ${r.name}${r.id ? ` (${r.id})` : ''}: baked from ${r.from} in ${r.seconds.toFixed(1)} s (${r.packages.length} packages, ${r.built})`,
    `use it: image = ${r.name}   (in [${r.role}], or in [provider] for every node)`,
  ].join('\n');
}
