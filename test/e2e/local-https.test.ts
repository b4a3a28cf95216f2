import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent as HttpsAgent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onNode, silver } from '../helpers/cli.js';
import { ask, httpGet } from '../helpers/load.js';
import { canRunLxc, cleanLeftovers, testProviderConfig } from '../helpers/lxc.js';
import { eventually } from '../helpers/nodeset.js';
import { helloNodeset, versionOf } from '../helpers/hello.js';
import { hasPebble, pebbleCert, startPebble, type Pebble } from '../helpers/pebble.js';

// HTTPS on real containers with a real ACME server: Debian's pebble on the host's bridge address
// (its own TLS certificate, trusted through acme_ca), pebble-challtestsrv answering its DNS
// questions with the balancer's address, HTTP-01 validated against the balancer's port 80. The
// balancer gets a certificate for the https:// host at setup-node, serves the app over TLS with
// it, redirects plain HTTP, and a re-run asks the ACME server nothing.

const NODESET = 'silvertest-https';
const config = testProviderConfig('silvert10', 237);
const HOST = '10.213.237.1';
const run = canRunLxc && hasPebble ? test.serial : test.serial.skip;
const dir = mkdtempSync(join(tmpdir(), 'silver-https-'));
const env = { SILVER_HOME: join(dir, 'home'), SILVER_PERSIST: '0' };
const file = join(dir, 'https.conf');
const BALANCER = 'balancer.https.test';
let pebble: Pebble | null = null;
let addr: Record<string, string> = {};
let root = '';

writeFileSync(
  file,
  helloNodeset(NODESET, 'https.test', config)
    .replace('locations = http://https.test/ hello', 'locations = https://secure.test/ hello')
    .replace('[balancer]\n', `[balancer]\ntls = acme\nhsts = 300\nacme_directory = https://${HOST}:14000/dir\nacme_email = ops@secure.test\nacme_ca_bundle = pebble.crt\n`),
);

async function https(path = '/', servername = 'secure.test'): Promise<{ status: number; body: string; subject: string; issuer: string }> {
  const r = await ask({ tls: true, host: addr[BALANCER], port: 443, path, servername, headers: { Host: servername }, ca: root });
  return { status: r.status, body: r.body, subject: r.cert!.subject, issuer: r.cert!.issuer };
}

test.before(async () => {
  if (!canRunLxc) return;
  await cleanLeftovers(config, [NODESET]);
  pebbleCert(dir, HOST);
  const c = await silver(['create-node', file], env);
  if (c.code !== 0) throw new Error(c.stderr);
  const nodes = JSON.parse((await silver(['list-nodes', file, '--json'], env)).stdout) as { name: string; address: string }[];
  addr = Object.fromEntries(nodes.map((n) => [n.name, n.address]));
  // DNS for the ACME server: every name is the balancer.
  pebble = await startPebble(dir, HOST, addr[BALANCER]!, { management: 15000, challManagement: 18055 });
});
test.after.always(async () => {
  pebble?.stop();
  if (canRunLxc) await cleanLeftovers(config, [NODESET]);
});

run('setup-node gets a certificate from the ACME server (HTTP-01 on the balancer); the app is served over TLS with it, plain HTTP redirects; a re-run asks nothing', async (t) => {
  const s = await silver(['setup-node', file], env);
  t.is(s.code, 0, s.stdout + s.stderr.slice(-3000));
  t.regex(s.stderr, /balancer\.https\.test: balancer: changed: certificates for secure\.test \(from the ACME server\)/);
  const u = await silver(['update', join(process.cwd(), 'examples/hello'), file], env);
  t.is(u.code, 0, u.stderr);
  root = pebble!.root();
  t.regex(root, /BEGIN CERTIFICATE/);
  await eventually('the app answers over HTTPS', async () => (await https()).status === 200);
  const r = await https();
  t.is(r.status, 200, r.body);
  t.regex(versionOf(r.body), /\S/);
  t.regex(r.subject, /DNS:secure\.test/);
  t.regex(r.issuer, /Pebble/i);
  const plain = await httpGet(addr[BALANCER]!, 'secure.test', '/x?y=1');
  t.is(plain.status, 301);
  t.regex((await silver(['status', file], env)).stdout, /^certificates: secure\.test until \S.* \(Pebble Intermediate CA [0-9a-f]+\)$/m);
  const key = await onNode(file, env, BALANCER, 'stat -c "%a %U" /etc/haproxy/certs/secure.test.pem');
  t.is(key.out.trim(), '600 root');
  const again = await silver(['setup-node', file], env);
  t.is(again.code, 0, again.stderr);
  t.notRegex(again.stderr, /certificates for/);
  // (the re-run above takes the app's health check the update recorded; the next one is a no-op)
  const third = await silver(['setup-node', file], env);
  t.regex(third.stdout, /balancer\.https\.test\s+balancer\s+unchanged/, third.stderr);
  // The renewal timer is on; a run now keeps the certificate (not within 30 days of its end).
  t.is((await onNode(file, env, BALANCER, 'systemctl is-enabled silver-acme.timer')).out.trim(), 'enabled');
  const before = (await onNode(file, env, BALANCER, 'sha256sum /etc/haproxy/certs/secure.test.pem')).out;
  const renew = await onNode(file, env, BALANCER, '/usr/local/lib/silverlining/bin/silver-acme run; echo "rc=$?"');
  t.regex(renew.out, /rc=0/);
  t.is((await onNode(file, env, BALANCER, 'sha256sum /etc/haproxy/certs/secure.test.pem')).out, before);
  t.is(readFileSync(join(dir, 'pebble.crt'), 'utf8').length > 0, true);
});

run("a rebuilt balancer gets the account and certificate silver kept: no new ACME order, the same certificate", async (t) => {
  const sum = async () => (await onNode(file, env, BALANCER, 'sha256sum < /etc/haproxy/certs/secure.test.pem')).out.trim();
  const before = await sum();
  const r = await silver(['replace-node', file, '--node', BALANCER, '-y'], env);
  t.is(r.code, 0, r.stderr.slice(-3000));
  t.regex(r.stderr, /balancer\.https\.test: balancer: changed: certificates for secure\.test \(from silver's state\)/);
  t.notRegex(r.stderr, /from the ACME server/);
  t.is(await sum(), before, 'the same certificate');
  await eventually('the app answers over HTTPS on the rebuilt balancer', async () => (await https()).status === 200);
  t.is((await onNode(file, env, BALANCER, 'stat -c "%a %U" /etc/haproxy/certs/secure.test.pem')).out.trim(), '600 root');
});

run('a renewal (silver-acme run --force) replaces the certificate under HTTPS load with zero failed requests', async (t) => {
  const agent = new HttpsAgent({ keepAlive: true, maxSockets: 4 });
  const seen = new Map<string, number>();
  const failures: string[] = [];
  let total = 0;
  let stopping = false;
  const deadline = Date.now() + 120_000;
  const worker = async () => {
    while (!stopping && Date.now() < deadline && total < 50_000) {
      try {
        const r = await ask({ tls: true, host: addr[BALANCER], port: 443, path: '/', servername: 'secure.test', headers: { Host: 'secure.test' }, ca: root, agent });
        if (r.status !== 200) failures.push(`${r.status}`);
        else if (r.cert?.fingerprint) seen.set(r.cert.fingerprint, (seen.get(r.cert.fingerprint) ?? 0) + 1);
      } catch (e) {
        failures.push((e as Error).message);
      }
      total++;
    }
  };
  const workers = Array.from({ length: 4 }, worker);
  const sum = async () => (await onNode(file, env, BALANCER, 'sha256sum < /etc/haproxy/certs/secure.test.pem')).out.trim();
  const before = await sum();
  await new Promise((r) => setTimeout(r, 1000));
  const renew = await onNode(file, env, BALANCER, '/usr/local/lib/silverlining/bin/silver-acme run --force; echo "rc=$?"');
  // (the old haproxy closes its kept connections after their answers: the clients connect anew and get the new certificate)
  await new Promise((r) => setTimeout(r, 3000));
  stopping = true;
  await Promise.all(workers);
  agent.destroy();
  t.regex(renew.out, /rc=0/);
  t.regex(renew.out, /haproxy reloaded with the new certificates/);
  t.not(await sum(), before, 'a new certificate');
  t.is(failures.length, 0, `failed requests: ${failures.slice(0, 5).join(' | ')} of ${total}`);
  t.true(total > 20, `requests: ${total}`);
  t.true(seen.size >= 2, `the old certificate, then the new one, served: ${[...seen.values()].join(', ')}`);
  // silver's state takes the new one at the next setup-node (a rebuilt balancer gets it back).
  t.is((await silver(['setup-node', file], env)).code, 0);
});

run('tls = FILE: a certificate the deployer made is served instead (its key never printed); plain HTTP still redirects', async (t) => {
  // A CA of the test's own, and a certificate for secure.test signed by it.
  const sh = (cmd: string) => {
    const r = spawnSync('sh', ['-c', cmd], { cwd: dir });
    if (r.status !== 0) throw new Error(r.stderr.toString());
  };
  sh('openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=silver test CA" -keyout ca.key -out ca.crt 2>/dev/null');
  sh('openssl req -newkey rsa:2048 -nodes -subj /CN=secure.test -keyout site.key -out site.csr 2>/dev/null');
  sh('printf "subjectAltName=DNS:secure.test\\n" > san.ext && openssl x509 -req -in site.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out site.crt 2>/dev/null');
  sh('cat site.crt site.key > given.pem');
  const key = readFileSync(join(dir, 'site.key'), 'utf8').split('\n')[1]!;
  writeFileSync(file, readFileSync(file, 'utf8').replace(/tls = acme\nhsts = 300\nacme_directory = .*\nacme_email = .*\nacme_ca_bundle = .*\n/, 'tls = given.pem\n'));
  const plan = await silver(['plan', file, '--json'], env);
  t.is(plan.code, 0, plan.stderr);
  const s = await silver(['setup-node', file], env);
  t.is(s.code, 0, s.stderr.slice(-2000));
  for (const out of [plan.stdout, plan.stderr, s.stdout, s.stderr]) t.false(out.includes(key), 'the key is in no output');
  root = readFileSync(join(dir, 'ca.crt'), 'utf8');
  await eventually('the given certificate is served', async () => (await https()).issuer === 'silver test CA');
  const r = await https();
  t.is(r.status, 200);
  t.regex(r.subject, /DNS:secure\.test/);
  t.is((await httpGet(addr[BALANCER]!, 'secure.test')).status, 301);
  t.is((await onNode(file, env, BALANCER, 'systemctl is-enabled silver-acme.timer 2>/dev/null; true')).out.trim(), 'disabled', 'no ACME renewal for a given certificate');
});
