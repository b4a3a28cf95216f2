import test from 'ava';
import { LocalProvider, localSettings } from '../../providers/local/index.js';
import { StateDir } from '../../src/state.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canRunLxc, cleanLeftovers, testProviderConfig } from '../helpers/lxc.js';
import { providerContract } from './contract.js';

const config = testProviderConfig('silvert1', 251);

if (canRunLxc) {
  test.serial.before(async () => cleanLeftovers(config, ['contract-lxc', 'contract-lxc-other']));
  const key = new StateDir(mkdtempSync(join(tmpdir(), 'silver-contract-'))).deployKey();
  providerContract(test, { name: 'local, real LXC', make: async () => new LocalProvider(localSettings(config)), nodeset: 'contract-lxc', authorizedKey: key.public });
} else {
  test.skip('provider contract (local, real LXC): skipped, real containers need root', () => undefined);
}
