import type { CreateRequest } from '../../src/provider.js';

/**
 * The cloud-config a new server boots with: the SSH host key silver generated (so it is pinned
 * before the first connection, and the only host key the server has), the deploy key for the
 * admin user, and the node's name.
 */
export function cloudConfig(req: CreateRequest, options: { rootLogin: boolean }): string {
  const name = req.labels.name;
  const lines = [
    '#cloud-config',
    `# written by silver for ${name} (nodeset ${req.labels.nodeset}, ${req.labels.role} ${req.labels.index})`,
    `fqdn: ${quote(name)}`,
    `hostname: ${quote(name.split('.')[0]!)}`,
    'preserve_hostname: false',
    'ssh_deletekeys: true',
    'ssh_genkeytypes: []',
    'ssh_keys:',
    '  ed25519_private: |',
    ...req.hostKey.private.trim().split(/\r?\n/).map((l) => `    ${l}`),
    `  ed25519_public: ${quote(req.hostKey.public.trim())}`,
    'ssh_authorized_keys:',
    `  - ${quote(req.authorizedKey.trim())}`,
  ];
  if (options.rootLogin) lines.push('disable_root: false');
  return `${lines.join('\n')}\n`;
}

/** A YAML double-quoted scalar (JSON's escapes are YAML's). */
function quote(s: string): string {
  return JSON.stringify(s);
}
