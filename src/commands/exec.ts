import { printable } from '../output/printable.js';
import pLimit from 'p-limit';
import { ExitError } from '../diagnostics.js';
import type { Nodeset } from '../nodeset/types.js';
import type { Runtime } from '../runtime.js';
import { keeperSocket, stopKeeper } from '../ssh/keeper.js';
import { quoteCommand } from '../ssh/quote.js';
import { connectNodes } from '../ssh/targets.js';

export interface ExecOutcome {
  name: string;
  code: number | null;
  stdout: string;
  stderr: string;
  error?: string;
}

/** Runs one command (argv, quoted here) on the matching nodes over the same executor as setup. */
export async function execOnNodes(ns: Nodeset, rt: Runtime, argv: string[], filter: { node?: string[]; role?: string }, concurrency = 32): Promise<ExecOutcome[]> {
  if (argv.length === 0) throw new ExitError('nothing to run: silver exec FILE [--node NAME | --role ROLE] -- COMMAND ...', 2);
  const wanted = ns.nodes.filter((n) => (!filter.node || filter.node.includes(n.name)) && (!filter.role || n.role === filter.role));
  if (filter.node) {
    const unknown = filter.node.filter((name) => !ns.nodes.some((n) => n.name === name));
    if (unknown.length > 0) throw new ExitError(`no node ${unknown.join(', ')} in nodeset ${ns.name}`, 2);
  }
  if (wanted.length === 0) throw new ExitError(`no node of nodeset ${ns.name} matches${filter.role ? ` role ${filter.role}` : ''}`, 2);
  const { targets, missing } = await connectNodes({ ...ns, nodes: wanted }, rt);
  const pool = await rt.executor(ns.name, targets);
  const command = quoteCommand(argv);
  const limit = pLimit(concurrency);
  try {
    const ran = await Promise.all(
      targets.map((t) =>
        limit(async (): Promise<ExecOutcome> => {
          try {
            const r = await pool.exec(t.name, command);
            return { name: t.name, ...r };
          } catch (e) {
            return { name: t.name, code: null, stdout: '', stderr: '', error: (e as Error).message };
          }
        }),
      ),
    );
    const byName = new Map([...ran, ...missing.map((m) => ({ name: m.name, code: null, stdout: '', stderr: '', error: m.error }))].map((o) => [o.name, o]));
    return wanted.map((n) => byName.get(n.name)!);
  } finally {
    await pool.close();
  }
}

/** Ends the keepers of a nodeset (one per login user), closing their connections. */
export async function disconnect(ns: Nodeset, rt: Runtime): Promise<number> {
  // (no deploy key yet: nothing can have connected, and none is made here)
  if (!rt.state.hasDeployKey()) return 0;
  const provider = await rt.providerFor(ns.provider);
  const key = rt.state.deployKey().private;
  let n = 0;
  for (const user of new Set([provider.adminUser, 'silver'])) if (await stopKeeper(keeperSocket(rt.state.root, ns.name, user, key))) n++;
  return n;
}

export function renderExec(outcomes: ExecOutcome[]): string {
  const lines: string[] = [];
  for (const o of outcomes) {
    const status = o.error ? `failed: ${o.error}` : `exit ${o.code}`;
    lines.push(`== ${o.name}: ${status}`);
    // (what a node printed — an app's file, a log — shown printable)
    for (const l of o.stdout.replace(/\n$/, '').split('\n')) if (o.stdout) lines.push(`${o.name}: ${printable(l)}`);
    for (const l of o.stderr.replace(/\n$/, '').split('\n')) if (o.stderr) lines.push(`${o.name} (stderr): ${printable(l)}`);
  }
  return lines.join('\n');
}
