import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

/** Removes what STRIP names under `root` (a trailing / keeps the folder, empties it). */
export function strip(root: string): void {
  for (const pattern of STRIP) {
    const keepDir = pattern.endsWith('/');
    const rel = keepDir ? pattern.slice(0, -1) : pattern;
    const slash = rel.lastIndexOf('/');
    const dir = slash < 0 ? root : join(root, rel.slice(0, slash));
    const base = rel.slice(slash + 1);
    if (!existsSync(dir)) continue;
    const re = new RegExp(`^${base.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replaceAll('*', '[^/]*')}$`);
    for (const name of readdirSync(dir).filter((n) => re.test(n))) {
      const path = join(dir, name);
      if (keepDir) for (const inner of readdirSync(path)) rmSync(join(path, inner), { recursive: true, force: true });
      else rmSync(path, { recursive: true, force: true });
    }
  }
  // (a clone gets its own machine id at first boot)
  if (existsSync(join(root, 'etc/machine-id'))) writeFileSync(join(root, 'etc/machine-id'), '');
}

export async function bake(s: LocalSettings, node: ProviderNode, name: string, goldenConfig: string, labels: { nodeset: string; role: string }, report: (m: string) => void): Promise<ImageRecord> {
  const dir = join(s.lxcPath, name);
  const pid = (await run(['lxc-info', '-n', node.id, '-P', s.lxcPath, '-p', '-H'])).stdout.trim();
  if (!/^\d+$/.test(pid)) throw new Error(`${node.name} is not running`);
  const tmp = `${dir}.baking`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(join(tmp, 'rootfs'), { recursive: true, mode: 0o755 });
  report(`${node.name}: frozen while its disk is copied`);
  await run(['lxc-freeze', '-n', node.id, '-P', s.lxcPath]);
  try {
    await run(['rsync', '-aHAX', '--numeric-ids', '--one-file-system', '--exclude=/proc/*', '--exclude=/sys/*', '--exclude=/dev/*', '--exclude=/run/*', `/proc/${pid}/root/`, join(tmp, 'rootfs/')], { timeoutMs: 30 * 60_000 });
  } finally {
    await run(['lxc-unfreeze', '-n', node.id, '-P', s.lxcPath], { allowFailure: true });
  }
  strip(join(tmp, 'rootfs'));
  const q = await run(['chroot', join(tmp, 'rootfs'), 'dpkg-query', '-W', '-f', '${Package} ${Version}\\n']);
  const record: ImageRecord = { name, nodeset: labels.nodeset, role: labels.role, from: node.name, built: new Date().toISOString(), packages: q.stdout.split('\n').filter(Boolean) };
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
  await run(['mv', tmp, dir]);
  report(`${name}: baked from ${node.name} (${record.packages.length} packages)`);
  return record;
}
