import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { performance } from 'node:perf_hooks';
import { ExitError } from '../diagnostics.js';
import { printable } from '../output/printable.js';
import { HELPERS } from '../remote/commands/helpers.js';
import { stateVerbs } from '../remote/commands/state.js';
import type { Remote } from '../remote/executor.js';

/**
 * The nodeset's shared state — the deploy lock, the rollout record, and what later work keeps
 * there — lives on every node of the nodeset (`silver-state`, one replica each): written to all
 * of them, read back from all of them, the newest copy (highest `seq`) winning. The lock counts
 * as taken only on a majority of the nodes the nodeset implies, so two runs cannot both hold it,
 * and any single node can reboot, be lost or be replaced without losing anything.
 */
export interface Versioned {
  seq: number;
}

/** How long a lock lives without a heartbeat, and how often its holder beats. */
export const LOCK_TTL_SECONDS = 30;
/** silver-state's longest TTL: what a lock no heartbeat can reach is given (Lease.freshTtl). */
export const FRESH_ALONE_TTL_SECONDS = 300;
export const HEARTBEAT_MS = 5_000;

export interface StateOptions {
  nodeset: string;
  /** Every node of the nodeset (the majority counts these) and those that answered. */
  total: number;
  nodes: readonly string[];
  say: (text: string) => void;
  /** Whether a process of this machine still runs (a lock of a gone local holder is taken over at once). */
  alive?: (pid: number) => boolean;
}

interface LockAnswer {
  node: string;
  /** `absent`: the node has no silver-state (never set up by silver). */
  outcome: 'taken' | 'renewed' | 'took-over' | 'held' | 'error' | 'absent';
  token?: string;
  holder?: string;
  age?: number;
  error?: string;
}

/** A holder's text as the nodes keep it (base64): any deployer can write one, so it is made printable. */
const decode = (b64: string) => printable(Buffer.from(b64, 'base64').toString('utf8'));

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** `user@host pid N: WHAT since ISO` — who holds the lock, readable by people and by `goneLocally`. */
export function holderText(what: string, now: Date): string {
  return `${userInfo().username}@${hostname()} pid ${process.pid} (machine ${machineId()}): ${what} since ${now.toISOString()}`;
}

/** This machine's id (systemd's /etc/machine-id, shortened), so that two hosts of one name differ. */
export function machineId(): string {
  try {
    return readFileSync('/etc/machine-id', 'utf8').trim().slice(0, 12) || 'unknown';
  } catch {
    return 'unknown';
  }
}

/** True when the holder ran on this machine (same host name and machine id) and its process is gone. */
export function goneLocally(holder: string, alive: (pid: number) => boolean, host = hostname(), machine = machineId()): boolean {
  const m = /^[^@\s]+@(\S+) pid (\d+) \(machine (\S+)\):/.exec(holder);
  return !!m && m[1] === host && m[3] === machine && machine !== 'unknown' && !alive(Number(m[2]));
}

export class SharedState {
  readonly majority: number;
  constructor(
    private readonly remote: Remote,
    private readonly opts: StateOptions,
  ) {
    this.majority = Math.floor(opts.total / 2) + 1;
  }

  /** Reads keys from every node: for each key the copy with the highest seq (or null). */
  async read<T extends Versioned>(...keys: string[]): Promise<Map<string, T>> {
    const answers = await Promise.all(
      this.opts.nodes.map(async (node) => {
        const r = await this.remote.exec(node, stateVerbs.get(...keys)).catch(() => null);
        return r?.code === 0 ? r.stdout : null;
      }),
    );
    return newestOf<T>(answers, this.opts.total);
  }

  /** Writes one key to every node; at least a majority must take it. */
  async write<T extends Versioned>(key: string, value: T): Promise<void> {
    const text = `${JSON.stringify(value)}\n`;
    const ok = await Promise.all(this.opts.nodes.map(async (node) => (await this.remote.exec(node, stateVerbs.put(key), text).catch(() => null))?.code === 0));
    const n = ok.filter(Boolean).length;
    if (n < this.majority) throw new Error(`the nodeset's state (${key}) was written on ${n} of ${this.opts.total} nodes; it needs ${this.majority}`);
  }

  /**
   * Read-modify-write of one record beside other commands: the new value (`next` of the newest)
   * is written only where no replica holds one as new (`silver-state put KEY SEQ`); refused on
   * any node, the record is read again and `next` applied to it — another command's change made
   * meanwhile is built upon, never written over. The value written.
   */
  async update<T extends Versioned>(key: string, next: (current: T | null) => Omit<T, 'seq'>, attempts = 12): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const current = (await this.read<T>(key)).get(key) ?? null;
      const seq = (current?.seq ?? 0) + 1;
      const value = { seq, ...next(current) } as T;
      const text = `${JSON.stringify(value)}\n`;
      const answers = await Promise.all(this.opts.nodes.map((node) => this.remote.exec(node, stateVerbs.put(key, seq), text).catch(() => null)));
      const refused = answers.filter((r) => r?.code === 75).length;
      if (refused === 0) {
        const n = answers.filter((r) => r?.code === 0).length;
        // (a node whose silver-state is older than this silver takes no SEQ)
        const old = answers.filter((r) => r?.code === 1 && /usage: silver-state put KEY$/m.test(r.stderr)).length;
        if (old > 0) throw new ExitError(`the nodes' silver-state is older than this silver (${old} of ${this.opts.total}): run silver setup-node first`, 1);
        if (n < this.majority) throw new Error(`the nodeset's state (${key}) was written on ${n} of ${this.opts.total} nodes; it needs ${this.majority}`);
        return value;
      }
      if (attempt >= attempts) throw new Error(`the nodeset's state (${key}) kept changing under this command (${attempts} tries): run it again`);
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 50 * 2 ** Math.min(attempt, 6))));
    }
  }

  /** Adds one line to the log KEY on every node; the number of nodes that took it. */
  async append(key: string, line: string): Promise<number> {
    const ok = await Promise.all(this.opts.nodes.map(async (node) => (await this.remote.exec(node, stateVerbs.append(key), `${line}\n`).catch(() => null))?.code === 0));
    return ok.filter(Boolean).length;
  }

  /** The newest lines of the log KEY on every node that answers, each line once (a node may lack some). */
  async log(key: string, lines: number): Promise<string[]> {
    const seen = new Set<string>();
    await Promise.all(
      this.opts.nodes.map(async (node) => {
        const r = await this.remote.exec(node, stateVerbs.log(key, lines)).catch(() => null);
        if (r?.code === 0) for (const l of r.stdout.split('\n')) if (l.trim()) seen.add(l);
      }),
    );
    return [...seen];
  }

  /**
   * Takes the deploy lock on a majority of the nodes (taking over a stale one, saying whose).
   * `token`: the lock's (a fresh one by default); `first`: the nodes' answers to a first try of
   * it already made (lockWhereInstalled), not asked again.
   */
  async lock(holder: string, attempts = 5, token = randomBytes(16).toString('hex'), first?: LockAnswer[]): Promise<Lease> {
    const alive = this.opts.alive ?? processAlive;
    for (let attempt = 1; ; attempt++) {
      let answers = attempt === 1 && first ? first : await this.tryLock(this.opts.nodes, token, holder);
      // A holder that ran on this machine and is gone is taken over at once, not after its TTL.
      const gone = answers.filter((a) => a.outcome === 'held' && goneLocally(a.holder!, alive));
      if (gone.length > 0) {
        const retried = new Map((await Promise.all(gone.map((a) => this.tryLock([a.node], token, holder, a.token)))).flat().map((a) => [a.node, a]));
        answers = answers.map((a) => retried.get(a.node) ?? a);
      }
      const held = answers.find((a) => a.outcome === 'held');
      const mine = answers.filter((a) => a.outcome === 'taken' || a.outcome === 'renewed' || a.outcome === 'took-over');
      // A majority is the lock: two runs can never both have one. A racing run's minority is
      // given up by that run, and the heartbeat takes those nodes.
      if (mine.length >= this.majority) {
        for (const h of new Set(answers.filter((a) => a.outcome === 'took-over').map((a) => a.holder!))) {
          this.opts.say(`took over the deploy lock of ${h} (its holder is gone)`);
        }
        const lease = new Lease(this.remote, this.opts.nodes, token, holder, this.opts.total);
        lease.heldOn(mine.map((a) => a.node));
        return lease;
      }
      await Promise.all(mine.map((a) => this.remote.exec(a.node, stateVerbs.unlock(token)).catch(() => undefined)));
      // Two runs that started together may each hold a minority: both back off a random moment
      // and try again, so that one of them wins; a lock another run holds on a majority (the
      // rest of its nodes not taken yet) refuses at once, like one it holds whole.
      const byOther = new Map<string, number>();
      for (const a of answers) if (a.outcome === 'held') byOther.set(a.token ?? '', (byOther.get(a.token ?? '') ?? 0) + 1);
      const otherHasMajority = [...byOther.values()].some((n) => n >= this.majority);
      if (held && mine.length > 0 && !otherHasMajority && attempt < attempts) {
        await new Promise((r) => setTimeout(r, 100 + Math.floor(Math.random() * 700)));
        continue;
      }
      if (held) {
        throw new ExitError(`nodeset ${this.opts.nodeset} is locked by ${held.holder} (last heartbeat ${held.age}s ago; taken over after ${LOCK_TTL_SECONDS}s without one)`, 1);
      }
      const errors = answers.filter((a) => a.outcome === 'error' || a.outcome === 'absent').map((a) => `${a.node}: ${a.error}`);
      throw new ExitError(`the deploy lock needs ${this.majority} of ${this.opts.total} nodes; ${mine.length} took it${errors.length ? ` (${errors.join('; ')})` : ''}`, 1);
    }
  }

  /**
   * setup-node's lock: its majority counted over the nodes that have silver-state — a node that
   * was never set up can hold no lock, so every majority of the nodeset lies among the others —
   * and its heartbeat over every node: the full scripts that install silver-state on a new node
   * take its replica for this lock in the same step (base layer, SILVER_LOCK_*), and the
   * heartbeat renews it from then on, so that no node is ever set up and free for another run.
   * With no node set up yet (the nodeset's first setup), a lease no node grants (it is never lost).
   */
  async lockWhereInstalled(holder: string, token: string): Promise<Lease> {
    const answers = await this.tryLock(this.opts.nodes, token, holder);
    const absent = answers.filter((a) => a.outcome === 'absent').map((a) => a.node);
    if (absent.length === 0) return this.lock(holder, 5, token, answers);
    const installed = this.opts.nodes.filter((n) => !absent.includes(n));
    const total = this.opts.total - absent.length;
    const lease = installed.length === 0 ? new Lease(this.remote, [], token, holder, 0) : await new SharedState(this.remote, { ...this.opts, nodes: installed, total }).lock(holder, 5, token, answers.filter((a) => a.outcome !== 'absent'));
    lease.include(absent);
    return lease;
  }

  private async tryLock(nodes: readonly string[], token: string, holder: string, steal?: string): Promise<LockAnswer[]> {
    return Promise.all(
      nodes.map(async (node): Promise<LockAnswer> => {
        try {
          const r = await this.remote.exec(node, stateVerbs.lock(token, LOCK_TTL_SECONDS, holder, steal));
          return parseLockAnswer(node, r.code, r.stdout, r.stderr);
        } catch (e) {
          return { node, outcome: 'error', error: (e as Error).message };
        }
      }),
    );
  }

  /** Breaks the lock on every node on purpose; the holders it removed. */
  async breakLock(): Promise<string[]> {
    const out = await Promise.all(this.opts.nodes.map(async (node) => (await this.remote.exec(node, stateVerbs.breakLock()).catch(() => null))?.stdout.trim() ?? ''));
    return [...new Set(out.filter((l) => l.startsWith('removed ')).map((l) => decode(l.slice('removed '.length))))];
  }

  /** Who holds the lock now (the replica with the freshest heartbeat), or null. */
  async lockInfo(): Promise<{ holder: string; ageSeconds: number; live: boolean } | null> {
    let best: { holder: string; ageSeconds: number; live: boolean } | null = null;
    await Promise.all(
      this.opts.nodes.map(async (node) => {
        const r = await this.remote.exec(node, stateVerbs.lockinfo()).catch(() => null);
        const m = /^held \S+ (-?\d+) (\d+) (\S+)/.exec(r?.stdout ?? '');
        if (!m) return;
        const info = { holder: decode(m[3]!), ageSeconds: Number(m[1]), live: Number(m[1]) <= Number(m[2]) };
        if (!best || info.ageSeconds < best.ageSeconds) best = info;
      }),
    );
    return best;
  }
}

export function parseLockAnswer(node: string, code: number, stdout: string, stderr: string): LockAnswer {
  const line = stdout.trim();
  if (code === 0 && (line === 'taken' || line === 'renewed')) return { node, outcome: line };
  if (code === 0 && line.startsWith('took-over ')) return { node, outcome: 'took-over', holder: decode(line.slice('took-over '.length)) };
  const held = /^held (\S+) (-?\d+) (\S+)$/.exec(line);
  if (code === 75 && held) return { node, outcome: 'held', token: held[1]!, age: Number(held[2]), holder: decode(held[3]!) };
  // (no helper to run: the shell's "not found", or sudo's "command not found" in whatever
  // language the node speaks — "sudo: PATH: ..." names the helper first in every one — sudo's
  // whole answer, one line; its other errors that name the path ("too many levels of symbolic
  // links" and the like) come from a node that has the helper, and say so in English)
  const sudoSays = stderr.trim();
  const prefix = `sudo: ${HELPERS}/silver-state`;
  const notFound = code === 1 && sudoSays.startsWith(prefix) && /^ ?: /.test(sudoSays.slice(prefix.length)) && !sudoSays.includes('\n') && !/(symbolic links|denied|directory)$/i.test(sudoSays);
  if (!line && (code === 127 || notFound)) return { node, outcome: 'absent', error: 'silver-state is not installed (the node was never set up)' };
  return { node, outcome: 'error', error: (stderr || stdout).trim() || `exit ${code}` };
}

/**
 * The replicas' answers to `silver-state get` (null: a node that did not answer) merged: for each
 * key the copy with the highest seq. Every write reached a majority, so reading a majority sees
 * the newest copy of each key: fewer answers than a majority of `total` is an error.
 */
export function newestOf<T extends Versioned>(answers: readonly (string | null)[], total: number): Map<string, T> {
  // (copies of one seq that differ — two writers raced — : the one more replicas hold, then the
  // same one for every reader, whatever order the answers came in)
  const copies = new Map<string, Map<string, { value: T; count: number }>>();
  let answered = 0;
  for (const stdout of answers) {
    if (stdout === null) continue;
    answered++;
    for (const [key, value] of parseGet<T>(stdout)) {
      const byText = copies.get(key) ?? new Map<string, { value: T; count: number }>();
      copies.set(key, byText);
      const text = JSON.stringify(value);
      const c = byText.get(text);
      if (c) c.count++;
      else byText.set(text, { value, count: 1 });
    }
  }
  const best = new Map<string, T>();
  for (const [key, byText] of copies) {
    const ranked = [...byText].sort(([ta, a], [tb, b]) => b.value.seq - a.value.seq || b.count - a.count || (ta < tb ? -1 : ta > tb ? 1 : 0));
    best.set(key, ranked[0]![1].value);
  }
  const majority = Math.floor(total / 2) + 1;
  if (answered < majority) throw new Error(`the nodeset's state was read on ${answered} of ${total} nodes; it needs ${majority}`);
  return best;
}

/** `silver-state get` output: `== KEY` then one JSON line, per present key. */
export function parseGet<T>(stdout: string): Map<string, T> {
  const out = new Map<string, T>();
  const lines = stdout.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^== ([a-z][a-z0-9-]*)$/.exec(lines[i]!);
    if (!m) continue;
    try {
      const v = JSON.parse(lines[i + 1] ?? '') as T & Versioned;
      if (typeof v.seq === 'number') out.set(m[1]!, v);
    } catch {
      // a damaged replica counts as absent; the others answer
    }
  }
  return out;
}

/** How long a node's answer to a heartbeat is waited for: a node that hangs must not hold up the others' renewals. */
export const BEAT_TIMEOUT_MS = 10_000;
/** The lease counts as lost this long before its TTL ends since the last renewal a majority confirmed. */
const EXPIRY_MARGIN_MS = 5_000;

/** The promise, or a rejection after `ms` (the promise itself is left to settle on its own). */
function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    timer.unref();
  });
  p.catch(() => undefined);
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** A majority of `total` nodes; none of none. */
const majorityOf = (total: number) => (total === 0 ? 0 : Math.floor(total / 2) + 1);

/** A held deploy lock: renewed by a heartbeat until released. */
export class Lease {
  private timer: NodeJS.Timeout | null = null;
  private beating: Promise<void> = Promise.resolve();
  /** Set when a heartbeat finds the lock gone or taken. */
  private lostReason: string | null = null;
  /** The nodes whose replica holds this lock: one that answers `taken` again had it removed (silver unlock). */
  private readonly holding = new Set<string>();
  /** When the last renewal a majority confirmed was sent (the lock's TTL runs from then on the nodes). */
  private confirmedAt: number;

  private majority: number;

  constructor(
    private readonly remote: Remote,
    private nodes: readonly string[],
    readonly token: string,
    readonly holder: string,
    /** Every node the nodeset implies (the majority counts these). */
    private total: number,
    heartbeatMs = HEARTBEAT_MS,
    /** A clock that never steps back (a step of the wall clock must not hide a lapsed lock). */
    private readonly now: () => number = () => performance.now(),
  ) {
    this.majority = majorityOf(total);
    this.confirmedAt = now();
    if (heartbeatMs > 0) {
      this.timer = setInterval(() => {
        this.beating = this.beating.then(() => this.beat());
      }, heartbeatMs);
      this.timer.unref();
    }
  }

  /**
   * Set when the holder must stop: a heartbeat found the lock gone or taken, or no renewal has been
   * confirmed for so long that the lock may have lapsed on the nodes (this process was paused, or
   * the nodes did not answer) — another run may hold it already, though no heartbeat has said so.
   */
  get lost(): string | null {
    if (this.lostReason) return this.lostReason;
    // (no node counts: none can grant the lock to another run either)
    if (this.majority === 0) return null;
    const since = this.now() - this.confirmedAt;
    if (since > LOCK_TTL_SECONDS * 1000 - EXPIRY_MARGIN_MS) return `no renewal was confirmed for ${Math.round(since / 1000)}s (the lock lapses after ${LOCK_TTL_SECONDS}s): another run may hold it`;
    return null;
  }

  /**
   * One heartbeat on every node (taking the lock again where it had lapsed but is free). The
   * renewal counts as confirmed as soon as a majority has answered (a slow node does not hold it
   * up); each node is given at most BEAT_TIMEOUT_MS, its connection included.
   */
  async beat(): Promise<void> {
    const sent = this.now();
    let mine = 0;
    let renewed = 0;
    let broken: string | null = null;
    const answers = await Promise.all(
      this.nodes.map(async (node) => {
        const r = await withTimeout(this.remote.exec(node, stateVerbs.lock(this.token, LOCK_TTL_SECONDS, this.holder), undefined, BEAT_TIMEOUT_MS), BEAT_TIMEOUT_MS).catch(() => null);
        const a = r ? parseLockAnswer(node, r.code, r.stdout, r.stderr) : null;
        // (taken anew where this run held it: the lock was removed there meanwhile)
        if ((a?.outcome === 'taken' || a?.outcome === 'took-over') && this.holding.has(node)) broken = node;
        if (a?.outcome === 'renewed') renewed++;
        const ours = a?.outcome === 'taken' || a?.outcome === 'renewed' || a?.outcome === 'took-over';
        if (ours) this.holding.add(node);
        if (ours && ++mine === this.majority && !this.lostReason) this.confirmedAt = sent;
        return a;
      }),
    );
    const held = answers.find((a) => a?.outcome === 'held');
    // Broken on a majority (silver unlock --force, or a run that took it over and let it go): this
    // run stops beating and gives back what this beat took — the lock is free, as the unlock meant,
    // and the run stops at its next step. (One node's lapse, a majority still renewing, is not that.)
    if (broken && renewed < this.majority && !this.lostReason) {
      this.lostReason = `${broken}: the deploy lock was broken (silver unlock) while this run held it`;
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
      await Promise.all(this.nodes.map((node) => this.remote.exec(node, stateVerbs.unlock(this.token)).catch(() => undefined)));
      return;
    }
    if (this.majority > 0 && mine < this.majority) this.lostReason = held ? `${held.node}: the lock is now held by ${held.holder}` : `the lock is renewed on only ${mine} nodes`;
  }

  /**
   * The TTL a node gives this lock as it takes it while it gets silver-state (setup-node's
   * take_fresh_lock): the heartbeat's, but when no node is left to this lease (a one-node
   * nodeset's replace-node set it aside) no heartbeat reaches the new node, which holds the lock
   * alone until the caller takes it up there through a session of its own: the longest the
   * helper allows, so that it cannot lapse meanwhile.
   */
  get freshTtl(): number {
    return this.nodes.length === 0 && this.total === 0 ? FRESH_ALONE_TTL_SECONDS : LOCK_TTL_SECONDS;
  }

  /** The nodes that answered this lock's taking (set once, by lock()). */
  heldOn(nodes: readonly string[]): void {
    for (const n of nodes) this.holding.add(n);
  }

  /**
   * A node this run destroys and builds again (replace-node): meanwhile the lock lives on the
   * others, its majority counted over them (the new node holds no lock, so no other run can count
   * it either). In a nodeset of two nodes the lock would otherwise be lost with the first beat; in
   * a nodeset of one, no node counts and the lease is never lost (the new node takes it as it
   * gets silver-state, for its TTL: this run's session cannot reach the new node to renew it).
   */
  setAside(node: string): void {
    if (!this.nodes.includes(node)) return;
    this.holding.delete(node);
    this.nodes = this.nodes.filter((n) => n !== node);
    this.total -= 1;
    this.majority = majorityOf(this.total);
  }

  /**
   * Nodes the heartbeat takes and renews from now on, their majority not counted over them: ones
   * that had no silver-state when the lock was taken (setup-node installs it under this lock,
   * taking the node's replica at once: see lockWhereInstalled).
   */
  include(nodes: readonly string[]): void {
    for (const node of nodes) if (!this.nodes.includes(node)) this.nodes = [...this.nodes, node];
  }

  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.beating;
    await Promise.all(this.nodes.map((node) => this.remote.exec(node, stateVerbs.unlock(this.token)).catch(() => undefined)));
  }
}
