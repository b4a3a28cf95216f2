/**
 * Benchmark: 10 local (LXC) nodes from nothing to SSH-ready with the golden image already
 * built, then a warm re-run that must change nothing. Needs root.
 * Run: npm run bench:create   (writes its figures into bench/RESULTS.md)
 * Targets (issue 3): under 10 s cold and under 1 s warm on a 2-core machine.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { writeSection } from './results.js';

const dir = mkdtempSync(join(tmpdir(), 'silver-bench-create-'));
const env = { ...process.env, SILVER_HOME: join(dir, 'home') };
const file = join(dir, 'bench.conf');
writeFileSync(file, `[general]
name = silverbench
base_domain = bench.test
[provider]
provider = local
bridge = silverb0
subnet = 10.213.240.0/24
proxy_port = 8840
[appserver]
nodes = 10
size = ram 256MB
load_balancer = false
`);

function silver(...args: string[]): number {
  const t0 = performance.now();
  execFileSync(process.execPath, ['bin/silver.js', ...args, file], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  return (performance.now() - t0) / 1000;
}

try {
  silver('delete-node', '-y'); // leftovers of an interrupted run
  const cold = silver('create-node');
  const warm: number[] = [];
  for (let i = 0; i < 5; i++) warm.push(silver('create-node'));
  warm.sort((a, b) => a - b);
  const del = silver('delete-node', '-y');
  const lines = [
    `10 nodes, nothing to SSH-ready (golden image already built; includes node start-up of silver): ${cold.toFixed(2)} s`,
    `warm re-run, nothing to do (median of 5 whole silver runs): ${warm[2]!.toFixed(2)} s (min ${warm[0]!.toFixed(2)}, max ${warm[4]!.toFixed(2)})`,
    `delete all 10: ${del.toFixed(2)} s`,
    `targets: cold under 10 s: ${cold < 10 ? 'met' : 'NOT met'}; warm under 1 s: ${warm[2]! < 1 ? 'met' : 'NOT met'}`,
  ];
  console.log(lines.join('\n'));
  writeSection('create-10', 'create-node: 10 local nodes', 'sudo npm run bench:create', lines);
} finally {
  try {
    silver('delete-node', '-y');
  } catch {
    /* already gone */
  }
  rmSync(dir, { recursive: true, force: true });
}
