import { sudoHelper } from './helpers.js';

/**
 * `silver-logs` (setup-layers/base/bin), on every node: journal lines as JSON — an app's, or
 * silver's own steps (`silver`) — from a time or a cursor; `follow` until standard input closes.
 */
export const logsVerb = (who: string, lines: number, from: number | { cursor: string } | null, follow: boolean): string[] =>
  sudoHelper('silver-logs', who, String(lines), from === null ? '-' : typeof from === 'number' ? String(from) : `cursor:${from.cursor}`, follow ? 'follow' : 'once');
