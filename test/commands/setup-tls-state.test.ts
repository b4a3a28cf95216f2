import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setupNodes } from '../../src/commands/setup-node.js';
import type { ExecResult } from '../../src/ssh/connect.js';
import type { NodeExecutor } from '../../src/ssh/keeper.js';
import { fakeDeploy, shellWords, type FakeNodes } from '../helpers/fake-nodes.js';

// setup-node with tls = acme on a balancer pair, on simulated nodes: one certificate for both.
// Only the first balancer orders in its layer; after the layers silver reads both (`silver-acme
// export`), keeps the newest complete one in its state and gives it to the balancer that serves
// another (`silver-acme import`, the bundle on standard input); when none has one (the first
// failed), the other orders then.

const PAIR = `[general]
name = shop
base_domain = shop.test
[provider]
provider = local
subnet = 10.213.9.0/24
[appserver]
nodes = 2
locations = https://shop.test/ hello
[balancer]
nodes = 2
virtual_address = 10.213.9.5
tls = acme
`;
const B = ['balancer1.shop.test', 'balancer2.shop.test'];
const ACME = '/usr/local/lib/silverlining/bin/silver-acme';

/** The fake nodes: node scripts kept and answered as finished layers (or failed); each balancer's certificate as a fake `silver-acme` says. */
class Nodes implements NodeExecutor {
  readonly scripts = new Map<string, string>();
  readonly calls: string[] = [];
  /** Each balancer's certificate: [end, fingerprint] or none. */
  readonly certs = new Map<string, [number, string]>();
  readonly failing = new Set<string>();
  constructor(readonly nodes: FakeNodes) {}

  async exec(node: string, command: string, stdin?: string | Buffer, _timeoutMs?: number, onStdout?: (chunk: string) => void): Promise<ExecResult> {
    const argv = shellWords(command);
    if (argv.at(-2) === 'sh' && argv.at(-1) === '-s') {
      this.scripts.set(node, String(stdin));
      const code = this.failing.has(node) ? 1 : 0;
      const layers = [...String(stdin).matchAll(/^echo "silver-layer-begin: (\S+)"$/gm)].map((m) => m[1]);
      const out = layers.map((l) => `silver-layer-begin: ${l}\nsilver-layer-end: ${l} ${code}\n`).join('');
      onStdout?.(out);
      return { code, stdout: out, stderr: await this.nodes.stateFrame(node, String(stdin)) };
    }
    const i = argv.indexOf(ACME);
    if (i >= 0) {
      const verb = argv[i + 1]!;
      this.calls.push(`${node} ${verb}${stdin ? ` <${String(stdin).trim()}` : ''}`);
      const c = this.certs.get(node);
      if (verb === 'export') return { code: 0, stdout: `${JSON.stringify({ 'shop.test': c ? { end: c[0], sha256: c[1] } : null })}\n${b64(`bundle ${c?.[1] ?? 'none'}`)}\n`, stderr: '' };
      if (verb === 'import') {
        const sha = Buffer.from(String(stdin).trim(), 'base64').toString().replace('bundle ', '');
        this.certs.set(node, [this.end(sha), sha]);
        return { code: 0, stdout: 'silver-acme: certificates installed for shop.test\n', stderr: '' };
      }
      if (verb === 'run') {
        this.certs.set(node, [300, `ORDERED-BY-${node}`]);
        return { code: 0, stdout: '', stderr: '' };
      }
    }
    return this.nodes.exec(node, command, stdin);
  }

  end(sha: string): number {
    return [...this.certs.values()].find(([, s]) => s === sha)?.[0] ?? 0;
  }

  async close(): Promise<void> {}
}

const v = (script: string, name: string) => new RegExp(`^${name}=(.*)$`, 'm').exec(script)?.[1];
const b64 = (s: string) => Buffer.from(s).toString('base64');
const stateFile = (d: Awaited<ReturnType<typeof fakeDeploy>>) => join(d.rt.state.root, 'nodesets', 'shop', 'tls-state');

test('a pair: the first orders, the other gets the same certificate from silver, the one state is kept; a re-run gives nothing', async (t) => {
  const d = await fakeDeploy(PAIR);
  const fake = new Nodes(d.nodes);
  d.rt.executor = async () => fake;
  fake.certs.set(B[0]!, [200, 'AA:01']);
  const first = await setupNodes(d.ns, d.rt, { dryRun: false, concurrency: 4 });
  t.true(first.nodes.every((n) => n.status !== 'failed'), JSON.stringify(first.nodes.filter((n) => n.status === 'failed')));
  t.is(v(fake.scripts.get(B[0]!)!, 'SILVER_ACME_ORDER'), '1');
  t.is(v(fake.scripts.get(B[1]!)!, 'SILVER_ACME_ORDER'), '0');
  for (const b of B) t.is(v(fake.scripts.get(b)!, 'SILVER_TLS_STATE'), "''", `${b}: nothing kept yet`);
  t.deepEqual(fake.calls.sort(), [`${B[0]} export`, `${B[1]} export`, `${B[1]} import <${b64('bundle AA:01')}`]);
  t.deepEqual(fake.certs.get(B[1]!), [200, 'AA:01'], 'the same certificate on both');
  t.is(readFileSync(stateFile(d), 'utf8'), `${b64('bundle AA:01')}\n`);
  t.regex(d.io.stderr.join(""), /balancer2\.shop\.test: balancer: changed: certificates for shop\.test \(from balancer1\.shop\.test\)/);
  t.is(first.nodes.find((n) => n.name === B[1])!.status, 'changed');
  // Both hold the pair's key, each the other's pinned host key.
  const key = d.rt.state.acmePeerKey('shop');
  for (const b of B) t.true(fake.scripts.get(b)!.includes(key.private.trim().split('\n')[1]!), `${b} holds the pair's key`);
  t.true(fake.scripts.get(B[0]!)!.includes(`ssh-ed25519 KEY${B[1]}`));
  // The next run: the state to both, nothing to give.
  fake.calls.length = 0;
  const again = await setupNodes(d.ns, d.rt, { dryRun: false, concurrency: 4 });
  for (const b of B) t.is(v(fake.scripts.get(b)!, 'SILVER_TLS_STATE'), b64('bundle AA:01'), b);
  t.deepEqual(fake.calls.sort(), [`${B[0]} export`, `${B[1]} export`]);
  t.true(again.nodes.every((n) => n.status === 'unchanged' || n.role !== 'balancer'));
  t.is(v(fake.scripts.get('app1.shop.test')!, 'SILVER_TLS_STATE'), undefined, 'app servers get none');
  // Each balancer's HAProxy passes validation requests to the other.
  const addr = (name: string) => new RegExp(`^balancer = ${name.replaceAll('.', '\\.')} (\\S+)$`, 'm').exec(fake.scripts.get(B[0]!)!.replaceAll("'", ''))?.[1];
  t.truthy(addr(B[1]!));
  t.true(fake.scripts.get(B[0]!)!.includes(`server peer ${addr(B[1]!)}:80`));
  t.true(fake.scripts.get(B[1]!)!.includes(`server peer ${addr(B[0]!)}:80`));
});

test('the newer certificate wins: renewed on the second (the holder), silver keeps that one and gives it to the first', async (t) => {
  const d = await fakeDeploy(PAIR);
  const fake = new Nodes(d.nodes);
  d.rt.executor = async () => fake;
  fake.certs.set(B[0]!, [200, 'AA:01']);
  fake.certs.set(B[1]!, [290, 'BB:02']);
  await setupNodes(d.ns, d.rt, { dryRun: false, concurrency: 4 });
  t.deepEqual(fake.certs.get(B[0]!), [290, 'BB:02']);
  t.is(readFileSync(stateFile(d), 'utf8'), `${b64('bundle BB:02')}\n`);
});

test('the first balancer failed and no balancer has a certificate: the other orders after the layers, and its certificate is kept', async (t) => {
  const d = await fakeDeploy(PAIR);
  const fake = new Nodes(d.nodes);
  d.rt.executor = async () => fake;
  fake.failing.add(B[0]!);
  await setupNodes(d.ns, d.rt, { dryRun: false, concurrency: 4 });
  t.deepEqual(fake.calls, [`${B[1]} export`, `${B[1]} run`, `${B[1]} export`]);
  t.regex(d.io.stderr.join(""), /balancer2\.shop\.test: balancer: changed: certificates for shop\.test \(from the ACME server: the other balancer has none\)/);
  t.is(readFileSync(stateFile(d), 'utf8'), `${b64(`bundle ORDERED-BY-${B[1]}`)}\n`);
});
