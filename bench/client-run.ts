/**
 * One measured run of `npm run bench:client` (client-sim.ts starts it, one fresh process per
 * run): `silver setup-node` through silver's own CLI entry and default runtime, against the
 * simulated nodes (sim-nodes.ts); the provider is the benchmark's, listing the nodes at
 * 127.0.0.1 on their ports. Settings arrive as one JSON line on stdin; the result leaves as one
 * JSON line on stdout. With `persist`, a first run starts the connection keeper, the line
 * {"primed":true} says so, and the measured run waits for `go` (the keeper holds every
 * connection by then); the keeper is stopped after it.
 */
import { closeSync, existsSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { main } from '../src/cli.js';
import { realHost } from '../src/config/host.js';
import { loadNodeset } from '../src/nodeset/resolve.js';
import type { Io } from '../src/output/io.js';
import type { Provider, ProviderNode } from '../src/provider.js';
import { defaultRuntime } from '../src/runtime-default.js';
import type { Runtime } from '../src/runtime.js';
import { keeperSocket, openExecutor, stopKeeper } from '../src/ssh/keeper.js';
import { StateDir } from '../src/state.js';

export interface WorkerSettings {
  /** SILVER_HOME, with the deploy key. */
  home: string;
  /** The nodeset file: its nodes, in order, are the first simulated nodes. */
  file: string;
  nodes: { port: number; hostKey: string }[];
  /** Kept connections (the keeper) instead of the command's own. */
  persist: boolean;
}

export interface RunResult {
  code: number;
  wallMs: number;
  /** CPU of the silver process during the run (user + system). */
  cpuMs: number;
  /** Of it, in the kernel (on loopback, sending includes the simulated nodes' receiving). */
  sysMs: number;
  /** CPU of the keeper during the run (kept connections only). */
  keeperCpuMs: number;
  keeperFds: number;
  keeperRss: number;
  rssBase: number;
  rssPeak: number;
  heapBase: number;
  heapPeak: number;
  fdBase: number;
  fdPeak: number;
  unchanged: number;
  errLines: number;
  /** The end of silver's output, when it failed. */
  tail: string;
  /** Filled in by the benchmark from the simulated nodes' counters. */
  newConnections: number;
  scriptKb: number;
}

/** Progress lines to /dev/null (a write each, as silver's own stderr writes), counted. */
function nullIo(): Io & { lines: number; stdout: string[]; close(): void } {
  const fd = openSync('/dev/null', 'w');
  const io = {
    lines: 0,
    stdout: [] as string[],
    out: (t: string) => void io.stdout.push(t),
    err: (t: string) => {
      io.lines++;
      writeSync(fd, t.endsWith('\n') ? t : `${t}\n`);
    },
    close: () => closeSync(fd),
  };
  return io;
}

/** The benchmark's provider: every node of the nodeset running, reached at 127.0.0.1. */
function simProvider(nodes: ProviderNode[]): Provider {
  const no = (): never => {
    throw new Error('not part of the benchmark');
  };
  return {
    type: 'sim',
    adminUser: 'admin',
    prepare: async () => undefined,
    listSizes: async () => [],
    listImages: async () => [],
    resolveImage: no,
    list: async () => nodes.map((n) => ({ ...n })),
    create: no,
    start: no,
    waitReachable: no,
    hostKey: async () => null,
    destroy: no,
    release: no,
  };
}

const fdCount = () => readdirSync('/proc/self/fd').length;

/** user + system CPU of a process in ms (from /proc, in clock ticks of 10 ms). */
function procCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

/** The keeper this process started (its only child). */
function keeperPid(): number | null {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === process.pid) return Number(d);
    } catch {
      // (gone meanwhile)
    }
  }
  return null;
}

async function run(s: WorkerSettings, lines: AsyncIterator<string>): Promise<RunResult> {
  const env = { ...process.env, SILVER_HOME: s.home, SILVER_PERSIST: s.persist ? '120' : '0' };
  const host = realHost(env);
  const ns = loadNodeset(s.file, host);
  const state = new StateDir(s.home);
  const ports = new Map(ns.nodes.map((n, i) => [n.name, s.nodes[i]!.port]));
  if (state.pinnedKeys(ns.name).size !== ns.nodes.length) {
    state.pinAll(ns.name, ns.nodes.map((n, i) => ({ name: n.name, address: '127.0.0.1', key: s.nodes[i]!.hostKey })));
  }
  const listed: ProviderNode[] = ns.nodes.map((n, i) => ({
    nodeset: ns.name, role: n.role, name: n.name, index: n.index, id: `sim-${i}`, state: 'running',
    // (the nodes' addresses for one another: only written into their configuration)
    privateAddress: `127.1.${i >> 8}.${i & 255}`, publicAddress: '127.0.0.1',
  }));
  const io = nullIo();
  const base = defaultRuntime(io, host);
  const runtime: Runtime = {
    ...base,
    providerFor: async () => simProvider(listed),
    executor: (nodeset, targets) => openExecutor(s.home, nodeset, targets.map((t) => ({ ...t, port: ports.get(t.name)! })), env),
  };
  const argv = ['setup-node', s.file];
  let keeper: number | null = null;
  if (s.persist) {
    await main(argv, { io, host, runtime });
    process.stdout.write('{"primed":true}\n');
    await lines.next();
    keeper = keeperPid();
  }
  io.stdout.length = 0;
  io.lines = 0;
  (globalThis as { gc?: () => void }).gc?.();
  const m0 = process.memoryUsage();
  const peak = { rss: m0.rss, heap: m0.heapUsed, fds: fdCount() };
  // (the sampler's own time is taken out of silver's CPU; open files, which cost more to count,
  // every fifth sample)
  let samplerMs = 0;
  let samples = 0;
  const sample = (all = false) => {
    const s0 = performance.now();
    const m = process.memoryUsage();
    peak.rss = Math.max(peak.rss, m.rss);
    peak.heap = Math.max(peak.heap, m.heapUsed);
    if (all || samples++ % 5 === 0) peak.fds = Math.max(peak.fds, fdCount());
    samplerMs += performance.now() - s0;
  };
  const fdBase = peak.fds;
  const sampler = setInterval(() => sample(), 50);
  const k0 = keeper ? procCpuMs(keeper) : 0;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const code = await main(argv, { io, host, runtime });
  const c = process.cpuUsage(c0);
  const wallMs = performance.now() - t0;
  const keeperCpuMs = keeper ? procCpuMs(keeper) - k0 : 0;
  clearInterval(sampler);
  sample(true);
  const keeperFds = keeper ? readdirSync(`/proc/${keeper}/fd`).length : 0;
  const keeperRss = keeper ? Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${keeper}/status`, 'utf8'))?.[1] ?? 0) * 1024 : 0;
  if (s.persist) await endKeeper(state.root, ns.name, keeper);
  io.close();
  const out = io.stdout.join('\n');
  const summary = /(\d+) unchanged/.exec(out);
  return {
    code, wallMs, cpuMs: (c.user + c.system) / 1000 - samplerMs, sysMs: c.system / 1000, keeperCpuMs, keeperFds, keeperRss,
    rssBase: m0.rss, rssPeak: peak.rss, heapBase: m0.heapUsed, heapPeak: peak.heap, fdBase, fdPeak: peak.fds,
    unchanged: summary ? Number(summary[1]) : 0, errLines: io.lines, tail: out.split('\n').slice(-3).join(' | '),
    newConnections: 0, scriptKb: 0,
  };
}

/** Stops the keeper (as `silver disconnect` does); by its pid if it does not go. */
async function endKeeper(root: string, nodeset: string, pid: number | null): Promise<void> {
  const key = new StateDir(root).deployKey().private;
  await stopKeeper(keeperSocket(root, nodeset, 'admin', key));
  for (let i = 0; pid && i < 50 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 100));
  if (pid && existsSync(`/proc/${pid}`)) process.kill(pid, 'SIGTERM');
}

// Ended by the benchmark (interrupted, timed out): the keeper this run started goes too.
process.on('SIGTERM', () => {
  const keeper = keeperPid();
  if (keeper) process.kill(keeper, 'SIGTERM');
  process.exit(143);
});
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const first = await lines.next();
const result = await run(JSON.parse(first.value as string) as WorkerSettings, lines);
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
