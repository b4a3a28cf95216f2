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
  // A custom-format archive of the app's database; the rows counted in the snapshot pg_dump reads.
  backup: {
    tool: 'pg_dump -Fc',
    ext: 'pgdump',
    counts: 'snapshot',
    problem: (head, _tail, size) => (size === 0 ? 'the dump is empty' : head.subarray(0, 5).toString('latin1') !== 'PGDMP' ? 'the dump is not a pg_dump archive (no PGDMP header)' : null),
  },
};
