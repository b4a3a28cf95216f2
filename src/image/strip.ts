/**
 * What a baked image must not carry (`silver image bake`): a node's identity, its secrets, its
 * apps and their data, its logs. Paths relative to the root file system; a trailing `/` means
 * the folder's content goes (the folder stays, with its owner and mode), `*` matches within one
 * name. One list for every provider.
 */
export const STRIP: readonly string[] = [
  // identity: host keys, machine id, the keys that log in
  'etc/ssh/ssh_host_*',
  'root/.ssh/authorized_keys',
  'home/silver/.ssh/authorized_keys',
  'var/lib/silverlining/backup-copies/.ssh/authorized_keys',
  'etc/silverlining/authorized_keys/',
  // secrets: app environments, database passwords, the backup key, TLS keys
  'var/lib/silverlining/apps/',
  'var/lib/silverlining/files/',
  'var/cache/silverlining/',
  'var/lib/silverlining/services/',
  'var/lib/silverlining/state/',
  'var/lib/silverlining/backups/',
  'var/lib/silverlining/backup-copies/',
  'etc/silverlining/backup.key',
  'etc/silverlining/backup.known_hosts',
  'etc/silverlining/backup.conf',
  'etc/ssl/private/silver-*',
  'etc/haproxy/certs/',
  // the apps' units and front-proxy pieces (each node gets its apps from silver)
  'etc/systemd/system/silver-*.service',
  'etc/systemd/system/multi-user.target.wants/silver-*.service',
  'etc/silverlining/nginx/',
  // the balancer's modes and pages (a new balancer gets them from the nodeset's record)
  'etc/haproxy/silver-modes.map',
  'etc/haproxy/silver-allow.acl',
  'etc/haproxy/silver-pages.map',
  // logs and run-time leftovers
  'var/log/journal/',
  'var/log/silverlining/',
  'var/log/*.log',
  'var/log/nginx/',
  'var/log/postgresql/',
  'var/log/mysql/',
  'root/.bash_history',
  'tmp/',
  'var/tmp/',
];

/** Roles an image can be baked from: a service node's disk holds the apps' data. */
export const BAKEABLE_ROLES = ['appserver', 'balancer'] as const;

/** What an image records about itself (`silver-image.json` on the local provider). */
export interface ImageRecord {
  name: string;
  nodeset: string;
  role: string;
  /** The node it was baked from. */
  from: string;
  /** ISO time of the bake. */
  built: string;
  /** `name version` of every installed Debian package. */
  packages: string[];
}

/** Days after which an image is old: its packages lack the security updates since. */
export const IMAGE_MAX_DAYS = 30;

/** `silver-image-NODESET-ROLE-20261202T1510Z`: a new name for every bake (a baked image is never changed). */
export const imageName = (nodeset: string, role: string, at: Date): string => `silver-image-${nodeset}-${role}-${at.toISOString().slice(0, 16).replace(/[-:]/g, '')}Z`;
