/**
 * Pure pieces of the kvm provider: settings, flavors, names, addresses. No I/O here.
 */
import type { ProviderConfig } from '../../src/nodeset/types.js';
import type { Flavor } from '../../src/provider.js';

/** Where the nodes' interface is attached. `managed`: a NAT network silver defines itself. */
export type Attachment = { kind: 'managed'; network: string } | { kind: 'network'; network: string } | { kind: 'bridge'; bridge: string };

export interface KvmSettings {
  /** libvirt connection URI: `qemu:///system`, `qemu+ssh://user@host/system`. */
  uri: string;
  /** The storage pool holding the base image, the node disks and the seed images. */
  pool: string;
  /** The qcow2 volume (in `pool`) the node disks are overlays of. */
  baseImage: string;
  attachment: Attachment;
  /** The first three octets of the /24 (`10.214.0`), or null: the `network`'s own, read in prepare. */
  prefix: string | null;
}

export const DEFAULTS = {
  uri: 'qemu:///system',
  pool: 'default',
  baseImage: 'debian-12-genericcloud-amd64.qcow2',
  network: 'silver',
  networkBridge: 'silverkvm0',
  subnet: '10.214.0.0/24',
};

/** Every name silver gives a domain or a volume starts with this. */
export const NAME_PREFIX = 'silver_';

function setting(config: ProviderConfig, key: string): string | undefined {
  const v = config.settings[key];
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
}

export function kvmSettings(config: ProviderConfig): KvmSettings {
  const network = setting(config, 'network');
  const bridge = setting(config, 'bridge');
  if (network && bridge) throw new Error('kvm provider: set either network (a libvirt network) or bridge (a host bridge), not both');
  if (bridge && !/^[a-zA-Z0-9_.-]{1,15}$/.test(bridge)) throw new Error(`kvm provider: bridge must be an interface name of at most 15 characters, got "${bridge}"`);
  const subnet = setting(config, 'subnet');
  const attachment: Attachment = bridge ? { kind: 'bridge', bridge } : network ? { kind: 'network', network } : { kind: 'managed', network: DEFAULTS.network };
  return {
    uri: setting(config, 'uri') ?? DEFAULTS.uri,
    pool: setting(config, 'pool') ?? DEFAULTS.pool,
    baseImage: setting(config, 'base_image') ?? DEFAULTS.baseImage,
    attachment,
    // A user's network has its own subnet, read in prepare; the other two default to ours.
    prefix: subnet ? parseSubnet(subnet) : attachment.kind === 'network' ? null : parseSubnet(DEFAULTS.subnet),
  };
}

export function parseSubnet(subnet: string): string {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.0\/24$/.exec(subnet.trim());
  if (!m || [m[1], m[2], m[3]].some((o) => Number(o) > 255)) throw new Error(`kvm provider: subnet must be a /24 like 10.214.0.0/24, got "${subnet}"`);
  return `${m[1]}.${m[2]}.${m[3]}`;
}

/** The gateway (and DNS server) of the nodes: `.1` of the subnet, the libvirt network's own address. */
export function gatewayAddress(prefix: string): string {
  return `${prefix}.1`;
}

/** Domain names: `silver_<nodeset>_<node name>` (nodeset names have no `_`, so this is unambiguous). */
export function domainName(nodeset: string, node: string): string {
  return `${NAME_PREFIX}${nodeset}_${node}`;
}

export function diskVolume(domain: string): string {
  return `${domain}.qcow2`;
}

export function seedVolume(domain: string): string {
  return `${domain}-seed.iso`;
}

/** The lowest free address in .10–.250 of the /24. */
export function allocateAddress(prefix: string, used: ReadonlySet<string>): string | null {
  for (let i = 10; i <= 250; i++) {
    const a = `${prefix}.${i}`;
    if (!used.has(a)) return a;
  }
  return null;
}

/** A stable locally administered MAC for an address (`02:5f:` + its four octets). */
export function macFor(address: string): string {
  const octets = address.split('.').map((o) => Number(o).toString(16).padStart(2, '0'));
  return `02:5f:${octets.join(':')}`;
}

/** The prefix of a libvirt network's `<ip address=... netmask|prefix=...>` when it is a /24. */
export function networkPrefix(networkXml: string): string | null {
  const ip = /<ip\b([^>]*)>/.exec(networkXml)?.[1] ?? '';
  const address = /\baddress=['"]([\d.]+)['"]/.exec(ip)?.[1];
  const netmask = /\bnetmask=['"]([\d.]+)['"]/.exec(ip)?.[1];
  const prefix = /\bprefix=['"](\d+)['"]/.exec(ip)?.[1];
  if (!address || !(netmask === '255.255.255.0' || prefix === '24')) return null;
  return address.split('.').slice(0, 3).join('.');
}

export interface KvmFlavor extends Flavor {
  vcpus: number;
}

/** Memory flavors, as the local provider's (`id 512M`, `ram 300MB` rounds up), with vCPUs by size. */
export const KVM_FLAVORS: KvmFlavor[] = [128, 256, 512, 1024, 2048, 4096, 8192, 16384].map((mb) => {
  const vcpus = mb <= 1024 ? 1 : mb <= 4096 ? 2 : 4;
  return {
    id: mb >= 1024 ? `${mb / 1024}G` : `${mb}M`,
    ramMb: mb,
    vcpus,
    description: `${vcpus} vCPU`,
    ...(mb === 1024 ? { default: true } : {}),
  };
});

export function vcpusFor(ramMb: number): number {
  return KVM_FLAVORS.find((f) => f.ramMb >= ramMb)?.vcpus ?? 4;
}

/** Disk size of a node: the base image's, at least 10 GiB (qcow2 grows only as it is written). */
export function diskBytes(baseCapacity: number): number {
  return Math.max(baseCapacity, 10 * 1024 ** 3);
}
