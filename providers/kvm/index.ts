import { randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import { portOpen } from '../../src/util/port.js';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Nodeset, ProviderConfig } from '../../src/nodeset/types.js';
import type { CreatedNode, CreateRequest, Flavor, NodeState, Provider, ProviderNode } from '../../src/provider.js';
import { parseImageName, type ImageLabels, type ImageRecord } from '../../src/image/strip.js';
import type { StateDir } from '../../src/state.js';
import { run } from '../../src/util/exec.js';
import { seedFiles } from './cloud-init.js';
import {
  allocateAddress, DEFAULTS, diskBytes, diskVolume, domainName, gatewayAddress, KVM_FLAVORS, kvmSettings, macFor,
  NAME_PREFIX, networkPrefix, seedVolume, vcpusFor, type KvmSettings,
} from './config.js';
import {
  domainXml, managedNetworkXml, METADATA_NS, nodeState, parseDomainStates, parseMetadata, parseUuidNames, parseVolume,
  parseVolumeNames, volumeXml, type NodeMetadata,
} from './domain.js';
import { withSeedImage, withTempFile } from './seed.js';
import { Virsh } from './virsh.js';

/**
 * The `kvm` provider: every node is a libvirt KVM guest, driven through one interactive `virsh`
 * session (local `qemu:///system` or remote `qemu+ssh://`). Its disk is a qcow2 overlay volume
 * on a base cloud image; a cloud-init NoCloud seed volume sets the hostname, the fixed address,
 * the deploy key and silver's host key. Labels live in the domain's `<metadata>`, so `list` asks
 * libvirt, not a local cache.
 */

export interface KvmOptions {
  /**
   * Whether a node answers, asked by `waitReachable` until true. Default: a TCP connection to port
   * 22 of its address. The contract test against `test:///default` (no guest runs there) passes
   * one that asks the domain's state instead.
   */
  reachable?: (node: ProviderNode, provider: KvmProvider) => Promise<boolean>;
  /**
   * Puts the local seed ISO into its pool volume (created beforehand with the ISO's size).
   * Default: `virsh vol-upload`, which streams the file over the connection, so it works over
   * `qemu+ssh://`. The `test:///default` driver has no vol-upload: its tests pass a function
   * that keeps the ISO for inspection instead.
   */
  uploadSeed?: (iso: string, volume: string, provider: KvmProvider) => Promise<void>;
  /** The virsh binary. */
  virsh?: string;
  /**
   * The libvirt domain type: `kvm` (default). `qemu` runs the guests under TCG, slowly, for a
   * test machine whose nested KVM does not work; not a setting of the nodeset.
   */
  domainType?: 'kvm' | 'qemu';
  /** How long a bake waits for the builder to power off before it is stopped hard (default 3 min). */
  shutdownTimeoutMs?: number;
}

export function createProvider(config: ProviderConfig, _state: StateDir, options: KvmOptions = {}): KvmProvider {
  return new KvmProvider(kvmSettings(config), options);
}

interface Domain {
  uuid: string;
  name: string;
  meta: NodeMetadata;
}

export class KvmProvider implements Provider {
  readonly type = 'kvm';
  readonly adminUser = 'debian';
  readonly virsh: Virsh;
  /** The subnet prefix in use: the setting's, or the user network's read in prepare. */
  private prefix: string | null;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly s: KvmSettings,
    private readonly options: KvmOptions = {},
  ) {
    this.virsh = new Virsh(s.uri, { ...(options.virsh ? { binary: options.virsh } : {}) });
    this.prefix = s.prefix;
  }

  /** Ends the virsh session (silver's commands need not: an idle session does not hold the process). */
  close(): Promise<void> {
    return this.virsh.close();
  }

  async prepare(_ns: Nodeset, report: (m: string) => void): Promise<void> {
    const iso = await run(['genisoimage', '-version'], { allowFailure: true });
    if (iso.code === 127) throw new Error('kvm provider: genisoimage not found (install the Debian package genisoimage)');
    const pool = await this.virsh.run(['pool-info', this.s.pool], { allowFailure: true });
    if (pool.code !== 0) throw new Error(`kvm provider: no storage pool "${this.s.pool}" on ${this.s.uri} (set pool = NAME; virsh pool-list --all): ${pool.stderr.trim()}`);
    if (!/^State:\s+running/m.test(pool.stdout)) await this.virsh.run(['pool-start', this.s.pool]);
    const a = this.s.attachment;
    if (a.kind === 'managed') {
      if (await this.ensureManagedNetwork(a.network)) report(`kvm: network ${a.network} ${gatewayAddress(this.prefix!)}/24 (NAT, no DHCP) on ${this.s.uri}`);
    } else if (a.kind === 'network') {
      const xml = await this.virsh.run(['net-dumpxml', a.network], { allowFailure: true });
      if (xml.code !== 0) throw new Error(`kvm provider: no libvirt network "${a.network}" on ${this.s.uri}: ${xml.stderr.trim()}`);
      const own = networkPrefix(xml.stdout);
      if (!this.prefix) {
        if (!own) throw new Error(`kvm provider: network "${a.network}" has no IPv4 /24; set subnet = A.B.C.0/24`);
        this.prefix = own;
      } else if (own && own !== this.prefix) {
        throw new Error(`kvm provider: network "${a.network}" is ${own}.0/24 but subnet is ${this.prefix}.0/24`);
      }
      const info = await this.virsh.run(['net-info', a.network]);
      if (!/^Active:\s+yes/m.test(info.stdout)) await this.virsh.run(['net-start', a.network]);
    }
  }

  /** Defines and starts silver's NAT network if it is missing or stopped; true when it did something. */
  private async ensureManagedNetwork(name: string): Promise<boolean> {
    const prefix = this.prefix!;
    const xml = await this.virsh.run(['net-dumpxml', name], { allowFailure: true });
    let changed = false;
    if (xml.code !== 0) {
      await withTempFile('network.xml', managedNetworkXml(name, DEFAULTS.networkBridge, prefix), (f) => this.virsh.run(['net-define', f]));
      await this.virsh.run(['net-autostart', name]);
      changed = true;
    } else if (networkPrefix(xml.stdout) !== prefix) {
      throw new Error(`kvm provider: libvirt network "${name}" exists with another subnet than ${prefix}.0/24 (remove it, or set subnet to its own)`);
    }
    const info = await this.virsh.run(['net-info', name]);
    if (!/^Active:\s+yes/m.test(info.stdout)) {
      await this.virsh.run(['net-start', name]);
      changed = true;
    }
    return changed;
  }

  async listSizes(): Promise<Flavor[]> {
    return KVM_FLAVORS.map(({ vcpus: _v, ...f }) => f);
  }

  /** The qcow2 volumes of the pool that are not silver's own node disks. */
  async listImages(): Promise<string[]> {
    const r = await this.virsh.run(['vol-list', this.s.pool]);
    return parseVolumeNames(r.stdout).filter((n) => n.endsWith('.qcow2') && !n.startsWith(NAME_PREFIX));
  }

  /** A volume of the pool by its name; a baked image also by its name without `.qcow2`. */
  async resolveImage(image: string | null): Promise<string> {
    const wanted = image ?? this.s.baseImage;
    const names = parseImageName(wanted) && !wanted.endsWith('.qcow2') ? [`${wanted}.qcow2`, wanted] : [wanted];
    for (const name of names) {
      const r = await this.virsh.run(['vol-dumpxml', '--pool', this.s.pool, name], { allowFailure: true });
      if (r.code === 0) return name;
    }
    if (parseImageName(wanted)) throw new Error(`kvm provider: no baked image "${wanted}" in pool ${this.s.pool} on ${this.s.uri} (silver list-images shows the pool's images)`);
    throw new Error(
      `kvm provider: no volume "${wanted}" in pool ${this.s.pool} on ${this.s.uri}. Put a Debian cloud image there once, e.g.: ` +
        `virsh vol-create-as ${this.s.pool} ${wanted} 3G --format qcow2 && virsh vol-upload --pool ${this.s.pool} ${wanted} debian-12-genericcloud-amd64.qcow2`,
    );
  }

  /** A baked image's labels, from its volume's name (the pool keeps no other record of it). */
  async imageRecord(image: string): Promise<ImageLabels | null> {
    return parseImageName(image);
  }

  /**
   * The stripped builder shut down (stopped hard if it does not power off in time), then its
   * disk (a qcow2 overlay on the base image) converted into a new volume of the pool with no
   * backing file: `virsh vol-create-from`, which runs `qemu-img convert` where the pool is, so
   * it works over `qemu+ssh://` too. The volume, `NAME.qcow2`, is the new base image.
   */
  async snapshotImage(builder: ProviderNode, record: ImageRecord, report: (message: string) => void, signal?: AbortSignal): Promise<string> {
    const disk = diskVolume(domainName(builder.nodeset, builder.name));
    const volume = `${record.name}.qcow2`;
    if ((await this.virsh.run(['vol-info', '--pool', this.s.pool, volume], { allowFailure: true })).code === 0) {
      throw new Error(`kvm provider: a volume ${volume} exists already in pool ${this.s.pool}`);
    }
    await this.powerOff(builder, report, signal);
    const capacity = parseVolume((await this.virsh.run(['vol-dumpxml', '--pool', this.s.pool, disk])).stdout).capacity;
    report(`kvm: converting ${disk} into ${volume} (pool ${this.s.pool})`);
    await withTempFile('volume.xml', volumeXml(volume, capacity), (f) => this.virsh.run(['vol-create-from', this.s.pool, f, disk, '--inputpool', this.s.pool], { timeoutMs: 60 * 60_000 }));
    return volume;
  }

  /** `virsh shutdown` (ACPI), waiting until the domain is shut off; `virsh destroy` after the timeout. */
  private async powerOff(node: ProviderNode, report: (message: string) => void, signal?: AbortSignal): Promise<void> {
    await this.virsh.run(['shutdown', node.id]);
    const deadline = Date.now() + (this.options.shutdownTimeoutMs ?? 180_000);
    while ((await this.domainState(node)) !== 'stopped') {
      if (signal?.aborted) throw new Error(`kvm provider: stopped waiting for ${node.name} to power off`);
      if (Date.now() > deadline) {
        report(`kvm: ${node.name} did not power off within ${Math.round((this.options.shutdownTimeoutMs ?? 180_000) / 1000)}s: stopping it hard (its disks were synced after the strip)`);
        await this.virsh.run(['destroy', node.id]);
        return;
      }
      await sleep(500);
    }
  }

  /** Every domain silver labelled, of any nodeset. */
  private async domains(): Promise<Domain[]> {
    const r = await this.virsh.run(['list', '--all', '--uuid', '--name']);
    const out: Domain[] = [];
    for (const { uuid, name } of parseUuidNames(r.stdout)) {
      const m = await this.virsh.run(['metadata', uuid, '--uri', METADATA_NS], { allowFailure: true });
      const meta = m.code === 0 ? parseMetadata(m.stdout) : null;
      if (meta) out.push({ uuid, name, meta });
    }
    return out;
  }

  private async states(): Promise<Map<string, NodeState>> {
    return parseDomainStates((await this.virsh.run(['list', '--all'])).stdout);
  }

  private toNode(d: Domain, states: Map<string, NodeState>): ProviderNode {
    const { nodeset, role, name, index, address } = d.meta;
    return { nodeset, role, name, index, id: d.uuid, state: states.get(d.name) ?? 'unknown', privateAddress: address, publicAddress: null };
  }

  async list(nodeset: string): Promise<ProviderNode[]> {
    const mine = (await this.domains()).filter((d) => d.meta.nodeset === nodeset);
    if (mine.length === 0) return [];
    const states = await this.states();
    return mine.map((d) => this.toNode(d, states));
  }

  /** The state libvirt reports for a node's domain. */
  async domainState(node: ProviderNode): Promise<NodeState> {
    const r = await this.virsh.run(['domstate', node.id], { allowFailure: true });
    return r.code === 0 ? nodeState(r.stdout) : 'unknown';
  }

  /** One creation at a time in this process, so two nodes never take the same address. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  async create(req: CreateRequest): Promise<CreatedNode> {
    const name = domainName(req.labels.nodeset, req.labels.name);
    const prefix = this.prefix;
    if (!prefix) throw new Error('kvm provider: prepare() has not read the network yet');
    const base = await this.baseVolume(req.image);
    // Another silver process on the same libvirt may take the same address at the same moment:
    // each one checks after defining, and the one that sees a clash starts again.
    for (let attempt = 1; ; attempt++) {
      const { address, uuid } = await this.serial(() => this.defineNode(req, name, prefix, base));
      const clash = (await this.domains()).some((d) => d.name !== name && d.meta.address === address);
      if (!clash) {
        const started = await this.virsh.run(['start', uuid], { allowFailure: true });
        if (started.code !== 0) {
          // A node that never ran is removed, so the next create-node makes it anew.
          await this.remove(uuid, name);
          throw new Error(`kvm provider: ${name} did not start: ${started.stderr.trim().split('\n').join(' | ')}`);
        }
        await this.virsh.run(['autostart', uuid], { allowFailure: true });
        const node: ProviderNode = { ...req.labels, id: uuid, state: 'running', privateAddress: address, publicAddress: null };
        return { node, hostKey: req.hostKey.public };
      }
      await this.remove(uuid, name);
      if (attempt >= 5) throw new Error(`kvm provider: address ${address} kept being taken by another process`);
      await sleep(100 + Math.random() * 900);
    }
  }

  private async baseVolume(image: string): Promise<{ name: string; capacity: number }> {
    const r = await this.virsh.run(['vol-dumpxml', '--pool', this.s.pool, image]);
    return { name: image, capacity: parseVolume(r.stdout).capacity };
  }

  /** Volumes, seed and domain of one node, with the lowest free address; removed again on failure. */
  private async defineNode(req: CreateRequest, name: string, prefix: string, base: { name: string; capacity: number }): Promise<{ address: string; uuid: string }> {
    const exists = await this.virsh.run(['domuuid', name], { allowFailure: true });
    if (exists.code === 0) throw new Error(`kvm provider: a domain named ${name} already exists on ${this.s.uri}`);
    const used = new Set([gatewayAddress(prefix), ...(await this.domains()).map((d) => d.meta.address)]);
    const address = allocateAddress(prefix, used);
    if (!address) throw new Error(`kvm provider: no free address left in ${prefix}.0/24`);
    const disk = diskVolume(name);
    const seed = seedVolume(name);
    // Leftovers of an interrupted run (volumes without a domain): start again.
    await this.deleteVolumes([disk, seed]);
    try {
      const mac = macFor(address);
      const files = seedFiles({
        name: req.labels.name, instanceId: `${name}-${randomUUID()}`, adminUser: this.adminUser,
        authorizedKey: req.authorizedKey, hostKey: req.hostKey, address, gateway: gatewayAddress(prefix), mac,
      });
      await withSeedImage(files, async (iso) => {
        await this.virsh.run(['vol-create-as', this.s.pool, seed, String(statSync(iso).size), '--format', 'raw']);
        await (this.options.uploadSeed ?? uploadWithVirsh)(iso, seed, this);
      });
      await this.virsh.run([
        'vol-create-as', this.s.pool, disk, String(diskBytes(base.capacity)),
        '--format', 'qcow2', '--backing-vol', base.name, '--backing-vol-format', 'qcow2',
      ]);
      const xml = domainXml({
        type: this.options.domainType ?? 'kvm',
        name, pool: this.s.pool, disk, seed, attachment: this.s.attachment, mac,
        memoryMb: req.flavor.ramMb, vcpus: vcpusFor(req.flavor.ramMb),
        metadata: { ...req.labels, address, hostKey: req.hostKey.public.trim() },
      });
      await withTempFile('domain.xml', xml, (f) => this.virsh.run(['define', f]));
      const uuid = (await this.virsh.run(['domuuid', name])).stdout.trim();
      return { address, uuid };
    } catch (e) {
      await this.virsh.run(['undefine', name], { allowFailure: true });
      await this.deleteVolumes([disk, seed]);
      throw e;
    }
  }

  private async deleteVolumes(volumes: readonly string[]): Promise<void> {
    for (const v of volumes) await this.virsh.run(['vol-delete', '--pool', this.s.pool, v], { allowFailure: true });
  }

  async start(node: ProviderNode): Promise<ProviderNode> {
    await this.virsh.run(['start', node.id]);
    return { ...node, state: 'running' };
  }

  async waitReachable(node: ProviderNode, timeoutMs: number): Promise<ProviderNode> {
    const address = node.privateAddress;
    if (!address) throw new Error(`${node.name} has no address`);
    const reachable = this.options.reachable ?? ((n: ProviderNode) => portOpen(n.privateAddress!, 22, 1000));
    const deadline = Date.now() + timeoutMs;
    while (!(await reachable(node, this))) {
      if (Date.now() > deadline) throw new Error(`${node.name}: port 22 on ${address} did not answer within ${timeoutMs / 1000}s (domain ${await this.domainState(node)})`);
      await sleep(250);
    }
    return { ...node, state: 'running' };
  }

  async hostKey(node: ProviderNode): Promise<string | null> {
    const m = await this.virsh.run(['metadata', node.id, '--uri', METADATA_NS], { allowFailure: true });
    return (m.code === 0 ? parseMetadata(m.stdout)?.hostKey : null) || null;
  }

  async destroy(node: ProviderNode): Promise<void> {
    await this.remove(node.id, domainName(node.nodeset, node.name));
  }

  /** Stops the domain, undefines it with its storage volumes, and deletes any volume left by name. */
  private async remove(id: string, name: string): Promise<void> {
    await this.virsh.run(['destroy', id], { allowFailure: true });
    const r = await this.virsh.run(['undefine', id, '--remove-all-storage'], { allowFailure: true });
    if (r.code !== 0 && !/failed to get domain|Domain not found/i.test(r.stderr)) {
      throw new Error(`kvm provider: cannot remove ${name}: ${r.stderr.trim()}`);
    }
    await this.deleteVolumes([diskVolume(name), seedVolume(name)]);
  }

  /** Removes silver's own network once no silver domain is left on this libvirt. */
  async release(_nodeset: string): Promise<void> {
    const a = this.s.attachment;
    if (a.kind !== 'managed') return;
    if ((await this.domains()).length > 0) return;
    await this.virsh.run(['net-destroy', a.network], { allowFailure: true });
    await this.virsh.run(['net-undefine', a.network], { allowFailure: true });
  }
}

/** `virsh vol-upload`: the local file streamed into the pool volume over the connection. */
async function uploadWithVirsh(iso: string, volume: string, p: KvmProvider): Promise<void> {
  await p.virsh.run(['vol-upload', '--pool', p.s.pool, volume, iso]);
}
