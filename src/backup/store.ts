import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { ExitError } from '../diagnostics.js';
import { APP_NAME, isStamp, parseManifest, type Manifest } from './manifest.js';

/**
 * Backups on the machine that runs silver: `BASE/NODESET/APP/STAMP/` holding the dump
 * (`APP.EXT`), `manifest.json`, and after a verification `verify.json`. BASE is
 * `~/.silverlining/backups` (`$SILVER_HOME/backups`) or `--to DIR`. A backup is written into
 * `STAMP.partial/` and renamed when whole, so a folder named as a stamp is always complete;
 * folders and files are the user's alone (0700, 0600): a dump holds the app's data.
 */
export interface StoredBackup {
  app: string;
  stamp: string;
  dir: string;
  /** null when manifest.json is missing or damaged (`error` says why). */
  manifest: Manifest | null;
  error?: string;
  verified: VerifyNote | null;
}

/** The last verification of a backup (`verify.json`). */
export interface VerifyNote {
  ok: boolean;
  time: string;
  /** How long the restore into the throw-away database took (null: none was made). */
  seconds: number | null;
  problems: string[];
}

/** Oldest first: by time, then by the `-N` of stamps taken in the same second. */
export function byStamp(a: string, b: string): number {
  const [ta, na] = a.split('-');
  const [tb, nb] = b.split('-');
  return ta! < tb! ? -1 : ta! > tb! ? 1 : Number(na ?? 1) - Number(nb ?? 1);
}

export function backupsBase(stateRoot: string, to?: string): string {
  return to ? resolve(to) : join(stateRoot, 'backups');
}

/** An app's backup folder: the name is an app's (or a database's) — never empty, never a path. */
export function appFolder(base: string, nodeset: string, app: string): string {
  if (!APP_NAME.test(app)) throw new Error(`not an app's name for a backup folder: ${JSON.stringify(app)}`);
  return join(base, nodeset, app);
}

function readNote(dir: string): VerifyNote | null {
  try {
    const v = JSON.parse(readFileSync(join(dir, 'verify.json'), 'utf8')) as VerifyNote;
    return typeof v.ok === 'boolean' && typeof v.time === 'string' ? { ok: v.ok, time: v.time, seconds: typeof v.seconds === 'number' ? v.seconds : null, problems: Array.isArray(v.problems) ? v.problems.map(String) : [] } : null;
  } catch {
    return null;
  }
}

/** One backup folder, read. */
export function readBackup(dir: string): StoredBackup {
  const stamp = basename(dir);
  const app = basename(dirname(dir));
  try {
    const manifest = parseManifest(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    return { app: manifest.app, stamp, dir, manifest, verified: readNote(dir) };
  } catch (e) {
    const error = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no manifest.json' : (e as Error).message;
    return { app, stamp, dir, manifest: null, error, verified: null };
  }
}

/** The backups of a nodeset (of one app), oldest first per app; unfinished `.partial` ones left out. */
export function listBackups(base: string, nodeset: string, app?: string): StoredBackup[] {
  const root = join(base, nodeset);
  if (!existsSync(root)) return [];
  const apps = app !== undefined ? [app] : readdirSync(root).sort();
  const out: StoredBackup[] = [];
  for (const a of apps) {
    const dir = app !== undefined ? appFolder(base, nodeset, a) : join(root, a);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) continue;
    for (const stamp of readdirSync(dir).filter(isStamp).sort(byStamp)) out.push(readBackup(join(dir, stamp)));
  }
  return out;
}

/** `latest` (the newest whole backup of the app), a stamp of the app, or a backup folder's path. */
export function resolveBackup(base: string, nodeset: string, app: string | null, arg: string): StoredBackup {
  if (arg.includes('/') || (arg !== 'latest' && !isStamp(arg))) {
    const dir = resolve(arg);
    if (!existsSync(join(dir, 'manifest.json'))) throw new ExitError(`${arg}: not a backup (no manifest.json in it)`, 2);
    const b = readBackup(dir);
    if (!b.manifest) throw new ExitError(`${arg}: ${b.error}`, 1);
    if (app && b.manifest.app !== app) throw new ExitError(`${arg} is a backup of ${b.manifest.app}, not of ${app}`, 2);
    return b;
  }
  const candidates = listBackups(base, nodeset, app ?? undefined).filter((b) => b.manifest && (arg === 'latest' || b.stamp === arg));
  const where = join(base, nodeset);
  if (candidates.length === 0) {
    throw new ExitError(arg === 'latest' ? `no backup${app ? ` of ${app}` : ''} in ${where}` : `no backup ${arg}${app ? ` of ${app}` : ''} in ${where} (silver backups lists them)`, 1);
  }
  if (!app && new Set(candidates.map((b) => b.app)).size > 1) throw new ExitError(`backup ${arg} is there for ${[...new Set(candidates.map((b) => b.app))].join(', ')}: name one with --app`, 2);
  const b = candidates.at(-1)!;
  // (a folder is named for its app and stamp; its manifest must say the same: a copied or moved
  // folder would otherwise restore one app's database in place of another's)
  const folderApp = basename(dirname(b.dir));
  if (b.manifest!.app !== folderApp || b.manifest!.stamp !== b.stamp) {
    throw new ExitError(`${b.dir}: its manifest is of ${b.manifest!.app}'s backup ${b.manifest!.stamp}, not of the folder it is in (${folderApp} ${b.stamp}): nothing restored`, 1);
  }
  return b;
}

/**
 * Keeps the newest `keep` whole backups of the app; the folders removed. `held`: a stamp that
 * stays whatever its age (the dump an unfinished replacement restores).
 */
export function pruneBackups(base: string, nodeset: string, app: string, keep: number, held?: string, service?: string): string[] {
  // (per service: an app with a PostgreSQL and a MariaDB database keeps N of each)
  const all = listBackups(base, nodeset, app).filter((b) => b.manifest && (service === undefined || b.manifest.service === service));
  const gone = all.slice(0, Math.max(0, all.length - keep)).filter((b) => b.stamp !== held).map((b) => b.dir);
  for (const dir of gone) rmSync(dir, { recursive: true, force: true });
  return gone;
}

export function writeNote(dir: string, note: VerifyNote): void {
  writeFileSync(join(dir, 'verify.json.new'), `${JSON.stringify(note, null, 2)}\n`, { mode: 0o600 });
  renameSync(join(dir, 'verify.json.new'), join(dir, 'verify.json'));
}

/** A backup being written: `STAMP.partial/`, renamed to `STAMP/` by commit, removed by abort. */
export class PartialBackup {
  readonly dir: string;
  readonly final: string;
  readonly stamp: string;
  private fd: number | null = null;

  constructor(base: string, nodeset: string, app: string, stampOf: (taken: (s: string) => boolean) => string, readonly file: string) {
    const folder = appFolder(base, nodeset, app);
    mkdirSync(folder, { recursive: true, mode: 0o700 });
    this.stamp = stampOf((s) => existsSync(join(folder, s)) || existsSync(join(folder, `${s}.partial`)));
    this.final = join(folder, this.stamp);
    this.dir = `${this.final}.partial`;
    // (a stamp given whole — a scheduled dump pulled under its node's stamp — may have a
    // `.partial` an interrupted pull left: it is started again, never left to block that stamp)
    rmSync(this.dir, { recursive: true, force: true });
    mkdirSync(this.dir, { mode: 0o700 });
  }

  get path(): string {
    return join(this.dir, this.file);
  }

  append(chunk: Buffer): void {
    this.fd ??= openSync(this.path, 'wx', 0o600);
    // (writeSync may write less than asked)
    let off = 0;
    while (off < chunk.length) off += writeSync(this.fd, chunk, off, chunk.length - off);
  }

  /** The first and last bytes written (to check the dump is whole). */
  ends(n = 4096): { head: Buffer; tail: Buffer } {
    this.close();
    if (!existsSync(this.path)) return { head: Buffer.alloc(0), tail: Buffer.alloc(0) };
    const size = statSync(this.path).size;
    const fd = openSync(this.path, 'r');
    try {
      const head = Buffer.alloc(Math.min(n, size));
      readSync(fd, head, 0, head.length, 0);
      const tail = Buffer.alloc(Math.min(n, size));
      readSync(fd, tail, 0, tail.length, size - tail.length);
      return { head, tail };
    } finally {
      closeSync(fd);
    }
  }

  commit(manifest: Manifest): string {
    this.close();
    if (!existsSync(this.path)) writeFileSync(this.path, '', { mode: 0o600 });
    writeFileSync(join(this.dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
    renameSync(this.dir, this.final);
    return this.final;
  }

  abort(): void {
    this.close();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** The sha256 and size of a file, read in pieces. */
export function fileSum(path: string): { sha256: string; size: number } {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(1 << 20);
  let size = 0;
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      size += n;
    }
  } finally {
    closeSync(fd);
  }
  return { sha256: h.digest('hex'), size };
}

/** A file in pieces of `size` bytes (the last one shorter). */
export function* filePieces(path: string, size: number): Generator<{ offset: number; data: Buffer }> {
  const fd = openSync(path, 'r');
  try {
    let offset = 0;
    for (;;) {
      const buf = Buffer.alloc(size);
      let n = 0;
      while (n < size) {
        const r = readSync(fd, buf, n, size - n, null);
        if (r === 0) break;
        n += r;
      }
      if (n === 0) return;
      yield { offset, data: n === size ? buf : buf.subarray(0, n) };
      offset += n;
      if (n < size) return;
    }
  } finally {
    closeSync(fd);
  }
}
