/**
 * Benchmark: resolve a generated 1,000-node nodeset that uses extends and interpolation.
 * Run: npm run bench:resolve   (writes its figures into bench/RESULTS.md)
 * Targets (issue 2): under 100 ms and under 100 MB.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { realHost } from '../src/config/host.js';
import { loadNodeset } from '../src/nodeset/resolve.js';
import { writeSection } from './results.js';

const dir = mkdtempSync(join(tmpdir(), 'silver-bench-'));
try {
  writeFileSync(join(dir, 'base.conf'), [
    '[general]', 'base_domain = ${vars:domain}', 'set_etc_hosts = true',
    '[vars]', 'domain = bench.example.com', 'app_size = ram 512MB', 'count = 1000',
    '[provider]', 'provider = local', 'size = ram 256MB',
    '[service:postgresql]', 'node_name = db{{n}}.${general:base_domain}', 'nodes = 2',
    '[service:mysql]', 'node_name = mysql.${general:base_domain}',
  ].join('\n'));
  const locations = Array.from({ length: 50 }, (_, i) => `    http://site${i}.\${vars:domain}/ app${i}`);
  writeFileSync(join(dir, 'site.conf'), [
    '[general]', 'name = bench', 'extends = base.conf',
    '[appserver]', 'nodes = ${vars:count}', 'size = ${vars:app_size}', 'node_name = app{{n}}.${general:base_domain}',
    'locations =', ...locations,
    '[balancer]', 'node_name = lb.${general:base_domain}',
  ].join('\n'));

  const file = join(dir, 'site.conf');
  const host = realHost();
  const t0 = performance.now();
  const first = loadNodeset(file, host);
  const cold = performance.now() - t0;
  const runs: number[] = [];
  for (let i = 0; i < 30; i++) {
    const s = performance.now();
    loadNodeset(file, host);
    runs.push(performance.now() - s);
  }
  runs.sort((a, b) => a - b);
  const median = runs[Math.floor(runs.length / 2)]!;
  const peakMb = process.resourceUsage().maxRSS / 1024;
  const heapMb = process.memoryUsage().heapUsed / 1024 / 1024;
  const lines = [
    `nodes resolved: ${first.nodes.length} (1000 app servers, 3 service nodes, 1 balancer; 50 locations; extends + \${...} + {{n}})`,
    `first resolve (cold, includes JIT warm-up): ${cold.toFixed(1)} ms`,
    `median of 30 resolves: ${median.toFixed(1)} ms (min ${runs[0]!.toFixed(1)}, max ${runs.at(-1)!.toFixed(1)})`,
    `peak RSS of the whole node process: ${peakMb.toFixed(0)} MB (heap in use at the end: ${heapMb.toFixed(0)} MB)`,
    `target: under 100 ms and under 100 MB: ${cold < 100 && peakMb < 100 ? 'met' : 'NOT met'}`,
  ];
  console.log(lines.join('\n'));
  writeSection('resolve-1000', 'Resolving a 1,000-node nodeset', 'npm run bench:resolve', lines);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
