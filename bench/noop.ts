/**
 * Benchmark: a no-op `silver setup-node` on 10 LXC nodes (8 app servers, PostgreSQL, a balancer,
 * the example app deployed) against the floor — `silver exec FILE -- true` on the same nodes —
 * side by side in one run, with kept connections (the default) and with new ones
 * (SILVER_PERSIST=0); medians of 5 whole commands, alternating. Needs root (LXC).
 * Run: npm run bench:noop   (writes its figures into bench/RESULTS.md)
 * Target (issue 16): the no-op within 1.25x of the floor, both ways.
 */
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { benchNodeset } from './local-nodeset.js';
import { median, writeSection } from './results.js';

const kept = benchNodeset({ name: 'silverbench-n', domain: 'noop.test', bridge: 'silverb5', third: 245, appservers: 8, env: { SILVER_PERSIST: '300' } });
const fresh = { ...kept, silver: (...args: string[]) => kept.silverWith({ SILVER_PERSIST: '0' }, ...args) };

try {
  kept.silver('delete-node', '-y', kept.file);
  kept.silver('create-node', kept.file);
  kept.silver('setup-node', kept.file);
  const app = join(kept.dir, 'hello');
  cpSync('examples/hello', app, { recursive: true });
  kept.silver('update', app, kept.file);
  const lines: string[] = ['10 nodes (8 app servers with the example app, PostgreSQL, a balancer); medians of 5 whole commands, alternating'];
  for (const [label, side] of [['kept connections', kept], ['new connections (SILVER_PERSIST=0)', fresh]] as const) {
    if (side === fresh) kept.silver('disconnect', kept.file);
    const t = { exec: [] as number[], setup: [] as number[] };
    side.silver('exec', kept.file, '--', 'true');
    for (let i = 0; i < 5; i++) {
      t.exec.push(side.silver('exec', kept.file, '--', 'true').seconds);
      const s = side.silver('setup-node', kept.file);
      if (!/0 changed/.test(s.stdout) && !/no changes/.test(s.stdout)) throw new Error(`the no-op changed something:\n${s.stdout}`);
      t.setup.push(s.seconds);
    }
    const [e, s] = [median(t.exec), median(t.setup)];
    lines.push(`${label}: exec -- true ${e.toFixed(2)} s, no-op setup-node ${s.toFixed(2)} s: ${(s / e).toFixed(2)}x the floor (target 1.25x: ${s / e <= 1.25 ? 'met' : 'NOT met'})`);
  }
  console.log(lines.join('\n'));
  writeSection('noop-10', 'no-op setup-node against the floor, 10 nodes', 'sudo npm run bench:noop', lines);
} finally {
  kept.cleanup();
}
