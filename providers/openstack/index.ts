import type { ProviderConfig } from '../../src/nodeset/types.js';
import type { Provider } from '../../src/provider.js';
import type { StateDir } from '../../src/state.js';
import { NovaProvider, type Tuning } from './nova.js';
import { openstackSettings } from './settings.js';

/**
 * The `openstack` provider: Nova servers through pkgcloud (loaded on first use), Keystone v3
 * password authentication scoped to a project. Admin user: `debian` (Debian cloud images).
 */
export function createProvider(config: ProviderConfig, _state: StateDir, tuning: Tuning = {}): Provider {
  return new NovaProvider(openstackSettings(config), tuning);
}

export { NovaProvider, type Tuning } from './nova.js';
export { openstackSettings } from './settings.js';
