import { ExitError } from '../diagnostics.js';
import { helperSum } from '../layers.js';
import type { Nodeset } from '../nodeset/types.js';
import { deployVerbs } from '../remote/commands/deploy.js';
import { HELPERS } from '../remote/commands/helpers.js';
import { Remote } from '../remote/executor.js';
import type { Runtime } from '../runtime.js';
import { service } from '../services/index.js';
import type { AddressedNode } from '../setup/plan.js';
import type { SshTarget } from '../ssh/connect.js';
import { connectNodes } from '../ssh/targets.js';
import { parseStatus, type AppState } from './remote.js';
import { SharedState } from './shared-state.js';

/** The deploy user's connections to a nodeset's nodes, its shared state, its app servers. */
export class Session {
  private constructor(
    readonly ns: Nodeset,
    readonly rt: Runtime,
    readonly remote: Remote,
    readonly all: AddressedNode[],
    readonly missing: { name: string; role: string; error: string }[],
    readonly state: SharedState,
    /** The SSH targets of the nodes that answered (for a command's own channel: silver run, logs -f). */
    readonly targets: SshTarget[] = [],
  ) {}

  get appservers(): AddressedNode[] {
    return this.all.filter((n) => n.role === 'appserver');
  }

  get balancers(): AddressedNode[] {
    return this.all.filter((n) => n.role === 'balancer');
  }

  /** Connects as the deploy user; `requireAll`: every node must exist and run (deploys need them). */
  /**
   * Connects as the deploy user. `required`: the roles that must all be there (a deploy needs
   * its app servers and its services; any other node may be down).
   */
  static async open(ns: Nodeset, rt: Runtime, required: readonly string[] = []): Promise<Session> {
    const { targets, addressed, missing } = await connectNodes(ns, rt, 'silver');
    const lacking = missing.filter((m) => required.includes(m.role));
    if (lacking.length > 0) throw new ExitError(lacking.map((m) => `${m.name}: ${m.error}`).join('; '), 1);
    const remote = new Remote(await rt.executor(ns.name, targets));
    const state = new SharedState(remote, { nodeset: ns.name, total: ns.nodes.length, nodes: addressed.map((n) => n.name), say: (t) => rt.io.err(t) });
    return new Session(ns, rt, remote, addressed, missing, state, targets);
  }

  /**
   * The helpers on the nodes must be the ones this silver ships (setup-node installs them): an
   * update against older helpers stops before it changes anything.
   */
  async checkHelpers(services: readonly string[]): Promise<void> {
    const wanted: [AddressedNode, string, string][] = [
      ...this.appservers.map((n): [AddressedNode, string, string] => [n, 'base', 'silver-state']),
      ...this.appservers.map((n): [AddressedNode, string, string] => [n, 'appserver', 'silver-deploy']),
      ...services.map((name): [AddressedNode, string, string] => {
        const svc = service(name);
        return [this.all.find((n) => n.role === `service:${name}`)!, svc.layer, svc.helper];
      }),
    ];
    const byNode = new Map<string, [string, string][]>();
    for (const [n, layer, helper] of wanted) byNode.set(n.name, [...(byNode.get(n.name) ?? []), [layer, helper]]);
    const stale: string[] = [];
    // (a balancer that does not answer is not asked: the update goes on without it, as before)
    await Promise.all(
      this.balancers.map(async (n) => {
        const r = await this.remote.exec(n.name, ['sha256sum', `${HELPERS}/silver-balancer`]).catch(() => null);
        if (r && r.stdout.split(/\s+/)[0] !== helperSum('balancer', 'silver-balancer')) stale.push(`${n.name} (silver-balancer)`);
      }),
    );
    await Promise.all(
      [...byNode].map(async ([node, helpers]) => {
        const r = await this.remote.exec(node, ['sha256sum', ...helpers.map(([, h]) => `${HELPERS}/${h}`)]).catch((e: Error) => {
          throw new ExitError(e.message, 1);
        });
        const have = new Map(r.stdout.split('\n').map((l) => l.split(/\s+/)).map(([sum, path]) => [path?.split('/').pop() ?? '', sum ?? '']));
        for (const [layer, helper] of helpers) if (have.get(helper) !== helperSum(layer, helper)) stale.push(`${node} (${helper})`);
      }),
    );
    if (stale.length > 0) {
      throw new ExitError(`the nodes are not set up for this version of silver: ${stale.sort().join(', ')}; run silver setup-node ${this.ns.file} first`, 1);
    }
  }

  /** Each app server's apps (active, previous, instances, health); unreachable ones are left out. */
  async status(nodes = this.appservers): Promise<Map<string, AppState[]>> {
    const out = new Map<string, AppState[]>();
    await Promise.all(nodes.map(async (n) => out.set(n.name, parseStatus(await this.remote.run(n.name, 'status', deployVerbs.status())))));
    return out;
  }

  close(): Promise<void> {
    return this.remote.close();
  }
}
