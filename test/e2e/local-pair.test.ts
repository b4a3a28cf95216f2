import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onNode, silver } from '../helpers/cli.js';
import { httpGet, startProbe } from '../helpers/load.js';
import { bringUp, eventually } from '../helpers/nodeset.js';
import { canRunLxc, cleanLeftovers, testProviderConfig } from '../helpers/lxc.js';
import { helloNodeset, helloVersion, versionOf } from '../helpers/hello.js';

// A balancer pair on real containers: keepalived (VRRP v3, unicast, 200 ms adverts) holds the
// virtual address on one balancer; the active one killed (lxc-stop -k) under bounded load, the
// other takes the address; how many requests failed and for how long is reported; the old one
// comes back as backup without taking the address away.

const NODESET = 'silvertest-pair';
const config = testProviderConfig('silvert11', 236);
const VIP = '10.213.236.5';
const run = canRunLxc ? test.serial : test.serial.skip;
const dir = mkdtempSync(join(tmpdir(), 'silver-pair-'));
const env = { SILVER_HOME: join(dir, 'home'), SILVER_PERSIST: '0' };
const file = join(dir, 'pair.conf');
writeFileSync(file, helloNodeset(NODESET, 'pair.test', config).replace('[balancer]\n', `[balancer]\nnodes = 2\nvirtual_address = ${VIP}\n`));
const B = ['balancer1.pair.test', 'balancer2.pair.test'];

const holds = async (node: string) => (await onNode(file, env, node, 'ip -4 -o addr show dev eth0')).out.includes(` ${VIP}/`);
const holder = async () => {
  const h = await Promise.all(B.map(async (b) => ((await holds(b).catch(() => false)) ? b : null)));
  return h.filter((x): x is string => x !== null);
};

test.before(async () => {
  if (!canRunLxc) return;
  await cleanLeftovers(config, [NODESET]);
  await bringUp(file, env);
  const u = await silver(['update', helloVersion(dir, '1'), file], env);
  if (u.code !== 0) throw new Error(u.stderr);
  await eventually('the app answers on the virtual address', async () => (await httpGet(VIP, 'pair.test')).status === 200);
});
test.after.always(async () => {
  if (canRunLxc) await cleanLeftovers(config, [NODESET]);
});

run('plan names the pair; exactly one balancer holds the virtual address, which serves the app; status says which', async (t) => {
  const plan = await silver(['plan', file], env);
  t.regex(plan.stdout, /balancer1\.pair\.test[\s\S]*balancer2\.pair\.test/);
  t.deepEqual((await holder()).length, 1);
  t.regex(versionOf((await httpGet(VIP, 'pair.test')).body), /^1$/);
  const st = await silver(['status', file], env);
  t.regex(st.stdout, new RegExp(`^virtual address ${VIP.replaceAll('.', '\\.')}: held by balancer[12]\\.pair\\.test$`, 'm'));
});

run('the active balancer killed under load: the other takes the address; failures only around the switch; the old one comes back as backup', async (t) => {
  const [active] = await holder();
  t.truthy(active);
  const other = B.find((b) => b !== active)!;
  const probe = startProbe(VIP, 'pair.test');
  await new Promise((r) => setTimeout(r, 2000));
  const killedAt = probe.now();
  spawnSync('lxc-stop', ['-k', '-n', `s-${NODESET}-${active!.replaceAll('.', '-')}`, '-P', '/var/lib/silverlining/lxc']);
  await new Promise((r) => setTimeout(r, 8000));
  const { ok, failures } = await probe.stop();
  const window = failures.length ? `${((Math.max(...failures) - killedAt) / 1000).toFixed(1)} s after the kill` : 'none';
  t.log(`failover: ${failures.length} of ${failures.length + ok} requests failed; the last failure ${window}`);
  t.true(await holds(other), `${other} holds the address`);
  t.true(failures.every((f) => f >= killedAt - 100), 'nothing failed before the kill');
  t.true(ok > 50);
  // Afterwards every request succeeds again.
  for (let i = 0; i < 20; i++) t.is((await httpGet(VIP, 'pair.test')).status, 200);
  // The old one comes back (create-node starts it) as backup: the address stays where it is.
  t.is((await silver(['create-node', file], env)).code, 0);
  await new Promise((r) => setTimeout(r, 4000));
  t.deepEqual(await holder(), [other]);
});
