import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../src/util/exec.js';
import { hostAddress, type LocalSettings } from './config.js';

/**
 * The nodes' network: a bridge with a private /24 and the host at .1, no uplink, no NAT, no
 * forwarding; and a tinyproxy on the host address, open to that subnet only, that forwards
 * only to the Debian mirrors the host's apt uses.
 */

export async function bridgeExists(name: string): Promise<boolean> {
  const r = await run(['ip', '-o', 'link', 'show', 'dev', name], { allowFailure: true });
  return r.code === 0;
}

export async function ensureBridge(s: LocalSettings): Promise<boolean> {
  const address = `${hostAddress(s)}/24`;
  let created = false;
  if (!(await bridgeExists(s.bridge))) {
    await run(['ip', 'link', 'add', s.bridge, 'type', 'bridge']);
    created = true;
  }
  const addrs = await run(['ip', '-o', '-4', 'addr', 'show', 'dev', s.bridge]);
  if (!addrs.stdout.includes(` ${address} `)) await run(['ip', 'addr', 'add', address, 'dev', s.bridge]);
  await run(['ip', 'link', 'set', s.bridge, 'up']);
  return created;
}

export async function removeBridge(name: string): Promise<void> {
  if (await bridgeExists(name)) await run(['ip', 'link', 'del', name]);
}

function proxyDir(s: LocalSettings): string {
  return join(s.lxcPath, '..', 'net', s.bridge);
}

/** tinyproxy's configuration: listen on the bridge address, allow the subnet, forward to the mirror hosts only. */
export function proxyConfig(s: LocalSettings, dir: string, mirrorHosts: string[]): { conf: string; filter: string } {
  const conf = [
    'User tinyproxy',
    'Group tinyproxy',
    `Listen ${hostAddress(s)}`,
    `Port ${s.proxyPort}`,
    'Timeout 600',
    `PidFile "${join(dir, 'tinyproxy.pid')}"`,
    `LogFile "${join(dir, 'tinyproxy.log')}"`,
    'LogLevel Warning',
    'MaxClients 100',
    `Allow ${s.prefix}.0/24`,
    'ConnectPort 443',
    'DisableViaHeader Yes',
    `Filter "${join(dir, 'tinyproxy.filter')}"`,
    'FilterType ere',
    'FilterDefaultDeny Yes',
    '',
  ].join('\n');
  const filter = mirrorHosts.map((h) => `^${h.replaceAll('.', '\\.')}$`).join('\n') + '\n';
  return { conf, filter };
}

function alivePid(pidFile: string): number | null {
  if (!existsSync(pidFile)) return null;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 1) return null;
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmd.includes('tinyproxy') ? pid : null;
  } catch {
    return null;
  }
}

export async function ensureProxy(s: LocalSettings, mirrorHosts: string[]): Promise<boolean> {
  const dir = proxyDir(s);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const { conf, filter } = proxyConfig(s, dir, mirrorHosts);
  const confFile = join(dir, 'tinyproxy.conf');
  const pidFile = join(dir, 'tinyproxy.pid');
  const changed = !existsSync(confFile) || readFileSync(confFile, 'utf8') !== conf || readFileSync(join(dir, 'tinyproxy.filter'), 'utf8') !== filter;
  const running = alivePid(pidFile);
  if (running && !changed) return false;
  if (running) stopPid(running);
  writeFileSync(confFile, conf);
  writeFileSync(join(dir, 'tinyproxy.filter'), filter);
  const log = join(dir, 'tinyproxy.log');
  if (!existsSync(log)) writeFileSync(log, '');
  const ids = await run(['id', '-u', 'tinyproxy'], { allowFailure: true });
  const gids = await run(['id', '-g', 'tinyproxy'], { allowFailure: true });
  if (ids.code === 0 && gids.code === 0) {
    chownSync(log, Number(ids.stdout.trim()), Number(gids.stdout.trim()));
    chownSync(dir, Number(ids.stdout.trim()), Number(gids.stdout.trim()));
  }
  // tinyproxy forks into the background and writes its pid file.
  await run(['tinyproxy', '-c', confFile]);
  for (let i = 0; i < 50 && !alivePid(pidFile); i++) await new Promise((r) => setTimeout(r, 50));
  if (!alivePid(pidFile)) throw new Error(`tinyproxy did not start (see ${log})`);
  return true;
}

function stopPid(pid: number): void {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    /* already gone */
  }
}

export async function stopProxy(s: LocalSettings): Promise<void> {
  const pid = alivePid(join(proxyDir(s), 'tinyproxy.pid'));
  if (pid) stopPid(pid);
}

export function proxyUrl(s: LocalSettings): string {
  return `http://${hostAddress(s)}:${s.proxyPort}`;
}
