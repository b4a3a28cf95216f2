import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from './paths.js';

let root: string | undefined;

/** The project's `setup-layers/` folder (found once: every node script asks). */
export function layersRoot(): string {
  return (root ??= join(projectRoot(), 'setup-layers'));
}

/** Names of every layer: `base`, `appserver`, `balancer`, `service/NAME`. */
export function layerNames(root = layersRoot()): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(root, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    if (entry.name === 'service') {
      for (const svc of readdirSync(join(root, 'service'), { withFileTypes: true })) if (svc.isDirectory()) out.push(`service/${svc.name}`);
    } else out.push(entry.name);
  }
  return out.sort();
}

/** The Debian packages a layer declares in its `packages` file. */
export function layerPackages(layer: string, root = layersRoot()): string[] {
  const file = join(root, layer, 'packages');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter(Boolean);
}

/** Every package any layer declares, sorted and unique: what a golden image should hold. */
export function allLayerPackages(root = layersRoot()): string[] {
  return [...new Set(layerNames(root).flatMap((l) => layerPackages(l, root)))].sort();
}

const helperSums = new Map<string, string>();

/** The sha256 of a layer's `bin/` helper as this silver ships it (what a node must have installed). */
export function helperSum(layer: string, helper: string, root = layersRoot()): string {
  const path = join(root, layer, 'bin', helper);
  let sum = helperSums.get(path);
  if (sum === undefined) {
    sum = createHash('sha256').update(readFileSync(path)).digest('hex');
    helperSums.set(path, sum);
  }
  return sum;
}
