import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { portOpen } from '../../src/util/port.js';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Nodeset, ProviderConfig } from '../../src/nodeset/types.js';
import type { CreatedNode, CreateRequest, Flavor, NodeState, Provider, ProviderNode } from '../../src/provider.js';
import type { StateDir } from '../../src/state.js';
import { run } from '../../src/util/exec.js';
import {
  allocateAddress, aptMirrors, configValue, containerName, DEFAULTS, GOLDEN_PREFIX, hostAddress,
  labelLine, LOCAL_FLAVORS, nodeConfig, parseLabels, parseSubnet, type LocalSettings,
} from './config.js';
import { ensureGolden, goldenName } from './golden.js';
import { bake, IMAGE_PREFIX, imageReady, listImages, readImage } from './image.js';
import type { ImageRecord } from '../../src/image/strip.js';
import { ensureHostTools, raiseInotifyLimits } from './host-tools.js';
import { withLock } from './lock.js';
import { claimAddress, releaseClaims } from './address-claims.js';
import { ensureBridge, ensureProxy, proxyUrl, removeBridge, stopProxy } from './network.js';

/**
 * The embedded `local` provider: every node is an LXC container on this machine, an overlay
 * clone of a golden Debian image, on an isolated bridge with a fixed private address.
 * Labels live in the container's own config file, so `list` asks LXC, not a local cache.
 */

function setting(config: ProviderConfig, key: string): string | undefined {
  const v = config.settings[key];
  return typeof v === 'string' ? v : undefined;
}

function readAptSources(): { name: string; text: string }[] {
  const files: { name: string; text: string }[] = [];
  const add = (path: string) => {
    try {
      files.push({ name: path, text: readFileSync(path, 'utf8') });
    } catch {
      /* absent */
    }
  };
  add('/etc/apt/sources.list');
  const dir = '/etc/apt/sources.list.d';
  if (existsSync(dir)) for (const f of readdirSync(dir)) if (/\.(list|sources)$/.test(f)) add(join(dir, f));
  return files;
}

export function localSettings(config: ProviderConfig): LocalSettings & { security: string | null } {
  const apt = aptMirrors(readAptSources());
  const port = Number(setting(config, 'proxy_port') ?? DEFAULTS.proxyPort);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`local provider: proxy_port must be a port number, got "${setting(config, 'proxy_port')}"`);
  const bridge = setting(config, 'bridge') ?? DEFAULTS.bridge;
  if (!/^[a-zA-Z0-9_-]{1,15}$/.test(bridge)) throw new Error(`local provider: bridge must be an interface name of at most 15 characters, got "${bridge}"`);
  return {
    lxcPath: setting(config, 'lxc_path') ?? DEFAULTS.lxcPath,
    bridge,
    prefix: parseSubnet(setting(config, 'subnet') ?? DEFAULTS.subnet),
    proxyPort: port,
    mirror: setting(config, 'mirror') ?? apt.mirror,
    security: apt.security,
  };
}

export function createProvider(config: ProviderConfig, _state: StateDir): Provider {
  return new LocalProvider(localSettings(config));
}

interface Container {
  name: string;
  dir: string;
  config: string;
}

export class LocalProvider implements Provider {
  readonly type = 'local';
  readonly adminUser = 'root';
  private golden: string | null = null;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(readonly s: LocalSettings & { security: string | null }) {}

  async prepare(ns: Nodeset, report: (m: string) => void): Promise<void> {
    await ensureHostTools(report);
    raiseInotifyLimits(report);
    mkdirSync(this.s.lxcPath, { recursive: true, mode: 0o755 });
    const vip = ns.virtualAddress;
    if (vip) await this.serial(async () => claimAddress(this.s.lxcPath, this.s.bridge, ns.name, vip, this.nodesetsOnBridge()));
    if (await ensureBridge(this.s)) report(`local: bridge ${this.s.bridge} ${hostAddress(this.s)}/24 (no uplink, no NAT)`);
    const hosts = [this.s.mirror, this.s.security].filter((u): u is string => !!u).map((u) => new URL(u).hostname);
    if (await ensureProxy(this.s, [...new Set(hosts)])) report(`local: package proxy on ${proxyUrl(this.s)} (bridge subnet only, Debian mirrors only)`);
    this.golden = await ensureGolden(this.s, this.s.security, report);
  }

  async listSizes(): Promise<Flavor[]> {
    return LOCAL_FLAVORS;
  }

  async listImages(): Promise<string[]> {
    return ['debian-bookworm', ...listImages(this.s)];
  }

  async resolveImage(image: string | null): Promise<string> {
    if (image && imageReady(this.s, image)) return image;
    if (image && image !== 'debian-bookworm' && image !== 'bookworm') throw new Error(`local provider: image "${image}" is not available (debian-bookworm, or an image silver image bake made: ${listImages(this.s).join(', ') || 'none yet'})`);
    return 'debian-bookworm';
  }

  async bakeImage(node: ProviderNode, name: string, report: (m: string) => void, signal?: AbortSignal): Promise<ImageRecord> {
    const golden = goldenName();
    return bake(this.s, node, name, readFileSync(join(this.s.lxcPath, golden, 'config'), 'utf8'), { nodeset: node.nodeset, role: node.role }, report, signal);
  }

  async imageRecord(image: string): Promise<ImageRecord | null> {
    return imageReady(this.s, image) ? readImage(this.s, image) : null;
  }

  private containers(): Container[] {
    if (!existsSync(this.s.lxcPath)) return [];
    const out: Container[] = [];
    for (const name of readdirSync(this.s.lxcPath)) {
      const file = join(this.s.lxcPath, name, 'config');
      if (name.startsWith('.') || name.startsWith(GOLDEN_PREFIX) || name.startsWith(IMAGE_PREFIX) || !existsSync(file)) continue;
      out.push({ name, dir: join(this.s.lxcPath, name), config: readFileSync(file, 'utf8') });
    }
    return out;
  }

  /** Running containers in one cheap call (`lxc-ls --running`); every other one is stopped. */
  private async states(): Promise<Map<string, NodeState>> {
    const r = await run(['lxc-ls', '-P', this.s.lxcPath, '--running', '-1'], { allowFailure: true });
    const map = new Map<string, NodeState>();
    for (const name of r.stdout.split('\n')) if (name.trim()) map.set(name.trim(), 'running');
    return map;
  }

  private toNode(c: Container, states: Map<string, NodeState>): ProviderNode | null {
    const labels = parseLabels(c.config);
    if (!labels) return null;
    const addr = configValue(c.config, 'lxc.net.0.ipv4.address');
    return { ...labels, id: c.name, state: states.get(c.name) ?? 'stopped', privateAddress: addr ? addr.split('/')[0]! : null, publicAddress: null };
  }

  async list(nodeset: string): Promise<ProviderNode[]> {
    const containers = this.containers().filter((c) => parseLabels(c.config)?.nodeset === nodeset);
    if (containers.length === 0) return [];
    const states = await this.states();
    return containers.map((c) => this.toNode(c, states)).filter((n): n is ProviderNode => n !== null);
  }

  /** Addresses on this bridge already given to a container (of any nodeset). */
  private usedAddresses(): Set<string> {
    const used = new Set<string>();
    for (const c of this.containers()) {
      if (configValue(c.config, 'lxc.net.0.link') !== this.s.bridge) continue;
      const a = configValue(c.config, 'lxc.net.0.ipv4.address');
      if (a) used.add(a.split('/')[0]!);
    }
    return used;
  }

  /** One allocation at a time: in this process (a queue) and between processes (a lock). */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(() => withLock(join(this.s.lxcPath, `.alloc-${this.s.bridge}.lock`), fn));
    this.queue = next.catch(() => undefined);
    return next;
  }

  async create(req: CreateRequest): Promise<CreatedNode> {
    // (a baked image, or the golden one)
    const golden = imageReady(this.s, req.image) ? req.image : (this.golden ?? goldenName());
    const name = containerName(req.labels.nodeset, req.labels.name);
    // (all of it under the allocation lock, the labels last: an unlabelled container another run
    // finds under the lock is a leftover of a killed run, never a node being made beside it)
    const address = await this.serial(async () => {
      if (existsSync(join(this.s.lxcPath, name))) {
        // A container of that name with labels is a node — another nodeset's whose name runs
        // together with this one's (`demo` + `prod-app1` and `demo-prod` + `app1`), or this
        // node made by a create-node running beside this one: never destroyed here.
        const labels = parseLabels(existsSync(join(this.s.lxcPath, name, 'config')) ? readFileSync(join(this.s.lxcPath, name, 'config'), 'utf8') : '');
        if (labels) throw new Error(`container ${name} already holds node ${labels.name} of nodeset ${labels.nodeset}: not destroyed (two nodeset and node names that run together make one container name: rename one)`);
        // A leftover of an interrupted run that never got its labels: start again.
        await run(['lxc-destroy', '-n', name, '-P', this.s.lxcPath, '-f'], { allowFailure: true });
      }
      const address = allocateAddress(this.s.prefix, new Set([...this.usedAddresses(), hostAddress(this.s)]));
      if (!address) throw new Error(`no free address left in ${this.s.prefix}.0/24`);
      await run(['lxc-copy', '-P', this.s.lxcPath, '-n', golden, '-N', name, '-s', '-B', 'overlay']);
      const dir = join(this.s.lxcPath, name);
      const configFile = join(dir, 'config');
      const config = nodeConfig(readFileSync(configFile, 'utf8'), {
        labels: req.labels, bridge: this.s.bridge, address, memoryMb: req.flavor.ramMb, cgroup: cgroupVersion(),
      });
      // (its address now, which reserves it; its labels last, once its files are in: a run killed
      // in between leaves an unlabelled leftover, which the next create of the name starts again)
      writeFileSync(configFile, config.split('\n').filter((l) => l !== labelLine(req.labels)).join('\n'));
      const delta = join(dir, 'overlay', 'delta');
      const goldenRoot = join(this.s.lxcPath, golden, 'rootfs');
      const put = (rel: string, content: string, mode: number) => writeInto(delta, goldenRoot, rel, content, mode);
      put('root/.ssh/authorized_keys', `${req.authorizedKey.trim()}\n`, 0o600);
      put('etc/ssh/ssh_host_ed25519_key', req.hostKey.private, 0o600);
      put('etc/ssh/ssh_host_ed25519_key.pub', `${req.hostKey.public.trim()}\n`, 0o644);
      put('etc/hostname', `${req.labels.name}\n`, 0o644);
      // The node's own name resolves to its private address (the nodeset block adds the others).
      put('etc/hosts', `127.0.0.1 localhost\n${address} ${req.labels.name} ${req.labels.name.split('.')[0]}\n::1 localhost ip6-localhost ip6-loopback\n`, 0o644);
      put('etc/apt/apt.conf.d/01silver-proxy', `Acquire::http::Proxy "${proxyUrl(this.s)}";\nAcquire::https::Proxy "${proxyUrl(this.s)}";\n`, 0o644);
      put('etc/apt/sources.list', sourcesList(this.s.mirror, this.s.security), 0o644);
      writeFileSync(join(dir, 'config.new'), config);
      renameSync(join(dir, 'config.new'), join(dir, 'config'));
      return address;
    });

    await this.boot(name);
    const node: ProviderNode = { ...req.labels, id: name, state: 'running', privateAddress: address, publicAddress: null };
    return { node, hostKey: req.hostKey.public };
  }

  async start(node: ProviderNode): Promise<ProviderNode> {
    await this.boot(node.id);
    return { ...node, state: 'running' };
  }

  async waitReachable(node: ProviderNode, timeoutMs: number): Promise<ProviderNode> {
    const address = node.privateAddress;
    if (!address) throw new Error(`${node.name} has no address`);
    const t0 = Date.now();
    const deadline = t0 + timeoutMs;
    let restarted = false;
    while (!(await portOpen(address, 22, 500))) {
      if (Date.now() > deadline) throw new Error(`${node.name}: port 22 on ${address} did not answer within ${timeoutMs / 1000}s (${await this.bootState(node.id)})`);
      // A first boot that hangs (seen rarely, with many containers starting at once) gets one
      // restart, half-way; what its console said is kept in console.log beside it.
      if (!restarted && Date.now() - t0 > timeoutMs / 2) {
        restarted = true;
        process.stderr.write(`${node.name}: no SSH after ${Math.round((Date.now() - t0) / 1000)}s (${await this.bootState(node.id)}): restarting it once\n`);
        await run(['lxc-stop', '-n', node.id, '-P', this.s.lxcPath, '-k'], { allowFailure: true });
        await this.boot(node.id);
      }
      await sleep(50);
    }
    return node;
  }

  /** lxc-start in the background, the console kept in the container's console.log. */
  private async boot(name: string): Promise<void> {
    await run(['lxc-start', '-n', name, '-P', this.s.lxcPath, '-d', '-L', join(this.s.lxcPath, name, 'console.log')]);
  }

  /** The container's state and the end of its console, for an error. */
  private async bootState(name: string): Promise<string> {
    const info = await run(['lxc-info', '-n', name, '-P', this.s.lxcPath, '-s', '-H'], { allowFailure: true });
    let consoleTail = '';
    try {
      consoleTail = readFileSync(join(this.s.lxcPath, name, 'console.log'), 'utf8').replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').trim().split('\n').slice(-4).join(' | ');
    } catch {
      consoleTail = 'no console log';
    }
    // (from inside: is sshd running, what did it say, does eth0 have its address)
    const inside = await run(['lxc-attach', '-n', name, '-P', this.s.lxcPath, '--', 'sh', '-c', 'echo "ssh: $(systemctl is-active ssh)"; journalctl -u ssh -n 4 --no-pager -o cat 2>&1; ip -4 -o addr show dev eth0 2>&1; ss -ltn 2>&1 | grep ":22 " || echo "nothing on :22"'], { allowFailure: true, timeoutMs: 10_000 });
    const seen = `${inside.stdout}${inside.stderr}`.trim().split('\n').join(' | ').slice(-800);
    return `state ${info.stdout.trim() || 'unknown'}; inside: ${seen || 'nothing'}; console: ${consoleTail.slice(-300) || 'empty'}`;
  }

  async hostKey(node: ProviderNode): Promise<string | null> {
    const file = join(this.s.lxcPath, node.id, 'overlay', 'delta', 'etc/ssh/ssh_host_ed25519_key.pub');
    return existsSync(file) ? readFileSync(file, 'utf8').trim() : null;
  }

  async destroy(node: ProviderNode): Promise<void> {
    await run(['lxc-destroy', '-n', node.id, '-P', this.s.lxcPath, '-f']);
  }

  /** The nodesets with a container on this provider's bridge. */
  private nodesetsOnBridge(): Set<string> {
    const out = new Set<string>();
    for (const c of this.containers()) {
      const labels = parseLabels(c.config);
      if (labels && configValue(c.config, 'lxc.net.0.link') === this.s.bridge) out.add(labels.nodeset);
    }
    return out;
  }

  async release(nodeset: string): Promise<void> {
    // (under the allocation lock: a create in flight holds it until its container has its labels;
    // without a containers' folder no create has begun)
    const release = async () => {
      if (!this.nodesetsOnBridge().has(nodeset)) releaseClaims(this.s.lxcPath, this.s.bridge, nodeset);
      const onBridge = this.containers().filter((c) => configValue(c.config, 'lxc.net.0.link') === this.s.bridge && parseLabels(c.config));
      if (onBridge.length > 0) return;
      await stopProxy(this.s);
      await removeBridge(this.s.bridge);
    };
    await (existsSync(this.s.lxcPath) ? this.serial(release) : release());
  }
}

/** 2 where the memory controller is on the unified hierarchy, else 1. */
function cgroupVersion(): 1 | 2 {
  try {
    return readFileSync('/sys/fs/cgroup/cgroup.controllers', 'utf8').split(/\s+/).includes('memory') ? 2 : 1;
  } catch {
    return 1;
  }
}

function sourcesList(mirror: string | null, security: string | null): string {
  const lines = [];
  if (mirror) lines.push(`deb ${mirror} bookworm main`, `deb ${mirror} bookworm-updates main`);
  if (security) lines.push(`deb ${security} bookworm-security main`);
  return `${lines.join('\n')}\n`;
}

/**
 * Writes a file into an overlay clone's upper layer before it boots. Missing parent folders are
 * made with the golden's owner and mode: an upper folder's mode wins in overlayfs.
 */
function writeInto(delta: string, goldenRoot: string, rel: string, content: string, mode: number): void {
  const parts = dirname(rel).split('/').filter((p) => p && p !== '.');
  let sub = '';
  for (const p of parts) {
    sub = sub ? `${sub}/${p}` : p;
    const target = join(delta, sub);
    if (existsSync(target)) continue;
    const ref = join(goldenRoot, sub);
    const st = existsSync(ref) ? statSync(ref) : null;
    mkdirSync(target, { mode: st ? st.mode & 0o7777 : 0o755 });
    if (st) chownSync(target, st.uid, st.gid);
  }
  writeFileSync(join(delta, rel), content, { mode });
}
