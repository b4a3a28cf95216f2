/**
 * One backing service, described once: its layer, unit, port, how an app's database is named,
 * what the helper on the service node is asked, the environment the app gets, and how its
 * backups are made and checked. Every other place (update, setup-node, resolve, backup) reads
 * this description.
 */
export interface ServiceDescriptor {
  name: string;
  /** The setup layer (`setup-layers/<layer>`). */
  layer: string;
  /** The systemd unit that runs the server (kept off on nodes of other roles). */
  unit: string;
  port: number;
  /** The prefix of the app's variables: PREFIX_DBNAME, _USER, _PASSWORD, _HOST, _PORT. */
  envPrefix: string;
  /** The root helper on the service node (`silver-db-<name>`). */
  helper: string;
  /** The database (and user) name of an app. */
  dbName(app: string): string;
  /** The helper's `ensure` arguments after the verb. */
  ensureArgs(db: string, appserverAddresses: readonly string[]): string[];
  backup: BackupDescriptor;
}

/** How a service's dumps are made, kept and checked (the helper's dump/load/restore verbs). */
export interface BackupDescriptor {
  /** What the helper runs, for people (`pg_dump -Fc`). */
  tool: string;
  /** The dump file's extension in a backup folder (`APP.EXT`). */
  ext: string;
  /**
   * Where a manifest's row counts come from: `snapshot`, counted on the node in the snapshot
   * the dump reads; `dump`, counted by silver in the dump's own rows as it arrives.
   */
  counts: 'snapshot' | 'dump';
  /** Why these bytes are not a whole dump (null: they are one): its first and last bytes, its size. */
  problem(head: Buffer, tail: Buffer, size: number): string | null;
  /** A counter of the rows in a dump as it streams by (for `counts: 'dump'`). */
  counter?: () => RowCounter;
}

/** Counts the rows of each table in a dump fed to it in pieces. */
export interface RowCounter {
  write(chunk: Buffer): void;
  /** Rows per table (every table the dump creates, 0 when it holds none). */
  counts(): Record<string, number>;
}

/** The app's environment for one service: database, user, password, host, port. */
export function serviceEnv(svc: ServiceDescriptor, db: string, password: string, host: string): Record<string, string> {
  const p = svc.envPrefix;
  return { [`${p}_DBNAME`]: db, [`${p}_USER`]: db, [`${p}_PASSWORD`]: password, [`${p}_HOST`]: host, [`${p}_PORT`]: String(svc.port) };
}
