import { ExitError } from '../../src/diagnostics.js';
import type { ProviderConfig } from '../../src/nodeset/types.js';
import type { Secret } from '../../src/secret.js';

/**
 * What the Nova adapter needs to know, from a `[provider]` section. `openstack` and `rackspace`
 * are the same adapter with two option sets (this file's `openstackSettings` and
 * `providers/rackspace/index.ts`).
 */
export interface CloudSettings {
  type: 'openstack' | 'rackspace';
  /** The user the deploy key logs in as on a fresh server. */
  adminUser: string;
  /** The identity service, for messages. */
  authUrl: string;
  region: string | null;
  /**
   * pkgcloud's `compute.createClient` options. The only place secrets are revealed; called once,
   * when the client is made.
   */
  clientOptions(): Record<string, unknown>;
  /** The secrets of these settings, to scrub from every message. */
  secrets: readonly (string | Secret)[];
  /** A compute endpoint that replaces the service catalog's. */
  endpoint: string | null;
  /** The default image, by name or id. */
  image: string | null;
  /** An existing keypair to use instead of importing the deploy key as `silver-<nodeset>`. */
  keyName: string | null;
  /** Network ids to attach new servers to (none: the cloud's default). */
  networks: string[];
}

export function configError(type: string, message: string): ExitError {
  return new ExitError(`${type} provider: ${message}`, 2);
}

/** A plain (non-secret) setting, trimmed; empty means unset. */
export function plain(config: ProviderConfig, key: string): string | null {
  const v = config.settings[key];
  if (typeof v !== 'string') return null;
  return v.trim() || null;
}

/** The first of these settings that is set, as it is (a Secret stays wrapped). */
export function secret(config: ProviderConfig, ...keys: string[]): string | Secret | null {
  for (const key of keys) {
    const v = config.settings[key];
    if (v === undefined) continue;
    if (typeof v === 'string' ? v.trim() : v.reveal().trim()) return v;
  }
  return null;
}

export function reveal(v: string | Secret): string {
  return (typeof v === 'string' ? v : v.reveal()).trim();
}

export function required(type: string, value: string | null, key: string, hint: string): string {
  if (value === null) throw configError(type, `set ${key} (${hint})`);
  return value;
}

export function httpUrl(type: string, key: string, value: string): string {
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `https://${value}`);
  } catch {
    throw configError(type, `${key} must be a URL, got "${value}"`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw configError(type, `${key} must be an http(s) URL, got "${value}"`);
  return url.toString().replace(/\/+$/, '');
}

export function networkIds(config: ProviderConfig): string[] {
  return (plain(config, 'network') ?? '').split(/[\s,]+/).filter(Boolean);
}

/**
 * OpenStack: Keystone v3 password authentication (v2.0 when `auth_url` ends in `/v2.0`),
 * scoped to a project, then Nova from the service catalog of `region`.
 */
export function openstackSettings(config: ProviderConfig): CloudSettings {
  const t = 'openstack';
  let authUrl = httpUrl(t, 'auth_url', required(t, plain(config, 'auth_url'), 'auth_url', 'the Keystone URL, e.g. https://keystone.example.com:5000/v3'));
  // pkgcloud appends /v3/auth/tokens (or /v2.0/tokens) itself.
  let version: 'v3' | 'v2.0' = 'v3';
  const suffix = /\/(v3|v2\.0)$/.exec(authUrl);
  if (suffix) {
    version = suffix[1] === 'v2.0' ? 'v2.0' : 'v3';
    authUrl = authUrl.slice(0, -suffix[0].length);
  }
  const username = required(t, plain(config, 'username'), 'username', 'your OpenStack user name');
  const password = secret(config, 'password', 'secret');
  if (password === null) throw configError(t, 'set password (or secret / secret_file): your OpenStack password');
  const tenant = plain(config, 'tenant');
  const project = plain(config, 'project');
  if (tenant && project && tenant !== project) throw configError(t, `project "${project}" and tenant "${tenant}" name the same thing: set only one`);
  const projectName = project ?? tenant;
  if (version === 'v3' && !projectName) throw configError(t, 'set project (the project the servers belong to; tenant is the older name)');
  const region = plain(config, 'region');
  if (version === 'v3' && !region) throw configError(t, 'set region (the compute region of the service catalog, e.g. RegionOne)');
  const domain = plain(config, 'domain') ?? 'Default';
  const endpoint = plain(config, 'endpoint');
  return {
    type: t,
    adminUser: 'debian',
    authUrl,
    region,
    clientOptions: () => ({
      provider: 'openstack',
      authUrl,
      keystoneAuthVersion: version,
      username,
      password: reveal(password),
      ...(projectName ? { tenantName: projectName } : {}),
      ...(version === 'v3' ? { domainName: domain, projectDomainName: domain } : {}),
      ...(region ? { region } : {}),
      strictSSL: true,
    }),
    secrets: [password],
    endpoint: endpoint ? httpUrl(t, 'endpoint', endpoint) : null,
    image: plain(config, 'image'),
    keyName: plain(config, 'key_name'),
    networks: networkIds(config),
  };
}
