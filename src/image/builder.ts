import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { layersRoot } from '../layers.js';
import type { Nodeset, Role } from '../nodeset/types.js';
import { IMAGE_RECORD, stripPatterns } from './strip.js';
import { machineId } from '../deploy/shared-state.js';

/**
 * The builder of a cloud bake: a throw-away node of the role, made from the provider's image,
 * set up like any node of the role, stripped and snapshotted, then destroyed. Stripping a live
 * node would take its SSH identity, so a bake never strips one of the nodeset's own nodes.
 *
 * It is labelled as a node of the nodeset named `silver-builder-ROLE-MACHINE-PID.invalid` (a
 * reserved domain: no node of a nodeset file is named so) after the bake's process, so that two
 * bakes of one role at once each have their own, and one an interrupted bake left behind is found
 * again: the next bake on the same machine removes it once its process is gone (another
 * machine's, or a live process's, is left alone and named), `list-nodes` says what it is,
 * `delete-node --orphans` removes it like any orphan.
 */
export function builderName(role: Role, owner: BuilderOwner = { machine: machineId(), pid: process.pid }): string {
  return `silver-builder-${role}-${owner.machine.replace(/[^0-9a-z]/g, '') || 'unknown'}-${owner.pid}.invalid`;
}

export interface BuilderOwner {
  machine: string;
  pid: number;
}

const BUILDER = /^silver-builder-(appserver|balancer)(?:-([0-9a-z]+)-(\d+))?\.invalid$/;

export const isBuilder = (name: string): boolean => BUILDER.test(name);

/** The role and the bake's process a builder's name gives (owner null: an earlier release's name, which names none). */
export function builderOf(name: string): { role: Role; owner: BuilderOwner | null } | null {
  const m = BUILDER.exec(name);
  if (!m) return null;
  return { role: m[1] as Role, owner: m[2] ? { machine: m[2], pid: Number(m[3]) } : null };
}

/**
 * Whether a builder of the role was left by a bake that no longer runs: one of this machine's
 * whose process is gone, or one named as earlier releases named them (one builder a role).
 */
export function leftBehind(name: string, alive: (pid: number) => boolean, machine = machineId()): boolean {
  const b = builderOf(name);
  if (!b) return false;
  if (!b.owner) return true;
  return machine !== 'unknown' && b.owner.machine === machine.replace(/[^0-9a-z]/g, '') && !alive(b.owner.pid);
}

/**
 * The builder as the only node of its nodeset: the same provider, locations, services and
 * keys, and the size of the tier's first node; no image of the tier's (it starts from the
 * provider's). Without TLS, a virtual address or backup schedules: a builder orders no
 * certificate, claims no shared address and receives no backups (all of it is per node, and
 * set up on each node made from the image).
 */
export function builderNodeset(ns: Nodeset, role: 'appserver' | 'balancer'): Nodeset {
  const { tls: _tls, virtualAddress: _vip, backupSchedules: _backups, ...rest } = ns;
  const size = ns.nodes.find((n) => n.role === role)?.size ?? null;
  return { ...rest, nodes: [{ name: builderName(role), role, index: 1, size }] };
}

/** Root's argv on a node whose admin user is `adminUser` (cloud users have passwordless sudo). */
export const asRoot = (adminUser: string, argv: readonly string[]): string[] => (adminUser === 'root' ? [...argv] : ['sudo', '-n', ...argv]);

/** `name version` of every installed Debian package, one a line. */
export const PACKAGES_ARGV: readonly string[] = ['dpkg-query', '-W', '-f', '${Package} ${Version}\\n'];

/** Writes the image's record (standard input) where IMAGE_RECORD says. */
export const recordArgv = (adminUser: string): string[] => asRoot(adminUser, ['tee', IMAGE_RECORD]);

/** The strip of the whole file system, with setup-layers/strip-image.sh on standard input. */
export const stripArgv = (adminUser: string): string[] => asRoot(adminUser, ['sh', '-s', '--', '/', ...stripPatterns(adminUser)]);

export function stripScript(root = layersRoot()): string {
  return readFileSync(join(root, 'strip-image.sh'), 'utf8');
}
