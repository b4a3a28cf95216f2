import type { Nodeset } from '../nodeset/types.js';
import type { KeyPair } from '../provider.js';
import { service } from '../services/index.js';
import { fileVars } from './render.js';
import type { AddressedNode } from './plan.js';

/**
 * Scheduled backups, wired by setup-node: each service node with a `backup =` gets a systemd
 * timer that runs `silver-backup run`, the nodeset's backup key (private half: the only secret
 * here, sent in the node script on standard input, kept root-only) and the copy node's pinned host
 * key; the copy node (the balancer, else the first app server: a node other than the service
 * nodes, so that losing the database node does not lose its dumps) gets the key's public half for
 * its user silver-backup, allowed to run silver-backup-receive and nothing else: one line for each
 * service node with a schedule, taken only from that node's address, its forced command naming
 * the node and how many to keep (so that one service node's root can neither file copies as
 * another's nor prune another's).
 */
export interface BackupWiring {
  key: KeyPair;
  /** The node that keeps the copies (null: the nodeset has no other node to keep them). */
  target: AddressedNode | null;
  /** Its pinned host key (`ssh-ed25519 AAAA...`), null when not pinned. */
  targetHostKey: string | null;
  /** The service nodes with a schedule: the copy node takes copies from each only from its address, filed under its name, the newest `keep` kept. */
  senders: { name: string; address: string; keep: number }[];
}

const RECEIVE = '/usr/local/lib/silverlining/bin/silver-backup-receive';

/** The copy node of a nodeset: its balancer, else its first app server, else none. */
export function copyNode(all: readonly AddressedNode[]): AddressedNode | null {
  return all.find((n) => n.role === 'balancer') ?? all.find((n) => n.role === 'appserver') ?? null;
}

export function hasSchedules(ns: Nodeset): boolean {
  return Object.keys(ns.backupSchedules ?? {}).length > 0;
}

/** The timer's two units: `silver-backup run` at the calendar, caught up after a downtime. */
export function backupUnits(calendar: string): { service: string; timer: string } {
  return {
    service: ['# managed by silver: the scheduled backup of this node\'s app databases', '[Unit]', 'Description=silver scheduled backup', '[Service]', 'Type=oneshot', 'ExecStart=/usr/local/lib/silverlining/bin/silver-backup run', ''].join('\n'),
    timer: ['# managed by silver (the nodeset\'s backup =)', '[Unit]', 'Description=silver scheduled backup', '[Timer]', `OnCalendar=${calendar}`, 'Persistent=true', 'RandomizedDelaySec=60', '[Install]', 'WantedBy=timers.target', ''].join('\n'),
  };
}

/** The variables of a service layer (ensure_backup_schedule in lib.sh) and of the base layer (the receiver). */
export function backupVars(ns: Nodeset, node: AddressedNode, layer: string, wiring: BackupWiring | null): Record<string, string> {
  if (layer === 'base') {
    const receives = wiring !== null && wiring.target?.name === node.name;
    const lines = receives ? wiring.senders.filter((s) => s.name !== node.name).map((s) => `restrict,from="${s.address}",command="${RECEIVE} ${s.name} ${s.keep}" ${wiring.key.public}\n`) : [];
    return fileVars('SILVER_BACKUP_RECEIVE_KEYS', lines.join(''));
  }
  if (!layer.startsWith('service/')) return {};
  const name = layer.slice('service/'.length);
  const schedule = ns.backupSchedules?.[name];
  if (!schedule || !wiring) return { SILVER_BACKUP: '0' };
  const units = backupUnits(schedule.calendar);
  const target = wiring.target && wiring.target.name !== node.name ? wiring.target : null;
  const conf = [`service ${name}`, `ext ${service(name).backup.ext}`, `keep ${schedule.keep}`, `node ${node.name}`, `target ${target?.address ?? '-'}`, ''].join('\n');
  return {
    SILVER_BACKUP: '1',
    SILVER_BACKUP_CALENDAR: schedule.calendar,
    ...fileVars('SILVER_BACKUP_KEY', wiring.key.private.endsWith('\n') ? wiring.key.private : `${wiring.key.private}\n`),
    ...fileVars('SILVER_BACKUP_KNOWN', target && wiring.targetHostKey ? `${target.address} ${wiring.targetHostKey}\n` : ''),
    ...fileVars('SILVER_BACKUP_CONF', conf),
    ...fileVars('SILVER_BACKUP_SERVICE_UNIT', units.service),
    ...fileVars('SILVER_BACKUP_TIMER', units.timer),
  };
}
