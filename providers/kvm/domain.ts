/**
 * libvirt XML for the kvm provider, built and read as text: the domain (with silver's labels in
 * its `<metadata>`), the managed network, and parsers for what virsh prints. Pure.
 */
import type { Labels, NodeState } from '../../src/provider.js';
import type { Role } from '../../src/nodeset/types.js';
import type { Attachment } from './config.js';

/** The XML namespace of silver's element in a domain's `<metadata>` (`virsh metadata D --uri NS`). */
export const METADATA_NS = 'https://silverlining.invalid/xmlns/libvirt/node/1';
export const METADATA_PREFIX = 'silver';

export interface NodeMetadata extends Labels {
  address: string;
  /** The host public key silver installed, so it can be told again without contacting the node. */
  hostKey: string;
}

export function xmlEscape(s: string): string {
  return s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;').replaceAll("'", '&apos;');
}

function xmlUnescape(s: string): string {
  return s
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&quot;', '"')
    .replaceAll('&apos;', "'")
    .replace(/&#(\d+);/g, (_, d: string) => String.fromCodePoint(Number(d)))
    .replace(/&#x([0-9a-f]+);/gi, (_, h: string) => String.fromCodePoint(parseInt(h, 16)))
    .replaceAll('&amp;', '&');
}

/** The `<silver:node>` element: labels, address and host key. */
export function metadataElement(m: NodeMetadata): string {
  const p = METADATA_PREFIX;
  const field = (k: string, v: string | number) => `      <${p}:${k}>${xmlEscape(String(v))}</${p}:${k}>`;
  return [
    `    <${p}:node xmlns:${p}="${METADATA_NS}">`,
    field('nodeset', m.nodeset),
    field('role', m.role),
    field('name', m.name),
    field('index', m.index),
    field('address', m.address),
    field('hostkey', m.hostKey),
    `    </${p}:node>`,
  ].join('\n');
}

/**
 * silver's metadata from `virsh metadata D --uri NS` (no prefix) or from `virsh dumpxml D`
 * (prefixed), or null when the domain has none.
 */
export function parseMetadata(xml: string): NodeMetadata | null {
  const open = /<(?:([\w-]+):)?node\b[^>]*>/.exec(xml);
  if (!open) return null;
  if (open[1] !== undefined && !xml.includes(METADATA_NS)) return null;
  const body = xml.slice(open.index);
  const get = (k: string) => {
    const m = new RegExp(`<(?:[\\w-]+:)?${k}>([^<]*)</(?:[\\w-]+:)?${k}>`).exec(body);
    return m ? xmlUnescape(m[1]!) : null;
  };
  const [nodeset, role, name, index, address, hostKey] = ['nodeset', 'role', 'name', 'index', 'address', 'hostkey'].map(get);
  if (!nodeset || !role || !name || !address) return null;
  if (!(role === 'appserver' || role === 'balancer' || role.startsWith('service:'))) return null;
  return { nodeset, role: role as Role, name, index: Number(index ?? 0), address, hostKey: hostKey ?? '' };
}

export interface DomainSpec {
  /** `kvm`; `qemu` (TCG, no acceleration) only for machines whose KVM does not work. */
  type?: 'kvm' | 'qemu';
  name: string;
  metadata: NodeMetadata;
  memoryMb: number;
  vcpus: number;
  pool: string;
  disk: string;
  seed: string;
  attachment: Attachment;
  mac: string;
}

function interfaceXml(a: Attachment, mac: string): string {
  const source = a.kind === 'bridge' ? `<source bridge='${xmlEscape(a.bridge)}'/>` : `<source network='${xmlEscape(a.network)}'/>`;
  return [
    `    <interface type='${a.kind === 'bridge' ? 'bridge' : 'network'}'>`,
    `      ${source}`,
    `      <mac address='${mac}'/>`,
    "      <model type='virtio'/>",
    '    </interface>',
  ].join('\n');
}

/**
 * A KVM guest: the node disk (a qcow2 overlay volume on the base image) and the cloud-init seed
 * (a read-only disk labelled `cidata`), both pool volumes so the XML works over `qemu+ssh://`.
 */
export function domainXml(d: DomainSpec): string {
  const pool = xmlEscape(d.pool);
  return [
    `<domain type='${d.type ?? 'kvm'}'>`,
    `  <name>${xmlEscape(d.name)}</name>`,
    `  <title>${xmlEscape(`silver ${d.metadata.nodeset}: ${d.metadata.name}`)}</title>`,
    '  <metadata>',
    metadataElement(d.metadata),
    '  </metadata>',
    `  <memory unit='MiB'>${d.memoryMb}</memory>`,
    `  <currentMemory unit='MiB'>${d.memoryMb}</currentMemory>`,
    `  <vcpu>${d.vcpus}</vcpu>`,
    "  <os><type>hvm</type><boot dev='hd'/></os>",
    '  <features><acpi/><apic/></features>',
    ...((d.type ?? 'kvm') === 'kvm' ? ["  <cpu mode='host-passthrough'/>"] : []),
    "  <clock offset='utc'/>",
    '  <on_poweroff>destroy</on_poweroff>',
    '  <on_reboot>restart</on_reboot>',
    '  <on_crash>destroy</on_crash>',
    '  <devices>',
    "    <disk type='volume' device='disk'>",
    "      <driver name='qemu' type='qcow2' discard='unmap'/>",
    `      <source pool='${pool}' volume='${xmlEscape(d.disk)}'/>`,
    "      <target dev='vda' bus='virtio'/>",
    '    </disk>',
    "    <disk type='volume' device='disk'>",
    "      <driver name='qemu' type='raw'/>",
    `      <source pool='${pool}' volume='${xmlEscape(d.seed)}'/>`,
    "      <target dev='vdb' bus='virtio'/>",
    '      <readonly/>',
    '    </disk>',
    interfaceXml(d.attachment, d.mac),
    "    <serial type='pty'><target port='0'/></serial>",
    "    <console type='pty'><target type='serial' port='0'/></console>",
    "    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>",
    '  </devices>',
    '</domain>',
    '',
  ].join('\n');
}

/** The NAT network silver defines when neither `network` nor `bridge` is set; no DHCP (addresses are fixed). */
export function managedNetworkXml(name: string, bridge: string, prefix: string): string {
  return [
    '<network>',
    `  <name>${xmlEscape(name)}</name>`,
    "  <forward mode='nat'/>",
    `  <bridge name='${xmlEscape(bridge)}' stp='on' delay='0'/>`,
    `  <ip address='${prefix}.1' netmask='255.255.255.0'/>`,
    '</network>',
    '',
  ].join('\n');
}

/** `virsh list --all --uuid --name`: uuid and name per line. */
export function parseUuidNames(out: string): { uuid: string; name: string }[] {
  const rows: { uuid: string; name: string }[] = [];
  for (const line of out.split('\n')) {
    const m = /^\s*([0-9a-f]{8}-[0-9a-f-]{27})\s+(.+?)\s*$/i.exec(line);
    if (m) rows.push({ uuid: m[1]!, name: m[2]! });
  }
  return rows;
}

const STATES: Record<string, NodeState> = {
  running: 'running',
  idle: 'running',
  blocked: 'running',
  paused: 'stopped',
  'shut off': 'stopped',
  pmsuspended: 'stopped',
  'in shutdown': 'pending',
  crashed: 'error',
  'no state': 'unknown',
};

export function nodeState(virshState: string): NodeState {
  return STATES[virshState.trim()] ?? 'unknown';
}

/** `virsh list --all` (with `-q`: no header): domain name → state. */
export function parseDomainStates(out: string): Map<string, NodeState> {
  const map = new Map<string, NodeState>();
  const names = Object.keys(STATES).join('|');
  for (const line of out.split('\n')) {
    const m = new RegExp(`^\\s*(\\S+)\\s+(.+?)\\s+(${names})\\s*$`).exec(line);
    if (m) map.set(m[2]!, nodeState(m[3]!));
  }
  return map;
}

/** `virsh vol-dumpxml`: the capacity in bytes, and the backing store's path if any. */
export function parseVolume(xml: string): { capacity: number; backing: string | null; path: string | null } {
  const cap = /<capacity(?:\s+unit=['"](\w+)['"])?\s*>(\d+)<\/capacity>/.exec(xml);
  const units: Record<string, number> = { bytes: 1, B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4 };
  const backing = /<backingStore>[\s\S]*?<path>([^<]*)<\/path>/.exec(xml);
  const path = /<target>[\s\S]*?<path>([^<]*)<\/path>/.exec(xml);
  return {
    capacity: cap ? Number(cap[2]) * (units[cap[1] ?? 'bytes'] ?? 1) : 0,
    backing: backing ? xmlUnescape(backing[1]!) : null,
    path: path ? xmlUnescape(path[1]!) : null,
  };
}

/** `virsh vol-list POOL` (with `-q`): volume names. */
export function parseVolumeNames(out: string): string[] {
  return out
    .split('\n')
    .map((l) => /^\s*(\S+)\s/.exec(`${l} `)?.[1])
    .filter((n): n is string => !!n);
}

/**
 * A qcow2 volume for `virsh vol-create-from`: libvirt fills it from the input volume with
 * `qemu-img convert`, which writes the whole chain (the overlay and its base) into one file
 * without a backing file.
 */
export function volumeXml(name: string, capacityBytes: number): string {
  return [
    '<volume>',
    `  <name>${xmlEscape(name)}</name>`,
    `  <capacity unit='bytes'>${capacityBytes}</capacity>`,
    "  <target><format type='qcow2'/></target>",
    '</volume>',
    '',
  ].join('\n');
}
