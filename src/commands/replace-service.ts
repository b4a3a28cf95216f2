import { readReplaceRecord, type ReplaceRecord } from '../backup/replace-record.js';
import { Stopped, underDeployLock } from '../backup/lock.js';
import { compareCounts } from '../backup/manifest.js';
import { readBackupsRecord } from '../backup/record.js';
import { backupsBase, resolveBackup, type StoredBackup } from '../backup/store.js';
import { holdApp, holders, releaseApp, type ModeEntry } from '../deploy/modes.js';
import { exportInstance } from '../deploy/replicate.js';
import { Session } from '../deploy/session.js';
import { parseEnvFile } from '../deploy/settings.js';
import { ExitError } from '../diagnostics.js';
import type { Nodeset, NodeSpec } from '../nodeset/types.js';
import { dbEnsure, dbVerbs } from '../remote/commands/db.js';
import type { Runtime } from '../runtime.js';
import { service } from '../services/index.js';
import { backup, restoreBackup } from './backup.js';
import { createAndSetUp, destroyNode, nodeExists } from './rebuild-node.js';

/**
 * replace-node for a service node (PostgreSQL, MariaDB): refused unless every app with a
 * database there has a backup whose restore was verified within MAX_VERIFIED_DAYS (or
 * `force`). Then, under the deploy lock: the apps in maintenance on the balancers; a fresh dump
 * of each app's live database (kept with the other backups, and named on the nodes in a
 * `replace` record before anything is destroyed: a re-run after a crash restores those dumps,
 * never a dump of the new, empty node); the node destroyed, created, set up (the record then
 * says the node is new: a re-run does not destroy it again); each app's database and user made
 * again with the password its app servers have; the dump restored and its rows compared with its
 * manifest (each app that matched named in the record: a re-run restores only the others, from
 * the same dumps); once every app matched, the record closed and the modes put back. An app whose
 * rows differ keeps every app in maintenance and the record open: the same command again
 * restores it once more from its dump (`silver maintenance` on the app ends its hold instead).
 */
export const MAX_VERIFIED_DAYS = 7;

export interface ServiceReplaceOptions {
  yes: boolean;
  force?: boolean;
  sshTimeoutMs?: number;
}

export interface ServiceReplaceResult {
  apps: { app: string; stamp: string; rows: number }[];
  problems: string[];
  notes: string[];
}


/**
 * The apps of an unfinished replacement whose hold a `silver maintenance` ended (taken as they
 * are, not restored again), in the record's order; none without a replacement to resume or a
 * balancer to hold them.
 */
async function acceptedApps(s: Session, resumed: ReplaceRecord | null): Promise<string[]> {
  if (!resumed?.backups || s.balancers.length === 0) return [];
  const held = await holders(s);
  return Object.keys(resumed.backups).filter((app) => held.get(app) !== HOLDER);
}

/** The holder of the apps' maintenance during a replacement (modes.ts). */
const HOLDER = 'replace-node';

type Say = (text: string) => void;

export async function replaceServiceNode(ns: Nodeset, rt: Runtime, spec: NodeSpec, opts: ServiceReplaceOptions, say: Say): Promise<ServiceReplaceResult> {
  const name = spec.role.slice('service:'.length);
  const svc = service(name);
  const out: ServiceReplaceResult = { apps: [], problems: [], notes: [] };
  const s = await Session.open(ns, rt, ['appserver']);
  try {
    // The apps with a database there, and the password each one's app servers have.
    const passwords = await appPasswords(s, svc.envPrefix);
    const apps = [...passwords.keys()];
    const pending = await readReplaceRecord(s);
    // (one replacement of a service node at a time: its record is the nodeset's one)
    if (pending?.backups && pending.node !== spec.name) {
      throw new ExitError(`the replacement of ${pending.node} begun ${pending.started} is unfinished: run silver replace-node ${ns.file} --node ${pending.node} to finish it first`, 1);
    }
    let resumed = pending && pending.node === spec.name && pending.backups ? pending : null;
    // An app whose hold a `silver maintenance` ended was taken as it is: the run does not restore
    // it again; with every app's ended, the earlier replacement is over, and this one begins anew.
    const earlier = resumed;
    const accepted = await acceptedApps(s, earlier);
    if (resumed && s.balancers.length > 0) {
      if (accepted.length === Object.keys(resumed.backups!).length) {
        say(`the earlier replacement of ${spec.name} was ended by silver maintenance (no app is held in it): this one begins anew`);
        resumed = null;
      } else if (accepted.length > 0) {
        say(`${accepted.join(', ')}: no longer held by the earlier replacement (silver maintenance ended it): taken as it is, not restored again`);
      }
    }
    const resuming = resumed?.backups ?? null;
    // (every database silver made there goes with the node: one no active instance uses — an app
    // whose first deploy failed after its migrations, one stopped for a while — would be
    // destroyed undumped, its password known to no app server to make it again)
    // (--force: destroyed undumped, said; an app no longer in the nodeset's file has no other way)
    if (!resuming) {
      const planned = new Set(apps.map((a) => svc.dbName(a)));
      const listed = await s.remote.run(spec.name, `listing the ${name} databases`, dbVerbs.list(svc)).then(
        (out) => out.split('\n').filter((l) => l.startsWith('db ')).map((l) => l.slice(3)),
        (e: Error) => {
          if (!opts.force) throw new ExitError(`${spec.name}: its databases cannot be listed (${e.message}): any there would be destroyed undumped; --force replaces it all the same: nothing done`, 1);
          return [];
        },
      );
      const unplanned = listed.filter((db) => !planned.has(db) && !db.startsWith('silver_'));
      if (unplanned.length > 0 && !opts.force) {
        throw new ExitError(`${spec.name} holds databases no app server's active instance uses (${unplanned.join(', ')}): they would be destroyed undumped; deploy their apps (silver update) first, or pass --force to destroy them: nothing done`, 1);
      }
      if (unplanned.length > 0) out.notes.push(`${unplanned.join(', ')}: no app server's active instance uses them: destroyed with the node, undumped (--force)`);
    }
    if (!resuming && !opts.force) {
      const rec = (await readBackupsRecord(s)).apps;
      const limit = rt.now() - MAX_VERIFIED_DAYS * 86400_000;
      const unverified = apps.filter((a) => !(rec[a]?.verifyOk && rec[a]?.lastVerified && Date.parse(rec[a]!.lastVerified!) >= limit));
      if (unverified.length > 0) {
        throw new ExitError(`${spec.name}: no backup verified by a restore in the last ${MAX_VERIFIED_DAYS} days for ${unverified.join(', ')}: run silver backup ${ns.file} && silver backup --verify ${ns.file} first (or --force)`, 1);
      }
    }
    const question = `Replace ${spec.name} (${spec.role}) of nodeset ${ns.name}? ${apps.length ? `${apps.join(', ')} go into maintenance, ` : ''}their databases are dumped, the node is destroyed and built again, and the dumps restored.`;
    if (!opts.yes && !(await rt.confirm(question))) throw new ExitError('nothing replaced (answer y, or pass -y)', 1);

    await underDeployLock(s, `replace-node ${spec.name}`, async (steps, lease) => {
      // (read again under the lock: an update that gave an app its first database there, or
      // another replacement, while the question waited would otherwise go unheld and undumped)
      const now = await appPasswords(s, svc.envPrefix);
      const nowPending = await readReplaceRecord(s);
      if (now.size !== passwords.size || [...now].some(([a, p]) => passwords.get(a) !== p) || (nowPending?.seq ?? 0) !== (pending?.seq ?? 0)) {
        throw new ExitError(`${spec.name}: its apps (${[...now.keys()].join(', ') || 'none'}) or an earlier replacement changed while the question waited (an update or another replacement ran): nothing done; run the command again`, 1);
      }
      // (and which held apps a `silver maintenance` ended: one ended meanwhile serves as it is,
      // and restoring it now would lose what it wrote since)
      const acceptedNow = await acceptedApps(s, earlier);
      if (acceptedNow.join(' ') !== accepted.join(' ')) {
        throw new ExitError(`${spec.name}: silver maintenance ended the hold of ${acceptedNow.filter((a) => !accepted.includes(a)).join(', ') || accepted.filter((a) => !acceptedNow.includes(a)).join(', ')} while the question waited: nothing done; run the command again`, 1);
      }
      const previous = new Map<string, ModeEntry | null>();
      const balanced = s.balancers.length > 0;
      let keepHeld = false;
      try {
        if (balanced) {
          // (held on the nodes: a re-run after a kill, or after a failure that keeps them held,
          // puts back the entries from before the first run, not this maintenance)
          for (const app of apps) previous.set(app, await holdApp(s, app, HOLDER, `${app} is being moved to a new database server. Please try again in a moment.`));
          if (apps.length) say(`${apps.join(', ')} in maintenance on ${s.balancers.map((b) => b.name).join(', ')}`);
        } else if (apps.length) out.notes.push('the nodeset has no balancer: the apps kept answering (with errors) while their database moved');
        steps.check();
        const stamps = resuming ?? (await freshDumps(ns, rt, apps, say));
        const restored = new Set([...(resumed?.restored ?? []), ...accepted].filter((a) => a in stamps));
        if (resuming) say(`resuming an earlier replacement: restoring ${Object.entries(resuming).filter(([a]) => !restored.has(a)).map(([a, st]) => `${a} ${st}`).join(', ') || 'nothing more'}`);
        // The dumps that go onto the new node, named on the nodes before anything is destroyed.
        // (from the record's first write on, a failure or a kill keeps the apps held: a record
        // that is open names dumps the next run restores, and writes made meanwhile would be lost)
        keepHeld = true;
        let rec: ReplaceRecord = { seq: (pending?.seq ?? 0) + 1, node: spec.name, backups: stamps, started: resumed?.started ?? new Date(rt.now()).toISOString(), rebuilt: resumed?.rebuilt === true, ...(resumed?.hostKey ? { hostKey: resumed.hostKey } : {}), restored: [...restored] };
        await s.state.write<ReplaceRecord>('replace', rec);
        const chosen = new Map<string, StoredBackup>(Object.entries(stamps).map(([app, stamp]) => [app, resolveBackup(backupsBase(rt.state.root), ns.name, app, stamp)]));
        steps.check();
        lease.setAside(spec.name);
        // The earlier run's new node gone since (the one made now), or a node of that name made
        // again by hand (another host key): it holds none of the earlier run's restores, and the
        // record says so before anything else happens to it.
        const gone = rec.rebuilt && !(await nodeExists(ns, rt, spec.name));
        const other = rec.rebuilt && !gone && rt.state.pinnedKeys(ns.name).get(spec.name) !== rec.hostKey;
        if (gone || other) {
          restored.clear();
          rec = { ...rec, seq: rec.seq + 1, rebuilt: !gone, restored: [] };
          await s.state.write<ReplaceRecord>('replace', rec);
          say(gone ? `${spec.name}, built anew by the earlier run, is gone: every app is restored again` : `${spec.name} is not the node the earlier run built (another host key): every app is restored again`);
        }
        if (rec.rebuilt) say(`${spec.name} was built anew by the earlier run: not destroyed again`);
        else await destroyNode(ns, rt, spec.name, say);
        // (an existing node is left as it is and set up again: a no-op when nothing changed)
        await createAndSetUp(ns, rt, opts.sshTimeoutMs ?? 120_000, say, lease);
        const fresh = await Session.open(ns, rt, [spec.role]);
        try {
          const mark = async (next: Partial<ReplaceRecord>) => {
            rec = { ...rec, ...next, seq: rec.seq + 1 };
            await fresh.state.write<ReplaceRecord>('replace', rec);
          };
          // (the new node by its host key, made anew with every node: a node made again by hand
          // under the same name is not taken for it)
          const hostKey = rt.state.pinnedKeys(ns.name).get(spec.name);
          if (!rec.rebuilt || rec.hostKey !== hostKey) await mark({ rebuilt: true, ...(hostKey ? { hostKey } : {}) });
          const node = spec.name;
          const addresses = fresh.appservers.map((a) => a.address);
          for (const [app, b] of chosen) {
            if (restored.has(app)) {
              say(`${app}: restored by the earlier run (${b.manifest!.stamp}): kept`);
              continue;
            }
            const password = passwords.get(app);
            if (!password) {
              out.problems.push(`${app}: no app server has its database password (no active instance): not restored`);
              continue;
            }
            const db = svc.dbName(app);
            await fresh.remote.run(node, `${app}: its password`, dbVerbs.password(svc, db), `${password}\n`);
            await fresh.remote.run(node, `${app}: its database`, dbEnsure(svc, db, addresses));
            const after = await restoreBackup(fresh, b, steps, () => undefined, say);
            const differ = compareCounts(b.manifest!.rowCounts, after);
            out.apps.push({ app, stamp: b.manifest!.stamp, rows: Object.values(after).reduce((x, y) => x + y, 0) });
            if (differ.length > 0) {
              out.problems.push(`${app}: ${differ.join('; ')}`);
              continue;
            }
            restored.add(app);
            await mark({ restored: [...restored] });
          }
          if (out.problems.length === 0) await mark({ backups: null });
          keepHeld = out.problems.length > 0;
        } finally {
          await fresh.close();
        }
      } finally {
        if (keepHeld) {
          out.notes.push(`${apps.join(', ')} stay in maintenance: run the same command again to finish (the apps restored with their rows are kept, the others restored again from the same dumps), then check the data`);
        } else {
          for (const [app, prev] of previous) {
            await releaseApp(s, app, prev).catch((e: Error) => out.problems.push(`${app}: the balancers were not put back: ${e.message}`));
          }
          if (previous.size) say(`${[...previous.keys()].join(', ')} serving again`);
        }
      }
    }).catch((e) => {
      if (e instanceof Stopped) throw new ExitError(`${e.reason}: ${spec.name} ${out.apps.length ? 'was replaced in part' : 'was not replaced'}; run the same command again`, 130);
      throw e;
    });
  } finally {
    await s.close();
  }
  return out;
}

/** app -> the service's password in the environment of its active instance (from an app server). */
async function appPasswords(s: Session, prefix: string): Promise<Map<string, string>> {
  const states = await s.status();
  const out = new Map<string, string>();
  for (const [node, apps] of states) {
    for (const a of apps) {
      if (!a.active || out.has(a.app)) continue;
      const x = await exportInstance(s.remote, node, a.app);
      const password = parseEnvFile(x.env.toString('utf8'))[`${prefix}_PASSWORD`];
      if (password && /^[A-Za-z0-9]+$/.test(password)) out.set(a.app, password);
    }
  }
  return out;
}

/** A dump of each app's live database now; its stamp by app. */
async function freshDumps(ns: Nodeset, rt: Runtime, apps: readonly string[], say: Say): Promise<Record<string, string>> {
  const stamps: Record<string, string> = {};
  for (const app of apps) {
    const r = await backup(ns, rt, { app });
    const b = r.backups.find((x) => x.app === app);
    if (!b?.ok || !b.stamp) throw new Error(`the fresh dump of ${app} failed (${b?.error ?? 'no database'}): nothing was destroyed`);
    stamps[app] = b.stamp;
    say(`${app}: fresh dump ${b.stamp} taken`);
  }
  return stamps;
}


