/**
 * Pure pieces of the local provider: settings, container configuration text, labels,
 * address allocation, the apt mirror from the host's sources. No I/O here.
 */
import type { Labels } from '../../src/provider.js';
import type { Role } from '../../src/nodeset/types.js';

export interface LocalSettings {
  /** LXC's container folder. */
  lxcPath: string;
  bridge: string;
  /** The first three octets of the /24: `10.213.0`. */
  prefix: string;
  proxyPort: number;
  mirror: string | null;
}

export const DEFAULTS = { lxcPath: '/var/lib/silverlining/lxc', bridge: 'silverbr0', subnet: '10.213.0.0/24', proxyPort: 8899 };

export function parseSubnet(subnet: string): string {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.0\/24$/.exec(subnet.trim());
  if (!m || [m[1], m[2], m[3]].some((o) => Number(o) > 255)) throw new Error(`local provider: subnet must be a private /24 like 10.213.0.0/24, got "${subnet}"`);
  const prefix = `${m[1]}.${m[2]}.${m[3]}`;
  const [a, b] = [Number(m[1]), Number(m[2])];
  const isPrivate = a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168);
  if (!isPrivate) throw new Error(`local provider: subnet ${subnet} is not a private range (10/8, 172.16/12, 192.168/16)`);
  return prefix;
}

export function hostAddress(s: LocalSettings): string {
  return `${s.prefix}.1`;
}

/** Container names: `s-<nodeset>-<node name with dots as dashes>`, within LXC's limits. */
export function containerName(nodeset: string, node: string): string {
  return `s-${nodeset}-${node.replaceAll('.', '-')}`.slice(0, 120);
}

export const GOLDEN_PREFIX = 'silver-golden-';

const LABEL_PREFIX = '# silver-label ';

export function labelLine(labels: Labels): string {
  return `${LABEL_PREFIX}${JSON.stringify({ nodeset: labels.nodeset, role: labels.role, name: labels.name, index: labels.index })}`;
}

/** The labels written into a container's config by `labelLine`, or null for other containers. */
export function parseLabels(config: string): Labels | null {
  const line = config.split('\n').find((l) => l.startsWith(LABEL_PREFIX));
  if (!line) return null;
  try {
    const v = JSON.parse(line.slice(LABEL_PREFIX.length)) as { nodeset: string; role: Role; name: string; index: number };
    if (typeof v.nodeset !== 'string' || typeof v.name !== 'string') return null;
    return { nodeset: v.nodeset, role: v.role, name: v.name, index: Number(v.index) };
  } catch {
    return null;
  }
}

export function configValue(config: string, key: string): string | null {
  let value: string | null = null;
  for (const line of config.split('\n')) {
    const m = /^\s*([\w.]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (m && m[1] === key) value = m[2] ?? '';
  }
  return value;
}

/**
 * The clone's config: the golden's, minus its network and identity lines, plus ours:
 * a veth on the nodeset's bridge with a fixed address, the node's hostname, a memory limit,
 * labels, and the nodeset group.
 */
export function nodeConfig(goldenCloneConfig: string, opts: { labels: Labels; bridge: string; address: string; memoryMb: number; cgroup: 1 | 2 }): string {
  const drop = /^\s*(lxc\.net\.0\.(link|ipv4\.address|ipv4\.gateway|veth\.pair|hwaddr|name)|lxc\.uts\.name|lxc\.group|lxc\.cgroup2?\.memory\.|lxc\.start\.auto)\b/;
  const kept = goldenCloneConfig.split('\n').filter((l) => !drop.test(l) && !l.startsWith(LABEL_PREFIX));
  while (kept.length > 0 && kept[kept.length - 1] === '') kept.pop();
  return [
    ...kept,
    '',
    '# silver: node settings',
    labelLine(opts.labels),
    `lxc.uts.name = ${opts.labels.name}`,
    'lxc.group = silver',
    `lxc.group = silver-${opts.labels.nodeset}`,
    `lxc.net.0.link = ${opts.bridge}`,
    'lxc.net.0.name = eth0',
    `lxc.net.0.hwaddr = ${macFor(opts.address)}`,
    `lxc.net.0.ipv4.address = ${opts.address}/24`,
    opts.cgroup === 2 ? `lxc.cgroup2.memory.max = ${opts.memoryMb}M` : `lxc.cgroup.memory.limit_in_bytes = ${opts.memoryMb}M`,
    '',
  ].join('\n');
}

/** A stable locally administered MAC for an address. */
export function macFor(address: string): string {
  const octets = address.split('.').map((o) => Number(o).toString(16).padStart(2, '0'));
  return `02:5e:${octets.join(':')}`;
}

/** The lowest free address in .10–.250 of the /24. */
export function allocateAddress(prefix: string, used: ReadonlySet<string>): string | null {
  for (let i = 10; i <= 250; i++) {
    const a = `${prefix}.${i}`;
    if (!used.has(a)) return a;
  }
  return null;
}

/** The Debian mirror and security mirror the host's apt uses (deb822 `.sources` or one-line `.list`). */
export function aptMirrors(files: { name: string; text: string }[]): { mirror: string | null; security: string | null } {
  const uris: string[] = [];
  for (const f of files) {
    for (const line of f.text.split('\n')) {
      const t = line.trim();
      if (t.startsWith('#')) continue;
      if (f.name.endsWith('.sources')) {
        const m = /^URIs:\s*(.+)$/i.exec(t);
        if (m && m[1]) uris.push(...m[1].split(/\s+/));
      } else {
        const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)/.exec(t);
        if (m && m[1]) uris.push(m[1]);
      }
    }
  }
  const http = uris.filter((u) => /^https?:\/\//.test(u));
  return {
    mirror: http.find((u) => !/security/.test(u)) ?? null,
    security: http.find((u) => /security/.test(u)) ?? null,
  };
}

/** Memory flavors of the local provider: `id 512M` or `ram 300MB` (rounded up). */
export const LOCAL_FLAVORS = [128, 256, 512, 1024, 2048, 4096, 8192, 16384].map((mb) => ({
  id: mb >= 1024 ? `${mb / 1024}G` : `${mb}M`,
  ramMb: mb,
  ...(mb === 512 ? { default: true } : {}),
}));
