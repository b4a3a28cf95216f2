import test from 'ava';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StateDir } from '../src/state.js';

// The ACME state silver keeps per balancer (a pair's two each have their own account and
// certificates); the one file of a single balancer from before is read until a balancer has its own.

test('each balancer its own tls state, 0600; the older single file is read for a balancer without one, and removed once it has', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'silver-tls-state-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const state = new StateDir(root);
  t.is(state.tlsState('ns', 'balancer1.p.test'), null);
  const dir = join(root, 'nodesets', 'ns');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'tls-state'), 'T0xE\n');
  t.is(state.tlsState('ns', 'balancer1.p.test'), 'T0xE', 'the older file, for a balancer without its own');
  state.keepTlsState('ns', 'balancer1.p.test', 'T05F\n');
  state.keepTlsState('ns', 'balancer2.p.test', 'VFdP');
  t.is(state.tlsState('ns', 'balancer1.p.test'), 'T05F');
  t.is(state.tlsState('ns', 'balancer2.p.test'), 'VFdP', 'not the peer\'s');
  t.false(existsSync(join(dir, 'tls-state')), 'the older file is gone');
  t.is(state.tlsState('ns', 'balancer3.p.test'), null);
  for (const b of ['balancer1.p.test', 'balancer2.p.test']) t.is(statSync(join(dir, `tls-state.${b}`)).mode & 0o777, 0o600);
});

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
