/**
 * Benchmark: fan-out against the fastest peer — `silver exec FILE -- true` on 10 LXC nodes side
 * by side with Fabric 2.6 (Debian's `fabric`: a ThreadingGroup running `true`, host keys checked
 * against the same pinned known_hosts), in one run, alternating; new connections on both sides
 * (each a whole process: interpreter start-up included), and kept ones where each has them
 * in one process on both sides (silver: its executor, as `silver exec` uses it, exec-inprocess.ts;
 * Fabric: further runs of the same group), and silver's keeper across whole commands besides,
 * which Fabric has no counterpart for. Medians of 7. Needs root (LXC) and installs Debian's fabric when it is missing.
 * Run: npm run bench:fabric   (writes its figures into bench/RESULTS.md)
 * Target (issue 16): silver no slower than Fabric.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { benchNodeset } from './local-nodeset.js';
import { median, writeSection } from './results.js';

const PY = '/usr/bin/python3';
const b = benchNodeset({ name: 'silverbench-f', domain: 'fab.test', bridge: 'silverb6', third: 246, appservers: 8, env: { SILVER_PERSIST: '300' } });
const RUNS = 7;

function fabricVersion(): string {
  try {
    return execFileSync(PY, ['-c', 'import fabric; print(fabric.__version__)']).toString().trim();
  } catch {
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'fabric'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, stdio: 'ignore' });
    return execFileSync(PY, ['-c', 'import fabric; print(fabric.__version__)']).toString().trim();
  }
}

function fabric(hosts: string[], keptRuns: number): { whole: number; lines: string[] } {
  const key = join(b.dir, 'home', 'id_ed25519');
  const known = join(b.dir, 'home', 'nodesets', 'silverbench-f', 'known_hosts');
  if (!existsSync(known)) throw new Error(`no pinned host keys at ${known}`);
  const t0 = performance.now();
  const out = execFileSync(PY, ['bench/fabric/fanout.py', key, known, String(keptRuns), ...hosts]).toString();
  return { whole: (performance.now() - t0) / 1000, lines: out.trim().split('\n') };
}

try {
  const version = fabricVersion();
  b.silver('delete-node', '-y', b.file);
  b.silver('create-node', b.file);
  const nodes = JSON.parse(b.silver('list-nodes', '--json', b.file).stdout) as { address: string }[];
  const hosts = nodes.map((n) => n.address);
  const t = { silverNew: [] as number[], silverKept: [] as number[], fabNew: [] as number[], fabKept: [] as number[] };
  fabric(hosts, 0);
  b.silver('exec', b.file, '--', 'true');
  for (let i = 0; i < RUNS; i++) {
    t.silverNew.push(b.silverWith({ SILVER_PERSIST: '0' }, 'exec', b.file, '--', 'true').seconds);
    t.fabNew.push(fabric(hosts, 0).whole);
    t.silverKept.push(b.silver('exec', b.file, '--', 'true').seconds);
  }
  const kept = fabric(hosts, RUNS).lines.filter((l) => l.startsWith('kept ')).map((l) => Number(l.split(' ')[1]));
  t.fabKept.push(...kept);
  // silver the same way: its executor in one process, the same nodes again (exec-inprocess.ts)
  const inProcess = execFileSync(process.execPath, ['dist/bench/exec-inprocess.js', b.file, String(RUNS)], { env: { ...b.env, SILVER_PERSIST: '0' } }).toString();
  const silverInProcess = inProcess.split('\n').filter((l) => l.startsWith('kept ')).map((l) => Number(l.split(' ')[1]));
  const f = (x: number) => `${x.toFixed(3)} s`;
  const lines = [
    `10 nodes; Fabric ${version} (Debian), paramiko; medians of ${RUNS}, alternating`,
    `new connections, whole process: silver exec -- true ${f(median(t.silverNew))}, Fabric ThreadingGroup ${f(median(t.fabNew))} (silver ${(median(t.silverNew) / median(t.fabNew)).toFixed(2)}x Fabric's time)`,
    `kept connections, in one process (no start-up): silver's executor, the same nodes again ${f(median(silverInProcess))}; Fabric, the same group again ${f(median(t.fabKept))} (silver ${(median(silverInProcess) / median(t.fabKept)).toFixed(2)}x Fabric's time)`,
    `kept connections across commands (silver's keeper; Fabric has none): silver exec -- true, the whole command ${f(median(t.silverKept))}`,
    `target: silver no slower than Fabric with new connections: ${median(t.silverNew) <= median(t.fabNew) ? 'met' : 'NOT met'}; with kept ones (in one process): ${median(silverInProcess) <= median(t.fabKept) ? 'met' : 'NOT met'}`,
  ];
  console.log(lines.join('\n'));
  writeSection('fabric-10', 'fan-out: silver exec against Fabric, 10 nodes', 'sudo npm run bench:fabric', lines);
} finally {
  b.cleanup();
}
