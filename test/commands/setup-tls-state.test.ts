import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setupNodes } from '../../src/commands/setup-node.js';
import type { ExecResult } from '../../src/ssh/connect.js';
import type { NodeExecutor } from '../../src/ssh/keeper.js';
import { fakeDeploy, shellWords, type FakeNodes } from '../helpers/fake-nodes.js';

// setup-node with tls = acme on a balancer pair, on simulated nodes: each balancer's layer gets
// the ACME state silver kept for that balancer (not its peer's), and after setup each balancer's
// own export is kept under its own name.

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
const EXPORT = '/usr/local/lib/silverlining/bin/silver-acme export';

/** The fake nodes; node scripts kept and answered as finished layers; each balancer's export its own. */
class Nodes implements NodeExecutor {
  readonly scripts = new Map<string, string>();
  readonly exports: string[] = [];
  constructor(readonly nodes: FakeNodes) {}

  async exec(node: string, command: string, stdin?: string | Buffer, _timeoutMs?: number, onStdout?: (chunk: string) => void): Promise<ExecResult> {
    const argv = shellWords(command);
    if (argv.at(-2) === 'sh' && argv.at(-1) === '-s') {
      this.scripts.set(node, String(stdin));
      const layers = [...String(stdin).matchAll(/^echo "silver-layer-begin: (\S+)"$/gm)].map((m) => m[1]);
      const out = layers.map((l) => `silver-layer-begin: ${l}\nsilver-layer-end: ${l} 0\n`).join('');
      onStdout?.(out);
      return { code: 0, stdout: out, stderr: '' };
    }
    if (command.endsWith(EXPORT)) {
      this.exports.push(node);
      return { code: 0, stdout: `${Buffer.from(`state of ${node}`).toString('base64')}\n`, stderr: '' };
    }
    return this.nodes.exec(node, command, stdin);
  }

  async close(): Promise<void> {}
}

const stateVar = (script: string) => /^SILVER_TLS_STATE=(.*)$/m.exec(script)?.[1];
const b64 = (s: string) => Buffer.from(s).toString('base64');

test('each balancer of a pair gets its own kept ACME state, and its own export is kept under its name', async (t) => {
  const d = await fakeDeploy(PAIR);
  const fake = new Nodes(d.nodes);
  d.rt.executor = async () => fake;
  const first = await setupNodes(d.ns, d.rt, { dryRun: false, concurrency: 4 });
  t.true(first.nodes.every((n) => n.status !== 'failed'), JSON.stringify(first.nodes.filter((n) => n.status === 'failed')));
  for (const b of B) t.is(stateVar(fake.scripts.get(b)!), "''", `${b}: nothing kept yet`);
  t.deepEqual([...fake.exports].sort(), B, 'every balancer exported, nothing else');
  const dir = join(d.rt.state.root, 'nodesets', 'shop');
  for (const b of B) t.is(readFileSync(join(dir, `tls-state.${b}`), 'utf8'), `${b64(`state of ${b}`)}\n`);
  // The next run hands each balancer its own.
  await setupNodes(d.ns, d.rt, { dryRun: false, concurrency: 4 });
  for (const b of B) t.is(stateVar(fake.scripts.get(b)!), b64(`state of ${b}`), b);
  t.is(stateVar(fake.scripts.get('app1.shop.test')!), undefined, 'app servers get none');
  // Each balancer's HAProxy passes validation requests to the other.
  const addr = (name: string) => new RegExp(`^balancer = ${name.replaceAll('.', '\\.')} (\\S+)$`, 'm').exec(fake.scripts.get(B[0]!)!.replaceAll("'", ''))?.[1];
  t.truthy(addr(B[1]!));
  t.true(fake.scripts.get(B[0]!)!.includes(`server peer ${addr(B[1]!)}:80`));
  t.true(fake.scripts.get(B[1]!)!.includes(`server peer ${addr(B[0]!)}:80`));
});
