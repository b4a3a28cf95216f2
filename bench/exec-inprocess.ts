/**
 * For bench:fabric (fabric.ts runs it as a process of its own): silver's fan-out over kept
 * connections the way Fabric keeps them — in one process, no start-up: the executor `silver exec`
 * uses (SILVER_PERSIST=0: its own SSH pool, no keeper) connects to every node of the nodeset once,
 * then runs `true` on all of them RUNS times; one line `kept SECONDS` a run.
 * Run: node dist/bench/exec-inprocess.js FILE RUNS   (SILVER_HOME as for silver)
 */
import { performance } from 'node:perf_hooks';
import { realHost } from '../src/config/host.js';
import { loadNodeset } from '../src/nodeset/resolve.js';
import { processIo } from '../src/output/io.js';
import { defaultRuntime } from '../src/runtime-default.js';
import { connectNodes } from '../src/ssh/targets.js';

const [file, runs] = process.argv.slice(2);
const host = realHost();
const ns = loadNodeset(file!, host);
const rt = defaultRuntime(processIo, host);
const { targets, missing } = await connectNodes(ns, rt);
if (missing.length > 0) throw new Error(`not reachable: ${missing.map((m) => m.name).join(', ')}`);
const pool = await rt.executor(ns.name, targets);
try {
  const all = async () => {
    const rs = await Promise.all(targets.map((t) => pool.exec(t.name, 'true')));
    if (rs.some((r) => r.code !== 0)) throw new Error('true failed on a node');
  };
  await all();
  for (let i = 0; i < Number(runs); i++) {
    const t0 = performance.now();
    await all();
    console.log(`kept ${((performance.now() - t0) / 1000).toFixed(4)}`);
  }
} finally {
  await pool.close();
}
