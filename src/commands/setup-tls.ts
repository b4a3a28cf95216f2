import type { Nodeset } from '../nodeset/types.js';
import type { Runtime } from '../runtime.js';
import type { AddressedNode } from '../setup/plan.js';
import type { ExecResult } from '../ssh/connect.js';
import type { NodeExecutor } from '../ssh/keeper.js';
import { quoteCommand } from '../ssh/quote.js';
import { asRoot } from '../image/builder.js';
import { tail } from '../util/exec.js';
import type { NodeSetupResult } from './setup-node.js';

const ACME = '/usr/local/lib/silverlining/bin/silver-acme';

/** `silver-acme ARGS` on a balancer, as root. */
type Acme = (node: string, args: string[], stdin?: string) => Promise<ExecResult>;

/** One host's certificate on a balancer, as `silver-acme export` says in its first line. */
interface Cert {
  end: number | null;
  sha256: string;
}

/** What a balancer holds: its certificates by host and the bundle (`import` takes it). */
interface Held {
  node: string;
  certs: Record<string, Cert | null>;
  bundle: string;
}

/**
 * tls = acme, after the layers: one certificate for the balancers. The newest complete one (every
 * host, the latest first end) is kept in silver's state (0600; a rebuilt balancer gets it back
 * instead of asking the ACME server) and given to every balancer that set up fine and serves
 * another (`silver-acme import`: it takes only a newer one, for its hosts, with its own key). Of
 * a pair only the first balancer orders at setup; when none has a certificate (the first failed),
 * the others order now. Failures here are said, not fatal: the balancers renew and hand over by
 * themselves.
 */
export async function shareTls(ns: Nodeset, rt: Runtime, pool: NodeExecutor, all: readonly AddressedNode[], results: Map<string, NodeSetupResult>, users: ReadonlyMap<string, string>, ordered: ReadonlySet<string>): Promise<void> {
  const hosts = ns.tls?.hosts ?? [];
  const ok = all.filter((n) => n.role === 'balancer' && results.get(n.name)?.status !== 'failed').map((n) => n.name);
  // silver-acme as root on a balancer (a node that cannot be reached answers as a failure)
  const acme: Acme = (node, args, stdin) => pool.exec(node, quoteCommand(asRoot(users.get(node) ?? 'root', [ACME, ...args])), stdin).catch((e: Error) => ({ code: 1, stdout: '', stderr: e.message }));
  const held = async (nodes: readonly string[]) => (await Promise.all(nodes.map((b) => exportOf(rt, acme, b)))).filter((h): h is Held => h !== null);
  let found = await held(ok);
  let best = newest(found, hosts);
  if (!best) {
    const late = ok.filter((b) => !ordered.has(b));
    for (const b of late) {
      rt.io.err(`${b}: balancer: changed: certificates for ${hosts.join(' ')} (from the ACME server: the other balancer has none)`);
      const r = await acme(b, ['run', '--local']);
      if (r.code !== 0) rt.io.err(`${b}: no certificate from the ACME server: ${tail(r.stderr, 3)}`);
      else changed(results, b, `certificates for ${hosts.join(' ')} (from the ACME server)`);
    }
    found = [...found.filter((h) => !late.includes(h.node)), ...(await held(late))];
    best = newest(found, hosts);
  }
  if (!best) return;
  rt.state.keepTlsState(ns.name, best.bundle);
  const from = best;
  await Promise.all(found.filter((h) => h.node !== from.node && hosts.some((x) => h.certs[x]?.sha256 !== from.certs[x]!.sha256)).map((h) => give(rt, acme, results, h.node, from, hosts)));
}

/** The newest complete certificate set: every host present, the latest first end (then by name: the same choice every run). */
export function newest(held: readonly Held[], hosts: readonly string[]): Held | null {
  const score = (h: Held) => Math.min(...hosts.map((x) => h.certs[x]?.end ?? -Infinity));
  const complete = held.filter((h) => hosts.length > 0 && Number.isFinite(score(h)));
  return complete.sort((a, b) => score(b) - score(a) || a.node.localeCompare(b.node))[0] ?? null;
}

async function exportOf(rt: Runtime, acme: Acme, node: string): Promise<Held | null> {
  const r = await acme(node, ['export']);
  const [head, bundle] = r.stdout.trim().split('\n');
  let certs: Record<string, Cert | null> | null = null;
  try {
    certs = JSON.parse(head ?? '') as Record<string, Cert | null>;
  } catch {
    certs = null;
  }
  if (r.code !== 0 || !certs || !bundle || !/^[A-Za-z0-9+/=]+$/.test(bundle)) {
    rt.io.err(`${node}: the certificates were not read (${tail(r.stderr, 1) || 'no answer'}); a rebuilt balancer would ask the ACME server again`);
    return null;
  }
  return { node, certs, bundle };
}

async function give(rt: Runtime, acme: Acme, results: Map<string, NodeSetupResult>, node: string, from: Held, hosts: readonly string[]): Promise<void> {
  const r = await acme(node, ['import'], `${from.bundle}\n`);
  if (r.code !== 0) {
    rt.io.err(`${node}: the certificates of ${from.node} were not taken: ${tail(r.stderr, 2) || 'no answer'}`);
    return;
  }
  if (!/certificates installed/.test(r.stdout)) return;
  const change = `certificates for ${hosts.join(' ')} (from ${from.node})`;
  rt.io.err(`${node}: balancer: changed: ${change}`);
  changed(results, node, change);
}

/** A change made after the layers ran, counted in the balancer layer's result. */
function changed(results: Map<string, NodeSetupResult>, node: string, change: string): void {
  const res = results.get(node);
  if (!res) return;
  res.status = 'changed';
  res.layers.find((l) => l.layer === 'balancer')?.changes.push(change);
}
