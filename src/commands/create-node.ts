import pLimit from 'p-limit';
import { formatSize, type Nodeset, type NodeSpec } from '../nodeset/types.js';
import { ExitError } from '../diagnostics.js';
import { pickFlavor, type Provider, type ProviderNode } from '../provider.js';
import type { Runtime } from '../runtime.js';
import { fingerprint } from '../ssh/connect.js';
import { ed25519Pair } from '../ssh/keygen.js';
import { retryUntil } from '../util/retry-until.js';
import { oldImageWarning } from '../image/age.js';

export type CreateStatus = 'created' | 'existing' | 'started' | 'failed';

export interface CreateOutcome {
  name: string;
  role: string;
  status: CreateStatus;
  address: string | null;
  seconds: number;
  error?: string;
}

export interface CreateReport {
  nodeset: string;
  outcomes: CreateOutcome[];
  /** Nodes the provider has for this nodeset that the file no longer implies. */
  orphans: { name: string; role: string; address: string | null }[];
  seconds: number;
}

export interface CreateOptions {
  concurrency: number;
  sshTimeoutMs: number;
}

/** Creates every node of the nodeset that the provider does not have yet; starts stopped ones. */
export async function createNodes(ns: Nodeset, rt: Runtime, opts: CreateOptions): Promise<CreateReport> {
  const t0 = rt.now();
  const provider = await rt.providerFor(ns.provider);
  // Every node's size the provider can meet, before anything is prepared or made: a size no
  // flavor meets is the nodeset's error (exit 2), never a nodeset made in part.
  const flavors = await provider.listSizes();
  const fallback = flavors.find((f) => f.default) ?? flavors[0]!;
  const unmet = ns.nodes.map((n) => [n, pickFlavor(flavors, n.size, fallback)] as const).filter((x): x is readonly [NodeSpec, string] => typeof x[1] === 'string');
  if (unmet.length > 0) {
    throw new ExitError(`${ns.file}: ${unmet.map(([n, why]) => `${n.name}: size ${formatSize(n.size)}: ${why}`).join('; ')} (the ${ns.provider.type} provider; nothing was created)`, 2);
  }
  await provider.prepare(ns, (m) => rt.io.err(m));
  const existing = new Map((await provider.list(ns.name)).map((n) => [n.name, n]));
  const wanted = new Set(ns.nodes.map((n) => n.name));
  const orphans = [...existing.values()].filter((n) => !wanted.has(n.name));
  const deployKey = rt.state.deployKey();
  const providerImage = typeof ns.provider.settings['image'] === 'string' ? ns.provider.settings['image'] : null;
  // Each distinct image once: the provider's, and any tier's own (a baked one).
  const images = new Map<string | null, string>();
  for (const wanted of new Set<string | null>([providerImage, ...ns.nodes.filter((n) => !existing.has(n.name)).map((n) => n.image ?? providerImage)])) {
    const image = await provider.resolveImage(wanted);
    images.set(wanted, image);
    const labels = await provider.imageRecord?.(image);
    const warning = labels ? oldImageWarning(image, labels, rt.now(), ns.file) : null;
    if (warning) rt.io.err(warning);
  }

  const limit = pLimit(opts.concurrency);
  const outcomes = await Promise.all(
    ns.nodes.map((spec) =>
      limit(async (): Promise<CreateOutcome> => {
        const start = rt.now();
        const done = (status: CreateStatus, node: ProviderNode | null, error?: string): CreateOutcome => {
          const seconds = (rt.now() - start) / 1000;
          const line = error ? `failed after ${seconds.toFixed(1)}s: ${error}` : `${status}${node?.privateAddress ? ` ${node.privateAddress}` : ''} (${seconds.toFixed(1)}s)`;
          rt.io.err(`${spec.name}: ${line}`);
          return { name: spec.name, role: spec.role, status, address: node?.privateAddress ?? null, seconds, ...(error ? { error } : {}) };
        };
        let node = existing.get(spec.name) ?? null;
        try {
          if (node && node.state === 'running') {
            await ensurePinned(ns, rt, provider, node);
            // (one whose key the provider cannot tell — silver killed right after making it, before
            // its key was known — is reached as a new one is: waited for, its key pinned on first
            // contact and said so; else every later command would refuse the unpinned node)
            if (!rt.state.pinnedKeys(ns.name).has(node.name)) node = await reachable(ns, rt, provider, node, deployKey.private, opts.sshTimeoutMs);
            return done('existing', node);
          }
          if (node) {
            rt.io.err(`${spec.name}: starting (it was ${node.state})`);
            node = await provider.start(node);
            node = await reachable(ns, rt, provider, node, deployKey.private, opts.sshTimeoutMs);
            return done('started', node);
          }
          const flavor = pickFlavor(flavors, spec.size, fallback);
          if (typeof flavor === 'string') throw new Error(flavor);
          rt.io.err(`${spec.name}: creating ${spec.role} (${formatSize(spec.size) ?? 'default size'} -> ${flavor.id})`);
          const make = async (): Promise<ProviderNode> => {
            // (a pin left of an earlier node of this name — its delete killed before the unpin, or
            // destroyed outside silver — is no key of the new one: kept, it would make this
            // healthy node look like an impostor, and destroyed and made again)
            rt.state.unpin(ns.name, [spec.name]);
            const hostKey = ed25519Pair(`root@${spec.name}`);
            const created = await provider.create({
              labels: { nodeset: ns.name, role: spec.role, name: spec.name, index: spec.index },
              flavor,
              image: images.get(spec.image ?? providerImage)!,
              authorizedKey: deployKey.public,
              hostKey,
            });
            node = created.node;
            if (created.hostKey) rt.state.pin(ns.name, spec.name, node.publicAddress ?? node.privateAddress, created.hostKey);
            return node;
          };
          node = await make();
          try {
            node = await reachable(ns, rt, provider, node, deployKey.private, opts.sshTimeoutMs);
          } catch (e) {
            // A new node that never answers (a bad first boot) is made again once, from scratch.
            rt.io.err(`${spec.name}: ${(e as Error).message.replace(`${spec.name}: `, '')}; destroying it and creating it again`);
            await provider.destroy(node);
            rt.state.unpin(ns.name, [spec.name]);
            node = await reachable(ns, rt, provider, await make(), deployKey.private, opts.sshTimeoutMs);
          }
          return done('created', node);
        } catch (e) {
          return done('failed', node, (e as Error).message);
        }
      }),
    ),
  );
  return {
    nodeset: ns.name,
    outcomes,
    orphans: orphans.map((n) => ({ name: n.name, role: n.role, address: n.privateAddress })),
    seconds: (rt.now() - t0) / 1000,
  };
}

async function ensurePinned(ns: Nodeset, rt: Runtime, provider: Provider, node: ProviderNode, fresh = false): Promise<void> {
  if (rt.state.pinnedKeys(ns.name).has(node.name)) return;
  const key = await provider.hostKey(node, fresh);
  if (key) rt.state.pin(ns.name, node.name, node.publicAddress ?? node.privateAddress, key);
}

/** Waits for the SSH port, pins the host key if the provider could not tell it earlier, and logs in. */
async function reachable(ns: Nodeset, rt: Runtime, provider: Provider, node: ProviderNode, privateKey: string, timeoutMs: number): Promise<ProviderNode> {
  const up = await provider.waitReachable(node, timeoutMs);
  // (the provider may wait for a new node's key; the SSH attempts get their whole time after it)
  await ensurePinned(ns, rt, provider, up, true);
  const deadline = rt.now() + timeoutMs;
  const address = up.publicAddress ?? up.privateAddress;
  if (!address) throw new Error('the node has no address');
  const pinned = rt.state.pinnedKeys(ns.name).get(up.name) ?? '';
  // A provider that cannot tell the key: the first key seen is pinned, and said so.
  const onFirstKey = (key: string) => {
    rt.state.pin(ns.name, up.name, address, key);
    rt.io.err(`${up.name}: host key ${fingerprint(key)} pinned on first contact (the provider could not tell it)`);
  };
  await retryUntil(deadline, rt.now, () =>
    rt.sshProbe({ name: up.name, host: address, username: provider.adminUser, privateKey, hostKey: rt.state.pinnedKeys(ns.name).get(up.name) ?? pinned, onFirstKey, timeoutMs: 5000 }),
  );
  return up;
}

export function renderCreateReport(r: CreateReport): string {
  const count = (s: CreateStatus) => r.outcomes.filter((o) => o.status === s).length;
  const lines = [
    `nodeset ${r.nodeset}: created ${count('created')}, started ${count('started')}, already there ${count('existing')}, failed ${count('failed')} (${r.seconds.toFixed(1)}s)`,
  ];
  for (const o of r.outcomes.filter((x) => x.status === 'failed')) lines.push(`  failed: ${o.name}: ${o.error}`);
  if (r.orphans.length > 0) {
    lines.push(`not in the nodeset file any more: ${r.orphans.map((o) => o.name).join(', ')}`);
    lines.push('  (remove them with: silver delete-node FILE --orphans)');
  }
  return lines.join('\n');
}

export function failedCount(r: CreateReport): number {
  return r.outcomes.filter((o) => o.status === 'failed').length;
}
