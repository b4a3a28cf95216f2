import { join } from 'node:path';
import { underDeployLock, Stopped, type Steps } from '../backup/lock.js';
import { APP_NAME, compareCounts, countsLine, parseDumpHeader, stampFor, totalRows, type DumpHeader, type Manifest } from '../backup/manifest.js';
import { ageText, recordBackups, type BackupEntry } from '../backup/record.js';
import { heldStamps, readReplaceRecord } from '../backup/replace-record.js';
import { backupsBase, fileSum, listBackups, PartialBackup, pruneBackups, resolveBackup, writeNote, type StoredBackup } from '../backup/store.js';
import { fetchStaged, LONG_MS, putStaged, scratchSuffix, stagedId } from '../backup/transfer.js';
import { VERSION } from '../cli.js';
import { holdApp, releaseApp, type ModeEntry } from '../deploy/modes.js';
import { historyEntry, record } from '../deploy/history.js';
import { Session } from '../deploy/session.js';
import { ExitError } from '../diagnostics.js';
import type { Nodeset } from '../nodeset/types.js';
import { table } from '../output/table.js';
import { copyNode } from '../setup/backup-wiring.js';
import { dbVerbs, scratchDatabase } from '../remote/commands/db.js';
import { sudoHelper } from '../remote/commands/helpers.js';
import type { Runtime } from '../runtime.js';
import { service } from '../services/index.js';
import type { ServiceDescriptor } from '../services/types.js';

/**
 * `silver backup`, `silver backups`, `silver restore`, `silver backup --verify`: each app's
 * database dumped on its service node and kept on this machine with a manifest (src/backup/),
 * restored under the deploy lock with the app in maintenance, or restored into a throw-away
 * database to prove the backup gives back what its manifest says.
 */

const appsOf = (ns: Nodeset) => [...new Set(ns.locations.map((l) => l.app))];

/**
 * An app of the locations, or an orphan (a database no app of the file has: backed up under its
 * own name) whose backups are kept in `base`; anything else is checkApp's bad input.
 */
function checkKept(ns: Nodeset, app: string, base: string): void {
  if (appsOf(ns).includes(app) || (APP_NAME.test(app) && listBackups(base, ns.name, app).some((b) => b.manifest))) return;
  // (an orphan's backups are kept under its database's name: MariaDB's for old-shop is old_shop)
  const kept = APP_NAME.test(app) ? ns.services.map((n) => service(n).dbName(app)).find((db) => db !== app && listBackups(base, ns.name, db).some((b) => b.manifest)) : undefined;
  if (kept) throw new ExitError(`app "${app}" is not in the locations of ${ns.file}; the backups of its database are kept under its database's name: ${kept}`, 2);
  checkApp(ns, app);
}

/**
 * `--app` of a command that asks the service nodes: an app of the locations, or a name an
 * orphan's database could have (the nodes tell); anything else — or any other name in a nodeset
 * without services — is checkApp's bad input.
 */
function checkAppOrOrphan(ns: Nodeset, app: string | undefined): void {
  if (app !== undefined && !appsOf(ns).includes(app) && (!APP_NAME.test(app) || ns.services.length === 0)) checkApp(ns, app);
}

function checkApp(ns: Nodeset, app: string): void {
  if (!appsOf(ns).includes(app)) throw new ExitError(`app "${app}" is not in the locations of ${ns.file} (it serves: ${appsOf(ns).join(', ') || 'nothing'})`, 2);
}

function serviceNode(s: Session, name: string): string {
  const n = s.all.find((x) => x.role === `service:${name}`);
  if (!n) throw new ExitError(`nodeset ${s.ns.name} has no reachable [service:${name}] node`, 1);
  return n.name;
}

const message = (e: unknown) => (e as Error).message;

export interface BackupOptions {
  app?: string;
  /** Another place for the backups than ~/.silverlining/backups. */
  to?: string;
  /** Keep only the newest N backups of each app backed up. */
  keep?: number;
}

export interface AppBackup {
  app: string;
  /** The database of an app the locations no longer name (`app` is the database's name). */
  orphan?: true;
  service: string;
  database: string;
  node: string;
  ok: boolean;
  stamp: string | null;
  path: string | null;
  size: number | null;
  sha256: string | null;
  rowCounts: Record<string, number> | null;
  seconds: number;
  error: string | null;
}

export interface BackupReport {
  nodeset: string;
  ok: boolean;
  backups: AppBackup[];
  /** Folders removed by --keep. */
  pruned: string[];
  notes: string[];
}

export interface AppDatabase {
  app: string;
  svc: ServiceDescriptor;
  node: string;
  db: string;
  /** A database silver made for an app the nodeset's locations no longer name (`app` is its database's name). */
  orphan?: true;
}

/**
 * Why a database the node names cannot be backed up as an orphan (null: it can, under its own
 * name): a name from the node must be a database's name of this service and no app's of the file
 * nor another orphan's already taken (`taken`), whose folder it would share.
 */
function orphanProblem(db: string, svc: ServiceDescriptor, apps: readonly string[], taken: readonly string[]): string | null {
  if (!APP_NAME.test(db) || svc.dbName(db) !== db) return `a ${svc.name} database named ${JSON.stringify(db).slice(0, 80)} is no app's`;
  if (apps.includes(db) || taken.includes(db)) return `the ${svc.name} database ${db} has the name of another app's backups (silver backup --app cannot tell them apart)`;
  return null;
}

/** The databases silver made on a service node, as its helper lists them (`db NAME` lines). */
async function listedDatabases(s: Session, node: string, svc: ServiceDescriptor): Promise<Set<string>> {
  const out = await s.remote.run(node, `listing the ${svc.name} databases`, dbVerbs.list(svc));
  return new Set(out.split('\n').filter((l) => l.startsWith('db ')).map((l) => l.slice(3)));
}

/**
 * The apps (of the nodeset's locations) with a database on a service node, by service; with
 * `orphans`, every other database silver made there too — an app taken out of the file leaves
 * its database behind, data no one else keeps (the service nodes' scheduled backups dump it as
 * well). `only`: that app alone, or the orphan of that name.
 */
export async function appDatabases(s: Session, only?: string, orphans = false, skipped: string[] = []): Promise<AppDatabase[]> {
  const out: AppDatabase[] = [];
  for (const name of s.ns.services) {
    const svc = service(name);
    const node = serviceNode(s, name);
    const listed = await listedDatabases(s, node, svc);
    const apps = appsOf(s.ns);
    for (const app of apps) if ((!only || app === only) && listed.has(svc.dbName(app))) out.push({ app, svc, node, db: svc.dbName(app) });
    if (!orphans) continue;
    const ours = new Set(apps.map((a) => svc.dbName(a)));
    for (const db of [...listed].sort()) {
      if (ours.has(db) || (only && db !== svc.dbName(only))) continue;
      const problem = orphanProblem(db, svc, apps, out.map((o) => o.app));
      if (problem) skipped.push(`${node}: ${problem}: not backed up`);
      else out.push({ app: db, svc, node, db, orphan: true });
    }
  }
  return out;
}

/**
 * `silver backup FILE [--app APP] [--to DIR] [--keep N]`: for each app with a database, a dump
 * from its service node (one at a time), checked whole, kept with its manifest. A failed dump
 * leaves nothing behind and makes the exit code 1; the others go on.
 */
export async function backup(ns: Nodeset, rt: Runtime, opts: BackupOptions = {}): Promise<BackupReport> {
  checkAppOrOrphan(ns, opts.app);
  if (ns.services.length === 0) throw new ExitError(`nodeset ${ns.name} has no database service: nothing to back up`, 1);
  const base = backupsBase(rt.state.root, opts.to);
  const s = await Session.open(ns, rt, ns.services.map((n) => `service:${n}`));
  const report: BackupReport = { nodeset: ns.name, ok: true, backups: [], pruned: [], notes: [] };
  // (databases the node named that are not backed up: the run is not ok)
  let unsaved = 0;
  let current: PartialBackup | null = null;
  const stop: { sig: string | null } = { sig: null };
  const dispose = rt.onInterrupt((sig) => {
    if (stop.sig) {
      current?.abort();
      process.exit(130);
    }
    stop.sig = sig;
    rt.io.err(`silver: ${sig}: stopping after the current piece; nothing half-written is kept (again to stop at once)`);
  });
  try {
    await s.checkHelpers(ns.services);
    const skipped: string[] = [];
    const targets = await appDatabases(s, opts.app, true, skipped);
    report.notes.push(...skipped);
    unsaved = skipped.length;
    if (targets.length === 0) {
      if (opts.app && !appsOf(ns).includes(opts.app)) checkApp(ns, opts.app);
      if (opts.app) throw new ExitError(`${opts.app} has no database on ${ns.services.join(', ')} (silver update creates it)`, 1);
      report.notes.push(`no app of nodeset ${ns.name} has a database yet`);
    }
    for (const t of targets) {
      if (stop.sig) break;
      const r = await backupOne(s, t, base, (p) => (current = p), () => stop.sig);
      current = null;
      if (t.orphan) r.orphan = true;
      report.backups.push(r);
      const of = t.orphan ? ' (an app no longer in the locations: its database is still there)' : '';
      rt.io.err(r.ok ? `${t.node}: ${t.app}: ${t.db} backed up${of} (${r.size} bytes, ${totalRows(r.rowCounts!)} rows) in ${r.seconds.toFixed(1)}s` : `${t.node}: ${t.app}: backup FAILED${of}: ${r.error}`);
      if (t.orphan && r.ok) report.notes.push(`${t.app}: not in the locations of ${ns.file}; its ${t.svc.name} database on ${t.node} is backed up (as the nodes' schedule does) while silver's record of it is there (its password file in /var/lib/silverlining/services/${t.svc.name}/)`);
    }
    const done = report.backups.filter((b) => b.ok);
    if (done.length > 0) {
      await recordBackups(s, Object.fromEntries(done.map((b): [string, Partial<BackupEntry>] => [b.app, { lastBackup: new Date(rt.now() - b.seconds * 1000).toISOString(), lastBackupStamp: b.stamp }]))).catch((e) =>
        report.notes.push(`the nodes' record of backups was not updated: ${message(e)}`),
      );
    }
    if (opts.keep !== undefined && done.length > 0) {
      // (the dumps an unfinished replace-node restores stay: for an app not restored yet, the
      // only copy of its data; a record that cannot be read keeps every backup)
      const held = await readReplaceRecord(s).then(heldStamps, () => null);
      if (!held) report.notes.push("nothing pruned: the nodes' record of an unfinished replacement could not be read");
      else
        for (const b of done) {
          const keep = held.get(b.app);
          report.pruned.push(...pruneBackups(base, ns.name, b.app, opts.keep, keep, b.service));
          if (keep) report.notes.push(`${b.app}: backup ${keep} kept: the unfinished replace-node restores it`);
        }
    }
    for (const b of report.backups) {
      await record(s.state, historyEntry({ at: new Date(rt.now() - b.seconds * 1000).toISOString(), kind: 'backup', app: b.app, seconds: b.seconds, result: b.ok ? 'ok' : `failed: ${b.error}`, ...(b.stamp ? { detail: b.stamp } : {}) }), (t) => rt.io.err(t));
    }
  } finally {
    dispose();
    await s.close();
  }
  if (stop.sig) throw new ExitError(`interrupted (${stop.sig}): ${report.backups.filter((b) => b.ok).length} backed up, the rest not`, 130);
  report.ok = report.backups.every((b) => b.ok) && unsaved === 0;
  return report;
}

async function backupOne(
  s: Session,
  t: { app: string; svc: ServiceDescriptor; node: string; db: string },
  base: string,
  hold: (p: PartialBackup) => void,
  stopped: () => string | null,
  /** A dump the node's timer made (`silver-backup`), instead of a dump taken now. */
  scheduled?: { stamp: string; stage: () => Promise<{ id: string; header: DumpHeader; time: string }>; dumpedOn?: string },
): Promise<AppBackup> {
  const t0 = s.rt.now();
  const r: AppBackup = { app: t.app, service: t.svc.name, database: t.db, node: t.node, ok: false, stamp: null, path: null, size: null, sha256: null, rowCounts: null, seconds: 0, error: null };
  let id = stagedId();
  let partial: PartialBackup | null = null;
  try {
    let header: DumpHeader;
    let time = new Date(t0).toISOString();
    if (scheduled) {
      const staged = await scheduled.stage();
      id = staged.id;
      header = staged.header;
      time = staged.time;
    } else {
      header = parseDumpHeader(await s.remote.run(t.node, `the dump of ${t.db}`, dbVerbs.dump(t.svc, t.db, id), undefined, LONG_MS));
    }
    const p = new PartialBackup(base, s.ns.name, t.app, scheduled ? () => scheduled.stamp : (taken) => stampFor(t0, taken), `${t.app}.${t.svc.backup.ext}`);
    partial = p;
    hold(p);
    const counter = t.svc.backup.counter?.();
    const got = await fetchStaged(s.remote, t.node, t.svc, id, header.size, (chunk) => {
      p.append(chunk);
      counter?.write(chunk);
      const sig = stopped();
      if (sig) throw new Error(`interrupted (${sig})`);
    });
    if (got.size !== header.size || got.sha256 !== header.sha256) throw new Error(`the dump arrived damaged (${got.size} bytes, sha256 ${got.sha256}; the node's: ${header.size} bytes, ${header.sha256})`);
    const { head, tail } = p.ends();
    const problem = t.svc.backup.problem(head, tail, got.size);
    if (problem) throw new Error(problem);
    const rowCounts = t.svc.backup.counts === 'snapshot' ? header.counts : counter!.counts();
    if (!rowCounts) throw new Error('the node counted no rows');
    const manifest: Manifest = {
      format: 1,
      nodeset: s.ns.name,
      app: t.app,
      service: t.svc.name,
      database: t.db,
      node: scheduled?.dumpedOn ?? t.node,
      stamp: p.stamp,
      file: p.file,
      size: got.size,
      sha256: got.sha256,
      rowCounts,
      rowCountsFrom: t.svc.backup.counts,
      silverVersion: scheduled ? `${VERSION} (scheduled on ${scheduled.dumpedOn ?? t.node})` : VERSION,
      serverVersion: header.server,
      tool: header.tool,
      time,
      seconds: (s.rt.now() - t0) / 1000,
    };
    Object.assign(r, { ok: true, stamp: p.stamp, path: p.commit(manifest), size: got.size, sha256: got.sha256, rowCounts });
    partial = null;
  } catch (e) {
    r.error = message(e);
  } finally {
    partial?.abort();
    await s.remote.exec(t.node, dbVerbs.forget(t.svc, id)).catch(() => undefined);
  }
  r.seconds = (s.rt.now() - t0) / 1000;
  return r;
}

/**
 * `silver backup --pull FILE [--app APP] [--to DIR]`: the dumps the service nodes' timers made
 * (`backup =`), each one not kept here yet read off, checked whole (size, sha256, a whole dump)
 * and kept with a manifest like any backup, under its node's stamp. Row counts: PostgreSQL's
 * from the node's snapshot, MariaDB's counted in the dump as it arrives.
 */
export async function pullBackups(ns: Nodeset, rt: Runtime, opts: { app?: string; to?: string } = {}): Promise<BackupReport> {
  checkAppOrOrphan(ns, opts.app);
  if (ns.services.length === 0) throw new ExitError(`nodeset ${ns.name} has no database service: nothing to pull`, 1);
  const base = backupsBase(rt.state.root, opts.to);
  // (a service node that is gone is no reason to stop: its dumps' copies are on the copy node)
  const s = await Session.open(ns, rt);
  const report: BackupReport = { nodeset: ns.name, ok: true, backups: [], pruned: [], notes: [] };
  let unsaved = 0;
  // (orphans pulled, by the service whose they are: one name, one service's)
  const orphanOf = new Map<string, string>();
  try {
    for (const name of ns.services) {
      const svc = service(name);
      const dumpedOn = ns.nodes.find((n) => n.role === `service:${name}`)!.name;
      const source = await scheduledSource(s, dumpedOn, report.notes);
      if (!source) continue;
      const { node, listed } = source;
      if (listed.length === 0) report.notes.push(`${node}: no scheduled backup${ns.backupSchedules?.[name] ? ' yet' : ` (the nodeset has no backup = in [service:${name}])`}`);
      // (from a copy, the pieces come through the copy node's silver-backup)
      const via: ServiceDescriptor = node === dumpedOn ? svc : { ...svc, helper: 'silver-backup' };
      // (the dumps of a database no app of the file has — an orphan, as silver backup takes it —
      // under its own name; each such database said once, a name that cannot be one not pulled)
      const said = new Set<string>();
      for (const [db, stamp] of listed) {
        const named = appsOf(ns).find((a) => svc.dbName(a) === db);
        if (!named) {
          const problem = orphanProblem(db, svc, appsOf(ns), [...orphanOf].filter(([, by]) => by !== svc.name).map(([n]) => n));
          if (!said.has(db)) {
            said.add(db);
            if (problem) unsaved++;
            else orphanOf.set(db, svc.name);
            report.notes.push(problem ? `${node}: ${problem}: its scheduled backups not pulled` : `${db}: not in the locations of ${ns.file}; the scheduled backups of its ${svc.name} database are pulled all the same`);
          }
          if (problem) continue;
        }
        const app = named ?? db;
        if (opts.app && app !== opts.app) continue;
        if (listBackups(base, ns.name, app).some((b) => b.stamp === stamp)) continue;
        const r = await backupOne(s, { app, svc: via, node, db }, base, () => undefined, () => null, {
          stamp,
          dumpedOn,
          stage: async () => {
            const argv = node === dumpedOn ? sudoHelper('silver-backup', 'stage', db, stamp) : sudoHelper('silver-backup', 'stage-copy', dumpedOn, db, stamp);
            const out = await s.remote.run(node, `staging the scheduled backup ${stamp} of ${db}`, argv);
            const id = /^id ([a-z0-9]{12})$/m.exec(out)?.[1];
            const time = /^time (\S+)$/m.exec(out)?.[1];
            if (!id || !time || Number.isNaN(Date.parse(time))) throw new Error(`${node}: the scheduled backup ${stamp} of ${db} has no id or time`);
            return { id, header: parseDumpHeader(out), time };
          },
        });
        if (!named) r.orphan = true;
        report.backups.push(r);
        rt.io.err(r.ok ? `${node}: ${app}: scheduled backup ${stamp} pulled (${r.size} bytes, ${totalRows(r.rowCounts!)} rows)` : `${node}: ${app}: pulling ${stamp} FAILED: ${r.error}`);
      }
    }
    const done = report.backups.filter((b) => b.ok);
    if (done.length === 0 && report.notes.length === 0) report.notes.push('every scheduled backup is here already');
  } finally {
    await s.close();
  }
  report.ok = report.backups.every((b) => b.ok) && unsaved === 0;
  return report;
}

/**
 * Where the scheduled dumps of a service node are read: the node itself, or, when it cannot be
 * reached, the copy node (its copies of that node's dumps); null (said in `notes`) when neither.
 */
async function scheduledSource(s: Session, dumpedOn: string, notes: string[]): Promise<{ node: string; listed: [string, string][] } | null> {
  const parse = (out: string, re: RegExp) => out.split('\n').map((l) => re.exec(l)).filter((m): m is RegExpExecArray => m !== null);
  const STAMP_RE = '(\\d{8}T\\d{6}Z(?:-\\d{1,3})?)';
  if (!s.missing.some((m) => m.name === dumpedOn)) {
    const out = await s.remote.run(dumpedOn, 'listing the scheduled backups', sudoHelper('silver-backup', 'list')).catch(() => null);
    if (out !== null) return { node: dumpedOn, listed: parse(out, new RegExp(`^backup (\\S+) ${STAMP_RE} \\d+ [0-9a-f]{64}$`)).map((m) => [m[1]!, m[2]!]) };
  }
  const copies = copyNode(s.all.filter((n) => n.name !== dumpedOn));
  if (!copies || s.missing.some((m) => m.name === copies.name)) {
    notes.push(`${dumpedOn} cannot be reached and no node keeps copies of its dumps`);
    return null;
  }
  const out = await s.remote.run(copies.name, 'listing the copies of the scheduled backups', sudoHelper('silver-backup', 'copies'));
  notes.push(`${dumpedOn} cannot be reached: its dumps come from the copies on ${copies.name}`);
  return { node: copies.name, listed: parse(out, new RegExp(`^copy (\\S+) (\\S+) ${STAMP_RE} [a-z]+ \\d+ [0-9a-f]{64}$`)).filter((m) => m[1] === dumpedOn).map((m) => [m[2]!, m[3]!]) };
}

export function renderBackupReport(r: BackupReport): string {
  const lines = r.backups.map((b) => (b.ok ? `${b.app}: ${b.service} database ${b.database} -> ${b.path} (${b.size} bytes, ${Object.keys(b.rowCounts!).length} tables, ${totalRows(b.rowCounts!)} rows)` : `${b.app}: backup of ${b.service} database ${b.database} FAILED: ${b.error}`));
  for (const p of r.pruned) lines.push(`removed ${p} (--keep)`);
  lines.push(...r.notes);
  if (r.backups.length > 0) lines.push(r.ok ? `nodeset ${r.nodeset}: ${r.backups.length} backed up` : `nodeset ${r.nodeset}: ${r.backups.filter((b) => !b.ok).length} of ${r.backups.length} backups FAILED`);
  return lines.join('\n');
}

export interface BackupListing {
  app: string;
  stamp: string;
  path: string;
  service: string | null;
  database: string | null;
  time: string | null;
  size: number | null;
  sha256: string | null;
  rows: number | null;
  error: string | null;
  verified: { ok: boolean; time: string; seconds: number | null; problems: string[] } | null;
}

/** `silver backups FILE`: the backups kept on this machine for the nodeset (nothing is asked of the nodes). */
export function listBackupsOf(ns: Nodeset, rt: Runtime, opts: { from?: string; app?: string } = {}): BackupListing[] {
  if (opts.app !== undefined) checkKept(ns, opts.app, backupsBase(rt.state.root, opts.from));
  return listBackups(backupsBase(rt.state.root, opts.from), ns.name, opts.app).map((b) => ({
    app: b.app,
    stamp: b.stamp,
    path: b.dir,
    service: b.manifest?.service ?? null,
    database: b.manifest?.database ?? null,
    time: b.manifest?.time ?? null,
    size: b.manifest?.size ?? null,
    sha256: b.manifest?.sha256 ?? null,
    rows: b.manifest ? totalRows(b.manifest.rowCounts) : null,
    error: b.error ?? null,
    verified: b.verified,
  }));
}

export function renderBackups(list: BackupListing[], now: number): string {
  if (list.length === 0) return 'no backups';
  const verified = (b: BackupListing) => {
    if (!b.verified) return 'no';
    const ago = ageText(Math.max(0, Math.round((now - Date.parse(b.verified.time)) / 1000)));
    return b.verified.ok ? `yes (${ago} ago)` : `FAILED (${ago} ago)`;
  };
  return table(
    ['APP', 'STAMP', 'SERVICE', 'SIZE', 'ROWS', 'VERIFIED'],
    list.map((b) => [b.app, b.stamp, b.service ?? '-', b.size === null ? '-' : String(b.size), b.rows === null ? '-' : String(b.rows), b.error ? `damaged: ${b.error}` : verified(b)]),
  );
}

/** A local dump against its manifest: problems, [] when it is the file the manifest describes. */
function localProblems(b: StoredBackup): string[] {
  const m = b.manifest!;
  let sum: { sha256: string; size: number };
  try {
    sum = fileSum(join(b.dir, m.file));
  } catch (e) {
    return [`${m.file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : message(e)}`];
  }
  const out: string[] = [];
  if (sum.sha256 !== m.sha256) out.push(`sha256 mismatch: ${m.file} has ${sum.sha256}, the manifest says ${m.sha256}`);
  if (sum.size !== m.size) out.push(`size mismatch: ${m.file} has ${sum.size} bytes, the manifest says ${m.size}`);
  return out;
}

/** Sends a backup's dump to the node and loads it into a new throw-away database; its rows. */
async function loadScratch(s: Session, m: Manifest, dir: string, id: string, target: string): Promise<Record<string, number>> {
  const svc = service(m.service);
  const node = serviceNode(s, m.service);
  await putStaged(s.remote, node, svc, id, join(dir, m.file));
  return countsLine(await s.remote.run(node, `restoring ${m.stamp} into ${target}`, dbVerbs.load(svc, m.database, id, target, m.sha256), undefined, LONG_MS));
}

export interface VerifyResult {
  app: string;
  stamp: string;
  path: string;
  service: string;
  database: string;
  ok: boolean;
  /** Whether the file is the one the manifest describes (size and sha256). */
  checksum: boolean;
  /** The throw-away database it was restored into (null: none was made). */
  scratch: string | null;
  restoreSeconds: number | null;
  rowCounts: Record<string, number> | null;
  problems: string[];
  /** The throw-away database was dropped (or never made). */
  dropped: boolean;
}

export interface VerifyReport {
  nodeset: string;
  ok: boolean;
  results: VerifyResult[];
  notes: string[];
}

/**
 * `silver backup --verify FILE [--app APP] [BACKUP]`: the backup (the latest of each app, or the
 * one named) restored into `silver_verify_DB_X` on its service node, its rows counted and
 * compared with the manifest, the database dropped in every case; a file whose sha256 is not
 * the manifest's fails without being sent. Recorded next to the backup and in the nodes' record.
 */
export async function verifyBackups(ns: Nodeset, rt: Runtime, opts: { app?: string; backup?: string; from?: string } = {}): Promise<VerifyReport> {
  const base = backupsBase(rt.state.root, opts.from);
  if (opts.app !== undefined) checkKept(ns, opts.app, base);
  let picked: StoredBackup[];
  if (opts.backup) picked = [resolveBackup(base, ns.name, opts.app ?? null, opts.backup)];
  else {
    const apps = opts.app ? [opts.app] : [...new Set(listBackups(base, ns.name).filter((b) => b.manifest).map((b) => b.app))];
    picked = apps.map((a) => resolveBackup(base, ns.name, a, 'latest'));
    if (picked.length === 0) throw new ExitError(`no backups of nodeset ${ns.name} in ${join(base, ns.name)} to verify`, 1);
  }
  for (const b of picked) if (!ns.services.includes(b.manifest!.service)) throw new ExitError(`${b.dir} is a ${b.manifest!.service} backup; nodeset ${ns.name} has no [service:${b.manifest!.service}]`, 2);
  const services = [...new Set(picked.map((b) => b.manifest!.service))];
  const s = await Session.open(ns, rt, services.map((n) => `service:${n}`));
  const report: VerifyReport = { nodeset: ns.name, ok: true, results: [], notes: [] };
  // A signal lets the restore under way end and its database be dropped; no other one starts.
  const stop: { sig: string | null } = { sig: null };
  const dispose = rt.onInterrupt((sig) => {
    if (stop.sig) {
      rt.io.err(`silver: ${sig} again: stopping now; a silver_verify_ database may be left on the service node`);
      process.exit(130);
    }
    stop.sig = sig;
    rt.io.err(`silver: ${sig}: finishing the current verification and dropping its database (again to stop at once)`);
  });
  try {
    await s.checkHelpers(services);
    for (const b of picked) {
      if (stop.sig) break;
      const r = await verifyOne(s, b);
      report.results.push(r);
      rt.io.err(r.ok ? `${r.app}: ${r.stamp} restored into ${r.scratch} in ${r.restoreSeconds!.toFixed(1)}s; every table's rows as in the manifest` : `${r.app}: ${r.stamp}: verification FAILED: ${r.problems.join('; ')}`);
    }
    const changes: Record<string, Partial<BackupEntry>> = {};
    for (const r of report.results) {
      if (!appsOf(ns).includes(r.app)) {
        report.notes.push(`${r.app}: not in the locations of ${ns.file} (an orphan's backup): verified, not recorded in the nodes' record of backups`);
        continue;
      }
      // (a backup of another nodeset — a folder given whole — verified here says nothing of this
      // nodeset's own backups: replace-node's gate asks for those)
      const of = picked.find((b) => b.dir === r.path)?.manifest?.nodeset;
      if (of !== ns.name) {
        report.notes.push(`${r.app}: ${r.stamp} is a backup of nodeset ${of}: verified, not recorded as ${ns.name}'s`);
        continue;
      }
      changes[r.app] = { lastVerified: new Date(rt.now()).toISOString(), verifiedStamp: r.stamp, verifyOk: r.ok, verifySeconds: r.restoreSeconds };
    }
    if (Object.keys(changes).length > 0) await recordBackups(s, changes).catch((e) => report.notes.push(`the nodes' record of backups was not updated: ${message(e)}`));
  } finally {
    dispose();
    await s.close();
  }
  if (stop.sig) throw new ExitError(`interrupted (${stop.sig}): ${report.results.length} of ${picked.length} verified`, 130);
  report.ok = report.results.every((r) => r.ok) && report.results.every((r) => r.dropped);
  return report;
}

async function verifyOne(s: Session, b: StoredBackup): Promise<VerifyResult> {
  const m = b.manifest!;
  const svc = service(m.service);
  const r: VerifyResult = { app: m.app, stamp: m.stamp, path: b.dir, service: m.service, database: m.database, ok: false, checksum: false, scratch: null, restoreSeconds: null, rowCounts: null, problems: [], dropped: true };
  r.problems = localProblems(b);
  r.checksum = r.problems.length === 0;
  if (r.checksum) {
    const node = serviceNode(s, m.service);
    const id = stagedId();
    const target = scratchDatabase('verify', m.database, scratchSuffix());
    r.scratch = target;
    const t0 = s.rt.now();
    try {
      r.rowCounts = await loadScratch(s, m, b.dir, id, target);
      r.restoreSeconds = (s.rt.now() - t0) / 1000;
      r.problems.push(...compareCounts(m.rowCounts, r.rowCounts));
    } catch (e) {
      r.problems.push(message(e));
    } finally {
      const dropped = await s.remote.exec(node, dbVerbs.drop(svc, m.database, target)).then((x) => x.code === 0, () => false);
      await s.remote.exec(node, dbVerbs.forget(svc, id)).catch(() => undefined);
      r.dropped = dropped;
      if (!dropped) r.problems.push(`the throw-away database ${target} could not be dropped: drop it by hand`);
    }
  }
  r.ok = r.problems.length === 0;
  writeNote(b.dir, { ok: r.ok, time: new Date(s.rt.now()).toISOString(), seconds: r.restoreSeconds, problems: r.problems });
  return r;
}

export function renderVerifyReport(r: VerifyReport): string {
  const lines = r.results.map((v) =>
    v.ok
      ? `${v.app}: backup ${v.stamp} verified: restored into a throw-away database in ${v.restoreSeconds!.toFixed(1)}s, ${Object.keys(v.rowCounts!).length} tables with the manifest's row counts (${totalRows(v.rowCounts!)} rows), sha256 ok; dropped`
      : `${v.app}: backup ${v.stamp} verification FAILED: ${v.problems.join('; ')}`,
  );
  lines.push(...r.notes);
  return lines.join('\n');
}

export interface RestoreReport {
  nodeset: string;
  app: string;
  stamp: string;
  path: string;
  service: string;
  database: string;
  node: string;
  ok: boolean;
  /** The rows of each table after the restore (as the manifest's, when ok). */
  rowCounts: Record<string, number> | null;
  problems: string[];
  /** What the balancers did meanwhile (null: the nodeset has no balancer). */
  maintenance: string | null;
  interrupted: string | null;
  /** Whether the app's database was replaced. */
  replaced: boolean;
  /** The restore failed while it replaced the database: the app stays in maintenance (a re-run finishes it). */
  incomplete: boolean;
  seconds: number;
}

/**
 * `silver restore APP FILE BACKUP|latest [-y]`: asks first; checks the file against its
 * manifest before anything is sent; under the deploy lock, with the app in maintenance on the
 * balancers (put back as it was afterwards, whatever happens), loads the dump into
 * `silver_restore_DB_X`, compares its rows with the manifest (a difference stops it there, the
 * app's database untouched), then makes it the app's database and counts again.
 */
export async function restore(ns: Nodeset, rt: Runtime, app: string, arg: string, opts: { yes?: boolean; from?: string } = {}): Promise<RestoreReport> {
  const base = backupsBase(rt.state.root, opts.from);
  checkKept(ns, app, base);
  // (an orphan: a database no app of the locations has, its backups kept under its name)
  const orphan = !appsOf(ns).includes(app);
  const b = resolveBackup(base, ns.name, app, arg);
  const m = b.manifest!;
  if (!ns.services.includes(m.service)) throw new ExitError(`${b.dir} is a ${m.service} backup; nodeset ${ns.name} has no [service:${m.service}]`, 2);
  const bad = localProblems(b);
  if (bad.length > 0) throw new ExitError(`${b.dir}: ${bad.join('; ')}: nothing was sent, nothing restored`, 1);
  const question = `Restore ${orphan ? `the ${m.service} database ${m.database} (an app no longer in the locations)` : `${app}'s ${m.service} database ${m.database}`} on nodeset ${ns.name} from backup ${m.stamp} (${m.time}${m.nodeset !== ns.name ? `, of nodeset ${m.nodeset}` : ''})? Everything written to it since is lost.`;
  if (!opts.yes && !(await rt.confirm(question))) throw new ExitError('nothing restored (answer y, or pass -y)', 1);
  const t0 = rt.now();
  const s = await Session.open(ns, rt, [`service:${m.service}`]);
  const node = serviceNode(s, m.service);
  const report: RestoreReport = { nodeset: ns.name, app, stamp: m.stamp, path: b.dir, service: m.service, database: m.database, node, ok: false, rowCounts: null, problems: [], maintenance: null, interrupted: null, replaced: false, incomplete: false, seconds: 0 };
  const say = (t: string) => rt.io.err(t);
  try {
    await s.checkHelpers([m.service]);
    if (orphan) await orphanThere(s, node, m);
    await underDeployLock(s, `restore ${app}`, async (steps) => {
      // (an orphan's database serves no location: no balancer has an entry for it)
      const balanced = !orphan && ns.nodes.some((n) => n.role === 'balancer');
      let previous: ModeEntry | null = null;
      let held = false;
      try {
        if (orphan) report.maintenance = 'none: no location serves it (an app no longer in the locations)';
        else if (!balanced) report.maintenance = 'none: the nodeset has no balancer, so the app kept serving while it was restored';
        if (balanced) {
          // (held on the nodes: a run killed from here on leaves the app in maintenance, and the
          // next restore puts back the entry from before this one)
          held = true;
          previous = await holdApp(s, app, 'restore', `${app} is being restored from a backup. Please try again in a moment.`);
          say(`${s.balancers.map((n) => n.name).join(', ')}: ${app} in maintenance while it is restored`);
        }
        steps.check();
        const after = await restoreBackup(s, b, steps, (v) => (report.replaced = v), say);
        report.rowCounts = after;
        report.problems.push(...compareCounts(m.rowCounts, after));
      } catch (e) {
        if (e instanceof Stopped) report.interrupted = e.reason;
        else report.problems.push(message(e));
        if (e instanceof IncompleteRestore) report.incomplete = true;
      } finally {
        if (held && report.incomplete) {
          report.maintenance = `still in maintenance: ${m.database} may be incomplete; run silver restore ${app} ${ns.file} ${m.stamp} again`;
        } else if (held) {
          try {
            await releaseApp(s, app, previous);
            report.maintenance = `maintenance while restoring, then ${previous ? `back to ${previous.mode}` : 'serving normally again'}`;
          } catch (e) {
            report.maintenance = `still in maintenance: ${message(e)}; silver maintenance off ${ns.file} --app ${app}`;
            report.problems.push(`the balancers were not put back: ${message(e)}`);
          }
        }
      }
    });
    const ok = report.replaced && report.problems.length === 0 && !report.interrupted;
    await record(s.state, historyEntry({ at: new Date(t0).toISOString(), kind: 'restore', app, seconds: (rt.now() - t0) / 1000, result: ok ? 'ok' : report.interrupted ? 'interrupted' : `failed: ${report.problems.join('; ')}`, detail: m.stamp }), say);
  } finally {
    await s.close();
  }
  report.ok = report.replaced && report.problems.length === 0 && !report.interrupted;
  report.seconds = (rt.now() - t0) / 1000;
  return report;
}

/**
 * An orphan's backup restores into its database as it stands on the service node (its owner, its
 * users and their grants are there; silver makes them only for an app of the locations): the
 * node must list that database, and it must be no app's of the file.
 */
async function orphanThere(s: Session, node: string, m: Manifest): Promise<void> {
  const svc = service(m.service);
  if (!(await listedDatabases(s, node, svc)).has(m.database)) throw new ExitError(`${node} has no ${m.service} database ${m.database}: an orphan's backup restores only into its database as it stands there; to restore it elsewhere, put its app back in the locations, run silver update, then silver restore: nothing restored`, 1);
  const owner = appsOf(s.ns).find((a) => svc.dbName(a) === m.database);
  if (owner) throw new ExitError(`${node}: the ${m.service} database ${m.database} is app ${owner}'s now: restore ${owner}'s own backups (silver restore ${owner}); nothing restored`, 1);
  const problem = orphanProblem(m.database, svc, appsOf(s.ns), []);
  if (problem) throw new ExitError(`${node}: ${problem}: nothing restored`, 1);
}

/**
 * Backup `b` made the app's database on its service node (under the caller's deploy lock): the
 * dump loaded into `silver_restore_DB_X`, its rows compared with the manifest (a difference
 * stops it there, the database untouched), then that copy made the database; its rows after.
 * `replaced(true)` as soon as the database is the backup's. The throw-away database and the
 * staged dump are removed whatever happens.
 */
export async function restoreBackup(s: Session, b: StoredBackup, steps: Steps, replaced: (v: boolean) => void, say: (t: string) => void): Promise<Record<string, number>> {
  const m = b.manifest!;
  const svc = service(m.service);
  const node = serviceNode(s, m.service);
  const id = stagedId();
  const target = scratchDatabase('restore', m.database, scratchSuffix());
  try {
    const loaded = await loadScratch(s, m, b.dir, id, target);
    const differ = compareCounts(m.rowCounts, loaded);
    if (differ.length > 0) throw new Error(`the backup does not restore to its manifest's rows (${differ.join('; ')}); ${m.database} was not changed`);
    say(`${node}: ${m.stamp} loaded into ${target}, every table's rows as in the manifest`);
    steps.check();
    // (from here on a failure leaves the database in a state no one knows: the restore was cut
    // short while it replaced it)
    const out = await s.remote.run(node, `making ${target} the database ${m.database}`, dbVerbs.restore(svc, m.database, id, target), undefined, LONG_MS).catch((e: Error) => {
      throw new IncompleteRestore(`${e.message}: ${m.database} may be incomplete`);
    });
    const after = countsLine(out);
    replaced(true);
    say(`${node}: ${m.database} restored from ${m.stamp}`);
    const settings = settingsLine(out);
    if (settings) say(`${node}: ${m.database}: ${settings}`);
    return after;
  } finally {
    await s.remote.exec(node, dbVerbs.drop(svc, m.database, target)).catch(() => undefined);
    await s.remote.exec(node, dbVerbs.forget(svc, id)).catch(() => undefined);
  }
}

/**
 * What the helper said of the database-level settings the dump kept (PostgreSQL: `ALTER DATABASE
 * ... SET`, `ALTER ROLE ... IN DATABASE ... SET`, the database's comment), in words; null when it
 * kept none. Never a value: the helper names none.
 */
export function settingsLine(stdout: string): string | null {
  const line = stdout.split('\n').find((l) => l.startsWith('settings '));
  if (line === 'settings restored') return 'its database-level settings (ALTER DATABASE/ROLE ... SET, its comment) made again as the dump kept them';
  const some = /^settings refused (\d+) of (\d+)$/.exec(line ?? '');
  if (some) return `WARNING: PostgreSQL refused ${some[1]} of the ${some[2]} database-level settings the dump kept (ALTER DATABASE/ROLE ... SET, its comment; one only a superuser may make, or another role's): the rows are restored, the others made again; set those by hand`;
  if (line === 'settings refused') return 'WARNING: PostgreSQL refused the database-level settings the dump kept (ALTER DATABASE/ROLE ... SET, its comment): the rows are restored, the settings are not; set them again by hand';
  return null;
}

/** A restore that failed while it replaced the app's database: what the database holds is not known. */
export class IncompleteRestore extends Error {}

export function renderRestoreReport(r: RestoreReport): string {
  const lines: string[] = [];
  if (r.ok) lines.push(`${r.app}: ${r.service} database ${r.database} restored from ${r.stamp}; ${Object.keys(r.rowCounts!).length} tables, ${totalRows(r.rowCounts!)} rows, as in the manifest (${r.seconds.toFixed(1)}s)`);
  else if (r.interrupted) lines.push(`${r.app}: restore ${r.interrupted}; ${r.replaced ? `${r.database} was restored` : `${r.database} was not changed`}`);
  else if (r.incomplete) lines.push(`${r.app}: restore from ${r.stamp} FAILED while it replaced ${r.database}: ${r.problems.join('; ')}; run it again (the app stays in maintenance until it is whole)`);
  else lines.push(`${r.app}: restore from ${r.stamp} FAILED: ${r.problems.join('; ')}${r.replaced ? '' : `; ${r.database} was not changed`}`);
  if (r.maintenance) lines.push(`balancers: ${r.maintenance}`);
  return lines.join('\n');
}
