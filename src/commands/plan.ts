import { batches, formatRollout, ONE_AT_A_TIME } from '../nodeset/rollout.js';
import { formatSize, type Nodeset } from '../nodeset/types.js';
import { table } from '../output/table.js';

/** What `silver plan --json` prints: stable keys for scripts, secrets as [REDACTED]. */
export function planJson(ns: Nodeset): object {
  return {
    name: ns.name,
    file: ns.file,
    provider: { type: ns.provider.type, name: ns.provider.name, settings: ns.provider.settings },
    baseDomain: ns.baseDomain,
    setEtcHosts: ns.setEtcHosts,
    loadBalancer: ns.loadBalancer,
    nodes: ns.nodes.map((n) => ({ name: n.name, role: n.role, index: n.index, size: formatSize(n.size) })),
    locations: ns.locations.map((l) => ({ url: l.url, app: l.app })),
    hostnames: ns.hostnames,
    services: ns.services,
    rollout: ns.rollout ? formatRollout(ns.rollout) : null,
    batches: activationBatches(ns),
  };
}

/** The app servers in the batches an update activates them in. */
function activationBatches(ns: Nodeset): string[][] {
  return batches(ns.nodes.filter((n) => n.role === 'appserver').map((n) => n.name), ns.rollout ?? ONE_AT_A_TIME);
}

/** The resolved nodeset for a person. */
export function renderPlan(ns: Nodeset): string {
  const provider = ns.provider.name ? `${ns.provider.type} (from [provider:${ns.provider.name}])` : ns.provider.type;
  const settings = Object.entries(ns.provider.settings).map(([k, v]) => `${k}=${String(v)}`);
  const lines = [
    `nodeset ${ns.name} (${ns.file})`,
    `provider: ${provider}${settings.length ? `  ${settings.join(' ')}` : ''}`,
    '',
    table(
      ['NODE', 'ROLE', 'INDEX', 'SIZE'],
      ns.nodes.map((n) => [n.name, n.role, String(n.index), formatSize(n.size) ?? 'provider default']),
    ),
    '',
  ];
  if (ns.locations.length > 0) {
    lines.push('locations:');
    for (const l of ns.locations) lines.push(`  ${l.url}  ->  ${l.app}`);
  } else {
    lines.push('locations: none');
  }
  lines.push(ns.loadBalancer ? `balancer hostnames: ${ns.hostnames.join(', ') || 'none'}` : 'load balancer: none');
  const plan = activationBatches(ns);
  if (plan.length > 1) lines.push(`rollout${ns.rollout ? ` = ${formatRollout(ns.rollout)}` : ': one app server at a time'}: ${plan.map((b) => b.join(', ')).join('; then ')}`);
  lines.push(`/etc/hosts: ${ns.setEtcHosts ? 'managed block on every node' : 'left alone (set_etc_hosts = false)'}`);
  const counts = new Map<string, number>();
  for (const n of ns.nodes) counts.set(n.role, (counts.get(n.role) ?? 0) + 1);
  lines.push(`${ns.nodes.length} nodes: ${[...counts].map(([r, c]) => `${c} ${r}`).join(', ')}`);
  return lines.join('\n');
}
