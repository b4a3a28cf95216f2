import type { AppState } from '../deploy/remote.js';
import type { Nodeset } from '../nodeset/types.js';
import { table } from '../output/table.js';
import type { Runtime } from '../runtime.js';
import { Session } from './update.js';

export interface StatusReport {
  nodeset: string;
  nodes: { name: string; role: string; address: string }[];
  apps: { node: string; app: string; active: string | null; previous: string | null; staged: string[]; running: string[] }[];
}

/** Each node, and on each app server each app's active, previous and staged instances. */
export async function status(ns: Nodeset, rt: Runtime): Promise<StatusReport> {
  const s = await Session.open(ns, rt);
  try {
    const states = await s.status();
    const apps: StatusReport['apps'] = [];
    for (const n of s.appservers) {
      for (const a of states.get(n.name) ?? []) apps.push(summarise(n.name, a));
    }
    return { nodeset: ns.name, nodes: s.all.map((n) => ({ name: n.name, role: n.role, address: n.address })), apps };
  } finally {
    await s.close();
  }
}

function summarise(node: string, a: AppState): StatusReport['apps'][number] {
  const activeIdx = a.active ? a.instances.findIndex((i) => i.name === a.active) : -1;
  return {
    node,
    app: a.app,
    active: a.active,
    previous: a.previous,
    staged: a.instances.filter((_, idx) => idx > activeIdx).map((i) => i.name),
    running: a.instances.filter((i) => i.running).map((i) => i.name),
  };
}

export function renderStatus(r: StatusReport): string {
  const lines = [table(['NODE', 'ROLE', 'ADDRESS'], r.nodes.map((n) => [n.name, n.role, n.address]))];
  lines.push('');
  lines.push(
    r.apps.length === 0
      ? 'no application deployed'
      : table(['NODE', 'APP', 'ACTIVE', 'PREVIOUS', 'STAGED'], r.apps.map((a) => [a.node, a.app, a.active ?? '-', a.previous ?? '-', a.staged.join(' ') || '-'])),
  );
  return lines.join('\n');
}
