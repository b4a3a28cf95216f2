import type { Session } from '../deploy/session.js';
import { APP_NAME } from './manifest.js';
import type { Versioned } from '../deploy/shared-state.js';

/**
 * The nodeset's shared-state record `backups`: per app the last backup and the last
 * verification (a real restore into a throw-away database, its row counts compared), written
 * by `silver backup` and `silver backup --verify`, read by `silver status`.
 */
export interface BackupEntry {
  lastBackup: string | null;
  lastBackupStamp: string | null;
  /** When the last verification ran (null: never), which backup, and its outcome. */
  lastVerified: string | null;
  verifiedStamp: string | null;
  verifyOk: boolean;
  /** How long its restore took. */
  verifySeconds: number | null;
}

export interface BackupsRecord extends Versioned {
  apps: Record<string, BackupEntry>;
}

const EMPTY: BackupEntry = { lastBackup: null, lastBackupStamp: null, lastVerified: null, verifiedStamp: null, verifyOk: false, verifySeconds: null };

const str = (v: unknown) => (typeof v === 'string' ? v : null);

/** A record as the nodes hold it (the deploy user's to write): only well-formed entries. */
export function sanitizeBackups(raw: unknown): Record<string, BackupEntry> {
  const out: Record<string, BackupEntry> = {};
  const apps = raw && typeof raw === 'object' ? (raw as { apps?: unknown }).apps : null;
  if (!apps || typeof apps !== 'object') return out;
  for (const [app, v] of Object.entries(apps as Record<string, unknown>)) {
    if (!APP_NAME.test(app) || !v || typeof v !== 'object') continue;
    const e = v as Record<string, unknown>;
    out[app] = {
      lastBackup: str(e['lastBackup']),
      lastBackupStamp: str(e['lastBackupStamp']),
      lastVerified: str(e['lastVerified']),
      verifiedStamp: str(e['verifiedStamp']),
      verifyOk: e['verifyOk'] === true,
      verifySeconds: typeof e['verifySeconds'] === 'number' ? e['verifySeconds'] : null,
    };
  }
  return out;
}

export async function readBackupsRecord(s: Session): Promise<{ apps: Record<string, BackupEntry>; seq: number }> {
  const rec = (await s.state.read<BackupsRecord>('backups')).get('backups');
  return { apps: sanitizeBackups(rec), seq: rec?.seq ?? 0 };
}

/** Read-modify-write of the record: `changes` merged into each app's entry (beside other commands: SharedState.update). */
export async function recordBackups(s: Session, changes: Record<string, Partial<BackupEntry>>): Promise<void> {
  await s.state.update<BackupsRecord>('backups', (cur) => {
    const apps = { ...sanitizeBackups(cur ?? undefined) };
    for (const [app, c] of Object.entries(changes)) apps[app] = { ...EMPTY, ...apps[app], ...c };
    return { apps };
  });
}

/** What `silver status` shows of an app's backups. */
export interface BackupAge extends BackupEntry {
  app: string;
  backupAgeSeconds: number | null;
  verifyAgeSeconds: number | null;
}

export function backupAges(apps: Record<string, BackupEntry>, names: readonly string[], now: number): BackupAge[] {
  const ageOf = (iso: string | null) => (iso && !Number.isNaN(Date.parse(iso)) ? Math.max(0, Math.round((now - Date.parse(iso)) / 1000)) : null);
  return names.map((app) => {
    const e = apps[app] ?? EMPTY;
    return { app, ...e, backupAgeSeconds: ageOf(e.lastBackup), verifyAgeSeconds: ageOf(e.lastVerified) };
  });
}

/** 42s, 5m, 3h, 2d. */
export function ageText(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

/** One line: `backups: hello last 2h ago, restore verified 1h ago; wiki none`. */
export function backupsLine(ages: readonly BackupAge[] | null): string[] {
  if (!ages || ages.length === 0) return [];
  const one = (a: BackupAge) => {
    const last = a.backupAgeSeconds === null ? 'no backup' : `last ${ageText(a.backupAgeSeconds)} ago`;
    const verified = a.verifyAgeSeconds === null ? 'never verified' : a.verifyOk ? `restore verified ${ageText(a.verifyAgeSeconds)} ago` : `verification FAILED ${ageText(a.verifyAgeSeconds)} ago`;
    return `${a.app} ${last}, ${verified}`;
  };
  return [`backups: ${ages.map(one).join('; ')}`];
}
