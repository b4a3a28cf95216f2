import { sudoHelper } from '../remote/commands/helpers.js';
import type { Runtime } from '../runtime.js';
import type { Session } from './session.js';

/** One server of an app backend as `silver-balancer status` prints it. */
export interface ServerRow {
  backend: string;
  node: string;
  state: string;
  admin: string;
}

export function parseServerRows(text: string): ServerRow[] {
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 5 && f[0]!.startsWith('app_'))
    .map((f) => ({ backend: f[0]!, node: f[1]!, state: f[3]!, admin: f[4]! }));
}

/** The rows of one app's backends (`app_APP_N`, one per location). */
export const ofApp = (app: string) => (row: ServerRow) => new RegExp(`^app_${app}_\\d+$`).test(row.backend);
/** The rows of one node, in every backend. */
export const ofNode = (node: string) => (row: ServerRow) => row.node === node;

/**
 * Until every balancer (or only `only`) sees each of the chosen servers up and ready, at most
 * `ms`. An app server that just started serving an app is up only after the balancer's checks
 * rise: the command that put it there returns when the site serves, not before.
 */
export async function waitServing(s: Session, rt: Runtime, chosen: (row: ServerRow) => boolean, ms: number, only?: string): Promise<void> {
  const balancers = s.balancers.filter((b) => !only || b.name === only);
  const deadline = rt.now() + ms;
  for (;;) {
    const rows = (await Promise.all(balancers.map((b) => s.remote.run(b.name, 'balancer status', sudoHelper('silver-balancer', 'status'))))).flatMap(parseServerRows).filter(chosen);
    const waiting = rows.filter((r) => r.state !== 'up' || r.admin !== 'ready');
    if (waiting.length === 0) return;
    if (rt.now() > deadline) throw new Error(`the balancers do not see these servers up yet: ${waiting.map((r) => `${r.backend}/${r.node} ${r.state} ${r.admin}`).join('; ')}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
