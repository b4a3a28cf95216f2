import { printable } from '../output/printable.js';
import { SERVICES } from '../services/index.js';

/**
 * A backup's `manifest.json`: what was dumped, from where, and what the dump must give back —
 * its size and sha256 (checked before anything is sent to a node) and the rows of each table
 * (checked after a real restore, by `restore` and `backup --verify`).
 */
export interface Manifest {
  format: 1;
  nodeset: string;
  app: string;
  service: string;
  database: string;
  /** The service node it was dumped on. */
  node: string;
  stamp: string;
  /** The dump's file name in the backup's folder. */
  file: string;
  size: number;
  sha256: string;
  /** Rows per table (`schema.table` for PostgreSQL, `table` for MySQL). */
  rowCounts: Record<string, number>;
  /** `snapshot`: counted on the node in the dump's own snapshot; `dump`: counted in the dump's rows. */
  rowCountsFrom: 'snapshot' | 'dump';
  silverVersion: string;
  serverVersion: string;
  tool: string;
  /** When the dump started (ISO). */
  time: string;
  seconds: number;
}

/** What the helper's `dump` prints: `file SIZE SHA256`, `server ...`, `tool ...`, maybe `counts JSON`. */
export interface DumpHeader {
  size: number;
  sha256: string;
  server: string;
  tool: string;
  counts: Record<string, number> | null;
}

const SHA = /^[0-9a-f]{64}$/;
const STAMP = /^\d{8}T\d{6}Z(?:-\d{1,3})?$/;
/** What an app's name (or its database's, for an orphan's backups) can be: a backup folder's name. */
export const APP_NAME = /^[a-z][a-z0-9_-]{0,31}$/;
const FILE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$/;

export const isStamp = (s: string): boolean => STAMP.test(s);

/** `20261202T100000Z` for a time (UTC); `-N` added while `taken` has it. */
export function stampFor(ms: number, taken: (stamp: string) => boolean = () => false): string {
  const base = new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z').replaceAll('-', '').replaceAll(':', '');
  if (!taken(base)) return base;
  for (let n = 2; n < 1000; n++) if (!taken(`${base}-${n}`)) return `${base}-${n}`;
  throw new Error(`no free stamp for ${base}`);
}

/** Rows per table from JSON: whole numbers ≥ 0, or a reason. */
export function parseCounts(text: string): Record<string, number> {
  const v = JSON.parse(text) as unknown;
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('row counts are not an object');
  const out: Record<string, number> = {};
  for (const [k, n] of Object.entries(v as Record<string, unknown>)) {
    if (!Number.isSafeInteger(n) || (n as number) < 0) throw new Error(`row count of ${printable(k)} is not a whole number`);
    out[k] = n as number;
  }
  return out;
}

/** The `counts JSON` line of a helper's output. */
export function countsLine(stdout: string): Record<string, number> {
  const line = stdout.split('\n').find((l) => l.startsWith('counts '));
  if (!line) throw new Error('the helper printed no row counts');
  return parseCounts(line.slice('counts '.length));
}

export function parseDumpHeader(stdout: string): DumpHeader {
  const lines = stdout.split('\n');
  const get = (key: string) => lines.find((l) => l.startsWith(`${key} `))?.slice(key.length + 1) ?? null;
  const file = /^(\d+) ([0-9a-f]{64})$/.exec(get('file') ?? '');
  if (!file) throw new Error(`the dump's size and sha256 are missing from the helper's answer`);
  const counts = get('counts');
  return { size: Number(file[1]), sha256: file[2]!, server: get('server') ?? 'unknown', tool: get('tool') ?? 'unknown', counts: counts === null ? null : parseCounts(counts) };
}

/** A manifest read from a file: every field checked (it names a file to read and counts to trust). */
export function parseManifest(text: string): Manifest {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`manifest.json is not JSON: ${(e as Error).message}`);
  }
  if (!v || typeof v !== 'object') throw new Error('manifest.json is not an object');
  const str = (k: string) => {
    if (typeof v[k] !== 'string') throw new Error(`manifest.json: ${k} is missing`);
    return v[k] as string;
  };
  const num = (k: string) => {
    if (!Number.isSafeInteger(v[k]) || (v[k] as number) < 0) throw new Error(`manifest.json: ${k} is not a whole number`);
    return v[k] as number;
  };
  if (v['format'] !== 1) throw new Error(`manifest.json: format ${String(v['format'])} is not one this silver reads`);
  const m: Manifest = {
    format: 1,
    nodeset: str('nodeset'),
    app: str('app'),
    service: str('service'),
    database: str('database'),
    node: str('node'),
    stamp: str('stamp'),
    file: str('file'),
    size: num('size'),
    sha256: str('sha256'),
    rowCounts: parseCounts(JSON.stringify(v['rowCounts'] ?? null)),
    rowCountsFrom: v['rowCountsFrom'] === 'dump' ? 'dump' : 'snapshot',
    silverVersion: str('silverVersion'),
    serverVersion: str('serverVersion'),
    tool: str('tool'),
    time: str('time'),
    seconds: typeof v['seconds'] === 'number' ? v['seconds'] : 0,
  };
  if (!APP_NAME.test(m.app)) throw new Error(`manifest.json: app "${m.app}" is not an app name`);
  const svc = SERVICES.get(m.service);
  if (!svc) throw new Error(`manifest.json: service "${m.service}" is not one silver knows`);
  if (m.database !== svc.dbName(m.app)) throw new Error(`manifest.json: database "${m.database}" is not ${m.app}'s on ${m.service}`);
  if (!FILE.test(m.file)) throw new Error(`manifest.json: file "${m.file}" is not a plain file name`);
  if (!SHA.test(m.sha256)) throw new Error('manifest.json: sha256 is not 64 hex digits');
  if (!STAMP.test(m.stamp)) throw new Error(`manifest.json: stamp "${m.stamp}" is not a backup stamp`);
  if (Number.isNaN(Date.parse(m.time))) throw new Error('manifest.json: time is not a time');
  return m;
}

/** Differences between the rows a manifest expects and those a restore gave ([] when equal). */
export function compareCounts(expected: Record<string, number>, got: Record<string, number>): string[] {
  const out: string[] = [];
  // (table names are the app's to choose: shown printable)
  for (const t of Object.keys(expected).sort()) {
    if (!(t in got)) out.push(`${printable(t)}: missing after the restore (expected ${expected[t]} rows)`);
    else if (got[t] !== expected[t]) out.push(`${printable(t)}: ${got[t]} rows, expected ${expected[t]}`);
  }
  for (const t of Object.keys(got).sort()) if (!(t in expected)) out.push(`${printable(t)}: not in the backup (${got[t]} rows after the restore)`);
  return out;
}

export const totalRows = (counts: Record<string, number>): number => Object.values(counts).reduce((a, b) => a + b, 0);
