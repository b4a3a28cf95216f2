import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A balancer pair's virtual address on the local bridge, claimed by its nodeset: two nodesets
 * on one bridge that name the same `virtual_address` would each have a pair announce it (VRRP
 * instances of their own), and clients would reach either site by turns. The claims live beside
 * the containers, one file an address (`.claims/ADDRESS`, the nodeset's name); a claim whose
 * nodeset has no container on the bridge any more is stale and taken over. Made and read under
 * the provider's allocation lock.
 */
export function claimAddress(lxcPath: string, bridge: string, nodeset: string, address: string, nodesetsOnBridge: ReadonlySet<string>): void {
  const dir = join(lxcPath, '.claims', bridge);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, address);
  const holder = existsSync(file) ? readFileSync(file, 'utf8').trim() : null;
  if (holder && holder !== nodeset && nodesetsOnBridge.has(holder)) {
    throw new Error(`local provider: virtual_address ${address} is nodeset ${holder}'s on bridge ${bridge}: choose another address (or delete ${holder}'s nodes)`);
  }
  // (the nodeset's claim of another address goes: it moved to this one)
  for (const other of readdirSync(dir)) {
    if (other !== address && !other.endsWith('.tmp') && readFileSync(join(dir, other), 'utf8').trim() === nodeset) rmSync(join(dir, other), { force: true });
  }
  if (holder === nodeset) return;
  writeFileSync(`${file}.tmp`, `${nodeset}\n`, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

/** The nodeset's claims given up (its last node deleted). */
export function releaseClaims(lxcPath: string, bridge: string, nodeset: string): void {
  const dir = join(lxcPath, '.claims', bridge);
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir)) if (readFileSync(join(dir, name), 'utf8').trim() === nodeset) rmSync(join(dir, name), { force: true });
}
