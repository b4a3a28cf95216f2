import type { ServiceDescriptor } from '../../services/types.js';
import { sudoHelper } from './helpers.js';

/** `silver-db-<service> ensure ...`: the app's database and user; prints the password on stdout. */
export function dbEnsure(svc: ServiceDescriptor, db: string, appserverAddresses: readonly string[]): string[] {
  return sudoHelper(svc.helper, 'ensure', ...svc.ensureArgs(db, appserverAddresses));
}

/**
 * The backup verbs of `silver-db-<service>` (setup-layers/service/NAME/bin), the same for every
 * service: a dump is made into a staged file on the node (`ID`) and read off in pieces; a dump
 * to restore is put there in pieces, then loaded into a throw-away database (`TARGET`:
 * `silver_verify_DB_X` or `silver_restore_DB_X`), which `restore` makes the app's database.
 * Built as argv; nothing here runs anything.
 */
export const dbVerbs = {
  /** `db NAME` per app database the helper made on this node. */
  list: (svc: ServiceDescriptor) => sudoHelper(svc.helper, 'list'),
  /** The app's password from standard input, kept for ensure (a rebuilt service node). */
  password: (svc: ServiceDescriptor, db: string) => sudoHelper(svc.helper, 'password', db),
  /** Dumps DB into staged file ID; prints `file SIZE SHA256`, `server ...`, `tool ...` (and `counts JSON`). */
  dump: (svc: ServiceDescriptor, db: string, id: string) => sudoHelper(svc.helper, 'dump', db, id),
  /** LENGTH bytes of staged file ID from OFFSET, base64 on stdout. */
  get: (svc: ServiceDescriptor, id: string, offset: number, length: number) => sudoHelper(svc.helper, 'get', id, String(offset), String(length)),
  /** Standard input appended to staged file ID, which holds OFFSET bytes (0: a new one). */
  put: (svc: ServiceDescriptor, id: string, offset: number) => sudoHelper(svc.helper, 'put', id, String(offset)),
  /** Staged dump ID (checked against SHA256) into a new database TARGET; prints `counts JSON`. */
  load: (svc: ServiceDescriptor, db: string, id: string, target: string, sha256: string) => sudoHelper(svc.helper, 'load', db, id, target, sha256),
  /** TARGET's content (loaded from ID) becomes DB's; prints `counts JSON`. */
  restore: (svc: ServiceDescriptor, db: string, id: string, target: string) => sudoHelper(svc.helper, 'restore', db, id, target),
  drop: (svc: ServiceDescriptor, db: string, target: string) => sudoHelper(svc.helper, 'drop', db, target),
  forget: (svc: ServiceDescriptor, id: string) => sudoHelper(svc.helper, 'forget', id),
};

/** A throw-away database of DB: `silver_verify_DB_X` / `silver_restore_DB_X` (X: 8 of [a-z0-9]). */
export function scratchDatabase(kind: 'verify' | 'restore', db: string, suffix: string): string {
  if (!/^[a-z0-9]{8}$/.test(suffix)) throw new Error(`bad suffix ${suffix}`);
  return `silver_${kind}_${db}_${suffix}`;
}
