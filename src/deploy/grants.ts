import { appDatabases } from '../commands/backup.js';
import { dbEnsure } from '../remote/commands/db.js';
import type { Session } from './session.js';

/**
 * Every app's database user granted to the app servers the nodeset has now, and no other
 * address (MariaDB binds users to addresses; PostgreSQL's pg_hba follows the wiring): after an
 * app server was replaced (its address may be new) or removed. The password stays what it was.
 */
export async function regrant(s: Session, say: (text: string) => void): Promise<void> {
  if (s.ns.services.length === 0) return;
  const addresses = s.appservers.map((a) => a.address);
  for (const t of await appDatabases(s)) {
    await s.remote.run(t.node, `${t.app}: the grants of its ${t.svc.name} user`, dbEnsure(t.svc, t.db, addresses));
  }
  say(`database users granted to ${addresses.join(', ')} only`);
}
