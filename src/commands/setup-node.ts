import { copyNode, hasSchedules, type BackupWiring } from '../setup/backup-wiring.js';
import pLimit from 'p-limit';
import type { Nodeset } from '../nodeset/types.js';
import { table } from '../output/table.js';
import type { Runtime } from '../runtime.js';
import { layersFor, layerVars, LayerStream, nodeScript, type AddressedNode } from '../setup/plan.js';
import { ANY_DIGEST, FAST_HIT, nodeDigest, probeScript, recordedDigest, takeStateDump, type StateDump } from '../setup/fast-path.js';
import type { NodeExecutor } from '../ssh/keeper.js';
import { connectNodes } from '../ssh/targets.js';
import { asRootArgv, Remote } from '../remote/executor.js';
import { newestOf, type Versioned } from '../deploy/shared-state.js';
import { stateVerbs } from '../remote/commands/state.js';
import { quoteCommand } from '../ssh/quote.js';
import { randomBytes } from 'node:crypto';
import { sanitizeModes, type ModeState } from '../deploy/modes.js';
import type { AppsRecord } from './update.js';
import { LOCATION_PATH } from '../nodeset/values.js';
import { tail } from '../util/exec.js';
import { tlsWiring, type TlsWiring } from '../setup/acme-pair.js';
import { shareTls } from './setup-tls.js';
import { SetupLock, setupLockTaker } from '../setup/setup-lock.js';
import { LOCK_TTL_SECONDS, type Lease } from '../deploy/shared-state.js';

export interface LayerResult {
  layer: string;
  changes: string[];
  seconds: number;
  error?: string;
}

export interface NodeSetupResult {
  name: string;
  role: string;
  status: 'changed' | 'unchanged' | 'failed';
  layers: LayerResult[];
  seconds: number;
  error?: string;
  /** How the node was checked: `fingerprint` (nothing changed since its last full run: the probe alone), else `full`. */
  checked?: 'fingerprint' | 'full';
}

export interface SetupReport {
  nodeset: string;
  dryRun: boolean;
  nodes: NodeSetupResult[];
  seconds: number;
  /** The signal that stopped the run (the nodes whose turn had not come are failed), if one did. */
  interrupted?: string;
}

export interface SetupOptions {
  dryRun: boolean;
  concurrency: number;
  /**
   * The fast path (fast-path.ts): `probe` (the default) asks each node first; `full` checks
   * everything (and records the fingerprint); `none` neither asks nor records (an image's builder:
   * no fingerprint goes into an image).
   */
  fast?: 'probe' | 'full' | 'none';
  /**
   * The deploy lock the caller holds (replace-node, delete-node): the run takes none of its own.
   * Without it a run that sends any full script takes the lock first (setup-lock.ts); a dry run
   * and an image's builder take none.
   */
  lease?: Lease;
  /**
   * SIGINT/SIGTERM handled here (`silver setup-node`): the scripts under way finish, no other
   * starts, the lock is let go. A command that sets nodes up as one of its steps handles its own.
   */
  signals?: boolean;
}

/** Layered setup of every node, then the wiring, concurrently over nodes; one connection each. */
export async function setupNodes(ns: Nodeset, rt: Runtime, opts: SetupOptions): Promise<SetupReport> {
  const t0 = rt.now();
  const nodes = await connectNodes(ns, rt);
  const { targets, missing, addressed } = nodes;
  const pool = await rt.executor(ns.name, targets);
  // Cloud images log in as an unprivileged user with passwordless sudo: the layers need root.
  const users = new Map(targets.map((t) => [t.name, t.username]));
  const deployKey = rt.state.deployKey().public;
  // (the fast path's probes are light: PROBES_PER_SLOT times as many nodes are probed at once as
  // full scripts run at once — their connections made side by side too; a balancer's script that
  // waits for the other nodes' replicas holds no slot meanwhile)
  // SIGINT/SIGTERM (opts.signals): the scripts under way finish, no other starts, and the lock is
  // let go; a second signal ends silver at once.
  let stopped: string | null = null;
  const disposeInterrupt = !opts.signals
    ? () => undefined
    : rt.onInterrupt((sig) => {
        if (stopped) {
          rt.io.err(`silver: ${sig} again: stopping now (the deploy lock lapses after ${LOCK_TTL_SECONDS}s)`);
          process.exit(130);
        }
        stopped = sig;
        rt.io.err(`silver: ${sig}: the setup scripts under way finish, no other starts (again to stop at once)`);
      });
  const notStopped = () => {
    if (stopped) throw new Error(`interrupted (${stopped}) before this node's turn`);
  };
  const fullLimit = pLimit(opts.concurrency);
  const probes = limited(pool, opts.concurrency * PROBES_PER_SLOT);
  const scripts: Scripts = {
    probe: { exec: (...args) => (notStopped(), probes.exec(...args)), close: () => probes.close() },
    full: (fn) =>
      fullLimit(() => {
        notStopped();
        return fn(pool, notStopped);
      }),
  };
  const results = new Map<string, NodeSetupResult>();
  for (const m of missing) {
    results.set(m.name, { name: m.name, role: m.role, status: 'failed', layers: [], seconds: 0, error: m.error });
    rt.io.err(`${m.name}: failed: ${m.error}`);
  }
  const fast = opts.fast ?? 'probe';
  const remote = new Remote(pool, new Set([...users].filter(([, u]) => u === 'root').map(([n]) => n)));
  const lock = new SetupLock(opts.dryRun || fast === 'none' ? null : setupLockTaker(ns, rt, remote, nodes), opts.lease);
  try {
    // The balancers' layer takes the nodes' shared state: with the fast path each node's probe
    // dumps its replica (no session of its own), a balancer's too — its probe asks for a hit
    // whatever its inputs (ANY_DIGEST), and silver takes the hit when the inputs, once every
    // replica is in, have the digest the node recorded: one round trip for a no-op, as the other
    // nodes'. Without the fast path the balancers' scripts wait for those answers.
    const replicas = stateReplicas(ns, remote, addressed, fast === 'probe');
    const shared = replicas.merged.then((answers) => balancerState(ns, answers));
    shared.catch(() => undefined);
    const backup = backupWiringOf(ns, rt, addressed);
    const tls = tlsWirings(ns, rt, addressed);
    const none: BalancerInputs = { health: new Map<string, string>(), healthSeq: 0, modes: null };
    await Promise.all(
      addressed.map(async (node) => {
        const inputs = node.role !== 'balancer' ? none : fast === 'probe' ? shared : await shared;
        const dump = replicas.dumpFor(node.name);
        try {
          results.set(node.name, await setupOne(ns, rt, scripts, node, addressed, deployKey, opts.dryRun, users.get(node.name) === 'root' ? 'sh -s' : 'sudo -n sh -s', inputs, backup, tls.get(node.name) ?? null, fast, lock, dump));
        } finally {
          dump?.answer(null);
        }
      }),
    );
    const ordered = new Set([...tls].filter(([, w]) => w.order).map(([name]) => name));
    if (ns.tls?.mode === 'acme' && !opts.dryRun && !stopped) await shareTls(ns, rt, pool, addressed, results, users, ordered);
    // (a lock lost while the last scripts ran: what they did stands, but another run may have
    // changed the nodes beside them)
    const lost = await lock.lostReason();
    if (lost) rt.io.err(`silver: the deploy lock was lost while the setup ran (${lost}): run silver setup-node ${ns.file} again once no other command runs`);
  } finally {
    disposeInterrupt();
    await lock.release();
    await pool.close();
  }
  return {
    nodeset: ns.name,
    dryRun: opts.dryRun,
    nodes: ns.nodes.map((n) => results.get(n.name)!).filter(Boolean),
    seconds: (rt.now() - t0) / 1000,
    ...(stopped ? { interrupted: stopped } : {}),
  };
}

/** tls = acme: each balancer's wiring (acme-pair.ts), by name. */
function tlsWirings(ns: Nodeset, rt: Runtime, all: readonly AddressedNode[]): Map<string, TlsWiring> {
  const out = new Map<string, TlsWiring>();
  if (ns.tls?.mode !== 'acme') return out;
  const state = rt.state.tlsState(ns.name);
  const hostKeys = rt.state.pinnedKeys(ns.name);
  for (const node of all) {
    const w = tlsWiring(ns, node, all, state, () => rt.state.acmePeerKey(ns.name), hostKeys);
    if (w) out.set(node.name, w);
  }
  return out;
}

/** The scheduled backups' key and copy node, when the nodeset schedules any (see backup-wiring.ts). */
function backupWiringOf(ns: Nodeset, rt: Runtime, all: readonly AddressedNode[]): BackupWiring | null {
  if (!hasSchedules(ns)) return null;
  const target = copyNode(all);
  const senders = Object.entries(ns.backupSchedules ?? {}).flatMap(([svc, schedule]) => all.filter((n) => n.role === `service:${svc}`).map((n) => ({ name: n.name, address: n.address, keep: schedule.keep })));
  return { key: rt.state.backupKey(ns.name), target, targetHostKey: target ? (rt.state.pinnedKeys(ns.name).get(target.name) ?? null) : null, senders };
}

interface ReplicaDump extends StateDump {
  /** The replica's text, or null when the node did not answer (the first call counts). */
  answer(dump: string | null): void;
}

/**
 * The nodes' replicas of the state the balancers' layer takes (`apps`, `maintenance`), when the
 * nodeset has a balancer: with the fast path each node dumps its own through its probe
 * (dumpFor); otherwise every node is asked directly. `merged`: every node's answer (null: none),
 * once all are in.
 */
function stateReplicas(ns: Nodeset, remote: Remote, nodes: readonly AddressedNode[], probing: boolean): { merged: Promise<(string | null)[]>; dumpFor(node: string): ReplicaDump | undefined } {
  const keys = ['apps', 'maintenance'];
  if (!nodes.some((n) => n.role === 'balancer')) return { merged: Promise.resolve([]), dumpFor: () => undefined };
  const ask = async (node: string) => {
    const r = await remote.exec(node, stateVerbs.get(...keys)).catch(() => null);
    return r?.code === 0 ? r.stdout : null;
  };
  // (the probe is root's: the helper without sudo)
  const asRoot = quoteCommand(asRootArgv(stateVerbs.get(...keys)));
  const dumps = new Map<string, ReplicaDump>();
  const answers: Promise<string | null>[] = [];
  for (const node of nodes) {
    if (!probing) {
      answers.push(ask(node.name));
      continue;
    }
    let answer!: (dump: string | null) => void;
    answers.push(new Promise<string | null>((resolve) => (answer = resolve)));
    dumps.set(node.name, { nonce: randomBytes(12).toString('hex'), command: asRoot, answer });
  }
  return { merged: Promise.all(answers), dumpFor: (node) => dumps.get(node) };
}

/**
 * What the balancer's layer takes from the nodes' shared state (every node's answer: see
 * stateReplicas): each app's health_check, as updates recorded it (the balancer checks it under
 * each location), and the maintenance record (a new or rebuilt balancer gets its modes back);
 * empty before the first update or when too few nodes answer (no silver-state yet).
 */
function balancerState(ns: Nodeset, answers: readonly (string | null)[]): BalancerInputs {
  // (every node is asked: a majority would do only while the nodes stay the ones the records were
  // written to — a nodeset that grew, or replaced nodes, have replicas that hold nothing yet)
  let recs: Map<string, Versioned>;
  try {
    recs = answers.length === 0 ? new Map() : newestOf<Versioned>(answers, ns.nodes.length);
  } catch {
    recs = new Map();
  }
  const rec = recs.get('apps') as AppsRecord | undefined;
  // The state is the deploy user's to write: only the nodeset's own apps, and only paths a
  // configuration can hold literally, reach the balancer's configuration; only modes
  // sanitizeModes keeps (and silver-balancer checks again) reach its modes' files.
  const apps = new Set(ns.locations.map((l) => l.app));
  const health = new Map(Object.entries(rec?.health ?? {}).filter(([app, path]) => apps.has(app) && typeof path === 'string' && LOCATION_PATH.test(path)));
  return { health, healthSeq: typeof rec?.seq === 'number' && Number.isSafeInteger(rec.seq) && rec.seq > 0 && rec.seq < 1e12 ? rec.seq : 0, modes: recs.has('maintenance') ? sanitizeModes(recs.get('maintenance'), [...apps]) : null };
}

/** What a balancer's layer takes of the shared state (balancerState); nothing for other roles. */
interface BalancerInputs {
  health: ReadonlyMap<string, string>;
  /** The apps record's seq the health paths come from (0: none). */
  healthSeq: number;
  modes: ModeState | null;
}

/** Where a node's scripts go: its probe, and its full script's turn (at most `concurrency` of those at once). */
interface Scripts {
  probe: NodeExecutor;
  /** `notStopped`: throws once a signal came (checked again after the lock, which may take a while). */
  full: <T>(fn: (pool: NodeExecutor, notStopped: () => void) => Promise<T>) => Promise<T>;
}

const PROBES_PER_SLOT = 4;

/** The executor, with at most `n` of its commands running at once (over all nodes). */
function limited(pool: NodeExecutor, n: number): NodeExecutor {
  const limit = pLimit(n);
  return { exec: (...args) => limit(() => pool.exec(...args)), close: () => pool.close() };
}

async function setupOne(
  ns: Nodeset, rt: Runtime, scripts: Scripts, node: AddressedNode, all: AddressedNode[], deployKey: string, check: boolean, shell: string,
  inputs: BalancerInputs | Promise<BalancerInputs>, backup: BackupWiring | null, tls: TlsWiring | null, fast: 'probe' | 'full' | 'none', lock: SetupLock, dump?: ReplicaDump,
): Promise<NodeSetupResult> {
  const start = rt.now();
  const verb = check ? 'would change' : 'changed';
  const names = layersFor(node.role);
  const layers: LayerResult[] = [];
  // (what a balancer's probe changed before its hit was turned down: reported with the full run's
  // layer of that name, which finds it done)
  const earlier = new Map<string, string[]>();
  const stream = new LayerStream((ended) => {
    const e = { ...ended, changes: [...(earlier.get(ended.layer) ?? []), ...ended.changes] };
    for (const c of e.changes) rt.io.err(`${node.name}: ${e.layer}: ${verb}: ${c}`);
    if (e.code === 0) rt.io.err(`${node.name}: ${e.layer}: ${e.changes.length === 0 ? 'unchanged' : `${e.changes.length} ${verb}`} (${(e.ms / 1000).toFixed(1)}s)`);
    layers.push({ layer: e.layer, changes: e.changes, seconds: e.ms / 1000 });
  }, rt.now);
  const fail = (layer: string, error: string): NodeSetupResult => {
    const last = layers.find((l) => l.layer === layer);
    if (last) last.error = error;
    else layers.push({ layer, changes: [], seconds: 0, error });
    rt.io.err(`${node.name}: ${layer}: failed: ${error}`);
    return { name: node.name, role: node.role, status: 'failed', layers, seconds: (rt.now() - start) / 1000, error: `${layer}: ${error}` };
  };
  // (set by the probe's first line, in gate below)
  let checked = 'full' as 'fingerprint' | 'full';
  let specs: { layer: string; vars: Record<string, string> }[] = [];
  let digest: string | null = null;
  const known = (i: BalancerInputs) => {
    specs = names.map((layer) => ({ layer, vars: layerVars(ns, node, all, layer, deployKey, check, i.health, i.modes, backup, tls, i.healthSeq) }));
    digest = nodeDigest(specs);
  };
  try {
    if (!(inputs instanceof Promise)) known(inputs);
  } catch (e) {
    return fail(names[0]!, (e as Error).message);
  }
  try {
    // The probe first (fast-path.ts): when nothing changed, it is the whole run. Its first line
    // alone says hit (what a node prints after it is not the probe's to decide), and its output
    // reaches the layers' stream only after that line — for a probe of inputs still to come
    // (ANY_DIGEST), only once they have the digest the node's hit names.
    let head: string | null = '';
    let recorded: string | null = null;
    const held: string[] = [];
    const gate = (chunk: string) => {
      if (head !== null) {
        head += chunk;
        const nl = head.indexOf('\n');
        if (nl < 0) return;
        const first = head.slice(0, nl);
        if (digest !== null ? first === FAST_HIT : (recorded = recordedDigest(first)) !== null) checked = 'fingerprint';
        chunk = head.slice(nl + 1);
        head = null;
      }
      if (checked !== 'fingerprint') return;
      if (digest !== null) stream.write(chunk);
      else held.push(chunk);
    };
    let probe = fast === 'probe' ? await scripts.probe.exec(node.name, shell, probeScript(names, digest ?? ANY_DIGEST, check, undefined, dump, lock.own ? lock.token : undefined), undefined, gate) : null;
    if (probe && dump) {
      const { dump: replica, rest } = takeStateDump(probe.stderr, dump.nonce);
      dump.answer(replica);
      probe = { ...probe, stderr: rest };
    }
    if (digest === null) {
      known(await inputs);
      if (checked === 'fingerprint' && recorded === digest) for (const chunk of held) stream.write(chunk);
      else {
        // (turned down: the layers' probes ran all the same — a firewall loaded again is a change)
        const scratch = new LayerStream((e) => {
          if (e.changes.length > 0 && names.includes(e.layer) && !earlier.has(e.layer)) earlier.set(e.layer, e.changes);
        }, rt.now);
        for (const chunk of held) scratch.write(chunk);
        checked = 'full';
      }
    }
    // (under the deploy lock, checked when the script's turn has come: see setup-lock.ts)
    const full = () =>
      scripts.full(async (pool, notStopped) => {
        const lease = await lock.ready();
        notStopped();
        const named = lease ? { token: lease.token, holder: lease.holder, ttl: lease.freshTtl, repair: lock.own } : undefined;
        return pool.exec(node.name, shell, nodeScript(specs, undefined, fast === 'none' ? undefined : digest!, named), undefined, (chunk) => stream.write(chunk));
      });
    const r = probe && checked === 'fingerprint' ? probe : await full();
    // (the layers' markers must name the layers in order: anything else is not a run of them)
    const order = stream.ended.map((e) => e.layer);
    if (order.some((l, i) => l !== names[i])) return fail(names[0]!, `the node answered markers of other layers (${order.join(', ')})`);
    const failed = stream.ended.find((e) => e.code !== 0);
    if (failed) return fail(failed.layer, `exited ${failed.code}: ${tail(r.stderr || r.stdout, 5)}`);
    if (r.code !== 0 || stream.ended.length !== names.length) {
      const layer = names[stream.ended.length] ?? names.at(-1)!;
      return fail(layer, `exited ${r.code}: ${tail(r.stderr || r.stdout, 5)}`);
    }
  } catch (e) {
    return fail(names[stream.ended.length] ?? names[0]!, (e as Error).message);
  }
  const any = layers.some((l) => l.changes.length > 0);
  return { name: node.name, role: node.role, status: any ? 'changed' : 'unchanged', layers, seconds: (rt.now() - start) / 1000, checked };
}

export function renderSetupReport(r: SetupReport): string {
  const rows = r.nodes.map((n) => [
    n.name,
    n.role,
    n.status === 'changed' && r.dryRun ? 'would change' : n.status,
    String(n.layers.reduce((a, l) => a + l.changes.length, 0)),
    `${n.seconds.toFixed(1)}s`,
    n.error ?? '',
  ]);
  const count = (s: string) => r.nodes.filter((n) => n.status === s).length;
  const lines = [table(['NODE', 'ROLE', 'RESULT', 'CHANGES', 'TIME', 'ERROR'], rows)];
  const changed = count('changed');
  const head = r.dryRun ? `dry run: ${changed} would change` : `${changed} changed`;
  lines.push(`nodeset ${r.nodeset}: ${head}, ${count('unchanged')} unchanged, ${count('failed')} failed (${r.seconds.toFixed(1)}s)`);
  if (!r.dryRun && changed === 0 && count('failed') === 0) lines.push('no changes: every node was already set up');
  return lines.join('\n');
}
