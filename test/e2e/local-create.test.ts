import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { HostKeyMismatch, sshProbe } from '../../src/ssh/connect.js';
import { StateDir } from '../../src/state.js';
import { silver } from '../helpers/cli.js';
import { canRunLxc, cleanLeftovers, testProviderConfig } from '../helpers/lxc.js';

const exec = promisify(execFile);
const NODESET = 'silvertest-create';
const config = testProviderConfig('silvert0', 250);

function nodesetFile(dir: string, nodes: number): string {
  const file = join(dir, 'create.conf');
  writeFileSync(file, `[general]
name = ${NODESET}
base_domain = create.test

[provider]
provider = local
bridge = silvert0
subnet = 10.213.250.0/24
proxy_port = ${config.settings['proxy_port']}

[appserver]
nodes = ${nodes}
size = ram 256MB
load_balancer = false
`);
  return file;
}

const run = canRunLxc ? test.serial : test.serial.skip;

test.before(async () => {
  if (canRunLxc) await cleanLeftovers(config, [NODESET]);
});
test.after.always(async () => {
  if (canRunLxc) await cleanLeftovers(config, [NODESET]);
});

run('create-node on real LXC: 3 nodes, a no-op re-run, scale to 4, SSH with the pinned keys, delete leaves nothing', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'silver-e2e-'));
  const env = { SILVER_HOME: join(dir, 'home') };

  const first = await silver(['create-node', nodesetFile(dir, 3)], env);
  t.is(first.code, 0, first.stderr);
  t.regex(first.stdout, /created 3, started 0, already there 0, failed 0/);

  const again = await silver(['create-node', nodesetFile(dir, 3), '--json'], env);
  t.is(again.code, 0, again.stderr);
  const report = JSON.parse(again.stdout);
  t.deepEqual(report.outcomes.map((o: { status: string }) => o.status), ['existing', 'existing', 'existing']);

  const scaled = await silver(['create-node', nodesetFile(dir, 4)], env);
  t.is(scaled.code, 0, scaled.stderr);
  t.regex(scaled.stdout, /created 1, started 0, already there 3, failed 0/);
  t.regex(scaled.stderr, /app4\.create\.test: created 10\.213\.250\.\d+/);

  const listed = await silver(['list-nodes', nodesetFile(dir, 4), '--json'], env);
  const nodes = JSON.parse(listed.stdout) as { name: string; state: string; address: string }[];
  t.deepEqual(nodes.map((n) => [n.name, n.state]), [1, 2, 3, 4].map((i) => [`app${i}.create.test`, 'running']));
  t.is(new Set(nodes.map((n) => n.address)).size, 4, 'every node has its own address');

  // The pins are an OpenSSH known_hosts file: the stock ssh client logs in with strict checking.
  const knownHosts = join(env.SILVER_HOME, 'nodesets', NODESET, 'known_hosts');
  const key = join(env.SILVER_HOME, 'id_ed25519');
  for (const n of nodes) {
    const { stdout } = await exec('ssh', ['-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${knownHosts}`, '-i', key, `root@${n.address}`, 'hostname; cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes']);
    const [hostname, limit] = stdout.trim().split('\n');
    t.is(hostname, n.name);
    t.is(Number(limit), 256 * 1024 * 1024, 'ram 256MB is a 256 MB memory limit');
  }

  // A wrong pin stops the connection.
  const state = new StateDir(env.SILVER_HOME);
  const wrong = (await import('ssh2')).default.utils.generateKeyPairSync('ed25519').public;
  await t.throwsAsync(
    sshProbe({ name: nodes[0]!.name, host: nodes[0]!.address, username: 'root', privateKey: state.deployKey().private, hostKey: wrong }),
    { instanceOf: HostKeyMismatch, message: /host key changed/ },
  );

  // Scale down: the orphan is named, and --orphans removes just it.
  const down = await silver(['create-node', nodesetFile(dir, 3)], env);
  t.regex(down.stdout, /not in the nodeset file any more: app4\.create\.test/);
  const orphans = await silver(['delete-node', nodesetFile(dir, 3), '--orphans', '-y'], env);
  t.is(orphans.code, 0, orphans.stderr);
  t.regex(orphans.stdout, /deleted 1, failed 0/);

  const gone = await silver(['delete-node', nodesetFile(dir, 3), '-y'], env);
  t.is(gone.code, 0, gone.stderr);
  t.regex(gone.stdout, /deleted 3, failed 0/);
  const { stdout: ls } = await exec('lxc-ls', ['-P', '/var/lib/silverlining/lxc']);
  t.false(ls.includes(`s-${NODESET}-`), 'no container of the nodeset is left');
  const link = await exec('ip', ['link', 'show', 'silvert0']).then(() => true, () => false);
  t.false(link, 'the bridge is removed with the last node');
  t.false(existsSync(knownHosts) && readFileSync(knownHosts, 'utf8').trim() !== '', 'no pins left');
});

