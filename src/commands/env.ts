import { readAppEnv, silverVars, writePending } from '../deploy/app-env.js';
import { historyEntry, record } from '../deploy/history.js';
import { freePort } from '../deploy/remote.js';
import { beforeOf, Interrupted, redactSteps, Rollout, StepError, type NodeStep } from '../deploy/rollout.js';
import { Session } from '../deploy/session.js';
import { applyChanges, badSettingName, badSettingValue, envFile, fingerprint, passwordValues, valueFromInput, withSettings, type SettingChange } from '../deploy/settings.js';
import { ExitError } from '../diagnostics.js';
import type { Nodeset } from '../nodeset/types.js';
import type { Runtime } from '../runtime.js';
import { isSecretKey, MIN_REDACTED, redact } from '../secret.js';
import { converge, GRACE_MS, nextInstance, pruneAll, readRollout, underLock } from './update.js';

/**
 * `silver env list|set|unset APP FILE`: the app's own settings, the same on every app server.
 * They live in each instance's environment (root's file, readable by the app's user alone), so a
 * change is a new instance — the active one's code with the new environment — rolled out like an
 * update: staged everywhere, activated one app server at a time behind its health check, every
 * switched node put back when one fails. A rollback returns to an instance's own settings.
 * Values are the app's secrets: no message of silver's shows one, `list` gives a fingerprint.
 */
export interface SettingLine {
  key: string;
  fingerprint: string;
  /** Staged with --no-restart, not rolled out yet. */
  staged?: 'set' | 'unset';
}

export interface EnvListReport {
  app: string;
  settings: SettingLine[];
}

export interface EnvChangeReport {
  app: string;
  changed: string[];
  /** --no-restart: staged on every app server for the next update or env change. */
  staged: boolean;
  instance: string | null;
  ok: boolean;
  activated: string[];
  rolledBack: string[];
  failure: { node: string; step: string; error: string } | null;
  interrupted: string | null;
  steps: NodeStep[];
  seconds: number;
}

/**
 * The changes of `set KEY=VALUE… | unset KEY…`, checked before anything is asked of a node (exit
 * 2). `KEY=-` takes the value from standard input (read once: one such key at most), so that a
 * secret never goes on a command line.
 */
export async function parseChanges(action: string, args: readonly string[], stdin: () => Promise<Buffer>): Promise<SettingChange[]> {
  if (action !== 'set' && action !== 'unset') throw new ExitError(`silver env: "${action}" is not list, set or unset`, 2);
  if (args.length === 0) throw new ExitError(`silver env ${action}: give ${action === 'set' ? 'KEY=VALUE or KEY=- (the value on standard input)' : 'KEY'}`, 2);
  const out: SettingChange[] = [];
  let fromInput = 0;
  for (const [i, a] of args.entries()) {
    const eq = a.indexOf('=');
    const key = action === 'set' ? (eq < 0 ? a : a.slice(0, eq)) : a;
    // (an argument that is no KEY=VALUE may be a value alone — a secret: never repeated)
    if (action === 'set' && eq < 0) throw new ExitError(`silver env set: argument ${i + 1} is not KEY=VALUE (or KEY=- to read the value from standard input); it is not repeated here`, 2);
    // (KEY=VALUE given to unset: the value is named nowhere, not even in the error)
    if (action === 'unset' && eq >= 0) throw new ExitError(`silver env unset: give the name alone${badSettingName(a.slice(0, eq)) ? '' : ` (${a.slice(0, eq)})`}, not KEY=VALUE`, 2);
    const bad = badSettingName(key);
    if (bad) throw new ExitError(`silver env ${action}: argument ${i + 1}${action === 'set' ? ', before its =,' : ''} ${bad}`, 2);
    if (out.some((c) => c.key === key)) throw new ExitError(`silver env ${action}: ${key} is given twice`, 2);
    if (action === 'unset') {
      out.push({ key, unset: true });
      continue;
    }
    let value = a.slice(eq + 1);
    if (value === '-') {
      if (++fromInput > 1) throw new ExitError('silver env set: only one KEY=- can read standard input', 2);
      try {
        value = valueFromInput(key, await stdin());
      } catch (e) {
        throw new ExitError(`silver env set: ${(e as Error).message}`, 2);
      }
    }
    const badValue = badSettingValue(key, value);
    if (badValue) throw new ExitError(`silver env set: ${badValue}`, 2);
    out.push({ key, value });
  }
  return out;
}

/**
 * The keys of the changes whose value is a secret's by its name (PASSWORD, TOKEN, …) but too
 * short for the output's redaction (redact() passes over values under MIN_REDACTED characters).
 */
export function shortSecrets(changes: readonly SettingChange[]): string[] {
  return changes.flatMap((c) => ('value' in c && c.value.length > 0 && c.value.length < MIN_REDACTED && isSecretKey(c.key) ? [c.key] : []));
}

function checkApp(ns: Nodeset, app: string): void {
  if (!ns.locations.some((l) => l.app === app)) throw new ExitError(`app "${app}" is not in the locations of ${ns.file}`, 2);
}

export async function envList(ns: Nodeset, app: string, rt: Runtime): Promise<EnvListReport> {
  checkApp(ns, app);
  const s = await Session.open(ns, rt, ['appserver']);
  try {
    await s.checkHelpers([]);
    const e = await readAppEnv(s, app);
    const staged = new Map(e.pending.map((c) => [c.key, 'unset' in c ? ('unset' as const) : ('set' as const)]));
    const keys = [...new Set([...Object.keys(e.settings), ...staged.keys()])].sort();
    return {
      app,
      settings: keys.map((key) => ({
        key,
        fingerprint: key in e.settings ? fingerprint(app, key, e.settings[key]!) : '-',
        ...(staged.has(key) ? { staged: staged.get(key)! } : {}),
      })),
    };
  } finally {
    await s.close();
  }
}

export interface EnvOptions {
  restart: boolean;
  graceMs?: number;
}

/** A change of the app's settings, rolled out as a new instance (or staged with --no-restart). */
export async function envChange(ns: Nodeset, app: string, changes: readonly SettingChange[], given: Runtime, opts: EnvOptions): Promise<EnvChangeReport> {
  checkApp(ns, app);
  const secretValues = new Set(changes.flatMap((c) => ('value' in c ? [c.value] : [])));
  const rt: Runtime = { ...given, io: { out: (t) => given.io.out(redact(t, secretValues)), err: (t) => given.io.err(redact(t, secretValues)) } };
  for (const key of shortSecrets(changes)) rt.io.err(`silver env set: warning: ${key} looks like a secret and its value is under ${MIN_REDACTED} characters: silver's output cannot hide a value that short (it would hide every match of it in the text); a longer one is hidden everywhere`);
  const t0 = rt.now();
  const graceMs = opts.graceMs ?? GRACE_MS;
  const s = await Session.open(ns, rt, ['appserver']);
  const report: EnvChangeReport = { app, changed: changes.map((c) => c.key), staged: !opts.restart, instance: null, ok: true, activated: [], rolledBack: [], failure: null, interrupted: null, steps: [], seconds: 0 };
  try {
    await s.checkHelpers([]);
    await underLock(s, `env ${app}`, async (lease, onSignal) => {
      const r = new Rollout(s, app, lease, { graceMs });
      onSignal((sig) => r.interrupt(sig));
      const { seq } = await converge(s, await readRollout(s), graceMs);
      const current = await readAppEnv(s, app);
      for (const v of Object.values(current.settings)) secretValues.add(v);
      // (and the services' passwords: the app may print its environment where silver repeats it)
      for (const v of passwordValues(current.active ?? {})) secretValues.add(v);
      if (!opts.restart) {
        await writePending(s, app, mergePending(current.pending, changes), current.stagedAt);
        rt.io.err(`${app}: ${report.changed.join(', ')} staged on ${s.appservers.map((n) => n.name).join(', ')}; the next update (or env change) rolls ${changes.length === 1 ? 'it' : 'them'} out`);
        return;
      }
      const states = await s.status();
      const before = beforeOf(app, states);
      const inactive = s.appservers.filter((n) => !before.get(n.name)?.active);
      if (!current.active || inactive.length > 0) {
        throw new ExitError(`${app} has no active instance on ${(inactive.length ? inactive : s.appservers).map((n) => n.name).join(', ')}: deploy it with silver update first (or stage the change with --no-restart)`, 1);
      }
      // (each node clones its own active instance: app servers serving different ones would end
      // up with one instance name holding different code, the difference hidden from status)
      const actives = new Set(s.appservers.map((n) => before.get(n.name)!.active));
      if (actives.size > 1) {
        throw new ExitError(`${app}'s app servers serve different instances (${s.appservers.map((n) => `${n.name}: ${before.get(n.name)!.active}`).join(', ')}): bring them to one with silver update or silver rollback first (or stage the change with --no-restart)`, 1);
      }
      const instance = nextInstance(app, states, rt.now());
      report.instance = instance;
      const port = freePort([...states.values()].flat().flatMap((a) => a.instances.map((i) => i.port)));
      const env = envFile(withSettings({ ...silverVars(current.active), PORT: String(port), SILVER_INSTANCE_NAME: instance }, applyChanges(current.settings, changes)));
      let activatedAll = false;
      try {
        await Promise.all(s.appservers.map((n) => r.stageClone(n.name, before.get(n.name)!.active!, instance, port, env)));
        await r.writeRecord({ state: 'running', kind: 'env', app, instance, holder: lease.holder, started: new Date(t0).toISOString(), before: Object.fromEntries(before) }, seq);
        const primary = s.appservers[0]!.name;
        await r.activateAll((node) => r.activate(node, instance, node === primary ? 'primary' : 'secondary', [], '-', before.get(node)!.active));
        activatedAll = true;
        await Promise.all([r.finishStops(), pruneAll(r, s)]);
        if (current.pending.length) await writePending(s, app, null, current.stagedAt).catch((x: Error) => rt.io.err(`warning: the staged settings could not be cleared (${x.message})`));
        await r.closeRecord('activated');
      } catch (e) {
        const err = e instanceof StepError ? e : new StepError('env', s.appservers[0]!.name, (e as Error).message);
        report.failure = { node: err.node, step: err.step, error: redact(err.message, secretValues) };
        rt.io.err(`${err.node}: ${err instanceof Interrupted ? 'INTERRUPTED' : 'FAILED'} at ${err.step}: ${err.message}`);
        if (activatedAll) {
          await r.closeRecord('activated').catch(() => undefined);
        } else {
          const ok = await r.restore(instance, before, err.node);
          if (ok) await r.closeRecord(err instanceof Interrupted ? 'interrupted, rolled back' : 'failed, rolled back').catch(() => undefined);
        }
      }
      report.ok = report.failure === null;
      report.activated = report.ok ? [...r.switched] : [];
      report.rolledBack = [...r.rolledBack];
      report.interrupted = r.interrupted;
      report.steps = redactSteps(r.steps, secretValues);
    });
    report.seconds = (rt.now() - t0) / 1000;
    const f = report.failure;
    const result = report.staged ? 'staged (--no-restart)' : !f ? 'ok' : `${report.interrupted ? 'interrupted' : 'failed'} at ${f.step} on ${f.node}: ${f.error} (rolled back)`;
    await record(s.state, historyEntry({ at: new Date(t0).toISOString(), kind: 'env', app, ...(report.instance ? { instance: report.instance } : {}), seconds: report.seconds, result, detail: changes.map((c) => ('unset' in c ? `-${c.key}` : c.key)).join(' ') }), (t) => rt.io.err(t));
    return report;
  } finally {
    await s.close();
  }
}

/** Staged changes with the new ones: one entry per key, the newest winning. */
function mergePending(old: readonly SettingChange[], changes: readonly SettingChange[]): SettingChange[] {
  const keys = new Set(changes.map((c) => c.key));
  return [...old.filter((c) => !keys.has(c.key)), ...changes];
}

export function renderEnvList(r: EnvListReport): string {
  if (r.settings.length === 0) return `${r.app}: no settings (silver env set ${r.app} FILE KEY=VALUE)`;
  return r.settings.map((l) => `${l.key}  ${l.fingerprint}${l.staged ? `  (staged: ${l.staged} with the next rollout)` : ''}`).join('\n');
}

export function renderEnvChange(r: EnvChangeReport): string {
  if (r.staged) return `${r.app}: ${r.changed.join(', ')} staged; not rolled out yet`;
  if (r.ok) return `${r.app}: ${r.changed.join(', ')} changed: ${r.instance} active on ${r.activated.length} app server${r.activated.length === 1 ? '' : 's'} (${r.activated.join(', ')}) in ${r.seconds.toFixed(1)}s`;
  const f = r.failure!;
  return [
    `${r.app}: changing ${r.changed.join(', ')} ${r.interrupted ? `INTERRUPTED (${r.interrupted})` : 'FAILED'} on ${f.node} at ${f.step}: ${f.error}`,
    r.rolledBack.length ? `rolled back: ${r.rolledBack.join(', ')}; every app server serves its previous instance and settings` : 'no app server was switched; the settings are unchanged',
  ].join('\n');
}
