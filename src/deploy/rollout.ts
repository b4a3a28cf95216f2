import { deployVerbs, type UpdateRole } from '../remote/commands/deploy.js';
import type { FetchStep } from '../app/app-ini.js';
import { batches, formatRollout, ONE_AT_A_TIME } from '../nodeset/rollout.js';
import { redact } from '../secret.js';
import type { AppState } from './remote.js';
import type { Session } from './session.js';
import type { Lease, Versioned } from './shared-state.js';
import { printable } from '../output/printable.js';

/**
 * One rollout (an update or a rollback) as named steps over the app servers. Every step is
 * preceded by a checkpoint (an interrupt or a lost lock stops it there) and its failure carries
 * the step and the node. The intent is recorded on the nodes before anything switches
 * (`RolloutRecord`) and closed at the end, so that the next run can converge after a crash.
 */
export interface NodeBefore {
  active: string | null;
  previous: string | null;
  /** The static version the active instance served (static-only rollouts). */
  static?: string | null;
}

export interface RolloutRecord extends Versioned {
  state: 'running' | 'done';
  kind: 'update' | 'rollback' | 'static' | 'env';
  app: string;
  /** The instance every app server moves to. */
  instance: string;
  holder: string;
  started: string;
  /** kind `static`: the static version every app server moves to (the instance stays). */
  static?: string;
  /** A mode (migrate_mode) the rollout put the balancers into, and the app's entry before it. */
  hold?: { mode: string; previous: { mode: string; retryAfter: number; message: string } | null };
  /** Each app server's active and previous instance before the rollout. */
  before: Record<string, NodeBefore>;
  outcome?: string;
}

export class StepError extends Error {
  constructor(
    readonly step: string,
    readonly node: string,
    message: string,
  ) {
    super(message);
    this.name = 'StepError';
  }
}

export class Interrupted extends StepError {
  constructor(node: string, reason: string) {
    super('interrupt', node, reason);
    this.name = 'Interrupted';
  }
}

/** A member of a batch that started no further step because another member failed. */
export class Halted extends StepError {
  constructor(step: string, node: string, cause: StepError) {
    super(step, node, `not started: ${cause.node} failed at ${cause.step}`);
    this.name = 'Halted';
  }
}

export interface NodeStep {
  node: string;
  step: string;
  ok: boolean;
  detail?: string;
}

/** The steps as a report shows them: the app's secrets out of every detail. */
export function redactSteps(steps: readonly NodeStep[], secrets: Iterable<string>): NodeStep[] {
  return steps.map((st) => (st.detail === undefined ? st : { ...st, detail: redact(st.detail, secrets) }));
}

export interface RolloutOptions {
  /** How long old nginx workers get to finish requests to a replaced instance before it stops. */
  graceMs: number;
}

/**
 * Stops of replaced instances after the grace period, left to each node: a timer there (`silver-deploy
 * stop-after`) stops the instance, drained, whether or not silver is still running; a later start
 * of it (a rollback's way back) calls the stop off. Silver waits only for the timers to be set.
 */
class PendingStops {
  private readonly pending: Promise<void>[] = [];

  schedule(stop: () => Promise<void>): void {
    this.pending.push(stop().catch(() => undefined));
  }

  /** Waits until every timer is set (or failed to be: the instance is a leftover status shows). */
  async finish(): Promise<void> {
    await Promise.all(this.pending);
    this.pending.length = 0;
  }
}

/** How long silver waits for a migration command (a long one is the app's to have; after that the update stops, and a migration still running is found by the next one). */
export const MIGRATE_TIMEOUT_MS = 4 * 3600_000;

export class Rollout {
  readonly steps: NodeStep[] = [];
  /** App servers this run switched to its target, in order. */
  readonly switched: string[] = [];
  readonly rolledBack: string[] = [];
  private readonly stops: PendingStops;
  private stopReason: string | null = null;
  /** The first failure in a batch: its other members start no further step. */
  private halt: StepError | null = null;
  /** App servers where this run began to activate its target (they may run it unswitched). */
  private readonly begun = new Set<string>();
  private record: RolloutRecord | null = null;
  /** Starts ahead of the turn ("NODE INSTANCE"): whether each ended listening. */
  private readonly warmed = new Map<string, Promise<boolean>>();
  /** activateAll's signal that the primary's update_fetch is done (the others may start). */
  private primaryFetched: (() => void) | null = null;

  constructor(
    readonly s: Session,
    readonly app: string,
    private readonly lease: Lease | null,
    private readonly opts: RolloutOptions,
  ) {
    this.stops = new PendingStops();
  }

  /** A line for the node; what an app wrote in it (a migration's output) shown printable, each line with the node's name. */
  private say(node: string, text: string): void {
    for (const line of text.split('\n')) this.s.rt.io.err(`${node}: ${printable(line)}`);
  }

  /** From now on no new step starts (SIGINT/SIGTERM). */
  interrupt(reason: string): void {
    this.stopReason ??= reason;
  }

  get interrupted(): string | null {
    return this.stopReason;
  }

  /** Runs one named step on a node, unless the rollout was interrupted or its lock lost. */
  async step<T>(step: string, node: string, fn: () => Promise<T>): Promise<T> {
    if (this.halt) throw new Halted(step, node, this.halt);
    if (this.stopReason) throw new Interrupted(node, `interrupted by ${this.stopReason} before ${step}`);
    if (this.lease?.lost) throw new StepError(step, node, `the deploy lock was lost: ${this.lease.lost}`);
    try {
      return await fn();
    } catch (e) {
      if (e instanceof StepError) throw e;
      throw new StepError(step, node, (e as Error).message);
    }
  }

  private run(node: string, what: string, argv: string[], stdin?: string | Buffer): Promise<string> {
    return this.s.remote.run(node, what, argv, stdin);
  }

  /** Writes the rollout's intent (or its end) to the nodes' shared state. */
  async writeRecord(record: Omit<RolloutRecord, 'seq'>, seqAfter: number): Promise<void> {
    const seq = Math.max(seqAfter, this.record?.seq ?? 0) + 1;
    this.record = { ...record, seq };
    await this.s.state.write('rollout', this.record);
  }

  /** The last record this rollout wrote. */
  get current(): RolloutRecord | null {
    return this.record;
  }

  /** The seq of the last record this rollout wrote (0: none). */
  get seq(): number {
    return this.record?.seq ?? 0;
  }

  async closeRecord(outcome: string): Promise<void> {
    if (!this.record) return;
    await this.writeRecord({ ...this.record, state: 'done', outcome }, this.record.seq);
  }

  /** Half-deploy from the node's own instance `from`: its code, a new environment (silver env). */
  async stageClone(node: string, from: string, instance: string, port: number, env: string): Promise<void> {
    await this.step('stage', node, () => this.run(node, 'staging', deployVerbs.clone(this.app, from, instance, port)));
    await this.step('stage', node, () => this.run(node, 'writing the environment', deployVerbs.env(this.app, instance), env));
    this.say(node, `staged ${instance} (port ${port}, the code of ${from}), not active`);
    this.steps.push({ node, step: 'stage', ok: true });
  }

  /**
   * Half-deploy: the instance uploaded, installed and given its environment; not started. The
   * environment may still be in the making while the code goes up.
   */
  async stage(node: string, args: { instance: string; port: number; health: string; runner: string; packages: string[]; tarball: Buffer; env: string | Promise<string> }): Promise<void> {
    const out = await this.step('stage', node, () => this.run(node, 'staging', deployVerbs.stage(this.app, args.instance, args.port, args.health, args.runner, args.packages), args.tarball));
    if (out.trim()) this.say(node, out.trim());
    const env = await args.env;
    await this.step('stage', node, () => this.run(node, 'writing the environment', deployVerbs.env(this.app, args.instance), env));
    this.say(node, `staged ${args.instance} (port ${args.port}), not active`);
    this.steps.push({ node, step: 'stage', ok: true });
  }

  /**
   * `activate` on every app server, in the nodeset's batches (`[appserver] rollout`; default one
   * at a time): the primary alone first, then each batch's members concurrently, a batch only
   * after the one before it switched whole. When a member fails, the others finish the step they
   * are in and start no other; the first failure is thrown (the others are said), and the
   * caller's `restore` puts every switched node back, members of that batch included.
   */
  async activateAll(activate: (node: string) => Promise<void>, warm?: (node: string) => Promise<void>): Promise<void> {
    const plan = batches(this.s.appservers.map((n) => n.name), this.s.ns.rollout ?? ONE_AT_A_TIME);
    const batched = plan.some((b) => b.length > 1);
    // Once the primary's update_fetch is done (or its batch, without one), the others start the
    // new instance at once, so that each one's turn finds it listening; nothing switches before
    // its turn.
    let warming: Promise<unknown> | null = null;
    const startWarm = () => {
      if (!warming && warm && !this.halt) warming = Promise.all(plan.slice(1).flat().map((n) => warm(n).catch(() => undefined)));
    };
    this.primaryFetched = startWarm;
    try {
      for (const [i, batch] of plan.entries()) {
        if (i === 1) startWarm();
        if (batched) this.s.rt.io.err(`batch ${i + 1} of ${plan.length} (rollout = ${formatRollout(this.s.ns.rollout!)}): ${batch.join(', ')}`);
        await this.activateBatch(batch, activate);
      }
    } finally {
      this.primaryFetched = null;
      await warming;
    }
  }

  /** One batch's members at once; the first failure halts the others and is thrown. */
  private async activateBatch(batch: readonly string[], activate: (node: string) => Promise<void>): Promise<void> {
    let failed: StepError | null = null;
    await Promise.all(
      batch.map(async (node) => {
        try {
          await activate(node);
        } catch (e) {
          const err = e instanceof StepError ? e : new StepError('activate', node, (e as Error).message);
          if (!failed) {
            failed = err;
            this.halt = err;
          } else if (!(err instanceof Halted)) {
            this.say(node, `${err instanceof Interrupted ? 'INTERRUPTED' : 'FAILED'} at ${err.step}: ${err.message}`);
            this.steps.push({ node, step: err.step, ok: false, detail: err.message });
          }
        }
      }),
    );
    if (failed) throw failed;
  }

  /** The instance started and listening on the node: by its start ahead of its turn, or now. */
  private async startListening(node: string, instance: string): Promise<void> {
    const ahead = this.warmed.get(`${node} ${instance}`);
    if (ahead && (await ahead)) return;
    await this.step('start', node, () => this.run(node, 'starting', deployVerbs.up(this.app, instance, 60)));
  }

  /** The new instance started on a node ahead of its turn (one that failed is started again in its turn, to tell why). */
  async warm(node: string, instance: string): Promise<void> {
    this.begun.add(node);
    const started = this.startListening(node, instance);
    this.warmed.set(`${node} ${instance}`, started.then(() => true, () => false));
    await started;
  }

  /** Start, listen, update_fetch, health check, switch; then the old instance stops after the grace. */
  async activate(node: string, instance: string, role: UpdateRole, fetches: readonly FetchStep[], health: string, old: string | null): Promise<void> {
    this.begun.add(node);
    await this.startListening(node, instance);
    for (const f of fetches) {
      const name = f.kind === 'path' ? `update_fetch ${f.path}` : `update_fetch script:${f.command}`;
      const argv = f.kind === 'path' ? deployVerbs.fetch(this.app, instance, f.path, role) : deployVerbs.fetchScript(this.app, instance, role, f.command);
      await this.step(name, node, () => this.run(node, name, argv));
      this.say(node, `${name} (${role}) ok`);
    }
    if (role === 'primary') this.primaryFetched?.();
    // ('-': the instance's own health check, as it was staged)
    const check = health === '-' ? 'health_check' : `health_check ${health}`;
    await this.step(check, node, () => this.run(node, check, deployVerbs.wait(this.app, instance, health, 30, '2xx')));
    // (the replaced instance's stop is set by the switch itself, on the node)
    await this.switchTo(node, instance, undefined, true);
    this.say(node, `${instance} active${old ? ` (was ${old})` : ''}`);
    this.steps.push({ node, step: 'activate', ok: true, detail: role });
  }

  /**
   * The migration, once, on the primary, before anything switches: a command runs as the app's
   * user in the new instance's folder and environment (its output streamed); a path is called
   * on the started new instance.
   */
  async migrate(node: string, instance: string, m: FetchStep): Promise<void> {
    if (m.kind === 'script') {
      this.say(node, `migrate: ${m.command}`);
      await this.step('migrate', node, () => this.s.remote.stream(node, 'migrate', deployVerbs.migrate(this.app, instance, m.command), (line) => this.say(node, `migrate: ${line}`), MIGRATE_TIMEOUT_MS));
    } else {
      await this.startListening(node, instance);
      await this.step('migrate', node, () => this.run(node, `migrate ${m.path}`, deployVerbs.migratePath(this.app, instance, m.path)));
    }
    this.say(node, 'migration done');
    this.steps.push({ node, step: 'migrate', ok: true });
  }

  /** What a staged instance holds: its code sum and static version. */
  async mark(node: string, instance: string, code: string, staticSum: string | null, dir: string | null): Promise<void> {
    await this.step('stage', node, () => this.run(node, 'recording the content', deployVerbs.mark(this.app, instance, code, staticSum, dir)));
  }

  /** Static-only: the new static version staged on a node (no process starts). */
  async staticPut(node: string, sum: string, tarball: Buffer): Promise<void> {
    await this.step('stage static', node, () => this.run(node, 'staging the static files', deployVerbs.staticPut(this.app, sum), tarball));
  }

  /** Static-only: the node's active instance serves this static version, at once. */
  async staticSwitch(node: string, sum: string): Promise<void> {
    if (!this.switched.includes(node)) this.switched.push(node);
    await this.step('switch static', node, () => this.run(node, 'switching the static files', deployVerbs.staticSwitch(this.app, sum)));
    this.say(node, `static files ${sum.slice(0, 12)} served`);
  }

  /** After a failed static-only rollout: each switched node back to its old static version. */
  async restoreStatic(before: ReadonlyMap<string, NodeBefore>): Promise<boolean> {
    let ok = true;
    for (const node of [...this.switched].reverse()) {
      const old = before.get(node)?.static;
      if (!old) continue;
      try {
        await this.s.remote.run(node, 'switching the static files back', deployVerbs.staticSwitch(this.app, old));
        this.rolledBack.push(node);
        this.say(node, `static files back to ${old.slice(0, 12)}`);
      } catch (e) {
        ok = false;
        this.say(node, `ROLLBACK FAILED: ${(e as Error).message}`);
      }
    }
    return ok;
  }

  /** Traffic to an instance that is already staged: start it, wait for its health, switch. */
  async moveTo(node: string, target: string, replaced: string | null, previous: string | undefined): Promise<void> {
    this.begun.add(node);
    await this.step('start', node, () => this.run(node, `starting ${target}`, deployVerbs.start(this.app, target)));
    await this.step('health_check', node, () => this.run(node, `waiting for ${target}`, deployVerbs.wait(this.app, target, '-', 60, '2xx')));
    await this.switchTo(node, target, previous);
    if (replaced && replaced !== target) this.stopLater(node, replaced);
  }

  private async switchTo(node: string, instance: string, previous: string | undefined, stopReplaced = false): Promise<void> {
    this.say(node, `switching traffic to ${instance}`);
    // Counted as switched before the verb runs: a switch that took effect but reported a
    // failure (a lost connection, a failed reload) is switched back too (which is idempotent).
    if (!this.switched.includes(node)) this.switched.push(node);
    const argv = stopReplaced ? deployVerbs.switchStop(this.app, instance, this.opts.graceMs) : deployVerbs.switch(this.app, instance, previous);
    await this.step('switch', node, () => this.run(node, 'switching traffic', argv));
  }

  private stopLater(node: string, instance: string): void {
    this.stops.schedule(async () => {
      await this.s.remote.run(node, `stopping ${instance} in ${this.opts.graceMs} ms`, deployVerbs.stopAfter(this.app, instance, this.opts.graceMs));
    });
  }

  /** Stops an instance now (one that is not active), ignoring a node that cannot. */
  async stopNow(node: string, instance: string): Promise<void> {
    await this.s.remote.run(node, `stopping ${instance}`, deployVerbs.stop(this.app, instance)).catch(() => undefined);
  }

  /** Waits for the stops of replaced instances. */
  async finishStops(): Promise<void> {
    await this.stops.finish();
  }

  async prune(node: string, keep: number): Promise<void> {
    const out = await this.step('prune', node, () => this.run(node, 'pruning', deployVerbs.prune(this.app, keep)));
    if (out.trim()) this.say(node, out.trim().split('\n').join(', '));
  }

  /**
   * After a failure or an interrupt: the stops' timers set first (each start of an old instance
   * below calls its stop off on the node); the new
   * instance stopped where it started but never took traffic (the failed node, the other
   * members of its batch); every switched node back to exactly its state before (active and
   * previous), last switched first.
   */
  async restore(target: string, before: ReadonlyMap<string, NodeBefore>, failedNode: string | null): Promise<boolean> {
    // (a run that lost its lock puts nothing back: another may be switching these nodes now, and
    // converges what this one left from the record on the nodes)
    if (this.lease?.lost) {
      this.s.rt.io.err(`silver: nothing is put back: the deploy lock was lost (${this.lease.lost}); the next update or rollback converges from the nodes' record`);
      return false;
    }
    await this.stops.finish();
    const unswitched = new Set([...(failedNode ? [failedNode] : []), ...this.begun]);
    for (const node of unswitched) if (!this.switched.includes(node) && before.get(node)?.active !== target) await this.stopNow(node, target);
    let ok = true;
    for (const node of [...this.switched].reverse()) {
      const was = before.get(node);
      try {
        if (was?.active) {
          await this.s.remote.run(node, `starting ${was.active}`, deployVerbs.start(this.app, was.active));
          await this.s.remote.run(node, `waiting for ${was.active}`, deployVerbs.wait(this.app, was.active, '-', 60, '2xx'));
          await this.s.remote.run(node, `switching back to ${was.active}`, deployVerbs.switch(this.app, was.active, was.previous ?? '-'));
        } else {
          await this.s.remote.run(node, 'switching off', deployVerbs.unswitch(this.app));
        }
        this.stopLater(node, target);
        this.rolledBack.push(node);
        this.say(node, `rolled back to ${was?.active ?? 'no instance'}`);
      } catch (e) {
        ok = false;
        this.say(node, `ROLLBACK FAILED: ${(e as Error).message}`);
      }
    }
    await this.stops.finish();
    return ok;
  }
}

/** Each app server's active and previous instance of the app, from their status. */
export function beforeOf(app: string, states: ReadonlyMap<string, AppState[]>): Map<string, NodeBefore> {
  const out = new Map<string, NodeBefore>();
  for (const [node, apps] of states) {
    const a = apps.find((x) => x.app === app);
    out.set(node, { active: a?.active ?? null, previous: a?.previous ?? null, static: a?.static ?? null });
  }
  return out;
}
