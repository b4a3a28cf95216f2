import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StateDir } from '../src/state.js';

test('pinAll pins many host keys in one write, keeping the ones pinned before', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'silver-state-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const state = new StateDir(root);
  state.pin('shop', 'lb.shop.test', '203.0.113.1', 'ssh-ed25519 AAAAlb root@lb');
  state.pinAll('shop', [
    { name: 'app1.shop.test', address: '203.0.113.2', key: 'ssh-ed25519 AAAA1 root@app1' },
    { name: 'app2.shop.test', address: null, key: 'ssh-ed25519 AAAA2' },
  ]);
  t.deepEqual([...state.pinnedKeys('shop')], [
    ['lb.shop.test', 'ssh-ed25519 AAAAlb'],
    ['app1.shop.test', 'ssh-ed25519 AAAA1'],
    ['app2.shop.test', 'ssh-ed25519 AAAA2'],
  ]);
  t.is(readFileSync(state.knownHostsFile('shop'), 'utf8'), 'lb.shop.test,203.0.113.1 ssh-ed25519 AAAAlb\napp1.shop.test,203.0.113.2 ssh-ed25519 AAAA1\napp2.shop.test ssh-ed25519 AAAA2\n');
});
