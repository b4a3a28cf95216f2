/**
 * Benchmark: a no-op `silver setup-node` on 10 LXC nodes (8 app servers, PostgreSQL, a balancer,
 * the example app deployed) against the floor — `silver exec FILE -- true` on the same nodes —
 * side by side in one run, with kept connections (the default) and with new ones
 * (SILVER_PERSIST=0); medians of 9 whole commands, alternating; with the CPU each command cost
 * silver (GNU time) and the nodes (their containers' control groups), which here share this
 * machine's cores. Needs root (LXC).
 * Run: npm run bench:noop   (writes its figures into bench/RESULTS.md)
 * Target (issue 16): the no-op within 1.25x of the floor, both ways.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchNodeset } from './local-nodeset.js';
import { containers, cpuSeconds } from './node-cgroups.js';
import { median, sectionLines, writeSection } from './results.js';

interface Run {
  seconds: number;
  stdout: string;
  /** silver's own CPU (user + system), and the nodes' in all, in seconds */
  cpu: number;
  nodesCpu: number;
}

const kept = benchNodeset({ name: 'silverbench-n', domain: 'noop.test', bridge: 'silverb5', third: 245, appservers: 8, env: { SILVER_PERSIST: '300' } });
let nodes: string[] = [];

/** One whole silver command under GNU time, with the nodes' CPU around it. */
function timed(extra: Record<string, string>, ...args: string[]): Run {
  const file = join(tmpdir(), `silver-bench-noop-${process.pid}`);
  const before = cpuSeconds(nodes);
  try {
    const stdout = execFileSync('/usr/bin/time', ['-o', file, '-f', '%e %U %S', process.execPath, 'bin/silver.js', ...args], { env: { ...kept.env, ...extra }, stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 << 20 }).toString();
    const nodesCpu = cpuSeconds(nodes) - before;
    const [seconds, user, system] = readFileSync(file, 'utf8').trim().split('\n').at(-1)!.split(' ').map(Number);
    return { seconds: seconds!, cpu: user! + system!, nodesCpu, stdout };
  } finally {
    rmSync(file, { force: true });
  }
}

const ms = (s: number) => `${Math.round(s * 1000)} ms`;
const SETTLE_SECONDS = 60;

try {
  kept.silver('delete-node', '-y', kept.file);
  kept.silver('create-node', kept.file);
  kept.silver('setup-node', kept.file);
  const app = join(kept.dir, 'hello');
  cpSync('examples/hello', app, { recursive: true });
  kept.silver('update', app, kept.file);
  nodes = containers('s-silverbench-n-');
  // (fresh containers finish their own start-up jobs in the first minute: a settled nodeset is
  // what a no-op meets)
  execFileSync('sleep', [String(SETTLE_SECONDS)]);
  const lines: string[] = [`10 nodes (8 app servers with the example app, PostgreSQL, a balancer), settled ${SETTLE_SECONDS} s after the update; medians of 9 whole commands, alternating`];
  for (const [label, extra] of [['kept connections', {}], ['new connections (SILVER_PERSIST=0)', { SILVER_PERSIST: '0' }]] as const) {
    if (label.startsWith('new')) kept.silver('disconnect', kept.file);
    const runs = { exec: [] as Run[], setup: [] as Run[] };
    timed(extra, 'exec', kept.file, '--', 'true');
    for (let i = 0; i < 9; i++) {
      runs.exec.push(timed(extra, 'exec', kept.file, '--', 'true'));
      const s = timed(extra, 'setup-node', kept.file);
      if (!/0 changed/.test(s.stdout) && !/no changes/.test(s.stdout)) throw new Error(`the no-op changed something:\n${s.stdout}`);
      runs.setup.push(s);
    }
    const m = (rs: Run[], k: keyof Omit<Run, 'stdout'>) => median(rs.map((r) => r[k]));
    const [e, s] = [m(runs.exec, 'seconds'), m(runs.setup, 'seconds')];
    lines.push(`${label}: exec -- true ${e.toFixed(2)} s, no-op setup-node ${s.toFixed(2)} s: ${(s / e).toFixed(2)}x the floor (target 1.25x: ${s / e <= 1.25 ? 'met' : 'NOT met'})`);
    const [ne, ns] = [m(runs.exec, 'nodesCpu'), m(runs.setup, 'nodesCpu')];
    lines.push(`  CPU a command: silver ${ms(m(runs.exec, 'cpu'))} vs ${ms(m(runs.setup, 'cpu'))}; the 10 nodes ${ms(ne)} vs ${ms(ns)} (${(ne * 100).toFixed(1)} vs ${(ns * 100).toFixed(1)} ms a node)`);
  }
  // (the figures this run replaces, side by side: their ratios and the commit they were run on)
  const before = sectionLines('noop-10');
  const ratio = (label: string) => before.find((l) => l.startsWith(label))?.match(/: ([0-9.]+)x the floor/)?.[1];
  const [keptBefore, newBefore] = [ratio('kept connections'), ratio('new connections')];
  if (keptBefore && newBefore) lines.push(`the previous run of this section: ${keptBefore}x with kept connections, ${newBefore}x with new ones`);
  lines.push('the nodes share this machine\'s cores with silver: what the no-op asks of each node beyond a bare command (its fingerprint walk, the firewall, each app\'s health check) is spent on the 2 cores all of them share; on nodes of their own it would run side by side');
  console.log(lines.join('\n'));
  writeSection('noop-10', 'no-op setup-node against the floor, 10 nodes', 'sudo npm run bench:noop', lines);
} finally {
  kept.cleanup();
}
