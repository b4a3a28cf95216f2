import type { AppConfig } from '../app/app-ini.js';
import type { Nodeset } from '../nodeset/types.js';
import type { Runtime } from '../runtime.js';
import { createNodes, failedCount, renderCreateReport, type CreateReport } from './create-node.js';
import { renderSetupReport, setupNodes, type SetupReport } from './setup-node.js';
import { renderUpdateReport, update, type UpdateReport } from './update.js';

/**
 * `silver up FILE [APP_DIR...]`: the whole path in one command — create what is missing, set
 * every node up, then update each app in the order given. A step that fails stops the path
 * there (nothing is deployed onto nodes that did not set up), and the summary says where.
 */
export interface UpReport {
  nodeset: string;
  ok: boolean;
  /** The step that stopped the path: `create-node`, `setup-node`, `update APP`, or null. */
  stoppedAt: string | null;
  interrupted: boolean;
  create: CreateReport;
  setup: SetupReport | null;
  updates: UpdateReport[];
  seconds: number;
}

export interface UpOptions {
  concurrency: number;
  sshTimeoutMs: number;
  clearCache: boolean;
  /** Each finished step, as it finishes (the human form prints it at once). */
  onStep?: (text: string) => void;
}

export async function up(ns: Nodeset, apps: readonly AppConfig[], rt: Runtime, opts: UpOptions): Promise<UpReport> {
  const started = rt.now();
  const done = (r: Omit<UpReport, 'seconds' | 'nodeset'>): UpReport => ({ nodeset: ns.name, ...r, seconds: (rt.now() - started) / 1000 });
  const create = await createNodes(ns, rt, { concurrency: opts.concurrency, sshTimeoutMs: opts.sshTimeoutMs });
  opts.onStep?.(renderCreateReport(create));
  if (failedCount(create) > 0) return done({ ok: false, stoppedAt: 'create-node', interrupted: false, create, setup: null, updates: [] });
  const setup = await setupNodes(ns, rt, { dryRun: false, concurrency: 32 });
  opts.onStep?.(renderSetupReport(setup));
  if (setup.nodes.some((n) => n.status === 'failed')) return done({ ok: false, stoppedAt: 'setup-node', interrupted: false, create, setup, updates: [] });
  const updates: UpdateReport[] = [];
  for (const app of apps) {
    const r = await update(ns, app, rt, { clearCache: opts.clearCache });
    updates.push(r);
    opts.onStep?.(renderUpdateReport(r));
    if (!r.ok || r.interrupted) return done({ ok: false, stoppedAt: `update ${r.app}`, interrupted: r.interrupted !== null, create, setup, updates });
  }
  return done({ ok: true, stoppedAt: null, interrupted: false, create, setup, updates });
}

/** One closing line: what each step did, and where the path stopped. */
export function renderUpSummary(r: UpReport): string {
  const created = r.create.outcomes.filter((o) => o.status === 'created').length;
  const parts = [`${created} created`];
  if (r.setup) parts.push(`${r.setup.nodes.filter((n) => n.status === 'changed').length} of ${r.setup.nodes.length} nodes changed by setup`);
  for (const u of r.updates) parts.push(`${u.app} ${u.ok ? `on ${u.instance}` : 'failed'}`);
  const end = r.ok ? 'up' : r.interrupted ? `interrupted at ${r.stoppedAt}` : `stopped at ${r.stoppedAt}`;
  return `silver up ${r.nodeset}: ${end} — ${parts.join(', ')} (${r.seconds.toFixed(1)}s)`;
}
