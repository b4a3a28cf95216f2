import { closeSync, constants, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ProviderNode } from '../../src/provider.js';
import { STRIP, type ImageRecord } from '../../src/image/strip.js';
import { run } from '../../src/util/exec.js';
import type { LocalSettings } from './config.js';

/**
 * Baked images of the local provider: a set-up node's root file system copied (rsync from the
 * running container's root, frozen meanwhile: one consistent view) into a container folder
 * `silver-image-...` that nodes are overlay-cloned from like the golden image, with STRIP
 * removed and `silver-image.json` (the bake's time and the installed packages) beside it.
 */
export const IMAGE_PREFIX = 'silver-image-';
const RECORD = 'silver-image.json';

export function imageReady(s: LocalSettings, name: string): boolean {
  return name.startsWith(IMAGE_PREFIX) && existsSync(join(s.lxcPath, name, RECORD));
}

export function readImage(s: LocalSettings, name: string): ImageRecord | null {
  try {
    return JSON.parse(readFileSync(join(s.lxcPath, name, RECORD), 'utf8')) as ImageRecord;
  } catch {
    return null;
  }
}

export function listImages(s: LocalSettings): string[] {
  return existsSync(s.lxcPath) ? readdirSync(s.lxcPath).filter((n) => imageReady(s, n)).sort() : [];
}

/**
 * `root`/`rel` when every folder on the way is a real folder of the tree, null when one is not
 * there (nothing to strip). A link or a file on the way fails the bake: the copy is a node's,
 * whose root could have planted a link to this machine's own files — or one that hides what the
 * strip must remove from it.
 */
function inTree(root: string, rel: string): string | null {
  let p = root;
  for (const part of rel.split('/').filter(Boolean)) {
    p = join(p, part);
    const st = lstatSync(p, { throwIfNoEntry: false });
    if (!st) return null;
    if (st.isSymbolicLink() || !st.isDirectory()) throw new Error(`the copy's ${p.slice(root.length)} is ${st.isSymbolicLink() ? 'a link' : 'not a folder'}: no image is made that could keep what the strip removes`);
  }
  return p;
}

/**
 * Removes what STRIP names under `root` (a trailing / keeps the folder, empties it). Runs as this
 * machine's root on a copy of a node's disk: it follows no link (a link matched is removed as a
 * link; a folder reached through one is left alone).
 */
export function strip(root: string): void {
  for (const pattern of STRIP) {
    const keepDir = pattern.endsWith('/');
    const rel = keepDir ? pattern.slice(0, -1) : pattern;
    const slash = rel.lastIndexOf('/');
    const dir = inTree(root, slash < 0 ? '' : rel.slice(0, slash));
    if (!dir) continue;
    const base = rel.slice(slash + 1);
    const re = new RegExp(`^${base.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replaceAll('*', '[^/]*')}$`);
    for (const name of readdirSync(dir).filter((n) => re.test(n))) {
      const path = join(dir, name);
      // (rmSync removes a link itself, never what it points at)
      if (keepDir && !lstatSync(path).isSymbolicLink() && lstatSync(path).isDirectory()) for (const inner of readdirSync(path)) rmSync(join(path, inner), { recursive: true, force: true });
      else rmSync(path, { recursive: true, force: true });
    }
  }
  // (a clone gets its own machine id at first boot: an empty file, never written through a link)
  const etc = inTree(root, 'etc');
  if (etc && existsSync(join(etc, 'machine-id'))) {
    rmSync(join(etc, 'machine-id'), { force: true });
    closeSync(openSync(join(etc, 'machine-id'), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o444));
  }
}

/**
 * `name version` of every installed package, read from dpkg's status file of the copy (never by
 * running a program of the copy: as this machine's root, a chroot is no boundary).
 */
export function installedPackages(root: string): string[] {
  const dir = inTree(root, 'var/lib/dpkg');
  const file = dir ? join(dir, 'status') : null;
  if (!file || !lstatSync(file, { throwIfNoEntry: false })?.isFile() || statSync(file).size > 64 << 20) return [];
  const out: string[] = [];
  for (const stanza of readFileSync(file, 'utf8').split(/\n\n+/)) {
    const field = (k: string) => new RegExp(`^${k}: (.*)$`, 'm').exec(stanza)?.[1]?.trim();
    const [pkg, version, status] = [field('Package'), field('Version'), field('Status')];
    if (pkg && version && status?.endsWith(' installed')) out.push(`${pkg} ${version}`);
  }
  return out.sort();
}

/** Half-made copies of bakes that ended an hour ago or more (killed: nothing else removes them). */
export function staleBakes(lxcPath: string, now = Date.now()): string[] {
  if (!existsSync(lxcPath)) return [];
  return readdirSync(lxcPath)
    .filter((n) => n.startsWith(IMAGE_PREFIX) && n.endsWith('.baking'))
    .map((n) => join(lxcPath, n))
    .filter((p) => now - lstatSync(p).mtimeMs > 3_600_000);
}

export async function bake(s: LocalSettings, node: ProviderNode, name: string, goldenConfig: string, labels: { nodeset: string; role: string }, report: (m: string) => void, signal?: AbortSignal): Promise<ImageRecord> {
  const dir = join(s.lxcPath, name);
  const pid = (await run(['lxc-info', '-n', node.id, '-P', s.lxcPath, '-p', '-H'])).stdout.trim();
  if (!/^\d+$/.test(pid)) throw new Error(`${node.name} is not running`);
  for (const old of staleBakes(s.lxcPath)) rmSync(old, { recursive: true, force: true });
  const tmp = `${dir}.baking`;
  rmSync(tmp, { recursive: true, force: true });
  // (the copy holds the node's secrets until stripped: whatever ends the bake removes it)
  try {
    mkdirSync(join(tmp, 'rootfs'), { recursive: true, mode: 0o755 });
    report(`${node.name}: frozen while its disk is copied`);
    await run(['lxc-freeze', '-n', node.id, '-P', s.lxcPath]);
    try {
      await run(['rsync', '-aHAX', '--numeric-ids', '--one-file-system', '--exclude=/proc/*', '--exclude=/sys/*', '--exclude=/dev/*', '--exclude=/run/*', `/proc/${pid}/root/`, join(tmp, 'rootfs/')], { timeoutMs: 30 * 60_000, ...(signal ? { signal } : {}) });
    } finally {
      await run(['lxc-unfreeze', '-n', node.id, '-P', s.lxcPath], { allowFailure: true });
    }
    signal?.throwIfAborted();
    strip(join(tmp, 'rootfs'));
    const record: ImageRecord = { name, nodeset: labels.nodeset, role: labels.role, from: node.name, built: new Date().toISOString(), packages: installedPackages(join(tmp, 'rootfs')) };
    // The golden's configuration, pointed at this root file system: no address, no labels.
    const config = goldenConfig
      .split('\n')
      .filter((l) => !/^\s*lxc\.(rootfs\.path|uts\.name)\s*=/.test(l))
      .concat([`lxc.rootfs.path = dir:${join(dir, 'rootfs')}`, `lxc.uts.name = ${name}`, ''])
      .join('\n');
    writeFileSync(join(tmp, 'config'), config);
    writeFileSync(join(tmp, RECORD), `${JSON.stringify(record, null, 2)}\n`);
    // (names carry the bake's time: an image is never replaced under the overlay clones it has)
    if (existsSync(dir)) throw new Error(`${name} exists already`);
    signal?.throwIfAborted();
    await run(['mv', tmp, dir]);
    report(`${name}: baked from ${node.name} (${record.packages.length} packages)`);
    return record;
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}
