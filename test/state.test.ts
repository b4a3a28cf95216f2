import test from 'ava';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StateDir } from '../src/state.js';

// The ACME state silver keeps: one for the nodeset (a pair shares one certificate); the files of
// earlier releases (each balancer its own, or one unnamed) are read until it has one, then removed.

test('one tls state, 0600; the files of earlier releases are read until there is one, then removed', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'silver-tls-state-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const state = new StateDir(root);
  t.is(state.tlsState('ns'), null);
  const dir = join(root, 'nodesets', 'ns');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'tls-state.balancer2.p.test'), 'VFdP\n');
  writeFileSync(join(dir, 'tls-state.balancer1.p.test'), 'T05F\n');
  t.is(state.tlsState('ns'), 'T05F', "a balancer's own of an earlier release (the first)");
  writeFileSync(join(dir, 'tls-state'), 'T0xE\n');
  t.is(state.tlsState('ns'), 'T0xE');
  state.keepTlsState('ns', 'TkVX\n');
  t.is(state.tlsState('ns'), 'TkVX');
  t.deepEqual(readdirSync(dir).filter((f) => f.startsWith('tls-state')), ['tls-state'], 'the older files are gone');
  t.is(statSync(join(dir, 'tls-state')).mode & 0o777, 0o600);
  t.is(state.tlsState('other'), null);
});

test('the pair key: made once, kept, private half 0600', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'silver-state-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const state = new StateDir(root);
  const k = state.acmePeerKey('ns');
  t.regex(k.public, /^ssh-ed25519 \S+ silver-acme-ns$/);
  t.deepEqual(state.acmePeerKey('ns'), k);
  t.is(statSync(join(root, 'nodesets', 'ns', 'acme-peer_ed25519')).mode & 0o777, 0o600);
  t.notDeepEqual(state.backupKey('ns'), k);
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
