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
// so each HTTP-01 validation reaches whichever balancer holds it. One certificate for the pair:
// the first balancer orders it at setup-node (the holder passes its validation on when it is the
// other), silver gives the other the same; a renewal on the holder (silver-acme run --force, as
// its timer would when due) is handed to the other over SSH with the pair's key, which may do
// nothing else; the holder killed (lxc-stop -k), the other serves the same certificate; a rebuilt
// balancer gets it back from silver's state and the newer one from its peer, with no ACME order.

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
/** The pair's certificate (SHA-256 fingerprint, as Node writes it): after setup-node, then after the renewal. */
let served = '';

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

run('setup-node: the first balancer orders, the other gets the same certificate; HTTPS through the virtual address verifies against pebble\'s root', async (t) => {
  const s = await silver(['setup-node', file], env);
  t.is(s.code, 0, s.stdout + s.stderr.slice(-3000));
  const name = NAME.replaceAll('.', '\\.');
  t.regex(s.stderr, new RegExp(`${B[0]!.replaceAll('.', '\\.')}: balancer: changed: certificates for ${name} \\(from the ACME server\\)`));
  t.regex(s.stderr, new RegExp(`${B[1]!.replaceAll('.', '\\.')}: balancer: changed: certificates for ${name} \\(from ${B[0]!.replaceAll('.', '\\.')}\\)`));
  t.is((s.stderr.match(/from the ACME server/g) ?? []).length, 1, 'one order');
  const u = await silver(['update', join(process.cwd(), 'examples/hello'), file], env);
  t.is(u.code, 0, u.stderr);
  root = pebble!.root();
  t.regex(root, /BEGIN CERTIFICATE/);
  const [active] = await holder();
  t.truthy(active, 'one balancer holds the virtual address');
  served = await fingerprint(B[0]!);
  t.regex(served, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  t.is(await fingerprint(B[1]!), served, 'the same certificate on both');
  for (const b of B) t.is((await onNode(file, env, b, `stat -c "%a %U" ${PEM}`)).out.trim(), '600 root');
  await eventually('the app answers over HTTPS through the virtual address', async () => (await https()).status === 200);
  const r = await https();
  t.is(r.status, 200, r.body);
  t.regex(versionOf(r.body), /\S/);
  t.regex(r.subject, new RegExp(`DNS:${name}`));
  t.is(r.fingerprint, served);
  t.is((await httpGet(VIP, NAME, '/x')).status, 301);
  // One state for the pair, root's alone; status shows both.
  t.is(statSync(join(env.SILVER_HOME, 'nodesets', NODESET, 'tls-state')).mode & 0o777, 0o600);
  const st = (await silver(['status', file], env)).stdout;
  for (const b of B) t.regex(st, new RegExp(`^certificates on ${b.replaceAll('.', '\\.')}: ${name} until \\S.* \\(Pebble Intermediate CA [0-9a-f]+\\)$`, 'm'));
  // The renewal's check passes on both: a validation request at the virtual address reaches each.
  for (const b of B) t.regex((await onNode(file, env, b, '/usr/local/lib/silverlining/bin/silver-acme probe; echo "rc=$?"')).out, /rc=0/, b);
  // A re-run asks the ACME server nothing and gives nothing.
  const again = await silver(['setup-node', file], env);
  t.is(again.code, 0, again.stderr);
  t.notRegex(again.stderr, /certificates for/);
});

run('a renewal on the holder is handed to the other over SSH: the same new certificate on both; the pair\'s key can do nothing else', async (t) => {
  const [active] = await holder();
  t.truthy(active);
  const other = B.find((b) => b !== active)!;
  const renew = await onNode(file, env, active!, '/usr/local/lib/silverlining/bin/silver-acme run --force; echo "rc=$?"');
  t.regex(renew.out, /rc=0/, renew.out);
  t.regex(renew.out, /the other balancer \(\S+\) says: certificates installed for /);
  const renewed = await fingerprint(active!);
  t.not(renewed, served, 'a new certificate');
  t.is(await fingerprint(other), renewed, 'handed over: the same on the other');
  served = renewed;
  // The timer's run on the other (not the holder, nothing due): no order; its hand-over changes nothing.
  const quiet = await onNode(file, env, other, '/usr/local/lib/silverlining/bin/silver-acme run; echo "rc=$?"');
  t.regex(quiet.out, /rc=0/, quiet.out);
  t.notRegex(quiet.out, /installed|reloaded/);
  t.is(await fingerprint(active!), served);
  // With the pair's key, whatever is asked runs the import (which takes no shell command) and nothing else.
  const ssh = 'ssh -T -i /etc/silverlining/acme-peer.key -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=/etc/silverlining/acme-peer.known -o GlobalKnownHostsFile=/dev/null';
  const peerAddr = (await onNode(file, env, active!, 'sed -n "s/^peer //p" /etc/silverlining/acme.conf')).out.trim();
  const attempt = await onNode(file, env, active!, `echo id | ${ssh} silver-acme@${peerAddr} 'id; touch /tmp/pwned' 2>&1; ${ssh} silver-acme@${peerAddr} -L 9999:127.0.0.1:22 true 2>&1 < /dev/null; true`);
  t.notRegex(attempt.out, /uid=/);
  t.regex(attempt.out, /silver-acme: /, 'the import answered, refusing its input');
  t.is((await onNode(file, env, other, 'ls /tmp/pwned 2>&1; true')).out.includes('No such file'), true);
  // From another address the key is refused outright (a copy of it tried from an app server).
  const key = (await onNode(file, env, active!, 'cat /etc/silverlining/acme-peer.key')).out;
  const known = (await onNode(file, env, active!, 'cat /etc/silverlining/acme-peer.known')).out;
  const APP = 'app1.pairacme.test';
  const away = await onNode(file, env, APP, `umask 077; d=$(mktemp -d); printf '%s' '${key}' > $d/k; printf '%s' '${known}' > $d/known; ssh -T -i $d/k -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=$d/known -o GlobalKnownHostsFile=/dev/null silver-acme@${peerAddr} import < /dev/null 2>&1; echo "rc=$?"; rm -rf $d`);
  t.regex(away.out, /Permission denied/, away.out);
  t.regex(away.out, /rc=255/);
  t.is(await fingerprint(other), served);
});

run('the holder killed (lxc-stop -k): the other takes the address and HTTPS through it still verifies, with the same certificate', async (t) => {
  const [active] = await holder();
  t.truthy(active);
  const other = B.find((b) => b !== active)!;
  spawnSync('lxc-stop', ['-k', '-n', `s-${NODESET}-${active!.replaceAll('.', '-')}`, '-P', '/var/lib/silverlining/lxc']);
  await eventually(`${other} holds the virtual address`, () => holds(other));
  await eventually('HTTPS answers through the virtual address again', async () => (await https()).status === 200);
  const r = await https();
  t.is(r.status, 200, r.body);
  t.regex(versionOf(r.body), /\S/);
  t.is(r.fingerprint, served, 'the same certificate, verified against pebble\'s root');
  // The killed one back (create-node starts it): it stays backup.
  t.is((await silver(['create-node', file], env)).code, 0);
  await eventually(`${active} answers`, async () => (await onNode(file, env, active!, 'true')).code === 0);
  t.deepEqual(await holder(), [other]);
});

run('a rebuilt balancer of the pair gets the certificate back from silver\'s state and the newer one from its peer: no ACME order', async (t) => {
  const [active] = await holder();
  const rebuilt = B.find((b) => b !== active)!;
  const r = await silver(['replace-node', file, '--node', rebuilt, '-y'], env);
  t.is(r.code, 0, r.stderr.slice(-3000));
  const node = rebuilt.replaceAll('.', '\\.');
  t.regex(r.stderr, new RegExp(`${node}: balancer: changed: certificates for ${NAME.replaceAll('.', '\\.')} \\(from silver's state\\)`));
  // (silver's state held the first certificate: the renewal happened without silver)
  t.regex(r.stderr, new RegExp(`${node}: balancer: changed: certificates for ${NAME.replaceAll('.', '\\.')} \\(from ${active!.replaceAll('.', '\\.')}\\)`));
  t.notRegex(r.stderr, /from the ACME server/);
  t.is(await fingerprint(rebuilt), served, 'the same certificate as its peer');
  t.deepEqual(await holder(), [active], 'the address stayed where it was');
  t.is((await https()).status, 200);
});
