import { printable } from '../output/printable.js';
import type { RolloutRecord } from '../deploy/rollout.js';
import type { AppState } from '../deploy/remote.js';
import { Session } from '../deploy/session.js';
import { goneLocally, processAlive } from '../deploy/shared-state.js';
import { readModes, type ModesView } from '../deploy/modes.js';
import { sudoHelper } from '../remote/commands/helpers.js';
import { modeLines } from './maintenance.js';
import { backupAges, backupsLine, readBackupsRecord, type BackupAge } from '../backup/record.js';
import type { Nodeset } from '../nodeset/types.js';
import { table } from '../output/table.js';
import type { Runtime } from '../runtime.js';

export interface AppStatus {
  node: string;
  app: string;
  active: string | null;
  previous: string | null;
  /** Instances newer than the active one (staged, never activated). */
  staged: string[];
  running: string[];
  /** Running but not active: leftovers of an interrupted run. */
  leftovers: string[];
  /** The active instance: `ok`, `unhealthy:CODE`, `stopped`; null without one. */
  health: string | null;
}

export interface Certificate {
  notAfter: string | null;
  issuer: string;
}

export interface StatusReport {
  nodeset: string;
  nodes: { name: string; role: string; address: string | null; reachable: boolean; error?: string }[];
  apps: AppStatus[];
  /** An update or rollback whose record is still open on the nodes. */
  rollout: { kind: string; app: string; instance: string; holder: string; started: string; live: boolean } | null;
  lock: { holder: string; ageSeconds: number; live: boolean } | null;
  /** The balancers' maintenance and read-only modes (null: no balancer, or not readable). */
  modes: ModesView | null;
  /** Per app of the locations: the last backup and the last verified restore, with their ages (null: not readable). */
  backups: BackupAge[] | null;
  /**
   * HTTPS: per balancer (each of a pair has its own), each host's certificate there (null: none
   * yet); a balancer that could not be read is left out; absent without HTTPS.
   */
  certificates?: Record<string, Record<string, Certificate | null>>;
  /** A balancer pair: its shared address and the balancers holding it (one, normally). */
  virtualAddress?: { address: string; heldBy: string[] };
}

/** Each node; on each app server each app's instances and health; the nodeset's lock and open rollout. */
export async function status(ns: Nodeset, rt: Runtime): Promise<StatusReport> {
  const s = await Session.open(ns, rt);
  try {
    const unreachable = new Map(s.missing.map((m) => [m.name, m.error]));
    const states = new Map<string, AppState[]>();
    await Promise.all(
      s.appservers.map(async (n) => {
        try {
          states.set(n.name, (await s.status([n])).get(n.name) ?? []);
        } catch (e) {
          unreachable.set(n.name, (e as Error).message);
        }
      }),
    );
    const [record, info, modes, backups, certificates] = await Promise.all([
      s.state.read<RolloutRecord>('rollout').catch(() => new Map<string, RolloutRecord>()),
      s.state.lockInfo(),
      ns.nodes.some((n) => n.role === 'balancer') ? readModes(s).catch(() => null) : null,
      readBackupsRecord(s).then((r) => backupAges(r.apps, [...new Set(ns.locations.map((l) => l.app))], rt.now()), () => null),
      ns.tls && s.balancers.length ? readCertificates(s) : undefined,
    ]);
    const vip = ns.virtualAddress;
    const heldBy = vip
      ? (await Promise.all(s.balancers.map(async (b) => ((await s.remote.exec(b.name, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']).catch(() => null))?.stdout.includes(` ${vip}/`) ? b.name : null)))).filter((x): x is string => x !== null)
      : [];
    // A holder that ran on this machine and is gone holds nothing, whatever its last heartbeat.
    const lock = info && { ...info, live: info.live && !goneLocally(info.holder, processAlive) };
    const rec = record.get('rollout');
    const apps = s.appservers.flatMap((n) => (states.get(n.name) ?? []).map((a) => summarise(n.name, a)));
    return {
      nodeset: ns.name,
      nodes: ns.nodes.map((spec) => {
        const a = s.all.find((n) => n.name === spec.name);
        const error = unreachable.get(spec.name);
        return { name: spec.name, role: spec.role, address: a?.address ?? null, reachable: !error, ...(error ? { error } : {}) };
      }),
      apps,
      rollout: rec && rec.state === 'running' ? { kind: rec.kind, app: rec.app, instance: rec.instance, holder: rec.holder, started: rec.started, live: !!lock?.live && lock.holder === rec.holder } : null,
      lock,
      modes,
      backups,
      ...(certificates ? { certificates } : {}),
      ...(vip ? { virtualAddress: { address: vip, heldBy } } : {}),
    };
  } finally {
    await s.close();
  }
}

/** Each balancer's certificates (`silver-acme status`), in nodeset order; unreadable ones left out. */
async function readCertificates(s: Session): Promise<NonNullable<StatusReport['certificates']>> {
  const read = (name: string) =>
    s.remote.run(name, 'certificates', sudoHelper('silver-acme', 'status')).then((o) => JSON.parse(o.trim().split('\n').at(-1) ?? '{}') as Record<string, Certificate | null>, () => null);
  const each = await Promise.all(s.balancers.map(async (b) => [b.name, await read(b.name)] as const));
  return Object.fromEntries(each.filter((e): e is readonly [string, Record<string, Certificate | null>] => e[1] !== null));
}

function summarise(node: string, a: AppState): AppStatus {
  const activeIdx = a.active ? a.instances.findIndex((i) => i.name === a.active) : -1;
  return {
    node,
    app: a.app,
    active: a.active,
    previous: a.previous,
    staged: a.instances.filter((_, idx) => idx > activeIdx).map((i) => i.name),
    running: a.instances.filter((i) => i.running).map((i) => i.name),
    leftovers: a.instances.filter((i) => i.running && i.name !== a.active).map((i) => i.name),
    health: a.health,
  };
}

export function renderStatus(r: StatusReport): string {
  const lines = [table(['NODE', 'ROLE', 'ADDRESS', 'STATE'], r.nodes.map((n) => [n.name, n.role, n.address ?? '-', n.reachable ? 'up' : `unreachable: ${n.error}`]))];
  lines.push('');
  lines.push(
    r.apps.length === 0
      ? 'no application deployed'
      : table(
          ['NODE', 'APP', 'ACTIVE', 'HEALTH', 'PREVIOUS', 'STAGED', 'LEFTOVERS'],
          r.apps.map((a) => [a.node, a.app, a.active ?? '-', a.health ?? '-', a.previous ?? '-', a.staged.join(' ') || '-', a.leftovers.join(' ') || '-']),
        ),
  );
  const versions = new Map<string, Set<string>>();
  for (const a of r.apps) versions.set(a.app, (versions.get(a.app) ?? new Set()).add(a.active ?? '-'));
  for (const [app, v] of versions) if (v.size > 1) lines.push(`${app}: the app servers serve different instances (${[...v].join(', ')})`);
  if (r.rollout) {
    // (the record is the deploy user's to write: shown printable)
    const [kind, app, instance, holder] = [r.rollout.kind, r.rollout.app, r.rollout.instance, r.rollout.holder].map((x) => printable(String(x)));
    lines.push(
      r.rollout.live
        ? `${kind === 'update' ? 'an' : 'a'} ${kind} of ${app} to ${instance} is running (${holder})`
        : `an interrupted ${kind} of ${app} to ${instance} (${holder}): the next silver update or rollback of any app converges it`,
    );
  }
  lines.push(...modeLines(r.modes?.record ?? null));
  lines.push(...backupsLine(r.backups));
  if (r.virtualAddress) {
    const h = r.virtualAddress.heldBy;
    lines.push(`virtual address ${r.virtualAddress.address}: ${h.length === 1 ? `held by ${h[0]}` : h.length === 0 ? 'held by NO balancer' : `held by ${h.join(' and ')} (both: a split)`}`);
  }
  lines.push(...certificateLines(r.certificates, !!r.virtualAddress));
  if (r.lock) lines.push(`deploy lock: ${printable(r.lock.holder)}, last heartbeat ${r.lock.ageSeconds}s ago${r.lock.live ? '' : ' (its holder is gone: the next update or rollback takes it over)'}`);
  return lines.join('\n');
}

/** `certificates: HOST until END (ISSUER); ...`, `certificates on BALANCER: ...` for a pair (each has its own). */
export function certificateLines(certificates: StatusReport['certificates'], pair: boolean): string[] {
  return Object.entries(certificates ?? {}).map(([balancer, hosts]) => {
    const list = Object.entries(hosts).map(([host, c]) => (c ? `${host} until ${c.notAfter ?? '?'} (${c.issuer.replace(/^.*CN ?= ?/, '')})` : `${host} none yet (setup-node asks the ACME server)`));
    return `certificates${pair ? ` on ${balancer}` : ''}: ${list.join('; ')}`;
  });
}
