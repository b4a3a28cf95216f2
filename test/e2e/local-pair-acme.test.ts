import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onNode, silver } from '../helpers/cli.js';
import { ask, httpGet } from '../helpers/load.js';
import { canRunLxc, cleanLeftovers, testProviderConfig } from '../helpers/lxc.js';
import { eventually } from '../helpers/nodeset.js';
import { helloNodeset, versionOf } from '../helpers/hello.js';
import { hasPebble, pebbleCert, startPebble, type Pebble } from '../helpers/pebble.js';

// tls = acme on a balancer pair, on real containers with a real ACME server: Debian's pebble on
// the host's bridge address, pebble-challtestsrv answering every name with the virtual address,
// so each HTTP-01 validation reaches whichever balancer holds it. Each balancer orders its own
// certificate at setup-node (the holder passes the other's validation on to it); the app answers
// over HTTPS through the virtual address, verified against pebble's root; the holder killed
// (lxc-stop -k), the other serves with its own certificate; a rebuilt balancer gets its own
// certificate back from silver's state.

const NODESET = 'silvertest-pairacme';
const config = testProviderConfig('silvert13', 234);
const HOST = '10.213.234.1';
const VIP = '10.213.234.5';
const NAME = 'secure-pair.test';
const PEM = `/etc/haproxy/certs/${NAME}.pem`;
const run = canRunLxc && hasPebble ? test.serial : test.serial.skip;
const dir = mkdtempSync(join(tmpdir(), 'silver-pair-acme-'));
const env = { SILVER_HOME: join(dir, 'home'), SILVER_PERSIST: '0' };
const file = join(dir, 'pair-acme.conf');
const B = ['balancer1.pairacme.test', 'balancer2.pairacme.test'];
let pebble: Pebble | null = null;
let root = '';
/** Each balancer's own certificate (SHA-256 fingerprint, as Node writes it), after setup-node. */
const own: Record<string, string> = {};

writeFileSync(
  file,
  helloNodeset(NODESET, 'pairacme.test', config)
    .replace('locations = http://pairacme.test/ hello', `locations = https://${NAME}/ hello`)
    .replace('[balancer]\n', `[balancer]\nnodes = 2\nvirtual_address = ${VIP}\ntls = acme\nacme_directory = https://${HOST}:14000/dir\nacme_email = ops@${NAME}\nacme_ca_bundle = pebble.crt\n`),
);

/** A request over HTTPS through the virtual address, verified against pebble's root. */
async function https(path = '/'): Promise<{ status: number; body: string; subject: string; fingerprint: string }> {
  // (a new connection each time: a kept one would hide which balancer answers)
  const r = await ask({ tls: true, host: VIP, port: 443, path, servername: NAME, headers: { Host: NAME }, ca: root, agent: false });
  return { status: r.status, body: r.body, subject: r.cert!.subject, fingerprint: r.cert!.fingerprint };
}

const holds = async (node: string) => (await onNode(file, env, node, 'ip -4 -o addr show dev eth0')).out.includes(` ${VIP}/`);
const holder = async () => (await Promise.all(B.map(async (b) => ((await holds(b).catch(() => false)) ? b : null)))).filter((x): x is string => x !== null);
/** The SHA-256 fingerprint of a balancer's certificate for NAME, as Node writes it (AB:CD:...). */
const fingerprint = async (node: string) => (await onNode(file, env, node, `openssl x509 -noout -fingerprint -sha256 -in ${PEM}`)).out.trim().replace(/^.*=/, '');

test.before(async () => {
  if (!canRunLxc) return;
  await cleanLeftovers(config, [NODESET]);
  pebbleCert(dir, HOST);
  const c = await silver(['create-node', file], env);
  if (c.code !== 0) throw new Error(c.stderr);
  // DNS for the ACME server: every name is the virtual address (the pair's holder answers).
  // (management ports of this file's own: the HTTPS e2e may run at the same time)
  pebble = await startPebble(dir, HOST, VIP, { management: 15234, challManagement: 18234 });
});
test.after.always(async () => {
  pebble?.stop();
  if (canRunLxc) await cleanLeftovers(config, [NODESET]);
});

run('setup-node: each balancer of the pair gets a certificate of its own (the holder passes the other\'s validation on); HTTPS through the virtual address verifies against pebble\'s root', async (t) => {
  const s = await silver(['setup-node', file], env);
  t.is(s.code, 0, s.stdout + s.stderr.slice(-3000));
  for (const b of B) t.regex(s.stderr, new RegExp(`${b.replaceAll('.', '\\.')}: balancer: changed: certificates for ${NAME.replaceAll('.', '\\.')} \\(from the ACME server\\)`));
  const u = await silver(['update', join(process.cwd(), 'examples/hello'), file], env);
  t.is(u.code, 0, u.stderr);
  root = pebble!.root();
  t.regex(root, /BEGIN CERTIFICATE/);
  const [active] = await holder();
  t.truthy(active, 'one balancer holds the virtual address');
  for (const b of B) {
    own[b] = await fingerprint(b);
    t.regex(own[b]!, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/, b);
    t.is((await onNode(file, env, b, `stat -c "%a %U" ${PEM}`)).out.trim(), '600 root');
  }
  t.not(own[B[0]!], own[B[1]!], 'two certificates: each balancer ordered its own');
  await eventually('the app answers over HTTPS through the virtual address', async () => (await https()).status === 200);
  const r = await https();
  t.is(r.status, 200, r.body);
  t.regex(versionOf(r.body), /\S/);
  t.regex(r.subject, new RegExp(`DNS:${NAME.replaceAll('.', '\\.')}`));
  t.is(r.fingerprint, own[active!]!, "the holder's own certificate");
  t.is((await httpGet(VIP, NAME, '/x')).status, 301);
  // Each balancer's state kept under its own name, root's alone; status shows both.
  for (const b of B) t.is(statSync(join(env.SILVER_HOME, 'nodesets', NODESET, `tls-state.${b}`)).mode & 0o777, 0o600);
  const st = (await silver(['status', file], env)).stdout;
  for (const b of B) t.regex(st, new RegExp(`^certificates on ${b.replaceAll('.', '\\.')}: ${NAME.replaceAll('.', '\\.')} until \\S.* \\(Pebble Intermediate CA [0-9a-f]+\\)$`, 'm'));
  // The renewal's check passes on both: a validation request at the virtual address reaches each.
  for (const b of B) t.regex((await onNode(file, env, b, '/usr/local/lib/silverlining/bin/silver-acme probe; echo "rc=$?"')).out, /rc=0/, b);
  // A re-run asks the ACME server nothing.
  const again = await silver(['setup-node', file], env);
  t.is(again.code, 0, again.stderr);
  t.notRegex(again.stderr, /certificates for/);
});

run('the holder killed (lxc-stop -k): the other takes the address and HTTPS through it still verifies, with its own certificate', async (t) => {
  const [active] = await holder();
  t.truthy(active);
  const other = B.find((b) => b !== active)!;
  spawnSync('lxc-stop', ['-k', '-n', `s-${NODESET}-${active!.replaceAll('.', '-')}`, '-P', '/var/lib/silverlining/lxc']);
  await eventually(`${other} holds the virtual address`, () => holds(other));
  await eventually('HTTPS answers through the virtual address again', async () => (await https()).status === 200);
  const r = await https();
  t.is(r.status, 200, r.body);
  t.regex(versionOf(r.body), /\S/);
  t.is(r.fingerprint, own[other]!, `${other}'s own certificate, verified against pebble's root`);
  // The killed one back (create-node starts it): it stays backup.
  t.is((await silver(['create-node', file], env)).code, 0);
  await eventually(`${active} answers`, async () => (await onNode(file, env, active!, 'true')).code === 0);
  t.deepEqual(await holder(), [other]);
});

run('a rebuilt balancer of the pair gets its own certificate back from silver\'s state: no ACME order, not the peer\'s', async (t) => {
  const [active] = await holder();
  const rebuilt = B.find((b) => b !== active)!;
  const r = await silver(['replace-node', file, '--node', rebuilt, '-y'], env);
  t.is(r.code, 0, r.stderr.slice(-3000));
  t.regex(r.stderr, new RegExp(`${rebuilt.replaceAll('.', '\\.')}: balancer: changed: certificates for ${NAME.replaceAll('.', '\\.')} \\(from silver's state\\)`));
  t.notRegex(r.stderr, /from the ACME server/);
  t.is(await fingerprint(rebuilt), own[rebuilt]!, 'its own certificate, not the peer\'s');
  t.deepEqual(await holder(), [active], 'the address stayed where it was');
  t.is((await https()).status, 200);
});
