import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { containerName, DEFAULTS } from '../../providers/local/config.js';
import { onNode, silver, type CliResult } from '../helpers/cli.js';
import { startLoad } from '../helpers/load.js';
import { bringUp, eventually } from '../helpers/nodeset.js';
import { canRunLxc, cleanLeftovers, testProviderConfig } from '../helpers/lxc.js';
import { helloNodeset, helloVersion, versionOf } from '../helpers/hello.js';

// Crash, interrupt and restart safety on real containers: a node that restarts serves again by
// itself, the balancer follows each app's own health, SIGINT and SIGKILL of silver mid-rollout
// end with one version everywhere after at most one further command.

const NODESET = 'silvertest-rollout';
const config = testProviderConfig('silvert5', 249);
const run = canRunLxc ? test.serial : test.serial.skip;
const dir = mkdtempSync(join(tmpdir(), 'silver-rollout-'));
const env = { SILVER_HOME: join(dir, 'home') };
const file = join(dir, 'rollout.conf');
writeFileSync(file, helloNodeset(NODESET, 'rollout.test', config));
const A1 = 'app1.rollout.test';
const A2 = 'app2.rollout.test';

const version = (v: string, extra: Record<string, string> = {}) => helloVersion(dir, v, extra);
const instanceOf = (body: string) => /version \S+, (\S+),/.exec(body)?.[1] ?? '';
let addr: Record<string, string> = {};
const on = async (node: string, command: string) => (await onNode(file, env, node, command)).out;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Status {
  nodes: { name: string; reachable: boolean }[];
  apps: { node: string; app: string; active: string; health: string | null; leftovers: string[] }[];
  rollout: { kind: string; instance: string } | null;
  lock: { holder: string } | null;
}
async function status(): Promise<Status> {
  const r = await silver(['status', file, '--json'], env);
  return JSON.parse(r.stdout) as Status;
}

/**
 * An app server's front proxy asked directly, from the balancer (behind a balancer an app
 * server's port 80 admits only the nodeset's nodes): the body of its answer.
 */
const direct = async (node: string, path = '/') => on('balancer.rollout.test', `curl -s -m 5 -H 'Host: rollout.test' 'http://${addr[node]}${path}'`);

/** What each app server's front proxy really serves (the instance in the app's answer). */
async function served(): Promise<string[]> {
  return Promise.all([A1, A2].map(async (n) => instanceOf(await direct(n))));
}

/** Runs silver in the background and sends it `signal` when a stderr line matches `when`. */
function silverUntil(args: string[], when: RegExp, signal: NodeJS.Signals): Promise<CliResult & { signalled: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(process.cwd(), 'bin/silver.js'), ...args], { env: { ...process.env, SILVER_PERSIST: '0', ...env } });
    let stdout = '';
    let stderr = '';
    let signalled = false;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => {
      stderr += d;
      if (!signalled && when.test(stderr)) {
        signalled = true;
        child.kill(signal);
      }
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 5 * 60_000);
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      resolve({ code: code ?? (sig === 'SIGKILL' ? 137 : 1), stdout, stderr, signalled });
    });
  });
}

function lxc(...args: string[]): Promise<void> {
  return new Promise((resolve, reject) => execFile(args[0]!, [...args.slice(1), '-P', DEFAULTS.lxcPath], (e) => (e ? reject(e) : resolve())));
}

test.before(async () => {
  if (!canRunLxc) return;
  await cleanLeftovers(config, [NODESET]);
  addr = await bringUp(file, env);
  const v1 = await silver(['update', version('1'), file], env);
  if (v1.code !== 0) throw new Error(v1.stderr);
});
test.after.always(async () => {
  if (canRunLxc) await cleanLeftovers(config, [NODESET]);
});

run('an app server that restarts serves its app again with no silver command, and the balancer takes it back', async (t) => {
  await lxc('lxc-stop', '-k', '-n', containerName(NODESET, A1));
  const down = await status();
  t.false(down.nodes.find((n) => n.name === A1)!.reachable, 'status lists the stopped node as unreachable');
  t.truthy(down.apps.find((a) => a.node === A2), 'and still shows the others');
  await lxc('lxc-start', '-n', containerName(NODESET, A1));
  await eventually('app1 answers with the app', async () => versionOf(await direct(A1)) === '1');
  await eventually('the balancer has app1 up again', async () => /app_hello_1 app1\.rollout\.test \S+ up/.test(await on('balancer.rollout.test', '/usr/local/lib/silverlining/bin/silver-balancer status')));
  const st = await status();
  t.deepEqual(st.apps.map((a) => [a.node, a.health]), [[A1, 'ok'], [A2, 'ok']]);
});

run("the balancer takes an app server whose app fails its health check out of rotation, with no failed request, and back", async (t) => {
  const flag = `/var/lib/silverlining/apps/hello/active/app/unhealthy-on-${A2}`;
  const load = startLoad(addr['balancer.rollout.test']!, 'rollout.test', { classify: (b) => /hello from (\S+):/.exec(b)?.[1] ?? b.slice(0, 30), maxSeconds: 60 });
  await sleep(500);
  await on(A2, `touch ${flag}`);
  await eventually('app2 leaves rotation', async () => /app_hello_1 app2\.rollout\.test \S+ stopped/.test(await on('balancer.rollout.test', '/usr/local/lib/silverlining/bin/silver-balancer status')), 20);
  // (requests already in flight to it when it left finish first)
  await sleep(1000);
  const before = load.result.bodies.get(A2) ?? 0;
  await sleep(2000);
  const during = (load.result.bodies.get(A2) ?? 0) - before;
  await on(A2, `rm -f ${flag}`);
  await eventually('app2 is back', async () => /app_hello_1 app2\.rollout\.test \S+ up/.test(await on('balancer.rollout.test', '/usr/local/lib/silverlining/bin/silver-balancer status')), 20);
  const r = await load.stop();
  t.is(r.failed, 0, `failed: ${r.failures.join(' | ')}`);
  t.is(during, 0, 'no request went to the unhealthy app server');
  t.true((r.bodies.get(A1) ?? 0) > 0);
  // setup-node repairs an active instance that is not running (reported as a change).
  await on(A1, 'systemctl stop "silver-$(basename "$(readlink /var/lib/silverlining/apps/hello/active)").service"');
  const s = await silver(['setup-node', file], env);
  t.is(s.code, 0, s.stderr);
  t.regex(s.stderr, /app1\.rollout\.test: appserver: changed: hello: start hello\.\S+ \(its active instance was not running\)/);
  t.is(versionOf(await direct(A1)), '1');
});

run("attack: another user of the app server cannot reach an app's backend port on any address; nginx still does", async (t) => {
  const port = (await on(A1, 'cat /var/lib/silverlining/apps/hello/active/port')).trim();
  const probe = (user: string, host: string) => `runuser -u ${user} -- curl -s -o /dev/null -m 3 -w '%{http_code}' 'http://${host}:${port}/health' || true`;
  t.is((await on(A1, probe('root', '127.0.0.1'))).trim(), '200', 'root (the helpers) reaches the instance');
  t.is((await on(A1, probe('nobody', '127.0.0.1'))).trim(), '000', 'another user is refused on 127.0.0.1');
  t.is((await on(A1, probe('app-hello', '127.0.0.1'))).trim(), '000', "an app's user too (only the front proxy connects)");
  // A listener on every address (as a hostile app could open one): refused on each of them.
  await on(A1, "nohup python3 -c 'import socket,time; s=socket.socket(socket.AF_INET6); s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0); s.bind((\"::\", 29999)); s.listen(); time.sleep(20)' > /dev/null 2>&1 & sleep 0.5");
  for (const host of ['127.0.0.2', addr[A1]!, '[::1]']) {
    const code = (await on(A1, `runuser -u nobody -- curl -s -o /dev/null -m 3 -w '%{http_code}' 'http://${host}:29999/' ; echo " rc=$?"`)).trim();
    t.regex(code, /^000 rc=(7|56)$/, `${host}: ${code}`);
  }
  t.is(versionOf(await direct(A1)), '1', 'through nginx the app answers');
});

run('SIGINT during an update: the switched app server goes back, the lock is released, exit 130', async (t) => {
  const load = startLoad(addr['balancer.rollout.test']!, 'rollout.test', { classify: versionOf, maxSeconds: 120 });
  const r = await silverUntil(['update', version('2'), file], new RegExp(`${A1.replaceAll('.', '\\.')}: \\S+ active \\(was`), 'SIGINT');
  await sleep(2000);
  const result = await load.stop();
  t.true(r.signalled);
  t.is(r.code, 130, r.stderr);
  t.regex(r.stderr, /SIGINT: finishing the current step/);
  t.regex(r.stdout, /INTERRUPTED \(SIGINT\)/);
  const st = await status();
  t.deepEqual([...new Set(st.apps.map((a) => a.active))].length, 1, 'one version everywhere');
  t.is(st.lock, null, 'no lock left');
  t.is(st.rollout, null, 'the rollout record is closed');
  t.deepEqual(st.apps.flatMap((a) => a.leftovers), [], 'no instance left running besides the active one');
  t.deepEqual((await served()).map((i) => i === st.apps[0]!.active), [true, true]);
  t.is(result.failed, 0, `failed requests: ${result.failures.join(' | ')}`);
});

run('kill -9 after the first switch: status tells, and one further update converges and deploys', async (t) => {
  const killed = await silverUntil(['update', version('3'), file], new RegExp(`${A1.replaceAll('.', '\\.')}: \\S+ active \\(was`), 'SIGKILL');
  t.true(killed.signalled);
  const st = await status();
  t.is(st.rollout?.kind, 'update', 'status finds the interrupted rollout');
  t.not(st.apps[0]!.active, st.apps[1]!.active, 'two versions are being served');
  const text = await silver(['status', file], env);
  t.regex(text.stdout, /an interrupted update of hello to \S+ .*the next silver update or rollback of any app converges it/);
  const next = await silver(['update', version('4'), file], env);
  t.is(next.code, 0, next.stderr);
  t.regex(next.stderr, /took over the deploy lock of \S+ pid \d+ \(machine \S+\): update hello/);
  t.regex(next.stderr, /found an interrupted update of hello/);
  t.regex(next.stdout, /the interrupted update to \S+ was rolled back first/);
  const after = await status();
  t.is(new Set(after.apps.map((a) => a.active)).size, 1);
  t.deepEqual(await Promise.all([A1, A2].map(async (n) => versionOf(await direct(n)))), ['4', '4']);
  t.is(after.rollout, null);
  t.deepEqual((await served()).map((i) => i === after.apps[0]!.active), [true, true]);
  t.deepEqual(after.apps.flatMap((a) => a.leftovers), [], 'no leftover (a replaced instance draining under its stop-after is not one)');
});

run('kill -9 inside the second switch: one rollback converges every app server to one version, matching what each serves', async (t) => {
  const before = await status();
  const killed = await silverUntil(['update', version('5'), file], new RegExp(`${A2.replaceAll('.', '\\.')}: switching traffic to`), 'SIGKILL');
  t.true(killed.signalled, killed.stderr);
  const r = await silver(['rollback', 'hello', file], env);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /found an interrupted update of hello/);
  const st = await status();
  const actives = [...new Set(st.apps.map((a) => a.active))];
  t.is(actives.length, 1, `one version: ${actives.join(' ')}`);
  t.deepEqual(await served(), [actives[0], actives[0]], "each app server's front proxy serves what status says");
  t.is(st.lock, null);
  t.is(st.rollout, null);
  // The killed switch completed (every node on v5: rolled forward, then back to v4) or not (back
  // to v4 at once, then the rollback goes further back): either way, one step at a time.
  if (/rolled forward/.test(r.stderr)) t.is(actives[0], before.apps[0]!.active);
  else t.true(actives[0]! < before.apps[0]!.active, `${actives[0]} is older than ${before.apps[0]!.active}`);
});
