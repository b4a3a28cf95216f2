import type { ServiceDescriptor } from './types.js';

/** PostgreSQL: one role and one database per app, named as the app; pg_hba `sameuser`. */
export const postgresql: ServiceDescriptor = {
  name: 'postgresql',
  layer: 'service/postgresql',
  unit: 'postgresql',
  port: 5432,
  envPrefix: 'CONFIG_PG',
  helper: 'silver-db-postgresql',
  dbName: (app) => app,
  ensureArgs: (db) => [db],
};
