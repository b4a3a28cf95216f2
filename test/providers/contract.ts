import type { ExecutionContext, TestFn } from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { createNodes } from '../../src/commands/create-node.js';
import { memoryIo } from '../../src/output/io.js';
import type { Runtime } from '../../src/runtime.js';
import { StateDir } from '../../src/state.js';
import type { Nodeset } from '../../src/nodeset/types.js';
import { pickFlavor, type Provider } from '../../src/provider.js';

/**
 * The provider contract: every provider adapter passes these tests (the in-memory reference,
 * `local` against real LXC, the cloud providers against their API fixtures).
 */
export interface ContractOptions {
  name: string;
  make: () => Promise<Provider>;
  /** A nodeset name the test owns; its nodes are removed before and after. */
  nodeset: string;
  authorizedKey: string;
  timeoutMs?: number;
  /**
   * True (the default) when the provider installs the host key silver generates before first
   * boot (LXC rootfs, cloud-init). False for providers that learn it later (console output, or
   * the first key seen): then any key they report must be a well-formed public key.
   */
  installsHostKey?: boolean;
}

function fakeNodeset(name: string): Nodeset {
  return {
    name, file: `${name}.conf`, baseDomain: 'contract.test', setEtcHosts: true,
    provider: { type: 'local', name: null, settings: {} }, loadBalancer: false,
    nodes: [], locations: [], hostnames: [], services: [],
  };
}

async function wipe(p: Provider, nodeset: string): Promise<void> {
  for (const n of await p.list(nodeset)) await p.destroy(n);
}

export function providerContract(test: TestFn, o: ContractOptions): void {
  const title = (s: string) => `provider contract (${o.name}): ${s}`;
  let provider: Provider;

  test.serial.before(async () => {
    provider = await o.make();
    await provider.prepare(fakeNodeset(o.nodeset), () => undefined);
    await wipe(provider, o.nodeset);
  });
  test.serial.after.always(async () => {
    if (!provider) return;
    await wipe(provider, o.nodeset);
    await wipe(provider, `${o.nodeset}-other`);
    await provider.release(o.nodeset);
  });

  test.serial(title('sizes are listed and ram sizes resolve to the smallest fitting flavor'), async (t: ExecutionContext) => {
    const flavors = await provider.listSizes();
    t.true(flavors.length > 0);
    const sorted = [...flavors].sort((a, b) => a.ramMb - b.ramMb);
    const smallest = sorted[0]!;
    t.deepEqual(pickFlavor(flavors, { kind: 'ram', mb: smallest.ramMb }, smallest), smallest);
    const second = sorted.find((f) => f.ramMb > smallest.ramMb);
    if (second) t.deepEqual(pickFlavor(flavors, { kind: 'ram', mb: smallest.ramMb + 1 }, smallest), second);
    t.deepEqual(pickFlavor(flavors, { kind: 'id', id: smallest.id }, smallest), smallest);
    t.is(typeof pickFlavor(flavors, { kind: 'id', id: 'no-such-flavor' }, smallest), 'string');
    t.truthy(await provider.resolveImage(null));
  });

  test.serial(title('a created node is labelled, found again by its labels, reachable, and has the host key silver gave'), async (t) => {
    const flavors = await provider.listSizes();
    const hostKey = ssh2.utils.generateKeyPairSync('ed25519');
    const labels = { nodeset: o.nodeset, role: 'appserver' as const, name: 'app1.contract.test', index: 1 };
    const created = await provider.create({ labels, flavor: flavors[0]!, image: await provider.resolveImage(null), authorizedKey: o.authorizedKey, hostKey });
    t.like(created.node, labels);
    const found = await provider.list(o.nodeset);
    t.is(found.length, 1);
    t.like(found[0]!, { ...labels, id: created.node.id });
    t.truthy(found[0]!.privateAddress ?? found[0]!.publicAddress);
    const up = await provider.waitReachable(found[0]!, o.timeoutMs ?? 60_000);
    t.is(up.name, labels.name);
    const key = created.hostKey ?? (await provider.hostKey(up));
    if (o.installsHostKey ?? true) t.is(key?.split(' ').slice(0, 2).join(' '), hostKey.public.split(' ').slice(0, 2).join(' '));
    else if (key !== null) t.regex(key, /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+/);
    t.deepEqual(await provider.list(`${o.nodeset}-other`), [], 'other nodesets do not see it');
  });

  test.serial(title('create-node through this provider: sizes resolved, nodes labelled, no duplicate on a re-run'), async (t) => {
    const ns = fakeNodeset(o.nodeset);
    ns.nodes = [
      { name: 'app1.contract.test', role: 'appserver', index: 1, size: { kind: 'ram', mb: 256 } },
      { name: 'db.contract.test', role: 'service:postgresql', index: 1, size: null },
    ];
    for (const n of await provider.list(o.nodeset)) await provider.destroy(n);
    // The state's deploy key is the one the suite gave the provider; SSH is silver's part, not
    // the provider's, so the probe is a no-op here.
    const home = mkdtempSync(join(tmpdir(), 'silver-contract-'));
    writeFileSync(join(home, 'id_ed25519'), 'unused in this test\n', { mode: 0o600 });
    writeFileSync(join(home, 'id_ed25519.pub'), `${o.authorizedKey}\n`);
    const rt: Runtime = {
      io: memoryIo(), host: { readFile: () => undefined, env: {}, home: '/nonexistent' },
      state: new StateDir(home),
      providerFor: async () => provider, attach: () => { throw new Error('no attach here'); },
    sshProbe: async () => undefined, now: () => Date.now(), confirm: async () => false,
      executor: async () => { throw new Error("no executor in the provider contract"); }, onInterrupt: () => () => undefined,
    };
    const first = await createNodes(ns, rt, { concurrency: 2, sshTimeoutMs: o.timeoutMs ?? 60_000 });
    t.deepEqual(first.outcomes.map((x) => [x.name, x.status]), [['app1.contract.test', 'created'], ['db.contract.test', 'created']], JSON.stringify(first.outcomes));
    const again = await createNodes(ns, rt, { concurrency: 2, sshTimeoutMs: o.timeoutMs ?? 60_000 });
    t.deepEqual(again.outcomes.map((x) => x.status), ['existing', 'existing']);
    const found = await provider.list(o.nodeset);
    t.deepEqual(found.map((n) => [n.name, n.role]).sort(), [['app1.contract.test', 'appserver'], ['db.contract.test', 'service:postgresql']]);
    for (const n of found) await provider.destroy(n);
  });

  test.serial(title('destroy removes the node and only that node'), async (t) => {
    const flavors = await provider.listSizes();
    const hostKey = ssh2.utils.generateKeyPairSync('ed25519');
    const other = await provider.create({
      labels: { nodeset: `${o.nodeset}-other`, role: 'balancer', name: 'lb.contract.test', index: 1 },
      flavor: flavors[0]!, image: await provider.resolveImage(null), authorizedKey: o.authorizedKey, hostKey,
    });
    for (const n of await provider.list(o.nodeset)) await provider.destroy(n);
    t.deepEqual(await provider.list(o.nodeset), []);
    t.deepEqual((await provider.list(`${o.nodeset}-other`)).map((n) => n.id), [other.node.id]);
    await provider.destroy(other.node);
    t.deepEqual(await provider.list(`${o.nodeset}-other`), []);
  });
}
