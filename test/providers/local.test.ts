import test from 'ava';
import { LocalProvider, localSettings } from '../../providers/local/index.js';
import { StateDir } from '../../src/state.js';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import ssh2 from 'ssh2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canRunLxc, cleanLeftovers, testProviderConfig } from '../helpers/lxc.js';
import { providerContract } from './contract.js';

const config = testProviderConfig('silvert1', 251);

if (canRunLxc) {
  test.serial.before(async () => cleanLeftovers(config, ['contract-lxc', 'contract-lxc-other']));
  const key = new StateDir(mkdtempSync(join(tmpdir(), 'silver-contract-'))).deployKey();
  providerContract(test, { name: 'local, real LXC', make: async () => new LocalProvider(localSettings(config)), nodeset: 'contract-lxc', authorizedKey: key.public });

  test.serial('attack (local, real LXC): a container name two nodesets share never destroys the other\'s node; an unlabelled leftover of a killed create is made again', async (t) => {
    const p = new LocalProvider(localSettings(config));
    const flavor = (await p.listSizes())[0]!;
    const image = await p.resolveImage(null);
    const make = (nodeset: string, name: string) => p.create({ labels: { nodeset, role: 'appserver', name, index: 1 }, flavor, image, authorizedKey: key.public, hostKey: ssh2.utils.generateKeyPairSync('ed25519') });
    t.teardown(async () => {
      for (const ns of ['contract-lxc', 'contract-lxc-other']) for (const n of await p.list(ns)) await p.destroy(n);
    });
    // `contract-lxc` + `other-app1.x.test` and `contract-lxc-other` + `app1.x.test`: one container name.
    const first = await make('contract-lxc', 'other-app1.x.test');
    await t.throwsAsync(make('contract-lxc-other', 'app1.x.test'), { message: /already holds node other-app1\.x\.test of nodeset contract-lxc: not destroyed/ });
    t.deepEqual((await p.list('contract-lxc')).map((n) => [n.name, n.state]), [['other-app1.x.test', 'running']]);
    t.deepEqual(await p.list('contract-lxc-other'), []);
    // A create killed before its labels: an unlabelled container of the name, started again.
    const file = join(localSettings(config).lxcPath, first.node.id, 'config');
    writeFileSync(file, readFileSync(file, 'utf8').split('\n').filter((l) => !l.startsWith('# silver-label ')).join('\n'));
    t.deepEqual(await p.list('contract-lxc'), [], 'unlabelled: no node');
    const again = await make('contract-lxc', 'other-app1.x.test');
    t.is(again.node.id, first.node.id);
    t.deepEqual((await p.list('contract-lxc')).map((n) => n.name), ['other-app1.x.test']);
  });
} else {
  test.skip('provider contract (local, real LXC): skipped, real containers need root', () => undefined);
  test.skip('attack (local, real LXC): a shared container name, an unlabelled leftover: skipped, real containers need root', () => undefined);
}
