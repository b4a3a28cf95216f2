/**
 * Benchmark: 8 app servers updated one at a time (`rollout = 1`) and in batches
 * (`rollout = 1, 25%`: 1, 2, 2, 2, 1), side by side on the same nodes in one run, under a bounded
 * HTTP load through the balancer; with the example app as it is, then with a one-second
 * update_fetch (HELLO_FETCH_SECONDS=1), as a real app's warm-up on activation. Needs root (LXC).
 * Run: npm run bench:batches   (writes its figures into bench/RESULTS.md)
 * Target (issue 16): batches in at most 0.75x the time of one at a time, zero failed requests.
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startLoad } from '../test/helpers/load.js';
import { benchNodeset } from './local-nodeset.js';
import { median, writeSection } from './results.js';

const { dir, file, silver, silverAsync, cleanup } = benchNodeset({ name: 'silverbench-b', domain: 'batch.test', bridge: 'silverb4', third: 244, appservers: 8 });
const plain = readFileSync(file, 'utf8');
const setRollout = (spec: string) => writeFileSync(file, plain.replace('[appserver]\n', `[appserver]\nrollout = ${spec}\n`));

let n = 0;
function version(): string {
  const d = join(dir, `hello-${++n}`);
  cpSync('examples/hello', d, { recursive: true });
  writeFileSync(join(d, 'VERSION'), `${n}\n`);
  return d;
}

try {
  silver('delete-node', '-y', file);
  silver('create-node', file);
  silver('setup-node', file);
  silver('update', version(), file);
  const nodes = JSON.parse(silver('list-nodes', '--json', file).stdout) as { role: string; address: string }[];
  const balancer = nodes.find((x) => x.role === 'balancer')!.address;
  /** Three updates with each rollout, alternating (the machine's drift falls on both alike). */
  const measure = async () => {
    const runs: Record<string, { seconds: number[]; total: number; failed: number }> = { '1': { seconds: [], total: 0, failed: 0 }, '1, 25%': { seconds: [], total: 0, failed: 0 } };
    for (let i = 0; i < 3; i++) {
      for (const spec of Object.keys(runs)) {
        setRollout(spec);
        const load = startLoad(balancer, 'batch.test', { concurrency: 8, maxSeconds: 180 });
        const r = await silverAsync('update', version(), file);
        const l = await load.stop();
        runs[spec]!.seconds.push(r.seconds);
        runs[spec]!.total += l.total;
        runs[spec]!.failed += l.failed;
      }
    }
    const [one, batched] = [runs['1']!, runs['1, 25%']!];
    const ratio = median(batched.seconds) / median(one.seconds);
    return {
      ok: ratio <= 0.75 && one.failed + batched.failed === 0,
      lines: [
        ...Object.entries(runs).map(([spec, r]) => `  rollout = ${spec}: median ${median(r.seconds).toFixed(2)} s (runs: ${r.seconds.map((x) => x.toFixed(2)).join(', ')}); ${r.total} requests, ${r.failed} failed`),
        `  batches / one at a time: ${ratio.toFixed(2)}x`,
      ],
    };
  };
  const plainApp = await measure();
  // The same with an activation that takes a second (HELLO_FETCH_SECONDS: update_fetch waits,
  // as a real app's warm-up would), set for the next updates' instances.
  silver('env', 'set', 'hello', file, 'HELLO_FETCH_SECONDS=1', '--no-restart');
  const warmUp = await measure();
  const lines = [
    '8 app servers, PostgreSQL, a balancer; 8 concurrent clients through the balancer during each update',
    'the example app as it is (an activation takes about 0.2 s a node: the steps every update has besides dominate):',
    ...plainApp.lines,
    'the example app with a one-second update_fetch (HELLO_FETCH_SECONDS=1: a warm-up on each activation):',
    ...warmUp.lines,
    `target: at most 0.75x, zero failed: as it is ${plainApp.ok ? 'met' : 'NOT met'}; with a one-second activation ${warmUp.ok ? 'met' : 'NOT met'}`,
  ];
  console.log(lines.join('\n'));
  writeSection('batches-8', 'update: 8 app servers, one at a time vs batches', 'sudo npm run bench:batches', lines);
} finally {
  cleanup();
}
