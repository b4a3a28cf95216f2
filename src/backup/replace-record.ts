import type { Session } from '../deploy/session.js';
import type { Versioned } from '../deploy/shared-state.js';

/**
 * The record of a service node's replacement (replace-node of a database node), kept in the
 * nodes' shared state under `replace`: while it is open (`backups` set) it names, per app, the
 * dump that goes onto the new node — a dump no `silver backup --keep` may prune (for an app not
 * restored yet it may be the only copy of its data).
 */
export interface ReplaceRecord extends Versioned {
  node: string;
  /** app -> the stamp of the dump that goes onto the new node (null: closed). */
  backups: Record<string, string> | null;
  started: string;
  /** The node was destroyed and built anew by this replacement (a re-run builds it no more). */
  rebuilt?: boolean;
  /** The apps whose dump was restored on the new node with the manifest's rows. */
  restored?: string[];
  /** The new node's host key, as pinned when it was built (another node of its name is not it). */
  hostKey?: string;
}

/** The nodeset's replacement record (null: none yet). */
export async function readReplaceRecord(s: Session): Promise<ReplaceRecord | null> {
  return ((await s.state.read<ReplaceRecord>('replace')).get('replace') ?? null) as ReplaceRecord | null;
}

/** The stamps an open replacement will restore, by app (none when no replacement is open). */
export function heldStamps(rec: ReplaceRecord | null): Map<string, string> {
  return new Map(Object.entries(rec?.backups ?? {}).filter(([, stamp]) => typeof stamp === 'string'));
}
