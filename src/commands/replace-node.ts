import { exportInstance, installInstance, type ExportedInstance } from '../deploy/replicate.js';
import { ofNode, waitServing } from '../deploy/balancer-wait.js';
import { regrant } from '../deploy/grants.js';
import { historyEntry, record } from '../deploy/history.js';
import { Session } from '../deploy/session.js';
import { holderText, type Lease } from '../deploy/shared-state.js';
import { ExitError } from '../diagnostics.js';
import type { Nodeset } from '../nodeset/types.js';
import type { Runtime } from '../runtime.js';
import { drain, setServerState } from './drain.js';
import { createAndSetUp, destroyNode } from './rebuild-node.js';
import { replaceServiceNode } from './replace-service.js';

/**
 * `silver replace-node FILE --node NAME [-y]`: a phoenix replacement of an app server or a
 * balancer. An app server: out of rotation on every balancer (drain, then disable), the active
 * instance of each app exported from another app server (before anything is destroyed: a
 * failure there changes nothing), the node destroyed and created again from the provider's
 * image, every node set up (the rewiring), each app's instance staged, started, health-checked
 * and switched to on the new node, and the node back in rotation once every balancer sees it
 * up. A balancer: destroyed, created and set up (its modes come back from the nodeset's record).
 * With no other node of the tier the site is down meanwhile: said before it starts, measured.
 *
 * Under the deploy lock (no update runs meanwhile). Interrupted or failed before the destroy, the
 * node goes back into rotation as it was; after it, running the same command again finishes the
 * replacement (every step is idempotent: an existing node is not destroyed twice, a set-up node
 * is set up again at no cost).
 */
export interface ReplaceOptions {
  node: string;
  yes: boolean;
  /** A service node: even without a recently verified backup. */
  force?: boolean;
  sshTimeoutMs?: number;
  /** How long a drained app server keeps its open requests before it is disabled. */
  drainMs?: number;
}

export interface ReplaceReport {
  nodeset: string;
  node: string;
  role: string;
  ok: boolean;
  /** The apps whose active instance the new node serves. */
  apps: { app: string; instance: string }[];
  /** Seconds the tier had no node serving (only with a single app server or balancer). */
  downtimeSeconds: number | null;
  seconds: number;
  error: string | null;
  /** The signal that stopped it (exit 130), or null. */
  interrupted: string | null;
  /** A service node: the dump each app's database was restored from, and its rows. */
  restored?: { app: string; stamp: string; rows: number }[];
  notes?: string[];
}


export async function replaceNode(ns: Nodeset, rt: Runtime, opts: ReplaceOptions): Promise<ReplaceReport> {
  const t0 = rt.now();
  const spec = ns.nodes.find((n) => n.name === opts.node);
  if (!spec) throw new ExitError(`no node ${opts.node} in nodeset ${ns.name} (it has: ${ns.nodes.map((n) => n.name).join(', ')})`, 2);
  if (spec.role.startsWith('service:')) return recorded(ns, rt, await replaceService(ns, rt, spec, opts, t0), t0);
  if (spec.role !== 'appserver' && spec.role !== 'balancer') throw new ExitError(`${opts.node} is a ${spec.role} node: replace-node replaces app servers, balancers and service nodes`, 2);
  const tier = ns.nodes.filter((n) => n.role === spec.role);
  const alone = tier.length === 1;
  const say = (text: string) => rt.io.err(`${opts.node}: ${text}`);
  const question = `Replace ${opts.node} (${spec.role}) of nodeset ${ns.name}? It is destroyed and created again from the image${alone ? `; it is the only ${spec.role}, so the site is DOWN from the delete until the new one serves` : `; the other ${spec.role === 'appserver' ? 'app servers serve' : 'balancers serve'} meanwhile`}.`;
  if (alone) rt.io.err(`silver: ${opts.node} is the only ${spec.role} of ${ns.name}: the site is down while it is replaced (measured and reported)`);
  if (!opts.yes && !(await rt.confirm(question))) throw new ExitError('nothing replaced (answer y, or pass -y)', 1);

  const report: ReplaceReport = { nodeset: ns.name, node: opts.node, role: spec.role, ok: false, apps: [], downtimeSeconds: null, seconds: 0, error: null, interrupted: null };
  const s = await Session.open(ns, rt);
  let interrupted: string | null = null;
  const dispose = rt.onInterrupt((sig) => {
    if (interrupted) process.exit(130);
    interrupted = sig;
    rt.io.err(`silver: ${sig}: stopping after the current step (again to abandon)`);
  });
  let held: Lease | null = null;
  // (between steps: a signal, or the deploy lock lost — another run may hold it now)
  const check = () => {
    if (interrupted) throw new ExitError(`interrupted (${interrupted})`, 130);
    if (held?.lost) throw new Error(`the deploy lock was lost: ${held.lost}`);
  };
  let destroyed = false;
  let downSince: number | null = null;
  try {
    const lease = (held = await s.state.lock(holderText(`replace-node ${opts.node}`, new Date(rt.now()))));
    try {
      let copies: ExportedInstance[] = [];
      let drained = false;
      try {
        if (spec.role === 'appserver') {
          copies = await exportApps(s, opts.node, alone, say);
          check();
          drained = true;
          await drain(s, [opts.node], opts.drainMs ?? 2000, (_n, text) => say(text));
        }
        check();
        downSince = alone ? rt.now() : null;
        lease.setAside(opts.node);
        await destroyNode(ns, rt, opts.node, say);
        destroyed = true;
        check();
        await createAndSetUp(ns, rt, opts.sshTimeoutMs ?? 120_000, say, lease);
        check();
        // A new session: the node has a new host key, and the old connection went with it.
        const fresh = await Session.open(ns, rt, [spec.role]);
        // (a nodeset of one: the lock lives on the new node alone, which took it with this run's
        // token as it got silver-state; renewed from here on through the new session, which can
        // reach it — else it would lapse after its TTL while the apps are installed)
        let rejoined: Lease | null = null;
        try {
          if (ns.nodes.length === 1) held = rejoined = await fresh.state.lock(lease.holder, 1, lease.token);
          if (spec.role === 'appserver') {
            // (setup may have reloaded a balancer, which forgets a disabled server: again)
            await setServerState(fresh, 'disable', opts.node);
            await regrant(fresh, say);
            for (const x of copies) {
              check();
              await installInstance(fresh.remote, opts.node, x, say);
              report.apps.push({ app: x.app, instance: x.instance });
            }
            await setServerState(fresh, 'enable', opts.node);
            await waitServing(fresh, rt, ofNode(opts.node), 60_000);
            say('back in rotation');
          } else {
            await waitServing(fresh, rt, () => true, 60_000, opts.node);
            say('serving');
          }
        } finally {
          await rejoined?.release().catch(() => undefined);
          await fresh.close();
        }
        if (downSince !== null) report.downtimeSeconds = (rt.now() - downSince) / 1000;
        report.ok = true;
      } catch (e) {
        if (!destroyed && drained) {
          await setServerState(s, 'enable', opts.node).catch(() => undefined);
          say('back in rotation, unchanged');
        }
        throw e;
      }
    } finally {
      await lease.release().catch(() => undefined);
    }
  } catch (e) {
    if (e instanceof ExitError && e.exitCode === 2) throw e;
    report.error = destroyed ? `${(e as Error).message} (the old node is gone: run the same command again to finish the replacement)` : (e as Error).message;
    if (interrupted) report.error = destroyed ? `interrupted after ${opts.node} was destroyed: run the same command again to finish` : `interrupted before anything was destroyed: ${opts.node} is back in rotation`;
  } finally {
    dispose();
    await s.close();
  }
  report.seconds = (rt.now() - t0) / 1000;
  report.interrupted = interrupted;
  return recorded(ns, rt, report, t0);
}

/** The replacement in the nodeset's history (from a new session: the node's old connection is gone). */
async function recorded(ns: Nodeset, rt: Runtime, report: ReplaceReport, t0: number): Promise<ReplaceReport> {
  const s = await Session.open(ns, rt).catch(() => null);
  if (!s) return report;
  try {
    const result = report.ok ? 'ok' : report.interrupted ? `interrupted: ${report.error ?? ''}` : `failed: ${report.error ?? ''}`;
    const down = report.downtimeSeconds !== null ? `, down ${report.downtimeSeconds.toFixed(1)}s` : '';
    await record(s.state, historyEntry({ at: new Date(t0).toISOString(), kind: 'replace-node', seconds: report.seconds, result, detail: `${report.node} (${report.role}${down})` }), (t) => rt.io.err(t));
  } finally {
    await s.close();
  }
  return report;
}

async function replaceService(ns: Nodeset, rt: Runtime, spec: Nodeset['nodes'][number], opts: ReplaceOptions, t0: number): Promise<ReplaceReport> {
  const report: ReplaceReport = { nodeset: ns.name, node: spec.name, role: spec.role, ok: false, apps: [], downtimeSeconds: null, seconds: 0, error: null, interrupted: null, restored: [], notes: [] };
  try {
    const r = await replaceServiceNode(ns, rt, spec, { yes: opts.yes, ...(opts.force ? { force: true } : {}), ...(opts.sshTimeoutMs ? { sshTimeoutMs: opts.sshTimeoutMs } : {}) }, (t) => rt.io.err(`${spec.name}: ${t}`));
    report.restored = r.apps;
    report.notes = r.notes;
    report.ok = r.problems.length === 0;
    if (!report.ok) report.error = r.problems.join('; ');
  } catch (e) {
    if (e instanceof ExitError && e.exitCode !== 130) throw e;
    report.error = (e as Error).message;
    if (e instanceof ExitError) report.interrupted = 'SIGINT';
  }
  report.seconds = (rt.now() - t0) / 1000;
  return report;
}

/** The active instance of every app, from another app server (or, alone, from the node itself). */
async function exportApps(s: Session, node: string, alone: boolean, say: (t: string) => void): Promise<ExportedInstance[]> {
  const others = s.appservers.filter((n) => n.name !== node);
  const sources = alone ? s.appservers : others;
  const states = await s.status(sources);
  if (states.size === 0) throw new Error(alone ? `${node} cannot be reached: its apps cannot be copied (deploy them again with silver update after a replacement by hand)` : 'no other app server answers: nothing to copy the apps from');
  const [source, apps] = [...states][0]!;
  const out: ExportedInstance[] = [];
  for (const a of apps.filter((x) => x.active)) out.push(await exportInstance(s.remote, source, a.app));
  say(`${out.length === 0 ? 'no app is deployed' : `copying ${out.map((x) => x.instance).join(', ')}`} from ${source}`);
  return out;
}

export function renderReplaceReport(r: ReplaceReport): string {
  const lines = [
    r.ok
      ? `nodeset ${r.nodeset}: ${r.node} (${r.role}) replaced in ${r.seconds.toFixed(1)} s${r.apps.length ? `, serving ${r.apps.map((a) => a.instance).join(', ')}` : ''}`
      : `nodeset ${r.nodeset}: replacing ${r.node} FAILED: ${r.error}`,
  ];
  for (const x of r.restored ?? []) lines.push(`  ${x.app}: its database restored from ${x.stamp} (${x.rows} rows, as in the manifest)`);
  for (const n of r.notes ?? []) lines.push(n);
  if (r.downtimeSeconds !== null) lines.push(`the site was down for ${r.downtimeSeconds.toFixed(1)} s (${r.node} is the only ${r.role})`);
  return lines.join('\n');
}
