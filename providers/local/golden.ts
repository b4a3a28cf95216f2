import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { allLayerPackages } from '../../src/layers.js';
import { projectRoot } from '../../src/paths.js';
import { run } from '../../src/util/exec.js';
import { GOLDEN_PREFIX, type LocalSettings } from './config.js';
import { withLock } from './lock.js';

/**
 * The golden image: a Debian bookworm rootfs built once with LXC's debian template and the
 * packages every setup layer declares, then fixed by golden-fix.sh. Nodes are overlay clones.
 * Its name carries a hash of the package list and the fix script, so a change builds a new one.
 */

export const BASE_PACKAGES = ['openssh-server', 'sudo', 'python3', 'dbus', 'iproute2', 'procps'];

function fixScript(): string {
  return join(projectRoot(), 'providers/local/golden-fix.sh');
}

export function goldenPackages(): string[] {
  return [...new Set([...BASE_PACKAGES, ...allLayerPackages()])].sort();
}

export function goldenName(): string {
  const h = createHash('sha256').update(goldenPackages().join(',')).update(readFileSync(fixScript())).digest('hex');
  return `${GOLDEN_PREFIX}${h.slice(0, 10)}`;
}

const READY = 'silver-golden.ready';

export function goldenReady(s: LocalSettings, name: string): boolean {
  return existsSync(join(s.lxcPath, name, READY));
}

export async function ensureGolden(s: LocalSettings, security: string | null, report: (m: string) => void): Promise<string> {
  const name = goldenName();
  if (goldenReady(s, name)) return name;
  mkdirSync(s.lxcPath, { recursive: true, mode: 0o755 });
  return withLock(join(s.lxcPath, `.${name}.lock`), async () => {
    if (goldenReady(s, name)) return name;
    const dir = join(s.lxcPath, name);
    if (existsSync(dir)) {
      report(`local: removing an unfinished golden image ${name} (left by an interrupted run)`);
      await run(['lxc-destroy', '-n', name, '-P', s.lxcPath, '-f'], { allowFailure: true });
      rmSync(dir, { recursive: true, force: true });
    }
    if (!s.mirror) throw new Error('local: no Debian mirror found in /etc/apt/sources.list(.d); set mirror = URL in the provider settings');
    const packages = goldenPackages();
    report(`local: building the golden image ${name} (once; about 2 minutes): debian bookworm with ${packages.join(' ')}`);
    const conf = join(s.lxcPath, `.${name}.conf`);
    // Our own config so that lxc-create does not put the container on LXC's default bridge.
    writeFileSync(conf, `lxc.net.0.type = veth\nlxc.net.0.link = ${s.bridge}\nlxc.net.0.flags = up\n`);
    const t0 = Date.now();
    const rootfs = join(dir, 'rootfs');
    await templateWithRetry(
      async () => {
        await run(
          [
            'lxc-create', '-n', name, '-P', s.lxcPath, '-t', 'debian', '-f', conf, '--',
            '-r', 'bookworm', `--mirror=${s.mirror}`, ...(security ? [`--security-mirror=${security}`] : []),
            `--packages=${packages.join(',')}`,
          ],
          { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeoutMs: 30 * 60_000 },
        );
        // The template can skip packages and still succeed (without distro-info, or a download
        // that failed): check them.
        const check = await run(['chroot', rootfs, 'dpkg-query', '-W', '-f', '${Package} ${db:Status-Status}\\n', ...packages], { allowFailure: true });
        const installed = new Set(check.stdout.split('\n').filter((l) => l.endsWith(' installed')).map((l) => l.split(' ')[0]));
        return packages.filter((p) => !installed.has(p));
      },
      async () => {
        await run(['lxc-destroy', '-n', name, '-P', s.lxcPath, '-f'], { allowFailure: true });
        rmSync(dir, { recursive: true, force: true });
      },
      report,
    );
    await run(['sh', fixScript(), rootfs], { timeoutMs: 20 * 60_000 });
    writeFileSync(join(dir, READY), `${new Date().toISOString()}\n${packages.join(' ')}\n`);
    rmSync(conf, { force: true });
    report(`local: golden image ${name} ready (${((Date.now() - t0) / 1000).toFixed(0)}s)`);
    return name;
  });
}

/**
 * The template run (`create`: the packages it left out) until it leaves none out: once more after
 * a run that did, the half-made container removed first (`remove`) — a package download that
 * failed once is the usual cause. A second run that leaves packages out is an error naming them.
 */
export async function templateWithRetry(create: () => Promise<string[]>, remove: () => Promise<void>, report: (m: string) => void, attempts = 2): Promise<void> {
  for (let i = 1; ; i++) {
    const missing = await create();
    if (missing.length === 0) return;
    if (i >= attempts) throw new Error(`local: the golden image lacks ${missing.join(' ')} after lxc-create (${i} attempts)`);
    report(`local: the golden image lacks ${missing.join(' ')} after lxc-create: building it once more`);
    await remove();
  }
}

/** Golden images other than the current one with no clones left: removable caches. */
export function staleGoldens(s: LocalSettings): string[] {
  if (!existsSync(s.lxcPath)) return [];
  const current = goldenName();
  return readdirSync(s.lxcPath).filter((n) => n.startsWith(GOLDEN_PREFIX) && n !== current);
}
