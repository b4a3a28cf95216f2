import { applyMode, clearMode, effectiveMode, ModeError, readModes, type Mode, type ModesView, type ModeState } from '../deploy/modes.js';
import { historyEntry, record } from '../deploy/history.js';
import { Session } from '../deploy/session.js';
import { ExitError } from '../diagnostics.js';
import type { Nodeset } from '../nodeset/types.js';
import type { Runtime } from '../runtime.js';

/** `silver maintenance on|off|status FILE ...`: the balancers' maintenance and read-only modes. */
export interface MaintenanceOptions {
  readOnly?: boolean;
  allow?: string[];
  retryAfter?: number;
  message?: string;
  app?: string;
}

export interface MaintenanceReport {
  nodeset: string;
  action: 'on' | 'off' | 'status';
  /** The app the change was for (null: every app; status: null). */
  app: string | null;
  ok: boolean;
  /** The modes, key by key (`*`: every app), as the nodeset's record holds them, and each balancer. */
  modes: ModesView;
  /** Said to the operator besides the modes (e.g. an app that still follows `*`). */
  notes: string[];
  error: string | null;
}

export type MaintenanceAction = MaintenanceReport['action'];

/** Checks the options against the action before anything connects (exit 2). */
export function checkOptions(action: string, opts: MaintenanceOptions): MaintenanceAction {
  if (action !== 'on' && action !== 'off' && action !== 'status') throw new ExitError(`maintenance takes on, off or status, not "${action}"`, 2);
  const onOnly = [opts.readOnly && '--read-only', opts.allow?.length && '--allow', opts.retryAfter !== undefined && '--retry-after', opts.message !== undefined && '--message'].filter(Boolean);
  if (action !== 'on' && onOnly.length > 0) throw new ExitError(`${onOnly.join(', ')}: only with maintenance on`, 2);
  if (action === 'status' && opts.app !== undefined) throw new ExitError('--app: only with maintenance on or off (status shows every app)', 2);
  return action;
}

export async function maintenance(ns: Nodeset, rt: Runtime, action: MaintenanceAction, opts: MaintenanceOptions = {}): Promise<MaintenanceReport> {
  checkOptions(action, opts);
  const t0 = rt.now();
  const s = await Session.open(ns, rt);
  const app = opts.app ?? null;
  try {
    let modes: ModesView;
    try {
      if (action === 'on') {
        const mode: Mode = opts.readOnly ? 'read-only' : 'maintenance';
        // (each `on` sets the allow list: the addresses it names, or none)
        modes = await applyMode(s, { app, mode, ...(opts.retryAfter !== undefined ? { retryAfter: opts.retryAfter } : {}), ...(opts.message !== undefined ? { message: opts.message } : {}), allow: opts.allow ?? [] });
      } else if (action === 'off') {
        modes = await clearMode(s, app);
      } else {
        modes = await readModes(s);
      }
    } catch (e) {
      if (e instanceof ModeError) return { nodeset: ns.name, action, app, ok: false, modes: e.view, notes: [], error: e.message };
      throw e;
    }
    const notes: string[] = [];
    if (action === 'off' && app !== null) {
      const still = effectiveMode(modes.record, app);
      if (still && still.mode !== 'online') notes.push(`${app} still follows the mode of every app (*: ${still.mode}); silver maintenance off ${ns.file} turns that off`);
    }
    if (action === 'status') {
      for (const b of modes.balancers) {
        if (b.error !== undefined) notes.push(`${b.node}: ${b.error}`);
        else if (!b.same) notes.push(`${b.node} applies something else than the nodeset's record: ${describe(b.state!).join('; ') || 'no mode'}`);
        else if (b.haproxy === 'running' && b.live === false) notes.push(`${b.node}: the running HAProxy differs from its modes' files`);
        else if (b.haproxy === 'no mode rules') notes.push(`${b.node}: HAProxy's configuration has no mode rules: run silver setup-node ${ns.file}`);
      }
    }
    if (action !== 'status') {
      const what = action === 'on' ? (opts.readOnly ? 'read-only' : 'maintenance') : 'off';
      await record(s.state, historyEntry({ at: new Date(t0).toISOString(), kind: 'maintenance', ...(app ? { app } : {}), seconds: (rt.now() - t0) / 1000, result: 'ok', detail: `${what}${app ? '' : ' (every app)'}` }), (t) => rt.io.err(t));
    }
    return { nodeset: ns.name, action, app, ok: true, modes, notes, error: null };
  } finally {
    await s.close();
  }
}

/** One line per key: `*: maintenance (Retry-After 30s, allowed: 10.0.0.0/8): "We are ..."`. */
export function describe(state: ModeState): string[] {
  const keys = Object.keys(state.modes).sort((a, b) => (a === '*' ? -1 : b === '*' ? 1 : a < b ? -1 : 1));
  return keys.map((k) => {
    const e = state.modes[k]!;
    const who = k === '*' ? 'every app' : k;
    if (e.mode === 'online') return `${who}: online`;
    const allowed = e.mode === 'maintenance' ? `, allowed: ${state.allow.join(' ') || 'none'}` : '';
    const held = e.mode === 'maintenance' ? 'every request' : 'every request but GET, HEAD and OPTIONS';
    return `${who}: ${e.mode} (${held} gets 503, Retry-After ${e.retryAfter}s${allowed}): ${JSON.stringify(e.message)}`;
  });
}

/** The lines `silver status` shows: one per key, or that no mode is set. */
export function modeLines(state: ModeState | null): string[] {
  if (!state) return [];
  const lines = describe(state);
  return lines.length === 0 ? ['modes: online (no maintenance or read-only mode)'] : lines.map((l) => `mode: ${l}`);
}

export function renderMaintenance(r: MaintenanceReport): string {
  const lines: string[] = [];
  const target = r.app ?? 'every app';
  if (r.action === 'on') lines.push(`nodeset ${r.nodeset}: ${target}: ${r.modes.record.modes[r.app ?? '*']?.mode ?? '?'} on`);
  if (r.action === 'off') lines.push(`nodeset ${r.nodeset}: ${target}: back to normal`);
  if (r.action === 'status') lines.push(`nodeset ${r.nodeset}:`);
  const modes = describe(r.modes.record);
  lines.push(...(modes.length === 0 ? ['no maintenance or read-only mode: every app online'] : modes.map((l) => `  ${l}`)));
  const pages = [...new Set(r.modes.balancers.flatMap((b) => b.pages ?? []))].sort();
  if (pages.length > 0) lines.push(`  their own maintenance.html instead of the message: ${pages.join(', ')}`);
  const applied = r.modes.balancers.filter((b) => b.error === undefined).map((b) => b.node);
  if (r.action !== 'status' && applied.length > 0) lines.push(`applied on ${applied.join(', ')} (no restart)`);
  for (const n of r.notes) lines.push(n);
  if (r.error) lines.push(`FAILED: ${r.error}`);
  return lines.join('\n');
}
