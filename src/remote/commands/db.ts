import type { ServiceDescriptor } from '../../services/types.js';
import { sudoHelper } from './helpers.js';

/** `silver-db-<service> ensure ...`: the app's database and user; prints the password on stdout. */
export function dbEnsure(svc: ServiceDescriptor, db: string, appserverAddresses: readonly string[]): string[] {
  return sudoHelper(svc.helper, 'ensure', ...svc.ensureArgs(db, appserverAddresses));
}
