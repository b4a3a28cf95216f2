/**
 * The cloud-init NoCloud seed of a node, as text: `user-data`, `meta-data`, `network-config`.
 * Pure. Each body is JSON, which is valid YAML, so no value needs hand quoting (the private host
 * key keeps its line breaks as `\n` escapes).
 */
import type { KeyPair } from '../../src/provider.js';

export interface SeedInput {
  /** The node name (a FQDN such as `app1.example.com`). */
  name: string;
  /** A fresh id per creation, so cloud-init treats a recreated node as a new instance. */
  instanceId: string;
  adminUser: string;
  /** The deploy key authorised for the admin user. */
  authorizedKey: string;
  /** The ed25519 host key silver generated and pins before first contact. */
  hostKey: KeyPair;
  address: string;
  gateway: string;
  mac: string;
}

export function userData(s: SeedInput): string {
  const short = s.name.split('.')[0]!;
  const config = {
    hostname: short,
    fqdn: s.name,
    prefer_fqdn_over_hostname: false,
    // The node's own name resolves to its private address (the nodeset layer adds the others).
    manage_etc_hosts: false,
    write_files: [
      {
        path: '/etc/hosts',
        permissions: '0644',
        content: `127.0.0.1 localhost\n${s.address} ${s.name} ${short}\n::1 localhost ip6-localhost ip6-loopback\n`,
      },
    ],
    users: [
      {
        name: s.adminUser,
        gecos: 'silver admin',
        groups: ['sudo'],
        shell: '/bin/bash',
        sudo: 'ALL=(ALL) NOPASSWD:ALL',
        lock_passwd: true,
        ssh_authorized_keys: [s.authorizedKey.trim()],
      },
    ],
    disable_root: true,
    ssh_pwauth: false,
    // Only silver's host key: no other key type a client could be offered first.
    ssh_deletekeys: true,
    ssh_genkeytypes: [],
    ssh_keys: {
      ed25519_private: s.hostKey.private.endsWith('\n') ? s.hostKey.private : `${s.hostKey.private}\n`,
      ed25519_public: s.hostKey.public.trim(),
    },
  };
  return `#cloud-config\n${JSON.stringify(config, null, 2)}\n`;
}

export function metaData(s: SeedInput): string {
  return `${JSON.stringify({ 'instance-id': s.instanceId, 'local-hostname': s.name }, null, 2)}\n`;
}

/** Network config v2: the interface with this MAC gets the fixed address, the default gateway and DNS on `.1`. */
export function networkConfig(s: SeedInput): string {
  const config = {
    version: 2,
    ethernets: {
      eth0: {
        match: { macaddress: s.mac },
        'set-name': 'eth0',
        dhcp4: false,
        dhcp6: false,
        addresses: [`${s.address}/24`],
        // gateway4, not a `routes` entry: every renderer maps it natively (cloud-init's ifupdown
        // renderer turns routes into `route add` lines, and Debian has no `route` command).
        gateway4: s.gateway,
        nameservers: { addresses: [s.gateway] },
      },
    },
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

/** The seed's files by name, as genisoimage puts them on the `cidata` volume. */
export function seedFiles(s: SeedInput): Record<'user-data' | 'meta-data' | 'network-config', string> {
  return { 'user-data': userData(s), 'meta-data': metaData(s), 'network-config': networkConfig(s) };
}
