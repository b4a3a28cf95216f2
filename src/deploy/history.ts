import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { join } from 'node:path';
import type { SharedState } from './shared-state.js';
import { printable } from '../output/printable.js';

/**
 * The nodeset's deploy history: one JSON line per change (update, rollback, env change,
 * maintenance switch, backup, restore, node replacement), appended to a log on every node of the
 * nodeset with the shared state (so everyone who deploys the nodeset reads the same), read back
 * from all of them and merged. Entries name keys, instances and versions, never a value.
 */
export type HistoryKind = 'update' | 'rollback' | 'env' | 'maintenance' | 'backup' | 'restore' | 'replace-node';

export interface HistoryEntry {
  id: string;
  /** ISO time the change started. */
  at: string;
  /** user@host of whoever ran it. */
  who: string;
  kind: HistoryKind;
  app?: string;
  instance?: string;
  /** The app's VERSION file (first line), or its content sum, short. */
  version?: string;
  staticOnly?: boolean;
  seconds?: number;
  /** `ok`, `failed: …`, `interrupted`, `rolled back`. */
  result: string;
  detail?: string;
}

const KEY = 'history';
const MAX_TEXT = 300;

export function who(): string {
  return `${userInfo().username}@${hostname()}`;
}

/** The app's version as people name it: its VERSION file's first line, else the content sum. */
export function appVersion(dir: string, codeSum: string | null): string | undefined {
  const f = join(dir, 'VERSION');
  if (existsSync(f)) {
    // (printable characters only: an app's VERSION is printed on people's terminals)
    const line = readFileSync(f, 'utf8').split('\n')[0]!.replace(/[\x00-\x1f\x7f-\x9f]/g, '').trim();
    if (line) return line.slice(0, 64);
  }
  return codeSum ? codeSum.slice(0, 12) : undefined;
}

/** An entry, with its id and who; texts cut short so that a line stays a line. */
export function historyEntry(fields: Omit<HistoryEntry, 'id' | 'who'>): HistoryEntry {
  // (one line, and no control character: an app's own output reaches results — a failed
  // migration's last lines — and every operator's terminal reads them)
  const cut = (t: string) => t.replace(/\s+/g, ' ').replace(/[\x00-\x1f\x7f-\x9f]/g, '').slice(0, MAX_TEXT);
  return {
    id: randomBytes(6).toString('hex'),
    who: who(),
    ...fields,
    result: cut(fields.result),
    ...(fields.detail !== undefined ? { detail: cut(fields.detail) } : {}),
  };
}

/** Appends an entry on every node; a failure is said, never fatal (the change itself happened). */
export async function record(state: SharedState, entry: HistoryEntry, say: (t: string) => void): Promise<void> {
  const n = await state.append(KEY, JSON.stringify(entry)).catch(() => 0);
  if (n === 0) say(`warning: the deploy history could not be written on any node (${entry.kind}${entry.app ? ` of ${entry.app}` : ''})`);
}

/** How many lines of the history each node keeps (silver-state append). */
const KEPT_LINES = 5000;

/** The history, oldest first, each entry once; only `app`'s when given. */
export async function readHistory(state: SharedState, app?: string, limit = 1000): Promise<HistoryEntry[]> {
  const byId = new Map<string, HistoryEntry>();
  // (one app's: every line the nodes keep is read, then the app's newest — the nodeset's newest
  // `limit` could hold none of its own)
  for (const line of await state.log(KEY, app ? KEPT_LINES : limit)) {
    try {
      const e = JSON.parse(line) as HistoryEntry;
      if (typeof e.id === 'string' && typeof e.at === 'string' && typeof e.kind === 'string') byId.set(e.id, e);
    } catch {
      // (a damaged line is skipped; the other nodes have it)
    }
  }
  // (a stable sort: entries of one time stay in the order the nodes logged them)
  return [...byId.values()].filter((e) => !app || e.app === app).sort((a, b) => a.at.localeCompare(b.at)).slice(-limit);
}

export function renderHistory(entries: readonly HistoryEntry[]): string {
  if (entries.length === 0) return 'no history yet';
  return entries
    .map((e) => {
      // (the entries come from the nodes, where a node's root, or an older silver, wrote them:
      // every field is shown printable)
      const what = [e.kind, e.app, e.instance, e.version ? `(${e.version})` : '', e.staticOnly ? 'static-only' : '', e.detail ?? ''].filter(Boolean).map(String).join(' ');
      const took = typeof e.seconds === 'number' ? ` in ${e.seconds.toFixed(1)}s` : '';
      return printable(`${String(e.at).replace('T', ' ').replace(/\.\d+Z$/, 'Z')}  ${e.who}  ${what}: ${e.result}`) + took;
    })
    .join('\n');
}
