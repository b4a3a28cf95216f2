import { MysqlDumpCounter, mysqlDumpProblem } from '../backup/mysql-dump.js';
import type { ServiceDescriptor } from './types.js';

/** MySQL (MariaDB): a database per app (`-` becomes `_`) and a user bound to each app server's address. */
export const mysql: ServiceDescriptor = {
  name: 'mysql',
  layer: 'service/mysql',
  unit: 'mariadb',
  port: 3306,
  envPrefix: 'CONFIG_MYSQL',
  helper: 'silver-db-mysql',
  dbName: (app) => app.replaceAll('-', '_'),
  ensureArgs: (db, addresses) => [db, ...addresses],
  // SQL text; mariadb-dump's snapshot is its own session's, so the rows are counted in the dump.
  backup: {
    tool: 'mariadb-dump --single-transaction --routines --triggers --events --hex-blob',
    ext: 'sql',
    counts: 'dump',
    problem: mysqlDumpProblem,
    counter: () => new MysqlDumpCounter(),
  },
};
