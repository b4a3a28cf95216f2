/**
 * Benchmark: silver's SSH client side of a no-op `silver setup-node` against N simulated nodes
 * (N = 100, 500, 1000), more than one machine could host as containers.
 * Run: npm run bench:client   (raises the open-files limit; writes its figures into bench/RESULTS.md)
 *
 * The nodes are `ssh2` servers on 127.0.0.1 in another process (sim-nodes.ts), one port and one
 * pinned host key each, answering what a set-up node answers when nothing changes. Each
 * measured run is a fresh process (client-run.ts; as a real `silver` is) that calls silver's own
 * CLI entry with the default runtime: the real setup-node command, the real SSH pool (or the
 * connection keeper), strict host keys; only the provider is the benchmark's (it lists the N
 * nodes at 127.0.0.1, each on its port). A nodeset is N-1 app servers and a balancer.
 *
 * Measured in the silver process (and the keeper's, for kept connections): wall time, CPU
 * (process.cpuUsage; the keeper's from /proc) per node, peak RSS and heap over the start of the
 * run (the pool holds every node's connection until the end), peak open file descriptors
 * (/proc/self/fd). Memory per connection: the RSS each added node adds. N² check: the CPU per
 * node added from 500 to 1000 nodes against the one from 100 to 500. Every run is checked: exit
 * 0, N nodes unchanged, N probes of 3 layers (the fast path's hit) and N state reads answered,
 * no other command.
 * Targets (issue 16): under 5 ms of silver CPU per node, under 1 MB per connection, no N² step.
 *
 * Settings (any of them: the figures are printed, not written): BENCH_CLIENT_SIZES=100,500,1000,
 * BENCH_CLIENT_REPS=3, BENCH_CLIENT_MODES=new,kept, BENCH_CLIENT_LAYER_MS=100, and
 * BENCH_CLIENT_PROF=DIR (CPU profiles of the runs and their keepers in DIR).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { table } from '../src/output/table.js';
import { StateDir } from '../src/state.js';
import { median, writeSection } from './results.js';
import type { RunResult, WorkerSettings } from './client-run.js';

const SIZES = (process.env['BENCH_CLIENT_SIZES'] ?? '100,500,1000').split(',').map(Number);
const REPS = Number(process.env['BENCH_CLIENT_REPS'] ?? 3);
/** new: the command's own connections (SILVER_PERSIST=0, and any first run); kept: the keeper's. */
const MODES = (process.env['BENCH_CLIENT_MODES'] ?? 'new,kept').split(',');
/** How long each layer takes on a simulated node (a real no-op layer: 0.0–0.3 s). */
const LAYER_MS = Number(process.env['BENCH_CLIENT_LAYER_MS'] ?? 100);
/** Bound of one measured run, and of the whole benchmark. */
const RUN_SECONDS = 240;
const TOTAL_SECONDS = 1500;

/** A child speaking one JSON line per message on stdio. */
class Lines {
  private readonly rl: Interface;
  private readonly waiting: ((line: string) => void)[] = [];
  private readonly queued: string[] = [];
  constructor(readonly child: ChildProcess) {
    this.rl = createInterface({ input: child.stdout! });
    this.rl.on('line', (l) => {
      const w = this.waiting.shift();
      if (w) w(l);
      else this.queued.push(l);
    });
  }
  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }
  next<T>(what: string, seconds: number): Promise<T> {
    const q = this.queued.shift();
    if (q !== undefined) return Promise.resolve(JSON.parse(q) as T);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${what}: no answer within ${seconds}s`)), seconds * 1000);
      const onExit = (code: number | null) => reject(new Error(`${what}: the process exited (${code})`));
      this.child.once('exit', onExit);
      this.waiting.push((l) => {
        clearTimeout(timer);
        this.child.off('exit', onExit);
        resolve(JSON.parse(l) as T);
      });
    });
  }
  async ask<T>(line: string, what: string): Promise<T> {
    this.send(line);
    return this.next<T>(what, 30);
  }
}

interface SimStats {
  connections: number;
  /** Connections logged in (the handshake done). */
  ready: number;
  open: number;
  peakOpen: number;
  authFailures: number;
  scripts: number;
  layers: number;
  stateReads: number;
  unexpected: string[];
  scriptBytes: number;
}

const children = new Set<ChildProcess>();

/** BENCH_CLIENT_PROF=DIR: CPU profiles of the measured runs (node --cpu-prof) in DIR. */
const PROF = process.env['BENCH_CLIENT_PROF'];

function node(script: string, profile = false): ChildProcess {
  // (through the environment: the keeper a run starts is profiled too)
  const preload = fileURLToPath(new URL('./cpu-profile.js', import.meta.url));
  const env = profile && PROF ? { ...process.env, NODE_OPTIONS: `--import=${preload}` } : process.env;
  const child = spawn(process.execPath, ['--expose-gc', fileURLToPath(new URL(script, import.meta.url))], { stdio: ['pipe', 'pipe', 'inherit'], env });
  // (a child that died is noticed by the next answer it does not give)
  child.stdin!.on('error', () => undefined);
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

/** Waits for a child to end by itself (its input closed), then ends it by its pid. */
async function ended(child: ChildProcess, seconds: number): Promise<void> {
  child.stdin?.end();
  if (child.exitCode !== null || child.signalCode !== null) return;
  const timer = setTimeout(() => child.pid && process.kill(child.pid, 'SIGTERM'), seconds * 1000);
  await new Promise((r) => child.once('exit', r));
  clearTimeout(timer);
}

/** Ends every child this benchmark started, by its pid. */
function endChildren(): void {
  for (const c of children) {
    c.stdin?.end();
    try {
      if (c.exitCode === null && c.pid) process.kill(c.pid, 'SIGTERM');
    } catch {
      // (gone already)
    }
  }
}

/** The soft limit of open files of this process (the children inherit it). */
function openFilesLimit(): number {
  const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m ? Number(m[1]) : 1024;
}

function nodesetText(name: string, n: number): string {
  return [
    '[general]', `name = ${name}`, `base_domain = ${name}.test`,
    '[provider]', 'provider = ec2', 'region = eu-west-1',
    '[appserver]', `nodes = ${n - 1}`, `locations = http://${name}.test/ hello`,
    '[balancer]', '',
  ].join('\n');
}

/**
 * Waits until the simulated nodes hold `open` connections and have logged in at least `made`
 * since the last reset (after a run: every one closed; after a priming run: the keeper's all
 * made).
 */
async function settle(sim: Lines, open: number, made = 0): Promise<void> {
  const end = Date.now() + 60_000;
  for (;;) {
    const s = await sim.ask<SimStats>('stats', 'simulated nodes');
    if (s.open === open && s.ready >= made) return;
    if (Date.now() > end) throw new Error(`the simulated nodes hold ${s.open} connections, not ${open} (${s.ready} logged in)`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function measure(sim: Lines, settings: WorkerSettings, n: number): Promise<RunResult> {
  await settle(sim, 0);
  await sim.ask('reset', 'simulated nodes');
  const worker = new Lines(node('./client-run.js', true));
  worker.send(JSON.stringify(settings));
  if (settings.persist) {
    // The first run started the keeper; the measured run goes when it holds every connection.
    await worker.next('priming run', RUN_SECONDS);
    await settle(sim, n, 2 * n);
    await sim.ask('reset', 'simulated nodes');
    worker.send('go');
  }
  const r = await worker.next<RunResult>(`run of ${n} nodes`, RUN_SECONDS);
  await ended(worker.child, 30);
  const s = await sim.ask<SimStats>('stats', 'simulated nodes');
  const problems = [
    r.code !== 0 ? `silver exited ${r.code}: ${r.tail}` : '',
    r.unchanged !== n ? `${r.unchanged} of ${n} nodes unchanged` : '',
    s.scripts !== n ? `${s.scripts} node scripts for ${n} nodes` : '',
    s.layers !== 3 * n ? `${s.layers} layers for ${n} nodes` : '',
    s.stateReads !== n ? `${s.stateReads} state reads for ${n} nodes` : '',
    s.authFailures ? `${s.authFailures} failed logins` : '',
    s.unexpected.length ? `unexpected commands: ${s.unexpected.slice(0, 3).join('; ')}` : '',
  ].filter(Boolean);
  if (problems.length) throw new Error(`${n} nodes: ${problems.join(', ')}`);
  return { ...r, newConnections: s.connections, scriptKb: s.scriptBytes / n / 1024 };
}


async function main(): Promise<void> {
  const need = 2 * Math.max(...SIZES) + 256;
  if (openFilesLimit() < need) throw new Error(`the open-files limit is ${openFilesLimit()}; ${need} are needed (npm run bench:client raises it: ulimit -n)`);
  const dir = mkdtempSync(join(tmpdir(), 'silver-client-sim-'));
  // However the benchmark ends (done, failed, interrupted, timed out, crashed): the children
  // ended by their pids, the folder removed.
  process.on('exit', () => {
    endChildren();
    rmSync(dir, { recursive: true, force: true });
  });
  const guard = setTimeout(() => {
    process.stderr.write(`bench: not done within ${TOTAL_SECONDS}s\n`);
    process.exit(1);
  }, TOTAL_SECONDS * 1000);
  guard.unref();
  try {
    const home = join(dir, 'home');
    const state = new StateDir(home);
    const deployKey = state.deployKey().public;
    const sim = new Lines(node('./sim-nodes.js'));
    sim.send(JSON.stringify({ count: Math.max(...SIZES), deployKey, layerMs: LAYER_MS, maxSeconds: TOTAL_SECONDS }));
    const { nodes } = await sim.next<{ nodes: { port: number; hostKey: string }[] }>('simulated nodes starting', 300);
    // One run unmeasured first: the simulated nodes' code warmed up, as for the runs after it.
    const warm = join(dir, 'warm.conf');
    writeFileSync(warm, nodesetText('warm', Math.min(...SIZES)));
    await measure(sim, { home, file: warm, nodes: nodes.slice(0, Math.min(...SIZES)), persist: false }, Math.min(...SIZES));
    const rows: { n: number; mode: string; runs: RunResult[] }[] = [];
    for (const n of SIZES) {
      const name = `sim${n}`;
      const file = join(dir, `${name}.conf`);
      writeFileSync(file, nodesetText(name, n));
      for (const mode of MODES) {
        const runs: RunResult[] = [];
        for (let i = 0; i < REPS; i++) runs.push(await measure(sim, { home, file, nodes: nodes.slice(0, n), persist: mode === 'kept' }, n));
        rows.push({ n, mode: `${mode} connections`, runs });
      }
      process.stderr.write(`bench: ${n} nodes done (walls: ${rows.slice(-MODES.length).map((r) => r.runs.map((x) => (x.wallMs / 1000).toFixed(1)).join('/')).join(', ')} s)\n`);
    }
    const lines = report(rows);
    console.log(lines.join('\n'));
    if (Object.keys(process.env).some((k) => k.startsWith('BENCH_CLIENT_'))) console.log('(settings other than the defaults: not written to bench/RESULTS.md)');
    else writeSection('client-sim', "silver's SSH client against N simulated nodes (no-op setup-node)", 'npm run bench:client', lines);
  } finally {
    clearTimeout(guard);
    // (the simulated nodes end with their input: then nothing keeps this process)
    endChildren();
  }
}

function report(rows: { n: number; mode: string; runs: RunResult[] }[]): string[] {
  const perNode = new Map<string, Map<number, number>>();
  const cells: string[][] = [];
  let worstCpu = 0;
  const mems = new Map<string, Map<number, number>>();
  for (const { n, mode, runs } of rows) {
    const kept = mode === 'kept connections';
    const med = (f: (r: RunResult) => number) => median(runs.map(f));
    const cpu = med((r) => r.cpuMs + r.keeperCpuMs) / n;
    // (kept: the connections are the keeper's, and so is their memory)
    const mem = kept ? med((r) => r.keeperRss) / n : med((r) => r.rssPeak - r.rssBase) / n;
    worstCpu = Math.max(worstCpu, cpu);
    perNode.set(mode, (perNode.get(mode) ?? new Map<number, number>()).set(n, cpu * n));
    mems.set(mode, (mems.get(mode) ?? new Map<number, number>()).set(n, mem * n));
    cells.push([
      String(n), mode, `${(med((r) => r.wallMs) / 1000).toFixed(1)} s`,
      `${cpu.toFixed(2)} ms`,
      kept ? `${(med((r) => r.cpuMs) / n).toFixed(2)} + keeper ${(med((r) => r.keeperCpuMs) / n).toFixed(2)}` : `${(med((r) => r.cpuMs - r.sysMs) / n).toFixed(2)} + ${(med((r) => r.sysMs) / n).toFixed(2)}`,
      `${(mem / 1024).toFixed(0)} KB`, `${(med((r) => r.heapPeak - r.heapBase) / n / 1024).toFixed(0)} KB`,
      kept ? `${med((r) => r.fdPeak)} + keeper ${med((r) => r.keeperFds)}` : String(med((r) => r.fdPeak)),
      String(runs[0]!.newConnections), `${runs[0]!.scriptKb.toFixed(0)} KB`,
    ]);
  }
  const lines = table(['NODES', 'CONNECTIONS', 'WALL', 'CPU/NODE', '(USER + SYSTEM, OR SILVER + KEEPER)', 'MEM/CONN', 'HEAP/NODE', 'PEAK FDS', 'NEW SSH', 'SCRIPT/NODE'], cells).split('\n');
  lines.push('');
  let flat = true;
  let checked = false;
  for (const [mode, m] of perNode) {
    const sizes = [...m.keys()].sort((a, b) => a - b);
    if (sizes.length < 3) continue;
    const [a, b, c] = sizes as [number, number, number];
    const low = (m.get(b)! - m.get(a)!) / (b - a);
    const high = (m.get(c)! - m.get(b)!) / (c - b);
    const ok = high < 1.5 * low + 0.2;
    flat &&= ok;
    checked = true;
    lines.push(`${mode}: CPU per added node ${low.toFixed(2)} ms (${a} to ${b}), ${high.toFixed(2)} ms (${b} to ${c}): ${ok ? 'no N² step' : 'GROWS with N'}`);
  }
  // Memory per connection: what each added node adds (the process's own start-up left out).
  let worstMem = 0;
  const slopes: string[] = [];
  for (const [mode, m] of mems) {
    const sizes = [...m.keys()].sort((a, b) => a - b);
    if (sizes.length < 2) continue;
    const [a, c] = [sizes[0]!, sizes.at(-1)!];
    const slope = (m.get(c)! - m.get(a)!) / (c - a);
    worstMem = Math.max(worstMem, slope);
    slopes.push(`${mode === 'kept connections' ? "the keeper's" : "silver's own"} ${(slope / 1024).toFixed(0)} KB`);
  }
  if (slopes.length) lines.push(`memory per added connection (RSS, ${Math.min(...SIZES)} to ${Math.max(...SIZES)} nodes): ${slopes.join('; ')}`);
  lines.push(
    `medians of ${REPS} runs, each a fresh silver process, timed from the CLI entry to its return (node's own start-up not counted); each layer takes ${LAYER_MS} ms on a simulated node;`,
    'MEM/CONN: peak RSS over the start of the run, per node (kept: the keeper\'s whole RSS, per connection); SYSTEM on loopback includes the kernel\'s receiving for the simulated nodes',
    `targets: under 5 ms CPU per node: ${worstCpu < 5 ? 'met' : 'NOT met'} (worst ${worstCpu.toFixed(2)}); under 1 MB per connection: ${slopes.length === 0 ? 'not measured (one size)' : `${worstMem < 1024 * 1024 ? 'met' : 'NOT met'} (${(worstMem / 1024).toFixed(0)} KB per added connection)`}; no N² step: ${!checked ? 'not measured (fewer than 3 sizes)' : flat ? 'met' : 'NOT met'}`,
  );
  return lines;
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));
await main().catch((e: Error) => {
  process.stderr.write(`bench: ${e.message}\n`);
  process.exitCode = 1;
});
