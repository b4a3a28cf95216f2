import test from 'ava';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onNode, silver, silverInput } from '../helpers/cli.js';
import { helloNodeset, helloVersion } from '../helpers/hello.js';
import { httpGet, startLoad } from '../helpers/load.js';
import { canRunLxc, cleanLeftovers, testProviderConfig } from '../helpers/lxc.js';
import { bringUp } from '../helpers/nodeset.js';

// Day two on real containers: settings and secrets rolled out under load (and a bad one rolled
// back), one-off commands in the app's environment, logs merged and followed across an update,
// the deploy history — and no secret in any output or journal.

const NODESET = 'silvertest-daytwo';
const DOMAIN = 'daytwo.test';
const config = testProviderConfig('silvert12', 235);
const run = canRunLxc ? test.serial : test.serial.skip;
const dir = mkdtempSync(join(tmpdir(), 'silver-daytwo-'));
const env = { SILVER_HOME: join(dir, 'home') };
const file = join(dir, 'daytwo.conf');
writeFileSync(file, helloNodeset(NODESET, DOMAIN, config));
const A1 = `app1.${DOMAIN}`;
const A2 = `app2.${DOMAIN}`;
const NODES = [A1, A2, `db.${DOMAIN}`, `balancer.${DOMAIN}`];
// A greeting that is a secret too: quotes, a dollar, a command substitution, non-ASCII — and long
// enough to be found anywhere it leaks.
const GREETING = `Grüß "dich" $(id) it's-zq7Secret`;
const sha = (t: string) => createHash('sha256').update(t).digest('hex');
let balancer = '';
const outputs: string[] = [];
const keep = <T extends { stdout: string; stderr: string }>(r: T): T => (outputs.push(r.stdout, r.stderr), r);

test.before(async () => {
  if (!canRunLxc) return;
  await cleanLeftovers(config, [NODESET]);
  const addr = await bringUp(file, env);
  balancer = addr[`balancer.${DOMAIN}`]!;
  const u = keep(await silver(['update', helloVersion(dir, '1'), file], env));
  if (u.code !== 0) throw new Error(u.stderr);
});
test.after.always(async () => {
  if (canRunLxc) await cleanLeftovers(config, [NODESET]);
});

run('env set KEY=- rolls the setting out under load with zero failed requests; list shows a fingerprint, never the value', async (t) => {
  const load = startLoad(balancer, DOMAIN, { classify: (b) => b.split(' from ')[0]! });
  const r = keep(await silverInput(['env', 'set', 'hello', file, 'HELLO_GREETING=-', '--json'], `${GREETING}\n`, env));
  await new Promise((res) => setTimeout(res, 1000));
  const result = await load.stop();
  t.is(r.code, 0, r.stderr);
  t.is(result.failed, 0, `failed requests: ${result.failures.join(' | ')}`);
  t.true((result.bodies.get(GREETING) ?? 0) > 0, `served: ${[...result.bodies.keys()].join(' | ')}`);
  t.true((await httpGet(balancer, DOMAIN)).body.startsWith(`${GREETING} from `));
  const list = keep(await silver(['env', 'list', 'hello', file, '--json'], env));
  const settings = (JSON.parse(list.stdout) as { settings: { key: string; fingerprint: string }[] }).settings;
  t.deepEqual(settings.map((s) => s.key), ['HELLO_GREETING']);
  t.regex(settings[0]!.fingerprint, /^[0-9a-f]{12}$/);
  // The environment file: root's, readable by the app's user alone.
  t.is((await onNode(file, env, A1, 'stat -c "%a %U %G" /var/lib/silverlining/apps/hello/active/env')).out.trim(), '640 root app-hello');
});

run("a value that stops the app is rolled back: zero failed requests, every app server on its previous instance and settings", async (t) => {
  const before = (JSON.parse((await silver(['status', file, '--json'], env)).stdout) as { apps: { active: string }[] }).apps.map((a) => a.active);
  const load = startLoad(balancer, DOMAIN, { classify: (b) => b.split(' from ')[0]! });
  const r = keep(await silver(['env', 'set', 'hello', file, 'HELLO_DB_TIMEOUT=soon', '--json'], env));
  const result = await load.stop();
  t.is(r.code, 1, r.stdout);
  const report = JSON.parse(r.stdout) as { ok: boolean; failure: { node: string }; rolledBack: string[] };
  t.false(report.ok);
  t.is(result.failed, 0, `failed requests: ${result.failures.join(' | ')}`);
  const after = (JSON.parse((await silver(['status', file, '--json'], env)).stdout) as { apps: { active: string }[] }).apps.map((a) => a.active);
  t.deepEqual(after, before);
  t.true((await httpGet(balancer, DOMAIN)).body.startsWith(`${GREETING} from `));
  t.deepEqual((JSON.parse((await silver(['env', 'list', 'hello', file, '--json'], env)).stdout) as { settings: { key: string }[] }).settings.map((s) => s.key), ['HELLO_GREETING']);
});

run("run: a command as the app's user with its environment and settings, its exit code passed through, input piped", async (t) => {
  const r = await silver(['run', 'hello', file, '--', 'sh', '-c', 'id -un; echo "$CONFIG_PG_HOST"; printf %s "$HELLO_GREETING" | sha256sum; pwd; exit 7'], env);
  t.is(r.code, 7, r.stderr);
  const [user, host, sum, cwd] = r.stdout.trim().split('\n');
  t.is(user, 'app-hello');
  t.is(host, `db.${DOMAIN}`);
  t.is(sum!.split(' ')[0], sha(GREETING), 'the setting arrives whole, byte for byte');
  t.regex(cwd!, /^\/var\/lib\/silverlining\/apps\/hello\/instances\/hello\.[\d-]+_\d{3}\/app$/);
  const piped = await silverInput(['run', 'hello', file, '--node', A2, '--', 'sh', '-c', 'cat; hostname'], 'from stdin\n', env);
  t.is(piped.code, 0, piped.stderr);
  t.is(piped.stdout, `from stdin\n${A2}\n`);
  // The app's files folder outlives instances.
  t.is((await silver(['run', 'hello', file, '--', 'sh', '-c', 'echo kept > "$CONFIG_FILES/note"; echo cached > "$SILVER_CACHE/c"'], env)).code, 0);
  // attack: what an app leaves in /dev/shm or System V shared memory, open to all, is its own alone
  // (no other app on the node reaches it, nor fills a tmpfs they share); its files are its own.
  const sb = await silver(['run', 'hello', file, '--node', A1, '--', 'sh', '-c', 'umask; echo x > /dev/shm/planted; chmod 666 /dev/shm/planted; ipcmk -M 4096 -p 666 > /dev/null && echo ipc; ls /dev/shm'], env);
  t.is(sb.stdout, '0077\nipc\nplanted\n', sb.stderr);
  const node = await silver(['exec', file, '--node', A1, '--', 'sh', '-c', 'ls /dev/shm | grep -c planted; ipcs -m | grep -c app-hello; systemctl show -p UMask -p PrivateIPC "silver-hello.*.service" | sort -u'], env);
  const said = node.stdout.split('\n').filter((l) => l.startsWith(`${A1}: `)).map((l) => l.slice(A1.length + 2));
  t.deepEqual(said, ['0', '0', 'PrivateIPC=yes', 'UMask=0077'], 'the node has neither; the active instance runs in the same sandbox');
});

run('logs: both app servers merged with node and instance; -f follows across an update and ends cleanly on Ctrl-C', async (t) => {
  for (let i = 0; i < 6; i++) await httpGet(balancer, DOMAIN, `/page-${i}`);
  const once = await silver(['logs', 'hello', file, '-n', '200', '--json'], env);
  t.is(once.code, 0, once.stderr);
  const lines = once.stdout.trim().split('\n').map((l) => JSON.parse(l) as { node: string; source: string; message: string; time: number });
  t.deepEqual([...new Set(lines.filter((l) => /^GET \/page-/.test(l.message)).map((l) => l.node))].sort(), [A1, A2]);
  t.true(lines.every((l, i) => i === 0 || l.time >= lines[i - 1]!.time), 'in time order');
  t.true(lines.some((l) => /^hello\.[\d-]+_\d{3}$/.test(l.source)));

  const follower = spawn(process.execPath, ['bin/silver.js', 'logs', 'hello', file, '-f', '-n', '1'], { env: { ...process.env, SILVER_PERSIST: '0', ...env } });
  let followed = '';
  follower.stdout.on('data', (d: Buffer) => (followed += d.toString()));
  const ended = new Promise<number | null>((res) => follower.on('exit', (code) => res(code)));
  await new Promise((res) => setTimeout(res, 4000));
  const u = keep(await silver(['update', helloVersion(dir, '2'), file, '--json'], env));
  t.is(u.code, 0, u.stderr);
  const inst = (JSON.parse(u.stdout) as { instance: string }).instance;
  for (let i = 0; i < 8; i++) await httpGet(balancer, DOMAIN, '/after-update');
  await new Promise((res) => setTimeout(res, 3000));
  follower.kill('SIGINT');
  t.is(await ended, 0, 'Ctrl-C ends it cleanly');
  const fresh = followed.split('\n').filter((l) => l.includes(inst) && l.endsWith('GET /after-update'));
  t.deepEqual([...new Set(fresh.map((l) => l.split(' ')[2]))].sort(), [A1, A2], `followed:\n${followed.slice(-2000)}`);
  for (const n of [A1, A2]) t.is((await onNode(file, env, n, 'pgrep -c journalctl || true')).out.trim(), '0', `${n}: no journalctl left behind`);
  // The app's files folder outlived the update; the cache was kept too.
  t.is((await silver(['run', 'hello', file, '--', 'sh', '-c', 'cat "$CONFIG_FILES/note" "$SILVER_CACHE/c"'], env)).stdout, 'kept\ncached\n');
  const cleared = keep(await silver(['update', helloVersion(dir, '3'), file, '--clear-cache'], env));
  t.is(cleared.code, 0, cleared.stderr);
  t.is((await silver(['run', 'hello', file, '--', 'sh', '-c', 'cat "$CONFIG_FILES/note"; ls -A "$SILVER_CACHE" | wc -l'], env)).stdout, 'kept\n0\n');
  // silver's own steps, under one identifier on every node.
  const own = await silver(['logs', 'silver', file, '-n', '500'], env);
  t.regex(own.stdout, new RegExp(`${A1.replace(/\./g, '\\.')} silverlining: switch(-stop)? hello ${inst.replace(/\./g, '\\.')}`));
});

run('history: every update (a failed one too), the env changes (the failed one too) and a rollback, with who, version and result', async (t) => {
  // A version that cannot start (a syntax error): the update fails fast and is rolled back.
  const broken = helloVersion(dir, '4', { 'app.py': 'this is not python\n' });
  const failed = keep(await silver(['update', broken, file], env));
  t.is(failed.code, 1, failed.stdout);
  t.regex(failed.stderr, /exits at start-up/);
  const rb = keep(await silver(['rollback', 'hello', file], env));
  t.is(rb.code, 0, rb.stderr);
  const h = keep(await silver(['history', file, 'hello', '--json'], env));
  t.is(h.code, 0, h.stderr);
  const entries = JSON.parse(h.stdout) as { kind: string; result: string; who: string; version?: string; detail?: string }[];
  t.deepEqual(entries.map((e) => `${e.kind} ${e.result.split(' ')[0]}`), ['update ok', 'env ok', 'env failed', 'update ok', 'update ok', 'update failed', 'rollback ok']);
  t.deepEqual(entries.filter((e) => e.kind === 'update').map((e) => e.version), ['1', '2', '3', '4']);
  t.is(entries[1]!.detail, 'HELLO_GREETING');
  t.true(entries.every((e) => /^[^@]+@.+$/.test(e.who)));
  const text = keep(await silver(['history', file], env));
  t.regex(text.stdout, /env hello .*HELLO_DB_TIMEOUT: failed at /);
});

run('no secret in any output of silver, in --json, or in any journal of any node', async (t) => {
  keep(await silver(['status', file, '--json'], env));
  keep(await silver(['status', file], env));
  const password = (await onNode(file, env, `db.${DOMAIN}`, 'cat /var/lib/silverlining/services/postgresql/hello.password')).out.trim();
  t.regex(password, /^[A-Za-z0-9]{20,}$/);
  const all = outputs.join('\n');
  t.false(all.includes('zq7Secret'), 'the setting');
  t.false(all.includes(password), 'the database password');
  for (const n of NODES) {
    const j = await onNode(file, env, n, 'journalctl --no-pager -q -o cat | grep -c -e zq7Secret -e "$(cat /var/lib/silverlining/services/postgresql/hello.password 2>/dev/null || echo no-password-here)" || true');
    t.is(j.out.trim(), '0', `${n}: a secret in the journal`);
  }
});

/** Logs in with a key of its own as USER@address and runs COMMAND: the exit code and output (BatchMode: no password, no question). */
function sshAs(key: string, user: string, address: string, command: string): { code: number; out: string } {
  const r = spawnSync('ssh', ['-i', key, '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=10', '-o', 'LogLevel=ERROR', `${user}@${address}`, command], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status ?? 1, out: `${r.stdout}${r.stderr}` };
}

run("[access]: a deployer's key logs in as the deploy user, an admin's as root; taken out of the nodeset, neither logs in again, and a key the deployer planted does not keep access", async (t) => {
  const keys = Object.fromEntries(['ann', 'ops', 'planted'].map((k) => {
    const path = join(dir, k);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', k, '-f', path]);
    return [k, path];
  }));
  const plain = helloNodeset(NODESET, DOMAIN, config);
  writeFileSync(file, `${plain}[access]\ndeployers = ann.pub\nadmins = ops.pub\n`);
  const given = keep(await silver(['setup-node', file], env));
  t.is(given.code, 0, given.stdout + given.stderr);
  const nodes = JSON.parse((await silver(['list-nodes', file, '--json'], env)).stdout) as { name: string; address: string }[];
  const a1 = nodes.find((n) => n.name === A1)!.address;
  t.deepEqual(sshAs(keys.ann!, 'silver', a1, 'id -un'), { code: 0, out: 'silver\n' });
  t.deepEqual(sshAs(keys.ops!, 'root', a1, 'id -un'), { code: 0, out: 'root\n' });
  t.not(sshAs(keys.ann!, 'root', a1, 'true').code, 0, "a deployer's key is not root's");
  // The deployer tries to keep access: a key of their own where sshd would have read it, and
  // silver's file itself.
  const planted = readFileSync(`${keys.planted!}.pub`, 'utf8');
  const plant = sshAs(keys.ann!, 'silver', a1, `{ mkdir -p ~/.ssh && printf '%s' '${planted.trim()}' >> ~/.ssh/authorized_keys; } 2>/dev/null && echo planted || echo refused; { mkdir -p ~/.config/systemd/user; } 2>/dev/null && echo UNITS || true; { printf '%s\\n' '${planted.trim()}' >> /etc/silverlining/authorized_keys/silver; } 2>/dev/null && echo WROTE-ROOTS-FILE; true`);
  t.is(plant.out.trim(), 'refused', "the deploy user's home is root's: nothing of the deployer's there");
  // (as a node of an earlier release would have it: the deploy user's own ~/.ssh, with a key and
  // an rc that would run at every later login, silver's own too)
  await onNode(file, env, A1, `mkdir -p /home/silver/.ssh; printf '%s\\n' '${planted.trim()}' > /home/silver/.ssh/authorized_keys; printf 'touch /tmp/silver-rc-ran\\n' > /home/silver/.ssh/rc; chown -R silver /home/silver/.ssh`);
  // A process left running would outlive the key.
  t.is(sshAs(keys.ann!, 'silver', a1, 'setsid sleep 600 > /dev/null 2>&1 < /dev/null & echo left').out.trim(), 'left');
  t.is(sshAs(keys.ann!, 'silver', a1, 'test -e /tmp/silver-rc-ran && echo ran || echo not-run').out.trim(), 'not-run', 'sshd runs no ~/.ssh/rc for the deploy user');
  t.not(sshAs(keys.planted!, 'silver', a1, 'true').code, 0, "a key in the deploy user's own authorized_keys is not read");
  // An app's user (its code, or a deployer through silver run) plants a key in its own home: sshd
  // reads none for the apps' users, so no login and no tunnel into the nodeset's network.
  await onNode(file, env, A1, `h=$(getent passwd app-hello | cut -d: -f6); mkdir -p "$h/.ssh"; printf '%s\\n' '${planted.trim()}' > "$h/.ssh/authorized_keys"; chown -R app-hello "$h/.ssh"`);
  // (refused at authentication — "Permission denied" —, not let in to meet its nologin shell,
  // which would still have let a tunnel through)
  t.regex(sshAs(keys.planted!, 'app-hello', a1, 'true').out, /Permission denied \(publickey/, "an app's user logs in with no key of its own");
  // Taken out: gone from every node at the next setup-node; silver still logs in.
  writeFileSync(file, plain);
  const taken = keep(await silver(['setup-node', file], env));
  t.is(taken.code, 0, taken.stdout + taken.stderr);
  for (const n of nodes) {
    t.not(sshAs(keys.ann!, 'silver', n.address, 'true').code, 0, `${n.name}: the deployer's key`);
    t.not(sshAs(keys.ops!, 'root', n.address, 'true').code, 0, `${n.name}: the admin's key`);
  }
  t.is((await silver(['exec', file, '--', 'true'], env)).code, 0, "silver's own key stays");
  t.is((await onNode(file, env, A1, 'pgrep -u silver -c sleep || true')).out.trim(), '0', "what the deployer left running ended with the key");
  t.is((await onNode(file, env, A1, 'ls -A /home/silver | wc -l')).out.trim(), '0', "what was left in the deploy user's home is gone");
  const again = keep(await silver(['setup-node', file], env));
  t.regex(again.stdout, /no changes|0 changed/);
  // A run killed after it wrote the key file and before it ended the processes: the intent it left
  // on the node ends them at the next run, though the file is as wanted by then.
  writeFileSync(file, `${plain}[access]\ndeployers = ann.pub\n`);
  t.is(keep(await silver(['setup-node', file], env)).code, 0);
  t.is(sshAs(keys.ann!, 'silver', a1, 'setsid sleep 600 > /dev/null 2>&1 < /dev/null & echo left').out.trim(), 'left');
  const annKey = readFileSync(`${keys.ann!}.pub`, 'utf8').trim();
  await onNode(file, env, A1, `grep -vxF '${annKey}' /etc/silverlining/authorized_keys/silver > /root/keys.new; cat /root/keys.new > /etc/silverlining/authorized_keys/silver; rm -f /root/keys.new; : > /var/lib/silverlining/setup/keys-removed`);
  writeFileSync(file, plain);
  const resumed = keep(await silver(['setup-node', file], env));
  t.is(resumed.code, 0, resumed.stdout + resumed.stderr);
  t.regex(resumed.stderr, new RegExp(`${A1.replace(/\./g, '\\.')}: base: changed: ended the deploy user's processes`));
  t.notRegex(resumed.stderr, new RegExp(`${A1.replace(/\./g, '\\.')}: base: changed: /etc/silverlining/authorized_keys/silver`), 'the file was as wanted: the mark alone ended them');
  t.is((await onNode(file, env, A1, 'pgrep -u silver -c sleep || true')).out.trim(), '0');
  t.is((await onNode(file, env, A1, 'test -e /var/lib/silverlining/setup/keys-removed && echo kept || echo gone')).out.trim(), 'gone');
  // What a deployer started as the app's user through silver (a one-off command, which systemd
  // runs apart from the session) ends with a key taken away too.
  const runs = async () => (await onNode(file, env, A1, "systemctl list-units --no-legend 'silver-run-*' | wc -l")).out.trim();
  const long = silver(['run', 'hello', file, '--node', A1, '--', 'sleep', '600'], env, 120_000);
  for (let i = 0; i < 50 && (await runs()) === '0'; i++) await new Promise((r) => setTimeout(r, 200));
  t.is(await runs(), '1', 'the one-off command runs');
  await onNode(file, env, A1, ': > /var/lib/silverlining/setup/keys-removed');
  const stopped = keep(await silver(['setup-node', file], env));
  t.is(stopped.code, 0, stopped.stdout + stopped.stderr);
  t.is(await runs(), '0', 'its unit is gone');
  t.is((await onNode(file, env, A1, 'systemctl is-active silver-oneoff.slice || true')).out.trim(), 'inactive');
  t.is((await onNode(file, env, A1, 'pgrep -u app-hello -c sleep || true')).out.trim(), '0');
  t.not((await long).code, 0, 'the run ended with it');
});
