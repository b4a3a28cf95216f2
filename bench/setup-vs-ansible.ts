/**
 * Benchmark: `silver setup-node` against Ansible doing the same work (bench/ansible/site.yml),
 * each on 10 fresh LXC nodes of the same shape (8 app servers, PostgreSQL, a balancer):
 * the cold setup of each, then the no-op re-run of each (median of 3, alternating, each timed with
 * the other side's nodes frozen), with
 * checks that both reached the same end state and that the re-runs changed nothing.
 * Needs root. Run: npx tsc -p . && node dist/bench/setup-vs-ansible.js  (writes bench/RESULTS.md)
 * Targets: silver's no-op of 10 nodes under 1.5 s, at least 5x faster than Ansible's no-op,
 * and silver's cold setup faster than Ansible's.
 * BENCH_KEEP_LOGS=DIR keeps the output of the cold runs and of one no-op run of each side in DIR.
 * The host's fs.inotify.max_user_instances is raised to 1024 for the run when lower (20 LXC
 * nodes' systemd need more than the default 128), and restored after.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { containerName, DEFAULTS } from '../providers/local/config.js';
import { median, writeSection } from './results.js';

const ROOT = process.cwd();
const PLAYBOOK = join(ROOT, 'bench/ansible/site.yml');
const dir = mkdtempSync(join(tmpdir(), 'silver-bench-ansible-'));
const home = join(dir, 'home');
const env: NodeJS.ProcessEnv = { ...process.env, SILVER_HOME: home };

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
}

function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string | Buffer; cwd?: string } = {}): Run {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, {
    env: opts.env ?? env,
    cwd: opts.cwd ?? ROOT,
    input: opts.input ?? '',
    encoding: 'utf8',
    maxBuffer: 64 * 2 ** 20,
  });
  const seconds = (performance.now() - t0) / 1000;
  if (r.error) throw r.error;
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr, seconds };
}

/** run() through sh's `times`: adds the CPU time (user + system) of the command and its children on this machine. */
function timed(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): Run & { cpu: number } {
  const r = run('sh', ['-c', '"$@"; rc=$?; times >&2; exit $rc', 'sh', cmd, ...args], opts);
  const m = /(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(r.stderr);
  const cpu = m ? Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]) : NaN;
  return { ...r, cpu };
}

function runAsync(cmd: string, args: string[], input: Buffer): Promise<Run> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn(cmd, args, { env, cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr, seconds: (performance.now() - t0) / 1000 }));
    p.stdin.end(input);
  });
}

function tail(text: string, n = 15): string {
  return text.trimEnd().split('\n').slice(-n).join('\n');
}

function must(r: Run, what: string): Run {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}:\n${tail(r.stderr || r.stdout)}`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// The two nodesets: same shape, own bridge, subnet and package proxy each.

interface Side {
  name: string;
  file: string;
}

function nodeset(name: string, bridge: string, subnet: string, proxyPort: number): Side {
  const file = join(dir, `${name}.conf`);
  writeFileSync(
    file,
    `[general]
name = ${name}
base_domain = bench.test
[provider]
provider = local
bridge = ${bridge}
subnet = ${subnet}
proxy_port = ${proxyPort}
[appserver]
nodes = 8
size = ram 256MB
locations = http://bench.test/ hello
[service:postgresql]
[balancer]
hostnames = bench.test
`,
  );
  return { name, file };
}

const S = nodeset('silverbench-s', 'silverb1', '10.213.241.0/24', 8841); // silver's
const A = nodeset('silverbench-a', 'silverb2', '10.213.242.0/24', 8842); // Ansible's

function silver(...args: string[]): Run {
  return run(process.execPath, ['bin/silver.js', ...args]);
}

function silverNew(...args: string[]): Run {
  return run(process.execPath, ['bin/silver.js', ...args], { env: NEW_CONNECTIONS });
}

interface ListedNode {
  name: string;
  role: string;
  state: string;
  address: string | null;
  inNodeset: boolean;
}

interface Node {
  name: string;
  role: string;
  address: string;
}

function listNodes(side: Side): Node[] {
  const listed = JSON.parse(must(silver('list-nodes', side.file, '--json'), 'list-nodes').stdout) as ListedNode[];
  const nodes = listed.filter((n) => n.inNodeset);
  const bad = nodes.filter((n) => n.state !== 'running' || !n.address);
  if (nodes.length !== 10 || bad.length) throw new Error(`${side.name}: expected 10 running nodes, got ${JSON.stringify(listed)}`);
  return nodes.map((n) => ({ name: n.name, role: n.role, address: n.address! }));
}

const key = join(home, 'id_ed25519');
const pins = (side: Side) => join(home, 'nodesets', side.name, 'known_hosts');
const sshOpts = (side: Side) => ['-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${pins(side)}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'ConnectTimeout=10', '-i', key];

function ssh(side: Side, address: string, command: string): Run {
  return run('ssh', [...sshOpts(side), `root@${address}`, command]);
}

// ---------------------------------------------------------------------------------------------
// Ansible: installed if missing, its configuration and inventory written per run.

function ensureAnsible(): string {
  if (run('sh', ['-c', 'command -v ansible-playbook']).code !== 0) {
    console.error('ansible-playbook is missing: apt-get install -y ansible');
    const apt = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    if (run('apt-get', ['install', '-y', 'ansible'], { env: apt }).code !== 0) {
      run('apt-get', ['update'], { env: apt });
      must(run('apt-get', ['install', '-y', 'ansible'], { env: apt }), 'apt-get install -y ansible');
    }
  }
  return must(run('ansible-playbook', ['--version'], { env: { ...env, ANSIBLE_HOME: join(dir, 'ansible-home') } }), 'ansible-playbook --version').stdout.split('\n')[0]!.trim();
}

const ansibleDir = join(dir, 'ansible');
const ansibleEnv: NodeJS.ProcessEnv = { ...env, ANSIBLE_CONFIG: join(ansibleDir, 'ansible.cfg'), ANSIBLE_HOME: join(ansibleDir, 'home'), ANSIBLE_NOCOLOR: '1', ANSIBLE_FORCE_COLOR: '0' };

function writeAnsibleFiles(side: Side, nodes: Node[]): void {
  mkdirSync(ansibleDir, { recursive: true });
  mkdirSync(join(ansibleDir, 'cp'), { recursive: true });
  writeFileSync(
    join(ansibleDir, 'ansible.cfg'),
    `[defaults]
inventory = ${join(ansibleDir, 'inventory.yml')}
forks = 10
host_key_checking = True
# no facts: the playbook says gather_facts: false and needs none
gathering = explicit
interpreter_python = /usr/bin/python3
retry_files_enabled = False
nocolor = True

[ssh_connection]
pipelining = True
control_path_dir = ${join(ansibleDir, 'cp')}
`,
  );
  const plan = JSON.parse(must(silver('plan', side.file, '--json'), 'plan').stdout) as {
    name: string;
    setEtcHosts: boolean;
    locations: { url: string; app: string }[];
    hostnames: string[];
  };
  const locations = plan.locations.map((l) => {
    const u = new URL(l.url);
    return { host: u.hostname, path: u.pathname, app: l.app };
  });
  const groupOf = (role: string) => role.replace(':', '_');
  const groups: Record<string, { hosts: Record<string, Record<string, string>> }> = {};
  for (const n of nodes) {
    (groups[groupOf(n.role)] ??= { hosts: {} }).hosts[n.name] = { ansible_host: n.address, silver_role: n.role, silver_address: n.address };
  }
  const inventory = {
    all: {
      vars: {
        ansible_user: 'root',
        ansible_ssh_private_key_file: key,
        ansible_ssh_common_args: `-o UserKnownHostsFile=${pins(side)} -o StrictHostKeyChecking=yes`,
        silver_nodeset: plan.name,
        silver_nodes: nodes,
        silver_deploy_key: readFileSync(`${key}.pub`, 'utf8').trim(),
        silver_apps: [...new Set(locations.map((l) => l.app))],
        silver_locations: locations,
        silver_hostnames: plan.hostnames,
        silver_set_etc_hosts: plan.setEtcHosts,
      },
      children: groups,
    },
  };
  // JSON is YAML: the yaml inventory plugin reads it as it is.
  writeFileSync(join(ansibleDir, 'inventory.yml'), `${JSON.stringify(inventory, null, 2)}\n`);
}

interface Recap {
  host: string;
  ok: number;
  changed: number;
  unreachable: number;
  failed: number;
}

function parseRecap(stdout: string): Recap[] {
  const at = stdout.lastIndexOf('PLAY RECAP');
  if (at < 0) return [];
  const out: Recap[] = [];
  for (const line of stdout.slice(at).split('\n')) {
    const m = /^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)/.exec(line);
    if (m) out.push({ host: m[1]!, ok: Number(m[2]), changed: Number(m[3]), unreachable: Number(m[4]), failed: Number(m[5]) });
  }
  return out;
}

function ansible(): Run & { cpu: number; recap: Recap[] } {
  const r = timed('ansible-playbook', [PLAYBOOK], { env: ansibleEnv });
  return { ...r, recap: parseRecap(r.stdout) };
}

/**
 * Ansible's apt module needs python3-apt on the node; silver's golden image does not have it
 * (silver's layers use dpkg-query). Without it the module would run apt-get update and install
 * it through the node's package proxy on the first run. To compare the same work, the bench
 * installs it beforehand on the Ansible nodes (untimed): Debian's .debs, fetched once with
 * apt-get download on this machine, copied over SSH and installed with dpkg -i.
 */
async function preparePythonApt(side: Side, nodes: Node[]): Promise<number> {
  const t0 = performance.now();
  const debs = join(dir, 'debs');
  mkdirSync(debs, { recursive: true });
  must(run('apt-get', ['download', '-q', 'python3-apt', 'python-apt-common', 'distro-info-data'], { cwd: debs }), 'apt-get download python3-apt');
  const tar = spawnSync('tar', ['-c', '-C', debs, ...readdirSync(debs).filter((f) => f.endsWith('.deb'))]);
  if (tar.status !== 0) throw new Error(`tar: ${tar.stderr.toString()}`);
  const results = await Promise.all(
    nodes.map((n) =>
      runAsync('ssh', [...sshOpts(side), `root@${n.address}`, 'd=$(mktemp -d) && tar -x -C "$d" && dpkg -i "$d"/*.deb > /dev/null && rm -rf "$d"'], tar.stdout),
    ),
  );
  results.forEach((r, i) => must(r, `python3-apt on ${nodes[i]!.name}`));
  return (performance.now() - t0) / 1000;
}

// ---------------------------------------------------------------------------------------------
// End state: both sides must agree, node by node (addresses and nodeset names normalised).

const FINGERPRINT = String.raw`
norm() { sed -e 's/10\.213\.24[12]\./NET./g' -e 's/silverbench-[sa]/NODESET/g' "$1" | sha256sum | cut -c1-16; }
pgdir=$(ls -d /etc/postgresql/*/main 2> /dev/null | sort -V | tail -1)
for f in /etc/nftables.conf /etc/hosts /etc/silverlining/nodeset.conf /etc/sudoers.d/silver \
  /home/silver/.ssh/authorized_keys /etc/silverlining/nginx/upstream-hello.conf /etc/nginx/conf.d/silver.conf \
  /etc/haproxy/haproxy.cfg $pgdir/conf.d/silver.conf $pgdir/pg_hba.conf /usr/local/lib/silverlining/bin/*; do
  if [ -f "$f" ]; then echo "file $f $(stat -c '%a %U:%G' "$f") $(norm "$f")"; fi
done
for d in /home/silver /home/silver/.ssh /usr/local/lib/silverlining /usr/local/lib/silverlining/bin /etc/silverlining \
  /etc/silverlining/nginx /var/lib/silverlining /var/lib/silverlining/apps /var/lib/silverlining/locks \
  /var/lib/silverlining/home /var/lib/silverlining/home/hello /var/log/silverlining /var/log/silverlining/hello; do
  if [ -d "$d" ]; then echo "dir $d $(stat -c '%a %U:%G' "$d")"; else echo "dir $d missing"; fi
done
getent passwd silver app-hello | awk -F: '{ print "user", $1, $6, $7 }'
[ -e /etc/nginx/sites-enabled/default ] && echo "file /etc/nginx/sites-enabled/default present"
for u in nginx haproxy postgresql mariadb nftables; do
  echo "unit $u $(systemctl is-enabled $u 2> /dev/null) $(systemctl is-active $u)"
done
echo "ruleset $(nft list ruleset | sed 's/10\.213\.24[12]\./NET./g' | sha256sum | cut -c1-16)"
true
`;

function compareEndState(s: Node[], a: Node[]): string[] {
  const diffs: string[] = [];
  for (const role of ['appserver', 'service:postgresql', 'balancer']) {
    const ns = s.find((n) => n.role === role)!;
    const na = a.find((n) => n.role === role)!;
    const fs = must(ssh(S, ns.address, FINGERPRINT), `fingerprint ${ns.name}`).stdout.trim().split('\n');
    const fa = must(ssh(A, na.address, FINGERPRINT), `fingerprint ${na.name}`).stdout.trim().split('\n');
    for (const l of fs) if (!fa.includes(l)) diffs.push(`${role}: silver has "${l}", Ansible does not`);
    for (const l of fa) if (!fs.includes(l)) diffs.push(`${role}: Ansible has "${l}", silver does not`);
  }
  return diffs;
}

/** The checks the brief asks for on the Ansible side after its cold run. */
function verifyAnsibleCold(nodes: Node[]): string[] {
  const problems: string[] = [];
  const app = nodes.find((n) => n.role === 'appserver')!;
  const bal = nodes.find((n) => n.role === 'balancer')!;
  const db = nodes.find((n) => n.role === 'service:postgresql')!;
  const conf = ssh(A, app.address, 'cat /etc/silverlining/nodeset.conf').stdout.trimEnd().split('\n');
  if (conf.length !== 10) problems.push(`${app.name}: nodeset.conf has ${conf.length} lines, not 10`);
  if (ssh(A, app.address, 'systemctl is-active nginx').stdout.trim() !== 'active') problems.push(`${app.name}: nginx not active`);
  if (ssh(A, bal.address, 'systemctl is-active haproxy').stdout.trim() !== 'active') problems.push(`${bal.name}: haproxy not active`);
  if (ssh(A, db.address, 'systemctl is-active postgresql').stdout.trim() !== 'active') problems.push(`${db.name}: postgresql not active`);
  const health = ssh(A, bal.address, 'curl -s -m 5 -H "Host: bench.test" http://127.0.0.1/.silver/balancer-health').stdout.trim();
  if (health !== 'ok') problems.push(`${bal.name}: balancer health answered "${health}"`);
  return problems;
}

// ---------------------------------------------------------------------------------------------

const SUMMARY = /: (\d+) changed, (\d+) unchanged, (\d+) failed \((\d+(?:\.\d+)?)s\)/;

/** SILVER_PERSIST=0: silver makes new SSH connections (no keeper from an earlier command). */
const NEW_CONNECTIONS: NodeJS.ProcessEnv = { ...env, SILVER_PERSIST: '0' };

function silverSetup(side: Side, withEnv: NodeJS.ProcessEnv = env): Run & { cpu: number; changed: number; failed: number; inner: number } {
  const r = timed(process.execPath, ['bin/silver.js', 'setup-node', side.file], { env: withEnv });
  const m = SUMMARY.exec(r.stdout);
  return { ...r, changed: m ? Number(m[1]) : -1, failed: m ? Number(m[3]) : -1, inner: m ? Number(m[4]) : NaN };
}

/** Per layer: the slowest node and the median node, from setup-node's stderr lines. */
function layerTimes(stderr: string): string {
  const by = new Map<string, number[]>();
  for (const line of stderr.split('\n')) {
    const m = /^\S+: (\S+): (?:unchanged|\d+ changed) \((\d+(?:\.\d+)?)s\)$/.exec(line);
    if (m) by.set(m[1]!, [...(by.get(m[1]!) ?? []), Number(m[2])]);
  }
  return [...by]
    .map(([layer, t]) => {
      t.sort((x, y) => x - y);
      return `${layer} ${t[Math.floor(t.length / 2)]!.toFixed(1)}/${t[t.length - 1]!.toFixed(1)} s`;
    })
    .join(', ');
}

/** The bench nodes' containers (the local provider's default LXC path and naming). */
const LXC_PATH = DEFAULTS.lxcPath;
function containersOf(side: Side): string[] {
  return run('lxc-ls', ['-P', LXC_PATH, '-1']).stdout.split(/\s+/).filter((n) => n.startsWith(containerName(side.name, '')));
}

/** Freezes (or thaws) a side's containers: their processes stop using CPU until thawed. */
function setFrozen(side: Side, frozen: boolean): void {
  for (const n of containersOf(side)) run(frozen ? 'lxc-freeze' : 'lxc-unfreeze', ['-P', LXC_PATH, '-n', n]);
}

/**
 * Runs one side's timed command alone: the other side's nodes frozen, then a few seconds for
 * what the previous run left (log writes, closing sessions) to finish, so neither side is timed
 * while the other's nodes still work.
 */
const SETTLE_MS = 3000;
function quietly<T>(other: Side, fn: () => T): T {
  setFrozen(other, true);
  try {
    run('sleep', [String(SETTLE_MS / 1000)]);
    return fn();
  } finally {
    setFrozen(other, false);
  }
}

const f2 = (x: number) => x.toFixed(2);

function readInotify(): number {
  return Number(readFileSync('/proc/sys/fs/inotify/max_user_instances', 'utf8'));
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.error('setup-vs-ansible: needs root (LXC nodes): sudo node dist/bench/setup-vs-ansible.js');
    process.exitCode = 1;
    return;
  }
  const loadStart = loadavg()[0]!.toFixed(1);
  const version = ensureAnsible();
  // Every LXC node's systemd takes inotify instances; with 20 bench nodes (and any others) the
  // default limit of 128 leaves late nodes without sshd. Raised for the run, restored after.
  const inotify = readInotify();
  if (inotify < 1024) writeFileSync('/proc/sys/fs/inotify/max_user_instances', '1024');
  try {
    for (const side of [S, A]) silver('delete-node', side.file, '-y'); // leftovers of an interrupted run
    const created = [S, A].map((side) => must(silver('create-node', side.file), `create-node ${side.name}`).seconds);
    const sNodes = listNodes(S);
    const aNodes = listNodes(A);
    writeAnsibleFiles(A, aNodes);
    const prep = await preparePythonApt(A, aNodes);
    const notes: string[] = [];

    // Cold: both sides on fresh nodes, one after the other.
    const coldS = silverSetup(S);
    if (coldS.code !== 0 || coldS.failed !== 0) throw new Error(`silver setup-node (cold) failed:\n${tail(coldS.stdout + coldS.stderr)}`);
    const coldA = ansible();
    if (coldA.code !== 0 || coldA.recap.length !== 10 || coldA.recap.some((h) => h.failed || h.unreachable)) {
      throw new Error(`ansible-playbook (cold) failed:\n${tail(coldA.stdout, 40)}`);
    }
    const verify = verifyAnsibleCold(aNodes);
    const diffs = compareEndState(sNodes, aNodes);

    // No-op re-runs, alternating; each side timed alone (see quietly). silver twice: with the
    // connections its keeper holds (a re-run within SILVER_PERSIST, 60 s: the run before it,
    // untimed, makes sure a keeper is up, as Ansible's runs find their ControlPersist masters),
    // and with new connections (SILVER_PERSIST=0).
    const noopS: ReturnType<typeof silverSetup>[] = [];
    const noopS0: ReturnType<typeof silverSetup>[] = [];
    const noopA: ReturnType<typeof ansible>[] = [];
    for (let i = 0; i < 3; i++) {
      noopS0.push(quietly(A, () => silverSetup(S, NEW_CONNECTIONS)));
      silverSetup(S);
      noopS.push(quietly(A, () => silverSetup(S)));
      noopA.push(quietly(S, () => ansible()));
    }
    [...noopS, ...noopS0].forEach((r, i) => {
      if (r.code !== 0 || r.changed !== 0) notes.push(`silver no-op run ${i + 1}: exit ${r.code}, ${r.changed} changed (expected 0 changed)`);
    });
    noopA.forEach((r, i) => {
      const changed = r.recap.filter((h) => h.changed > 0).map((h) => `${h.host} changed=${h.changed}`);
      if (r.code !== 0 || r.recap.length !== 10 || changed.length) notes.push(`ansible no-op run ${i + 1}: exit ${r.code}, ${r.recap.length} hosts in recap, ${changed.join(', ') || 'changed=0'}`);
    });
    const ts = noopS.map((r) => r.seconds);
    const ts0 = noopS0.map((r) => r.seconds);
    const ta = noopA.map((r) => r.seconds);
    const mS = median(ts);
    const mS0 = median(ts0);
    const mA = median(ta);
    const medianRun = noopS0.find((r) => r.seconds === mS0)!;
    // Where silver's no-op time goes: the same CLI doing less and less of it (new connections).
    const [startup, listing, connect] = quietly(A, () => [
      median([0, 1, 2].map(() => silverNew('--version').seconds)),
      median([0, 1, 2].map(() => must(silverNew('list-nodes', S.file, '--json'), 'list-nodes').seconds)),
      median([0, 1, 2].map(() => must(silverNew('exec', S.file, '--', 'true'), 'silver exec true').seconds)),
    ]);
    // Over kept connections: one untimed run first (it starts a keeper if none runs), then the
    // settle of quietly() while the keeper connects.
    must(silver('exec', S.file, '--', 'true'), 'silver exec true');
    const kept = quietly(A, () => median([0, 1, 2].map(() => must(silver('exec', S.file, '--', 'true'), 'silver exec true (kept)').seconds)));
    const okTasks = noopA[0]!.recap.reduce((n, h) => n + h.ok, 0);

    const cpu = (rs: { cpu: number }[]) => median(rs.map((r) => r.cpu));
    const silverNoop = (label: string, rs: typeof noopS) => {
      const t = rs.map((r) => r.seconds);
      return `no-op re-run, silver, ${label}: ${f2(median(t))} s (min ${f2(Math.min(...t))}, max ${f2(Math.max(...t))}; cpu ${f2(cpu(rs))} s); ${rs.every((r) => r.code === 0 && r.changed === 0) ? '"0 changed" every run' : 'CHANGES REPORTED'}`;
    };
    const lines = [
      `nodes: 2 x 10 LXC nodes (8 app servers ram 256MB, service:postgresql, balancer), created fresh: ${created.map(f2).join(' s / ')} s`,
      `ansible: ${version}, forks = 10, pipelining = True, gather_facts off, host_key_checking = True, ssh ControlPersist (its default)`,
      `ansible prerequisite python3-apt (not in silver's image), installed on its nodes before timing: ${f2(prep)} s`,
      `wall time of the whole command; "cpu" = user + system CPU of that command on this machine (the nodes' own work not included)`,
      `cold setup, silver setup-node: ${f2(coldS.seconds)} s (cpu ${f2(coldS.cpu)} s)`,
      `cold setup, ansible-playbook:  ${f2(coldA.seconds)} s (cpu ${f2(coldA.cpu)} s)`,
      `cold speed-up: silver ${(coldA.seconds / coldS.seconds).toFixed(1)}x faster`,
      silverNoop('connections kept (the default; median of 3)', noopS),
      silverNoop('new connections (SILVER_PERSIST=0; median of 3)', noopS0),
      `no-op re-run, ansible (median of 3): ${f2(mA)} s (min ${f2(Math.min(...ta))}, max ${f2(Math.max(...ta))}; cpu ${f2(cpu(noopA))} s); ${noopA.every((r) => r.code === 0 && r.recap.length === 10 && r.recap.every((h) => h.changed === 0)) ? 'changed=0 on all 10 hosts every run' : 'CHANGES REPORTED'} (${okTasks} ok task results per run)`,
      `no-op speed-up: silver ${(mA / mS).toFixed(1)}x faster with kept connections, ${(mA / mS0).toFixed(1)}x with new ones`,
      `silver no-op breakdown, new connections (medians of 3 whole commands): --version ${f2(startup)} s (node + CLI start-up); list-nodes ${f2(listing)} s (+ asking LXC); exec -- true on all 10 ${f2(connect)} s (+ 10 SSH connections); setup-node ${f2(mS0)} s (+ the layer scripts: one remote command per node, 10 nodes at once); exec -- true over kept connections ${f2(kept)} s`,
      `silver no-op per layer, new connections, median/slowest node (by marker arrival; the first layer's includes its node's SSH connection): ${layerTimes(medianRun.stderr)}`,
      `load average (1 min) at start / end: ${loadStart} / ${loadavg()[0]!.toFixed(1)}`,
      `no-op runs timed alone: the other side's 10 nodes frozen (lxc-freeze) and ${SETTLE_MS / 1000} s of quiet before each run`,
      `end state: Ansible cold run checked (nodeset.conf 10 lines, nginx, haproxy, postgresql active, balancer health ok): ${verify.length ? verify.join('; ') : 'ok'}`,
      `end state: silver vs Ansible, files/modes/owners/users/units/ruleset on app server, db and balancer: ${diffs.length ? `${diffs.length} differences` : 'identical'}`,
      ...diffs.map((d) => `  ${d}`),
      ...notes.map((n) => `  ${n}`),
      `targets: silver no-op under 1.5 s: ${mS < 1.5 ? 'met' : 'NOT met'} (with new connections: ${mS0 < 1.5 ? 'met' : 'not met'}); no-op at least 5x faster than Ansible: ${mA / mS0 >= 5 ? 'met' : 'NOT met'} (even with new connections); cold faster than Ansible: ${coldS.seconds < coldA.seconds ? 'met' : 'NOT met'}`,
    ];
    if (inotify < 1024) lines.splice(1, 0, `host: fs.inotify.max_user_instances raised from ${inotify} to 1024 for the run (20 nodes), restored after`);
    console.log(lines.join('\n'));
    writeSection('setup-vs-ansible', 'setup-node vs Ansible, 10 fresh nodes', 'sudo node dist/bench/setup-vs-ansible.js', lines);
    if (process.env['BENCH_KEEP_LOGS']) {
      writeFileSync(join(process.env['BENCH_KEEP_LOGS'], 'ansible-cold.log'), coldA.stdout + coldA.stderr);
      writeFileSync(join(process.env['BENCH_KEEP_LOGS'], 'ansible-noop.log'), noopA[0]!.stdout + noopA[0]!.stderr);
      writeFileSync(join(process.env['BENCH_KEEP_LOGS'], 'silver-cold.log'), coldS.stdout + coldS.stderr);
      writeFileSync(join(process.env['BENCH_KEEP_LOGS'], 'silver-noop.log'), medianRun.stdout + medianRun.stderr);
    }
  } finally {
    for (const side of [S, A]) setFrozen(side, false);
    silver('disconnect', S.file); // silver's keeper, before its nodes go
    // Ansible's ControlPersist masters (started by this run): closed before their nodes go.
    const cp = join(ansibleDir, 'cp');
    if (existsSync(cp)) for (const sock of readdirSync(cp)) run('ssh', ['-o', `ControlPath=${join(cp, sock)}`, '-O', 'exit', 'bench']);
    for (const side of [S, A]) {
      try {
        silver('delete-node', side.file, '-y');
      } catch {
        /* already gone */
      }
    }
    if (inotify < 1024 && existsSync('/proc/sys/fs/inotify/max_user_instances')) writeFileSync('/proc/sys/fs/inotify/max_user_instances', String(inotify));
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
