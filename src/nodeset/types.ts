import type { Access } from './access.js';
import type { BatchEntry } from './rollout.js';
import type { Secret } from '../secret.js';

export type Role = 'appserver' | 'balancer' | `service:${string}`;

export type Size = { kind: 'ram'; mb: number } | { kind: 'id'; id: string };

export interface NodeSpec {
  name: string;
  role: Role;
  /** 1-based index inside its tier. */
  index: number;
  /** null: the provider's default size. */
  size: Size | null;
  /** The tier's own image (`image =` in [appserver] or [balancer]); absent: the provider's. */
  image?: string;
}

export interface Location {
  /** Normalised URL: scheme, host, optional port, path ending in `/`. */
  url: string;
  scheme: 'http' | 'https';
  host: string;
  port: number | null;
  path: string;
  app: string;
}

export type ProviderType = 'local' | 'ec2' | 'openstack' | 'rackspace' | 'kvm';

export interface ProviderConfig {
  type: ProviderType;
  /** The `[provider:NAME]` of the user's config this came from, if any. */
  name: string | null;
  /** Every other setting, secrets wrapped so they never print. */
  settings: Record<string, string | Secret>;
  /** The nodeset has no [provider]: the local one, by default (silver warns). */
  implicit?: true;
}

export interface Nodeset {
  name: string;
  file: string;
  baseDomain: string | null;
  setEtcHosts: boolean;
  provider: ProviderConfig;
  loadBalancer: boolean;
  nodes: NodeSpec[];
  locations: Location[];
  /** Host names the balancer answers for. */
  hostnames: string[];
  /** Services the nodeset runs, by name (`mysql`, `postgresql`). */
  services: string[];
  /** Scheduled backups by service (`backup =` of its section); absent: none. */
  backupSchedules?: Record<string, BackupSchedule>;
  /** HTTPS on the balancer (`tls =` in [balancer]; absent: off). */
  tls?: TlsSettings;
  /** A balancer pair's shared address (`virtual_address`, with nodes = 2); absent: one balancer. */
  virtualAddress?: string;
  /** People's public keys ([access]): deployers log in as the deploy user, admins as root. */
  access?: Access;
  /** `[appserver] rollout`: the batches app servers activate in; absent: one at a time. */
  rollout?: BatchEntry[];
}

export const DEFAULT_ACME_DIRECTORY = 'https://acme-v02.api.letsencrypt.org/directory';

/** The balancer's TLS: certificates for its host names from an ACME server, or one given file. */
export interface TlsSettings {
  mode: 'acme' | 'file';
  hosts: string[];
  /** Strict-Transport-Security max-age (null: not sent). */
  hsts: number | null;
  acme: { directory: string; email: string | null; ca: string | null } | null;
  /** tls = FILE: the chain and the key (a secret: prints as [REDACTED]). */
  pem: Secret | null;
}

/** A systemd timer on the service node: when (an OnCalendar expression) and how many dumps each app keeps. */
export interface BackupSchedule {
  calendar: string;
  keep: number;
}

export function formatSize(size: Size | null): string | null {
  if (!size) return null;
  return size.kind === 'ram' ? `ram ${size.mb}MB` : `id ${size.id}`;
}
