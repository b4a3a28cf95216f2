/**
 * Benchmark: `silver update` of the example app on 3 app servers (plus PostgreSQL and a
 * balancer) while a bounded HTTP load loop hits the balancer: time from start to all active,
 * requests served, failed requests, and where the time goes (SILVER_TIMING). Needs root (LXC).
 * Run: npm run bench:update   (writes its figures into bench/RESULTS.md)
 * Side by side: SILVER_BENCH_BASELINE=DIR (a checkout of an earlier silver, built) runs that
 * silver's setup-node and updates on the same nodes first, then this one's.
 * Target (issue 16): half the time of the baseline, zero failed requests.
 */
import { execFile, execFileSync } from 'node:child_process';
import { appendFileSync, cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { startLoad } from '../test/helpers/load.js';
import { benchNodeset } from './local-nodeset.js';
import { median, writeSection } from './results.js';

// (its proxy port 8843, as before: 8800 + 243 - 200)
const { dir, file, env, silver, cleanup } = benchNodeset({ name: 'silverbench-u', domain: 'bench.test', bridge: 'silverb3', third: 243, appservers: 3 });
const baseline = process.env['SILVER_BENCH_BASELINE'];

function version(v: string): string {
  const d = join(dir, `hello-${v}`);
  cpSync('examples/hello', d, { recursive: true });
  writeFileSync(join(d, 'VERSION'), `${v}\n`);
  return d;
}

/** One silver (this one, or the baseline's bin) run to its end: seconds and standard error. */
async function run(bin: string, args: string[], extra: Record<string, string> = {}): Promise<{ seconds: number; stderr: string }> {
  const t0 = performance.now();
  const { stderr } = await promisify(execFile)(process.execPath, [bin, ...args], { env: { ...env, ...extra }, maxBuffer: 64 << 20 });
  return { seconds: (performance.now() - t0) / 1000, stderr };
}

/** Where an update's time goes, from SILVER_TIMING's lines: before the first start, activation, after the last switch. */
function phases(stderr: string, wall: number): string {
  const rows = [...stderr.matchAll(/^timing: \+([\d.]+)s ([\d.]+)s (\S+): (.*)$/gm)].map((m) => ({ at: Number(m[1]), took: Number(m[2]), what: m[4]! }));
  if (rows.length === 0) return 'no timing lines';
  const end = Math.max(...rows.map((r) => r.at + r.took));
  const firstStart = Math.min(...rows.filter((r) => / (start|up) /.test(` ${r.what} `)).map((r) => r.at));
  const lastSwitch = Math.max(...rows.filter((r) => /\bswitch(-stop)?\b/.test(r.what)).map((r) => r.at + r.took));
  const f = (x: number) => `${x.toFixed(2)} s`;
  return `node start-up and connections ${f(wall - end)}, checks/lock/services/staging ${f(firstStart)}, activation of 3 app servers ${f(lastSwitch - firstStart)}, stops/prune/record/history ${f(end - lastSwitch)}`;
}

async function side(label: string, bin: string, versions: string[]): Promise<{ lines: string[]; median: number; failed: number }> {
  await run(bin, ['setup-node', file]);
  await run(bin, ['update', version(versions[0]!), file]);
  const nodes = JSON.parse(silver('list-nodes', '--json', file).stdout) as { role: string; address: string }[];
  const balancer = nodes.find((n) => n.role === 'balancer')!.address;
  const lines: string[] = [];
  const times: number[] = [];
  let failed = 0;
  for (const v of versions.slice(1)) {
    const load = startLoad(balancer, 'bench.test', { concurrency: 8, maxSeconds: 120 });
    const r = await run(bin, ['update', version(v), file], { SILVER_TIMING: '1' });
    // (SILVER_BENCH_TRACE=FILE: each run's timing lines appended there, to see where the time goes)
    if (process.env['SILVER_BENCH_TRACE']) appendFileSync(process.env['SILVER_BENCH_TRACE'], `# ${label} ${v}\n${r.stderr.split('\n').filter((l) => l.startsWith('timing: ')).join('\n')}\n`);
    const l = await load.stop();
    times.push(r.seconds);
    failed += l.failed;
    lines.push(`${label}: update under load (8 clients): ${r.seconds.toFixed(2)} s start to all active; ${l.total} requests, ${l.failed} failed`);
    lines.push(`  ${phases(r.stderr, r.seconds)}`);
  }
  return { lines, median: median(times), failed };
}

try {
  silver('delete-node', '-y', file);
  silver('create-node', file);
  const lines: string[] = [];
  let before: { median: number } | null = null;
  if (baseline) {
    // (the baseline's own setup-node installs its helpers; this silver's installs its own after)
    const b = await side('baseline', join(baseline, 'bin/silver.js'), ['b1', 'b2', 'b3', 'b4']);
    before = b;
    const commit = execFileSync('git', ['-C', baseline, 'rev-parse', '--short', 'HEAD']).toString().trim();
    lines.push(`baseline: silver at commit ${commit}`, ...b.lines);
  }
  const now = await side('this silver', 'bin/silver.js', ['1', '2', '3', '4']);
  lines.push(...now.lines);
  lines.push(`median: ${before ? `baseline ${before.median.toFixed(2)} s, ` : ''}this silver ${now.median.toFixed(2)} s${before ? ` (${(now.median / before.median).toFixed(2)}x)` : ''}`);
  lines.push(`target: zero failed${before ? ', at most half the baseline' : ''}: ${now.failed === 0 && (!before || now.median <= before.median / 2) ? 'met' : 'NOT met'}`);
  console.log(lines.join('\n'));
  writeSection('update-3', 'update: 3 app servers under load', `sudo ${baseline ? 'SILVER_BENCH_BASELINE=DIR ' : ''}npm run bench:update`, lines);
} finally {
  cleanup();
}
