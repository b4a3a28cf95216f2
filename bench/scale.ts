/**
 * Benchmark: how silver grows from 10 to 20 to 40 real LXC nodes (N-2 app servers, PostgreSQL, a
 * balancer; `rollout = 1, 25%`): create-node, cold setup-node, the first re-run (a full check) and
 * a no-op setup-node (the fast path; both with new connections),
 * and an update of the example app under a bounded load — each phase's wall time, silver's own
 * CPU and peak memory (GNU time), and the nodes' peak memory (their memory cgroups). Needs root.
 * Run: npm run bench:scale   (writes its figures into bench/RESULTS.md)
 * Targets (issue 16): no phase grows worse than linearly from 10 to 40; the 40-node update within
 * 2x of the 10-node one; zero failed requests.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLoad } from '../test/helpers/load.js';
import { sectionLines, writeSection } from './results.js';
import { nodesCpuSeconds, nodesPeakMB } from './node-cgroups.js';

const SIZES = (process.env['SILVER_BENCH_SIZES'] ?? '10,20,40').split(',').map(Number);

interface Phase {
  seconds: number;
  cpu: number;
  rssMB: number;
}

function parseTime(stderr: string): Phase {
  const m = /silver-time ([\d.]+) ([\d.]+) ([\d.]+) (\d+)/.exec(stderr);
  return m ? { seconds: Number(m[1]), cpu: Number(m[2]) + Number(m[3]), rssMB: Number(m[4]) / 1024 } : { seconds: NaN, cpu: NaN, rssMB: NaN };
}

/** silver under GNU time (asynchronous: the load loop of this process goes on meanwhile). */
async function phase(env: NodeJS.ProcessEnv, args: string[]): Promise<Phase & { stdout: string }> {
  const file = join(tmpdir(), `silver-bench-time-${process.pid}-${Math.random().toString(36).slice(2)}`);
  try {
    const { stdout } = await promisify(execFile)('/usr/bin/time', ['-o', file, '-f', 'silver-time %e %U %S %M', process.execPath, 'bin/silver.js', ...args], { env, maxBuffer: 64 << 20 });
    return { ...parseTime(readFileSync(file, 'utf8')), stdout };
  } finally {
    rmSync(file, { force: true });
  }
}

async function one(n: number): Promise<string[]> {
  const name = `silverbench-s${n}`;
  const domain = `s${n}.bench.test`;
  const dir = mkdtempSync(join(tmpdir(), `${name}-`));
  const env = { ...process.env, SILVER_HOME: join(dir, 'home'), SILVER_PERSIST: '0' };
  const file = join(dir, `${name}.conf`);
  const third = 220 + SIZES.indexOf(n);
  writeFileSync(file, [
    '[general]', `name = ${name}`, `base_domain = ${domain}`,
    '[provider]', 'provider = local', `bridge = silverbs${n}`, `subnet = 10.213.${third}.0/24`, `proxy_port = ${8800 + third - 200}`,
    '[appserver]', `nodes = ${n - 2}`, 'size = ram 256MB', `locations = http://${domain}/ hello`, 'rollout = 1, 25%',
    '[service:postgresql]', `node_name = db.${domain}`,
    '[balancer]', '',
  ].join('\n'));
  const app = join(dir, 'hello');
  const version = (v: string) => {
    cpSync('examples/hello', app, { recursive: true });
    writeFileSync(join(app, 'VERSION'), `${v}\n`);
    return app;
  };
  try {
    await phase(env, ['delete-node', '-y', file]);
    const create = await phase(env, ['create-node', file]);
    const cold = await phase(env, ['setup-node', file]);
    // (the first re-run sees the cold run's own changes: a full check; the next one is the no-op
    // a settled nodeset meets, the fast path)
    const recheck = await phase(env, ['setup-node', file]);
    const noop = await phase(env, ['setup-node', file]);
    await phase(env, ['update', version('1'), file]);
    const nodes = JSON.parse((await phase(env, ['list-nodes', '--json', file])).stdout) as { role: string; address: string }[];
    const balancer = nodes.find((x) => x.role === 'balancer')!.address;
    // (the nodes' own CPU: at rest for 5 s, then during the update under load)
    const rest0 = nodesCpuSeconds(`s-${name}-`);
    await new Promise((r) => setTimeout(r, 5000));
    const rest = (nodesCpuSeconds(`s-${name}-`) - rest0) / 5;
    const load = startLoad(balancer, domain, { concurrency: 8, maxSeconds: 180 });
    const busy0 = nodesCpuSeconds(`s-${name}-`);
    // (an update that fails — on a saturated machine the example app's database connection can time
    // out — is reported with its reason: silver rolled it back)
    let failure = '';
    const update = await phase(env, ['update', version('2'), file]).catch((e: Error & { stdout?: string }) => {
      failure = (e.stdout ?? e.message).split('\n')[0]!.slice(0, 300);
      return { seconds: NaN, cpu: NaN, rssMB: NaN, stdout: '' };
    });
    const served = await load.stop();
    const busy = nodesCpuSeconds(`s-${name}-`) - busy0;
    const peak = nodesPeakMB(`s-${name}-`);
    const f = (p: Phase) => `${p.seconds.toFixed(2)} s (cpu ${p.cpu.toFixed(2)} s, silver's peak ${p.rssMB.toFixed(0)} MB)`;
    return [
      `${n} nodes (${n - 2} app servers, PostgreSQL, a balancer):`,
      `  create-node ${f(create)}`,
      `  cold setup-node ${f(cold)}`,
      `  first re-run (a full check: it sees the cold run's own changes) ${f(recheck)}`,
      `  no-op setup-node (the fast path) ${f(noop)}`,
      failure ? `  update, rollout = 1, 25%, under load FAILED (rolled back): ${failure}; ${served.total} requests, ${served.failed} failed` : `  update, rollout = 1, 25%, under load ${f(update)}; ${served.total} requests, ${served.failed} failed`,
      ...(served.failed ? [`  failed requests, first ones: ${served.failures.slice(0, 3).map((x) => x.replace(/\s+/g, ' ').slice(0, 100)).join(' | ')}`] : []),
      `  nodes' peak memory: ${peak.toFixed(0)} MB in all, ${(peak / n).toFixed(0)} MB a node`,
      `  nodes' CPU: at rest ${rest.toFixed(2)} cores in all; during the update under load ${busy.toFixed(1)} s in all (${(busy / update.seconds).toFixed(2)} cores on average, ${((busy - rest * update.seconds) / (n - 2)).toFixed(2)} s an app server beyond rest)`,
      `@${n} ${create.seconds} ${cold.seconds} ${recheck.seconds} ${noop.seconds} ${update.seconds} ${served.failed}`,
    ];
  } finally {
    try {
      await phase(env, ['delete-node', '-y', file]);
    } catch {
      /* gone */
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

const lines: string[] = [];
for (const n of SIZES) {
  lines.push(...(await one(n)));
  console.log(lines.slice(-8).join('\n'));
}
// How each phase grows: the largest over the smallest, against the node count's own ratio.
const rows = lines.filter((l) => l.startsWith('@')).map((l) => l.slice(1).split(' ').map(Number));
const out = lines.filter((l) => !l.startsWith('@'));
if (rows.length >= 2) {
  const [a, b] = [rows[0]!, rows[rows.length - 1]!];
  const ratio = b[0]! / a[0]!;
  const names = ['create-node', 'cold setup-node', 'full re-check', 'no-op setup-node', 'update'];
  const growth = names.map((nm, i) => `${nm} ${(b[i + 1]! / a[i + 1]!).toFixed(2)}x`);
  out.push(`growth from ${a[0]} to ${b[0]} nodes (${ratio.toFixed(1)}x the nodes): ${growth.join(', ')}`);
  const linear = names.every((_, i) => b[i + 1]! / a[i + 1]! <= ratio);
  // (an update's work is per app server: two of each nodeset's nodes are not app servers)
  const apps = (b[0]! - 2) / (a[0]! - 2);
  out.push(`the update's own unit, app servers: ${a[0]! - 2} to ${b[0]! - 2} (${apps.toFixed(2)}x): update ${(b[5]! / a[5]!).toFixed(2)}x, ${b[5]! / a[5]! <= apps ? 'no worse' : 'worse'} than linear in app servers; every node here shares this machine's cores (see the nodes' CPU above)`);
  const update2x = b[5]! / a[5]! <= 2;
  const failed = rows.reduce((x, r) => x + r[6]!, 0);
  out.push(`targets: no phase worse than linear: ${linear ? 'met' : 'NOT met'}; update at ${b[0]} within 2x of ${a[0]}: ${update2x ? 'met' : 'NOT met'}; zero failed requests: ${failed === 0 ? 'met' : 'NOT met'}`);
}
const section = process.env['SILVER_BENCH_SECTION'] ?? 'scale';
// (the growth this run replaces, side by side)
const previous = sectionLines(section).find((l) => l.startsWith('growth from '));
if (previous) out.push(`the previous run of this section: ${previous}`);
console.log(out.join('\n'));
writeSection(section, `scale: ${SIZES.join(', ')} LXC nodes`, `sudo ${section === 'scale' ? '' : `SILVER_BENCH_SECTION=${section} `}${process.env['SILVER_BENCH_SIZES'] ? `SILVER_BENCH_SIZES=${SIZES.join(',')} ` : ''}npm run bench:scale`, out);
