import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { ExitError } from '../../src/diagnostics.js';
import { run } from '../../src/util/exec.js';

/** Debian packages the local provider needs on the machine that runs silver. */
export const HOST_PACKAGES = ['lxc', 'lxc-templates', 'debootstrap', 'distro-info', 'rsync', 'tinyproxy', 'iproute2', 'wget', 'openssl'];
const TOOLS: Record<string, string> = {
  'lxc-create': 'lxc',
  'lxc-copy': 'lxc',
  debootstrap: 'debootstrap',
  'distro-info': 'distro-info',
  rsync: 'rsync',
  tinyproxy: 'tinyproxy',
  ip: 'iproute2',
  wget: 'wget',
  openssl: 'openssl',
};
const TEMPLATE = '/usr/share/lxc/templates/lxc-debian';

function onPath(tool: string): boolean {
  return (process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').some((d) => existsSync(`${d}/${tool}`)) || existsSync(`/usr/sbin/${tool}`);
}

export function missingHostPackages(): string[] {
  const missing = new Set<string>();
  for (const [tool, pkg] of Object.entries(TOOLS)) if (!onPath(tool)) missing.add(pkg);
  if (!existsSync(TEMPLATE)) missing.add('lxc-templates');
  return [...missing];
}

/** As root, installs what is missing with apt-get; otherwise says exactly what to install. */
export async function ensureHostTools(report: (m: string) => void): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new ExitError(
      `the local provider runs LXC containers and needs root: run silver as root (it installs what it needs: apt-get install --no-install-recommends ${HOST_PACKAGES.join(' ')})`,
      1,
    );
  }
  const missing = missingHostPackages();
  if (missing.length === 0) return;
  report(`local: installing ${missing.join(' ')} (apt-get)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => run(['apt-get', 'install', '-y', '-q', '--no-install-recommends', ...missing], { env, allowFailure: true });
  let r = await install();
  if (r.code !== 0) {
    await run(['apt-get', 'update', '-q'], { env, allowFailure: true });
    r = await install();
  }
  if (r.code !== 0) throw new ExitError(`local: apt-get install ${missing.join(' ')} failed: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`, 1);
  const still = missingHostPackages();
  if (still.length > 0) throw new ExitError(`local: still missing after apt-get install: ${still.join(' ')}`, 1);
}

/**
 * Every node runs its own systemd, which holds several inotify instances: Debian's default of
 * 128 per user runs out at about ten nodes, and then a node's services fail to start. Raise the
 * limits (as LXD's documentation advises) when they are lower, and say so.
 */
export const INOTIFY_LIMITS: Record<string, number> = { max_user_instances: 1024, max_user_watches: 524288 };

export function raiseInotifyLimits(report: (m: string) => void): void {
  for (const [key, wanted] of Object.entries(INOTIFY_LIMITS)) {
    const file = `/proc/sys/fs/inotify/${key}`;
    try {
      const current = Number(readFileSync(file, 'utf8').trim());
      if (current >= wanted) continue;
      writeFileSync(file, String(wanted));
      report(`local: fs.inotify.${key} raised from ${current} to ${wanted} (containers each run systemd)`);
    } catch {
      report(`local: cannot raise fs.inotify.${key} to ${wanted}; many nodes at once may fail to start services`);
    }
  }
}
