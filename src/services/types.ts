/**
 * One backing service, described once: its layer, unit, port, how an app's database is named,
 * what the helper on the service node is asked, and the environment the app gets. Every other
 * place (update, setup-node, resolve) reads this description.
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
}

/** The app's environment for one service: database, user, password, host, port. */
export function serviceEnv(svc: ServiceDescriptor, db: string, password: string, host: string): Record<string, string> {
  const p = svc.envPrefix;
  return { [`${p}_DBNAME`]: db, [`${p}_USER`]: db, [`${p}_PASSWORD`]: password, [`${p}_HOST`]: host, [`${p}_PORT`]: String(svc.port) };
}
