import { existsSync } from 'node:fs';
import { LocalProvider, localSettings } from '../../providers/local/index.js';
import type { ProviderConfig } from '../../src/nodeset/types.js';

/** Real-container tests need root (LXC); CI runs as root. */
export const canRunLxc = process.getuid?.() === 0 && existsSync('/sys/fs/cgroup');

/** Provider settings of a test: its own bridge and subnet, LXC's shared golden image. */
export function testProviderConfig(bridge: string, subnetThird: number): ProviderConfig {
  return { type: 'local', name: null, settings: { bridge, subnet: `10.213.${subnetThird}.0/24`, proxy_port: String(8800 + (subnetThird % 100)) } };
}

/** Removes every container of these nodesets (leftovers of an interrupted run) and the bridge if unused. */
export async function cleanLeftovers(config: ProviderConfig, nodesets: string[]): Promise<void> {
  const p = new LocalProvider(localSettings(config));
  for (const ns of nodesets) for (const n of await p.list(ns)) await p.destroy(n);
  await p.release(nodesets[0] ?? '');
}
