import { deployVerbs } from '../remote/commands/deploy.js';
import type { AddressedNode } from '../setup/plan.js';
import type { Session } from './session.js';
import { applyChanges, formatPending, parseEnvFile, parseStaged, SETTINGS_VAR, settingsOf, type SettingChange, type Settings } from './settings.js';

/**
 * What an app's next instance starts with, read from the primary app server: the environment its
 * active instance started with (silver's variables, the services' CONFIG_*, the settings), the
 * settings staged with `--no-restart`, and the folders that outlive instances.
 */
export interface AppEnv {
  /** The active instance's environment on the primary; null before the first deploy. */
  active: Record<string, string> | null;
  /** The settings the next instance gets: the active ones with the staged changes applied. */
  settings: Settings;
  /** Changes staged with `--no-restart` and not rolled out yet. */
  pending: SettingChange[];
  /** When the newest copy of them was staged (-1: none): a new list is stamped later than it. */
  stagedAt: number;
}

export const filesDir = (app: string) => `/var/lib/silverlining/files/${app}`;
export const cacheDir = (app: string, generation: string) => `/var/cache/silverlining/${app}/${generation}`;

export async function readAppEnv(s: Session, app: string, node: AddressedNode = s.appservers[0]!): Promise<AppEnv> {
  // (the staged settings from every app server, the newest copy taken: a --no-restart killed
  // halfway, or this node made anew, left them on some only; an app server that cannot be
  // reached is left out, this node never)
  const read = (n: AddressedNode) => s.remote.run(n.name, 'reading the staged settings', deployVerbs.pending('get', app));
  const [text, own, others] = await Promise.all([
    s.remote.run(node.name, 'reading the environment of the active instance', deployVerbs.envGet(app)),
    read(node),
    Promise.allSettled(s.appservers.filter((n) => n.name !== node.name).map(read)),
  ]);
  const copies = [own, ...others.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))].map(parseStaged);
  const newest = copies.reduce((a, b) => (b.stamp > a.stamp ? b : a));
  const active = text.trim() ? parseEnvFile(text) : null;
  return { active, pending: newest.changes, stagedAt: newest.stamp, settings: applyChanges(active ? settingsOf(active) : {}, newest.changes) };
}

/** Silver's variables of the active environment (the settings and their index left out). */
export function silverVars(active: Record<string, string>): Record<string, string> {
  const own = new Set([...Object.keys(settingsOf(active)), SETTINGS_VAR]);
  return Object.fromEntries(Object.entries(active).filter(([k]) => !own.has(k)));
}

/**
 * The folders of the new instance: the app's files (CONFIG_FILES, kept for ever) and its cache
 * (SILVER_CACHE: the one the active instance used, or a new one named after this instance when
 * there is none or the update clears it).
 */
export function folderVars(app: string, instance: string, active: Record<string, string> | null, clearCache: boolean): Record<string, string> {
  const prefix = cacheDir(app, '');
  const kept = active?.['SILVER_CACHE'];
  const cache = !clearCache && kept?.startsWith(prefix) && /^[a-z0-9][a-z0-9._-]*$/.test(kept.slice(prefix.length)) ? kept : cacheDir(app, instance);
  return { CONFIG_FILES: filesDir(app), SILVER_CACHE: cache };
}

/**
 * Staged changes on every app server (`--no-restart`); or, `null`, cleared once rolled out — as
 * an empty list. Either is stamped after `after` (AppEnv.stagedAt, the newest copy read) whatever
 * this machine's clock says: a list, or a clear, that reaches only some app servers still wins
 * over the copies left on the others.
 */
export async function writePending(s: Session, app: string, changes: readonly SettingChange[] | null, after: number): Promise<void> {
  const stamp = Math.max(Date.now(), after + 1);
  await Promise.all(s.appservers.map((n) => s.remote.run(n.name, changes?.length ? 'staging the settings' : 'clearing the staged settings', deployVerbs.pending('set', app), formatPending(changes ?? [], stamp))));
}
