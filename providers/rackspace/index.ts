import type { ProviderConfig } from '../../src/nodeset/types.js';
import type { Provider } from '../../src/provider.js';
import type { StateDir } from '../../src/state.js';
import { NovaProvider, type Tuning } from '../openstack/nova.js';
import { configError, httpUrl, networkIds, plain, required, reveal, secret, type CloudSettings } from '../openstack/settings.js';

/**
 * The `rackspace` provider: the openstack adapter with Rackspace's options — pkgcloud's
 * `provider: 'rackspace'`, identity v2.0 with username and API key, a region (DFW, ORD, IAD,
 * LON, SYD, HKG). Admin user: `root`.
 */
export function rackspaceSettings(config: ProviderConfig): CloudSettings {
  const t = 'rackspace';
  const authUrl = httpUrl(t, 'auth_url', plain(config, 'auth_url') ?? 'https://identity.api.rackspacecloud.com').replace(/\/v2\.0$/, '');
  const username = required(t, plain(config, 'username'), 'username', 'your Rackspace user name');
  const apiKey = secret(config, 'api_key', 'secret');
  if (apiKey === null) throw configError(t, 'set api_key (or secret / secret_file): your Rackspace API key');
  const region = required(t, plain(config, 'region'), 'region', 'e.g. DFW, ORD, IAD, LON, SYD or HKG');
  const endpoint = plain(config, 'endpoint');
  return {
    type: t,
    adminUser: 'root',
    authUrl,
    region,
    clientOptions: () => ({ provider: 'rackspace', authUrl, username, apiKey: reveal(apiKey), region, strictSSL: true }),
    secrets: [apiKey],
    endpoint: endpoint ? httpUrl(t, 'endpoint', endpoint) : null,
    image: plain(config, 'image'),
    keyName: plain(config, 'key_name'),
    networks: networkIds(config),
  };
}

export function createProvider(config: ProviderConfig, _state: StateDir, tuning: Tuning = {}): Provider {
  return new NovaProvider(rackspaceSettings(config), tuning);
}
