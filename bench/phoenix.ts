/**
 * Benchmark: backups and phoenix nodes on the local provider (issue 13). A nodeset of 2 app
 * servers, PostgreSQL and a balancer; the example app's database grown to about 100 MB; then
 * `silver backup` and `silver backup --verify` (a real restore, rows compared), `silver
 * replace-node` of an app server under a bounded HTTP load (start to back in rotation, failed
 * requests), and `silver replace-node` of the database node (maintenance, fresh dump, new node,
 * restore). Needs root (LXC).
 * Run: sudo npm run bench:phoenix   (writes its figures into bench/RESULTS.md)
 */
import { startLoad } from '../test/helpers/load.js';
import { benchNodeset } from './local-nodeset.js';
import { writeSection } from './results.js';

const { file, silver, silverAsync, cleanup } = benchNodeset({ name: 'silverbench-p', domain: 'phoenix.test', bridge: 'silverb5', third: 239, appservers: 2, env: { SILVER_PERSIST: '0' } });
const onDb = (command: string) => silver('exec', file, '--node', 'db.phoenix.test', '--', 'sh', '-c', command).stdout;

try {
  silver('delete-node', '-y', file);
  silver('create-node', file);
  silver('setup-node', file);
  silver('update', 'examples/hello', file);
  const nodes = JSON.parse(silver('list-nodes', '--json', file).stdout) as { role: string; address: string }[];
  const balancer = nodes.find((n) => n.role === 'balancer')!.address;
  // About 100 MB of rows in the app's database (made as its own role, like the app's tables).
  onDb(`cd / && runuser -u postgres -- psql -q -d hello -c "SET ROLE hello; CREATE TABLE big AS SELECT g AS id, (SELECT string_agg(encode(decode(md5(random()::text || g || k), 'hex'), 'base64'), '') FROM generate_series(1, 8) k) AS payload FROM generate_series(1, 450000) g"`);
  const size = /(\d+) bytes/.exec(onDb(`cd / && runuser -u postgres -- psql -tA -d hello -c "SELECT pg_database_size('hello') || ' bytes'"`))?.[1] ?? '?';
  const backup = silver('backup', file, '--json');
  const dump = (JSON.parse(backup.stdout) as { backups: { size: number }[] }).backups[0]!.size;
  const verify = silver('backup', '--verify', file, '--json');
  const restoreSeconds = (JSON.parse(verify.stdout) as { results: { restoreSeconds: number | null }[] }).results[0]?.restoreSeconds ?? null;

  const load = startLoad(balancer, 'phoenix.test', { concurrency: 6, maxSeconds: 300 });
  const app = await silverAsync('replace-node', file, '--node', 'app2.phoenix.test', '-y');
  const served = await load.stop();
  const db = silver('replace-node', file, '--node', 'db.phoenix.test', '-y');
  const rows = /: (\d+)$/m.exec(onDb(`cd / && runuser -u postgres -- psql -tA -d hello -c "SELECT count(*) FROM big"`))?.[1] ?? '?';

  const lines = [
    `database: ${(Number(size) / 2 ** 20).toFixed(0)} MB on disk (pg_database_size), ${(dump / 2 ** 20).toFixed(1)} MB as pg_dump -Fc`,
    `silver backup (dump, read off, checked, manifest): ${backup.seconds.toFixed(1)} s`,
    `silver backup --verify (sums, restore into a throw-away database, rows compared, dropped): ${verify.seconds.toFixed(1)} s; restore ${restoreSeconds?.toFixed(1) ?? '?'} s`,
    `replace-node of an app server under load (6 clients): ${app.seconds.toFixed(1)} s start to back in rotation; ${served.total} requests, ${served.failed} failed`,
    `replace-node of the database node (maintenance, fresh dump, new node, restore, rows compared): ${db.seconds.toFixed(1)} s; rows of big afterwards: ${rows}`,
  ];
  console.log(lines.join('\n'));
  writeSection('phoenix', 'backups and phoenix nodes', 'sudo npm run bench:phoenix', lines);
} finally {
  cleanup();
}
