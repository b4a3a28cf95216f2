import type { Instance, InstanceTypeInfo, Tag } from '@aws-sdk/client-ec2';
import type { Role } from '../../src/nodeset/types.js';
import type { Flavor, Labels, NodeState, ProviderNode } from '../../src/provider.js';

/** Nodes are found again by these tags; `Name` is for the console. */
export const TAG = { nodeset: 'silver:nodeset', role: 'silver:role', name: 'silver:name', index: 'silver:index' } as const;

/** The states of an instance that still counts as a node (not shutting-down nor terminated). */
export const LIVE_STATES = ['pending', 'running', 'stopping', 'stopped'];

export function labelTags(l: Labels): Tag[] {
  return [
    { Key: 'Name', Value: l.name },
    { Key: TAG.nodeset, Value: l.nodeset },
    { Key: TAG.role, Value: l.role },
    { Key: TAG.name, Value: l.name },
    { Key: TAG.index, Value: String(l.index) },
  ];
}

export function labelsOf(tags: readonly Tag[] | undefined): Labels | null {
  const get = (key: string) => tags?.find((t) => t.Key === key)?.Value;
  const nodeset = get(TAG.nodeset);
  const role = get(TAG.role);
  const name = get(TAG.name) ?? get('Name');
  const index = Number(get(TAG.index));
  if (!nodeset || !name || !role || !/^(appserver|balancer|service:.+)$/.test(role) || !Number.isInteger(index)) return null;
  return { nodeset, role: role as Role, name, index };
}

function stateOf(name: string | undefined): NodeState {
  if (name === 'running') return 'running';
  if (name === 'pending') return 'pending';
  if (name === 'stopping' || name === 'stopped') return 'stopped';
  return 'unknown';
}

/** A live, labelled instance as a node; null for anything else. */
export function toNode(i: Instance): ProviderNode | null {
  const labels = labelsOf(i.Tags);
  if (!labels || !i.InstanceId || !LIVE_STATES.includes(i.State?.Name ?? '')) return null;
  return {
    ...labels,
    id: i.InstanceId,
    state: stateOf(i.State?.Name),
    privateAddress: i.PrivateIpAddress ?? null,
    publicAddress: i.PublicIpAddress ?? null,
  };
}

/** The size used when the nodeset gives none. */
export const DEFAULT_TYPE = 't3.small';

/** Instance types as flavors, smallest memory first (then fewer vCPUs, then by name). */
export function flavorsOf(types: readonly InstanceTypeInfo[]): Flavor[] {
  const rows = types
    .filter((t) => t.InstanceType && t.MemoryInfo?.SizeInMiB)
    .map((t) => ({ id: t.InstanceType!, ramMb: t.MemoryInfo!.SizeInMiB!, vcpus: t.VCpuInfo?.DefaultVCpus ?? 0 }))
    .sort((a, b) => a.ramMb - b.ramMb || a.vcpus - b.vcpus || a.id.localeCompare(b.id));
  const fallback = rows.find((r) => r.id === DEFAULT_TYPE) ?? rows.find((r) => r.ramMb >= 2048) ?? rows[0];
  return rows.map((r) => ({
    id: r.id,
    ramMb: r.ramMb,
    description: `${r.vcpus} vCPU, ${r.ramMb / 1024} GiB`,
    ...(r === fallback ? { default: true } : {}),
  }));
}
