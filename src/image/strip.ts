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
  // (the builder's setup fingerprint: a node made from the image runs its first setup in full)
  'var/lib/silverlining/setup',
  'var/lib/silverlining/backups/',
  'var/lib/silverlining/backup-copies/',
  'etc/silverlining/backup.key',
  'etc/silverlining/backup.known_hosts',
  'etc/silverlining/backup.conf',
  'etc/ssl/private/silver-*',
  'etc/haproxy/certs/',
  // (the balancer's self-signed default: each node made from the image makes its own)
  'etc/haproxy/silver-default.pem',
  // (the ACME account's key and dehydrated's copies of the certificates' keys; the balancer
  // pair's key and its peer's host key; the ACME settings)
  'var/lib/silverlining/acme/',
  'var/lib/silverlining/acme-peer/',
  'etc/silverlining/acme-peer.key',
  'etc/silverlining/acme-peer.known',
  'etc/silverlining/acme.conf',
  'etc/silverlining/acme-ca.pem',
  'var/lib/silverlining/backup-copies-staged/',
  // the apps' homes (what their libraries keep there: tokens, caches) and the deploy user's
  'var/lib/silverlining/home/',
  'home/silver/',
  // the pair's shared address and its peer
  'etc/keepalived/keepalived.conf',
  // the apps' units and front-proxy pieces (each node gets its apps from silver)
  'etc/systemd/system/silver-*.service',
  'etc/systemd/system/multi-user.target.wants/silver-*.service',
  'etc/silverlining/nginx/',
  // (the firewall's table of the apps' instance ports: a node's own, made at its staging)
  'etc/silverlining/nft.d/',
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
  // cloud-init's record of the instance (its user data holds the node's private host key): a
  // node made from the image runs cloud-init as a new instance
  'var/lib/cloud/',
];

/**
 * STRIP and, on a cloud node, the keys cloud-init gave its admin user (`admin`, `debian`): a
 * node made from the image gets its own from the provider.
 */
export function stripPatterns(adminUser: string): string[] {
  return adminUser === 'root' ? [...STRIP] : [...STRIP, `home/${adminUser}/.ssh/authorized_keys`];
}

/** Roles an image can be baked from: a service node's disk holds the apps' data. */
export const BAKEABLE_ROLES = ['appserver', 'balancer'] as const;

/** What every provider can tell of a baked image: its name, whose and which role's it is, when. */
export interface ImageLabels {
  name: string;
  nodeset: string;
  role: string;
  /** ISO time of the bake (a cloud's own creation time where it tells one). */
  built: string;
}

/**
 * What an image records about itself: `silver-image.json` beside the local provider's image,
 * and inside a cloud image at IMAGE_RECORD (the cloud's tags or metadata hold ImageLabels).
 */
export interface ImageRecord extends ImageLabels {
  /** The node it was baked from. */
  from: string;
  /** `name version` of every installed Debian package. */
  packages: string[];
}

/** Days after which an image is old: its packages lack the security updates since. */
export const IMAGE_MAX_DAYS = 30;

/** `silver-image-NODESET-ROLE-20261202T1510Z`: a new name for every bake (a baked image is never changed). */
export const imageName = (nodeset: string, role: string, at: Date): string => `silver-image-${nodeset}-${role}-${at.toISOString().slice(0, 16).replace(/[-:]/g, '')}Z`;

/** Where a cloud image keeps its ImageRecord (written on the builder before the snapshot). */
export const IMAGE_RECORD = '/etc/silverlining/silver-image.json';

/**
 * The labels a baked image's name holds (imageName's inverse; a `.qcow2` ending allowed), or
 * null for any other name. The time is the bake's to the minute.
 */
export function parseImageName(name: string): ImageLabels | null {
  const m = /^silver-image-(.+)-(appserver|balancer)-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})Z(?:\.qcow2)?$/.exec(name);
  if (!m) return null;
  const built = new Date(`${m[3]}-${m[4]}-${m[5]}T${m[6]}:${m[7]}:00Z`);
  if (Number.isNaN(built.getTime())) return null;
  return { name: name.replace(/\.qcow2$/, ''), nodeset: m[1]!, role: m[2]!, built: built.toISOString() };
}
