import { printable } from '../output/printable.js';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { ofApp, waitServing } from '../deploy/balancer-wait.js';
import { contentSums, type ContentSums } from '../deploy/content.js';
import { applyMode, clearMode, recordedMode, type Mode, type ModeEntry } from '../deploy/modes.js';
import type { AppConfig } from '../app/app-ini.js';
import { beforeOf, Halted, Interrupted, redactSteps, Rollout, StepError, type NodeBefore, type NodeStep, type RolloutRecord } from '../deploy/rollout.js';
import { freePort, nextInstanceName, type AppState } from '../deploy/remote.js';
import { envFile, passwordValues, withSettings } from '../deploy/settings.js';
import { folderVars, readAppEnv, writePending, type AppEnv } from '../deploy/app-env.js';
import { appVersion, historyEntry, record } from '../deploy/history.js';
import { Session } from '../deploy/session.js';
import { holderText, LOCK_TTL_SECONDS, type Lease, type Versioned } from '../deploy/shared-state.js';
import { ConfigError, diagnostic, ExitError } from '../diagnostics.js';
import { batches, formatRollout, ONE_AT_A_TIME } from '../nodeset/rollout.js';
import type { Nodeset } from '../nodeset/types.js';
import { dbEnsure } from '../remote/commands/db.js';
import { deployVerbs } from '../remote/commands/deploy.js';
import { b64, sudoHelper } from '../remote/commands/helpers.js';
import type { Runtime } from '../runtime.js';
import { service } from '../services/index.js';
import { serviceEnv } from '../services/types.js';
import { redact } from '../secret.js';

const KEEP_INSTANCES = 3;
/**
 * How long after a switch a replaced instance is asked to stop: the reloaded front proxy's new
 * workers have taken over by then; the stop itself waits until the old workers' connections to
 * the instance are gone (at most 10 s), so a slow request is never cut short.
 */
export const GRACE_MS = 500;

export type { NodeStep };

export interface Convergence {
  kind: RolloutRecord['kind'];
  app: string;
  instance: string;
  holder: string;
  /** What this run did about it. */
  action: 'rolled forward' | 'rolled back';
  nodes: string[];
}

export interface UpdateReport {
  app: string;
  instance: string;
  nodeset: string;
  ok: boolean;
  activated: string[];
  rolledBack: string[];
  failure: { node: string; step: string; error: string } | null;
  /** SIGINT/SIGTERM stopped it (exit 130). */
  interrupted: string | null;
  /** An interrupted rollout found on the nodes and settled before this one. */
  converged: Convergence | null;
  /** Only the static folder changed: its files switched, no process started. */
  staticOnly: boolean;
  /** What went wrong after every app server was switched (nothing was rolled back for it). */
  warnings: string[];
  steps: NodeStep[];
  seconds: number;
}

/** Checks the app against the nodeset before anything is touched: exit 2 when they do not fit. */
export function checkAppFitsNodeset(ns: Nodeset, app: AppConfig): void {
  if (!ns.locations.some((l) => l.app === app.name)) {
    const served = [...new Set(ns.locations.map((l) => l.app))];
    throw new ConfigError([
      diagnostic(app.file, app.lines?.['app_name'] ?? 0, 'app_name', `app "${app.name}" is not in the locations of ${ns.file} (it serves: ${served.join(', ') || 'nothing'})`),
    ]);
  }
  for (const svc of app.services) {
    if (!ns.services.includes(svc)) {
      throw new ConfigError([diagnostic(app.file, app.lines?.[`service.${svc}`] ?? 0, `service.${svc}`, `the app uses ${svc} but ${ns.file} has no [service:${svc}]`)]);
    }
  }
  if (!ns.nodes.some((n) => n.role === 'appserver')) throw new ConfigError([diagnostic(ns.file, 0, '[appserver]', 'the nodeset has no app server')]);
  // The balancer checks health_check under each of the app's locations: a path that another
  // location of the host serves (the longest prefix wins) would be answered by that app, or
  // refused as misdirected — never by this one.
  for (const l of ns.locations.filter((x) => x.app === app.name)) {
    const checked = `${l.path.slice(0, -1)}${app.healthCheck}`;
    const serving = ns.locations.filter((o) => o.host === l.host && checked.startsWith(o.path)).sort((a, b) => b.path.length - a.path.length)[0];
    if (serving && serving !== l) {
      throw new ConfigError([diagnostic(app.file, app.lines?.['health_check'] ?? 0, 'health_check', `health_check ${app.healthCheck} under http://${l.host}${l.path} is ${checked}, which http://${l.host}${serving.path} (${serving.app}) serves: the balancer's check of ${app.name} would never reach it; choose a path outside ${serving.path}`)]);
    }
  }
}

function tarball(dir: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile('tar', ['-C', dir, '--exclude=./.git', '-czf', '-', '.'], { encoding: 'buffer', maxBuffer: 512 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`packing ${dir} failed: ${stderr.toString().trim()}`));
      else resolve(stdout);
    });
  });
}

/** What the nodes' shared state keeps about apps (the balancer checks each app's own health_check). */
export interface AppsRecord extends Versioned {
  health: Record<string, string>;
}

/**
 * A deploy under the nodeset's lock, with SIGINT/SIGTERM turned into "stop starting work": the
 * first signal lets the current step end and puts every switched node back; a second one ends
 * silver at once (the record on the nodes lets the next run converge).
 */
export async function underLock<T>(s: Session, what: string, body: (lease: Lease, onSignal: (h: (sig: string) => void) => void) => Promise<T>, after?: () => Promise<unknown>): Promise<T> {
  let handler: ((sig: string) => void) | null = null;
  let signals = 0;
  let first: string | null = null;
  const dispose = s.rt.onInterrupt((sig) => {
    signals++;
    if (signals > 1) {
      s.rt.io.err(`silver: ${sig} again: stopping now; the next silver update or rollback converges the app servers`);
      process.exit(130);
    }
    s.rt.io.err(`silver: ${sig}: finishing the current step, then putting every switched app server back (again to abandon)`);
    first ??= sig;
    handler?.(sig);
  });
  try {
    const lease = await s.state.lock(holderText(what, new Date(s.rt.now())));
    let returned = false;
    try {
      // (a signal that came before the rollout could listen is handed to it at once)
      const out = await body(lease, (h) => {
        handler = h;
        if (first) h(first);
      });
      returned = true;
      return out;
    } finally {
      // (`after`, once the body returned: while the lock is let go, not after it)
      await Promise.all([lease.release(), returned && after ? after() : null]);
    }
  } finally {
    dispose();
  }
}

/** Like Promise.all, but every promise settles before the first rejection is thrown. */
async function allSettled(all: readonly (Promise<unknown> | null)[]): Promise<void> {
  const out = await Promise.allSettled(all);
  const bad = out.find((x): x is PromiseRejectedResult => x.status === 'rejected');
  if (bad) throw bad.reason;
}

/** The newest rollout record on the nodes, and the highest seq seen. */
export async function readRollout(s: Session): Promise<RolloutRecord | null> {
  return (await s.state.read<RolloutRecord>('rollout')).get('rollout') ?? null;
}

/**
 * An interrupted rollout (a record still `running`): when every app server already serves its
 * target, it is rolled forward (the replaced instances stop); otherwise every app server goes
 * back to exactly what it had before it. Says what it found and what it did.
 */
export async function converge(s: Session, rec: RolloutRecord | null, graceMs = GRACE_MS): Promise<{ convergence: Convergence | null; seq: number }> {
  if (!rec || rec.state !== 'running') return { convergence: null, seq: rec?.seq ?? 0 };
  const say = (t: string) => s.rt.io.err(t);
  say(printable(`found an interrupted ${rec.kind} of ${rec.app} to ${rec.instance} (${rec.holder})`));
  // A migration the interrupted update started may still run on the primary (nothing ends a
  // remote command when silver dies): nothing is put back or started beside it.
  const running = rec.kind === 'update' ? await migrationRunning(s, rec.app) : null;
  if (running) throw new ExitError(`${running.node}: the migration the interrupted update of ${rec.app} started still runs (${running.unit}): run the update again once it has ended (silver logs ${rec.app} ${s.ns.file})`, 1);
  const states = await s.status();
  const nodes = s.appservers.map((n) => n.name).filter((n) => rec.before[n]);
  const activeOn = (n: string) => states.get(n)?.find((a) => a.app === rec.app)?.active ?? null;
  const r = new Rollout(s, rec.app, null, { graceMs });
  // A node that no longer has the instance it had before (replaced, pruned) cannot go back to
  // it: left as it is and named, so that one such node does not block every later deploy.
  const has = (n: string, inst: string | null) => !inst || !!states.get(n)?.find((a) => a.app === rec.app)?.instances.some((i) => i.name === inst);
  for (const n of nodes.filter((x) => !has(x, rec.before[x]!.active))) say(`${n}: ${rec.before[n]!.active} is gone from it; it keeps what it serves`);
  if (rec.hold) await putBack(s, rec.app, rec.hold.previous as ModeEntry | null, rec.hold.mode);
  if (rec.kind === 'static') return convergeStatic(s, rec, nodes, states, r);
  const forward = nodes.every((n) => activeOn(n) === rec.instance);
  if (forward) {
    for (const n of nodes) {
      const old = rec.before[n]!.active;
      if (old && old !== rec.instance) await r.stopNow(n, old);
    }
    say(`every app server serves ${rec.instance}: rolled forward`);
  } else {
    const before = new Map(nodes.map((n): [string, NodeBefore] => [n, rec.before[n]!]));
    for (const n of nodes) if (activeOn(n) !== before.get(n)!.active && has(n, before.get(n)!.active)) r.switched.push(n);
    for (const n of nodes) if (!r.switched.includes(n) && before.get(n)!.active !== rec.instance) await r.stopNow(n, rec.instance);
    const ok = await r.restore(rec.instance, before, null);
    if (!ok) throw new ExitError(`converging the interrupted ${rec.kind} of ${rec.app} failed on ${nodes.filter((n) => !r.rolledBack.includes(n)).join(', ')}`, 1);
    say(`rolled back: every app server serves what it did before the interrupted ${rec.kind}`);
  }
  await r.writeRecord({ ...rec, state: 'done', outcome: forward ? 'rolled forward by a later run' : 'rolled back by a later run' }, rec.seq);
  return { convergence: { kind: rec.kind, app: rec.app, instance: rec.instance, holder: rec.holder, action: forward ? 'rolled forward' : 'rolled back', nodes }, seq: r.seq };
}

/** An interrupted static-only rollout: forward when every node serves the new files, else back. */
async function convergeStatic(s: Session, rec: RolloutRecord, nodes: string[], states: Map<string, AppState[]>, r: Rollout): Promise<{ convergence: Convergence; seq: number }> {
  const served = (n: string) => states.get(n)?.find((a) => a.app === rec.app)?.static ?? null;
  const forward = nodes.every((n) => served(n) === rec.static);
  if (!forward) {
    for (const n of nodes) if (served(n) !== rec.before[n]!.static) r.switched.push(n);
    if (!(await r.restoreStatic(new Map(nodes.map((n): [string, NodeBefore] => [n, rec.before[n]!]))))) {
      throw new ExitError(`converging the interrupted static-only update of ${rec.app} failed`, 1);
    }
  }
  s.rt.io.err(forward ? 'every app server serves the new static files: rolled forward' : 'rolled back: every app server serves its static files from before');
  await r.writeRecord({ ...rec, state: 'done', outcome: forward ? 'rolled forward by a later run' : 'rolled back by a later run' }, rec.seq);
  return { convergence: { kind: rec.kind, app: rec.app, instance: rec.instance, holder: rec.holder, action: forward ? 'rolled forward' : 'rolled back', nodes }, seq: r.seq };
}

/** The app's database on each of its services; the app's environment values for them. */
async function setUpServices(s: Session, app: AppConfig, say: (node: string, text: string) => void): Promise<Record<string, string>> {
  const env: Record<string, string> = {};
  for (const name of app.services) {
    const svc = service(name);
    const target = s.all.find((n) => n.role === `service:${name}`)!;
    const db = svc.dbName(app.name);
    try {
      const password = (await s.remote.run(target.name, `setting up ${name} for ${app.name}`, dbEnsure(svc, db, s.appservers.map((a) => a.address)))).trim();
      Object.assign(env, serviceEnv(svc, db, password, s.ns.setEtcHosts ? target.name : target.address));
    } catch (e) {
      throw new StepError(`service ${name}`, target.name, (e as Error).message);
    }
    say(target.name, `${name}: database ${db} ready`);
  }
  return env;
}

/** The app's first location as its users reach it: `https://` when the balancer serves TLS. */
export function canonicalUrl(ns: Nodeset, app: string): string {
  const l = ns.locations.find((x) => x.app === app)!;
  const scheme = ns.tls && ns.nodes.some((n) => n.role === 'balancer') ? 'https' : l.scheme;
  return `${scheme}://${l.host}${l.port ? `:${l.port}` : ''}${l.path}`;
}

/** The balancer's argv for the app's own page: its maintenance.html, or the message page again. */
export function pageVerb(app: Pick<AppConfig, 'name' | 'maintenancePage'>): string[] {
  return app.maintenancePage === null ? sudoHelper('silver-balancer', 'page', 'clear', app.name) : sudoHelper('silver-balancer', 'page', 'set', app.name, b64(app.maintenancePage));
}

/** The balancers check the app's own health_check and serve its maintenance.html; recorded with the nodes' shared state for setup-node. */
async function tellBalancers(s: Session, app: AppConfig): Promise<void> {
  const rec = (await s.state.read<AppsRecord>('apps')).get('apps');
  if (rec?.health[app.name] !== app.healthCheck) {
    await s.state.write('apps', { seq: (rec?.seq ?? 0) + 1, health: { ...(rec?.health ?? {}), [app.name]: app.healthCheck } });
  }
  for (const b of s.balancers) {
    await s.remote.run(b.name, "setting the balancer's health check", sudoHelper('silver-balancer', 'set-health', app.name, app.healthCheck)).catch((e) => {
      throw new StepError('balancer health check', b.name, (e as Error).message);
    });
    await s.remote.run(b.name, "setting the app's maintenance page", pageVerb(app)).catch((e) => {
      throw new StepError('maintenance page', b.name, (e as Error).message);
    });
  }
}

function versionOf(dir: string, code: string | null): { version?: string } {
  const v = appVersion(dir, code);
  return v ? { version: v } : {};
}

/** Old instances pruned to the last few on each app server; a node that fails is said, not fatal. */
export async function pruneAll(rollout: Rollout, s: Session): Promise<void> {
  await Promise.all(s.appservers.map((n) => rollout.prune(n.name, KEEP_INSTANCES).catch((e: Error) => s.rt.io.err(`${n.name}: pruning old instances failed (the next update tries again): ${e.message}`))));
}

/** The unit of a migration of the app still running on the primary (one an update started, that update perhaps gone), or null. */
async function migrationRunning(s: Session, app: string): Promise<{ node: string; unit: string } | null> {
  const node = s.appservers[0]?.name;
  if (!node) return null;
  const m = await s.remote.exec(node, deployVerbs.migrating(app)).catch(() => null);
  return m?.code === 0 ? { node, unit: m.stdout.trim() } : null;
}

/** Puts the balancers into `mode` for the app; what its entry was before (null without balancers). */
async function holdBack(s: Session, app: AppConfig, mode: Mode, record: (previous: ModeEntry | null) => Promise<void>): Promise<{ previous: ModeEntry | null } | null> {
  const wanted = s.ns.nodes.filter((n) => n.role === 'balancer').length;
  if (wanted === 0) {
    s.rt.io.err(`${app.name}: migrate_mode = ${mode} has no effect: the nodeset has no balancer`);
    return null;
  }
  if (s.balancers.length < wanted) throw new StepError(`migrate_mode ${mode}`, s.ns.nodes.find((n) => n.role === 'balancer')!.name, 'a balancer cannot be reached: writes could not be held back');
  const previous = await recordedMode(s, app.name);
  // The hold is on the nodes' record before any balancer changes: after a crash anywhere from
  // here on, the next run puts the mode back.
  await record(previous);
  try {
    await applyMode(s, { app: app.name, mode, message: holdMessage(app.name) }, 'keep');
  } catch (e) {
    // (some balancers may have changed: all go back before the update stops)
    await putBack(s, app.name, previous, mode).catch(() => undefined);
    throw new StepError(`migrate_mode ${mode}`, s.balancers[0]!.name, (e as Error).message);
  }
  s.rt.io.err(`${s.balancers.map((b) => b.name).join(', ')}: ${mode} for ${app.name} while it migrates and activates`);
  return { previous };
}

const holdMessage = (app: string) => `${app} is being updated. Please try again in a moment.`;

/**
 * The app's entry as it was before holdBack — unless it is no longer the one holdBack set (`ours`,
 * with its message): a `silver maintenance` meanwhile is the operator's latest word, and stays.
 */
async function putBack(s: Session, app: string, previous: ModeEntry | null, ours: string): Promise<void> {
  const now = await recordedMode(s, app);
  if (!now || now.mode !== ours || now.message !== holdMessage(app)) {
    s.rt.io.err(`${app}: its mode was changed while the update held it (silver maintenance): left as it is now (${now ? now.mode : 'serving'})`);
    return;
  }
  // (a hold silver keeps for the app — a restore's — outlives the update's passing mode)
  if (previous) await applyMode(s, { app, ...previous }, 'keep');
  else await clearMode(s, app, 'keep');
  s.rt.io.err(`${s.balancers.map((b) => b.name).join(', ')}: ${app} ${previous ? `back to ${previous.mode}` : 'serves normally again'}`);
}

/** The next instance name of the app after every one any app server has. */
export function nextInstance(app: string, states: ReadonlyMap<string, AppState[]>, now: number): string {
  const names = [...states.values()].flat().filter((a) => a.app === app).flatMap((a) => a.instances.map((i) => i.name));
  return nextInstanceName(app, new Date(now), names);
}

/** Only the static folder differs from what every app server's active instance holds. */
function isStaticOnly(app: AppConfig, sums: ContentSums, s: Session, states: ReadonlyMap<string, AppState[]>): boolean {
  // (unchanged code means unchanged migrations too: nothing to migrate)
  if (!app.static || !sums.static) return false;
  return s.appservers.every((n) => {
    const a = states.get(n.name)?.find((x) => x.app === app.name);
    return !!a?.active && a.code === sums.code && a.static !== null && a.static !== sums.static;
  });
}

export interface DeployOptions {
  graceMs?: number;
  /** A new, empty cache folder for the new instance (SILVER_CACHE) instead of the one kept. */
  clearCache?: boolean;
}

/** SPEC §4: services, half-deploy everywhere, activate one node at a time, roll back on failure. */
export async function update(ns: Nodeset, app: AppConfig, given: Runtime, opts: DeployOptions = {}): Promise<UpdateReport> {
  checkAppFitsNodeset(ns, app);
  // The app's secrets never reach silver's own output, even where it repeats what the app printed.
  const secretValues = new Set<string>();
  const rt: Runtime = { ...given, io: { out: (t) => given.io.out(redact(t, secretValues)), err: (t) => given.io.err(redact(t, secretValues)) } };
  const t0 = rt.now();
  const say = (node: string, text: string) => rt.io.err(`${node}: ${text}`);
  const s = await Session.open(ns, rt, ['appserver', ...app.services.map((svc) => `service:${svc}`)]);
  let instance = '';
  let failure: UpdateReport['failure'] = null;
  let converged: Convergence | null = null;
  let r: Rollout | null = null;
  let staticOnly = false;
  let held: { previous: ModeEntry | null } | null = null;
  let activatedAll = false;
  let early: Promise<void> | null = null;
  let appEnv: AppEnv | null = null;
  const afterwards: string[] = [];
  try {
    // (the helpers are checked while the lock is taken: a mismatch stops the update before anything changes)
    const helpers = s.checkHelpers(app.services);
    helpers.catch(() => undefined);
    await underLock(s, `update ${app.name}`, async (lease, onSignal) => {
      await helpers;
      r = new Rollout(s, app.name, lease, { graceMs: opts.graceMs ?? GRACE_MS });
      const rollout = r;
      onSignal((sig) => rollout.interrupt(sig));
      // The sums describe what is packed: taken before and after, and the update stops if the
      // folder changed meanwhile.
      const sumsAtPack = contentSums(app.dir, app.static);
      const packed = tarball(app.dir).then((tar) => {
        if (JSON.stringify(contentSums(app.dir, app.static)) !== JSON.stringify(sumsAtPack)) throw new Error(`${app.dir} changed while it was packed: run the update again`);
        return tar;
      });
      packed.catch(() => undefined);
      const before = { value: new Map<string, NodeBefore>() };
      try {
        const settled = await converge(s, await readRollout(s), opts.graceMs ?? GRACE_MS);
        converged = settled.convergence;
        // The services, the balancers and what every app server has, asked of their nodes at
        // once; the code goes up to the app servers as soon as the instance has a name and a
        // port, while the services and settings that make its environment are still being read.
        const first = s.appservers[0]!.name;
        const servicesP = rollout.step('services', first, () => setUpServices(s, app, say));
        const balancersP = tellBalancers(s, app);
        const settingsP = rollout.step('settings', first, () => readAppEnv(s, app.name));
        for (const p of [servicesP, balancersP, settingsP]) p.catch(() => undefined);
        // (name and port of the new instance come from what every app server has)
        const states = await rollout.step('status', first, () => s.status());
        before.value = beforeOf(app.name, states);
        const sums = sumsAtPack;
        if (isStaticOnly(app, sums, s, states)) {
          await Promise.all([servicesP, balancersP]);
          staticOnly = true;
          instance = before.value.get(first)!.active!;
          const tar = await tarball(join(app.dir, app.static!));
          await rollout.writeRecord(
            { state: 'running', kind: 'static', app: app.name, instance, static: sums.static!, holder: lease.holder, started: new Date(t0).toISOString(), before: Object.fromEntries(before.value) },
            settled.seq,
          );
          await Promise.all(s.appservers.map((n) => rollout.staticPut(n.name, sums.static!, tar)));
          for (const n of s.appservers) await rollout.staticSwitch(n.name, sums.static!);
          activatedAll = true;
          await pruneAll(rollout, s);
          await rollout.closeRecord('activated');
          return;
        }
        const all = [...states.values()].flat();
        const name = nextInstance(app.name, states, rt.now());
        instance = name;
        const port = freePort(all.flatMap((a) => a.instances.map((i) => i.port)));
        const envP = (async () => {
          const [secrets, current] = await Promise.all([servicesP, settingsP]);
          for (const v of passwordValues(secrets)) secretValues.add(v);
          // The app's own settings (silver env) go on with it: those of the primary's active
          // instance, and any staged with --no-restart.
          appEnv = current;
          for (const v of Object.values(current.settings)) secretValues.add(v);
          return envFile(withSettings({
            PORT: String(port),
            SILVER_APP_NAME: app.name,
            SILVER_INSTANCE_NAME: name,
            SILVER_CANONICAL_HOSTNAME: ns.locations.find((l) => l.app === app.name)!.host,
            // (https when the balancer terminates TLS: every plain request is redirected there)
            SILVER_CANONICAL_URL: canonicalUrl(ns, app.name),
            SILVER_LOGS: `/var/log/silverlining/${app.name}`,
            TEMP: '/tmp',
            ...folderVars(app.name, name, current.active, opts.clearCache ?? false),
            ...secrets,
          }, current.settings));
        })();
        envP.catch(() => undefined);
        const tar = await packed;
        const primaryNode = s.appservers[0]!.name;
        // (every node's staging settles before a failure is acted on: the primary may have started)
        await allSettled([
          balancersP,
          ...s.appservers.map(async (n) => {
            await rollout.stage(n.name, { instance: name, port, health: app.healthCheck, runner: app.runner, packages: app.packages, tarball: tar, env: envP });
            await rollout.mark(n.name, name, sums.code, sums.static, app.static);
            // Without a migration (the new code may need it before it starts) the primary starts the
            // new instance as soon as it is staged, while the others stage; it takes no traffic
            // before its switch, and a failure stops it again like any other started instance.
            if (n.name === primaryNode && !app.migrate && app.migrateMode === 'online') early = rollout.warm(n.name, name).catch(() => undefined);
          }),
        ]);

        // The intent, on the nodes, before anything switches.
        await rollout.writeRecord(
          { state: 'running', kind: 'update', app: app.name, instance, holder: lease.holder, started: new Date(t0).toISOString(), before: Object.fromEntries(before.value) },
          settled.seq,
        );
        // The migration: once, on the primary, before anything switches; with migrate_mode the
        // balancers hold writes (or everything) back meanwhile and through the activations.
        if (app.migrateMode !== 'online') {
          held = await holdBack(s, app, app.migrateMode, (previous) => rollout.writeRecord({ ...rollout.current!, hold: { mode: app.migrateMode, previous } }, rollout.seq));
        }
        if (app.migrate) await rollout.migrate(s.appservers[0]!.name, instance, app.migrate);
        const primary = s.appservers[0]!.name;
        await rollout.activateAll(
          (node) => rollout.activate(node, instance, node === primary ? 'primary' : 'secondary', app.updateFetch, app.healthCheck, before.value.get(node)?.active ?? null),
          (node) => rollout.warm(node, instance),
        );
        // Every app server serves the new instance: from here on nothing is rolled back (the
        // migration ran); what fails is said, and an open hold is left to the next run.
        activatedAll = true;
        // (the replaced instances' stops set on their nodes while the old ones are pruned and, when
        // nothing else is left to do, the record closed: pruning is housekeeping, said if it fails)
        const closeNow = !appEnv?.pending.length && !held;
        await Promise.all([rollout.finishStops(), pruneAll(rollout, s), closeNow ? rollout.closeRecord('activated') : null]);
        if (appEnv?.pending.length) {
          await writePending(s, app.name, null, appEnv.stagedAt).catch((x: Error) => afterwards.push(`the settings staged with --no-restart are still staged (${x.message}); the next update applies them again`));
        }
        if (held) {
          const h = held;
          held = null;
          await putBack(s, app.name, h.previous, app.migrateMode).catch((x: Error) => {
            afterwards.push(`the balancers are still in ${app.migrateMode} for ${app.name} (${x.message}): silver maintenance off ${ns.file} --app ${app.name}, or the next update puts it back`);
          });
        }
        if (!closeNow && afterwards.length === 0) await rollout.closeRecord('activated');
      } catch (e) {
        // (a start ahead of the activation settles before anything is put back)
        await early;
        const err = e instanceof StepError ? e : new StepError('update', s.appservers[0]!.name, (e as Error).message);
        failure = { node: err.node, step: err.step, error: redact(err.message, secretValues) };
        rt.io.err(`${err.node}: ${err instanceof Interrupted ? 'INTERRUPTED' : 'FAILED'} at ${err.step}: ${err.message}`);
        rollout.steps.push({ node: err.node, step: err.step, ok: false, detail: failure.error });
        if (activatedAll) {
          // (every node already serves it: a late failure is reported, nothing goes back)
          await rollout.closeRecord('activated').catch(() => undefined);
          return;
        }
        // A migration whose command failed here (its connection dropped, silver's time for it ran
        // out) may still run on the node: nothing is put back or stopped beside it; the record
        // stays open, and the next update converges once it has ended.
        const running = err.step === 'migrate' ? await migrationRunning(s, app.name) : null;
        if (running) {
          rt.io.err(`${running.node}: the migration still runs (${running.unit}): nothing is put back while it does; run the update again once it has ended`);
          return;
        }
        if (held && lease.lost) {
          // (the lock is another run's now: it converges the record, the mode included)
          rt.io.err(`silver: the balancers stay in ${app.migrateMode} for ${app.name}: the deploy lock was lost; the next update puts the mode back`);
        } else if (held) {
          // The mode goes back whatever happened (a failure to do so is said, and the open record
          // lets the next run put it back).
          await putBack(s, app.name, held.previous, app.migrateMode).then(() => (held = null), (x: Error) => rt.io.err(`silver: the balancers are still in ${app.migrateMode} for ${app.name}: ${x.message}; silver maintenance off ${ns.file} --app ${app.name}`));
        }
        if (staticOnly) {
          const ok = await rollout.restoreStatic(before.value);
          if (ok) await rollout.closeRecord('failed, static files restored').catch(() => undefined);
        } else if (instance) {
          const ok = await rollout.restore(instance, before.value, err.node);
          // A record left open (a node could not be put back) makes the next run converge.
          if (ok && !held) await rollout.closeRecord(err instanceof Interrupted ? 'interrupted, rolled back' : 'failed, rolled back').catch(() => undefined);
        }
      }
    }, async () => {
      // The history entry and the wait for the balancers, while the lock is let go.
      const f = failure as UpdateReport['failure'];
      const ended = r as Rollout | null;
      const result = !f ? 'ok' : `${ended?.interrupted ? 'interrupted' : 'failed'} at ${f.step} on ${f.node}: ${f.error}${ended?.rolledBack.length ? ' (rolled back)' : ''}`;
      const code = staticOnly ? null : contentSums(app.dir, app.static).code;
      await Promise.all([
        // (the site serves the new instance when the balancers see it up, not before: a first deploy waits for their checks)
        failure === null && s.balancers.length > 0 ? waitServing(s, rt, ofApp(app.name), 30_000).catch((e: Error) => afterwards.push(e.message)) : null,
        record(s.state, historyEntry({ at: new Date(t0).toISOString(), kind: 'update', app: app.name, ...(instance ? { instance } : {}), ...versionOf(app.dir, code), staticOnly, seconds: (rt.now() - t0) / 1000, result: redact(result, secretValues) }), (t) => rt.io.err(t)),
      ]);
    });
  } finally {
    await s.close();
  }
  const done = r as Rollout | null;
  const interrupted = done?.interrupted ?? null;
  return {
    app: app.name,
    instance,
    nodeset: ns.name,
    ok: failure === null,
    activated: failure ? [] : (done?.switched ?? []),
    rolledBack: done?.rolledBack ?? [],
    failure,
    interrupted,
    converged,
    staticOnly,
    warnings: afterwards,
    steps: redactSteps(done?.steps ?? [], secretValues),
    seconds: (rt.now() - t0) / 1000,
  };
}

export interface UpdatePlan {
  app: string;
  nodeset: string;
  dryRun: true;
  /** The instance an update would stage (or, static-only, the one that keeps serving). */
  instance: string;
  staticOnly: boolean;
  migrate: string | null;
  migrateMode: string;
  services: string[];
  packages: string[];
  appservers: { node: string; active: string | null }[];
  /** The activation batches, in order (the primary alone first). */
  batches: string[][];
  /** `[appserver] rollout` as given; null: absent (one app server at a time). */
  rollout: string | null;
  /** An interrupted rollout the update would converge first. */
  converges: string | null;
  /** Who holds the deploy lock now (the update would wait for nothing: it would refuse). */
  locked: string | null;
  balancers: number;
}

/** `update --dry-run`: what an update would do, read from the nodes; nothing changes, no lock is taken. */
export async function planUpdate(ns: Nodeset, app: AppConfig, rt: Runtime): Promise<UpdatePlan> {
  checkAppFitsNodeset(ns, app);
  const s = await Session.open(ns, rt, ['appserver', ...app.services.map((svc) => `service:${svc}`)]);
  try {
    await s.checkHelpers(app.services);
    const [states, rec, lock] = await Promise.all([s.status(), readRollout(s), s.state.lockInfo()]);
    const sums = contentSums(app.dir, app.static);
    const staticOnly = isStaticOnly(app, sums, s, states);
    const before = beforeOf(app.name, states);
    return {
      app: app.name,
      nodeset: ns.name,
      dryRun: true,
      instance: staticOnly ? before.get(s.appservers[0]!.name)!.active! : nextInstance(app.name, states, rt.now()),
      staticOnly,
      migrate: app.migrate ? (app.migrate.kind === 'script' ? `script:${app.migrate.command}` : app.migrate.path) : null,
      migrateMode: app.migrateMode,
      services: app.services,
      packages: app.packages,
      appservers: s.appservers.map((n) => ({ node: n.name, active: before.get(n.name)?.active ?? null })),
      batches: batches(s.appservers.map((n) => n.name), ns.rollout ?? ONE_AT_A_TIME),
      rollout: ns.rollout ? formatRollout(ns.rollout) : null,
      converges: rec?.state === 'running' ? `${rec.kind} of ${rec.app} to ${rec.instance} (${rec.holder})` : null,
      locked: lock?.live ? lock.holder : null,
      balancers: ns.nodes.filter((n) => n.role === 'balancer').length,
    };
  } finally {
    await s.close();
  }
}

export function renderUpdatePlan(p: UpdatePlan): string {
  const lines = [`dry run: silver update of ${p.app} on nodeset ${p.nodeset} would`];
  if (p.locked) lines.push(`  refuse: the nodeset is locked by ${p.locked}`);
  if (p.converges) lines.push(`  first converge the interrupted ${p.converges}`);
  if (p.staticOnly) lines.push(`  switch only the static files (static-only): ${p.instance} keeps serving, no process starts`);
  else {
    if (p.services.length) lines.push(`  set up its databases on: ${p.services.join(', ')}`);
    lines.push(`  stage ${p.instance} on ${p.appservers.map((a) => `${a.node} (now ${a.active ?? 'none'})`).join(', ')}`);
    if (p.packages.length) lines.push(`  install packages if missing: ${p.packages.join(' ')}`);
    if (p.migrate) lines.push(`  run the migration once on ${p.appservers[0]?.node}: ${p.migrate}${p.migrateMode !== 'online' && p.balancers > 0 ? ` (balancers in ${p.migrateMode} meanwhile)` : ''}`);
    lines.push(activationLine(p));
  }
  lines.push('nothing was changed');
  return lines.join('\n');
}

/** How the dry run says the activation goes: one at a time, or batch by batch. */
function activationLine(p: UpdatePlan): string {
  if (p.batches.every((b) => b.length === 1)) return `  activate it one app server at a time, ${p.appservers[0]?.node} first`;
  const [first, ...rest] = p.batches;
  return `  activate it in ${p.batches.length} batches (rollout = ${p.rollout}): ${first!.join(', ')} (the primary, alone)${rest.map((b) => `; then ${b.join(', ')}`).join('')}`;
}

export interface RollbackReport {
  app: string;
  target: string | null;
  converged: Convergence | null;
  nodes: { node: string; from: string | null; to: string | null; ok: boolean; error?: string }[];
  interrupted: string | null;
  ok: boolean;
}

/**
 * The one instance every app server goes back to: with mixed active instances (an older
 * silver, a hand-made change), the oldest active one; otherwise the newest instance older than
 * the common active one. Every app server must have it staged, else the command refuses,
 * naming the nodes that lack it.
 */
export function rollbackTarget(app: string, states: ReadonlyMap<string, AppState[]>): { target: string } | { error: string } {
  const per = [...states].map(([node, apps]) => ({ node, a: apps.find((x) => x.app === app) }));
  const actives = [...new Set(per.map((p) => p.a?.active ?? null))];
  if (actives.includes(null)) return { error: `${per.filter((p) => !p.a?.active).map((p) => p.node).join(', ')}: ${app} has no active instance to roll back from` };
  let target: string | undefined;
  if (actives.length > 1) target = (actives as string[]).sort()[0];
  else {
    const current = actives[0]!;
    const older = [...new Set(per.flatMap((p) => p.a?.instances.map((i) => i.name) ?? []))].filter((n) => n < current).sort();
    target = per[0]?.a?.previous && per.every((p) => p.a?.previous === per[0]!.a!.previous) ? per[0]!.a!.previous! : older.at(-1);
  }
  if (!target) return { error: `${app} has no previous instance to roll back to` };
  const lacking = per.filter((p) => !p.a?.instances.some((i) => i.name === target)).map((p) => p.node);
  if (lacking.length > 0) return { error: `${lacking.join(', ')}: ${target} is not staged there (it was pruned or never deployed); deploy the version you want with silver update` };
  return { target };
}

/** `silver rollback APP FILE`: one target instance for every app server, one app server at a time. */
export async function rollback(ns: Nodeset, appName: string, rt: Runtime, opts: DeployOptions = {}): Promise<RollbackReport> {
  if (!ns.locations.some((l) => l.app === appName)) throw new ExitError(`app "${appName}" is not in the locations of ${ns.file}`, 2);
  const s = await Session.open(ns, rt, ['appserver']);
  const graceMs = opts.graceMs ?? GRACE_MS;
  const t0 = rt.now();
  try {
    await s.checkHelpers([]);
    const report = await underLock(s, `rollback ${appName}`, async (lease, onSignal): Promise<RollbackReport> => {
      const last = await readRollout(s);
      const { convergence: converged, seq } = await converge(s, last, graceMs);
      const states = await s.status();
      // Right after a static-only update of this app: its static files go back, nothing restarts.
      if (last?.state === 'done' && last.kind === 'static' && last.app === appName && last.outcome === 'activated'
        && s.appservers.every((n) => states.get(n.name)?.find((a) => a.app === appName)?.static === last.static)) {
        return rollbackStatic(s, appName, last, lease, onSignal, graceMs);
      }
      const picked = rollbackTarget(appName, states);
      if ('error' in picked) throw new ExitError(picked.error, 1);
      const target = picked.target;
      const before = beforeOf(appName, states);
      const r = new Rollout(s, appName, lease, { graceMs });
      onSignal((sig) => r.interrupt(sig));
      const nodes: RollbackReport['nodes'] = [];
      await r.writeRecord(
        { state: 'running', kind: 'rollback', app: appName, instance: target, holder: lease.holder, started: new Date(rt.now()).toISOString(), before: Object.fromEntries(before) },
        seq,
      );
      let failed: StepError | null = null;
      try {
        await r.activateAll(async (node) => {
          const from = before.get(node)!.active;
          if (from === target) {
            nodes.push({ node, from, to: target, ok: true });
            return;
          }
          try {
            await r.moveTo(node, target, from, from ?? '-');
            nodes.push({ node, from, to: target, ok: true });
            rt.io.err(`${node}: ${target} active (was ${from ?? 'none'})`);
          } catch (e) {
            const err = e instanceof StepError ? e : new StepError('rollback', node, (e as Error).message);
            // (a member of the batch that only stopped because another failed is no failure of its own)
            if (!(err instanceof Halted)) nodes.push({ node, from, to: target, ok: false, error: err.message });
            throw err;
          }
        });
      } catch (e) {
        failed = e as StepError;
        rt.io.err(`${failed.node}: rollback ${failed instanceof Interrupted ? 'interrupted' : 'failed'} at ${failed.step}: ${failed.message}`);
      }
      const order = s.appservers.map((n) => n.name);
      nodes.sort((a, b) => order.indexOf(a.node) - order.indexOf(b.node));
      if (failed) {
        const ok = await r.restore(target, before, failed.node);
        if (ok) await r.closeRecord('failed, restored').catch(() => undefined);
      } else {
        await r.finishStops();
        await r.closeRecord('activated');
      }
      return { app: appName, target, converged, nodes, interrupted: r.interrupted, ok: !failed };
    });
    const bad = report.nodes.find((n) => !n.ok);
    const result = report.ok ? 'ok' : `${report.interrupted ? 'interrupted' : 'failed'}${bad ? ` on ${bad.node}: ${bad.error}` : ''} (put back)`;
    await record(s.state, historyEntry({ at: new Date(t0).toISOString(), kind: 'rollback', app: appName, ...(report.target ? { instance: report.target } : {}), seconds: (rt.now() - t0) / 1000, result }), (t) => rt.io.err(t));
    return report;
  } finally {
    await s.close();
  }
}

/** Back to the static files from before a static-only update, on every app server. */
async function rollbackStatic(s: Session, appName: string, last: RolloutRecord, lease: Lease, onSignal: (h: (sig: string) => void) => void, graceMs: number): Promise<RollbackReport> {
  const r = new Rollout(s, appName, lease, { graceMs });
  onSignal((sig) => r.interrupt(sig));
  const nodes: RollbackReport['nodes'] = [];
  const now = new Map(s.appservers.map((n): [string, NodeBefore] => [n.name, { ...last.before[n.name]!, static: last.static ?? null }]));
  await r.writeRecord({ ...last, state: 'running', kind: 'static', static: last.before[s.appservers[0]!.name]?.static ?? undefined, started: new Date(s.rt.now()).toISOString(), holder: lease.holder, before: Object.fromEntries(now) }, last.seq);
  let failed: StepError | null = null;
  for (const n of s.appservers) {
    const old = last.before[n.name]?.static;
    try {
      if (!old) throw new StepError('switch static', n.name, 'it had no static files before the static-only update');
      await r.staticSwitch(n.name, old);
      nodes.push({ node: n.name, from: last.static ?? null, to: old, ok: true });
    } catch (e) {
      failed = e instanceof StepError ? e : new StepError('switch static', n.name, (e as Error).message);
      nodes.push({ node: n.name, from: last.static ?? null, to: old ?? null, ok: false, error: failed.message });
      break;
    }
  }
  if (failed && (await r.restoreStatic(now))) await r.closeRecord('failed, restored').catch(() => undefined);
  if (!failed) await r.closeRecord('rolled back static');
  return { app: appName, target: `${last.instance} (static files from before)`, converged: null, nodes, interrupted: r.interrupted, ok: !failed };
}

/**
 * Breaks the deploy lock on purpose; the holders it removed. A live lock (its holder beat within
 * the TTL: it is running) only with `force`: broken under a running command, another run could
 * start beside it.
 */
export async function unlock(ns: Nodeset, rt: Runtime, opts: { force?: boolean } = {}): Promise<string[]> {
  const s = await Session.open(ns, rt);
  try {
    const info = opts.force ? null : await s.state.lockInfo();
    if (info?.live) throw new ExitError(`the deploy lock is held by ${info.holder}, whose last heartbeat was ${info.ageSeconds}s ago: it is running (it is taken over by itself ${LOCK_TTL_SECONDS}s after its last one); silver unlock --force breaks it all the same`, 1);
    return await s.state.breakLock();
  } finally {
    await s.close();
  }
}

export function renderUpdateReport(r: UpdateReport): string {
  const lines: string[] = [];
  if (r.converged) lines.push(`${r.converged.app}: the interrupted ${r.converged.kind} to ${r.converged.instance} was ${r.converged.action} first`);
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  if (r.ok && r.staticOnly) {
    lines.push(`${r.app}: static-only update: new static files served by ${r.instance} on ${r.activated.length} app server${r.activated.length === 1 ? '' : 's'} (no process started) in ${r.seconds.toFixed(1)}s`);
    return lines.join('\n');
  }
  if (r.ok) {
    lines.push(`${r.app}: ${r.instance} active on ${r.activated.length} app server${r.activated.length === 1 ? '' : 's'} (${r.activated.join(', ')}) in ${r.seconds.toFixed(1)}s`);
    return lines.join('\n');
  }
  const what = r.interrupted ? `INTERRUPTED (${r.interrupted})` : 'FAILED';
  lines.push(`${r.app}: update ${r.instance || ''} ${what} on ${r.failure!.node} at ${r.failure!.step}: ${r.failure!.error}`);
  lines.push(r.rolledBack.length > 0 ? `rolled back: ${r.rolledBack.join(', ')}; every app server serves its previous instance` : 'no app server was switched; every app server serves its previous instance');
  return lines.join('\n');
}

export function renderRollbackReport(r: RollbackReport): string {
  const lines: string[] = [];
  if (r.converged) lines.push(`${r.converged.app}: the interrupted ${r.converged.kind} to ${r.converged.instance} was ${r.converged.action} first`);
  for (const n of r.nodes) lines.push(`${n.node}: ${n.ok ? `${n.to} active (was ${n.from ?? 'none'})` : `failed: ${n.error}`}`);
  lines.push(r.ok ? `${r.app}: ${r.target} active on every app server` : `${r.app}: rollback ${r.interrupted ? 'INTERRUPTED' : 'FAILED'}; every app server was put back to what it served before`);
  return lines.join('\n');
}
