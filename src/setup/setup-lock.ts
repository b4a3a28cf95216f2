import { randomBytes } from 'node:crypto';
import { ExitError } from '../diagnostics.js';
import { holderText, SharedState, type Lease } from '../deploy/shared-state.js';
import type { Nodeset } from '../nodeset/types.js';
import type { Remote } from '../remote/executor.js';
import type { Runtime } from '../runtime.js';
import type { NodeTargets } from '../ssh/targets.js';

/**
 * setup-node under the nodeset's deploy lock. A full script rewires a node from the node list
 * and the shared state read when the run began, and reloads what it changed (a balancer that
 * reloads forgets which servers an update had drained): it must not run beside an update, a
 * replacement or another setup-node that saw other nodes. The lock is taken once, before the
 * first full script (a no-op whose every node's fingerprint holds changes nothing and takes none),
 * and the node list is then read again: a node destroyed, created or replaced since the run
 * began (another address, another host key) stops it before it changes anything.
 *
 * `given`: a lock the caller holds (replace-node, delete-node), whose node list is its own. The
 * token goes to every full script (a node that gets silver-state takes the lock at once) and, for
 * a lock of the run's own, to repair, which leaves a node alone while a deploy holds the lock.
 */
export class SetupLock {
  readonly token: string;
  /**
   * The lock is this run's own (not a caller's): `silver-deploy repair` may act under it. Under a
   * caller's — a replacement, a scale-down — things are broken on purpose meanwhile (a database
   * node being rebuilt), and repair leaves the nodes alone as it does for any deploy.
   */
  readonly own: boolean;
  private taking: Promise<Lease> | null = null;

  constructor(
    private readonly take: ((token: string) => Promise<Lease>) | null,
    private readonly given?: Lease,
  ) {
    this.token = given?.token ?? randomBytes(16).toString('hex');
    this.own = !given;
  }

  /**
   * Before a full script, when its turn has come: resolves with the lock the script names (its
   * token and holder: a node that gets silver-state from it takes its replica for this lock at
   * once), null without one (a dry run, an image's builder); throws when it may not run.
   */
  async ready(): Promise<Lease | null> {
    const lease = this.given ?? (this.take ? await (this.taking ??= this.take(this.token)) : null);
    if (lease?.lost) throw new Error(`the deploy lock was lost: ${lease.lost}`);
    return lease;
  }

  /** Why the lock this run held was lost, once its scripts are done (null: held throughout, or none). */
  async lostReason(): Promise<string | null> {
    const lease = this.given ?? (await this.taking?.catch(() => null)) ?? null;
    return lease?.lost ?? null;
  }

  /** Lets go of a lock this run took (never of a given one). */
  async release(): Promise<void> {
    const lease = await this.taking?.catch(() => null);
    await lease?.release().catch(() => undefined);
  }
}

/**
 * setup-node's own lock (with no node set up yet, one no node grants: see lockWhereInstalled),
 * taken after the node list was read: that list is read again under the lock and must be the one
 * the scripts were built from.
 */
export function setupLockTaker(ns: Nodeset, rt: Runtime, remote: Remote, nodes: NodeTargets): (token: string) => Promise<Lease> {
  return async (token) => {
    // (a node the provider does not have can hold no lock: the majority is counted without it)
    const gone = nodes.missing.filter((m) => m.gone).length;
    const state = new SharedState(remote, { nodeset: ns.name, total: ns.nodes.length - gone, nodes: nodes.addressed.map((n) => n.name), say: (t) => rt.io.err(t) });
    const lease = await state.lockWhereInstalled(holderText('setup-node', new Date(rt.now())), token);
    try {
      const changed = await nodesChanged(ns, rt, nodes);
      if (changed) throw new ExitError(`the nodeset's nodes changed since this setup-node began (${changed}): nothing was changed; run it again`, 1);
    } catch (e) {
      await lease.release().catch(() => undefined);
      throw e;
    }
    return lease;
  };
}

/** What differs between the nodes the run began with and the provider's and pins' now, or null. */
async function nodesChanged(ns: Nodeset, rt: Runtime, { addressed, targets, missing }: NodeTargets): Promise<string | null> {
  const found = new Map((await (await rt.providerFor(ns.provider)).list(ns.name)).map((n) => [n.name, n]));
  const pins = rt.state.pinnedKeys(ns.name);
  const had = new Map(addressed.map((n) => [n.name, n]));
  const gone = new Set(missing.filter((m) => m.gone).map((m) => m.name));
  for (const spec of ns.nodes) {
    const now = found.get(spec.name);
    const then = had.get(spec.name);
    const address = now?.state === 'running' ? (now.privateAddress ?? now.publicAddress) : undefined;
    if (!then) {
      // (one the provider did not have then and has now; one it had that could not be reached —
      // stopped, no host key here — is left out of the wiring as before, whatever it is now)
      if (gone.has(spec.name) && now) return `${spec.name} was created`;
      continue;
    }
    if (address !== then.address) return address ? `${spec.name} has another address` : `${spec.name} is gone`;
    if (pins.get(spec.name) !== targets.find((t) => t.name === spec.name)?.hostKey) return `${spec.name} has another host key`;
  }
  return null;
}
