/**
 * Benchmark: `silver update` of the example app on 3 app servers (plus PostgreSQL and a
 * balancer) while a bounded HTTP load loop hits the balancer: time from start to all active,
 * requests served, failed requests. Needs root (LXC).
 * Run: npm run bench:update   (writes its figures into bench/RESULTS.md)
 * Target (issue 5): zero failed requests, under 15 s for the example app.
 */
import { cpSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startLoad } from '../test/helpers/load.js';
import { benchNodeset } from './local-nodeset.js';
import { writeSection } from './results.js';

// (its proxy port 8843, as before: 8800 + 243 - 200)
const { dir, file, silver, silverAsync: run } = benchNodeset({ name: 'silverbench-u', domain: 'bench.test', bridge: 'silverb3', third: 243, appservers: 3 });
const silverAsync = async (...args: string[]) => (await run(...args)).seconds;

function version(v: string): string {
  const d = join(dir, `hello-${v}`);
  cpSync('examples/hello', d, { recursive: true });
  writeFileSync(join(d, 'VERSION'), `${v}\n`);
  return d;
}

try {
  silver('delete-node', '-y', file);
  silver('create-node', file);
  silver('setup-node', file);
  const first = silver('update', version('1'), file);
  const nodes = JSON.parse(silver('list-nodes', '--json', file).stdout) as { role: string; address: string }[];
  const balancer = nodes.find((n) => n.role === 'balancer')!.address;
  const runs: { seconds: number; total: number; failed: number }[] = [];
  for (const v of ['2', '3', '4']) {
    const load = startLoad(balancer, 'bench.test', { concurrency: 8, maxSeconds: 120 });
    const seconds = await silverAsync('update', version(v), file);
    const r = await load.stop();
    runs.push({ seconds, total: r.total, failed: r.failed });
  }
  const lines = [
    `first deploy (services, package install, 3 app servers): ${first.seconds.toFixed(1)} s`,
    ...runs.map((r, i) => `update ${i + 1} under load (8 concurrent clients): ${r.seconds.toFixed(1)} s start to all active; ${r.total} requests, ${r.failed} failed`),
    `target: zero failed, under 15 s: ${runs.every((r) => r.failed === 0 && r.seconds < 15) ? 'met' : 'NOT met'}`,
  ];
  console.log(lines.join('\n'));
  writeSection('update-3', 'update: 3 app servers under load', 'sudo npm run bench:update', lines);
} finally {
  try {
    silver('delete-node', '-y', file);
  } catch {
    /* gone */
  }
  rmSync(dir, { recursive: true, force: true });
}
