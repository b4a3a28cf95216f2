import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { layersRoot } from '../layers.js';
import { hostname, userInfo } from 'node:os';
import type { AppConfig } from '../app/app-ini.js';
import { dbCommand, deployCommand, envFile, freePort, nextInstanceName, parseStatus, remote, type AppState } from '../deploy/remote.js';
import { ConfigError, diagnostic, ExitError } from '../diagnostics.js';
import type { Nodeset } from '../nodeset/types.js';
import type { Runtime } from '../runtime.js';
import type { AddressedNode } from '../setup/plan.js';
import { SshPool } from '../ssh/pool.js';
import { quoteCommand } from '../ssh/quote.js';
import { connectNodes } from '../ssh/targets.js';

const LOCK_DIR = '/var/lib/silverlining/locks/deploy';
const KEEP_INSTANCES = 3;

export interface NodeStep {
  node: string;
  step: string;
  ok: boolean;
  detail?: string;
}

export interface UpdateReport {
  app: string;
  instance: string;
  nodeset: string;
  ok: boolean;
  activated: string[];
  rolledBack: string[];
  failure: { node: string; step: string; error: string } | null;
  steps: NodeStep[];
  seconds: number;
}

/** Checks the app against the nodeset before anything is touched: exit 2 when they do not fit. */
export function checkAppFitsNodeset(ns: Nodeset, app: AppConfig): void {
  if (!ns.locations.some((l) => l.app === app.name)) {
    const served = [...new Set(ns.locations.map((l) => l.app))];
    throw new ConfigError([
      diagnostic(app.file, 0, 'app_name', `app "${app.name}" is not in the locations of ${ns.file} (it serves: ${served.join(', ') || 'nothing'})`),
    ]);
  }
  for (const svc of app.services) {
    if (!ns.services.includes(svc)) {
      throw new ConfigError([diagnostic(app.file, 0, `service.${svc}`, `the app uses ${svc} but ${ns.file} has no [service:${svc}]`)]);
    }
  }
  if (!ns.nodes.some((n) => n.role === 'appserver')) throw new ConfigError([diagnostic(ns.file, 0, '[appserver]', 'the nodeset has no app server')]);
}

function tarball(dir: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile('tar', ['-C', dir, '--exclude=.git', '-czf', '-', '.'], { encoding: 'buffer', maxBuffer: 512 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`packing ${dir} failed: ${stderr.toString().trim()}`));
      else resolve(stdout);
    });
  });
}

/** A deploy session: the connections, the lock, the nodes. Closed by `close()`. */
export class Session {
  private locked = false;
  private constructor(
    readonly ns: Nodeset,
    readonly rt: Runtime,
    readonly pool: SshPool,
    readonly appservers: AddressedNode[],
    readonly all: AddressedNode[],
  ) {}

  static async open(ns: Nodeset, rt: Runtime): Promise<Session> {
    const { targets, addressed, missing } = await connectNodes(ns, rt, 'silver');
    if (missing.length > 0) throw new ExitError(missing.map((m) => `${m.name}: ${m.error}`).join('; '), 1);
    const appservers = addressed.filter((n) => n.role === 'appserver');
    return new Session(ns, rt, new SshPool(targets), appservers, addressed);
  }

  /** The nodeset's deploy lock, on the first app server: a second update fails at once, naming the holder. */
  async lock(what: string): Promise<void> {
    const holder = `${userInfo().username}@${hostname()} pid ${process.pid}: ${what} since ${new Date().toISOString()}`;
    const node = this.appservers[0]!.name;
    const script = 'mkdir "$1" 2>/dev/null && printf "%s\\n" "$2" > "$1/holder" || { cat "$1/holder" 2>/dev/null || echo unknown; exit 75; }';
    const r = await this.pool.exec(node, quoteCommand(['sh', '-c', script, 'sh', LOCK_DIR, holder]));
    if (r.code === 75) {
      throw new ExitError(`nodeset ${this.ns.name} is locked by ${r.stdout.trim()} (if that run is gone: silver unlock ${this.ns.file})`, 1);
    }
    if (r.code !== 0) throw new ExitError(`${node}: taking the deploy lock failed: ${r.stderr.trim() || 'is setup-node done?'}`, 1);
    this.locked = true;
  }

  async unlock(): Promise<void> {
    if (!this.locked) return;
    await this.pool.exec(this.appservers[0]!.name, quoteCommand(['rm', '-rf', LOCK_DIR])).catch(() => undefined);
    this.locked = false;
  }

  /**
   * The helpers on the nodes must be the ones this silver ships (setup-node installs them):
   * an update against older helpers stops before it changes anything.
   */
  async checkHelpers(services: string[]): Promise<void> {
    const wanted: [AddressedNode, string, string][] = [
      ...this.appservers.map((n): [AddressedNode, string, string] => [n, 'appserver', 'silver-deploy']),
      ...services.map((svc): [AddressedNode, string, string] => [this.all.find((n) => n.role === `service:${svc}`)!, `service/${svc}`, `silver-db-${svc}`]),
    ];
    const stale: string[] = [];
    await Promise.all(
      wanted.map(async ([node, layer, helper]) => {
        const local = createHash('sha256').update(readFileSync(join(layersRoot(), layer, 'bin', helper))).digest('hex');
        const r = await this.pool.exec(node.name, quoteCommand(['sha256sum', `/usr/local/lib/silverlining/bin/${helper}`]));
        if (r.code !== 0 || r.stdout.split(/\s+/)[0] !== local) stale.push(`${node.name} (${helper})`);
      }),
    );
    if (stale.length > 0) {
      throw new ExitError(`the nodes are not set up for this version of silver: ${stale.sort().join(', ')}; run silver setup-node ${this.ns.file} first`, 1);
    }
  }

  async status(): Promise<Map<string, AppState[]>> {
    const out = new Map<string, AppState[]>();
    await Promise.all(this.appservers.map(async (n) => out.set(n.name, parseStatus(await remote(this.pool, n.name, 'status', deployCommand('status'))))));
    return out;
  }

  async close(): Promise<void> {
    try {
      await this.unlock();
    } finally {
      await this.pool.close();
    }
  }
}

/** Breaks a stale deploy lock on purpose. */
export async function unlock(ns: Nodeset, rt: Runtime): Promise<string | null> {
  const s = await Session.open(ns, rt);
  try {
    const node = s.appservers[0]!.name;
    const r = await s.pool.exec(node, quoteCommand(['sh', '-c', 'cat "$1/holder" 2>/dev/null && rm -rf "$1"', 'sh', LOCK_DIR]));
    return r.code === 0 ? r.stdout.trim() : null;
  } finally {
    await s.close();
  }
}

/** SPEC §4: services, half-deploy everywhere, activate one node at a time, roll back on failure. */
export async function update(ns: Nodeset, app: AppConfig, rt: Runtime): Promise<UpdateReport> {
  checkAppFitsNodeset(ns, app);
  const t0 = rt.now();
  const say = (node: string, text: string) => rt.io.err(`${node}: ${text}`);
  const steps: NodeStep[] = [];
  const s = await Session.open(ns, rt);
  let instance = '';
  const activated: string[] = [];
  const rolledBack: string[] = [];
  let failure: UpdateReport['failure'] = null;
  let step = 'check helpers';
  let node = s.appservers[0]!.name;
  let beforeStates = new Map<string, AppState[]>();
  try {
    await s.checkHelpers(app.services);
    step = 'lock';
    await s.lock(`update ${app.name}`);
    const packed = tarball(app.dir);

    // Services: database and user on each service node, created if missing.
    const secrets: Record<string, string> = {};
    for (const svc of app.services) {
      const target = s.all.find((n) => n.role === `service:${svc}`)!;
      node = target.name;
      step = `service ${svc}`;
      const db = svc === 'mysql' ? app.name.replaceAll('-', '_') : app.name;
      const args = svc === 'mysql' ? ['ensure', db, ...s.appservers.map((a) => a.address)] : ['ensure', db];
      const password = (await remote(s.pool, node, `setting up ${svc} for ${app.name}`, dbCommand(svc, ...args))).trim();
      const host = ns.setEtcHosts ? target.name : target.address;
      if (svc === 'postgresql') Object.assign(secrets, { CONFIG_PG_DBNAME: db, CONFIG_PG_USER: db, CONFIG_PG_PASSWORD: password, CONFIG_PG_HOST: host, CONFIG_PG_PORT: '5432' });
      if (svc === 'mysql') Object.assign(secrets, { CONFIG_MYSQL_DBNAME: db, CONFIG_MYSQL_USER: db, CONFIG_MYSQL_PASSWORD: password, CONFIG_MYSQL_HOST: host, CONFIG_MYSQL_PORT: '3306' });
      say(node, `${svc}: database ${db} ready`);
      steps.push({ node, step, ok: true });
    }

    // Name and port of the new instance, from what every app server has.
    step = 'status';
    const before = await s.status();
    beforeStates = before;
    const states = [...before.values()].flat();
    instance = nextInstanceName(app.name, new Date(rt.now()), states.filter((a) => a.app === app.name).flatMap((a) => a.instances.map((i) => i.name)));
    const port = freePort(states.flatMap((a) => a.instances.map((i) => i.port)));
    const canonical = ns.locations.find((l) => l.app === app.name)!.host;

    // Half-deploy: uploaded, installed, environment written; not active.
    const tar = await packed;
    await Promise.all(
      s.appservers.map(async (n) => {
        const env = envFile({
          PORT: String(port),
          SILVER_APP_NAME: app.name,
          SILVER_INSTANCE_NAME: instance,
          SILVER_CANONICAL_HOSTNAME: canonical,
          SILVER_LOGS: `/var/log/silverlining/${app.name}`,
          TEMP: '/tmp',
          ...secrets,
        });
        try {
          const out = await remote(s.pool, n.name, 'staging', deployCommand('stage', app.name, instance, String(port), app.healthCheck, Buffer.from(app.runner).toString('base64'), ...app.packages), tar);
          if (out.trim()) say(n.name, out.trim());
          await remote(s.pool, n.name, 'writing the environment', deployCommand('env', app.name, instance), env);
          say(n.name, `staged ${instance} (port ${port}), not active`);
          steps.push({ node: n.name, step: 'stage', ok: true });
        } catch (e) {
          node = n.name;
          step = 'stage';
          throw e;
        }
      }),
    );

    // Activation, one app server at a time: the first is the primary.
    const stops: Promise<void>[] = [];
    for (const [i, n] of s.appservers.entries()) {
      node = n.name;
      const role = i === 0 ? 'primary' : 'secondary';
      const old = before.get(n.name)?.find((a) => a.app === app.name)?.active ?? null;
      step = 'start';
      await remote(s.pool, n.name, 'starting', deployCommand('start', app.name, instance));
      step = 'wait for the instance';
      await remote(s.pool, n.name, 'waiting for the instance', deployCommand('wait', app.name, instance, '/', '60', 'any'));
      for (const f of app.updateFetch) {
        step = f.kind === 'path' ? `update_fetch ${f.path}` : `update_fetch script:${f.command}`;
        if (f.kind === 'path') await remote(s.pool, n.name, step, deployCommand('fetch', app.name, instance, f.path, role));
        else await remote(s.pool, n.name, step, deployCommand('fetch-script', app.name, instance, role, Buffer.from(f.command).toString('base64')));
        say(n.name, `${step} (${role}) ok`);
      }
      step = `health_check ${app.healthCheck}`;
      await remote(s.pool, n.name, step, deployCommand('wait', app.name, instance, app.healthCheck, '30', '2xx'));
      step = 'switch';
      await remote(s.pool, n.name, 'switching traffic', deployCommand('switch', app.name, instance));
      activated.push(n.name);
      say(n.name, `${instance} active${old ? ` (was ${old})` : ''}`);
      steps.push({ node: n.name, step: 'activate', ok: true, detail: role });
      if (old && old !== instance) {
        // Old nginx workers finish their requests to the old instance first; meanwhile the
        // next app server is activated.
        stops.push(afterGrace(s, n.name, app.name, old));
      }
    }
    step = 'stopping old instances';
    await Promise.all(stops);

    for (const n of s.appservers) {
      const out = await remote(s.pool, n.name, 'pruning', deployCommand('prune', app.name, String(KEEP_INSTANCES)));
      if (out.trim()) say(n.name, out.trim().split('\n').join(', '));
    }
  } catch (e) {
    const error = (e as Error).message;
    failure = { node, step, error };
    rt.io.err(`${node}: FAILED at ${step}: ${error}`);
    steps.push({ node, step, ok: false, detail: error });
    if (instance) await rollbackSwitched(s, app.name, instance, activated, node, rolledBack, say, beforeStates);
  } finally {
    await s.close();
  }
  return { app: app.name, instance, nodeset: ns.name, ok: failure === null, activated: failure ? [] : activated, rolledBack, failure, steps, seconds: (rt.now() - t0) / 1000 };
}

/** After a failure: nodes already switched go back to the previous instance; the failing node stops the new one. */
async function rollbackSwitched(
  s: Session, app: string, instance: string, switched: string[], failedNode: string, rolledBack: string[],
  say: (n: string, t: string) => void, before: Map<string, AppState[]>,
): Promise<void> {
  if (!switched.includes(failedNode)) {
    await remote(s.pool, failedNode, 'stopping the new instance', deployCommand('stop', app, instance)).catch(() => undefined);
  }
  for (const n of [...switched].reverse()) {
    try {
      // Back to exactly the state before this update: the same active and previous instances.
      const state = before.get(n)?.find((a) => a.app === app);
      const prev = state?.active ?? null;
      if (prev) await switchToExisting(s, n, app, prev, instance, state?.previous ?? '-');
      else {
        await remote(s.pool, n, 'switching off', deployCommand('unswitch', app));
        await afterGrace(s, n, app, instance);
      }
      rolledBack.push(n);
      say(n, `rolled back to ${prev ?? 'no instance'}`);
    } catch (e) {
      say(n, `ROLLBACK FAILED: ${(e as Error).message}`);
    }
  }
}

/** Stops an instance once old nginx workers have finished their requests to it. */
async function afterGrace(s: Session, node: string, app: string, instance: string): Promise<void> {
  await new Promise((r) => setTimeout(r, 1500));
  await remote(s.pool, node, `stopping ${instance}`, deployCommand('stop', app, instance));
}

/**
 * Traffic back to an instance that is already staged: start it, wait for its health check,
 * switch, then stop the one it replaces. `previous`: what becomes the previous link (default:
 * the replaced instance; `-`: none).
 */
async function switchToExisting(s: Session, node: string, app: string, target: string, replaced: string | null, previous?: string): Promise<void> {
  await remote(s.pool, node, `starting ${target}`, deployCommand('start', app, target));
  await remote(s.pool, node, `waiting for ${target}`, deployCommand('wait', app, target, '-', '60', '2xx'));
  await remote(s.pool, node, `switching to ${target}`, deployCommand('switch', app, target, ...(previous ? [previous] : [])));
  if (replaced && replaced !== target) await afterGrace(s, node, app, replaced);
}

export interface RollbackReport {
  app: string;
  nodes: { node: string; from: string | null; to: string | null; ok: boolean; error?: string }[];
  ok: boolean;
}

/** `silver rollback APP FILE`: the previous instance, one app server at a time. */
export async function rollback(ns: Nodeset, appName: string, rt: Runtime): Promise<RollbackReport> {
  if (!ns.locations.some((l) => l.app === appName)) throw new ExitError(`app "${appName}" is not in the locations of ${ns.file}`, 2);
  const s = await Session.open(ns, rt);
  const nodes: RollbackReport['nodes'] = [];
  try {
    await s.lock(`rollback ${appName}`);
    const states = await s.status();
    for (const n of s.appservers) {
      const st = states.get(n.name)?.find((a) => a.app === appName);
      if (!st?.previous) throw new ExitError(`${n.name}: ${appName} has no previous instance to roll back to`, 1);
    }
    for (const n of s.appservers) {
      const st = states.get(n.name)!.find((a) => a.app === appName)!;
      try {
        await switchToExisting(s, n.name, appName, st.previous!, st.active);
        nodes.push({ node: n.name, from: st.active, to: st.previous, ok: true });
        rt.io.err(`${n.name}: ${st.previous} active (was ${st.active ?? 'none'})`);
      } catch (e) {
        nodes.push({ node: n.name, from: st.active, to: st.previous, ok: false, error: (e as Error).message });
        rt.io.err(`${n.name}: rollback failed: ${(e as Error).message}`);
        break;
      }
    }
  } finally {
    await s.close();
  }
  return { app: appName, nodes, ok: nodes.length === s.appservers.length && nodes.every((n) => n.ok) };
}

export function renderUpdateReport(r: UpdateReport): string {
  if (r.ok) return `${r.app}: ${r.instance} active on ${r.activated.length} app server${r.activated.length === 1 ? '' : 's'} (${r.activated.join(', ')}) in ${r.seconds.toFixed(1)}s`;
  const lines = [`${r.app}: update ${r.instance || ''} FAILED on ${r.failure!.node} at ${r.failure!.step}: ${r.failure!.error}`];
  lines.push(r.rolledBack.length > 0 ? `rolled back: ${r.rolledBack.join(', ')}; every app server serves its previous instance` : 'no app server was switched; every app server serves its previous instance');
  return lines.join('\n');
}
