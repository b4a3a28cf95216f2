import { readHistory, type HistoryEntry } from '../deploy/history.js';
import { Session } from '../deploy/session.js';
import { ExitError } from '../diagnostics.js';
import type { Nodeset } from '../nodeset/types.js';
import type { Runtime } from '../runtime.js';

/** `silver history FILE [APP]`: the nodeset's changes as the nodes recorded them, oldest first. */
export async function history(ns: Nodeset, rt: Runtime, app?: string, limit = 1000): Promise<HistoryEntry[]> {
  if (app && !ns.locations.some((l) => l.app === app)) throw new ExitError(`app "${app}" is not in the locations of ${ns.file}`, 2);
  const s = await Session.open(ns, rt, []);
  try {
    return await readHistory(s.state, app, limit);
  } finally {
    await s.close();
  }
}
