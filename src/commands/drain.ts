import type { Session } from '../deploy/session.js';
import { sudoHelper } from '../remote/commands/helpers.js';

/**
 * App servers out of every balancer's rotation: drained (no new requests; open ones finish),
 * then after `drainMs` disabled. The runtime state of HAProxy (its admin socket): a reload
 * forgets it, which is why the caller rewires (or puts them back) right after.
 */
export async function setServerState(s: Session, state: 'drain' | 'disable' | 'enable', node: string): Promise<void> {
  await Promise.all(
    s.balancers.map((b) =>
      s.remote.run(b.name, `${state} ${node}`, sudoHelper('silver-balancer', state, node)).catch((e: Error) => {
        // (a node the balancer does not list is out of its rotation already)
        if (!/is in no app backend/.test(e.message)) throw e;
      }),
    ),
  );
}

export async function drain(s: Session, nodes: readonly string[], drainMs: number, say: (node: string, text: string) => void): Promise<void> {
  if (s.balancers.length === 0) return;
  for (const n of nodes) await setServerState(s, 'drain', n);
  await new Promise((r) => setTimeout(r, drainMs));
  for (const n of nodes) await setServerState(s, 'disable', n);
  for (const n of nodes) say(n, `drained, out of rotation on ${s.balancers.map((b) => b.name).join(', ')}`);
}
