import test, { type ExecutionContext } from 'ava';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setupNodes } from '../../src/commands/setup-node.js';
import { layersRoot } from '../../src/layers.js';
import { ANY_DIGEST, FAST_HIT, nodeDigest, probeScript, recordedDigest } from '../../src/setup/fast-path.js';
import type { ExecResult } from '../../src/ssh/connect.js';
import type { NodeExecutor } from '../../src/ssh/keeper.js';
import { fakeDeploy, NODESET, shellWords, type FakeNodes } from '../helpers/fake-nodes.js';
import { takeStateDump } from '../../src/setup/fast-path.js';
import { libSubset } from '../../src/setup/lib-subset.js';

/** A folder of the test's own, removed after it. */
function tempDir(t: ExecutionContext, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// setup-node's fast path on simulated nodes that keep the protocol of setup-layers/lib.sh: a full
// script records its digest (`fingerprint_end DIGEST`); a probe (`fast_probe DIGEST`) answers a
// hit when the digest is the one recorded and nothing drifted, running the layers' probe.sh
// between markers; else a miss, and silver sends the full script.

class Nodes implements NodeExecutor {
  /** Each node's scripts, in the order they came: `probe` or `full`. */
  readonly sent = new Map<string, { kind: 'probe' | 'full'; text: string }[]>();
  readonly recorded = new Map<string, string>();
  readonly drifted = new Set<string>();
  /** Nodes whose probe prints what a hostile file name would make it print (see the test). */
  readonly spoofed = new Set<string>();
  /** Nodes whose probe says hit, then ends the same layer three times. */
  readonly otherMarkers = new Set<string>();
  /** A layer's probe.sh that fails on this node (the exit code of its subshell). */
  readonly probeFails = new Map<string, string>();
  /** Every other command, as `NODE COMMAND`: the sessions besides the scripts. */
  readonly sessions: string[] = [];
  /** Scripts and silver-state verbs in the order they came, as `NODE probe|full|VERB`. */
  readonly events: string[] = [];
  constructor(readonly nodes: FakeNodes) {}

  async exec(node: string, command: string, stdin?: string | Buffer, _timeoutMs?: number, onStdout?: (chunk: string) => void): Promise<ExecResult> {
    const argv = shellWords(command);
    if (argv.at(-2) !== 'sh' || argv.at(-1) !== '-s') {
      this.sessions.push(`${node} ${command}`);
      if (argv[0]?.endsWith('/silver-state')) this.events.push(`${node} ${argv[1]}`);
      return this.nodes.exec(node, command, stdin);
    }
    const text = String(stdin);
    const probe = /^fast_probe ([0-9a-f]{64}|'\*') /m.exec(text);
    const list = this.sent.get(node) ?? [];
    this.sent.set(node, list);
    list.push({ kind: probe ? 'probe' : 'full', text });
    this.events.push(`${node} ${probe ? 'probe' : 'full'}`);
    let out: string;
    let code = 0;
    if (probe && this.spoofed.has(node)) {
      out = `silver-fast: miss (x\n${FAST_HIT}\nsilver-layer-begin: base\nsilver-layer-end: base 0\nsilver-layer-end: base 0\nsilver-layer-end: base 0\n)\n`;
    } else if (probe && this.otherMarkers.has(node)) {
      out = `${FAST_HIT}\n${'silver-layer-begin: base\nsilver-layer-end: base 0\n'.repeat(3)}`;
    } else if (probe) {
      const any = probe[1] === "'*'";
      if (!this.recorded.has(node) || (!any && this.recorded.get(node) !== probe[1]) || this.drifted.has(node)) out = 'silver-fast: miss (new inputs)\n';
      else {
        // (a probe of any inputs names the recorded digest on its hit line: silver compares)
        out = any ? `${FAST_HIT} ${this.recorded.get(node)}\n` : `${FAST_HIT}\n`;
        for (const [, layer] of text.matchAll(/^printf 'silver-layer-begin: %s\\n(?:silver-layer-end: %s 0\\n)?' (\S+)(?: \S+)?$/gm)) {
          // (a probe.sh that fails ends the probe: no end marker, the shell's exit code)
          out += `silver-layer-begin: ${layer}\n`;
          if (this.probeFails.get(node) === layer) {
            code = 1;
            break;
          }
          out += `silver-layer-end: ${layer} 0\n`;
        }
      }
    } else {
      const layers = [...text.matchAll(/^echo "silver-layer-begin: (\S+)"$/gm)].map((m) => m[1]);
      out = layers.map((l) => `silver-layer-begin: ${l}\nsilver-layer-end: ${l} 0\n`).join('');
      const end = /^fingerprint_end ([0-9a-f]{64})$/m.exec(text);
      if (end) this.recorded.set(node, end[1]!);
      this.drifted.delete(node);
    }
    onStdout?.(out);
    return { code, stdout: out, stderr: probe ? await this.nodes.stateFrame(node, text) : '' };
  }

  kinds(node: string): string[] {
    return (this.sent.get(node) ?? []).map((s) => s.kind);
  }

  reset(): void {
    this.sent.clear();
  }

  async close(): Promise<void> {}
}

async function setup() {
  const d = await fakeDeploy();
  const fake = new Nodes(d.nodes);
  d.rt.executor = async () => fake;
  return { ...d, fake };
}

test('a first run probes (no fingerprint), then sends the full script, which records its digest; the next run is the probe alone', async (t) => {
  const { ns, rt, fake } = await setup();
  const first = await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  t.true(first.nodes.length > 0);
  for (const n of first.nodes) {
    t.deepEqual(fake.kinds(n.name), ['probe', 'full'], n.name);
    t.is(n.checked, 'full');
    t.not(n.status, 'failed');
    const [probe, full] = fake.sent.get(n.name)!;
    t.true(full!.text.includes('\nfingerprint_begin\n'), 'the full run removes the old fingerprint before any change');
    // (a balancer's probe asks for any inputs: they wait for the other nodes' replicas)
    if (n.role === 'balancer') {
      t.regex(probe!.text, /^fast_probe '\*' /m);
      t.regex(probe!.text, /^echo "silver-fast: hit \$FP_DIGEST"$/m);
      t.regex(full!.text.trimEnd(), /\nfingerprint_end [0-9a-f]{64}$/);
      continue;
    }
    const digest = /^fast_probe ([0-9a-f]{64}) /m.exec(probe!.text)![1]!;
    t.true(full!.text.trimEnd().endsWith(`fingerprint_end ${digest}`), 'and records the digest the probe sent, last');
  }
  fake.reset();
  const second = await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  for (const n of second.nodes) {
    t.deepEqual(fake.kinds(n.name), ['probe'], `${n.name}: one remote command`);
    t.is(n.checked, 'fingerprint');
    t.is(n.status, 'unchanged');
    t.deepEqual(n.layers.map((l) => l.layer), ['base', 'wire', n.role === 'appserver' ? 'appserver' : n.role.startsWith('service:') ? `service/${n.role.slice(8)}` : n.role]);
  }
  // A dry run takes the fast path too (SILVER_CHECK is not part of the digest).
  fake.reset();
  const dry = await setupNodes(ns, rt, { dryRun: true, concurrency: 4 });
  t.true(dry.nodes.every((n) => n.checked === 'fingerprint'));
  t.true([...fake.sent.values()].every((l) => l.length === 1 && /^SILVER_CHECK=1$/m.test(l[0]!.text)));
});

test('a node that drifted, or a nodeset that changed, gets the full script; --full skips the probe; an image builder records nothing', async (t) => {
  const { ns, rt, fake } = await setup();
  await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  fake.reset();
  fake.drifted.add('app1.shop.test');
  const r = await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  t.deepEqual(fake.kinds('app1.shop.test'), ['probe', 'full']);
  t.is(r.nodes.find((n) => n.name === 'app1.shop.test')!.checked, 'full');
  t.deepEqual(fake.kinds('app2.shop.test'), ['probe']);

  // Another app in the nodeset: every node's inputs change (the app users, the proxy's locations).
  const other = { ...ns, locations: [...ns.locations, { ...ns.locations[0]!, path: '/wiki/', app: 'wiki' }] };
  fake.reset();
  await setupNodes(other, rt, { dryRun: false, concurrency: 4 });
  for (const n of ns.nodes) t.deepEqual(fake.kinds(n.name), ['probe', 'full'], n.name);

  fake.reset();
  const full = await setupNodes(other, rt, { dryRun: false, concurrency: 4, fast: 'full' });
  for (const n of full.nodes) {
    t.deepEqual(fake.kinds(n.name), ['full'], n.name);
    t.is(n.checked, 'full');
  }
  fake.reset();
  await setupNodes(other, rt, { dryRun: false, concurrency: 4, fast: 'none' });
  for (const n of ns.nodes) {
    const [only, ...rest] = fake.sent.get(n.name)!;
    t.deepEqual(rest, []);
    t.is(only!.kind, 'full');
    t.true(only!.text.includes('\nfingerprint_begin\n'), 'an old fingerprint is still removed');
    t.false(/^fingerprint_end [0-9a-f]/m.test(only!.text), 'and none recorded');
  }
});

test('a layer whose probe.sh fails fails the node as the full run would (exit code, layer), without a second command', async (t) => {
  const { ns, rt, fake } = await setup();
  await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  fake.reset();
  fake.probeFails.set('app1.shop.test', 'appserver');
  const r = await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  const app1 = r.nodes.find((n) => n.name === 'app1.shop.test')!;
  t.is(app1.status, 'failed');
  t.regex(app1.error!, /^appserver: exited 1/);
  t.deepEqual(fake.kinds('app1.shop.test'), ['probe']);
});

test('the probe holds what it needs of lib.sh, the fingerprint check and each layer\'s probe.sh, and none of the node\'s variables (no key, no rendered file)', async (t) => {
  const { ns, rt, fake } = await setup();
  await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  const [probe, full] = fake.sent.get('app1.shop.test')!;
  const whole = readFileSync(join(layersRoot(), 'lib.sh'), 'utf8');
  const lib = libSubset(whole, ['fast_probe', ...['base', 'appserver'].map((l) => readFileSync(join(layersRoot(), l, 'probe.sh'), 'utf8'))].join('\n'));
  t.true(probe!.text.includes(lib));
  t.true(full!.text.includes(whole), 'the full script has all of it');
  const defined = [...lib.matchAll(/^([a-z_]+)\(\) \{$/gm)].map((m) => m[1]);
  t.deepEqual(defined, ['changed', 'act', '_unit_fast', 'firewall_loaded', '_fw_want', '_fw_listed', '_proc_start', 'nft_watch_holds', 'repair_instances', 'instances_well', '_watch_idle', '_btime', '_units_in', 'fast_probe'], 'the check, what the probes call, and what those call');
  t.true(lib.length < whole.length / 4);
  t.true(probe!.text.includes(readFileSync(join(layersRoot(), 'base', 'probe.sh'), 'utf8')));
  t.true(probe!.text.includes(readFileSync(join(layersRoot(), 'appserver', 'probe.sh'), 'utf8')));
  const assigned = [...probe!.text.replace(lib, '').matchAll(/^(SILVER_[A-Z_]+)=/gm)].map((m) => m[1]);
  t.deepEqual([...new Set(assigned)].sort(), ['SILVER_CHECK', 'SILVER_LAYER', 'SILVER_REPAIR_TOKEN']);
  t.true(/^SILVER_AUTHORIZED=/m.test(full!.text), 'the full script has the variables');
  t.true(probe!.text.length < full!.text.length / 2);
});

test('the digest: the same for the same inputs, whatever SILVER_CHECK says; another for any other variable or a changed layer file', (t) => {
  const layers: { layer: string; vars: Record<string, string> }[] = [{ layer: 'base', vars: { SILVER_CHECK: '0', SILVER_APPS: 'hello', SILVER_NODE: 'app1' } }, { layer: 'appserver', vars: { SILVER_CHECK: '0', SILVER_NGINX_CONF: 'server {}' } }];
  const d = nodeDigest(layers);
  t.regex(d, /^[0-9a-f]{64}$/);
  t.is(nodeDigest(layers.map((l) => ({ ...l, vars: { ...l.vars, SILVER_CHECK: '1' } }))), d);
  t.not(nodeDigest([layers[0]!, { layer: 'appserver', vars: { SILVER_CHECK: '0', SILVER_NGINX_CONF: 'server { }' } }]), d);
  t.not(nodeDigest([{ layer: 'base', vars: { SILVER_CHECK: '0', SILVER_APPS: 'hello wiki', SILVER_NODE: 'app1' } }, layers[1]!]), d);
  t.not(nodeDigest([layers[1]!, layers[0]!]), d, 'the layers\' order counts');
  // (a variable's value cannot pass for the next variable)
  t.not(nodeDigest([{ layer: 'base', vars: { A: 'x', B: 'y' } }]), nodeDigest([{ layer: 'base', vars: { A: 'x\u0000B=y' } }]));
  const root = mkdtempSync(join(tmpdir(), 'silver-layers-'));
  cpSync(layersRoot(), root, { recursive: true });
  t.is(nodeDigest(layers, root), nodeDigest(layers, root));
  const other = mkdtempSync(join(tmpdir(), 'silver-layers-'));
  cpSync(layersRoot(), other, { recursive: true });
  writeFileSync(join(other, 'appserver', 'bin', 'silver-deploy'), `${readFileSync(join(other, 'appserver', 'bin', 'silver-deploy'), 'utf8')}\n# changed\n`);
  t.not(nodeDigest(layers, other), nodeDigest(layers, root), 'a changed helper changes the digest');
  t.true(probeScript(['base', 'wire', 'appserver'], d, false, root).toString().includes(`fast_probe ${d} `));
});

/** A second run after a first full one, with app1 answering as `mark` says; app1's result. */
async function secondRun(mark: (fake: Nodes) => void) {
  const { ns, rt, fake } = await setup();
  await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  fake.reset();
  mark(fake);
  const r = await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  return { fake, app1: r.nodes.find((n) => n.name === 'app1.shop.test')! };
}

test('attack: output that only looks like a hit (a hit line after the first, markers of other layers) is no hit: the full script runs', async (t) => {
  const { fake, app1 } = await secondRun((f) => f.spoofed.add('app1.shop.test'));
  t.deepEqual(fake.kinds('app1.shop.test'), ['probe', 'full'], 'the hit line was not the first: a miss');
  t.is(app1.checked, 'full');
  t.is(app1.status, 'unchanged', 'the full run\'s own markers alone');
  t.deepEqual(app1.layers.map((l) => l.layer), ['base', 'wire', 'appserver']);
});

test('attack: markers of other layers than the node\'s, in a hit, fail the node', async (t) => {
  const { app1 } = await secondRun((f) => f.otherMarkers.add('app1.shop.test'));
  t.is(app1.status, 'failed');
  t.regex(app1.error!, /markers of other layers \(base, base, base\)/);
});

const BALANCER = 'balancer.shop.test';
const b64 = (s: string) => Buffer.from(s).toString('base64');
const modes = (seq: number, message: string) => JSON.stringify({ seq, modes: { '*': { mode: 'maintenance', retryAfter: 30, message } }, allow: [] });

test('the balancer\'s layer takes the state from every node: each probe brings its node\'s replica, the balancer\'s too (no session of its own); the balancer\'s probe is a hit only for the inputs those make', async (t) => {
  const { ns, rt, fake, nodes } = await setup();
  for (const n of ns.nodes) nodes.state.set(n.name, new Map([['maintenance', modes(1, 'old')]]));
  // The newest copy on one app server alone: only a read of every node finds it.
  nodes.state.get('app2.shop.test')!.set('maintenance', modes(2, 'new'));
  const r = await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  t.true(r.nodes.every((n) => n.status !== 'failed'));
  const gets = fake.sessions.filter((c) => c.includes('silver-state get'));
  t.deepEqual(gets, [], 'no state session');
  for (const n of ns.nodes) t.regex(fake.sent.get(n.name)![0]!.text, /^\{ printf '== silver-state %s\\n' [0-9a-f]{24}; \/usr\/local\/lib\/silverlining\/bin\/silver-state get apps maintenance < \/dev\/null/m, n.name);
  t.true(fake.sent.get(BALANCER)!.at(-1)!.text.includes(b64('new')), 'the newest record reached the balancer');
  // Each probe has a nonce of its own.
  const nonces = ns.nodes.map((n) => /== silver-state %s\\n' ([0-9a-f]+)/.exec(fake.sent.get(n.name)![0]!.text)![1]);
  t.is(new Set(nonces).size, nonces.length);
  // Once more, nothing changed: the balancer's hit (it names the digest of these inputs) is taken.
  fake.reset();
  let again = await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  t.deepEqual(fake.kinds(BALANCER), ['probe']);
  t.is(again.nodes.find((n) => n.name === BALANCER)!.checked, 'fingerprint');
  // A newer record on one node: the balancer's hit names the old inputs' digest — a full run with
  // the new ones, the hit's own output never shown.
  nodes.state.get('app1.shop.test')!.set('maintenance', modes(3, 'newer'));
  fake.reset();
  const err: string[] = [];
  const io = rt.io.err;
  rt.io.err = (line: string) => (err.push(line), io(line));
  again = await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  rt.io.err = io;
  t.deepEqual(fake.kinds(BALANCER), ['probe', 'full']);
  t.true(fake.sent.get(BALANCER)!.at(-1)!.text.includes(b64('newer')));
  const b = again.nodes.find((n) => n.name === BALANCER)!;
  t.is(b.checked, 'full');
  t.deepEqual(b.layers.map((l) => l.layer), ['base', 'wire', 'balancer'], 'the full run\'s layers, once each');
  t.is(err.filter((l) => l.startsWith(`${BALANCER}: base: `)).length, 1);
  // A hit line without a digest, or with another's, is no hit for the balancer.
  for (const line of [FAST_HIT, `${FAST_HIT} ${'0'.repeat(64)}`, `${FAST_HIT} ${'A'.repeat(64)}`]) {
    const exec = fake.exec.bind(fake);
    fake.exec = async (node, command, stdin, timeoutMs, onStdout) => {
      if (node !== BALANCER || !/^fast_probe '\*' /m.test(String(stdin))) return exec(node, command, stdin, timeoutMs, onStdout);
      const out = `${line}\nsilver-layer-begin: base\nsilver-layer-end: base 0\nsilver-layer-begin: wire\nsilver-layer-end: wire 0\nsilver-layer-begin: balancer\nsilver-layer-end: balancer 0\n`;
      onStdout?.(out);
      return { code: 0, stdout: out, stderr: await nodes.stateFrame(node, String(stdin)) };
    };
    fake.reset();
    again = await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
    fake.exec = exec;
    t.deepEqual(fake.kinds(BALANCER), ['full'], line);
    t.is(again.nodes.find((n) => n.name === BALANCER)!.checked, 'full', line);
  }
  // What the layers' probes changed in a hit turned down (the firewall loaded again) is reported
  // with the full run's layer, which finds nothing left to do.
  const exec = fake.exec.bind(fake);
  fake.exec = async (node, command, stdin, timeoutMs, onStdout) => {
    if (node !== BALANCER || !/^fast_probe '\*' /m.test(String(stdin))) return exec(node, command, stdin, timeoutMs, onStdout);
    const out = `${FAST_HIT} ${'0'.repeat(64)}\nsilver-layer-begin: base\nsilver-changed: load firewall rules\nsilver-layer-end: base 0\nsilver-layer-begin: wire\nsilver-layer-end: wire 0\nsilver-layer-begin: balancer\nsilver-layer-end: balancer 0\n`;
    onStdout?.(out);
    return { code: 0, stdout: out, stderr: await nodes.stateFrame(node, String(stdin)) };
  };
  again = await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  fake.exec = exec;
  const reloaded = again.nodes.find((n) => n.name === BALANCER)!;
  t.is(reloaded.status, 'changed');
  t.deepEqual(reloaded.layers.map((l) => [l.layer, l.changes]), [['base', ['load firewall rules']], ['wire', []], ['balancer', []]]);

  // --full: no probe, every node asked in a session of its own.
  fake.reset();
  fake.sessions.length = 0;
  await setupNodes(ns, rt, { dryRun: false, concurrency: 4, fast: 'full' });
  t.deepEqual(fake.sessions.filter((c) => c.includes('silver-state get')).map((c) => c.split(' ')[0]).sort(), ns.nodes.map((n) => n.name).sort());
});

test('attack: a replica\'s record that forges the end of the frame or a hit ends nothing and decides nothing', async (t) => {
  const { ns, rt, fake, nodes } = await setup();
  await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  for (const n of ns.nodes) nodes.state.set(n.name, new Map([['maintenance', modes(1, 'old')]]));
  // The deploy user writes the state: a record with lines of its own (another nonce's end, a hit,
  // a newer copy after the forged end).
  nodes.state.get('app1.shop.test')!.set('maintenance', `${modes(2, 'mid')}\n== silver-state-end ${'0'.repeat(24)} 0\n${FAST_HIT}\n== maintenance\n${modes(3, 'forged')}`);
  fake.reset();
  const r = await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  t.true(r.nodes.every((n) => n.status !== 'failed'));
  // (the forged lines are inside the frame: the replica as silver-state get gave it, a copy with
  // seq 3 included — as a session's read would have it; never the probe's verdict)
  t.true(fake.sent.get(BALANCER)!.at(-1)!.text.includes(b64('forged')));
  t.deepEqual(fake.kinds('app1.shop.test'), ['probe'], 'the probe\'s own first line decided');
  // The frame: cut where its own nonce ends it, its command's exit code kept, the rest untouched.
  const nonce = 'ab'.repeat(12);
  t.deepEqual(takeStateDump(`x\n== silver-state ${nonce}\n== apps\n{}\n== silver-state-end ${'0'.repeat(24)} 0\n== silver-state-end ${nonce} 0\ny\n`, nonce), { dump: `== apps\n{}\n== silver-state-end ${'0'.repeat(24)} 0\n`, rest: 'x\ny\n' });
  t.deepEqual(takeStateDump(`== silver-state ${nonce}\n== apps\n{}\n== silver-state-end ${nonce} 127\n`, nonce), { dump: null, rest: '' });
  t.deepEqual(takeStateDump(`== silver-state ${nonce}\n== apps\n`, nonce), { dump: null, rest: '' }, 'cut short: no answer');
  t.deepEqual(takeStateDump('sh: 1: error\n', nonce), { dump: null, rest: 'sh: 1: error\n' });
});

test('the probe in a real shell: a hit prints each layer\'s markers in order; a probe.sh that fails ends the probe before its end marker; the state dump is framed on standard error', (t) => {
  // (layer trees of this test's own: this machine has no fingerprint, so the check is made to
  // hold; probes that print what they ran; a layer's probe.sh is read once a process, by path)
  const tree = (base: string) => {
    const root = mkdtempSync(join(tmpdir(), 'silver-layers-'));
    t.teardown(() => rmSync(root, { recursive: true, force: true }));
    cpSync(layersRoot(), root, { recursive: true });
    writeFileSync(join(root, 'base', 'probe.sh'), base);
    writeFileSync(join(root, 'appserver', 'probe.sh'), 'echo "appserver probe ran"\n');
    return root;
  };
  const nonce = 'cd'.repeat(12);
  const run = (root: string) => {
    const text = probeScript(['base', 'wire', 'appserver'], 'f'.repeat(64), true, root, { nonce, command: `printf '== apps\\n{"seq":4}\\n'` }).toString().replace(/^fast_probe [0-9a-f]{64} /m, 'true ');
    return spawnSync('sh', ['-s'], { input: text, encoding: 'utf8' });
  };
  let r = run(tree('echo "base probe ran"\n'));
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout, `${FAST_HIT}\nsilver-layer-begin: base\nbase probe ran\nsilver-layer-end: base 0\nsilver-layer-begin: wire\nsilver-layer-end: wire 0\nsilver-layer-begin: appserver\nappserver probe ran\nsilver-layer-end: appserver 0\n`);
  t.deepEqual(takeStateDump(r.stderr, nonce), { dump: '== apps\n{"seq":4}\n', rest: '' });
  r = run(tree('echo "base probe ran"\nfalse\necho "never"\n'));
  t.is(r.status, 1);
  t.is(r.stdout, `${FAST_HIT}\nsilver-layer-begin: base\nbase probe ran\n`);
  // A probe of any inputs (a balancer's): the real check of a fingerprint that holds, its hit line
  // naming the digest the node recorded; a fingerprint of a digest that is no digest, a miss.
  const dir = tempDir(t, 'silver-fp-');
  const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  const btime = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))![1];
  const since = Math.floor(Date.now() / 1000) + 3600;
  const any = (fp: string) => {
    writeFileSync(join(dir, 'fingerprint'), `FP_DIGEST=${fp}\nFP_SINCE=${since}\nFP_ROOTS=""\nFP_POINTS="${dir}"\nFP_BOOT=${boot}\nFP_BTIME=${btime}\nFP_END=1\n`);
    const text = probeScript(['base', 'wire', 'appserver'], ANY_DIGEST, true, tree('echo "base probe ran"\n')).toString().replace(/^FP_DIR=.*$/m, `FP_DIR=${dir}`);
    t.regex(text, /^fast_probe '\*' /m);
    return spawnSync('sh', ['-s'], { input: text, encoding: 'utf8' });
  };
  r = any('e'.repeat(64));
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout.split('\n')[0], `${FAST_HIT} ${'e'.repeat(64)}`);
  t.is(recordedDigest(r.stdout.split('\n')[0]!), 'e'.repeat(64));
  t.true(r.stdout.includes('base probe ran'));
  t.is(any('E'.repeat(64)).stdout, 'silver-fast: miss (new inputs)\n');
});

test('lib.sh cut to what a script calls: top-level lines whole and in order, the functions it names and the ones they call, without their comments; the real probe runs on it', (t) => {
  const lib = ['#!/bin/sh', '# a comment', 'set -eu', "NL='", "'", 'one() {', '  # calls two', '  two', '}', '', 'two() {', '  echo "two $NL"', '}', 'three() {', '  cat <<EOT', '# kept: a here-document', 'EOT', '}', 'unused() {', '  one', '}', 'X=1', ''].join('\n');
  t.is(libSubset(lib, 'one'), ['set -eu', "NL='", "'", 'X=1', 'one() {', '  two', '}', 'two() {', '  echo "two $NL"', '}', ''].join('\n'));
  t.is(libSubset(lib, 'echo; three # one'), ['set -eu', "NL='", "'", 'X=1', 'three() {', '  cat <<EOT', '# kept: a here-document', 'EOT', '}', ''].join('\n'), 'a name counts as a whole word; here-documents keep their lines');
  t.throws(() => libSubset('f() {\n  true\n', 'f'), { message: /does not end/ });
  // The real probe, on this machine (no fingerprint in its own scratch folder): a miss, said in words.
  const dir = tempDir(t, 'silver-fp-');
  const text = probeScript(['base', 'wire', 'appserver'], 'f'.repeat(64), true).toString().replace(/^FP_DIR=.*$/m, `FP_DIR=${dir}`);
  const probe = () => spawnSync('sh', ['-s'], { input: text, encoding: 'utf8' });
  let r = probe();
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout, 'silver-fast: miss (no fingerprint)\n');
  // A fingerprint of these inputs, of another boot: the probe reads on to the boot.
  writeFileSync(join(dir, 'fingerprint'), `FP_DIGEST=${'f'.repeat(64)}\nFP_BOOT=another\nFP_END=1\n`);
  t.is(probe().stdout, 'silver-fast: miss (a reboot or a step of the clock)\n');
  // This boot: the boot time as the clock has it (/proc/stat's btime, read by the shell) must be
  // the fingerprint's within 2 s — a step of the clock moves it; none, or not a number, is a miss.
  const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  const btime = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))![1]);
  const at = (b: string) => writeFileSync(join(dir, 'fingerprint'), `FP_DIGEST=${'f'.repeat(64)}\nFP_BOOT=${boot}\nFP_BTIME=${b}\nFP_END=1\n`);
  for (const stepped of [String(btime + 10), String(btime - 3), '', 'x1']) {
    at(stepped);
    t.is(probe().stdout, 'silver-fast: miss (a reboot or a step of the clock)\n', stepped);
  }
  for (const same of [btime, btime - 2, btime + 2]) {
    at(String(same));
    t.is(probe().stdout, 'silver-fast: miss (a watched path is gone)\n', 'past the clock: on to the files');
  }
  // Work a full run left undone (its follow-ups listed, a key's processes to end): never a hit.
  for (const mark of ['dirty.base', 'keys-removed']) {
    writeFileSync(join(dir, mark), '');
    r = probe();
    t.is(r.stdout, 'silver-fast: miss (an earlier run left work undone)\n', mark);
    rmSync(join(dir, mark));
  }
});

test('--concurrency N: at most N full scripts at once, probes to four times as many nodes at once; a balancer waiting for the others\' replicas holds no slot', async (t) => {
  const { ns, rt, fake } = await setup();
  const running = { probe: 0, full: 0 };
  const peak = { probe: 0, full: 0 };
  const exec = fake.exec.bind(fake);
  fake.exec = async (node, command, stdin, timeoutMs, onStdout) => {
    const kind = !String(command).endsWith('sh -s') ? null : /^fast_probe ([0-9a-f]{64}|'\*') /m.test(String(stdin)) ? 'probe' : 'full';
    if (!kind) return exec(node, command, stdin, timeoutMs, onStdout);
    running[kind]++;
    peak[kind] = Math.max(peak[kind], running[kind]);
    await new Promise((r) => setTimeout(r, 20));
    try {
      return await exec(node, command, stdin, timeoutMs, onStdout);
    } finally {
      running[kind]--;
    }
  };
  // (a first run: every node misses, then runs its full script)
  const r = await setupNodes(ns, rt, { dryRun: false, concurrency: 1 });
  t.true(r.nodes.every((n) => n.status !== 'failed'));
  t.is(peak.full, 1);
  t.true(ns.nodes.length > 2 && peak.probe > 1 && peak.probe <= 4, `probes at once: ${peak.probe}`);
});

// setup-node under the deploy lock (setup-lock.ts): a run that sends any full script takes the
// lock first and reads the node list again under it; a no-op takes none.

const lockOf = (fake: Nodes, node: string) => fake.nodes.state.get(node)?.get('lock') ?? null;
const tokenIn = (text: string) => /^SILVER_LOCK_TOKEN='?([0-9a-f]{32})'?$/m.exec(text)?.[1] ?? null;
/** The lock `silver-deploy repair` may act under (setup-node's own only). */
const repairTokenIn = (text: string) => /^SILVER_REPAIR_TOKEN='?([0-9a-f]{32})'?$/m.exec(text)?.[1] ?? null;

test('setup-node takes the deploy lock before its first full script, names it to the scripts (repair knows its own), and lets it go; a no-op takes none', async (t) => {
  const { ns, rt, fake } = await setup();
  let heldAtFull: (string | null)[] = [];
  const exec = fake.exec.bind(fake);
  fake.exec = async (node, command, stdin, timeout, onStdout) => {
    if (/^fingerprint_begin$/m.test(String(stdin ?? ''))) heldAtFull.push(lockOf(fake, node));
    return exec(node, command, stdin, timeout, onStdout);
  };
  const first = await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  t.true(first.nodes.every((n) => n.status !== 'failed'));
  const firstFull = fake.events.findIndex((e) => e.endsWith(' full'));
  const firstLock = fake.events.findIndex((e) => e.endsWith(' lock'));
  t.true(firstLock >= 0 && firstLock < firstFull, fake.events.join('\n'));
  t.is(heldAtFull.length, ns.nodes.length);
  const token = /^(\S+) /.exec(heldAtFull[0]!)![1]!;
  t.true(heldAtFull.every((l) => l?.startsWith(`${token} `)), 'every full script ran while the lock was held');
  for (const n of ns.nodes) {
    for (const sent of fake.sent.get(n.name)!) {
      t.is(repairTokenIn(sent.text), token, `${n.name}: the ${sent.kind} lets repair act under the run's own lock`);
      if (sent.kind === 'full') t.is(tokenIn(sent.text), token, `${n.name}: the full script names the run's lock`);
    }
  }
  for (const n of ns.nodes) t.is(lockOf(fake, n.name), null, 'released');
  t.true(fake.events.some((e) => e.endsWith(' unlock')));

  // A no-op: every probe a hit, no lock taken (nothing changed, nothing to keep others from).
  fake.events.length = 0;
  fake.reset();
  heldAtFull = [];
  const again = await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  t.true(again.nodes.every((n) => n.checked === 'fingerprint'));
  t.deepEqual(fake.events.filter((e) => !e.endsWith(' probe') && !e.endsWith(' get')), []);
  // (each run its own token: an old one opens no later run's lock)
  t.not(repairTokenIn(fake.sent.get('app1.shop.test')![0]!.text), token);
});

test('a lock another command holds: the nodes that need a full script fail, saying who holds it, and get none; a dry run takes no lock', async (t) => {
  const { ns, rt, fake } = await setup();
  await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  for (const n of ns.nodes) fake.nodes.state.get(n.name)!.set('lock', `f00d ${Buffer.from('ops@deploy pid 1: update hello since then').toString('base64')}`);
  fake.reset();
  fake.events.length = 0;
  fake.drifted.add('app1.shop.test');
  const r = await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  const app1 = r.nodes.find((n) => n.name === 'app1.shop.test')!;
  t.is(app1.status, 'failed');
  t.regex(app1.error!, /nodeset shop is locked by ops@deploy pid 1: update hello/);
  t.deepEqual(fake.kinds('app1.shop.test'), ['probe'], 'no full script');
  for (const n of r.nodes.filter((x) => x.name !== 'app1.shop.test')) t.is(n.status, 'unchanged', n.name);
  for (const n of ns.nodes) t.true(lockOf(fake, n.name)!.startsWith('f00d '), 'the holder keeps it');

  fake.reset();
  fake.events.length = 0;
  const dry = await setupNodes(ns, rt, { dryRun: true, concurrency: 4 });
  t.true(dry.nodes.every((n) => n.status !== 'failed'));
  t.deepEqual(fake.kinds('app1.shop.test'), ['probe', 'full'], 'the dry run\'s full script, under no lock');
  t.false(fake.events.some((e) => / (un)?lock$/.test(e)));
});

test('nodes never set up (no silver-state) count in no majority: the first setup runs under a lock no node grants, each node taking it as it gets silver-state; a nodeset where some have it takes it on those', async (t) => {
  const { ns, rt, fake } = await setup();
  const fresh = new Set(ns.nodes.map((n) => n.name));
  fake.nodes.failWhen = (c) => (fresh.has(c.node) && c.argv[2]?.endsWith('/silver-state') ? `sudo: ${c.argv[2]}: command not found` : null);
  const first = await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  t.true(first.nodes.every((n) => n.status !== 'failed' && n.checked === 'full'), JSON.stringify(first.nodes.map((n) => n.error)));
  for (const n of ns.nodes) {
    const text = fake.sent.get(n.name)!.at(-1)!.text;
    t.true(tokenIn(text) !== null);
    t.regex(text, /^SILVER_LOCK_TTL=30$/m);
    t.regex(text, /^SILVER_FRESH_STATE=0; \[ -e \/usr\/local\/lib\/silverlining\/bin\/silver-state \] \|\| SILVER_FRESH_STATE=1$/m);
    t.true(Buffer.from(/^SILVER_LOCK_HOLDER='?([A-Za-z0-9+/=]+)'?$/m.exec(text)![1]!, 'base64').toString().includes(': setup-node since '));
  }

  // One node has it (the others new, a nodeset that grew): the lock is taken there.
  fresh.delete('app1.shop.test');
  fake.reset();
  fake.events.length = 0;
  for (const n of ns.nodes) fake.drifted.add(n.name);
  const grown = await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  t.true(grown.nodes.every((n) => n.status !== 'failed'));
  t.true(fake.events.includes('app1.shop.test lock'));
  t.true(fake.events.includes('app1.shop.test unlock'));
});

test('the nodes changed since the run began (another host key under the lock): no full script runs, the lock is let go', async (t) => {
  const { ns, rt, fake } = await setup();
  await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  fake.reset();
  fake.events.length = 0;
  fake.drifted.add('app1.shop.test');
  // (replace-node built app2 anew between this run's node list and its lock)
  fake.nodes.onCall = (c) => {
    if (c.argv[3] === 'lock') rt.state.pin(ns.name, 'app2.shop.test', 'h', 'ssh-ed25519 OTHER');
  };
  const r = await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  const app1 = r.nodes.find((n) => n.name === 'app1.shop.test')!;
  t.is(app1.status, 'failed');
  t.regex(app1.error!, /the nodeset's nodes changed since this setup-node began \(app2\.shop\.test has another host key\): nothing was changed; run it again/);
  t.deepEqual(fake.kinds('app1.shop.test'), ['probe']);
  for (const n of ns.nodes) t.is(lockOf(fake, n.name), null, 'let go');
});

test('a caller\'s lock (replace-node, delete-node): no lock of the run\'s own, its token in the scripts; a lost one stops the full scripts', async (t) => {
  const { ns, rt, fake } = await setup();
  const { Session } = await import('../../src/deploy/session.js');
  const s = await Session.open(ns, rt);
  const lease = await s.state.lock('ops@here pid 1: replace-node app2.shop.test since then');
  fake.events.length = 0;
  const r = await setupNodes(ns, rt, { dryRun: false, concurrency: 4, lease });
  t.true(r.nodes.every((n) => n.status !== 'failed'));
  t.deepEqual(fake.events.filter((e) => / (un)?lock$/.test(e)), []);
  for (const n of ns.nodes) t.is(tokenIn(fake.sent.get(n.name)!.at(-1)!.text), lease.token);
  // (under a caller's lock — a database node being rebuilt — repair leaves the nodes alone, as for any deploy)
  for (const n of ns.nodes) for (const sent of fake.sent.get(n.name)!) t.is(repairTokenIn(sent.text), null, `${n.name}: ${sent.kind}`);
  for (const n of ns.nodes) t.true(lockOf(fake, n.name)!.startsWith(`${lease.token} `), 'still the caller\'s');

  // (the lock broken on every node: the next beat finds it so)
  fake.reset();
  for (const n of ns.nodes) fake.nodes.state.get(n.name)!.delete('lock');
  await lease.beat();
  t.truthy(lease.lost);
  fake.drifted.add('app1.shop.test');
  const lost = await setupNodes(ns, rt, { dryRun: false, concurrency: 4, lease });
  t.regex(lost.nodes.find((n) => n.name === 'app1.shop.test')!.error!, /the deploy lock was lost/);
  t.deepEqual(fake.kinds('app1.shop.test'), ['probe']);
  await lease.release();
  await s.close();
});

test('a data folder (ensure_data_dir) in the fingerprint: entries written in it keep the hit (the deploy lock, a record, an app\'s file); its mode, owner, a link in its place or its removal is a miss', (t) => {
  const dir = tempDir(t, 'silver-fp-');
  const fp = join(dir, 'fp');
  const data = join(dir, 'data');
  const plain = join(dir, 'plain');
  spawnSync('sh', ['-c', `mkdir -m 700 "${fp}" && mkdir "${data}" && chmod 750 "${data}" && touch "${plain}"`]);
  const owner = spawnSync('stat', ['-c', '%U:%G', data], { encoding: 'utf8' }).stdout.trim();
  const lib = readFileSync(join(layersRoot(), 'lib.sh'), 'utf8');
  const sh = (body: string) => spawnSync('sh', ['-s'], { input: `set -u\n${lib}\nFP_DIR=${fp}\n${body}\n`, encoding: 'utf8' });
  // (a full run's end: the track of what it checked, its start a moment ago)
  const end = sh(`SILVER_TRACK=$FP_DIR/track
printf 'dir %s 750 %s\\npath %s\\n' ${data} ${owner} ${plain} > "$SILVER_TRACK"
: > "$SILVER_TRACK.ok"
_btime; FP_BTIME=$_BT
_ns=$(date +%s%N); _ns=$((_ns + 10000000)); FP_SINCE=\${_ns%?????????}.\${_ns#"\${_ns%?????????}"}
sleep 0.05
fingerprint_end ${'a'.repeat(64)}`);
  t.is(end.status, 0, end.stderr);
  const record = readFileSync(join(fp, 'fingerprint'), 'utf8');
  t.true(record.includes(`FP_DIRS=" ${data} 750 ${owner.replace(':', ' ')}"`), record);
  t.regex(record, new RegExp(`^FP_POINTS=".* ${plain}"$`, 'm'));
  const probe = () => sh(`if fast_probe '*'; then echo hit; else echo "miss ($_MISS)"; fi`).stdout.trim();
  const on = (cmd: string) => t.is(spawnSync('sh', ['-c', cmd], { cwd: dir }).status, 0, cmd);
  t.is(probe(), 'hit');
  on('echo x > data/lock && mv data/lock data/lock2 && rm data/lock2');
  t.is(probe(), 'hit', 'entries written, renamed, removed: no change the full run would see');
  on('chmod 755 data');
  t.is(probe(), 'miss (a file changed)', 'its mode');
  on('chmod 750 data');
  t.is(probe(), 'hit');
  on('mv data data2 && ln -s data2 data');
  t.is(probe(), 'miss (a file changed)', 'a link in its place');
  on('rm data && mv data2 data');
  t.is(probe(), 'hit');
  on('rmdir data');
  t.is(probe(), 'miss (a watched path is gone)');
  on('mkdir data && chmod 750 data && touch plain');
  t.is(probe(), 'miss (a file changed)', 'a plain point is watched by its change time as before');

  // A track line the probe could not read as written: no fingerprint at all.
  for (const line of [`dir ${data} 75x ${owner}`, `dir ${data} 750 root`, `dir ${data} 750 ro ot:root`, `path ${plain} extra`]) {
    rmSync(join(fp, 'fingerprint'), { force: true });
    const r = sh(`SILVER_TRACK=$FP_DIR/track; printf '%s\\n' '${line}' > "$SILVER_TRACK"; : > "$SILVER_TRACK.ok"; _btime; FP_BTIME=$_BT; FP_SINCE=1; fingerprint_end ${'a'.repeat(64)}`);
    t.is(r.status, 0, r.stderr);
    t.throws(() => readFileSync(join(fp, 'fingerprint')), undefined, line);
  }
});

test('a nodeset that grew (new nodes outnumber set-up ones): each new node takes setup-node\'s lock as it gets silver-state, so an update that starts meanwhile is refused', async (t) => {
  const { ns, rt, fake } = await setup();
  const { Session } = await import('../../src/deploy/session.js');
  // app1 was set up before; app2, the database and the balancer are new (no silver-state yet).
  const fresh = new Set(ns.nodes.map((n) => n.name).filter((n) => n !== 'app1.shop.test'));
  fake.nodes.failWhen = (c) => (fresh.has(c.node) && c.argv[2]?.endsWith('/silver-state') ? `sudo: ${c.argv[2]}: command not found` : null);
  let other: string | null = null;
  const exec = fake.exec.bind(fake);
  fake.exec = async (node, command, stdin, timeout, onStdout) => {
    const text = String(stdin ?? '');
    const full = /^fingerprint_begin$/m.test(text);
    const r = await exec(node, command, stdin, timeout, onStdout);
    if (full) {
      // (the base layer installed silver-state there and took the run's lock at once: take_fresh_lock)
      if (fresh.delete(node) && /^SILVER_FRESH_STATE=0; \[ -e \S+\/silver-state \] \|\| SILVER_FRESH_STATE=1$/m.test(text)) {
        const [, token] = /^SILVER_LOCK_TOKEN='?([0-9a-f]+)'?$/m.exec(text)!;
        const [, holder] = /^SILVER_LOCK_HOLDER='?([A-Za-z0-9+/=]+)'?$/m.exec(text)!;
        fake.nodes.state.set(node, new Map([['lock', `${token} ${holder}`]]));
      }
      if (fresh.size === 0 && other === null) {
        other = 'pending';
        // an update starts now, setup-node still running (its lease held)
        const s = await Session.open(ns, rt);
        try {
          const lease = await s.state.lock('ops@elsewhere pid 9: update hello since now');
          other = `update took the lock too (token ${lease.token.slice(0, 6)}); replicas: ${ns.nodes.map((n) => `${n.name}=${(fake.nodes.state.get(n.name)?.get('lock') ?? '-').split(' ')[0]!.slice(0, 6)}`).join(' ')}`;
          await lease.release();
        } catch (e) {
          other = `refused: ${(e as Error).message}`;
        } finally {
          await s.close();
        }
      }
    }
    return r;
  };
  const r = await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  t.true(r.nodes.every((n) => n.status !== 'failed'), JSON.stringify(r.nodes.map((n) => n.error)));
  t.regex(other ?? '', /^refused: nodeset shop is locked by .*setup-node/);
});

test('a running node this machine cannot reach (no pin, no host key from the provider) is no node "created since the run began": the others are set up, run after run', async (t) => {
  const { ns, rt, fake, provider } = await setup();
  await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  // db: running, but no pin here and none from the provider (an EC2 console that scrolled on, another operator's machine)
  rt.state.unpin(ns.name, ['db.shop.test']);
  for (const n of provider.nodes.values()) if (n.name === 'db.shop.test') n.hostKey = '';
  const outcomes: string[] = [];
  for (let i = 0; i < 2; i++) {
    fake.reset();
    fake.drifted.add('app1.shop.test');
    const r = await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
    outcomes.push(r.nodes.map((n) => `${n.name}: ${n.status} ${n.error ?? ''}`).join('\n'));
  }
  t.notRegex(outcomes.join('\n'), /app1\.shop\.test: failed .*db\.shop\.test was created/);
});

test('a two-node nodeset whose app server is gone (replace-node killed after the destroy): the balancer is set up (a node the provider does not have counts in no lock majority)', async (t) => {
  const d = await fakeDeploy(NODESET.replace('nodes = 2', 'nodes = 1').replace('[service:postgresql]\nnode_name = db.shop.test\n', ''));
  const fake = new Nodes(d.nodes);
  d.rt.executor = async () => fake;
  const { ns, rt, provider } = d;
  t.deepEqual(ns.nodes.map((n) => n.name), ['app1.shop.test', 'balancer.shop.test']);
  await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  for (const n of [...provider.nodes.values()]) if (n.name === 'app1.shop.test') await provider.destroy(n);
  rt.state.unpin(ns.name, ['app1.shop.test']);
  fake.reset();
  const r = await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  t.not(r.nodes.find((n) => n.name === 'balancer.shop.test')!.status, 'failed');
});

test('the lock is checked when a full script\'s turn comes: with --concurrency 1 a lock lost meanwhile stops the queued nodes', async (t) => {
  const { ns, rt, fake } = await setup();
  const { Session } = await import('../../src/deploy/session.js');
  await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  const s = await Session.open(ns, rt);
  const lease = await s.state.lock('ops@here pid 1: replace-node since then');
  fake.reset();
  for (const n of ns.nodes) fake.drifted.add(n.name);
  let broken = false;
  const exec = fake.exec.bind(fake);
  const afterLost: string[] = [];
  fake.exec = async (node, command, stdin, timeout, onStdout) => {
    const full = /^fingerprint_begin$/m.test(String(stdin ?? ''));
    if (full && broken) afterLost.push(node);
    const r = await exec(node, command, stdin, timeout, onStdout);
    if (full && !broken) {
      broken = true; // (the lock broken while the first full script ran: silver unlock --force)
      for (const n of ns.nodes) fake.nodes.state.get(n.name)!.delete('lock');
      await lease.beat();
    }
    return r;
  };
  await setupNodes(ns, rt, { dryRun: false, concurrency: 1, lease });
  t.deepEqual(afterLost, []);
  await lease.release();
  await s.close();
});

test('a data folder an app made set-group-ID (chmod g+s) is put back to its mode (chmod keeps that bit for a three-digit mode: it never matched, every run was a full one)', (t) => {
  const dir = tempDir(t, 'silver-mode-');
  const data = join(dir, 'home');
  spawnSync('sh', ['-c', `mkdir "${data}" && chmod 2750 "${data}"`]);
  const owner = spawnSync('stat', ['-c', '%U:%G', data], { encoding: 'utf8' }).stdout.trim();
  const lib = readFileSync(join(layersRoot(), 'lib.sh'), 'utf8');
  const r = spawnSync('sh', ['-s'], { input: `set -eu\nCHECK=0\n${lib}\nensure_data_dir ${data} 750 ${owner}\n`, encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, new RegExp(`${data}: mode 750, owner ${owner}`));
  t.is(spawnSync('stat', ['-c', '%a', data], { encoding: 'utf8' }).stdout.trim(), '750');
  const again = spawnSync('sh', ['-s'], { input: `set -eu\nCHECK=0\n${lib}\nensure_data_dir ${data} 750 ${owner}\n`, encoding: 'utf8' });
  t.is(again.stdout, '', 'the next run finds nothing to change');
});

test('SIGINT during a setup-node: the full script under way finishes, no other starts, the lock is let go, the report says so', async (t) => {
  const { ns, rt, fake, signal } = await setup();
  const exec = fake.exec.bind(fake);
  let fulls = 0;
  fake.exec = async (node, command, stdin, timeout, onStdout) => {
    const full = /^fingerprint_begin$/m.test(String(stdin ?? ''));
    if (full && ++fulls === 1) signal('SIGINT');
    return exec(node, command, stdin, timeout, onStdout);
  };
  const r = await setupNodes(ns, rt, { dryRun: false, concurrency: 1, signals: true });
  t.is(r.interrupted, 'SIGINT');
  t.is(fulls, 1, 'no full script after the signal');
  t.is(r.nodes.filter((n) => n.status !== 'failed').length, 1, 'the one under way finished');
  for (const n of r.nodes.filter((x) => x.status === 'failed')) t.regex(n.error!, /interrupted \(SIGINT\) before this node's turn/);
  for (const n of ns.nodes) t.is(lockOf(fake, n.name), null, 'the lock let go');
});

test('SIGINT while the first full script waits for the deploy lock: no full script starts', async (t) => {
  const { ns, rt, fake, signal } = await setup();
  const exec = fake.exec.bind(fake);
  let fulls = 0;
  let signalled = false;
  fake.exec = async (node, command, stdin, timeout, onStdout) => {
    if (!signalled && /silver-state.* lock /.test(command)) {
      signalled = true;
      signal('SIGINT');
    }
    if (/^fingerprint_begin$/m.test(String(stdin ?? ''))) fulls++;
    return exec(node, command, stdin, timeout, onStdout);
  };
  const r = await setupNodes(ns, rt, { dryRun: false, concurrency: 1, signals: true });
  t.is(r.interrupted, 'SIGINT');
  t.is(fulls, 0);
  for (const n of ns.nodes) t.is(lockOf(fake, n.name), null);
});
